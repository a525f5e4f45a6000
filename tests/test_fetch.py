"""Tests of solar_jax.data.fetch without network: queries, HEK export and merging,
the frame plan (issuance grid, peaks), a whole fetch against faked Fido answers, offline failure."""

import csv
import datetime
import gzip
import random
import urllib.error

import fetch_fakes
import numpy as np
import pytest

from solar_jax.data import fetch, fetch_routes, flare_list, frame_facts

START = datetime.datetime(2011, 6, 7)
# The first bytes of what a server sends: a FITS file, a netCDF-3 file, an error page.
_FITS = b"SIMPLE  =                    T / conforms to FITS standard".ljust(2880, b" ")
_NETCDF = b"CDF\x01\x00\x00\x00\x00"
_HTML = b"<!DOCTYPE html>\n<html><body><h1>503 Service Unavailable</h1></body></html>\n"
END = datetime.datetime(2011, 6, 8)


def _of_type(attrs, cls):
  return [x for x in attrs if isinstance(x, cls)]


def test_hek_query_selects_goes_flares_above_class():
  import sunpy.net.attrs as a
  from sunpy.net.hek import HEKClient
  from sunpy.net.vso import VSOClient

  attrs = fetch.hek_query(START, END, "m1.0")
  (time,) = _of_type(attrs, a.Time)
  assert (time.start.datetime, time.end.datetime) == (START, END)
  fields = {
    vars(x)["name"]: (vars(x)["operator"], vars(x)["value"])
    for x in attrs
    if hasattr(x, "operator")
  }
  assert fields["FL_GOESCls"] == (">=", "M1.0")
  assert fields["OBS_Observatory"] == ("=", "GOES")
  assert any(vars(x).get("item") == "FL" for x in attrs if isinstance(x, a.hek.EventType))
  # sunpy routes it to the HEK and nowhere else.
  assert HEKClient._can_handle_query(*attrs) and not VSOClient._can_handle_query(*attrs)
  with pytest.raises(ValueError):
    fetch.hek_query(START, END, "Q9")


def test_aia_and_goes_queries_go_to_the_right_clients():
  import astropy.units as u
  import sunpy.net.attrs as a
  from sunpy.net.dataretriever import XRSClient
  from sunpy.net.hek import HEKClient
  from sunpy.net.vso import VSOClient

  peak = datetime.datetime(2011, 6, 7, 6, 41)
  near = fetch_routes.aia_day_query(START, END)
  (time,) = _of_type(near, a.Time)
  assert (time.start.datetime, time.end.datetime) == (START, END)
  assert _of_type(near, a.Sample)[0].value == 60  # one record a minute
  assert START < peak < END
  (wave,) = _of_type(near, a.Wavelength)
  assert wave.min == wave.max == 171 * u.angstrom
  assert _of_type(near, a.Instrument)[0].value.lower() == "aia"

  goes = fetch.goes_query(START, END)
  for attrs, client in ((near, VSOClient), (goes, XRSClient)):
    assert client._can_handle_query(*attrs)
    assert not HEKClient._can_handle_query(*attrs)


def test_parse_hours_and_durations():
  assert fetch.parse_hours("0,6,12,18") == (0, 6, 12, 18)
  assert fetch.parse_hours("18, 3") == (3, 18)
  for bad in ("", "6,6", "24", "-1", "6h", "0;6"):
    with pytest.raises(ValueError, match="issuance hours"):
      fetch.parse_hours(bad)
  assert fetch.parse_duration("90m") == datetime.timedelta(minutes=90)
  assert fetch.parse_duration("0m") == datetime.timedelta(0)  # a margin may be zero
  with pytest.raises(ValueError):
    fetch.parse_duration("-2h")


def test_defaults_b1_flares_issuance_grid_of_the_config_2h_margin(tmp_path):
  from solar_jax.configs import default

  args = fetch.parse_args(_argv(tmp_path))
  assert args.min_class == fetch.DEFAULT_MIN_CLASS == "B1.0"
  assert args.issuance_hours == tuple(default.get_config().data.issuance_hours) == (0, 6, 12, 18)
  assert args.quiet_margin == datetime.timedelta(hours=2)
  assert fetch.__doc__.count("B1.0") >= 2  # the docstring and its example say so


def test_hek_export_round_trips_through_the_flare_reader(tmp_path):
  from astropy.table import Table
  from astropy.time import Time

  rows = [  # the same flare from two HEK methods, one event without a GOES class
    ("2011-06-07T06:16:00", "2011-06-07T06:41:00", "2011-06-07T06:59:00", "M2.5", "SWPC"),
    (
      "2011-06-07T06:16:00",
      "2011-06-07T06:41:00",
      "2011-06-07T06:59:00",
      "M2.5",
      "SSW Latest Events",
    ),
    ("2011-06-07T08:00:00", "2011-06-07T08:05:00", "2011-06-07T08:10:00", "", "Flare Detective"),
    ("2011-06-07T13:00:00", "2011-06-07T13:10:00", "2011-06-07T13:20:00", "C1.2", "SWPC"),
  ]
  table = Table(
    rows=rows,
    names=["event_starttime", "event_peaktime", "event_endtime", "fl_goescls", "frm_name"],
  )
  for key in ("event_starttime", "event_peaktime", "event_endtime"):
    table[key] = Time(list(table[key]))
  path = tmp_path / "flares.csv"
  assert fetch.write_hek_export(table, path) == 2
  flares = flare_list.read_flare_list(path)
  assert [(f.peak, f.goes_class) for f in flares] == [
    (datetime.datetime(2011, 6, 7, 6, 41), "M2.5"),
    (datetime.datetime(2011, 6, 7, 13, 10), "C1.2"),
  ]


@pytest.mark.parametrize(
  "error",
  [
    urllib.error.URLError("[Errno -3] Temporary failure in name resolution"),
    ConnectionError("Connection refused\nsecond line"),
    TimeoutError("timed out"),
  ],
)
def test_offline_fails_in_one_line(monkeypatch, tmp_path, capsys, error):
  from sunpy.net import Fido

  calls = []

  def offline(*attrs, **kwargs):
    calls.append(attrs)
    raise error

  monkeypatch.setattr(Fido, "search", offline)
  argv = [
    "--start",
    "2011-06-07",
    "--end",
    "2011-06-08",
    "--min_class",
    "M1",
    "--out",
    str(tmp_path),
  ]
  assert fetch.main(argv) == 1
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and err.endswith("\n")
  assert err.startswith("fetch: no network: cannot reach the HEK")
  assert len(calls) == 1  # stopped at the first service


def test_bad_arguments_exit_with_usage(tmp_path):
  for argv in (
    ["--start", "2011-06-08", "--end", "2011-06-07", "--out", str(tmp_path)],
    ["--start", "2011-06-07", "--end", "2011-06-08", "--min_class", "Q1", "--out", str(tmp_path)],
    ["--start", "yesterday", "--end", "2011-06-08", "--out", str(tmp_path)],
  ):
    with pytest.raises(SystemExit) as info:
      fetch.parse_args(argv)
    assert info.value.code == 2


def _hek_table(rows):
  """An astropy table shaped like the HEK's answer (times as astropy Time)."""
  from astropy.table import Table
  from astropy.time import Time

  names = ["event_starttime", "event_peaktime", "event_endtime", "fl_goescls", "frm_name"]
  names.append("ar_noaanum")
  table = Table(rows=rows, names=names, dtype=[object] * 5 + [int])
  for key in names[:3]:
    table[key] = Time(list(table[key]))
  return table


# One M2.5 flare of AR 11226 reported by two modules (peaks 2 min apart; SSW
# gives it a smaller class and no AR), a C flare of another AR peaking 3 min
# earlier (not a duplicate: another AR), and a lone B flare.
HEK_ROWS = [
  ("2011-06-07T06:16:00", "2011-06-07T06:41:00", "2011-06-07T06:59:00", "M2.5", "SWPC", 11226),
  ("2011-06-07T06:14:00", "2011-06-07T06:43:00", "2011-06-07T07:05:00", "M2.0", "SSW", 0),
  ("2011-06-07T06:30:00", "2011-06-07T06:38:00", "2011-06-07T06:50:00", "C3.0", "SWPC", 11227),
  ("2011-06-07T18:00:00", "2011-06-07T18:04:00", "2011-06-07T18:10:00", "B2.0", "SWPC", 11227),
]


def test_duplicates_from_two_modules_become_one_row(tmp_path):
  events, merged_csv = tmp_path / "hek_events.csv", tmp_path / "flares.csv"
  assert fetch.write_hek_export(_hek_table(HEK_ROWS), events) == 4
  flares, num_merged = fetch.write_merged_export(events, merged_csv)
  assert num_merged == 1
  # The file reads back as merge_duplicates of the raw export: the same flares.
  expected, _ = flare_list.merge_duplicates(flare_list.read_flare_list(events))
  assert flare_list.read_flare_list(merged_csv) == flares == expected
  by_class = {f.goes_class: f for f in flares}
  assert sorted(by_class) == ["B2.0", "C3.0", "M2.5"]
  m = by_class["M2.5"]  # the largest class, the group's earliest start and latest end
  assert (m.start, m.peak, m.end, m.noaa_ar) == (
    datetime.datetime(2011, 6, 7, 6, 14),
    datetime.datetime(2011, 6, 7, 6, 41),
    datetime.datetime(2011, 6, 7, 7, 5),
    11226,
  )
  with open(merged_csv, newline="") as f:
    rows = list(csv.DictReader(f))
  assert tuple(rows[0]) == fetch.HEK_COLUMNS
  assert [r["frm_name"] for r in rows] == ["SWPC"] * 3  # the largest event's row


def _in_window(t, flares, margin):
  return any(f.start - margin <= t <= f.end + margin for f in flares)


def test_the_plan_puts_the_cadence_frames_on_the_issuance_grid_and_marks_them():
  rng = random.Random(0)
  start, end = datetime.datetime(2011, 1, 1, 3), datetime.datetime(2011, 3, 1)
  for hours, margin_h, n in (((0, 6, 12, 18), 2, 40), ((5,), 0, 200), ((0, 12), 2, 0)):
    margin = datetime.timedelta(hours=margin_h)
    flares = []
    for i in range(n):  # random, overlapping, some before start or past end
      t0 = start + datetime.timedelta(minutes=rng.randrange(-600, 60 * 24 * 61))
      length = datetime.timedelta(minutes=rng.choice([5, 30, 240, 900]))
      flares.append(flare_list.Flare(str(i), t0, t0 + length / 3, t0 + length, "C1.0", 1e-6))
    plan = fetch.plan_frames(start, end, flares, hours, margin)
    times = [p.time for p in plan]
    assert times == sorted(set(times))
    # Brute force: every day's grid hours in [start, end) are issuance rows, nothing else is.
    days = [datetime.datetime(2011, 1, 1) + datetime.timedelta(days=d) for d in range(60)]
    grid = [d + datetime.timedelta(hours=h) for d in days for h in hours]
    grid = [t for t in grid if start <= t < end]
    assert [p.time for p in plan if p.issuance] == grid
    assert [p.quiet for p in plan if p.issuance] == [
      not _in_window(t, flares, margin) for t in grid
    ]
    peaks = {f.peak: f.event_id for f in flares if start <= f.peak <= end}
    assert {p.time: p.flare_event_id for p in plan if p.flare_event_id} == peaks
    assert not any(p.quiet for p in plan if not p.issuance or p.flare_event_id)
    # The frames read as issuance frames on read are exactly the plan's issuance rows.
    on_read = frame_facts.issuance_frames(np.array(times, "datetime64[ms]"), hours)
    assert on_read.tolist() == [p.issuance for p in plan]
    assert fetch.near_flares(grid, flares, margin) == [_in_window(t, flares, margin) for t in grid]


def _argv(tmp_path, *more):
  return [
    "--start",
    "2011-06-07",
    "--end",
    "2011-06-08",
    "--out",
    str(tmp_path),
    "--noprogress",
    *more,
  ]


def test_fetch_merges_flares_and_plans_the_issuance_grid_and_the_peaks(
  monkeypatch, tmp_path, capsys
):
  fake = fetch_fakes.FakeFido(monkeypatch, _hek_table(HEK_ROWS))
  assert fetch.main(_argv(tmp_path)) == 0
  out = capsys.readouterr().out
  assert "1 duplicate HEK events merged" in out
  assert out.splitlines()[-1] == (
    f"next: tfds build tfds_builders/sdo_aia171 --config=512 --manual_dir={tmp_path} "
    "--data_dir=~/tensorflow_datasets"
  )
  # The HEK is asked for the range widened by the margin (flares just outside it).
  two_h = datetime.timedelta(hours=2)
  assert fake.searches["hek"] == [(START - two_h, END + two_h)]
  flares = flare_list.read_flare_list(tmp_path / "flares.csv")
  assert len(flares) == 3
  assert len(flare_list.read_flare_list(tmp_path / "hek_events.csv")) == 4
  peaks = [f.peak for f in flares]
  # Grid 00, 06, 12, 18 h, all fetched (forecasts are issued flaring or not): 06 h lies
  # within 2 h of the M2.5 flare (06:14-07:05) and 18 h inside the B flare; 00 h and 12 h
  # are quiet.
  grid = [START + datetime.timedelta(hours=h) for h in (0, 6, 12, 18)]
  # One VSO search for the day (widened by a minute), not one per frame; one fetch call.
  minute = datetime.timedelta(minutes=1)
  assert fake.searches["aia"] == [(START - minute, END + minute)]
  from solar_jax.data import aia

  times = sorted(aia.read_time(p) for p in (tmp_path / "aia").iterdir())
  nearest = [t + datetime.timedelta(seconds=3.34) for t in sorted(peaks + grid)]
  assert times == nearest  # records at :03.34 of every minute: the nearest one
  with open(tmp_path / "plan.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  assert tuple(rows[0]) == fetch.PLAN_COLUMNS
  marks = {r["time"]: (r["issuance"], r["quiet"]) for r in rows}
  assert [marks[t.isoformat()] for t in grid] == [
    ("true", "true"),
    ("true", "false"),
    ("true", "true"),
    ("true", "false"),
  ]
  assert {r["flare_event_id"] for r in rows if r["issuance"] == "false"} == {
    f.event_id for f in flares
  }
  assert fake.searches["xrs"] == [(START, END)]
  # A second run: the HEK and VSO answers come from the cache, nothing is downloaded again.
  counts = fetch.fetch(
    START, END, "B1.0", tmp_path, (0, 6, 12, 18), options=fetch.fetch_aia.Options(progress=False)
  )
  assert len(fake.searches["hek"]) == 1 and len(fake.searches["aia"]) == 1
  assert len(fake.fetched) == 1
  assert counts == {
    "hek_events": 4,
    "flares": 3,
    "merged_duplicates": 1,
    "issuance_times": 4,
    "issuance_near_flares": 2,
    "aia_searches": 0,
    "aia_not_found": 0,
    "aia_files": 0,
    "aia_on_disk": 7,
    "aia_refetched": 0,
    "goes_files": 1,
    "failed": 0,
    "first_error": "",
  }


def test_an_error_page_saved_as_fits_is_removed_fails_the_fetch_and_is_fetched_again(
  monkeypatch, tmp_path, capsys
):
  """A server answering 200 with an HTML page: Fido saved it as the .fits, and a rerun kept it
  (Fido skips files that are there) while the build skipped it as corrupt."""
  fake = fetch_fakes.FakeFido(monkeypatch, _hek_table(HEK_ROWS))
  page = fetch_fakes.vso_name(datetime.datetime(2011, 6, 7, 6, 41, 3))  # the M2.5's peak
  fake.pages[page] = fetch_fakes.HTML
  assert fetch.main(_argv(tmp_path)) == 1
  out, err = capsys.readouterr()
  assert err.count("\n") == 1 and page in err and "not a FITS file" in err
  assert "6 AIA files" in out  # the other frames came and are kept
  assert not (tmp_path / "aia" / page).exists()
  assert (tmp_path / "goes" / "sci_xrsf-l2-avg1m_g15_d20110607_v1-0-0.nc").exists()
  fake.pages.clear()  # the server is back: the rerun fetches that frame alone
  assert fetch.main(_argv(tmp_path)) == 0
  assert (tmp_path / "aia" / page).read_bytes().startswith(b"SIMPLE  =")
  assert [len(f) for f in fake.fetched] == [7, 1]


@pytest.mark.parametrize(  # gzip with mtime=0: the test ids (the bytes) are the same in every
  "name, content, ok",  # process, as pytest-xdist requires of its workers' collections.
  [
    ("a.fits", _FITS, True),
    ("a.fits.gz", gzip.compress(_FITS, mtime=0), True),
    (
      "a.fits",
      gzip.compress(_FITS, mtime=0),
      True,
    ),  # gzip data under a plain name: astropy reads it
    ("a.nc", _NETCDF, True),
    ("a.nc", b"CDF\x02\x00\x00", True),
    ("a.nc", b"\x89HDF\r\n\x1a\n\x00\x00", True),  # netCDF-4
    ("a.fits", _HTML, False),
    ("a.fits.gz", gzip.compress(_HTML, mtime=0), False),
    ("a.fits.gz", _HTML, False),
    ("a.nc", _HTML, False),
    ("a.nc", _FITS, False),
    ("a.fits", b"", False),
  ],
)
def test_downloads_are_checked_by_their_signature(tmp_path, name, content, ok):
  path = tmp_path / name
  path.write_bytes(content)
  problem = fetch.check_download(path)
  assert (problem is None) == ok, problem
  if not ok:
    assert str(path) in problem and "\n" not in problem
  assert fetch.check_download(tmp_path / "absent.fits") is not None
