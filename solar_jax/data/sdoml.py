"""AIA 171 Å frames from an SDOML v2 Zarr store, as the same ``aia.Frame`` the FITS reader gives.

SDOML (Galvez et al. 2019, ApJS 242, 7; v2 in Zarr) holds AIA images already calibrated:
exposure-normalised (DN/s) and divided by the AIA degradation factor of their day. This
module lists a store's 171 Å frames and maps one onto the dataset's grid (disk centred,
radius 0.40·S, north up) with ``aia.resample_image``, the resampling ``aia.read_frame``
uses. It divides by NOTHING: no exposure, no degradation (both were done by SDOML's
converter; doing either again would count it twice). ``Frame.notes`` says so per frame.

Layout supported (SDOML v2, Zarr format 2)::

  <store>/<year>/171A   float32 [T, N, N] (N = 512 in the public store), chunks (15, N, N)
  attributes of <year>/171A: each FITS keyword of the source frames, upper case, as a
    list of T values (frame i's value at i): T_OBS ('2011-01-01T00:00:08.57Z'), EXPTIME,
    WAVELNTH, QUALITY, RSUN_OBS, CROTA2, ...; rewritten for the stored resolution:
    NAXIS1/2, CDELT1/2, CRPIX1/2, R_SUN, X0_MP, Y0_MP; added: DEG_COR (the degradation
    factor divided out) and PIXLUNIT ('DN/s').

Read from: the converter ``aia_fits_to_zarr.py`` of github.com/SDOML/SDOMLv2 (groups per
year, one array per channel named '171A', header keywords as attribute lists, DEG_COR,
PIXLUNIT, the rescaled WCS keywords), the ``sdoml`` package (``sdoml.sources.SDOML_AIA``:
frame times from the 'T_OBS' attribute, '%Y-%m-%dT%H:%M:%S.%fZ') and public users of the
store (``gs://fdl-sdoml-v2/sdomlv2.zarr``, ``gs://fdl-sdoml-v2/sdomlv2_small.zarr``; the
AWS mirror ``s3://gov-nasa-hdrl-data1/contrib/fdl-sdoml/fdl-sdoml-v2/sdomlv2.zarr``).

Geometry comes from each frame's stored WCS attributes (CRPIX, CDELT, CROTA2/PC, RSUN_OBS),
checked by ``aia_header.geometry`` as for a FITS file. SDOML's converter scaled the disk to
976" about the image centre and stored CRPIX/f for a binning factor f, where mean binning
puts the reference pixel at (CRPIX - (f+1)/2)/f + 1: the disk centre may sit a quarter of
a stored pixel off (at 512 px; 1/32 px at 64 px). It is used as stored.

A frame that cannot be used raises ``aia.BadFrameError`` with the FITS reader's reasons:
'missing_keyword' (no T_OBS/DATE-OBS, EXPTIME, WAVELNTH, WCS keyword or DEG_COR),
'wavelength', 'quality', 'exposure', 'bad_keyword' (PIXLUNIT other than DN/s, DEG_COR not
a positive number), 'non_finite', 'out_of_range', 'geometry', 'synthetic'. A store that
cannot be opened or has another layout raises ``errors.MissingInputError`` /
``errors.InputMismatchError``. A ``gs://`` store needs ``pip install gcsfs`` (not a
dependency of solar_jax); other fsspec URLs need their own package.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import importlib.util
import json
import math
import pathlib

import numpy as np

from solar_jax import errors
from solar_jax.data import aia, aia_header

CHANNEL = "171A"
LAYOUT = "SDOML v2: Zarr <store>/<year>/171A [T, N, N] DN/s, FITS keywords as per-frame lists"
# What a store's images already include (recorded in the dataset's metadata).
CALIBRATION_NOTE = (
  "exposure-normalised (DN/s) and degradation-corrected by SDOML's converter (DEG_COR); "
  "solar_jax divides by neither again"
)
# Files of a manual dir that name an SDOML store (``find_store``).
SPEC_NAME = "sdoml.json"
LOCAL_NAME = "sdoml"
# Keywords a frame's reader needs (the rest of a store's ~180 per-frame keywords stay there).
_KEYWORDS = (
  "T_OBS",
  "DATE-OBS",
  "WAVELNTH",
  "EXPTIME",
  "QUALITY",
  "TELESCOP",
  "INSTRUME",
  "LVL_NUM",
  *(f"{k}{i}" for k in ("CRPIX", "CRVAL", "CDELT", "CUNIT") for i in (1, 2)),
  "CROTA1",
  "CROTA2",
  *(f"{k}{i}_{j}" for k in ("PC", "CD") for i in (1, 2) for j in (1, 2)),
  "RSUN_OBS",
  "DSUN_OBS",
  "RSUN_REF",
  "R_SUN",
  "HGLN_OBS",
  "HGLT_OBS",
  "HAEX_OBS",
  "HAEY_OBS",
  "HAEZ_OBS",
  "DEG_COR",
  "PIXLUNIT",
  "SYNTHETIC",
  "SIMULATE",
  "DETECTOR",
  "IMG_TYPE",
)


@dataclasses.dataclass(frozen=True)
class FrameRef:
  """One frame of a store: where it is and the keywords its reader needs (small, picklable).

  Attributes:
    store: the store's path or URL.
    year: the year group ('2011').
    index: the frame's index along the array's first axis.
    header: the frame's keywords (``_KEYWORDS`` present in the store, JSON null dropped).
    storage_options: fsspec options of a remote store (e.g. {'token': 'anon'}).
  """

  store: str
  year: str
  index: int
  header: dict
  storage_options: dict = dataclasses.field(default_factory=dict)

  @property
  def name(self) -> str:
    """The frame's name in reports and records: 'sdoml/<year>/171A/<index>'."""
    return f"{LOCAL_NAME}/{self.year}/{CHANNEL}/{self.index:06d}"


@dataclasses.dataclass(frozen=True)
class Listing:
  """``list_frames``: frames with their times, frames rejected from their keywords, counts."""

  frames: list[tuple[FrameRef, datetime.datetime]]
  bad: list[aia.BadFrameError]
  provenance: dict


# ---------------------------------------------------------------- store ---


def find_store(manual_dir) -> dict | None:
  """The SDOML store a manual dir names: ``DIR/sdoml.json`` or a local store ``DIR/sdoml/``.

  ``sdoml.json`` is ``{"store": PATH_OR_URL, "years": [2011, ...] (optional, default all),
  "cadence_minutes": M (optional: the first frame of each M-minute bin), "storage_options":
  {...} (optional fsspec options, e.g. {"token": "anon"} for the public bucket)}``; a relative
  local path is taken from the manual dir. Returns that dict with ``store`` resolved, or None
  when the manual dir holds neither (then it is read as FITS).
  """
  root = pathlib.Path(manual_dir)
  spec_path = root / SPEC_NAME
  if spec_path.exists():
    try:
      spec = json.loads(spec_path.read_text())
    except ValueError as e:
      raise errors.InputMismatchError(f"{spec_path} is not JSON: {e}") from e
    if not isinstance(spec, dict) or not isinstance(spec.get("store"), str):
      raise errors.InputMismatchError(f'{spec_path} must be an object with "store": PATH_OR_URL.')
    _check_spec(spec, spec_path)
  elif (root / LOCAL_NAME).is_dir():
    spec = dict(store=LOCAL_NAME)
  else:
    return None
  store = spec["store"]
  if "://" not in store:
    store = str((root / pathlib.Path(store).expanduser()).resolve())
  return dict(spec, store=store)


def _check_spec(spec: dict, spec_path) -> None:
  """One line naming the key of ``sdoml.json`` that cannot work."""
  unknown = set(spec) - {"store", "years", "cadence_minutes", "storage_options"}
  if unknown:
    raise errors.InputMismatchError(f"{spec_path}: unknown keys {sorted(unknown)}.")
  years = spec.get("years")
  if years is not None and not (
    isinstance(years, list) and years and all(str(y).isdigit() and len(str(y)) == 4 for y in years)
  ):
    raise errors.InputMismatchError(f"{spec_path}: years={years!r}, expected e.g. [2011, 2012].")
  cadence = spec.get("cadence_minutes")
  if cadence is not None and (
    isinstance(cadence, bool) or not isinstance(cadence, int | float) or not 0 < cadence < 1e7
  ):
    raise errors.InputMismatchError(
      f"{spec_path}: cadence_minutes={cadence!r}, expected a positive number of minutes."
    )
  if not isinstance(spec.get("storage_options", {}), dict):
    raise errors.InputMismatchError(f"{spec_path}: storage_options must be an object.")


def open_store(store: str, storage_options: dict | None = None):
  """The store's root ``zarr.Group`` (read only); a clear error when it cannot be opened."""
  import zarr  # lazy: only SDOML builds need it

  if store.startswith(("gs://", "gcs://")) and importlib.util.find_spec("gcsfs") is None:
    raise errors.MissingInputError(
      f"SDOML store {store}: reading gs:// needs gcsfs, which is not installed "
      "(pip install gcsfs), or copy the years you need to a local directory."
    )
  try:
    kwargs = dict(storage_options=storage_options) if "://" in store else {}
    return zarr.open_group(store, mode="r", **kwargs)
  except (FileNotFoundError, KeyError) as e:
    raise errors.MissingInputError(f"SDOML store {store} cannot be opened: {e}") from e
  except Exception as e:  # zarr and fsspec raise many types for a store that is not a group
    raise errors.InputMismatchError(
      f"SDOML store {store} is not a Zarr group ({type(e).__name__}: {e})"
    ) from e


def _years(group, wanted, store: str) -> list[str]:
  years = sorted(k for k in group.group_keys() if k.isdigit() and len(k) == 4)
  if not years:
    raise errors.InputMismatchError(
      f"SDOML store {store} has no year group (<year>/{CHANNEL}); is it an SDOML v2 store?"
    )
  if wanted is not None:
    wanted = [str(y) for y in wanted]
    missing = sorted(set(wanted) - set(years))
    if missing:
      raise errors.MissingInputError(
        f"SDOML store {store} has no year group {missing} (has {years})."
      )
    years = [y for y in years if y in wanted]
  return years


def _frame_headers(attrs: dict, count: int, where: str) -> list[dict]:
  """Per-frame keyword dicts from the array's attributes (lists of ``count``, or one value)."""
  columns = {}
  for key in _KEYWORDS:
    if key not in attrs:
      continue
    value = attrs[key]
    if isinstance(value, list):
      if len(value) != count:
        raise errors.InputMismatchError(
          f"SDOML {where}: attribute {key} has {len(value)} values for {count} frames."
        )
      columns[key] = value
    else:
      columns[key] = [value] * count
  return [{k: v[i] for k, v in columns.items() if v[i] is not None} for i in range(count)]


def list_frames(
  store: str, *, years=None, cadence_minutes=None, storage_options: dict | None = None
) -> Listing:
  """Every 171 Å frame of the store (of ``years``), with its time, from the attributes only.

  A frame whose keywords give no time is in ``bad`` (reason as ``aia.read_frame``). With
  ``cadence_minutes``, the earliest frame of each bin [k·M, (k+1)·M) minutes since
  2010-01-01 is kept; the others are counted in ``provenance['frames_thinned']``.
  """
  options = dict(storage_options or {})
  root = open_store(store, options)
  frames, bad, per_year = [], [], {}
  for year in _years(root, years, store):
    if CHANNEL not in root[year]:
      raise errors.InputMismatchError(f"SDOML store {store}: {year}/ has no {CHANNEL} array.")
    array = root[year][CHANNEL]
    if array.ndim != 3 or array.shape[1] != array.shape[2]:
      raise errors.InputMismatchError(
        f"SDOML {store}/{year}/{CHANNEL} has shape {array.shape}, expected [T, N, N]."
      )
    headers = _frame_headers(dict(array.attrs), array.shape[0], f"{store}/{year}/{CHANNEL}")
    per_year[year] = array.shape[0]
    for i, header in enumerate(headers):
      ref = FrameRef(store, year, i, header, options)
      try:
        frames.append((ref, aia_header.obs_time(header, ref.name)))
      except aia.BadFrameError as e:
        bad.append(e)
  listed = len(frames)
  if cadence_minutes:
    frames = _thin(frames, float(cadence_minutes))
  provenance = dict(
    store=store,
    layout=LAYOUT,
    channel=CHANNEL,
    calibration=CALIBRATION_NOTE,
    frames_per_year=per_year,
    cadence_minutes=cadence_minutes,
    frames_thinned=listed - len(frames),
  )
  return Listing(frames=frames, bad=bad, provenance=provenance)


def _thin(frames, minutes: float):
  """The earliest frame of each ``minutes`` bin (ties: the first listed)."""
  epoch = datetime.datetime(2010, 1, 1)
  kept = {}
  for ref, time in sorted(frames, key=lambda f: (f[1], f[0].year, f[0].index)):
    kept.setdefault(math.floor((time - epoch).total_seconds() / 60.0 / minutes), (ref, time))
  return list(kept.values())


# ---------------------------------------------------------------- frame ---


@functools.lru_cache(maxsize=8)
def _array(store: str, options_json: str, year: str):
  """The year's 171 Å array, opened once per process (Beam workers read many frames)."""
  return open_store(store, json.loads(options_json))[year][CHANNEL]


def _check_calibration(header: dict, source: str) -> float:
  """DEG_COR (must be there: it proves the image is degradation-corrected) and PIXLUNIT."""
  unit = header.get("PIXLUNIT")
  if unit is not None and str(unit).strip().replace(" ", "").upper() != "DN/S":
    raise aia.BadFrameError(source, "bad_keyword", f"PIXLUNIT={unit!r}, expected 'DN/s'")
  if "DEG_COR" not in header:
    raise aia.BadFrameError(source, "missing_keyword", "DEG_COR is missing")
  factor = header["DEG_COR"]
  if isinstance(factor, bool) or not isinstance(factor, int | float) or not factor > 0:
    raise aia.BadFrameError(source, "bad_keyword", f"DEG_COR={factor!r} is not a positive number")
  if not math.isfinite(factor):
    raise aia.BadFrameError(source, "bad_keyword", f"DEG_COR={factor!r} is not finite")
  return float(factor)


def read_frame(
  ref: FrameRef,
  *,
  image_size: int,
  disk_radius_px: float | None = None,
  accept_synthetic: bool = False,
) -> aia.Frame:
  """One SDOML frame on the common grid (DN/s as stored; nothing divided again).

  The same checks as ``aia.read_frame`` on the keywords (instrument, wavelength, quality,
  exposure, level, time, WCS) and the pixels (non-finite on the disk, out of range), plus
  DEG_COR and PIXLUNIT; frames marked made, not observed, need ``accept_synthetic``.

  Raises:
    aia.BadFrameError: a frame that cannot be used (``aia.REASONS``).
  """
  source, header = ref.name, ref.header
  made = None if accept_synthetic else aia_header.not_observed(header, source)
  if made:
    raise aia.BadFrameError(
      source, "synthetic", f"{made}: made, not observed (read it with accept_synthetic=True)"
    )
  meta, notes = aia_header.validate_header(header, source)
  factor = _check_calibration(header, source)
  data = np.asarray(_array(ref.store, json.dumps(ref.storage_options), ref.year)[ref.index])
  image, radius = aia.resample_image(
    data, header, source=source, image_size=image_size, disk_radius_px=disk_radius_px
  )
  image = image.astype(np.float32)
  if not np.all(np.isfinite(image)):
    raise aia.BadFrameError(source, "non_finite", "non-finite values after resampling")
  notes.append(f"SDOML image: exposure-normalised and degradation-corrected (DEG_COR={factor:g})")
  return aia.Frame(
    image=image,
    time=meta["time"],
    exposure=meta["exposure"],
    wavelength=meta["wavelength"],
    source=source,
    level=meta["level"],
    disk_radius_px=radius,
    notes=tuple(notes),
    observer=aia_header.observer(header, source),
  )
