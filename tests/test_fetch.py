"""Tests of solar_jax.data.fetch without network: queries, HEK export, offline failure."""

import datetime
import urllib.error

import pytest

from solar_jax.data import fetch, flare_labels

START = datetime.datetime(2011, 6, 7)
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
  near = fetch.aia_query(peak)
  (time,) = _of_type(near, a.Time)
  assert time.near.datetime == peak and time.start.datetime < peak < time.end.datetime
  (wave,) = _of_type(near, a.Wavelength)
  assert wave.min == wave.max == 171 * u.angstrom
  assert _of_type(near, a.Instrument)[0].value.lower() == "aia"

  quiet = fetch.aia_quiet_query(START, END, datetime.timedelta(hours=6))
  (sample,) = _of_type(quiet, a.Sample)
  assert sample.value == 6 * 3600

  goes = fetch.goes_query(START, END)
  for attrs, client in ((near, VSOClient), (quiet, VSOClient), (goes, XRSClient)):
    assert client._can_handle_query(*attrs)
    assert not HEKClient._can_handle_query(*attrs)


def test_parse_cadence():
  assert fetch.parse_cadence("6h") == datetime.timedelta(hours=6)
  assert fetch.parse_cadence("90m") == datetime.timedelta(minutes=90)
  assert fetch.parse_cadence("1.5d") == datetime.timedelta(hours=36)
  for bad in ("", "6", "h6", "0s", "-1h"):
    with pytest.raises(ValueError):
      fetch.parse_cadence(bad)


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
  flares = flare_labels.read_flare_list(path)
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
