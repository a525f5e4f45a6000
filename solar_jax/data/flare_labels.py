"""Flare lists, GOES XRS fluxes and the GOES class label of an AIA frame.

Everything here works on naive UTC datetimes (aware ones are converted) and on
1-8 Å fluxes in W m^-2 on the SWPC/operational scale, the scale of published
GOES classes (see DESIGN.md, 'GOES flux facts'):

* SDAC FITS files (``ORIGIN='SDAC/GSFC'``, e.g. ``go1520110607.fits``) and
  GOES-16+ files are used as they are;
* NCEI science-quality netCDF files of GOES 1-15 (title or instrument names
  'GOES 1-15') are unscaled and their XRS-B flux is multiplied by 0.7;
* any other file must be given a scale explicitly (``read_xrs(...,
  xrsb_scale=...)``), because guessing it wrongly shifts classes by 43 %.

Label rule (``label_frame``), with window w:

* flaring: a listed flare peaks within ``|t - peak| <= w``. Of several, the
  one with the largest listed flux is the event. The label flux is the larger
  of the listed flux and, where XRS data cover ``[t - w, t + w]``, the peak XRS
  flux in that window; ``source`` says which won. The list is never overridden
  downwards (a window may cut the XRS peak), but an unlisted stronger flare in
  the window raises the class.
* quiet: ``'background'`` labels by the median XRS flux in ``[t - w, t + w]``
  (``source='xrs_background'``), or returns None without XRS coverage;
  ``'drop'`` returns None.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import datetime
import functools
import json
import math
import pathlib
import re
import warnings
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import astropy.units as u
import h5netcdf
import numpy as np

from solar_jax import errors

CLASS_LETTERS = ("A", "B", "C", "M", "X")

# NCEI science-quality GOES 8-15 XRS-B fluxes are 1/0.7 of the SWPC scale.
SWPC_XRSB_SCALE = 0.7

# XRS coverage: the largest gap between samples (or to a window edge) that a
# window may contain and still count as covered.
MAX_XRS_GAP = np.timedelta64(5, "m")

QUIET_POLICIES = ("background", "drop")


class FlareListError(errors.UserError, ValueError):
  """A flare list that cannot be read (names the file and the column or row)."""


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


@functools.cache
def _letter_by_decade() -> dict[int, str]:
  """{-8: 'A', ..., -4: 'X'} from sunkit-instruments' own conversion table."""
  from sunkit_instruments.goes_xrs.goes_xrs import GOES_CONVERSION_DICT  # lazy: see flux_to_class

  table = {}
  for letter, flux in GOES_CONVERSION_DICT.items():
    if letter in CLASS_LETTERS:
      table[int(round(np.log10(u.Quantity(flux).to_value(u.W / u.m**2))))] = letter
  return table


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
  # Cached: a flare list repeats a few hundred class strings thousands of times.
  from sunkit_instruments.goes_xrs import flareclass_to_flux  # lazy: see flux_to_class

  return float(flareclass_to_flux(goes_class).to_value(u.W / u.m**2))


def class_edges() -> dict[str, float]:
  """Lower flux edge (W m^-2) of each class letter: {'A': 1e-8, ..., 'X': 1e-4}.

  The flux of '<letter>1' by ``class_to_flux`` (sunkit-instruments' table),
  so code that needs the class boundaries uses the same ones as the labels.
  """
  return {letter: class_to_flux(f"{letter}1") for letter in CLASS_LETTERS}


# --------------------------------------------------------- flare list ---


@dataclasses.dataclass
class Flare:
  """One flare: naive UTC times, class string and its flux (SWPC scale)."""

  event_id: str
  start: datetime.datetime
  peak: datetime.datetime
  end: datetime.datetime
  goes_class: str
  peak_flux: float


class SkippedRow(NamedTuple):
  """A row left out: its number (1 = first data row) and why ('bad_time: ...')."""

  row: int
  detail: str

  @property
  def reason(self) -> str:  # one of ROW_REASONS
    return self.detail.split(":", 1)[0]


# Why a row is left out; only 'no_goes_class' (HEK events of non-GOES methods) is not an error.
ROW_REASONS = ("no_goes_class", "bad_time", "bad_class", "field_count")

# A list with more than this fraction of unreadable rows is an error, not a
# list with a few gaps: a shifted column or a wrong time format spoils every
# row at once, and building on the rest would store flaring frames as quiet.
MAX_UNREADABLE_FRACTION = 0.5


class FlareList(list):
  """A list of ``Flare`` with ``skipped``: the ``SkippedRow`` records of rows left out."""

  def __init__(self, flares=(), skipped=(), path="", rows=0):
    super().__init__(flares)
    self.skipped = [SkippedRow(*s) for s in skipped]
    self.path = str(path)
    self.rows = int(rows)


# Column spellings: SWPC-style list first, HEK second.
_COLUMNS = {
  "start": ("event_starttime",),
  "peak": ("event_peaktime",),
  "end": ("event_endtime",),
  "goes_class": ("goes_class", "fl_goescls"),
}
_ID_COLUMNS = ("event_id", "SOL_standard", "sol_standard", "kb_archivid")

# The time spellings of the lists we read and no others: ISO 8601 with 'T' or a
# space (SWPC list and demo: '2011-06-07 06:41:00'; HEK: '2011-06-07T06:41:00.000'), a date,
# optionally 'Z', 'UTC' or +-HH:MM. 'MM/DD/YYYY', 'EST', ... are errors, not guesses.
_TIME_RE = re.compile(
  r"(\d{4})-(\d{2})-(\d{2})"
  r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
  r"\s*(Z|UTC|[+-]\d{2}:?\d{2})?"
)
TIME_FORMATS = "YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z|UTC|+HH:MM]"


def to_naive_utc(value) -> datetime.datetime:
  """datetime / np.datetime64 / ISO 8601 string -> naive datetime in UTC.

  Strings must be ISO 8601 (``TIME_FORMATS``); naive ones are taken as UTC.
  """
  if isinstance(value, np.datetime64):
    value = value.astype("datetime64[us]").item()
  if isinstance(value, str):
    value = _parse_time(value)
  if not isinstance(value, datetime.datetime):
    raise TypeError(f"cannot use {value!r} as a time")
  if value.tzinfo is not None:
    value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
  return value


def _parse_time(text: str) -> datetime.datetime:
  match = _TIME_RE.fullmatch(text.strip())
  if match is None:
    raise ValueError(f"{text!r} is not an ISO 8601 UTC time ({TIME_FORMATS})")
  *fields, frac, zone = match.groups()
  micro = int((frac or "0")[:6].ljust(6, "0"))
  try:  # Bad values raise here: month 13, 25:00, an offset of 24 h or more ...
    tz = datetime.timezone.utc if zone else None
    if zone and zone[0] in "+-":
      minutes = (int(zone[1:3]) * 60 + int(zone[-2:])) * (-1 if zone[0] == "-" else 1)
      tz = datetime.timezone(datetime.timedelta(minutes=minutes))
    value = datetime.datetime(*(int(f or 0) for f in fields), micro, tzinfo=tz)
  except ValueError as e:
    raise ValueError(f"{text!r} is not a valid time ({e})") from e
  return to_naive_utc(value)


def _records(path: pathlib.Path) -> list[tuple[int | None, dict | str]]:
  """(CSV line or None, {column: field} or 'field_count: ...' reason) of a CSV or HEK JSON."""
  try:
    text = path.read_text(encoding="utf-8-sig")
  except (OSError, UnicodeDecodeError) as e:
    raise FlareListError(f"flare list {path}: cannot read it ({e})") from e
  stripped = text.lstrip()
  if stripped.startswith(("{", "[")):
    try:
      data = json.loads(text)
    except json.JSONDecodeError as e:
      raise FlareListError(f"flare list {path}: invalid JSON ({e})") from e
    # HEK's API answers {"result": [...]}; a plain list of events is fine too.
    rows = data.get("result", data.get("events")) if isinstance(data, dict) else data
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
      raise FlareListError(
        f"flare list {path}: JSON must be a list of events or {{'result': [...]}}"
      )
    return [(None, r) for r in rows]
  try:
    reader = csv.reader(text.splitlines())
    table = [(reader.line_num, row) for row in reader if row]
  except csv.Error as e:
    raise FlareListError(f"flare list {path}: invalid CSV ({e})") from e
  if not table:
    raise FlareListError(f"flare list {path}: the file is empty")
  header = _csv_header(path, table[0][1], [row for _, row in table[1:]])
  return [(line, _csv_row(row, header)) for line, row in table[1:]]


def _csv_header(path: pathlib.Path, header: list[str], body: list[list[str]]) -> list[str]:
  """The column names of every field of a data row; '' names the index column.

  pandas writes its row index as an unnamed first column, named '' (demo list)
  or not at all (SWPC list: rows have a field more than the header). Decided
  once from the whole file: one row's trailing comma must not shift every row.
  """
  while len(header) > 1 and header[-1].strip() == "":
    header = header[:-1]  # a trailing comma on the header line names nothing
  names = [h.strip() for h in header]
  if names[0] != "":
    # An extra field that is not empty cannot be a trailing comma.
    indexed = sum(len(r) == len(names) + 1 and r[-1].strip() != "" for r in body)
    plain = sum(len(r) == len(names) for r in body)
    if indexed > plain:
      names = ["", *names]
  bad = [n for i, n in enumerate(names) if (i and not n) or (n and names.count(n) > 1)]
  if bad:
    what = f"duplicate column {bad[0]!r}" if bad[0] else "an empty column name"
    raise FlareListError(f"flare list {path}: malformed header line 1 ({what}); fix the header")
  return names


def _csv_row(row: list[str], names: list[str]) -> dict | str:
  """A CSV row as {column: field}, or the 'field_count' reason it cannot be one."""
  if len(row) > len(names) and not any(f.strip() for f in row[len(names) :]):
    row = row[: len(names)]  # trailing commas: empty fields past the last column
  if len(row) != len(names):
    return f"field_count: {len(row)} fields, the header has {len(names)} columns"
  return {n: f for n, f in zip(names, row) if n}


def _pick(row: dict, names: Sequence[str]):
  for name in names:
    if name in row:
      return row[name]
  return None


def _flare(row: dict) -> Flare:
  """One row as a ``Flare``; ValueError whose message starts with a ``ROW_REASONS`` entry."""
  if isinstance(row, str):
    raise ValueError(row)  # _csv_row's reason
  times = {}
  for key in ("start", "peak", "end"):
    value = _pick(row, _COLUMNS[key])
    try:
      times[key] = to_naive_utc(str(value))
    except (TypeError, ValueError) as e:
      raise ValueError(f"bad_time: {_COLUMNS[key][0]} {e}") from e
  goes_class = str(_pick(row, _COLUMNS["goes_class"]) or "").strip().upper()
  if not goes_class:
    raise ValueError("no_goes_class: the event has no GOES class")
  try:
    flux = class_to_flux(goes_class)
  except ValueError as e:
    raise ValueError(f"bad_class: {e}") from e
  event_id = str(_pick(row, _ID_COLUMNS) or "").strip()
  if not event_id:
    event_id = "SOL" + times["peak"].strftime("%Y-%m-%dT%H:%M:%S")
  return Flare(event_id=event_id, goes_class=goes_class, peak_flux=flux, **times)


def read_flare_list(path) -> FlareList:
  """Reads an SWPC-style flare list CSV or a HEK export (CSV or JSON).

  Accepted columns: ``event_starttime``, ``event_peaktime``,
  ``event_endtime`` and ``goes_class`` (SWPC list) or ``fl_goescls`` (HEK).
  The event id is ``event_id``, ``SOL_standard`` or ``kb_archivid`` when
  present, else ``SOL<peak time>``. Flux comes from the class string. Times
  must be ISO 8601 (``TIME_FORMATS``), UTC unless they carry an offset.

  Returns:
    A ``FlareList`` (``Flare`` sorted by peak) whose ``skipped`` holds a
    ``SkippedRow`` per row left out (``ROW_REASONS``: no GOES class as in HEK
    events of other methods, unreadable time or class, wrong field count).

  Raises:
    FlareListError: unreadable file, a malformed header, a required column is
      missing, or more than ``MAX_UNREADABLE_FRACTION`` of the rows cannot be
      read (the message names the first bad row and why).
  """
  path = pathlib.Path(path)
  records = _records(path)
  rows = [r for _, r in records if isinstance(r, dict)]
  if rows:
    present = set().union(*(r.keys() for r in rows[:50]))
    for field, names in _COLUMNS.items():
      if not present.intersection(names):
        raise FlareListError(
          f"flare list {path}: no column {' or '.join(names)} (for the flare {field}); "
          f"columns are {sorted(c for c in present if c)}"
        )
  flares, skipped = [], []
  for number, (line, row) in enumerate(records, start=1):
    try:
      flares.append(_flare(row))
    except ValueError as e:
      reason, detail = str(e).split(": ", 1)
      where = "" if line is None else f"line {line}: "
      skipped.append(SkippedRow(number, f"{reason}: {where}{detail}"))
  unreadable = [s for s in skipped if s.reason != "no_goes_class"]
  if unreadable and len(unreadable) > MAX_UNREADABLE_FRACTION * len(records):
    first = unreadable[0]
    raise FlareListError(
      f"flare list {path}: {len(unreadable)} of {len(records)} rows cannot be read "
      f"(more than {MAX_UNREADABLE_FRACTION:.0%}); first: row {first.row}, {first.detail}"
    )
  flares.sort(key=lambda f: f.peak)
  return FlareList(flares, skipped, path, rows=len(records))


class FlareIndex:
  """Flares sorted by peak time, for fast window look-ups (``bisect``)."""

  def __init__(self, flares: Iterable[Flare]):
    self.flares = sorted(flares, key=lambda f: f.peak)
    self.peaks = [f.peak for f in self.flares]

  def __len__(self) -> int:
    return len(self.flares)

  def within(self, time: datetime.datetime, window: datetime.timedelta) -> list[Flare]:
    """Flares whose peak lies in ``[time - window, time + window]``."""
    lo = bisect.bisect_left(self.peaks, time - window)
    hi = bisect.bisect_right(self.peaks, time + window)
    return self.flares[lo:hi]


# --------------------------------------------------------------- XRS ---


@dataclasses.dataclass
class XRSSeries:
  """GOES 1-8 Å flux on the SWPC scale, sorted by time, bad samples removed.

  Attributes:
    times: datetime64[ns] (UTC) [n], strictly increasing.
    flux_long: float64 [n], W m^-2.
    sources: file names read.
    skipped: (file, why) of files left out by ``read_xrs(..., skip_empty=True)``.
  """

  times: np.ndarray
  flux_long: np.ndarray
  sources: tuple[str, ...] = ()
  skipped: tuple[tuple[str, str], ...] = ()

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


def xrsb_scale_from_meta(meta: dict, name: str) -> float:
  """Factor that brings a file's XRS-B flux to the SWPC scale, from its metadata."""
  lowered = {str(k).lower(): str(v) for k, v in meta.items()}
  origin = lowered.get("origin", "")
  text = " ".join(lowered.get(k, "") for k in ("title", "instrument", "program", "source"))
  if "SDAC" in origin.upper():
    return 1.0  # SDAC FITS carry the historical SWPC scaling already.
  if "GOES 1-15" in text or "GOES 13-15" in lowered.get("references", ""):
    return SWPC_XRSB_SCALE  # NCEI reprocessed GOES 1-15: scaling removed.
  if "R-SERIES" in text.upper() or "GOES-R" in text.upper():
    return 1.0  # GOES-16+ were never scaled.
  raise XRSError(
    f"GOES XRS file {name}: cannot tell from its metadata whether its flux carries the SWPC "
    "0.7 scaling (not SDAC, not NCEI GOES 1-15, not GOES-R); pass xrsb_scale= explicitly."
  )


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


def _read_one_xrs(path: pathlib.Path, xrsb_scale: float | None):
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
  scale = xrsb_scale_from_meta(meta, path.name) if xrsb_scale is None else float(xrsb_scale)
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
  return times[good], flux[good] * scale


def read_xrs(paths, *, xrsb_scale: float | None = None, skip_empty: bool = False) -> XRSSeries:
  """Reads GOES XRS files (SDAC FITS, NCEI netCDF GOES 8-15, GOES-16+) into one series.

  Args:
    paths: a file or an iterable of files; samples are merged, sorted by time
      and de-duplicated (the first file wins on equal times).
    xrsb_scale: factor to the SWPC scale for every file; None decides per file
      from its metadata (``xrsb_scale_from_meta``).
    skip_empty: list files without a usable sample in the result's ``skipped``
      instead of raising ``XRSNoDataError`` (the series may then be empty).

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
      parts.append((path, *_read_one_xrs(path, xrsb_scale)))
    except XRSNoDataError as e:
      if not skip_empty:
        raise
      skipped.append((str(path), str(e)))
  times = np.concatenate([t for _, t, _ in parts] + [np.array([], "datetime64[ns]")])
  flux = np.concatenate([f for _, _, f in parts] + [np.array([], np.float64)])
  order = np.argsort(times, kind="stable")
  times, flux = times[order], flux[order]
  keep = np.diff(times, prepend=times[:1] - np.timedelta64(1, "ns")) > np.timedelta64(0, "ns")
  sources = tuple(p.name for p, _, _ in parts)
  return XRSSeries(times[keep], flux[keep], sources, tuple(skipped))


# ------------------------------------------------------------ labels ---


@dataclasses.dataclass
class Label:
  """The GOES class label of one frame."""

  letter: str
  flux: float
  flaring: bool
  event_id: str
  source: str  # 'flare_list' | 'xrs_peak' | 'xrs_background'


def label_frame(
  time,
  flares,
  xrs: XRSSeries | None,
  *,
  window_minutes: float,
  quiet_policy: str,
) -> Label | None:
  """GOES class label of a frame observed at ``time`` (rule in the module docstring).

  Args:
    time: frame time (naive UTC datetime, aware datetime, datetime64 or ISO).
    flares: a ``FlareIndex`` (build it once for many frames) or flares.
    xrs: GOES XRS series or None.
    window_minutes: half-width of the window around the frame, minutes.
    quiet_policy: 'background' or 'drop'.

  Returns:
    A ``Label``, or None when the frame gets no label (quiet with 'drop', or
    quiet without XRS coverage): the caller skips it with reason 'no_label'.
  """
  if quiet_policy not in QUIET_POLICIES:
    raise ValueError(f"quiet_policy={quiet_policy!r}: use one of {QUIET_POLICIES}.")
  if not (math.isfinite(window_minutes) and window_minutes >= 0):
    raise ValueError(f"window_minutes={window_minutes!r} must be >= 0.")
  if not isinstance(flares, FlareIndex):
    flares = FlareIndex(flares)
  time = to_naive_utc(time)
  window = datetime.timedelta(minutes=window_minutes)
  samples = None if xrs is None else xrs.window(time - window, time + window)

  nearby = flares.within(time, window)
  if nearby:
    event = max(nearby, key=lambda f: (f.peak_flux, -abs((f.peak - time).total_seconds())))
    flux, source = event.peak_flux, "flare_list"
    if samples is not None and float(samples.max()) > flux:
      flux, source = float(samples.max()), "xrs_peak"
    return Label(class_letter(flux), flux, True, event.event_id, source)
  if quiet_policy == "drop" or samples is None:
    return None
  flux = float(np.median(samples))
  return Label(class_letter(flux), flux, False, "", "xrs_background")
