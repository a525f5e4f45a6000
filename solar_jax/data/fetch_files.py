"""What the fetcher finds on disk: downloads checked whole, frames already fetched.

A download is accepted only whole: a FITS file must start with its signature (an
HTML error page saved as ``.fits`` is not one) and hold every byte its headers
announce (``fits_problem``: a file cut by a kill or a dropped connection is not).
``scan_frames`` removes what fails and returns the observation time of every AIA
frame that passes, so a rerun fetches exactly the frames that are still missing.
"""

from __future__ import annotations

import bisect
import datetime
import gzip
import io
import pathlib

from solar_jax.data import aia, aia_header

# What a downloaded file must start with, by its suffix: FITS ('SIMPLE  =', also
# inside gzip), netCDF-3 ('CDF\x01', 64-bit offsets 'CDF\x02') or netCDF-4 (HDF5).
# A server that fails often answers 200 with an HTML error page, which Fido saves
# under the file's name; a rerun would then skip it as already downloaded.
_FITS_MAGIC = (b"SIMPLE  =",)
_NETCDF_MAGIC = (b"CDF\x01", b"CDF\x02", b"\x89HDF\r\n\x1a\n")
_MAGIC_BY_SUFFIX = {
  ".fits": _FITS_MAGIC,
  ".fts": _FITS_MAGIC,
  ".fit": _FITS_MAGIC,
  ".nc": _NETCDF_MAGIC,
}
_GZIP_MAGIC = b"\x1f\x8b"
FITS_SUFFIXES = (".fits", ".fts", ".fit", ".fits.gz", ".fts.gz", ".fit.gz")
BLOCK = 2880  # FITS files are whole 2880-byte blocks.


def _magic_of(path: pathlib.Path):
  name = path.name.lower()
  stem = name[:-3] if name.endswith(".gz") else name
  return _MAGIC_BY_SUFFIX.get(pathlib.PurePath(stem).suffix)


def check_download(path) -> str | None:
  """Why a downloaded file is not what its name says (None when it is).

  FITS files (.fits, .fts, .fit, also gzip-compressed) must start with
  'SIMPLE  =', netCDF files (.nc) with the netCDF-3 or HDF5 (netCDF-4) signature.
  Other suffixes are not checked.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    return f"{path}: reported as downloaded but absent"
  magic = _magic_of(path)
  if magic is None:
    return None
  try:
    with open(path, "rb") as f:
      head = f.read(16)
      if path.name.lower().endswith(".gz") or head.startswith(_GZIP_MAGIC):
        if not head.startswith(_GZIP_MAGIC):
          return f"{path}: not gzip data (starts with {head[:16]!r})"
        f.seek(0)
        with gzip.open(f) as inner:
          head = inner.read(16)
  except (OSError, EOFError) as e:
    return f"{path}: cannot be read ({type(e).__name__}: {e})"
  if not head.startswith(magic):
    kind = "FITS" if magic is _FITS_MAGIC else "netCDF"
    return f"{path}: not a {kind} file (starts with {head[:16]!r}: an error page?)"
  return None


def _walk_hdus(stream, size: int, source: str) -> str | None:
  """Why the FITS bytes of ``stream`` (``size`` long) are not a whole image (None when they are)."""
  offset, first, images = 0, True, 0
  while offset < size:
    stream.seek(offset)
    block = stream.read(BLOCK)
    if not first and not block.startswith(b"XTENSION"):
      return None  # trailing blocks after the last HDU (zeros): allowed
    header = b""
    while True:
      if len(block) < BLOCK:
        return f"{source}: a header is cut off at byte {offset + len(header) + len(block)}"
      header += block
      if aia_header.header_ends(block):
        break
      block = stream.read(BLOCK)
    try:
      image, data = aia_header.hdu_layout(header, source)
    except aia.BadFrameError as e:
      return f"{source}: {e}"
    offset += len(header) + data
    first, images = False, images + image
  if offset > size:
    return f"{source}: {size} bytes, its headers announce {offset}: a half-written download"
  if not images:  # AIA's image is in an extension: a file cut after the primary header
    return f"{source}: no HDU holds an image (a half-written download?)"
  return None


def fits_problem(path) -> str | None:
  """Why ``path`` is not a whole FITS file (None when it is).

  Every HDU's header must end (END card) and be followed by the data bytes its
  BITPIX, NAXISn, PCOUNT and GCOUNT announce, padded to 2880 bytes; one HDU must
  hold an image (AIA's level 1 keeps it in a compressed extension after an empty
  primary HDU); a gzip file must decompress to its end. A half-written download fails
  one of these.
  """
  path = pathlib.Path(path)
  source = str(path)
  try:
    size = path.stat().st_size
    if path.name.lower().endswith(".gz"):
      with gzip.open(path) as f:
        data = f.read()
      return _walk_hdus(io.BytesIO(data), len(data), source)
    if size == 0 or size % BLOCK:
      return f"{source}: {size} bytes, not whole 2880-byte FITS blocks: a half-written download"
    with open(path, "rb") as f:
      return _walk_hdus(f, size, source)
  except (OSError, EOFError) as e:
    return f"{source}: cannot be read ({type(e).__name__}: {e}): a half-written download?"


def file_problem(path) -> str | None:
  """``check_download``, then for FITS files ``fits_problem``: None for a whole file."""
  problem = check_download(path)
  if problem is None and _magic_of(pathlib.Path(path)) is _FITS_MAGIC:
    problem = fits_problem(path)
  return problem


def is_fits_name(path) -> bool:
  return pathlib.Path(path).name.lower().endswith(FITS_SUFFIXES)


def scan_frames(directory) -> tuple[dict[datetime.datetime, pathlib.Path], list[str]]:
  """The AIA frames under ``directory``: ({observation time: file}, problems).

  A file that is not whole FITS (``file_problem``: an error page, a half-written
  download) is removed and its problem returned, so it is fetched again and never
  taken for a frame. A whole file whose time cannot be read is left for the
  builder to report.
  """
  directory = pathlib.Path(directory)
  frames, problems = {}, []
  if not directory.is_dir():
    return frames, problems
  for path in sorted(p for p in directory.rglob("*") if p.is_file() and is_fits_name(p)):
    problem = file_problem(path)
    if problem is not None:
      path.unlink(missing_ok=True)
      problems.append(f"{problem}; removed")
      continue
    try:
      frames[aia.read_time(path)] = path
    except (aia.BadFrameError, OSError, ValueError):
      continue
  return frames, problems


def nearest(times, t: datetime.datetime, tolerance: datetime.timedelta):
  """The element of sorted ``times`` nearest ``t`` if within ``tolerance``, else None."""
  i = bisect.bisect_left(times, t)
  best = min(times[max(i - 1, 0) : i + 1], key=lambda s: abs(s - t), default=None)
  return best if best is not None and abs(best - t) <= tolerance else None
