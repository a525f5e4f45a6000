"""Tests of solar_jax.data.flare_labels on real flare lists and real GOES XRS files."""

import csv
import datetime
import json
import pathlib
import shutil

import numpy as np
import pytest

from solar_jax.data import flare_labels as fl

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
EXCERPT = FIXTURES / "flare_list_sc24_excerpt.csv"
T = datetime.datetime


def goes_file(name):
  import sunpy.data.test

  return pathlib.Path(sunpy.data.test.get_test_filepath(name))


@pytest.fixture(scope="module")
def flares():
  return fl.read_flare_list(EXCERPT)


@pytest.fixture(scope="module")
def index(flares):
  return fl.FlareIndex(flares)


@pytest.fixture(scope="module")
def xrs_20110607():
  return fl.read_xrs(goes_file("go1520110607.fits"))


def sunpy_frame(path):
  """The file as sunpy reads it, unscaled and unfiltered (the reference)."""
  import warnings

  import sunpy.timeseries

  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return sunpy.timeseries.TimeSeries(str(path)).to_dataframe()


# ---------------------------------------------------------- flare lists ---


def test_read_excerpt_of_real_list(flares):
  assert len(flares) == 37 and flares.skipped == []
  assert [f.peak for f in flares] == sorted(f.peak for f in flares)
  m25 = next(f for f in flares if f.peak == T(2011, 6, 7, 6, 41))
  assert (m25.start, m25.end, m25.goes_class) == (
    T(2011, 6, 7, 6, 16),
    T(2011, 6, 7, 6, 59),
    "M2.5",
  )
  assert m25.peak_flux == pytest.approx(2.5e-5, rel=1e-12)
  assert m25.event_id == "SOL2011-06-07T06:41:00"


def test_full_list_agrees_with_its_own_class_columns(shared_flare_list):
  flares = fl.read_flare_list(shared_flare_list)
  with open(shared_flare_list) as f:
    rows = list(csv.reader(f))[1:]
  assert len(flares) == len(rows) == 8606 and flares.skipped == []
  by_peak = {}
  for row in rows:  # row[0] is the unnamed index column
    by_peak.setdefault(row[2], []).append(row)
  for flare in flares:
    candidates = by_peak[flare.peak.strftime("%Y-%m-%d %H:%M:%S")]
    row = next(r for r in candidates if r[5] == flare.goes_class)
    assert fl.class_letter(flare.peak_flux) == row[4]  # goes_class_ind
    assert flare.peak_flux == pytest.approx(float(row[6]), rel=1e-9)  # goes_class_val


def test_excerpt_still_matches_full_list(shared_flare_list):
  full = {(f.peak, f.goes_class, f.start, f.end) for f in fl.read_flare_list(shared_flare_list)}
  assert {(f.peak, f.goes_class, f.start, f.end) for f in fl.read_flare_list(EXCERPT)} <= full


def _hek_events(flares):
  """The excerpt's flares spelled as HEK names them (SOL ids as HEK writes them)."""
  return [
    {
      "event_starttime": f.start.isoformat(),
      "event_peaktime": f.peak.isoformat(),
      "event_endtime": f.end.isoformat(),
      "fl_goescls": f.goes_class,
      "SOL_standard": "SOL" + f.start.isoformat() + "L000C000",
      "frm_name": "SWPC",
      "hpc_x": 100.5,
    }
    for f in flares
  ]


def test_hek_json_and_csv_spellings_read_identically(flares, tmp_path):
  from astropy.table import Table
  from astropy.time import Time

  events = _hek_events(flares)
  (tmp_path / "hek.json").write_text(json.dumps({"result": events}))
  (tmp_path / "plain.json").write_text(json.dumps(events))
  # A CSV as an astropy/sunpy HEK table writes it: times as astropy Time (ISO, space).
  table = Table(rows=[[e[k] for k in events[0]] for e in events], names=list(events[0]))
  for key in ("event_starttime", "event_peaktime", "event_endtime"):
    table[key] = Time(list(table[key]))
    table[key].format = "iso"  # '2011-02-14 02:35:00.000', as sunpy's HEK table shows it
  table.write(tmp_path / "hek.csv", format="csv")
  assert " " in (tmp_path / "hek.csv").read_text().splitlines()[1]  # not the JSON spelling

  lists = [fl.read_flare_list(tmp_path / n) for n in ("hek.json", "plain.json", "hek.csv")]
  assert lists[0] == lists[1] == lists[2]
  assert lists[0][0].event_id.startswith("SOL2011-02-14T")
  # Same flares as the SWPC-style CSV, apart from the id spelling.
  strip = [(f.start, f.peak, f.end, f.goes_class, f.peak_flux) for f in flares]
  assert [(f.start, f.peak, f.end, f.goes_class, f.peak_flux) for f in lists[0]] == strip


def test_rows_with_bad_class_or_time_are_skipped_and_counted(flares, tmp_path):
  events = _hek_events(flares[:3])
  events[0]["fl_goescls"] = ""  # HEK events from non-GOES methods have no class
  events[2]["event_peaktime"] = "not a time"
  path = tmp_path / "hek.json"
  path.write_text(json.dumps({"result": events}))
  result = fl.read_flare_list(path)
  assert len(result) == 1 and result[0].goes_class == flares[1].goes_class
  assert [number for number, _ in result.skipped] == [1, 3]


def test_missing_column_and_unreadable_file_errors(tmp_path):
  path = tmp_path / "list.csv"
  path.write_text(
    "event_starttime,event_peaktime,goes_class\n2011-01-01 00:00,2011-01-01 00:05,C1\n"
  )
  with pytest.raises(fl.FlareListError, match=r"list\.csv.*event_endtime"):
    fl.read_flare_list(path)
  with pytest.raises(fl.FlareListError, match="absent.csv"):
    fl.read_flare_list(tmp_path / "absent.csv")
  (tmp_path / "bad.json").write_text("{not json")
  with pytest.raises(fl.FlareListError, match="bad.json"):
    fl.read_flare_list(tmp_path / "bad.json")


def test_flare_index_matches_brute_force(flares, index):
  rng = np.random.default_rng(0)
  base = T(2011, 2, 14)
  for minutes in rng.uniform(0, 60 * 24 * 1000, size=300):
    time = base + datetime.timedelta(minutes=float(minutes))
    window = datetime.timedelta(minutes=float(rng.uniform(0, 120)))
    expected = [f for f in flares if abs(f.peak - time) <= window]
    assert index.within(time, window) == expected


# ------------------------------------------------------ flux <-> class ---


@pytest.mark.parametrize("letter", ["A", "B", "C", "M", "X"])
def test_flux_class_round_trips_against_sunkit(letter):
  import astropy.units as u
  from sunkit_instruments.goes_xrs import flareclass_to_flux, flux_to_flareclass

  for number in ("1", "1.0", "2.5", "5.6", "9.9"):
    goes_class = letter + number
    flux = fl.class_to_flux(goes_class)
    assert flux == flareclass_to_flux(goes_class).to_value(u.W / u.m**2)
    assert fl.flux_to_class(flux) == flux_to_flareclass(np.float64(flux) * u.W / u.m**2)
    assert fl.class_letter(flux) == letter
    assert fl.class_to_flux(fl.flux_to_class(flux)) == pytest.approx(flux, rel=1e-12)
  assert fl.class_to_flux(letter.lower() + "2.5") == fl.class_to_flux(letter + "2.5")


def test_class_letter_edges_and_float32():
  lower = {"B": 1e-7, "C": 1e-6, "M": 1e-5, "X": 1e-4}
  previous = dict(zip("BCMX", "ABCM"))
  for letter, edge in lower.items():
    assert fl.class_letter(edge) == letter
    assert fl.class_letter(edge * (1 - 1e-9)) == previous[letter]
  assert fl.class_letter(1e-9) == "A" and fl.class_letter(0.0) == "A"  # below A1.0
  # The fast letter rule is sunkit's rule, including log10 rounding at edges.
  rng = np.random.default_rng(0)
  fluxes = np.concatenate(
    [10 ** rng.uniform(-10, -2, 500), [np.nextafter(e, 0) for e in lower.values()]]
  )
  for flux in fluxes:
    assert fl.class_letter(flux) == fl.flux_to_class(flux)[0]
  assert fl.class_letter(3e-3) == "X"
  # float32 fluxes (as read from XRS files) are promoted, not 'None2.56'.
  assert fl.flux_to_class(np.float32(2.56e-5)) == "M2.56"
  for bad in (np.nan, -1e-6, np.inf):
    with pytest.raises(ValueError):
      fl.class_letter(bad)
  for bad in ("Z1.0", "M", "", "1.5", "M2.5x"):
    with pytest.raises(ValueError):
      fl.class_to_flux(bad)


# ---------------------------------------------------------------- XRS ---


def test_sdac_fits_is_used_as_is(xrs_20110607):
  raw = sunpy_frame(goes_file("go1520110607.fits"))["xrsb"]
  assert xrs_20110607.flux_long.max() == pytest.approx(raw.max(), rel=1e-7)
  assert fl.flux_to_class(xrs_20110607.flux_long.max()) == "M2.56"
  assert np.all(np.diff(xrs_20110607.times) > np.timedelta64(0))
  assert xrs_20110607.times.dtype == np.dtype("datetime64[ns]")


def test_ncei_goes15_netcdf_is_scaled_and_goes16_is_not():
  ncei = goes_file("sci_gxrs-l2-irrad_g15_d20131028_truncated.nc")
  raw = sunpy_frame(ncei)
  series = fl.read_xrs(ncei)
  good = raw["xrsb_quality"].to_numpy() == 0
  np.testing.assert_allclose(series.flux_long, 0.7 * raw["xrsb"].to_numpy(np.float64)[good])
  # goes_13_leap_second.nc names no satellite: its metadata still says GOES 1-15.
  leap = goes_file("goes_13_leap_second.nc")
  np.testing.assert_allclose(
    fl.read_xrs(leap).flux_long.max(), 0.7 * sunpy_frame(leap)["xrsb"].max(), rtol=1e-7
  )
  g16 = goes_file("sci_xrsf-l2-avg1m_g16_d20210101_truncated.nc")
  np.testing.assert_allclose(
    np.sort(fl.read_xrs(g16).flux_long), np.sort(sunpy_frame(g16)["xrsb"].to_numpy(np.float64))
  )


def _ncei_copy_of_sdac(tmp_path, start, minutes=20):
  """A real NCEI GOES-15 netCDF whose samples are replaced by the SDAC samples
  of go1520110607.fits from ``start`` on, un-scaled (/0.7) as NCEI publishes them."""
  import h5netcdf

  sdac = sunpy_frame(goes_file("go1520110607.fits"))
  window = sdac[(sdac.index >= start) & (sdac.index < start + datetime.timedelta(minutes=minutes))]
  path = tmp_path / "sci_gxrs-l2-irrad_g15_d20110607_test.nc"
  shutil.copy(goes_file("sci_gxrs-l2-irrad_g15_d20131028_truncated.nc"), path)
  with h5netcdf.File(path, "r+") as nc:
    n = nc.variables["time"].shape[0]
    assert len(window) >= n
    seconds = (window.index[:n] - np.datetime64("1970-01-01")) / np.timedelta64(1, "s")
    nc.variables["time"][:] = np.asarray(seconds)
    nc.variables["b_flux"][:] = window["xrsb"].to_numpy()[:n] / 0.7
    nc.variables["a_flux"][:] = window["xrsa"].to_numpy()[:n] / 0.85
  return path, window.iloc[:n]


def test_sdac_and_ncei_give_the_same_class(tmp_path, index, xrs_20110607):
  path, window = _ncei_copy_of_sdac(tmp_path, T(2011, 6, 7, 6, 31), minutes=22)
  ncei = fl.read_xrs(path)
  assert fl.flux_to_class(ncei.flux_long.max()) == fl.flux_to_class(window["xrsb"].max()) == "M2.56"
  for minutes in (34, 41, 45):
    time = T(2011, 6, 7, 6, minutes)
    a = fl.label_frame(time, index, xrs_20110607, window_minutes=3, quiet_policy="background")
    b = fl.label_frame(time, index, ncei, window_minutes=3, quiet_policy="background")
    assert (a.letter, a.source, a.event_id) == (b.letter, b.source, b.event_id)
    assert a.flux == pytest.approx(b.flux, rel=1e-6)
  # Without the 0.7 the same file would claim a different (too large) class.
  unscaled = fl.read_xrs(path, xrsb_scale=1.0)
  assert fl.flux_to_class(unscaled.flux_long.max()) != "M2.56"


def test_quality_flags_of_one_minute_files(tmp_path):
  import h5netcdf

  name = "sci_xrsf-l2-avg1m_g15_d20190102_truncated.nc"
  raw = sunpy_frame(goes_file(name))
  assert set(raw["xrsb_quality"]) == {16}  # a bit that is set on good samples
  assert len(fl.read_xrs(goes_file(name)).times) == len(raw)
  path = tmp_path / name
  shutil.copy(goes_file(name), path)
  with h5netcdf.File(path, "r+") as nc:
    flags = nc.variables["xrsb_flag"][:]
    flags[[3, 10, 20]] |= np.array([1, 2, 4], dtype=flags.dtype)  # bad_data, eclipse, ...
    nc.variables["xrsb_flag"][:] = flags
  series = fl.read_xrs(path)
  assert len(series.times) == len(raw) - 3
  assert not np.isin(raw.index.to_numpy()[[3, 10, 20]], series.times).any()


def test_xrs_errors_name_the_file(tmp_path):
  junk = tmp_path / "junk_xrs.nc"
  junk.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
  with pytest.raises(fl.XRSError, match="junk_xrs.nc"):
    fl.read_xrs(junk)
  with pytest.raises(fl.XRSError, match="xrsb_scale"):
    fl.xrsb_scale_from_meta({"title": "some XRS file"}, "odd.nc")


def test_read_xrs_merges_files_in_time_order(xrs_20110607):
  names = ["sci_gxrs-l2-irrad_g15_d20131028_truncated.nc", "go1520110607.fits"]
  merged = fl.read_xrs([goes_file(n) for n in names])
  parts = [fl.read_xrs(goes_file(names[0])), xrs_20110607]
  assert len(merged.times) == sum(len(p.times) for p in parts)
  assert np.all(np.diff(merged.times) > np.timedelta64(0))
  assert merged.sources == tuple(names)


# ------------------------------------------------------------- labels ---


def test_m25_flare_frame_is_class_m(index, xrs_20110607):
  label = fl.label_frame(
    T(2011, 6, 7, 6, 41), index, xrs_20110607, window_minutes=30, quiet_policy="background"
  )
  assert label.letter == "M" and label.flaring
  assert label.event_id == "SOL2011-06-07T06:41:00"
  # The XRS peak in the window (2.56e-5) exceeds the listed M2.5 and is used.
  assert label.source == "xrs_peak" and label.flux == pytest.approx(2.5554e-5, rel=1e-4)


def test_x_flare_from_list_alone(index, xrs_20110607):
  for xrs in (None, xrs_20110607):  # the 2011-06-07 file does not cover 2011-02-15
    label = fl.label_frame(
      T(2011, 2, 15, 1, 53), index, xrs, window_minutes=30, quiet_policy="background"
    )
    assert (label.letter, label.source, label.flaring) == ("X", "flare_list", True)
    assert label.flux == pytest.approx(2.2e-4)
  # Aware times are converted to UTC.
  aware = datetime.datetime(
    2011, 2, 15, 2, 53, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
  )
  assert fl.label_frame(aware, index, None, window_minutes=30, quiet_policy="drop").letter == "X"


def test_strongest_listed_flare_in_window_wins(index):
  # 2013-10-28: X1.0 peaks 02:03, C3.5 at 01:30; a frame at 01:45 sees both.
  label = fl.label_frame(
    T(2013, 10, 28, 1, 45), index, None, window_minutes=20, quiet_policy="drop"
  )
  assert label.letter == "X" and label.event_id == "SOL2013-10-28T02:03:00"


def test_window_edges(index, xrs_20110607):
  peak = T(2011, 6, 7, 6, 41)
  for offset in (-30, 30):
    edge = peak + datetime.timedelta(minutes=offset)
    inside = fl.label_frame(edge, index, None, window_minutes=30, quiet_policy="drop")
    assert inside is not None and inside.flaring and inside.letter == "M"
    outside = edge + datetime.timedelta(seconds=1 if offset > 0 else -1)
    assert fl.label_frame(outside, index, None, window_minutes=30, quiet_policy="drop") is None
    quiet = fl.label_frame(
      outside, index, xrs_20110607, window_minutes=30, quiet_policy="background"
    )
    assert not quiet.flaring and quiet.source == "xrs_background" and quiet.event_id == ""


def test_quiet_frame_takes_background_class(index, xrs_20110607):
  time = T(2011, 6, 7, 12, 0)
  label = fl.label_frame(time, index, xrs_20110607, window_minutes=30, quiet_policy="background")
  raw = sunpy_frame(goes_file("go1520110607.fits"))["xrsb"]
  window = raw[time - datetime.timedelta(minutes=30) : time + datetime.timedelta(minutes=30)]
  assert label.flux == pytest.approx(float(np.median(window)), rel=1e-6)
  assert label.letter == fl.class_letter(np.median(window))
  assert (label.flaring, label.source) == (False, "xrs_background")
  assert fl.label_frame(time, index, xrs_20110607, window_minutes=30, quiet_policy="drop") is None


def test_quiet_frame_without_xrs_coverage_has_no_label(index, xrs_20110607):
  def label(time, xrs=xrs_20110607):
    return fl.label_frame(time, index, xrs, window_minutes=30, quiet_policy="background")

  # The file runs 2011-06-07 00:00:00 to 23:59:57.
  assert label(T(2011, 6, 7, 23, 29)) is not None  # window ends 23:59
  assert label(T(2011, 6, 7, 23, 50)) is None  # window runs 20 min past the data
  assert label(T(2011, 6, 7, 0, 10)) is None  # window starts 20 min before it
  assert label(T(2011, 2, 15, 6, 0)) is None
  assert label(T(2011, 6, 7, 12, 0), xrs=None) is None


def test_bad_arguments(index):
  with pytest.raises(ValueError, match="quiet_policy"):
    fl.label_frame(T(2011, 1, 1), index, None, window_minutes=30, quiet_policy="skip")
  with pytest.raises(ValueError, match="window_minutes"):
    fl.label_frame(T(2011, 1, 1), index, None, window_minutes=-1, quiet_policy="drop")
