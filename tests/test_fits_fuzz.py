"""Fuzzing read_frame with mutations of sunpy's real AIA 171 Å file.

Whatever is done to the header, the data or the bytes, ``read_frame_bytes``
returns a finite frame of the right shape or raises ``BadFrameError`` with a
known reason; any other exception is a bug. Files are built in memory
(``read_frame_bytes`` is what ``read_frame`` calls after reading the file).

Examples are drawn afresh on every run (no database, not derandomised), so each CI
run explores new mutations: 700 byte and 300 data mutations a run (halved from 1400
and 600 to keep ``make test`` within its time; ~10 s of CPU).
"""

import functools
import io
import warnings

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from solar_jax.data import aia

SIZE = 24

# Keywords read_frame looks at, plus a few it must ignore.
KEYS = (
  "WAVELNTH", "EXPTIME", "QUALITY", "T_OBS", "DATE-OBS", "CRPIX1", "CRPIX2", "CDELT1",
  "CDELT2", "CRVAL1", "CRVAL2", "CROTA2", "RSUN_OBS", "DSUN_OBS", "RSUN_REF", "R_SUN",
  "LVL_NUM", "TELESCOP", "INSTRUME", "CUNIT1", "CUNIT2", "PC1_1", "PC1_2", "PC2_1",
  "PC2_2", "BITPIX", "NAXIS", "NAXIS1", "BSCALE", "BZERO", "DATAMEAN",
)  # fmt: skip

SETTINGS = dict(
  deadline=None,
  database=None,
  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@functools.cache
def real():
  """(data, header, file bytes) of the real file; cached, not a fixture, so
  hypothesis does not print 150 kB of it with every failure."""
  import sunpy.data.test

  path = sunpy.data.test.get_test_filepath("aia_171_level1.fits")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    with fits.open(path) as hdul:
      header = hdul[0].header.copy()
      data = np.array(hdul[0].data, dtype=np.float64)
  del header["BLANK"]
  return data, header, to_bytes(data, header)


def to_bytes(data, header) -> bytes:
  buffer = io.BytesIO()
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    fits.PrimaryHDU(data, header).writeto(buffer, output_verify="silentfix")
  return buffer.getvalue()


def check(raw: bytes):
  """The property: a valid frame or a BadFrameError, nothing else."""
  try:
    frame = aia.read_frame_bytes(raw, source="fuzz.fits", image_size=SIZE)
  except aia.BadFrameError as e:
    assert e.reason in aia.REASONS, e.reason
    assert "fuzz.fits" in str(e)
    event(f"rejected: {e.reason}")
    return e.reason
  assert frame.image.shape == (SIZE, SIZE) and frame.image.dtype == np.float32
  assert np.all(np.isfinite(frame.image))
  assert frame.exposure > 0 and frame.wavelength == 171.0
  event("accepted")
  return "ok"


values = st.one_of(
  st.integers(-(2**40), 2**40),
  st.floats(allow_nan=False, allow_infinity=False, width=64),
  st.sampled_from([0, 171, 193, -1, 1e-30, 1e30, 0.6, 2.0, 64.5, 971.8, 1.5e11]),
  st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
  st.sampled_from(["2011-02-15T00:00:01Z", "2016-12-31T23:59:60.5", "arcsec", "deg", "AIA"]),
  st.booleans(),
)


@settings(max_examples=50, **SETTINGS)
@given(
  deletions=st.lists(st.sampled_from(KEYS), max_size=4),
  changes=st.lists(st.tuples(st.sampled_from(KEYS), values), max_size=4),
)
def test_header_mutations(deletions, changes):
  data, header, _ = real()
  header = header.copy()
  for key in deletions:
    header.remove(key, ignore_missing=True)
  for key, value in changes:
    if key == "NAXIS" and not (isinstance(value, int) and 0 <= value <= 999):
      continue  # astropy's writer loops over range(NAXIS): such files are made below
    try:
      header[key] = value
    except (ValueError, TypeError):  # astropy refuses some values in headers
      pass
  try:
    raw = to_bytes(data, header)
  except Exception:  # astropy cannot even write this header: nothing to read
    return
  check(raw)


@settings(max_examples=300, **SETTINGS)
@given(
  positions=st.lists(st.tuples(st.integers(0, 127), st.integers(0, 127)), max_size=6),
  fill=st.sampled_from([np.nan, np.inf, -np.inf, 1e300, -1e300, 1e7, -40.0, 0.0]),
  scale=st.sampled_from([1.0, 0.0, -1.0, 1e-300, 1e5, 1e30]),
  dtype=st.sampled_from(["float64", "float32", "int16", "int32", "uint8"]),
)
@pytest.mark.slow
def test_data_mutations(positions, fill, scale, dtype):
  data, header, _ = real()
  data = data * scale
  for row, col in positions:
    data[row, col] = fill
  with np.errstate(invalid="ignore", over="ignore"):
    if np.dtype(dtype).kind in "iu":
      info = np.iinfo(dtype)
      data = np.clip(np.nan_to_num(data), info.min, info.max).astype(dtype)
    else:
      data = data.astype(dtype)
  check(to_bytes(data, header))


@settings(max_examples=700, **SETTINGS)
@given(
  flips=st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 255)), max_size=8),
  keep=st.one_of(st.none(), st.integers(0, 10**9)),
  header_only=st.booleans(),
)
@pytest.mark.slow
def test_byte_mutations(flips, keep, header_only):
  _, header, raw = real()
  raw = bytearray(raw)
  span = len(header.tostring()) if header_only else len(raw)
  for position, mask in flips:
    raw[position % span] ^= mask
  if keep is not None:
    raw = raw[: keep % (len(raw) + 1)]
  check(bytes(raw))


@pytest.mark.parametrize("keyword", ["NAXIS", "ZNAXIS"])
@pytest.mark.parametrize("value", [1000, 2**40, -3])
def test_absurd_axis_count_is_rejected_not_hung(keyword, value):
  """A corrupt NAXIS card made astropy loop over range(NAXIS) for hours."""
  _, _, raw = real()
  raw = bytearray(raw)
  at = raw.find(b"NAXIS   =")
  assert at % 80 == 0
  raw[at : at + 80] = f"{keyword:<8}= {value:>20}".ljust(80).encode()
  with pytest.raises(aia.BadFrameError, match=f"{keyword} = {value}"):
    aia.read_frame_bytes(bytes(raw), source="fuzz.fits", image_size=SIZE)


def test_unmutated_file_is_accepted_and_a_cut_one_rejected():
  """Guards the fuzz tests against only ever exercising one branch."""
  _, _, raw = real()
  frame = aia.read_frame_bytes(raw, source="fuzz.fits", image_size=SIZE)
  assert np.all(np.isfinite(frame.image)) and frame.image.max() > 0
  with pytest.raises(aia.BadFrameError, match="corrupt"):
    aia.read_frame_bytes(raw[:5000], source="fuzz.fits", image_size=SIZE)
