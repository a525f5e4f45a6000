"""Tests of solar_jax.data.goes: flux <-> class, the true GOES scale, XRS files, primary satellite."""

import datetime
import shutil

import numpy as np
import pytest

from solar_jax.data import goes

T = datetime.datetime


def goes_file(name):
  import sunpy.data.test

  return __import__("pathlib").Path(sunpy.data.test.get_test_filepath(name))


@pytest.fixture(scope="module")
def xrs_20110607():
  return goes.read_xrs(goes_file("go1520110607.fits"))


def sunpy_frame(path):
  """The file as sunpy reads it, unscaled and unfiltered (the reference)."""
  import warnings

  import sunpy.timeseries

  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return sunpy.timeseries.TimeSeries(str(path)).to_dataframe()


# ------------------------------------------------------ flux <-> class ---


@pytest.mark.parametrize("letter", ["A", "B", "C", "M", "X"])
def test_flux_class_round_trips_against_sunkit(letter):
  import astropy.units as u
  from sunkit_instruments.goes_xrs import flareclass_to_flux, flux_to_flareclass

  for number in ("1", "1.0", "2.5", "5.6", "9.9"):
    goes_class = letter + number
    flux = goes.class_to_flux(goes_class)
    assert flux == flareclass_to_flux(goes_class).to_value(u.W / u.m**2)
    assert goes.flux_to_class(flux) == flux_to_flareclass(np.float64(flux) * u.W / u.m**2)
    assert goes.class_letter(flux) == letter
    assert goes.class_to_flux(goes.flux_to_class(flux)) == pytest.approx(flux, rel=1e-12)
  assert goes.class_to_flux(letter.lower() + "2.5") == goes.class_to_flux(letter + "2.5")


def test_class_table_is_sunkits_and_converts_as_it_does():
  """goes holds sunkit-instruments' table (so reading labels does not import it): the
  same base fluxes, and the same float for every class string of a flare list's kind."""
  import astropy.units as u
  from sunkit_instruments.goes_xrs import flareclass_to_flux
  from sunkit_instruments.goes_xrs.goes_xrs import GOES_CONVERSION_DICT

  assert goes.CLASS_BASE_FLUX == {
    k: v.to_value(u.W / u.m**2) for k, v in GOES_CONVERSION_DICT.items() if k in "ABCMX"
  }
  numbers = [f"{n / 10:.1f}" for n in range(10, 100)] + ["1", "10", "12.3", "0.5", "2.56"]
  for letter in "ABCMX":
    for number in numbers:
      want = flareclass_to_flux(letter + number).to_value(u.W / u.m**2)
      assert goes.class_to_flux(letter + number) == want, letter + number


def test_class_letter_edges_and_float32():
  lower = {"B": 1e-7, "C": 1e-6, "M": 1e-5, "X": 1e-4}
  previous = dict(zip("BCMX", "ABCM"))
  for letter, edge in lower.items():
    assert goes.class_letter(edge) == letter
    assert goes.class_letter(edge * (1 - 1e-9)) == previous[letter]
  assert goes.class_letter(1e-9) == "A" and goes.class_letter(0.0) == "A"  # below A1.0
  # The fast letter rule is sunkit's rule, including log10 rounding at edges.
  rng = np.random.default_rng(0)
  fluxes = np.concatenate(
    [10 ** rng.uniform(-10, -2, 500), [np.nextafter(e, 0) for e in lower.values()]]
  )
  for flux in fluxes:
    assert goes.class_letter(flux) == goes.flux_to_class(flux)[0]
  assert goes.class_letter(3e-3) == "X"
  # float32 fluxes (as read from XRS files) are promoted, not 'None2.56'.
  assert goes.flux_to_class(np.float32(2.56e-5)) == "M2.56"
  for bad in (np.nan, -1e-6, np.inf):
    with pytest.raises(ValueError):
      goes.class_letter(bad)
  for bad in ("Z1.0", "M", "", "1.5", "M2.5x"):
    with pytest.raises(ValueError):
      goes.class_to_flux(bad)


# ---------------------------------------------------------------- XRS ---


def test_sdac_fits_is_divided_by_the_swpc_factor(xrs_20110607):
  raw = sunpy_frame(goes_file("go1520110607.fits"))["xrsb"]
  # The SDAC file publishes M2.56 on the SWPC scale: 3.65e-5 W m^-2 true flux.
  assert goes.flux_to_class(raw.max()) == "M2.56"
  assert xrs_20110607.flux_long.max() == pytest.approx(raw.max() / 0.7, rel=1e-7)
  assert goes.flux_to_class(xrs_20110607.flux_long.max()) == "M3.65"
  assert xrs_20110607.conversions == {"go1520110607.fits": pytest.approx(1 / 0.7)}
  assert np.all(np.diff(xrs_20110607.times) > np.timedelta64(0))
  assert xrs_20110607.times.dtype == np.dtype("datetime64[ns]")


def test_ncei_goes15_and_goes16_netcdf_are_true_flux():
  ncei = goes_file("sci_gxrs-l2-irrad_g15_d20131028_truncated.nc")
  raw = sunpy_frame(ncei)
  series = goes.read_xrs(ncei)
  good = raw["xrsb_quality"].to_numpy() == 0
  np.testing.assert_allclose(series.flux_long, raw["xrsb"].to_numpy(np.float64)[good])
  assert series.primary == {"2013-10-28": 15}
  # goes_13_leap_second.nc names no satellite in its metadata: its name does.
  leap = goes_file("goes_13_leap_second.nc")
  leap_series = goes.read_xrs(leap)
  np.testing.assert_allclose(leap_series.flux_long.max(), sunpy_frame(leap)["xrsb"].max())
  assert set(leap_series.primary.values()) == {13}
  g16 = goes_file("sci_xrsf-l2-avg1m_g16_d20210101_truncated.nc")
  series16 = goes.read_xrs(g16)
  np.testing.assert_allclose(
    np.sort(series16.flux_long), np.sort(sunpy_frame(g16)["xrsb"].to_numpy(np.float64))
  )
  assert series16.primary == {"2021-01-01": 16}


def test_listed_classes_follow_the_era():
  # Published before the GOES-16 era: SWPC-scaled, divided by 0.7.
  assert goes.listed_true_flux(2.5e-5, T(2011, 6, 7, 6, 41)) == pytest.approx(2.5e-5 / 0.7)
  # From 2020 on: true fluxes, as they are.
  assert goes.listed_true_flux(2.5e-5, T(2022, 3, 30, 17, 37)) == 2.5e-5
  assert goes.listed_true_flux(2.5e-5, T(2019, 12, 31, 23, 59)) == pytest.approx(2.5e-5 / 0.7)


def test_m25_of_2011_and_a_goes16_flux_share_one_scale(xrs_20110607):
  """The 2011 M2.5 (list and SDAC file) and GOES-16 fluxes land on one declared scale."""
  listed = goes.listed_true_flux(goes.class_to_flux("M2.5"), T(2011, 6, 7, 6, 41))
  measured = xrs_20110607.window(T(2011, 6, 7, 6, 30), T(2011, 6, 7, 6, 55)).max()
  # Both 2011 sources, converted, agree on the true flux to the list's rounding (3 %).
  assert measured == pytest.approx(listed, rel=0.03)
  assert goes.class_letter(listed) == goes.class_letter(measured) == "M"
  # A GOES-16 flux equal to the 2011 true peak names the same class: nothing is rescaled.
  g16 = goes.read_xrs(goes_file("sci_xrsf-l2-avg1m_g16_d20210101_truncated.nc"))
  raw16 = sunpy_frame(goes_file("sci_xrsf-l2-avg1m_g16_d20210101_truncated.nc"))["xrsb"]
  assert g16.flux_long.max() == pytest.approx(raw16.max(), rel=1e-9)
  assert goes.flux_to_class(measured) == goes.flux_to_class(np.float64(measured))
  # Had the SWPC scale been kept, the 2011 flare would read 30 % lower than a GOES-16 flare
  # of the same true flux (M2.56 against M3.65).
  assert goes.flux_to_class(measured * 0.7) == "M2.56"


def _ncei_copy_of_sdac(tmp_path, start, minutes=20, satellite=15, factor=1.0):
  """A real NCEI GOES netCDF whose samples are replaced by the SDAC samples
  of go1520110607.fits from ``start`` on, un-scaled (/0.7) as NCEI publishes them."""
  import h5netcdf

  sdac = sunpy_frame(goes_file("go1520110607.fits"))
  window = sdac[(sdac.index >= start) & (sdac.index < start + datetime.timedelta(minutes=minutes))]
  path = tmp_path / f"sci_gxrs-l2-irrad_g{satellite}_d20110607_test.nc"
  shutil.copy(goes_file("sci_gxrs-l2-irrad_g15_d20131028_truncated.nc"), path)
  with h5netcdf.File(path, "r+") as nc:
    n = nc.variables["time"].shape[0]
    assert len(window) >= n
    seconds = (window.index[:n] - np.datetime64("1970-01-01")) / np.timedelta64(1, "s")
    nc.variables["time"][:] = np.asarray(seconds)
    nc.variables["b_flux"][:] = factor * window["xrsb"].to_numpy()[:n] / 0.7
    nc.variables["a_flux"][:] = window["xrsa"].to_numpy()[:n] / 0.85
  return path, window.iloc[:n]


def test_sdac_and_ncei_of_one_flare_give_the_same_class(tmp_path, xrs_20110607):
  path, window = _ncei_copy_of_sdac(tmp_path, T(2011, 6, 7, 6, 31), minutes=22)
  ncei = goes.read_xrs(path)
  # Operational (SDAC, scaled) and science (NCEI, true) files of one flare: one class.
  assert goes.flux_to_class(ncei.flux_long.max()) == goes.flux_to_class(window["xrsb"].max() / 0.7)
  start, end = T(2011, 6, 7, 6, 32), T(2011, 6, 7, 6, 50)
  assert ncei.window(start, end).max() == pytest.approx(xrs_20110607.window(start, end).max())
  # Declared the other way round, the same file would claim a class 43 % off.
  wrong = goes.read_xrs(path, to_true=1 / 0.7)
  assert goes.flux_to_class(wrong.flux_long.max()) != goes.flux_to_class(ncei.flux_long.max())


def test_primary_satellite_per_day(tmp_path):
  """Two satellites on one day: the one with most samples, or the one a table names."""
  sdac = goes_file("go1520110607.fits")  # GOES-15, the whole day
  other, _ = _ncei_copy_of_sdac(
    tmp_path, T(2011, 6, 7, 6, 31), minutes=22, satellite=14, factor=3.0
  )
  both = goes.read_xrs([sdac, other])
  assert both.primary["2011-06-07"] == 15
  alone = goes.read_xrs(sdac)
  np.testing.assert_array_equal(both.times, alone.times)
  np.testing.assert_allclose(both.flux_long, alone.flux_long)
  # A primary table naming GOES-14 for that day: only its samples are kept that day.
  named = goes.read_xrs([sdac, other], primary=[("2011-06-07", "2011-06-07", 14)])
  assert named.primary["2011-06-07"] == 14 and named.primary["2011-06-06"] == 15
  day = named.times.astype("datetime64[D]") == np.datetime64("2011-06-07")
  np.testing.assert_allclose(named.flux_long[day], goes.read_xrs(other).flux_long)
  # The 3x flux of the copy shows which satellite a window reads.
  t0, t1 = T(2011, 6, 7, 6, 35), T(2011, 6, 7, 6, 40)
  assert named.window(t0, t1).max() == pytest.approx(3.0 * both.window(t0, t1).max(), rel=1e-5)


def test_satellite_of_names_and_metadata():
  assert goes.satellite_of({}, "go1520110607.fits") == 15
  assert goes.satellite_of({}, "sci_xrsf-l2-avg1m_g16_d20210101.nc") == 16
  assert goes.satellite_of({"platform": "g18"}, "x.nc") == 18
  assert goes.satellite_of({"title": "GOES 1-15 XRS"}, "goes_13_leap_second.nc") == 13
  assert goes.satellite_of({"telescop": "GOES 15"}, "x.fits") == 15
  assert goes.satellite_of({"title": "GOES 1-15"}, "unknown.nc") == 0


def test_quality_flags_of_one_minute_files(tmp_path):
  import h5netcdf

  name = "sci_xrsf-l2-avg1m_g15_d20190102_truncated.nc"
  raw = sunpy_frame(goes_file(name))
  assert set(raw["xrsb_quality"]) == {16}  # a bit that is set on good samples
  assert len(goes.read_xrs(goes_file(name)).times) == len(raw)
  path = tmp_path / name
  shutil.copy(goes_file(name), path)
  with h5netcdf.File(path, "r+") as nc:
    flags = nc.variables["xrsb_flag"][:]
    flags[[3, 10, 20]] |= np.array([1, 2, 4], dtype=flags.dtype)  # bad_data, eclipse, ...
    nc.variables["xrsb_flag"][:] = flags
  series = goes.read_xrs(path)
  assert len(series.times) == len(raw) - 3
  assert not np.isin(raw.index.to_numpy()[[3, 10, 20]], series.times).any()


def test_xrs_errors_name_the_file(tmp_path):
  junk = tmp_path / "junk_xrs.nc"
  junk.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
  with pytest.raises(goes.XRSError, match="junk_xrs.nc"):
    goes.read_xrs(junk)
  with pytest.raises(goes.XRSError, match="to_true"):
    goes.true_scale_from_meta({"title": "some XRS file"}, "odd.nc")


def test_read_xrs_merges_files_in_time_order(xrs_20110607):
  names = ["sci_gxrs-l2-irrad_g15_d20131028_truncated.nc", "go1520110607.fits"]
  merged = goes.read_xrs([goes_file(n) for n in names])
  parts = [goes.read_xrs(goes_file(names[0])), xrs_20110607]
  assert len(merged.times) == sum(len(p.times) for p in parts)
  assert np.all(np.diff(merged.times) > np.timedelta64(0))
  assert merged.sources == tuple(names)
