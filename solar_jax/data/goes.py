"""GOES 1-8 Å fluxes on one declared scale: flux <-> class, and XRS files.

The dataset's scale is the TRUE flux (``SCALE``): the irradiance GOES-R (16+)
measures and NCEI's science-quality reprocessing of GOES 1-15 publishes, with no
SWPC scaling. Every source is converted to it, and says how (DESIGN.md, 'One
GOES scale'):

* SDAC FITS files (``ORIGIN='SDAC/GSFC'``, e.g. ``go1520110607.fits``) carry the
  operational SWPC scaling of GOES 8-15: divided by 0.7;
* NCEI science-quality netCDF files of GOES 1-15 (title or instrument names
  'GOES 1-15') and GOES-16+ files are true fluxes: used as they are;
* any other file needs its factor given (``read_xrs(..., to_true=...)``),
  because guessing it wrongly shifts classes by 43 %;
* a listed class is converted by its list's provenance (``LIST_PROVENANCES``,
  ``listed_true_flux``): an SWPC event report or a HEK export (SWPC-derived
  classes) is on the SWPC scale when its flare peaked before
  ``TRUE_FLUX_LISTS_SINCE`` (divided by 0.7), a true flux after; an NCEI
  reprocessed summary gives true fluxes (used as they are, never divided twice).

Class thresholds are applied on read on a chosen scale (``CLASS_SCALES``,
``data.class_scale``): 'true', or 'swpc', the scale SWPC published the classes
on and the cycle-24 forecasting literature uses (Leka et al. 2019; Bobra &
Couvidat 2015; SWAN-SF). ``to_class_scale`` brings a true flux there: x 0.7
before ``TRUE_FLUX_LISTS_SINCE`` (the GOES 8-15 era), x 1 from then on.

So the M2.5 flare of 2011-06-07 (SDAC file peak 2.56e-5) is M3.66 on the true
scale, and an M3.66 of 2022 is the same flux. ``class_letter`` and
``class_to_flux`` are sunkit-instruments' table (``CLASS_BASE_FLUX``) and apply to
any scale.

Several satellites often cover one time. ``read_xrs`` keeps, per UTC day, the
samples of one PRIMARY satellite: the one named by a primary table when given
(``primary=``: rows of first day, last day, satellite, e.g. SWPC's list), else
the satellite with the most good samples that day (ties: the higher number,
the newer instrument). ``XRSSeries.primary`` records the choice per day.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import math
import pathlib
import re
import warnings
from typing import NamedTuple

import astropy.units as u
import h5netcdf
import numpy as np

from solar_jax import errors

CLASS_LETTERS = ("A", "B", "C", "M", "X")

# SWPC's operational scaling of GOES 8-15 XRS-B: published = 0.7 * true.
SWPC_XRSB_SCALE = 0.7
SCALE = "true"
SCALE_NOTE = (
  "true 1-8 Å flux (GOES-R and NCEI science-quality, no SWPC 0.7 scaling): SDAC FITS "
  "and SWPC/HEK listed classes of flares before {since} divided by 0.7; NCEI GOES 1-15 "
  "netCDF, GOES-16+ files, NCEI listed classes and later SWPC/HEK classes as they are"
)
# SWPC's published fluxes and classes from this day on are true fluxes (GOES-16 era);
# before it they carry the 0.7 scaling of GOES 8-15 (an SWPC or HEK listed class).
TRUE_FLUX_LISTS_SINCE = datetime.datetime(2020, 1, 1)
# The scales class thresholds can be applied on (data.class_scale; ``to_class_scale``).
CLASS_SCALES = ("swpc", "true")
# Where a flare list's classes come from, and so their scale (``listed_true_flux``):
# 'swpc' (SWPC event reports) and 'hek' (HEK exports, SWPC-derived GOES classes) are
# 0.7-scaled before TRUE_FLUX_LISTS_SINCE; 'ncei' (NCEI's reprocessed flare summaries,
# GOES 1-15 science-quality and GOES-R) are true fluxes already.
LIST_PROVENANCES = ("swpc", "hek", "ncei")
# Formats that say their provenance: a HEK export (its GOES class column), and the
# layout of SWPC-derived cycle-24 lists (final_flare_list_sc24.csv, merged from SWPC
# event reports and the HEK, goes_class_val 'as published'; the demo writes it too).
_HEK_COLUMNS = ("fl_goescls",)
_SWPC_LIST_COLUMNS = ("goes_class_ind", "goes_class_val")

# XRS coverage: the largest gap between samples (or to a window edge) that a
# window may contain and still count as covered.
MAX_XRS_GAP = np.timedelta64(5, "m")


class XRSError(errors.UserError, ValueError):
  """A GOES XRS file that cannot be read or scaled (names the file)."""


class XRSNoDataError(XRSError):
  """A GOES XRS file without a usable sample (all flagged bad, non-finite or <= 0)."""


# ----------------------------------------------------- flux <-> class ---


def _flux_value(flux) -> float:
  """A flux (number or Quantity) as a float in W m^-2, checked."""
  if hasattr(flux, "unit"):
    flux = flux.to_value(u.W / u.m**2)
  value = float(flux)
  if not (math.isfinite(value) and value >= 0):
    raise ValueError(f"GOES flux {flux!r} must be finite and >= 0 W m^-2.")
  return value


def _flux_quantity(flux):
  # sunkit-instruments needs float64: a float32 quantity yields 'None2.56'.
  return np.float64(_flux_value(flux)) * (u.W / u.m**2)


def flux_to_class(flux) -> str:
  """GOES class string for a 1-8 Å flux in W m^-2, e.g. 2.56e-5 -> 'M2.56'."""
  # sunkit-instruments imports sunpy.timeseries (~3 s): only where a class is made.
  from sunkit_instruments.goes_xrs import flux_to_flareclass

  return str(flux_to_flareclass(_flux_quantity(flux)))


# The GOES class letters' lower flux edges in W m^-2, the table sunkit-instruments
# converts with (its GOES_CONVERSION_DICT; tests/test_goes.py checks every letter and
# the conversions against it). Held here so reading a label does not import
# sunkit-instruments, which imports sunpy.timeseries and matplotlib (~3 s a process).
CLASS_BASE_FLUX = {"A": 1e-8, "B": 1e-7, "C": 1e-6, "M": 1e-5, "X": 1e-4}


@functools.cache
def _letter_by_decade() -> dict[int, str]:
  """{-8: 'A', ..., -4: 'X'}."""
  return {int(round(math.log10(flux))): letter for letter, flux in CLASS_BASE_FLUX.items()}


def class_letter(flux) -> str:
  """Class letter 'A'..'X' of a flux in W m^-2 (below A1.0 is still 'A').

  Same rule as sunkit-instruments' ``flux_to_flareclass`` (the decade of
  ``floor(log10(flux))``, clamped to A..X), without building a Quantity, so
  it is cheap enough to call per sample.
  """
  value = _flux_value(flux)
  table = _letter_by_decade()
  decade = -np.inf if value == 0 else np.floor(np.log10(value))
  return table[int(np.clip(decade, min(table), max(table)))]


_CLASS_RE = re.compile(r"^\s*([ABCMXabcmx])\s*(\d+(?:\.\d*)?|\.\d+)\s*$")


def class_to_flux(goes_class: str) -> float:
  """Peak 1-8 Å flux (W m^-2) of a GOES class string such as 'M2.5'."""
  if not isinstance(goes_class, str) or not _CLASS_RE.match(goes_class):
    raise ValueError(f"GOES class {goes_class!r} is not a letter A/B/C/M/X and a number.")
  return _class_to_flux(goes_class.strip().upper())


@functools.lru_cache(maxsize=4096)
def _class_to_flux(goes_class: str) -> float:
  # sunkit-instruments' flareclass_to_flux: the number times the letter's base flux
  # (the same float product; tests/test_goes.py compares them exactly).
  return float(goes_class[1:]) * CLASS_BASE_FLUX[goes_class[0]]


def class_edges() -> dict[str, float]:
  """Lower flux edge (W m^-2) of each class letter: {'A': 1e-8, ..., 'X': 1e-4}.

  The flux of '<letter>1' by ``class_to_flux`` (sunkit-instruments' table),
  so code that needs the class boundaries uses the same ones as the labels.
  """
  return {letter: class_to_flux(f"{letter}1") for letter in CLASS_LETTERS}


def listed_true_flux(
  published_flux: float,
  peak,
  since: datetime.datetime = TRUE_FLUX_LISTS_SINCE,
  provenance: str = "swpc",
) -> float:
  """The true flux of a listed class, by its list's ``provenance`` (``LIST_PROVENANCES``).

  'swpc' and 'hek': published / 0.7 for flares peaking before ``since``, as published
  after; 'ncei': as published (true flux already).
  """
  if provenance not in LIST_PROVENANCES:
    raise ValueError(f"flare list provenance {provenance!r}: use one of {LIST_PROVENANCES}.")
  if provenance == "ncei":
    return published_flux
  return published_flux / SWPC_XRSB_SCALE if peak < since else published_flux


def list_provenance(columns, stated: str = "", given: str | None = None) -> str:
  """Where a flare list's classes come from (``LIST_PROVENANCES``), '' when nothing says.

  ``stated``: what the list says of itself (a JSON ``"provenance"`` key); ``given``:
  the caller's setting. Either decides (both: they must agree); else the list's
  ``columns``: a HEK export is 'hek', the SWPC cycle-24 layout 'swpc'.

  Raises:
    ValueError: a stated or given value not in ``LIST_PROVENANCES``, or the two differ.
  """
  choices = ", ".join(LIST_PROVENANCES)
  for value, what in ((stated, "its 'provenance' key"), (given, "provenance=")):
    if value and value not in LIST_PROVENANCES:
      raise ValueError(f"{what} {value!r} is not one of {choices}")
  if stated and given and stated != given:
    raise ValueError(
      f"the list says its classes come from {stated!r}, provenance={given!r}; drop one"
    )
  if stated or given:
    return stated or given
  columns = set(columns)
  if columns.intersection(_HEK_COLUMNS):
    return "hek"
  return "swpc" if columns.issuperset(_SWPC_LIST_COLUMNS) else ""


def class_scale_factor(times, scale: str, since: datetime.datetime = TRUE_FLUX_LISTS_SINCE):
  """Factor from the true scale to ``scale`` of fluxes measured at ``times`` (array).

  ``times``: ISO 8601 strings (as records store them; '' where there is no time,
  factor 1) or datetimes. 'true': 1. 'swpc': 0.7 before ``since`` (GOES 8-15, SWPC's
  published scale), 1 from then on (GOES-16+, never scaled).
  """
  if scale not in CLASS_SCALES:
    raise ValueError(f"class scale {scale!r}: use one of {CLASS_SCALES}.")
  if scale == "true":
    return np.ones(np.shape(times))
  flat = [t.decode() if isinstance(t, bytes) else t for t in np.ravel(np.asarray(times, object))]
  # ISO strings in one form ('T' between date and time) compare as the times do.
  text = [t.replace(" ", "T", 1) if isinstance(t, str) else t.isoformat() for t in flat]
  text = np.array(text, dtype=object).reshape(np.shape(times))
  before = (text != "") & (text < since.isoformat())  # '' (no time): factor 1
  return np.where(before, SWPC_XRSB_SCALE, 1.0)


def to_class_scale(true_flux, times, scale: str, since: datetime.datetime = TRUE_FLUX_LISTS_SINCE):
  """True fluxes measured at ``times`` on ``scale`` (``class_scale_factor``), float64."""
  return np.asarray(true_flux, np.float64) * class_scale_factor(times, scale, since)


# --------------------------------------------------------------- XRS ---


@dataclasses.dataclass
class XRSSeries:
  """GOES 1-8 Å flux on the true scale, sorted by time, bad samples removed.

  Attributes:
    times: datetime64[ns] (UTC) [n], strictly increasing.
    flux_long: float64 [n], W m^-2, true flux.
    sources: file names read.
    skipped: (file, why) of files left out by ``read_xrs(..., skip_empty=True)``.
    primary: {'YYYY-MM-DD': satellite number} of the satellite used each day.
    conversions: {file name: factor to the true scale}.
  """

  times: np.ndarray
  flux_long: np.ndarray
  sources: tuple[str, ...] = ()
  skipped: tuple[tuple[str, str], ...] = ()
  primary: dict = dataclasses.field(default_factory=dict)
  conversions: dict = dataclasses.field(default_factory=dict)

  def window(self, start, end) -> np.ndarray | None:
    """Flux samples in ``[start, end]`` when the series covers it, else None."""
    start, end = np.datetime64(start, "ns"), np.datetime64(end, "ns")
    lo = np.searchsorted(self.times, start, side="left")
    hi = np.searchsorted(self.times, end, side="right")
    if hi <= lo:
      return None
    inside = self.times[lo:hi]
    edges = np.concatenate([[start], inside, [end]])
    if np.max(np.diff(edges)) > MAX_XRS_GAP:
      return None
    return self.flux_long[lo:hi]

  def partial(self, start, end) -> np.ndarray:
    """Whatever samples lie in ``[start, end]`` (maybe none), gaps allowed."""
    return self.samples(start, end)[1]

  def samples(self, start, end) -> tuple[np.ndarray, np.ndarray]:
    """(times, flux) of whatever samples lie in ``[start, end]`` (maybe none), gaps allowed."""
    start, end = np.datetime64(start, "ns"), np.datetime64(end, "ns")
    lo = np.searchsorted(self.times, start, side="left")
    hi = np.searchsorted(self.times, end, side="right")
    return self.times[lo:hi], self.flux_long[lo:hi]


def true_scale_from_meta(meta: dict, name: str) -> float:
  """Factor that brings a file's XRS-B flux to the true scale, from its metadata."""
  lowered = {str(k).lower(): str(v) for k, v in meta.items()}
  origin = lowered.get("origin", "")
  text = " ".join(lowered.get(k, "") for k in ("title", "instrument", "program", "source"))
  if "SDAC" in origin.upper():
    return 1.0 / SWPC_XRSB_SCALE  # SDAC FITS carry the historical SWPC scaling.
  if "GOES 1-15" in text or "GOES 13-15" in lowered.get("references", ""):
    return 1.0  # NCEI reprocessed GOES 1-15: scaling removed, true flux.
  if "R-SERIES" in text.upper() or "GOES-R" in text.upper():
    return 1.0  # GOES-16+ were never scaled.
  raise XRSError(
    f"GOES XRS file {name}: cannot tell from its metadata whether its flux carries the SWPC "
    "0.7 scaling (not SDAC, not NCEI GOES 1-15, not GOES-R); pass to_true= explicitly."
  )


_SATELLITE_PATTERNS = (
  re.compile(r"(?:^|[^a-z])go(\d{2})"),  # SDAC: go1520110607.fits
  re.compile(r"_g(\d{2})(?:_|$)"),  # NCEI: sci_xrsf-l2-avg1m_g16_d20210101.nc
  re.compile(r"goes[ _-]?(\d{1,2})(?![\d-])"),  # goes_13_leap_second.nc, TELESCOP 'GOES 15'
)


def satellite_of(meta: dict, name: str) -> int:
  """The GOES satellite number of a file (metadata first, then its name); 0 unknown."""
  lowered = {str(k).lower(): str(v).lower() for k, v in meta.items()}
  # Not the title: NCEI's 'GOES 1-15' names a series, not a satellite.
  texts = [lowered.get("platform", ""), name.lower(), lowered.get("telescop", "")]
  for text in texts:
    if text.startswith("g") and text[1:].isdigit():  # NCEI platform attribute 'g16'
      return int(text[1:])
    for pattern in _SATELLITE_PATTERNS:
      match = pattern.search(text)
      if match:
        return int(match.group(1))
  return 0


def _good_mask_bits(path: pathlib.Path) -> int | None:
  """The bits of the XRS-B flag variable that mark bad data, from its attributes."""
  try:
    with h5netcdf.File(path, "r") as nc:
      var = next(
        (nc.variables[v] for v in ("xrsb_flag", "xrsb_flags", "b_flags") if v in nc.variables), None
      )
      if var is None:
        return None
      meanings = str(var.attrs.get("flag_meanings", "")).split()
      masks = np.atleast_1d(np.asarray(var.attrs.get("flag_masks", []))).astype(np.int64)
      if "good_data" in meanings and len(masks) == len(meanings):
        return int(masks[meanings.index("good_data")])
  except Exception:  # No attributes to go by: the caller falls back.
    return None
  return None


class _XRSFile(NamedTuple):
  name: str
  satellite: int
  to_true: float
  times: np.ndarray
  flux: np.ndarray


def _read_one_xrs(path: pathlib.Path, to_true: float | None) -> _XRSFile:
  import sunpy.timeseries  # ~3 s to import: only when XRS files are read.

  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      series = sunpy.timeseries.TimeSeries(str(path))
      frame = series.to_dataframe()
      meta = dict(series.meta.metas[0]) if series.meta.metas else {}
  except Exception as e:  # sunpy raises many types for unreadable files.
    raise XRSError(f"GOES XRS file {path}: sunpy cannot read it ({type(e).__name__}: {e})") from e
  if isinstance(series, list) or "xrsb" not in frame.columns:
    raise XRSError(f"GOES XRS file {path}: no 'xrsb' (1-8 Å) column; is it a GOES XRS file?")
  scale = true_scale_from_meta(meta, path.name) if to_true is None else float(to_true)
  times = frame.index.to_numpy().astype("datetime64[ns]")
  flux = frame["xrsb"].to_numpy(dtype=np.float64)
  good = np.isfinite(flux) & (flux > 0)
  if "xrsb_quality" in frame.columns:
    flags = np.nan_to_num(frame["xrsb_quality"].to_numpy(dtype=np.float64), nan=1).astype(np.int64)
    bits = _good_mask_bits(path)
    if bits is None:
      # In 1-minute averages only flag & 7 marks bad (other bits are set on
      # good samples); elsewhere any flag is bad.
      bits = 7 if "avg1m" in path.name else ~0
    good &= (flags & bits) == 0
  if not good.any():
    raise XRSNoDataError(
      f"GOES XRS file {path}: no usable 1-8 Å sample (all {len(flux)} are flagged bad, "
      "non-finite or <= 0); replace the file or leave it out"
    )
  satellite = satellite_of(meta, path.name)
  return _XRSFile(path.name, satellite, scale, times[good], flux[good] * scale)


def _days(times: np.ndarray) -> np.ndarray:
  return times.astype("datetime64[D]")


def _primary_by_day(parts: list[_XRSFile], primary) -> dict:
  """{day: satellite}: from the ``primary`` table where it names a day, else most samples."""
  counts: dict = {}
  for part in parts:
    days, n = np.unique(_days(part.times), return_counts=True)
    for day, count in zip(days.astype(str).tolist(), n):
      counts.setdefault(day, {}).setdefault(part.satellite, 0)
      counts[day][part.satellite] += int(count)
  table = [(np.datetime64(a, "D"), np.datetime64(b, "D"), int(s)) for a, b, s in (primary or ())]
  chosen = {}
  for day, per_satellite in counts.items():
    named = [s for a, b, s in table if a <= np.datetime64(day) <= b and s in per_satellite]
    chosen[day] = named[0] if named else max(per_satellite, key=lambda s: (per_satellite[s], s))
  return chosen


def read_xrs(
  paths, *, to_true: float | None = None, skip_empty: bool = False, primary=None
) -> XRSSeries:
  """Reads GOES XRS files (SDAC FITS, NCEI netCDF GOES 8-15, GOES-16+) into one series.

  Args:
    paths: a file or an iterable of files; per UTC day the samples of one
      primary satellite are kept (module docstring), sorted by time and
      de-duplicated (the first file wins on equal times).
    to_true: factor to the true scale for every file; None decides per file
      from its metadata (``true_scale_from_meta``).
    skip_empty: list files without a usable sample in the result's ``skipped``
      instead of raising ``XRSNoDataError`` (the series may then be empty).
    primary: optional rows (first day, last day, satellite number) naming the
      primary satellite, e.g. SWPC's list; days it does not name use the rule.

  Raises:
    XRSError: a file sunpy cannot read, or whose scaling is unknown.
    XRSNoDataError: a file without a usable sample (unless ``skip_empty``).
  """
  if isinstance(paths, str | pathlib.Path):
    paths = [paths]
  paths = [pathlib.Path(p) for p in paths]
  if not paths:
    raise XRSError("read_xrs: no GOES XRS files given.")
  parts, skipped = [], []
  for path in paths:
    try:
      parts.append(_read_one_xrs(path, to_true))
    except XRSNoDataError as e:
      if not skip_empty:
        raise
      skipped.append((str(path), str(e)))
  chosen = _primary_by_day(parts, primary)
  kept_t, kept_f = [np.array([], "datetime64[ns]")], [np.array([], np.float64)]
  for part in parts:
    days, inverse = np.unique(_days(part.times).astype(str), return_inverse=True)
    mine = np.array([chosen[d] == part.satellite for d in days.tolist()], dtype=bool)[inverse]
    kept_t.append(part.times[mine])
    kept_f.append(part.flux[mine])
  times, flux = np.concatenate(kept_t), np.concatenate(kept_f)
  order = np.argsort(times, kind="stable")
  times, flux = times[order], flux[order]
  keep = np.diff(times, prepend=times[:1] - np.timedelta64(1, "ns")) > np.timedelta64(0, "ns")
  return XRSSeries(
    times[keep],
    flux[keep],
    tuple(p.name for p in parts),
    tuple(skipped),
    primary={d: int(s) for d, s in sorted(chosen.items())},
    conversions={p.name: p.to_true for p in parts},
  )
