"""The fetcher plans, scales and resumes, offline: recorded answers of the VSO (Fido) and the
JSOC (drms, parfive) in their real shapes (``fetch_fakes``), a dry run against a hand count,
a kill mid-download, half-written files, an HTML page instead of FITS, the JSOC export."""

import datetime
import gzip

import fetch_fakes
import pytest

from solar_jax.data import fetch, fetch_aia, fetch_files, fetch_plan, fetch_routes, flare_list

START, END = datetime.datetime(2011, 6, 30), datetime.datetime(2011, 7, 2)
# Two flares: one peaking on the grid (06:00, June 30), one off it (July 1, 13:17).
HEK_ROWS = [
  ("2011-06-30T05:50:00", "2011-06-30T06:00:00", "2011-06-30T06:20:00", "C2.0", "SWPC", 11240),
  ("2011-07-01T13:05:00", "2011-07-01T13:17:00", "2011-07-01T13:40:00", "M1.1", "SWPC", 11241),
]


def _hek_table(rows=HEK_ROWS):
  from astropy.table import Table
  from astropy.time import Time

  names = ["event_starttime", "event_peaktime", "event_endtime", "fl_goescls", "frm_name"]
  table = Table(rows=rows, names=[*names, "ar_noaanum"], dtype=[object] * 5 + [int])
  for key in names[:3]:
    table[key] = Time(list(table[key]))
  return table


def _argv(out, *more):
  return ["--start", "2011-06-30", "--end", "2011-07-02", "--out", str(out), "--noprogress", *more]


def _fits_file(tmp_path, name="f.fits", compressed=False):
  import numpy as np
  from astropy.io import fits

  data = np.arange(64 * 64, dtype=np.int16).reshape(64, 64)
  hdus = [fits.PrimaryHDU()] + ([fits.CompImageHDU(data)] if compressed else [])
  if not compressed:
    hdus = [fits.PrimaryHDU(data), fits.ImageHDU(data[:8])]
  path = tmp_path / name
  fits.HDUList(hdus).writeto(path)
  return path


@pytest.mark.parametrize("compressed", [False, True])
def test_a_cut_fits_file_is_not_whole_at_any_length(tmp_path, compressed):
  path = _fits_file(tmp_path, compressed=compressed)
  whole = path.read_bytes()
  assert fetch_files.fits_problem(path) is None
  for cut in (2880, len(whole) // 2, len(whole) - 2880, len(whole) - 1, 100):
    path.write_bytes(whole[:cut])
    problem = fetch_files.fits_problem(path)
    assert problem is not None and str(path) in problem and "\n" not in problem, cut
  gz = tmp_path / "f.fits.gz"
  gz.write_bytes(gzip.compress(whole, mtime=0))
  assert fetch_files.fits_problem(gz) is None
  gz.write_bytes(gzip.compress(whole, mtime=0)[:-20])
  assert "cannot be read" in fetch_files.fits_problem(gz)


def test_dry_run_counts_equal_a_hand_count(monkeypatch, tmp_path, capsys):
  fake = fetch_fakes.FakeFido(monkeypatch, _hek_table())
  assert fetch.main(_argv(tmp_path, "--dry_run", "--assumed_mb_per_s=2")) == 0
  out = capsys.readouterr().out
  # By hand: June 30 has 4 grid times (the C2.0 peaks on one of them), July 1 has 4 and
  # the M1.1's peak: 4 frames in June, 5 in July, one day searched each month.
  rows = fetch_aia.month_table(
    fetch_plan.plan_frames(START, END, flare_list.read_flare_list(tmp_path / "flares.csv")),
    fetch_aia.Options(),
    2.0,
  )
  mib = 10 * 2**20
  assert [
    (r["month"], r["frames"], r["issuance"], r["peaks"], r["days"], r["bytes"]) for r in rows
  ] == [
    ("2011-06", 4, 4, 0, 1, 4 * mib),
    ("2011-07", 5, 4, 1, 1, 5 * mib),
    ("total", 9, 8, 1, 2, 9 * mib),
  ]
  assert rows[0]["seconds"] == pytest.approx(10 + 4 * mib / 2e6)  # a day's search + 2 MB/s
  assert rows[2]["seconds"] == pytest.approx(2 * 10 + 9 * mib / 2e6)
  assert fetch_aia.format_table(rows) in out
  assert "assumed: 10.00 MiB a frame (full-resolution level 1" in out and "2 MB/s" in out
  assert not fake.searches["aia"] and not fake.fetched and not fake.searches["xrs"]
  # The JSOC route rebinned to 512 px: 1 MiB of float32 pixels and headers a frame.
  fetch.main(_argv(tmp_path, "--dry_run", "--route=jsoc", "--image_size=512"))
  out = capsys.readouterr().out
  assert f"assumed: {(512 * 512 * 4 + 4 * 2880) / 2**20:.2f} MiB a frame (JSOC" in out
  assert len(fake.searches["hek"]) == 1  # the HEK's answer came from the cache the second time


def test_max_frames_fetches_the_first_frames_of_the_plan(monkeypatch, tmp_path):
  fake = fetch_fakes.FakeFido(monkeypatch, _hek_table())
  assert fetch.main(_argv(tmp_path, "--max_frames=3")) == 0
  assert len(fake.fetched) == 1 and len(fake.fetched[0]) == 3
  assert len(fake.searches["aia"]) == 1  # the three are on June 30: one day searched
  assert (tmp_path / "plan.csv").read_text().count("\n") == 4


def test_a_restart_after_a_kill_fetches_only_what_is_missing(monkeypatch, tmp_path, capsys):
  fake = fetch_fakes.FakeFido(monkeypatch, _hek_table())
  monkeypatch.setattr(fetch_aia, "BATCH", 4)
  fake.kill_after = (1, 2)  # the second batch (July 1): 2 files whole, the third half-written
  with pytest.raises(KeyboardInterrupt):
    fetch.main(_argv(tmp_path))
  files = sorted((tmp_path / "aia").iterdir())
  assert len(files) == 4 + 3
  half = files[-1]  # July 1: the third frame in time order
  assert fetch_files.fits_problem(half) is not None
  fake.kill_after = None
  assert fetch.main(_argv(tmp_path)) == 0
  # No search again (cached), one fetch of the 3 frames still missing (the half-written one
  # among them), and every planned frame whole on disk.
  assert len(fake.searches["hek"]) == 1 and len(fake.searches["aia"]) == 2
  first_run = fake.fetched[:2]
  assert len(fake.fetched) == 3 and len(fake.fetched[2]) == 3
  whole = set(first_run[0] + first_run[1][:2])
  assert set(first_run[1][2:]) < set(fake.fetched[2]) and not whole & set(fake.fetched[2])
  assert fetch_files.fits_problem(half) is None
  assert "9 of the plan's frames on disk" in capsys.readouterr().out


def test_a_half_written_file_left_on_disk_is_fetched_again(monkeypatch, tmp_path, capsys):
  fake = fetch_fakes.FakeFido(monkeypatch, _hek_table())
  assert fetch.main(_argv(tmp_path)) == 0
  victim = sorted((tmp_path / "aia").iterdir())[3]
  victim.write_bytes(victim.read_bytes()[:3000])  # cut as by a dropped connection
  assert fetch.main(_argv(tmp_path)) == 0
  assert fake.fetched[-1] == [f"aia__lev1:171:{int(_time_of(victim).timestamp())}"]
  assert fetch_files.fits_problem(victim) is None


def _time_of(path):
  name = path.name.split("_")  # aia_lev1_171a_2011_06_30t18_00_03_34z_image_lev1.fits
  y, mo, d, h = int(name[3]), int(name[4]), int(name[5][:2]), int(name[5][3:])
  return datetime.datetime(y, mo, d, h, int(name[6]), int(name[7]))


def test_jsoc_route_exports_rebinned_frames_by_month_and_resumes(monkeypatch, tmp_path, capsys):
  fetch_fakes.FakeFido(monkeypatch, _hek_table())  # the HEK and GOES
  flagged = fetch_fakes.jsoc_trec(datetime.datetime(2011, 7, 1, 12))
  client, log, pages = fetch_fakes.FakeJsoc(flagged={flagged}), [], {}
  monkeypatch.setattr(fetch_routes, "jsoc_client", lambda email: client)
  monkeypatch.setattr(
    fetch_routes, "make_downloader", lambda progress: fetch_fakes.FakeDownloader(pages, log)
  )
  argv = _argv(tmp_path, "--route=jsoc", "--jsoc_email=me@example.org", "--image_size=1024")
  name = "aia.lev1_euv_12s.2011-07-01T131700Z.171.image.fits"  # the M1.1's peak
  pages[name] = fetch_fakes.HTML  # an error page instead of the file
  assert fetch.main(argv) == 1
  err = capsys.readouterr().err
  assert name in err and "not a FITS file" in err and err.count("\n") == 1
  # One keyword query a day, one export a month, rebinned to 1024 px on the server.
  assert len(client.queries) == 2 and len(client.exports) == 2
  june, july = client.exports
  assert june[1] == {"rebin": {"method": "boxcar", "scale": 0.25}}
  assert june[0] == (
    "aia.lev1_euv_12s[2011-06-30T00:00:00Z,2011-06-30T06:00:00Z,2011-06-30T12:00:00Z,"
    "2011-06-30T18:00:00Z][171]{image}"
  )
  # July 1, 12:00 is flagged (QUALITY != 0): the nearest good record, 12 s later, instead.
  assert "2011-07-01T12:00:12Z" in july[0] and flagged not in july[0]
  assert len(log) == 9
  pages.clear()
  assert fetch.main(argv) == 0
  assert len(client.exports) == 2 and len(client.queries) == 2  # the cached request again
  assert log[9:] == [name]  # only the frame that was an error page
  assert "next: tfds build tfds_builders/sdo_aia171 --config=512" in capsys.readouterr().out


def test_jsoc_needs_an_email_and_a_power_of_two_size(tmp_path, capsys):
  for flags, message in (
    (["--route=jsoc"], "--jsoc_email"),
    (["--route=jsoc", "--jsoc_email=a@b.c", "--image_size=1000"], "--image_size=1000"),
    (["--max_frames=0"], "max_frames"),
  ):
    with pytest.raises(SystemExit) as info:
      fetch.parse_args(_argv(tmp_path, *flags))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_jsoc_processing_requests_and_their_bytes(monkeypatch, tmp_path):
  monkeypatch.setattr(fetch_routes, "jsoc_client", lambda email: fetch_fakes.FakeJsoc())
  chunk = [fetch_aia.Record(START, "2011-06-30T00:00:00Z")]
  cases = {
    "rebin": ({"rebin": {"method": "boxcar", "scale": 0.125}}, 512 * 512 * 4),
    "cutout": (
      {
        "im_patch": {
          "t_ref": "2011-06-30T00:00:00Z",
          "t": 0,
          "r": 0,
          "c": 0,
          "locunits": "arcsec",
          "boxunits": "arcsec",
          "x": 0,
          "y": 0,
          "width": 1200.0,
          "height": 1200.0,
        }
      },
      2000 * 2000 * 2,  # 1200" at 0.6" a pixel, int16
    ),
    "none": (None, None),
  }
  for process, (request, pixels) in cases.items():
    options = fetch_aia.Options("jsoc", "a@b.c", process, 512, 1200.0, False)
    assert fetch_routes.Jsoc(options, tmp_path).process(chunk) == request
    expected = fetch_aia.FULL_RES_BYTES if pixels is None else pixels + 4 * 2880
    assert fetch_aia.bytes_per_frame(options) == expected
