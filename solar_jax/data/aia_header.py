"""The header side of reading an AIA 171 Å file: limits, reject reasons, time and WCS.

``aia.read_frame`` calls ``validate_header`` (instrument, wavelength,
quality, exposure and level keywords, the frame time) and ``geometry`` (disk
centre, radius and the pixel-to-world matrix of the linear WCS) before any
expensive work on the image. Every problem raises ``BadFrameError`` with one
of ``REASONS``, which the dataset builder counts in its report.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re

import astropy.units as u
import numpy as np

# Accepted 171 Å channel (WAVELNTH is an integer number of Å in AIA headers).
WAVELENGTH_ANGSTROM = 171.0

# AIA exposures run from a few ms (flare mode) to ~3 s; values outside this
# range are corrupt headers, and dividing by them would overflow float32.
MIN_EXPOSURE_S = 1e-4
MAX_EXPOSURE_S = 100.0

# Largest accepted image: AIA's full disk, 4096 x 4096 px. Checked from the
# header (NAXISn, or ZNAXISn of a tile-compressed image) before any data are
# read or decompressed, so a small file that claims a huge image (a gzip bomb)
# costs a header block of memory, not gigabytes.
MAX_IMAGE_SIDE = 4096
MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE**2
# Bytes of one HDU's data: the largest image as float64, twice over for a
# compressed table (GZIP-compressed floats may not shrink).
MAX_HDU_DATA_BYTES = 2 * 8 * MAX_IMAGE_PIXELS
# A header is at most this long (AIA headers take 3-6 blocks of 2880 bytes).
MAX_HEADER_BYTES = 100 * 2880
# HDUs looked at before the first image one (JSOC files have 1 or 2).
MAX_HDUS = 8
FITS_BLOCK = 2880

# Reasons a frame is rejected (stable strings, counted in the build report).
REASONS = (
  "corrupt",  # not a readable FITS file, truncated, no image HDU
  "not_2d",  # image data is not two-dimensional (or is empty)
  "missing_keyword",  # a required keyword is absent
  "bad_keyword",  # a keyword has a value that cannot be used
  "instrument",  # TELESCOP/INSTRUME names another instrument
  "wavelength",  # WAVELNTH is not 171
  "quality",  # QUALITY != 0
  "exposure",  # EXPTIME not in [MIN_EXPOSURE_S, MAX_EXPOSURE_S]
  "level",  # LVL_NUM < 1 (raw level-0 data)
  "geometry",  # singular WCS, disk not inside the image, absurd disk size
  "non_finite",  # NaN/inf on the solar disk (or after resampling)
  "out_of_range",  # |DN| > aia.MAX_ABS_DN anywhere
  "too_large",  # the header claims an image beyond MAX_IMAGE_SIDE / MAX_HDU_DATA_BYTES
  "calibration",  # aiapy registration / degradation failed on this file
  "synthetic",  # SYNTHETIC (a model's sample) or SIMULATE (the demo archive): not observed
  "img_type",  # IMG_TYPE other than LIGHT: a dark or other calibration frame, not the Sun
  "unit",  # BUNIT names neither DN nor DN/s: the intensity cannot be put in DN/s
)

# IMG_TYPE values of frames that show the Sun. AIA also takes DARK frames (shutter
# closed); those hold no solar signal. SYNTHETIC/SIMULATED are ``not_observed``'s.
_SKY_IMG_TYPES = ("LIGHT", "SYNTHETIC", "SIMULATED")

# Header cards that mark a frame as not observed: (keyword, values that mark it).
_NOT_OBSERVED = (
  ("SYNTHETIC", (True,)),  # solar_jax.ddpm.sample's FITS (a HIERARCH card)
  ("SIMULATE", (True,)),  # solar_jax.data.demo's archive
  ("DETECTOR", ("SYNTHETIC",)),
  ("IMG_TYPE", ("SYNTHETIC", "SIMULATED")),
)


def not_observed(header, source: str = "") -> str | None:
  """The cards that say a frame was made, not observed (joined), or None if none do.

  A damaged card is 'bad_keyword' (``BadFrameError``), as everywhere in the header.
  """
  found = []
  for key, marks in _NOT_OBSERVED:
    value = _value(header, key, source)
    if value is not None and (value in marks or str(value).strip().upper() in marks):
      found.append(f"{key}={value!r}")
  return ", ".join(found) or None


class BadFrameError(ValueError):
  """A FITS file that cannot become a training frame.

  Attributes:
    path: the file (as given).
    reason: one of ``REASONS``, a stable category for counting.
    detail: what exactly is wrong, with the keyword or value.
  """

  def __init__(self, path, reason: str, detail: str):
    self.path = str(path)
    self.reason = reason
    self.detail = detail
    super().__init__(f"{self.path}: rejected ({reason}): {detail}")


def _value(header, key: str, source: str, default=None):
  """A keyword's value; a damaged card (astropy parses lazily) is 'bad_keyword'."""
  try:
    return header[key] if key in header else default
  except Exception as e:  # astropy raises VerifyError/ValueError on broken cards.
    raise BadFrameError(source, "bad_keyword", f"{key} card cannot be parsed: {e}") from e


def _get_float(header, key: str, source: str, default=None) -> float:
  value = _value(header, key, source)
  if value is None and default is not None and key not in header:
    return float(default)
  if isinstance(value, bool) or not isinstance(value, int | float | str):
    raise BadFrameError(source, "bad_keyword", f"{key}={value!r} is not a number")
  try:
    return float(value)
  except ValueError as e:
    raise BadFrameError(source, "bad_keyword", f"{key}={value!r} is not a number") from e


def validate_header(header, source: str) -> tuple[dict, list[str]]:
  """Checks the keywords that decide whether a file is a usable 171 Å frame."""
  notes = []
  for key in ("WAVELNTH", "EXPTIME"):
    if key not in header:
      raise BadFrameError(source, "missing_keyword", f"{key} is missing")
  names = {k: str(_value(header, k, source, "")).strip() for k in ("TELESCOP", "INSTRUME")}
  names = {k: v for k, v in names.items() if v}
  if not names:
    notes.append("TELESCOP/INSTRUME missing, assumed AIA")
  for key, value in names.items():
    if "AIA" not in value.upper():
      raise BadFrameError(source, "instrument", f"{key}={value!r}, not AIA")
  img_type = _value(header, "IMG_TYPE", source)
  if img_type is not None and str(img_type).strip().upper() not in _SKY_IMG_TYPES:
    raise BadFrameError(
      source, "img_type", f"IMG_TYPE={img_type!r}: only LIGHT frames show the Sun"
    )
  wavelength = _get_float(header, "WAVELNTH", source)
  if wavelength != WAVELENGTH_ANGSTROM:
    raise BadFrameError(source, "wavelength", f"WAVELNTH={wavelength:g}, expected 171")
  if "QUALITY" in header:
    quality = _value(header, "QUALITY", source)
    if isinstance(quality, bool) or not isinstance(quality, int | float) or quality != 0:
      raise BadFrameError(source, "quality", f"QUALITY={quality!r} (only 0 is accepted)")
  else:
    notes.append("QUALITY missing, taken as 0")
  exposure = _get_float(header, "EXPTIME", source)
  if not (math.isfinite(exposure) and MIN_EXPOSURE_S <= exposure <= MAX_EXPOSURE_S):
    raise BadFrameError(
      source,
      "exposure",
      f"EXPTIME={exposure!r} s, must lie in [{MIN_EXPOSURE_S:g}, {MAX_EXPOSURE_S:g}] s",
    )
  if "LVL_NUM" in header:
    level = _get_float(header, "LVL_NUM", source)
    if not (math.isfinite(level) and level >= 1):
      raise BadFrameError(source, "level", f"LVL_NUM={level!r}: level-0 data are not calibrated")
  else:
    level = 1.0
    notes.append("LVL_NUM missing, taken as 1")
  time = obs_time(header, source)
  unit = image_unit(header, source)
  meta = dict(wavelength=wavelength, exposure=exposure, level=level, time=time, unit=unit)
  return meta, notes


def image_unit(header, source: str) -> str:
  """'DN' or 'DN/s': the unit of the pixels, from BUNIT.

  Level-1 files hold DN (BUNIT 'DN', or no BUNIT): the reader divides by EXPTIME.
  A file already divided by its exposure says so ('DN/s', 'DN / s' as sunpy writes
  after ``m / m.exposure_time``, 'DN s-1'; counts alike): it is kept as it is, never
  divided twice. Any other unit is 'unit' (``BadFrameError`` naming the card).
  """
  value = _value(header, "BUNIT", source)
  if value is None or not str(value).strip():
    return "DN"  # as in level-1 files
  try:
    unit = u.Unit(str(value).strip(), parse_strict="raise")
  except (ValueError, TypeError):
    unit = None
  if unit in (u.DN, u.ct):
    return "DN"
  if unit in (u.DN / u.s, u.ct / u.s):
    return "DN/s"
  raise BadFrameError(
    source,
    "unit",
    f"BUNIT={value!r} is neither DN (divided by EXPTIME here) nor DN/s (kept); "
    "fix the card if the image is in one of them",
  )


_TIME_RE = re.compile(
  r"^\s*(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2}(?:\.\d*)?)\s*(?:Z|UTC?|_UTC)?\s*$"
)


def obs_time(header, source: str, key: str | None = None) -> datetime.datetime:
  """The frame time: T_OBS (mid-exposure) when present, else DATE-OBS (naive UTC); or ``key``."""
  key = key or ("T_OBS" if "T_OBS" in header else "DATE-OBS")
  if key not in header:
    raise BadFrameError(source, "missing_keyword", "neither T_OBS nor DATE-OBS is present")
  value = _value(header, key, source)
  match = _TIME_RE.match(value) if isinstance(value, str) else None
  if match is None:
    raise BadFrameError(source, "bad_keyword", f"{key}={value!r} is not an ISO 8601 time")
  y, mo, d, h, mi = (int(g) for g in match.groups()[:5])
  # datetime has no leap second: 23:59:60.x is clamped to the last microsecond.
  seconds = min(float(match.group(6)), 59.999999)
  try:
    base = datetime.datetime(y, mo, d, h, mi)
  except ValueError as e:
    raise BadFrameError(source, "bad_keyword", f"{key}={value!r}: {e}") from e
  return base + datetime.timedelta(seconds=seconds)


# ----------------------------------------------------------- HDU sizes ---

# The start of a header card "NAXIS   = n" or "ZNAXIS  = n".
_AXIS_CARD = re.compile(rb"Z?NAXIS *=")
_MAX_AXES = 999  # The FITS standard's limit on NAXIS.


def check_axis_counts(raw: bytes, source: str) -> None:
  """Rejects absurd NAXIS/ZNAXIS values before astropy sees them.

  astropy loops over ``range(NAXIS)`` while parsing a header, so a corrupt
  card such as ``NAXIS = 1099511627776`` would hang the reader (and a whole
  build) instead of failing.
  """
  for match in _AXIS_CARD.finditer(raw):
    start = match.start()
    if start % 80:  # Header cards are 80-byte aligned; elsewhere it is text or data.
      continue
    card = raw[start : start + 80]
    keyword = card[:8].strip().decode()
    try:
      value = int(card[10:].split(b"/")[0])
    except ValueError:
      continue  # astropy reports a non-integer NAXIS itself
    if not 0 <= value <= _MAX_AXES:
      raise BadFrameError(
        source, "corrupt", f"header card {keyword} = {value} is outside 0..{_MAX_AXES}"
      )


def header_ends(block: bytes) -> bool:
  """Whether a 2880-byte header block holds the END card."""
  return any(block[i : i + 8] == b"END     " for i in range(0, len(block), 80))


def _cards(header: bytes) -> dict[str, bytes]:
  """{keyword: value text} of the header's 'KEY = value' cards (first one wins)."""
  cards = {}
  for i in range(0, len(header) - 79, 80):
    card = header[i : i + 80]
    if card[8:10] == b"= ":
      key = card[:8].decode("ascii", "replace").strip()
      cards.setdefault(key, card[10:].split(b"/")[0].strip())
  return cards


def _int_card(cards: dict, key: str, source: str, default: int | None = None) -> int:
  if key not in cards and default is not None:
    return default
  try:
    return int(cards[key])
  except (KeyError, ValueError) as e:
    raise BadFrameError(source, "corrupt", f"{key} is missing or not an integer") from e


def _check_image_size(cards: dict, prefix: str, source: str) -> None:
  """Each side and the pixel count of an image (``NAXIS`` or ``ZNAXIS`` cards) within limits."""
  count = _int_card(cards, prefix, source)
  sides = [_int_card(cards, f"{prefix}{i}", source) for i in range(1, count + 1)]
  pixels = math.prod(sides)
  if any(n < 0 for n in sides):
    raise BadFrameError(source, "corrupt", f"{prefix}n = {sides}: a negative axis length")
  if max(sides, default=0) > MAX_IMAGE_SIDE or pixels > MAX_IMAGE_PIXELS:
    raise BadFrameError(
      source,
      "too_large",
      f"header claims a {' x '.join(map(str, sides))} px image ({prefix}n); at most "
      f"{MAX_IMAGE_SIDE} px per side (AIA full disk) are accepted",
    )


def hdu_layout(header: bytes, source: str) -> tuple[bool, int]:
  """(holds an image, bytes of its data incl. padding) of one HDU from its raw header.

  Checks the image size limits first (``too_large``), so the caller can stop
  before reading or decompressing a byte of the data.
  """
  check_axis_counts(header, source)
  cards = _cards(header)
  naxis = _int_card(cards, "NAXIS", source)
  xtension = cards.get("XTENSION", b"").strip(b"' ").upper()
  compressed = xtension == b"BINTABLE" and cards.get("ZIMAGE", b"") == b"T"
  image = naxis > 0 and (xtension in (b"", b"IMAGE") or compressed)
  if image and not compressed:
    _check_image_size(cards, "NAXIS", source)
  if compressed:
    _check_image_size(cards, "ZNAXIS", source)
  if naxis == 0:
    return image, 0
  bitpix = _int_card(cards, "BITPIX", source)
  axes = [_int_card(cards, f"NAXIS{i}", source) for i in range(1, naxis + 1)]
  pcount = _int_card(cards, "PCOUNT", source, default=0)
  gcount = _int_card(cards, "GCOUNT", source, default=1)
  size = abs(bitpix) // 8 * gcount * (pcount + math.prod(axes))
  if size > MAX_HDU_DATA_BYTES or size < 0:
    raise BadFrameError(
      source,
      "too_large",
      f"an HDU holds {size} data bytes, more than the {MAX_HDU_DATA_BYTES} a frame may have",
    )
  return image, -(-size // FITS_BLOCK) * FITS_BLOCK


# ------------------------------------------------------------ geometry ---


@dataclasses.dataclass(frozen=True)
class Geometry:
  """Where the disk is in the input image and how input pixels map to arcsec."""

  world_per_pixel: np.ndarray  # [2, 2] arcsec per input pixel, (x, y) order
  sun_center_px: np.ndarray  # [2] 0-based (x, y) input pixel of disk centre
  rsun_arcsec: float


def _pc_matrix(header, cdelt: np.ndarray, source: str) -> np.ndarray:
  """Returns the [2, 2] matrix from pixel offsets to world offsets (arcsec)."""
  if any(f"CD{i}_{j}" in header for i in (1, 2) for j in (1, 2)):
    return np.array(
      [[_get_float(header, f"CD{i}_{j}", source, 0.0) for j in (1, 2)] for i in (1, 2)]
    )
  if any(f"PC{i}_{j}" in header for i in (1, 2) for j in (1, 2)):
    pc = np.array(
      [[_get_float(header, f"PC{i}_{j}", source, float(i == j)) for j in (1, 2)] for i in (1, 2)]
    )
  else:
    crota = _get_float(header, "CROTA2", source) if "CROTA2" in header else 0.0
    if "CROTA2" not in header and "CROTA1" in header:
      crota = _get_float(header, "CROTA1", source)
    if not math.isfinite(crota):
      raise BadFrameError(source, "bad_keyword", f"CROTA2={crota!r} is not finite")
    # FITS/sunpy convention for CROTA2 with possibly unequal CDELT.
    rho = math.radians(crota)
    lam = cdelt[1] / cdelt[0]
    pc = np.array([[math.cos(rho), -lam * math.sin(rho)], [math.sin(rho) / lam, math.cos(rho)]])
  return np.diag(cdelt) @ pc


def _rsun_arcsec(header, source: str) -> float:
  if "RSUN_OBS" in header:
    return _get_float(header, "RSUN_OBS", source)
  if "DSUN_OBS" in header:
    rsun_ref = _get_float(header, "RSUN_REF", source) if "RSUN_REF" in header else 6.957e8
    dsun = _get_float(header, "DSUN_OBS", source)
    if not dsun > rsun_ref:
      raise BadFrameError(source, "geometry", f"DSUN_OBS={dsun!r} m is not beyond the Sun")
    return math.degrees(math.asin(rsun_ref / dsun)) * 3600.0
  if "R_SUN" in header:  # pixels; only trusted when nothing else is there
    return _get_float(header, "R_SUN", source) * abs(_get_float(header, "CDELT1", source))
  raise BadFrameError(source, "missing_keyword", "RSUN_OBS, DSUN_OBS and R_SUN are all missing")


def geometry(header, shape: tuple[int, int], source: str) -> Geometry:
  """Disk centre, radius and pixel-to-world matrix from the header's linear WCS."""
  for key in ("CRPIX1", "CRPIX2", "CDELT1", "CDELT2"):
    if key not in header:
      raise BadFrameError(source, "missing_keyword", f"{key} is missing")
  for key in ("CUNIT1", "CUNIT2"):
    unit = str(_value(header, key, source, "arcsec")).strip().lower()
    if unit not in ("arcsec", "arcsecs", ""):
      raise BadFrameError(source, "bad_keyword", f"{key}={unit!r}, expected arcsec")
  crpix = np.array([_get_float(header, f"CRPIX{i}", source) for i in (1, 2)])
  crval = np.array(
    [_get_float(header, f"CRVAL{i}", source) if f"CRVAL{i}" in header else 0.0 for i in (1, 2)]
  )
  cdelt = np.array([_get_float(header, f"CDELT{i}", source) for i in (1, 2)])
  rsun = _rsun_arcsec(header, source)
  values = np.concatenate([crpix, crval, cdelt, [rsun]])
  if not np.all(np.isfinite(values)) or np.any(cdelt == 0):
    raise BadFrameError(source, "bad_keyword", f"non-finite or zero WCS values {values.tolist()}")
  with np.errstate(all="ignore"):
    matrix = _pc_matrix(header, cdelt, source)
    finite = bool(np.all(np.isfinite(matrix)))
    singular = np.linalg.svd(matrix, compute_uv=False) if finite else np.zeros(2)
    # Pixels must be (nearly) square and the matrix well conditioned.
    if not (np.all(np.isfinite(singular)) and singular[1] > 0 and singular[0] < 1.5 * singular[1]):
      raise BadFrameError(source, "geometry", f"unusable pixel-to-world matrix {matrix.tolist()}")
    # The disk centre is helioprojective (0, 0); world = M (p - crpix) + crval.
    center = crpix - 1.0 + np.linalg.solve(matrix, -crval)
    radius_px = float(np.float64(rsun) / np.sqrt(singular[0] * singular[1]))
  ny, nx = shape
  if not (math.isfinite(radius_px) and 1.0 <= radius_px <= 2.0 * max(nx, ny)):
    raise BadFrameError(
      source, "geometry", f"disk radius {radius_px:.3g} px is absurd for a {nx}x{ny} image"
    )
  if not np.all(np.isfinite(center)):
    raise BadFrameError(source, "geometry", f"disk centre {center.tolist()} is not finite")
  if not (0 <= center[0] <= nx - 1 and 0 <= center[1] <= ny - 1):
    raise BadFrameError(
      source, "geometry", f"disk centre {center.round(1).tolist()} px lies outside the image"
    )
  return Geometry(world_per_pixel=matrix, sun_center_px=center, rsun_arcsec=rsun)


# sunpy's default solar radius (sunpy.sun.constants.radius) when RSUN_REF is absent.
RSUN_REF_DEFAULT_M = 6.957e8


def observer(header, source: str) -> dict:
  """Where the frame was seen from: what rebuilds its sunpy Map (``frame_geometry``).

  {'rsun_obs': arcsec (the radius ``geometry`` scales by), 'rsun_ref': m (RSUN_REF, else
  sunpy's default), 'dsun_obs': m (DSUN_OBS, else from RSUN_OBS and RSUN_REF),
  'hgln_obs', 'hglt_obs': Stonyhurst degrees, 'haex_obs', 'haey_obs', 'haez_obs':
  heliocentric mean ecliptic, m (sunpy's AIAMap places the observer by these first; NaN
  when the header has none), 'date_obs': DATE-OBS as ISO (the frame time when absent)}.
  A malformed value is 'bad_keyword'.
  """
  rsun_obs = _rsun_arcsec(header, source)
  rsun_ref = _get_float(header, "RSUN_REF", source, RSUN_REF_DEFAULT_M)
  dsun = rsun_ref / math.sin(math.radians(rsun_obs / 3600.0))
  dsun = _get_float(header, "DSUN_OBS", source, dsun)
  keys = ("HGLN_OBS", "HGLT_OBS", "HAEX_OBS", "HAEY_OBS", "HAEZ_OBS")
  place = {k.lower(): _get_float(header, k, source, math.nan) for k in keys}
  outside = math.isfinite(dsun) and dsun > rsun_ref > 0
  if not outside or abs(place["hglt_obs"]) > 90 or any(math.isinf(v) for v in place.values()):
    raise BadFrameError(
      source,
      "bad_keyword",
      f"observer DSUN_OBS={dsun!r} m, RSUN_REF={rsun_ref!r} m, "
      + ", ".join(f"{k.upper()}={v!r}" for k, v in place.items())
      + " is not a place outside the Sun",
    )
  date = obs_time(header, source, "DATE-OBS" if "DATE-OBS" in header else None)
  return dict(
    rsun_obs=rsun_obs,
    rsun_ref=rsun_ref,
    dsun_obs=dsun,
    **place,
    date_obs=date.isoformat(timespec="milliseconds"),
  )
