"""Reliability of the data layer: what bad inputs do to the flare list, GOES, FITS and fetch.

Each test reproduces a failure that once passed silently or crashed: a flare
list whose rows were all dropped by a shifted column, a GOES file without
usable samples, a gzip bomb, frames behind a directory symlink, and failed
downloads. The builder test runs one build over a demo manual dir with all of
them at once.
"""

import datetime
import io
import json
import os
import pathlib
import shutil
import time
import tracemalloc
import warnings
import zlib

import fetch_fakes
import numpy as np
import pytest
from astropy.io import fits

from solar_jax import errors
from solar_jax.data import aia, build_report, demo, fetch, frame_facts, goes
from solar_jax.data import flare_list as fl

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
EXCERPT = FIXTURES / "flare_list_sc24_excerpt.csv"
FLAGGED_NC = "sci_xrsf-l2-avg1m_g15_d20190102_truncated.nc"

pytestmark = pytest.mark.filterwarnings("ignore:.*BLANK.*")


def _sunpy_test_file(name):
  import sunpy.data.test

  return pathlib.Path(sunpy.data.test.get_test_filepath(name))


# ---------------------------------------------------------- flare lists ---


def _with_trailing_comma(text: str, rows=(1, 3)) -> str:
  lines = text.splitlines()
  for row in rows:
    lines[row] += ","
  return "\n".join(lines) + "\n"


def _layouts(text: str) -> dict[str, str]:
  """The excerpt in the three CSV layouts we read: index unnamed, index named '', no index."""
  header, *body = text.splitlines()
  return {
    "unnamed_index": text,
    "empty_named_index": "\n".join(["," + header, *body]) + "\n",
    "no_index": "\n".join([header, *(row.split(",", 1)[1] for row in body)]) + "\n",
  }


@pytest.mark.parametrize("layout", ["unnamed_index", "empty_named_index", "no_index"])
def test_a_trailing_comma_in_one_row_shifts_no_column(tmp_path, layout):
  """One stray comma once made the reader drop the first column of every row."""
  original = fl.read_flare_list(EXCERPT)
  text = _layouts(EXCERPT.read_text())[layout]
  clean, stray = tmp_path / "clean.csv", tmp_path / "flares.csv"
  clean.write_text(text)
  stray.write_text(_with_trailing_comma(text))
  for path in (clean, stray):
    flares = fl.read_flare_list(path)
    assert flares == original and flares.skipped == [], path.name
    assert flares.rows == len(original)


@pytest.mark.parametrize(
  "spelling",
  [
    lambda t: t.strftime("%m/%d/%Y %H:%M:%S"),  # US order
    lambda t: t.strftime("%Y-%m-%d %H:%M:%S") + " EST",  # a zone name
    lambda t: t.strftime("%d.%m.%Y %H:%M"),
  ],
)
def test_unreadable_times_in_most_rows_are_an_error_naming_file_and_row(tmp_path, spelling):
  flares = fl.read_flare_list(EXCERPT)
  path = tmp_path / "flares.csv"
  lines = ["event_starttime,event_peaktime,event_endtime,goes_class"]
  lines += [
    ",".join([*(spelling(t) for t in (f.start, f.peak, f.end)), f.goes_class]) for f in flares
  ]
  path.write_text("\n".join(lines) + "\n")
  with pytest.raises(fl.FlareListError) as info:
    fl.read_flare_list(path)
  message = str(info.value)
  assert "flares.csv" in message and f"{len(flares)} of {len(flares)} rows" in message
  assert "row 1, bad_time: line 2: event_starttime" in message and "ISO 8601" in message
  assert "\n" not in message
  assert isinstance(info.value, errors.UserError)  # exit 2 where a command reads it


def test_a_few_bad_rows_are_skipped_with_row_line_and_reason(tmp_path):
  text = EXCERPT.read_text().splitlines()
  fields = text[2].split(",")
  fields[2] = "06/07/2011 06:41"  # event_peaktime of data row 2, line 3
  text[2] = ",".join(fields)
  text[4] += ",C9.9"  # a non-empty field past the last column: not a trailing comma
  fields = text[5].split(",")
  fields[5] = "Q9.9"  # goes_class of data row 5
  text[5] = ",".join(fields)
  path = tmp_path / "flares.csv"
  path.write_text("\n".join(text) + "\n")
  flares = fl.read_flare_list(path)
  assert len(flares) == 37 - 3 and flares.rows == 37
  assert [(s.row, s.reason) for s in flares.skipped] == [
    (2, "bad_time"),
    (4, "field_count"),
    (5, "bad_class"),
  ]
  assert flares.skipped[0].detail.startswith("bad_time: line 3: event_peaktime '06/07/2011 06:41'")
  assert "15 fields, the header has 14 columns" in flares.skipped[1].detail


def test_half_the_rows_bad_is_allowed_more_is_an_error(tmp_path):
  good = "2011-06-07 06:16:00,2011-06-07 06:41:00,2011-06-07 06:59:00,M2.5"
  bad = "2011-06-07 06:16:00,2011-06-07 06:41:00 EST,2011-06-07 06:59:00,M2.5"
  header = "event_starttime,event_peaktime,event_endtime,goes_class"
  path = tmp_path / "flares.csv"
  path.write_text("\n".join([header, good, bad]) + "\n")
  assert len(fl.read_flare_list(path, provenance="swpc")) == 1
  path.write_text("\n".join([header, good, bad, bad]) + "\n")
  with pytest.raises(fl.FlareListError, match=r"2 of 3 rows .* first: row 2"):
    fl.read_flare_list(path, provenance="swpc")


@pytest.mark.parametrize(
  "header",
  [
    "event_starttime,event_peaktime,event_endtime,goes_class,goes_class",
    "event_starttime,,event_peaktime,event_endtime,goes_class",
  ],
)
def test_malformed_header_is_an_error(tmp_path, header):
  path = tmp_path / "flares.csv"
  row = "2011-06-07 06:16:00,2011-06-07 06:41:00,2011-06-07 06:59:00,M2.5,M2.5"
  path.write_text(f"{header}\n{row}\n")
  with pytest.raises(fl.FlareListError, match=r"flares\.csv: malformed header line 1"):
    fl.read_flare_list(path)


@pytest.mark.parametrize(
  "text, want",
  [
    ("2011-06-07 06:41:00", datetime.datetime(2011, 6, 7, 6, 41)),
    ("2011-06-07T06:41:00.250", datetime.datetime(2011, 6, 7, 6, 41, 0, 250000)),
    ("2011-06-07T06:41:00Z", datetime.datetime(2011, 6, 7, 6, 41)),
    ("2011-06-07 06:41 UTC", datetime.datetime(2011, 6, 7, 6, 41)),
    ("2011-06-07T01:41:00-05:00", datetime.datetime(2011, 6, 7, 6, 41)),
    ("2011-06-07T08:41:00+0200", datetime.datetime(2011, 6, 7, 6, 41)),
    ("2011-06-07", datetime.datetime(2011, 6, 7)),
  ],
)
def test_iso_times_and_explicit_offsets_are_read(text, want):
  assert fl.to_naive_utc(text) == want


@pytest.mark.parametrize(
  "text",
  [
    "06/07/2011 06:41",
    "2011-06-07 06:41:00 EST",
    "2011/06/07 06:41",
    "07.06.2011",
    "20110607T064100",
    "2011-06-07 6:41",
    "2011-13-07 06:41",
    "2011-06-07 24:41",
    "",
  ],
)
def test_other_time_spellings_are_errors(text):
  with pytest.raises(ValueError, match="time"):
    fl.to_naive_utc(text)


# ----------------------------------------------------------------- GOES ---


@pytest.fixture(scope="module")
def flagged_nc(tmp_path_factory):
  """sunpy's real GOES-15 1-minute file with every sample flagged bad."""
  import h5netcdf

  path = tmp_path_factory.mktemp("goes") / FLAGGED_NC
  shutil.copy(_sunpy_test_file(FLAGGED_NC), path)
  with h5netcdf.File(path, "r+") as nc:
    flags = nc.variables["xrsb_flag"][:]
    nc.variables["xrsb_flag"][:] = flags | np.array(1, dtype=flags.dtype)  # bad_data
  return path


def test_goes_file_without_usable_samples_is_a_named_error(flagged_nc):
  """It raised IndexError from read_xrs."""
  with pytest.raises(goes.XRSNoDataError, match=f"{FLAGGED_NC}: no usable 1-8 Å sample"):
    goes.read_xrs(flagged_nc)
  assert issubclass(goes.XRSNoDataError, goes.XRSError)


def test_goes_file_without_usable_samples_can_be_skipped(flagged_nc):
  good = _sunpy_test_file("go1520110607.fits")
  alone = goes.read_xrs(good)
  both = goes.read_xrs([flagged_nc, good], skip_empty=True)
  np.testing.assert_array_equal(both.times, alone.times)
  np.testing.assert_array_equal(both.flux_long, alone.flux_long)
  assert both.sources == (good.name,)
  assert [pathlib.Path(f).name for f, _ in both.skipped] == [FLAGGED_NC]
  empty = goes.read_xrs(flagged_nc, skip_empty=True)
  assert len(empty.times) == 0 and empty.window(alone.times[0], alone.times[5]) is None


# ------------------------------------------------------- bounded FITS ---


def _aia_header() -> fits.Header:
  with fits.open(_sunpy_test_file("aia_171_level1.fits")) as hdul:
    header = hdul[0].header.copy()
  del header["BLANK"]
  return header


def _gzip_bomb(side: int, when: str = "2011-06-15T12:00:00.00") -> bytes:
  """A .fits.gz whose header claims a side x side uint8 image, all zeros (side**2 bytes)."""
  header = _aia_header()
  header["BITPIX"], header["NAXIS1"], header["NAXIS2"] = 8, side, side
  header["CRPIX1"] = header["CRPIX2"] = side / 2
  header["T_OBS"] = header["DATE-OBS"] = when
  for key in ("BSCALE", "BZERO"):
    header.remove(key, ignore_missing=True)
  compress = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
  parts = [compress.compress(header.tostring().encode())]
  zeros = bytes(1 << 20)
  remaining = side * side
  while remaining > 0:
    parts.append(compress.compress(zeros[: min(remaining, len(zeros))]))
    remaining -= len(zeros)
  return b"".join([*parts, compress.flush()])


@pytest.fixture(scope="module")
def bomb():
  return _gzip_bomb(16384)  # 256 MiB of image in about 260 kB


def _peak_traced_bytes(fn) -> int:
  tracemalloc.start()
  try:
    fn()
  finally:
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
  return peak


def test_gzip_bomb_is_rejected_from_its_header_with_bounded_memory(bomb, tmp_path):
  """A 260 kB .fits.gz claiming 16384² px was decompressed whole and then resampled."""
  assert len(bomb) < 1 << 20
  path = tmp_path / "bomb.fits.gz"
  path.write_bytes(bomb)

  def read():
    with pytest.raises(aia.BadFrameError) as info:
      aia.read_frame(path, image_size=32)
    assert info.value.reason == "too_large" and "16384 x 16384" in info.value.detail

  start = time.perf_counter()
  peak = _peak_traced_bytes(read)
  assert time.perf_counter() - start < 2.0
  assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB while rejecting"

  # The header scan the builder plans with stops there too.
  def scan():
    with pytest.raises(aia.BadFrameError, match="too_large"):
      aia.read_time(path)

  assert _peak_traced_bytes(scan) < 8 << 20
  assert "too_large" in aia.REASONS


def test_plain_and_tile_compressed_oversized_images_are_rejected(tmp_path):
  header = _aia_header()
  header["BITPIX"], header["NAXIS1"], header["NAXIS2"] = 16, 4097, 8
  raw = header.tostring().encode()  # data section left out: never read
  with pytest.raises(aia.BadFrameError, match=r"too_large.*4097 x 8"):
    aia.read_frame_bytes(raw, source="wide.fits", image_size=32)
  # A RICE file whose compressed-image header claims 16384 x 16384.
  ints = np.zeros((16, 16), dtype=np.int32)
  buffer = io.BytesIO()
  fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(ints, compression_type="RICE_1")]).writeto(
    buffer
  )
  rice = bytearray(buffer.getvalue())
  for key in (b"ZNAXIS1 =", b"ZNAXIS2 ="):
    at = rice.find(key)
    rice[at : at + 80] = f"{key[:8].decode()}= {16384:>20}".ljust(80).encode()
  with pytest.raises(aia.BadFrameError, match=r"too_large.*16384 x 16384 px image \(ZNAXISn\)"):
    aia.read_frame_bytes(bytes(rice), source="rice.fits", image_size=32)


def test_full_disk_size_is_still_accepted_by_the_header_check():
  from solar_jax.data import aia_header

  header = _aia_header()
  header["NAXIS1"] = header["NAXIS2"] = aia_header.MAX_IMAGE_SIDE
  image, size = aia_header.hdu_layout(header.tostring().encode(), "full.fits")
  assert image and size >= 4096 * 4096 * abs(header["BITPIX"]) // 8


def test_multi_member_gzip_reads_like_plain(tmp_path):
  """The streaming reader handles what gzip.decompress did: several members."""
  raw = _sunpy_test_file("aia_171_level1.fits").read_bytes()
  import gzip

  split = 2880 * 3
  path = tmp_path / "two.fits.gz"
  path.write_bytes(gzip.compress(raw[:split]) + gzip.compress(raw[split:]))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    a = aia.read_frame(path, image_size=32)
    b = aia.read_frame_bytes(raw, source="plain.fits", image_size=32)
  np.testing.assert_array_equal(a.image, b.image)


# ------------------------------------------------------------- symlinks ---


def test_scan_follows_directory_symlinks_once_and_reports_loops(tmp_path):
  root, outside = tmp_path / "aia", tmp_path / "elsewhere"
  for name in ("a/x.fits", "b.fits"):
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(b"")
  (outside / "deep").mkdir(parents=True)
  (outside / "deep" / "y.fits.gz").write_bytes(b"")
  (root / "linked").symlink_to(outside)  # frames kept elsewhere
  (root / "again").symlink_to(outside)  # the same directory a second time
  (root / "a" / "up").symlink_to(root)  # a loop
  (root / "gone.fits").symlink_to(tmp_path / "missing.fits")  # dangling
  files, not_followed = aia.scan_fits_files(root)
  rel = [p.relative_to(root).as_posix() for p in files]
  assert rel == ["a/x.fits", "again/deep/y.fits.gz", "b.fits"] or rel == [
    "a/x.fits",
    "b.fits",
    "linked/deep/y.fits.gz",
  ]
  skipped = {p.relative_to(root).as_posix(): why for p, why in not_followed}
  assert set(skipped) == {"a/up", "gone.fits", "again" if "linked" in rel[-1] else "linked"}
  assert "already scanned" in skipped["a/up"] and "dangling" in skipped["gone.fits"]
  assert aia.find_fits_files(root) == files


# ---------------------------------------------------------------- fetch ---


def _hek_answer(columns=("event_starttime", "event_peaktime", "event_endtime", "fl_goescls")):
  from astropy.table import Table

  row = {
    "event_starttime": "2011-06-07T06:16:00",
    "event_peaktime": "2011-06-07T06:41:00",
    "event_endtime": "2011-06-07T06:59:00",
    "fl_goescls": "M2.5",
  }
  return {"hek": Table(rows=[[row[c] for c in columns]], names=list(columns))}


def _argv(out):
  return ["--start", "2011-06-07", "--end", "2011-06-08", "--out", str(out), "--noprogress"]


def test_failed_downloads_are_counted_and_exit_non_zero(monkeypatch, tmp_path, capsys):
  fake = fetch_fakes.FakeFido(monkeypatch, _hek_answer()["hek"])
  # Issuance times 00, 06, 12 and 18 h and the flare's peak 06:41: the 12 h frame fails.
  fake.errors[fetch_fakes.vso_name(datetime.datetime(2011, 6, 7, 12, 0, 3))] = (
    "503 Service Unavailable"
  )
  assert fetch.main(_argv(tmp_path)) == 1
  out, err = capsys.readouterr()
  assert (
    "wrote 1 flares (0 duplicate HEK events merged), 4 AIA files (4 of the plan's frames on "
    "disk; 4 issuance times, 1 of them near flares" in out
  )
  assert err.count("\n") == 1
  assert err.startswith("fetch: 1 downloads failed (first: the VSO (AIA): ")
  assert "503 Service Unavailable" in err
  fake.errors.clear()
  assert fetch.main(_argv(tmp_path)) == 0
  assert [len(f) for f in fake.fetched] == [5, 1]


@pytest.mark.parametrize(
  "hek, missing",
  [
    ({"vso": None}, "no 'hek' table"),
    (_hek_answer(("event_starttime", "event_endtime", "fl_goescls")), "no column event_peaktime"),
  ],
)
def test_unexpected_search_answer_is_a_fetch_error(monkeypatch, tmp_path, capsys, hek, missing):
  """These raised KeyError with a traceback."""
  from sunpy.net import Fido

  monkeypatch.setattr(Fido, "search", lambda *attrs: hek)
  assert fetch.main(_argv(tmp_path)) == 1
  err = capsys.readouterr().err
  assert err.startswith("fetch: unexpected answer from the HEK") and missing in err
  assert err.count("\n") == 1


@pytest.mark.parametrize(
  "answer, message",
  [
    (object, "unexpected answer from the VSO \\(AIA search\\): a object"),
    ("times only", "no column Provider, fileid"),
  ],
)
def test_an_aia_search_answer_of_another_shape_is_a_fetch_error(
  monkeypatch, tmp_path, answer, message
):
  from sunpy.net import Fido

  if answer == "times only":  # a VSO table without the columns a fetch needs
    t = datetime.datetime(2011, 6, 7)
    answer = [fetch_fakes.vso_table(t, t + datetime.timedelta(minutes=3))[0][["Start Time"]]]
  answers = iter([_hek_answer(), answer() if answer is object else answer])
  monkeypatch.setattr(Fido, "search", lambda *a, **k: next(answers))
  with pytest.raises(fetch.FetchError, match=message):
    fetch.fetch(
      datetime.datetime(2011, 6, 7),
      datetime.datetime(2011, 6, 8),
      "C1.0",
      tmp_path,
      (0, 6, 12, 18),
      options=fetch.fetch_aia.Options(progress=False),
    )


# -------------------------------------------------------------- builder ---


@pytest.mark.slow
def test_build_over_every_input_problem_at_once(tmp_path, flagged_nc, bomb):
  """A trailing comma, a GOES file without samples, a gzip bomb, symlinked and looping dirs.

  Before: every flare row was dropped (flaring frames stored as quiet), the
  symlinked month vanished, and the rest went unreported.
  """
  import tensorflow_datasets as tfds

  from tfds_builders.sdo_aia171 import sdo_aia171_dataset_builder as sdo

  manual = tmp_path / "manual"
  manifest = demo.write_demo_archive(
    manual, num_frames=6, months=3, start="2011-06-01", seed=2, xrs_cadence_s=240
  )
  flares_csv = manual / "flares.csv"
  flares_csv.write_text(_with_trailing_comma(flares_csv.read_text(), rows=(1,)))
  os.rename(manual / "aia" / "2011" / "07", tmp_path / "july")
  (manual / "aia" / "2011" / "07").symlink_to(tmp_path / "july")
  (manual / "aia" / "2011" / "loop").symlink_to(manual / "aia")
  (manual / "aia" / "bomb.fits.gz").write_bytes(bomb)
  shutil.copy(flagged_nc, manual / "goes" / FLAGGED_NC)

  builder = sdo.Builder(config="64", data_dir=str(tmp_path / "tfds"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
  got = {}
  for split in builder.info.splits:
    for ex in builder.as_dataset(split=split).as_numpy_iterator():
      facts = {k: np.array([ex[k]]) for k in (*frame_facts.FIELDS, "time")}
      # The demo's manifest gives each frame's intended class on the true scale.
      label, _ = frame_facts.labels(facts, "goes_class", 30.0, class_scale="true")
      flaring = bool(frame_facts.in_flare(facts, 30.0)[0])
      got[ex["source"].decode()] = (goes.CLASS_LETTERS[label[0]], flaring)
  want = {pathlib.Path(f["file"]).name: (f["letter"], f["flaring"]) for f in manifest["frames"]}
  assert got == want and any(flaring for _, flaring in want.values())

  report = json.loads((builder.data_path / build_report.REPORT_NAME).read_text())
  assert {s["file"]: s["reason"] for s in report["skipped"]["files"]} == {
    "aia/bomb.fits.gz": "too_large"
  }
  flare_list = report["flare_list"]
  assert (flare_list["rows"], flare_list["flares"], flare_list["skipped_rows"]) == (
    manifest["num_flares"],
    manifest["num_flares"],
    0,
  )
  assert [g["file"].endswith(FLAGGED_NC) for g in report["goes_skipped"]] == [True]
  assert [n["entry"] for n in report["not_followed"]] == ["aia/2011/loop"]
  summary = build_report.format_report(report)
  assert "aia/2011/loop" in summary and FLAGGED_NC in summary


def test_build_report_lists_skipped_flare_rows(tmp_path):
  text = EXCERPT.read_text().splitlines()
  text[3] = text[3].replace("2011-", "EST 2011-", 1)
  path = tmp_path / "flares.csv"
  path.write_text("\n".join(text) + "\n")
  entry = build_report.flare_list_entry(path, fl.read_flare_list(path))
  assert (entry["rows"], entry["flares"], entry["skipped_rows"]) == (37, 36, 1)
  assert entry["skipped_by_reason"] == {"bad_time": 1}
  assert entry["skipped"][0]["row"] == 3 and "line 4" in entry["skipped"][0]["detail"]
  lines = build_report.input_problems(dict(flare_list=entry))
  assert lines[0].endswith("1 of 37 rows left out (bad_time=1)") and "row 3:" in lines[1]
