"""Tests of solar_jax.data.aia on sunpy's real AIA 171 Å level-1 file (128×128)."""

import datetime
import gzip
import math
import warnings

import numpy as np
import pytest
from astropy.io import fits

from solar_jax.data import aia

# The real file has a BLANK keyword, which astropy flags for float data.
pytestmark = pytest.mark.filterwarnings("ignore:.*BLANK.*")


@pytest.fixture(scope="module")
def aia_path():
  import sunpy.data.test

  return sunpy.data.test.get_test_filepath("aia_171_level1.fits")


@pytest.fixture(scope="module")
def aia_hdu(aia_path):
  with fits.open(aia_path) as hdul:
    header = hdul[0].header.copy()
    del header["BLANK"]  # Only valid for integer data; astropy warns on it.
    return np.array(hdul[0].data, dtype=np.float64), header


def write(path, data, header, **kwargs):
  fits.PrimaryHDU(data, header).writeto(path, overwrite=True, **kwargs)
  return path


def disk_area_stats(image, threshold):
  """Centroid (row, col) and equivalent radius of pixels above threshold."""
  mask = image > threshold
  rows, cols = np.nonzero(mask)
  return rows.mean(), cols.mean(), math.sqrt(mask.sum() / math.pi)


def test_real_file_metadata_and_shape(aia_path):
  frame = aia.read_frame(aia_path, image_size=64)
  assert frame.image.shape == (64, 64) and frame.image.dtype == np.float32
  assert np.all(np.isfinite(frame.image))
  assert frame.time == datetime.datetime(2011, 2, 15, 0, 0, 1, 340000)  # T_OBS
  assert frame.exposure == pytest.approx(2.000191)
  assert frame.wavelength == 171.0 and frame.level == 1.0
  assert frame.source == "aia_171_level1.fits"
  assert frame.disk_radius_px == pytest.approx(0.4 * 64)
  assert frame.notes == ()


@pytest.mark.parametrize("image_size", [48, 128, 200])
def test_dn_per_second_conserves_disk_integrated_flux(aia_hdu, aia_path, image_size):
  data, header = aia_hdu
  frame = aia.read_frame(aia_path, image_size=image_size)
  # Integrate over the disk and inner corona (1.2 R_sun) in arcsec^2 on both sides.
  rsun_px_in = header["RSUN_OBS"] / header["CDELT1"]
  yy, xx = np.mgrid[0:128, 0:128]
  cx = header["CRPIX1"] - 1 - header["CRVAL1"] / header["CDELT1"]
  cy = header["CRPIX2"] - 1 - header["CRVAL2"] / header["CDELT2"]
  inside_in = np.hypot(xx - cx, yy - cy) <= 1.2 * rsun_px_in
  raw_total = data[inside_in].sum() * header["CDELT1"] ** 2 / header["EXPTIME"]
  scale_out = header["RSUN_OBS"] / frame.disk_radius_px
  c = (image_size - 1) / 2
  yy, xx = np.mgrid[0:image_size, 0:image_size]
  inside_out = np.hypot(xx - c, yy - c) <= 1.2 * frame.disk_radius_px
  out_total = frame.image[inside_out].sum(dtype=np.float64) * scale_out**2
  assert out_total == pytest.approx(raw_total, rel=0.01)


def test_exposure_normalisation_is_linear(aia_hdu, tmp_path):
  data, header = aia_hdu
  header2 = header.copy()
  header2["EXPTIME"] = header["EXPTIME"] * 4
  a = aia.read_frame(write(tmp_path / "a.fits", data, header), image_size=32)
  b = aia.read_frame(write(tmp_path / "b.fits", data, header2), image_size=32)
  np.testing.assert_allclose(b.image * 4, a.image, rtol=1e-6)


@pytest.mark.parametrize("image_size,radius", [(64, None), (48, 15.0), (100, 45.0)])
def test_disk_centred_with_requested_radius(aia_path, tmp_path, image_size, radius):
  """A uniform disk drawn by sunpy's own WCS lands centred with the asked radius."""
  import sunpy.map

  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    smap = sunpy.map.Map(aia_path)
    on_disk = sunpy.map.coordinate_is_on_solar_disk(sunpy.map.all_coordinates_from_map(smap))
  header = fits.getheader(aia_path)
  del header["BLANK"]
  path = write(tmp_path / "disk.fits", on_disk.astype(np.float64) * 1000.0, header)
  frame = aia.read_frame(path, image_size=image_size, disk_radius_px=radius)
  expected_radius = radius or 0.4 * image_size
  # Half the disk level marks the edge of the (interpolated) disk.
  row, col, r = disk_area_stats(frame.image * header["EXPTIME"], 500.0)
  centre = (image_size - 1) / 2
  assert abs(row - centre) < 0.15 and abs(col - centre) < 0.15
  assert abs(r - expected_radius) < 1.0


def _rotated_copy(aia_path, tmp_path, angle_deg, use_crota):
  """A real frame rotated on the detector by sunpy, with a header that says so."""
  import astropy.units as u
  import sunpy.map

  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    rotated = sunpy.map.Map(aia_path).rotate(angle=angle_deg * u.deg, order=1, missing=0.0)
    header = rotated.fits_header
  if use_crota:
    # The same orientation in the older CROTA2 convention.
    header["CROTA2"] = math.degrees(math.atan2(header["PC2_1"], header["PC1_1"]))
    for key in ("PC1_1", "PC1_2", "PC2_1", "PC2_2"):
      del header[key]
  header.pop("BLANK", None)
  return write(tmp_path / f"rot{angle_deg}_{use_crota}.fits", rotated.data, header)


@pytest.mark.parametrize("angle,use_crota", [(30.0, False), (-75.0, True), (180.0, True)])
def test_north_up_for_rotated_input(aia_path, tmp_path, angle, use_crota):
  from scipy import ndimage

  reference = aia.read_frame(aia_path, image_size=64).image
  frame = aia.read_frame(_rotated_copy(aia_path, tmp_path, angle, use_crota), image_size=64).image

  def error(image):
    return np.abs(image - reference).mean() / reference.mean()

  # The output matches the unrotated frame better than any slightly turned
  # version of itself does: the orientation is right to within a degree (a
  # wrong sign would be off by 2 * angle).
  turns = [-3.0, -1.5, 1.5, 3.0]
  turned = [error(ndimage.rotate(frame, a, reshape=False, order=1)) for a in turns]
  assert error(frame) < 0.1
  assert error(frame) < min(turned)
  assert np.corrcoef(frame.ravel(), reference.ravel())[0, 1] > 0.98


def test_input_crota2_of_real_file_is_applied(aia_hdu, tmp_path):
  """The real file's CROTA2 (0.019°) matters little, a large one a lot; both are undone."""
  data, header = aia_hdu
  base = aia.read_frame(write(tmp_path / "a.fits", data, header), image_size=64).image
  header2 = header.copy()
  header2["CROTA2"] = header["CROTA2"] + 90.0
  turned = aia.read_frame(write(tmp_path / "b.fits", data, header2), image_size=64).image
  # A 90° change of CROTA2 on the same pixels rotates the output by 90°.
  errors = [np.abs(np.rot90(turned, k) - base).mean() / base.mean() for k in range(4)]
  best = int(np.argmin(errors))
  assert best in (1, 3)
  assert errors[best] < 0.1 and errors[best] < 0.3 * min(
    errors[(best + 1) % 4], errors[(best + 2) % 4]
  )


def test_direct_mapping_agrees_with_aiapy_register(aia_path):
  direct = aia.read_frame(aia_path, image_size=64, register="direct").image
  registered = aia.read_frame(aia_path, image_size=64, register="aiapy").image
  assert np.corrcoef(direct.ravel(), registered.ravel())[0, 1] > 0.999
  assert registered.sum() == pytest.approx(direct.sum(), rel=0.005)


def test_register_choice():
  assert aia.uses_aiapy_register("auto", (4096, 4096), 1.0)
  assert not aia.uses_aiapy_register("auto", (4096, 4096), 1.5)  # already registered
  assert not aia.uses_aiapy_register("auto", (1024, 1024), 1.0)  # binned: direct mapping
  assert aia.uses_aiapy_register("aiapy", (128, 128), 1.0)
  assert not aia.uses_aiapy_register("direct", (4096, 4096), 1.0)


def test_compressed_files_read_like_plain(aia_hdu, tmp_path):
  data, header = aia_hdu
  ints = np.round(data).astype(np.int32)  # RICE is lossless on integers.
  plain = aia.read_frame(write(tmp_path / "p.fits", ints, header), image_size=32)
  gz = tmp_path / "p.fits.gz"
  gz.write_bytes(gzip.compress((tmp_path / "p.fits").read_bytes()))
  rice = tmp_path / "r.fits"
  hdul = fits.HDUList(
    [fits.PrimaryHDU(), fits.CompImageHDU(ints, header, compression_type="RICE_1")]
  )
  hdul.writeto(rice)
  for path in (gz, rice):
    np.testing.assert_array_equal(aia.read_frame(path, image_size=32).image, plain.image)


# ------------------------------------------------------------ bad files ---


def _mutations():
  def set_key(key, value):
    def f(data, header):
      header[key] = value
      return data, header

    return f

  def del_keys(*keys):
    def f(data, header):
      for key in keys:
        del header[key]
      return data, header

    return f

  def nan_at(row, col):
    def f(data, header):
      data = data.copy()
      data[row, col] = np.nan
      return data, header

    return f

  return {
    "wavelength": ("wavelength", set_key("WAVELNTH", 193)),
    "quality": ("quality", set_key("QUALITY", 1073741824)),
    "exposure_zero": ("exposure", set_key("EXPTIME", 0.0)),
    "exposure_negative": ("exposure", set_key("EXPTIME", -2.0)),
    "exposure_absurd": ("exposure", set_key("EXPTIME", 1e-30)),
    "no_wavelength": ("missing_keyword", del_keys("WAVELNTH")),
    "no_cdelt": ("missing_keyword", del_keys("CDELT1")),
    "no_time": ("missing_keyword", del_keys("T_OBS", "DATE-OBS")),
    "no_radius": ("missing_keyword", del_keys("RSUN_OBS", "DSUN_OBS", "R_SUN")),
    "bad_time": ("bad_keyword", set_key("T_OBS", "yesterday")),
    "string_exptime": ("bad_keyword", set_key("EXPTIME", "two")),
    "instrument": ("instrument", set_key("TELESCOP", "SOHO/EIT")),
    "level0": ("level", set_key("LVL_NUM", 0.0)),
    "off_image": ("geometry", set_key("CRPIX1", 500.0)),
    "tiny_disk": ("geometry", set_key("RSUN_OBS", 1.0)),
    "nan_disk_centre": ("non_finite", nan_at(64, 64)),
    "inf_on_disk": ("non_finite", lambda d, h: (np.where(np.eye(128, dtype=bool), np.inf, d), h)),
    "huge_value": (
      "out_of_range",
      lambda d, h: (d + 1e9 * (np.arange(d.size) == 7).reshape(d.shape), h),
    ),
    "cube": ("not_2d", lambda d, h: (np.stack([d, d]), h)),
  }


@pytest.mark.parametrize("name", sorted(_mutations()))
def test_bad_header_or_data_gives_reason(aia_hdu, tmp_path, name):
  reason, mutate = _mutations()[name]
  data, header = mutate(aia_hdu[0].copy(), aia_hdu[1].copy())
  path = write(tmp_path / f"{name}.fits", data, header)
  with pytest.raises(aia.BadFrameError) as info:
    aia.read_frame(path, image_size=32)
  assert info.value.reason == reason
  assert info.value.reason in aia.REASONS
  assert f"{name}.fits" in str(info.value) and reason in str(info.value)
  assert info.value.path == str(path)


@pytest.mark.parametrize("keep", [0, 100, 2880, 20000, -1000, -1])
def test_truncated_file_is_corrupt(aia_path, tmp_path, keep):
  raw = open(aia_path, "rb").read()
  path = tmp_path / "cut.fits"
  path.write_bytes(raw[:keep])
  with pytest.raises(aia.BadFrameError) as info:
    aia.read_frame(path, image_size=32)
  assert info.value.reason == "corrupt"


def test_random_bytes_and_broken_gzip_are_corrupt(tmp_path):
  rng = np.random.default_rng(0)
  junk = tmp_path / "junk.fits"
  junk.write_bytes(rng.bytes(5000))
  broken_gz = tmp_path / "junk.fits.gz"
  broken_gz.write_bytes(b"\x1f\x8b" + rng.bytes(300))
  for path in (junk, broken_gz, tmp_path / "absent.fits"):
    with pytest.raises(aia.BadFrameError) as info:
      aia.read_frame(path, image_size=32)
    assert info.value.reason == "corrupt"


def test_nan_off_disk_becomes_zero_and_missing_quality_is_noted(aia_hdu, tmp_path):
  data, header = aia_hdu[0].copy(), aia_hdu[1].copy()
  data[:3, :] = np.nan  # bottom rows: far off the disk
  del header["QUALITY"]
  frame = aia.read_frame(
    write(tmp_path / "x.fits", data, header), image_size=128, disk_radius_px=50.66
  )
  assert np.all(np.isfinite(frame.image))
  assert np.all(frame.image[:2, :] == 0.0)
  assert any("QUALITY" in note for note in frame.notes)


def test_find_fits_files(tmp_path):
  names = ["b/x.fits", "a/deep/er/y.fits.gz", "z.fts", "c/Q.FITS", "notes.txt", "d/img.png"]
  for name in names:
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_bytes(b"")
  found = aia.find_fits_files(tmp_path)
  assert [p.relative_to(tmp_path).as_posix() for p in found] == sorted(
    ["b/x.fits", "a/deep/er/y.fits.gz", "z.fts", "c/Q.FITS"]
  )
  with pytest.raises(FileNotFoundError):
    aia.find_fits_files(tmp_path / "missing")


# --------------------------------------------------------- degradation ---


def test_degradation_with_a_local_table_matches_aiapy(aia_path):
  import pathlib

  import aiapy
  import astropy.units as u
  from aiapy.calibrate import degradation
  from aiapy.calibrate.util import get_correction_table
  from astropy.time import Time

  # aiapy ships this (older, V8) response table with its tests: offline.
  table = (
    pathlib.Path(aiapy.__file__).parent / "tests/data/aia_V8_20171210_050627_response_table.txt"
  )
  plain = aia.read_frame(aia_path, image_size=32)
  corrected = aia.read_frame(aia_path, image_size=32, degradation=True, correction_table=table)
  factor = degradation(
    171 * u.angstrom, Time(plain.time), correction_table=get_correction_table(table)
  )
  factor = float(np.asarray(factor.to_value(u.dimensionless_unscaled)).reshape(-1)[0])
  assert 0.3 < factor < 1.0  # 171 Å lost sensitivity by 2011
  np.testing.assert_allclose(corrected.image, plain.image / factor, rtol=1e-5)


def test_degradation_without_table_offline_says_what_to_do(aia_path, monkeypatch):
  import aiapy.calibrate.util

  def offline(source):
    raise ConnectionError("no network")

  monkeypatch.setattr(aiapy.calibrate.util, "get_correction_table", offline)
  aia._load_correction_table.cache_clear()
  with pytest.raises(aia.DegradationTableError, match="correction_table="):
    aia.read_frame(aia_path, image_size=32, degradation=True)
  aia._load_correction_table.cache_clear()


# ------------------------------------------------------------ units (BUNIT) ---


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_file_sunpy_wrote_in_dn_per_second_reads_like_the_original(aia_path, tmp_path):
  """``m / m.exposure_time`` saved by sunpy (BUNIT 'DN / s') is not divided a second time."""
  import sunpy.map

  original = sunpy.map.Map(aia_path)
  assert "BUNIT" not in original.fits_header  # a level-1 file: DN, no BUNIT
  normalised = original / original.exposure_time
  normalised.save(tmp_path / "dn_per_s.fits")
  assert fits.getheader(tmp_path / "dn_per_s.fits")["BUNIT"] == "DN / s"
  want = aia.read_frame(aia_path, image_size=64)
  got = aia.read_frame(tmp_path / "dn_per_s.fits", image_size=64)
  np.testing.assert_allclose(got.image, want.image, rtol=1e-6, atol=1e-6)
  assert got.exposure == want.exposure


@pytest.mark.parametrize(
  "bunit, scale", [("DN", 1.0), ("dn", 1.0), ("DN/s", 2.0), ("DN s-1", 2.0), ("ct / s", 2.0)]
)
def test_bunit_decides_whether_the_exposure_is_divided(aia_hdu, aia_path, tmp_path, bunit, scale):
  data, header = aia_hdu[0].copy(), aia_hdu[1].copy()
  header["EXPTIME"] = 2.0
  header["BUNIT"] = bunit
  got = aia.read_frame(write(tmp_path / "f.fits", data, header), image_size=32).image
  del header["BUNIT"]
  level1 = aia.read_frame(write(tmp_path / "g.fits", data, header), image_size=32).image
  np.testing.assert_allclose(got, scale * level1, rtol=1e-6)


@pytest.mark.parametrize(
  "card, value, reason",
  [
    ("BUNIT", "erg / (cm2 s)", "unit"),
    ("BUNIT", "DN/sec", "unit"),  # not a unit astropy reads: refused, not guessed
    ("BUNIT", "MJy/sr", "unit"),
    ("IMG_TYPE", "DARK", "img_type"),
  ],
)
def test_unknown_unit_or_a_dark_frame_is_refused_naming_file_and_card(
  aia_hdu, tmp_path, card, value, reason
):
  data, header = aia_hdu[0].copy(), aia_hdu[1].copy()
  header[card] = value
  path = write(tmp_path / "odd.fits", data, header)
  with pytest.raises(aia.BadFrameError) as info:
    aia.read_frame(path, image_size=32)
  assert info.value.reason == reason and reason in aia.REASONS
  assert str(path) in str(info.value) and f"{card}={value!r}" in str(info.value)
  assert "\n" not in str(info.value)
