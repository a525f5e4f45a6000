"""Reads one SDO/AIA 171 Å FITS file into a validated, centred, north-up frame.

``read_frame`` is the only door through which AIA files enter the dataset. It
checks the header and the data before any expensive work, maps the image with
one interpolation onto a square grid in which the solar disk is centred with a
fixed radius and solar north is up, and divides by the exposure time (DN/s)
unless BUNIT says the file is in DN/s already (``aia_header.image_unit``).
Every problem with a file raises ``BadFrameError`` with a stable ``reason``
that the dataset builder counts in its report; no other exception type escapes
for a bad file.

Geometry. The output pixel ``(row, col)`` (0-based) lies at helioprojective
``(Ty, Tx) = scale_out * ((row, col) - (S - 1) / 2)`` with ``scale_out =
RSUN_OBS / disk_radius_px`` arcsec per pixel, so the disk centre is the array
centre and ``row`` grows northwards (FITS convention: row 0 is the bottom when
plotted with ``origin='lower'``, as sunpy does). The input side of the mapping
is the file's linear WCS (``CRPIX``, ``CRVAL``, ``CDELT`` and ``PCi_j``,
``CDi_j`` or ``CROTA2``); the gnomonic (TAN) projection is linearised, which is
exact to about 1e-5 of the disk radius. When the output is coarser than the
input the image is first block-averaged by the nearest integer factor so the
bilinear interpolation runs near 1:1 and does not alias. The result agrees with sunpy's
``GenericMap.rotate(recenter=True, scale=...)`` followed by cropping (tests
check it), in one resampling instead of two and without building a map, which
keeps fuzzing thousands of files cheap.

Full-resolution level-1 images (4096×4096) are registered with
``aiapy.calibrate.register`` first when ``register='auto'`` (the standard
level-1.5 step); the mapping above then only scales and crops.

Times are naive ``datetime`` objects in UTC (the flare lists and NumPy's
``datetime64`` are naive too). The frame time is ``T_OBS`` (mid-exposure) when
present, else ``DATE-OBS`` (exposure start).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import io
import math
import os
import pathlib
import warnings
import zlib

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.time import Time
from etils import epath
from scipy import ndimage

from solar_jax import errors
from solar_jax.data import aia_header

# Re-exported: callers catch ``aia.BadFrameError`` and count ``aia.REASONS``
# without knowing which module checks the header.
BadFrameError = aia_header.BadFrameError
REASONS = aia_header.REASONS

# Output disk radius as a fraction of the image side. A full-resolution AIA
# frame has r_sun ~ 1600 of 4096 px (0.39); 0.40 keeps that framing, so the
# whole output field of view (1.25 R_sun at the edge centres) lies inside the
# AIA field of view and no corner of the output is padded in practice.
DEFAULT_DISK_FRACTION = 0.40

# Level-1 AIA pixels are 14-bit counts after flat fielding: anything beyond
# this magnitude is a corrupted value, not a bright flare.
MAX_ABS_DN = 1.0e6

FITS_SUFFIXES = (".fits", ".fits.gz", ".fts", ".fts.gz", ".fit")


class DegradationTableError(errors.UserError, RuntimeError):
  """The aiapy degradation correction table is not available (a set-up problem)."""


@dataclasses.dataclass(frozen=True)
class Frame:
  """One validated AIA 171 Å image on the common grid.

  Attributes:
    image: float32 [S, S] in DN/s (exposure normalised), disk centred at
      ((S-1)/2, (S-1)/2) with radius ``disk_radius_px``, solar north towards
      increasing row index.
    time: naive datetime in UTC (T_OBS, else DATE-OBS).
    exposure: EXPTIME in s.
    wavelength: WAVELNTH in Å.
    source: the file name (no directory).
    level: LVL_NUM of the input (1.0 when absent, see ``notes``).
    disk_radius_px: the disk radius of ``image`` in pixels.
    notes: non-fatal remarks (e.g. 'QUALITY missing, taken as 0').
    observer: where it was seen from (``aia_header.observer``: RSUN_OBS, DSUN_OBS, ...).
  """

  image: np.ndarray
  time: datetime.datetime
  exposure: float
  wavelength: float
  source: str
  level: float
  disk_radius_px: float = 0.0
  notes: tuple[str, ...] = ()
  observer: dict = dataclasses.field(default_factory=dict)


def _path(path):
  """pathlib.Path for local paths, etils.epath.Path for URLs such as gs://."""
  if "://" in str(path):
    return epath.Path(path)
  return pathlib.Path(path)


def find_fits_files(root) -> list[pathlib.Path]:
  """All FITS files (.fits, .fits.gz, .fts, .fts.gz, .fit) under ``root``, any depth, sorted.

  Local roots give ``pathlib.Path`` objects, ``gs://`` roots ``epath.Path``.
  Directory symlinks are followed once each (``scan_fits_files``).
  """
  return scan_fits_files(root)[0]


def scan_fits_files(root) -> tuple[list[pathlib.Path], list[tuple[pathlib.Path, str]]]:
  """(FITS files under ``root``, sorted; (entry, why) of entries not followed).

  A local scan follows symbolic links to directories, each real directory
  once: a link back into a scanned directory (a loop, or a second link to the
  same place) and a dangling link are not followed and are listed instead, so
  a manual dir made of links loses no frame without a word and cannot hang
  the scan.
  """
  root = _path(root)
  if not root.is_dir():
    raise FileNotFoundError(f"AIA directory {root} does not exist or is not a directory.")
  if not isinstance(root, pathlib.Path):  # gs:// and other object stores have no links
    found = [p for p in root.rglob("*") if p.name.lower().endswith(FITS_SUFFIXES) and p.is_file()]
    return sorted(found, key=str), []
  found, not_followed = [], []
  seen = {os.path.realpath(root)}
  pending = [root]
  while pending:
    directory = pending.pop()
    try:
      entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as e:
      not_followed.append((directory, f"cannot list the directory: {e.strerror or e}"))
      continue
    for entry in entries:
      path = pathlib.Path(entry.path)
      if entry.is_dir(follow_symlinks=True):
        real = os.path.realpath(path)
        if real in seen:
          not_followed.append((path, f"symlink to {real}, a directory already scanned (a loop?)"))
        else:
          seen.add(real)
          pending.append(path)
      elif entry.is_symlink() and not entry.is_file(follow_symlinks=True):
        if entry.name.lower().endswith(FITS_SUFFIXES) or not os.path.exists(path):
          not_followed.append((path, f"dangling symlink to {os.readlink(path)}"))
      elif entry.name.lower().endswith(FITS_SUFFIXES) and entry.is_file(follow_symlinks=True):
        found.append(path)
  return sorted(found, key=str), sorted(not_followed, key=lambda x: str(x[0]))


def read_time(path) -> datetime.datetime:
  """Frame time from the header alone (cheap: no image decompression).

  The same rule as ``read_frame`` (T_OBS, else DATE-OBS), so it equals
  ``read_frame(path, ...).time``; raises on anything unreadable (the reason
  comes from ``read_frame``).
  """
  path = _path(path)
  with path.open("rb") as f:
    header = _read_bounded(f, str(path), header_only=True)
  if not header:
    raise BadFrameError(path, "corrupt", "no HDU holds image data")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return aia_header.obs_time(fits.Header.fromstring(header), str(path))


def default_disk_radius(image_size: int) -> float:
  """Disk radius in pixels used when ``disk_radius_px`` is None."""
  return DEFAULT_DISK_FRACTION * image_size


def read_frame(
  path,
  *,
  image_size: int,
  disk_radius_px: float | None = None,
  degradation: bool = False,
  correction_table=None,
  register: str = "auto",
  accept_synthetic: bool = False,
) -> Frame:
  """Reads, validates and resamples one AIA 171 Å FITS file.

  Args:
    path: a .fits / .fits.gz / .fts file; RICE-compressed HDUs are read too.
    image_size: side S of the square output.
    disk_radius_px: solar disk radius in output pixels (default
      ``DEFAULT_DISK_FRACTION * image_size``).
    degradation: divide by aiapy's time-dependent degradation factor.
    correction_table: path of an aiapy response table
      (``aia_V10_..._response_table.txt``) for ``degradation``; None tries
      aiapy's cached copy (downloaded once with internet) and raises
      ``DegradationTableError`` when there is none.
    register: 'auto' (aiapy.calibrate.register for full-resolution 4096×4096
      level-1 images, the direct mapping otherwise), 'aiapy' (always) or
      'direct' (never).
    accept_synthetic: read frames whose header says they were made, not observed
      (``SYNTHETIC``, ``SIMULATE``: samples of a model, the demo archive); by default
      they are rejected with reason 'synthetic', so none enters a dataset of observations.

  Returns:
    A ``Frame``.

  Raises:
    BadFrameError: for any problem with the file (see ``REASONS``).
    DegradationTableError: ``degradation`` without a usable table.
  """
  path = _path(path)
  try:
    with path.open("rb") as f:
      raw = _read_bounded(f, str(path))
  except OSError as e:
    raise BadFrameError(path, "corrupt", f"cannot read the file: {e}") from e
  return _read_checked_bytes(
    raw,
    source=str(path),
    image_size=image_size,
    disk_radius_px=disk_radius_px,
    degradation=degradation,
    correction_table=correction_table,
    register=register,
    accept_synthetic=accept_synthetic,
  )


def read_frame_bytes(
  raw: bytes,
  *,
  source: str,
  image_size: int,
  disk_radius_px: float | None = None,
  degradation: bool = False,
  correction_table=None,
  register: str = "auto",
  accept_synthetic: bool = False,
) -> Frame:
  """Like ``read_frame`` on the bytes of a FITS file (gzip allowed); ``source`` names it."""
  return _read_checked_bytes(
    _read_bounded(io.BytesIO(raw), source),
    source=source,
    image_size=image_size,
    disk_radius_px=disk_radius_px,
    degradation=degradation,
    correction_table=correction_table,
    register=register,
    accept_synthetic=accept_synthetic,
  )


def _read_checked_bytes(
  raw: bytes,
  *,
  source: str,
  image_size: int,
  disk_radius_px: float | None,
  degradation: bool,
  correction_table,
  register: str,
  accept_synthetic: bool = False,
) -> Frame:
  """``read_frame_bytes`` on plain bytes already cut to size by ``_read_bounded``."""
  if register not in ("auto", "aiapy", "direct"):
    raise ValueError(f"register={register!r}: use 'auto', 'aiapy' or 'direct'.")
  if image_size < 2:
    raise ValueError(f"image_size={image_size} must be >= 2.")
  radius_out = default_disk_radius(image_size) if disk_radius_px is None else float(disk_radius_px)
  if not 0 < radius_out < image_size:
    raise ValueError(f"disk_radius_px={radius_out} must lie in (0, image_size={image_size}).")
  table = _correction_table(correction_table) if degradation else None

  data, header = _open(raw, source)
  made = None if accept_synthetic else aia_header.not_observed(header, source)
  if made:
    raise BadFrameError(
      source, "synthetic", f"{made}: made, not observed (read it with accept_synthetic=True)"
    )
  meta, notes = aia_header.validate_header(header, source)
  geometry = aia_header.geometry(header, data.shape, source)
  data = _validate_data(data, geometry, source)

  if uses_aiapy_register(register, data.shape, meta["level"]):
    data, header = _aiapy_register(data, header, source)
    geometry = aia_header.geometry(header, data.shape, source)

  image = _resample(data, geometry, image_size, radius_out)
  if meta["unit"] == "DN":  # a file in DN/s (BUNIT) was divided by its exposure already
    image /= meta["exposure"]
  if table is not None:
    image /= _degradation_factor(meta["time"], table, source)
  image = image.astype(np.float32)
  if not np.all(np.isfinite(image)):
    raise BadFrameError(source, "non_finite", "non-finite values after resampling")
  return Frame(
    image=image,
    time=meta["time"],
    exposure=meta["exposure"],
    wavelength=meta["wavelength"],
    source=pathlib.PurePath(source).name,
    level=meta["level"],
    disk_radius_px=radius_out,
    notes=tuple(notes),
    observer=aia_header.observer(header, source),
  )


def resample_image(
  data: np.ndarray, header, *, source: str, image_size: int, disk_radius_px: float | None = None
) -> tuple[np.ndarray, float]:
  """``read_frame``'s geometry step on an image already in memory: (float64 [S, S], radius px).

  For readers of other containers (``sdoml``): checks the WCS keywords of ``header`` (a
  ``fits.Header`` or a dict, ``aia_header.geometry``) and the pixel values as ``read_frame``
  does, and maps ``data`` with the same single resampling onto the centred, north-up grid.
  Nothing is divided: the caller owns the units (exposure, degradation).
  """
  if image_size < 2:
    raise ValueError(f"image_size={image_size} must be >= 2.")
  radius_out = default_disk_radius(image_size) if disk_radius_px is None else float(disk_radius_px)
  if not 0 < radius_out < image_size:
    raise ValueError(f"disk_radius_px={radius_out} must lie in (0, image_size={image_size}).")
  geometry = aia_header.geometry(header, data.shape, source)
  data = _validate_data(np.asarray(data, dtype=np.float64), geometry, source)
  return _resample(data, geometry, image_size, radius_out), radius_out


def uses_aiapy_register(register: str, shape: tuple[int, ...], level: float) -> bool:
  """Whether ``read_frame`` runs aiapy.calibrate.register on an image."""
  if register == "auto":
    return tuple(shape) == (4096, 4096) and level < 1.5
  return register == "aiapy"


# ------------------------------------------------------------- reading ---


class _Inflow:
  """A FITS file's bytes on demand, gunzipped on the fly, never more than asked for.

  Reading a .gz file whole would let a 1 MB file expand to gigabytes before
  its header could be checked.
  """

  _CHUNK = 1 << 16

  def __init__(self, stream, source: str):
    self._stream, self._source = stream, source
    self._feed = stream.read(2)
    self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if self._feed == b"\x1f\x8b" else None
    self._out = bytearray()

  def read(self, n: int) -> bytes:
    """Up to ``n`` bytes (fewer only at the end of the file)."""
    if self._inflate is None:
      data, self._feed = self._feed[:n], self._feed[n:]
      return data + self._stream.read(n - len(data))
    self._gunzip(n - len(self._out))
    data = bytes(self._out[:n])
    del self._out[:n]
    return data

  def _gunzip(self, want: int) -> None:
    while want > 0:
      z = self._inflate
      if z.eof:  # a next gzip member, zero padding or the end
        rest = z.unused_data or self._feed or self._stream.read(self._CHUNK)
        if not rest.strip(b"\0"):
          return
        self._inflate, self._feed = zlib.decompressobj(16 + zlib.MAX_WBITS), rest
        continue
      feed = z.unconsumed_tail or self._feed or self._stream.read(self._CHUNK)
      self._feed = b""
      if not feed:
        return  # a cut stream: astropy reports the short data as truncated
      try:
        out = z.decompress(feed, want)
      except zlib.error as e:
        raise BadFrameError(self._source, "corrupt", f"broken gzip stream: {e}") from e
      self._out += out
      want -= len(out)


def _read_bounded(stream, source: str, *, header_only: bool = False) -> bytes:
  """The file's bytes up to the end of its first image HDU, checked header first.

  Each header is read block by block up to its END card; its image size and
  data size are checked (``aia_header.hdu_layout``) before the data are read,
  so memory stays bounded by the limits in ``aia_header`` whatever the file
  claims. ``header_only`` returns the first image HDU's header alone (b"" when
  there is none).
  """
  inflow, out = _Inflow(stream, source), bytearray()
  for _ in range(aia_header.MAX_HDUS):
    header = bytearray()
    while not aia_header.header_ends(header[-aia_header.FITS_BLOCK :]):
      block = inflow.read(aia_header.FITS_BLOCK)
      header += block
      if len(block) < aia_header.FITS_BLOCK:
        # Cut inside a header: astropy says what is wrong (read_time: no image).
        return b"" if header_only else bytes(out + header)
      if len(header) > aia_header.MAX_HEADER_BYTES:
        raise BadFrameError(source, "corrupt", f"no END card in {len(header)} header bytes")
    image, size = aia_header.hdu_layout(bytes(header), source)
    if image and header_only:
      return bytes(header)
    out += header + inflow.read(size)
    if image:
      break
  return b"" if header_only else bytes(out)


def _open(raw: bytes, source: str):
  """Returns (data as float64 2-D array, header) of the first image HDU."""
  try:
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      with fits.open(io.BytesIO(raw), memmap=False, lazy_load_hdus=False) as hdul:
        hdu = next((h for h in hdul if _has_image(h)), None)
        if hdu is None:
          raise BadFrameError(source, "corrupt", "no HDU holds image data")
        header = hdu.header.copy()
        data = np.asarray(hdu.data)
  except BadFrameError:
    raise
  except Exception as e:  # astropy raises many types on damaged files.
    raise BadFrameError(
      source, "corrupt", f"astropy cannot read it: {type(e).__name__}: {e}"
    ) from e
  for w in caught:
    if "truncated" in str(w.message).lower():
      raise BadFrameError(source, "corrupt", f"truncated file ({w.message})")
  if data.ndim != 2 or min(data.shape) < 2:
    raise BadFrameError(source, "not_2d", f"image data has shape {data.shape}, expected 2-D")
  if not np.issubdtype(data.dtype, np.number):
    raise BadFrameError(source, "corrupt", f"image data has dtype {data.dtype}")
  return data.astype(np.float64), header


def _has_image(hdu) -> bool:
  if not isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU):
    return False
  return hdu.header.get("NAXIS", 0) > 0 and hdu.data is not None


def _disk_mask(shape: tuple[int, int], geometry: aia_header.Geometry) -> np.ndarray:
  """Input pixels whose centre lies on the solar disk."""
  ny, nx = shape
  yy, xx = np.mgrid[0:ny, 0:nx]
  offsets = np.stack([xx - geometry.sun_center_px[0], yy - geometry.sun_center_px[1]])
  world = np.einsum("ij,jyx->iyx", geometry.world_per_pixel, offsets)
  return np.hypot(world[0], world[1]) <= geometry.rsun_arcsec


def _validate_data(data: np.ndarray, geometry: aia_header.Geometry, source: str) -> np.ndarray:
  """Rejects non-finite values on the disk and absurd values; zeroes NaN off the disk."""
  finite = np.isfinite(data)
  if not finite.all():
    bad_on_disk = ~finite & _disk_mask(data.shape, geometry)
    if bad_on_disk.any():
      raise BadFrameError(
        source, "non_finite", f"{int(bad_on_disk.sum())} NaN/inf pixels on the solar disk"
      )
    data = np.where(finite, data, 0.0)
  peak = float(np.max(np.abs(data)))
  if peak > MAX_ABS_DN:
    raise BadFrameError(source, "out_of_range", f"|DN| reaches {peak:.3g} > {MAX_ABS_DN:g}")
  return data


def _resample(
  data: np.ndarray, geometry: aia_header.Geometry, image_size: int, radius_out: float
) -> np.ndarray:
  """One bilinear resampling onto the centred, north-up output grid (float64)."""
  scale_out = geometry.rsun_arcsec / radius_out  # arcsec per output pixel
  c_out = (image_size - 1) / 2.0
  # Input pixel (x, y) = A @ output (x, y) + b.
  a_xy = scale_out * np.linalg.inv(geometry.world_per_pixel)
  b_xy = geometry.sun_center_px - a_xy @ np.array([c_out, c_out])
  # Block-average first when an output pixel spans about 2 or more input
  # pixels, so the bilinear step stays near 1:1 and does not alias.
  factor = int(round(math.sqrt(abs(np.linalg.det(a_xy)))))
  if factor >= 2:
    ny, nx = data.shape
    pad = ((0, -ny % factor), (0, -nx % factor))
    data = np.pad(data, pad, mode="constant")
    data = data.reshape(data.shape[0] // factor, factor, data.shape[1] // factor, factor)
    data = data.mean(axis=(1, 3))
    # Binned pixel j covers original pixels factor*j .. factor*j + factor - 1.
    a_xy = a_xy / factor
    b_xy = (b_xy - (factor - 1) / 2.0) / factor
  swap = np.array([[0.0, 1.0], [1.0, 0.0]])  # (x, y) <-> (row, col)
  return ndimage.affine_transform(
    data,
    swap @ a_xy @ swap,
    offset=swap @ b_xy,
    output_shape=(image_size, image_size),
    order=1,
    mode="constant",
    cval=0.0,
  )


# ------------------------------------------------------ aiapy (optional) ---


def _aiapy_register(data: np.ndarray, header, source: str):
  """aiapy.calibrate.register (level 1 -> 1.5); returns (data, header) of the result."""
  # aiapy and sunpy.map take ~4 s to import: only full-resolution level-1 files need them.
  import sunpy.map
  from aiapy.calibrate import register

  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      smap = sunpy.map.Map(data, header)
      registered = register(smap, missing=0.0)
  except Exception as e:  # aiapy/sunpy raise many types on odd headers.
    raise BadFrameError(source, "calibration", f"aiapy register failed: {e}") from e
  out = np.asarray(registered.data, dtype=np.float64)
  return np.where(np.isfinite(out), out, 0.0), _header_from_meta(registered.meta)


def _header_from_meta(meta):
  header = fits.Header()
  for key, value in meta.items():
    if isinstance(value, str | int | float | bool) and len(key) <= 8:
      header[key.upper()] = value
  return header


def check_correction_table(source) -> None:
  """Loads the degradation table ``read_frame(degradation=True, correction_table=source)``
  would use; ``DegradationTableError`` when there is none (before any file is read)."""
  _correction_table(source)


def _correction_table(source):
  """Loads (and caches) aiapy's degradation table without touching the network twice."""
  key = None if source is None else os.fspath(source)
  return _load_correction_table(key)


@functools.lru_cache(maxsize=4)
def _load_correction_table(source: str | None):
  from aiapy.calibrate.util import get_correction_table  # lazy: see _aiapy_register

  if source is not None:
    if not pathlib.Path(source).is_file():
      raise DegradationTableError(f"degradation correction table {source} does not exist.")
    return get_correction_table(pathlib.Path(source))
  try:
    # aiapy's data manager returns its cached copy, or downloads it once.
    return get_correction_table("SSW")
  except Exception as e:
    raise DegradationTableError(
      "degradation=True needs aiapy's response table and none is cached (no network?): "
      "download sdo/aia/response/aia_V10_20201119_190000_response_table.txt from a SolarSoft "
      f"mirror and pass correction_table=<that file> ({type(e).__name__}: {e})"
    ) from e


def _degradation_factor(time: datetime.datetime, table, source: str) -> float:
  from aiapy.calibrate import degradation  # lazy: see _aiapy_register

  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      value = degradation(
        aia_header.WAVELENGTH_ANGSTROM * u.angstrom, Time(time, scale="utc"), correction_table=table
      )
      factor = float(np.asarray(value.to_value(u.dimensionless_unscaled)).reshape(-1)[0])
  except Exception as e:
    raise BadFrameError(source, "calibration", f"degradation factor failed: {e}") from e
  if not (math.isfinite(factor) and factor > 0):
    raise BadFrameError(source, "calibration", f"degradation factor {factor!r} at {time}")
  return factor
