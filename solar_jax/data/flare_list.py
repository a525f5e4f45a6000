"""Flare lists (SWPC-style CSV, HEK exports): read, checked, indexed, de-duplicated.

Times are naive UTC datetimes (aware ones are converted). Each flare keeps its
class as published, where its list got it (``provenance``, ``goes.LIST_PROVENANCES``)
and its peak flux on the dataset's true scale (``goes.listed_true_flux``: SWPC and
HEK classes of flares before the GOES-16 era carry the SWPC 0.7 scaling, NCEI's
reprocessed classes are true fluxes). ``merge_duplicates`` joins the HEK's
near-duplicate events (one flare reported by several detection modules).

A list's provenance: a row's ``class_provenance`` field, else the list's JSON
``"provenance"`` key or the caller's ``provenance=`` (the builder's
``flare_list_provenance``), else its format (``goes.list_provenance``); a list
nobody can place is an error: a wrong guess shifts every class before 2020 by 43 %.
"""

from __future__ import annotations

import bisect
import collections
import csv
import dataclasses
import datetime
import json
import math
import pathlib
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from solar_jax import errors
from solar_jax.data import goes
from solar_jax.data.flare_groups import Group, Shelf


class FlareListError(errors.UserError, ValueError):
  """A flare list that cannot be read (names the file and the column or row)."""


@dataclasses.dataclass
class Flare:
  """One flare: naive UTC times, its class as published, peak flux on the TRUE scale.

  ``noaa_ar`` is the NOAA active region number (0 when the list gives none);
  ``provenance`` where the class comes from (``goes.LIST_PROVENANCES``: its factor);
  ``hgs_lat``/``hgs_lon`` the Stonyhurst position in degrees (NaN when not listed).
  """

  event_id: str
  start: datetime.datetime
  peak: datetime.datetime
  end: datetime.datetime
  goes_class: str
  peak_flux: float
  noaa_ar: int = 0
  provenance: str = "swpc"
  hgs_lat: float = math.nan
  hgs_lon: float = math.nan

  def flux_on(self, scale: str, since: datetime.datetime = goes.TRUE_FLUX_LISTS_SINCE) -> float:
    """The peak flux on a class scale (``goes.CLASS_SCALES``).

    'swpc': the published flux itself for an SWPC or HEK class (exact, no round
    trip through 0.7), else the true flux times the SWPC factor of its peak.
    """
    if scale == "swpc" and self.provenance != "ncei":
      return goes.class_to_flux(self.goes_class)
    return float(goes.to_class_scale(self.peak_flux, [self.peak], scale, since)[0])


class SkippedRow(NamedTuple):
  """A row left out: its number (1 = first data row) and why ('bad_time: ...')."""

  row: int
  detail: str

  @property
  def reason(self) -> str:  # one of ROW_REASONS
    return self.detail.split(":", 1)[0]


# Why a row is left out; only 'no_goes_class' (HEK events of non-GOES methods) is not an error.
ROW_REASONS = ("no_goes_class", "bad_time", "bad_class", "field_count", "bad_order", "too_long")
ROW_REASONS += ("bad_provenance",)  # a class_provenance field that is none of LIST_PROVENANCES

# The longest flare a list may give (end - start). GOES event lists end a flare when
# the 1-8 Å flux has fallen half-way back to its pre-flare level, so events last
# minutes to a few hours: of the 8,606 flares of the cycle-24 list (2010-2018) the
# median lasts 14 min, 99.9 % end within 4.4 h and the longest (C1.5, 2016-04-10)
# takes 7.25 h. 12 h keeps the rarest long-duration events with room to spare and
# drops typos such as an end a month late, which would make every frame of that
# month 'flaring'; frame_facts looks flares up within this much of a frame's time.
MAX_FLARE_DURATION = datetime.timedelta(hours=12)


class RepairedRow(NamedTuple):
  """A row read after a repair: its number (1 = first data row) and what was changed."""

  row: int
  detail: str


# A list with more than this fraction of unreadable rows is an error, not a
# list with a few gaps: a shifted column or a wrong time format spoils every
# row at once, and building on the rest would store flaring frames as quiet.
MAX_UNREADABLE_FRACTION = 0.5


class FlareList(list):
  """A list of ``Flare`` with ``skipped`` (``SkippedRow`` of rows left out) and ``repaired``.

  ``repaired`` holds a ``RepairedRow`` per row whose peak or end was moved to the
  next day (``_checked_order``: a midnight wrap).
  """

  def __init__(self, flares=(), skipped=(), path="", rows=0, repaired=()):
    super().__init__(flares)
    self.skipped = [SkippedRow(*s) for s in skipped]
    self.repaired = [RepairedRow(*r) for r in repaired]
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
_AR_COLUMNS = ("noaa_ar", "ar_noaanum")
# Stonyhurst position (degrees): SWPC-style list, then HEK (hgs_y is latitude).
_LAT_COLUMNS, _LON_COLUMNS = ("hgs_lat", "hgs_y"), ("hgs_lon", "hgs_x")
# A per-row statement of where the class comes from (goes.LIST_PROVENANCES).
PROVENANCE_COLUMN = "class_provenance"

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


def _records(path: pathlib.Path) -> tuple[list[tuple[int | None, dict | str]], str]:
  """((CSV line or None, {column: field} or 'field_count: ...' reason) per row, the
  provenance a JSON list states at its top level ('' none)) of a CSV or HEK JSON."""
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
    stated = str(data.get("provenance") or "") if isinstance(data, dict) else ""
    return [(None, r) for r in rows], stated.strip().lower()
  try:
    reader = csv.reader(text.splitlines())
    table = [(reader.line_num, row) for row in reader if row]
  except csv.Error as e:
    raise FlareListError(f"flare list {path}: invalid CSV ({e})") from e
  if not table:
    raise FlareListError(f"flare list {path}: the file is empty")
  header = _csv_header(path, table[0][1], [row for _, row in table[1:]])
  return [(line, _csv_row(row, header)) for line, row in table[1:]], ""


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


def _noaa_ar(row: dict) -> int:
  """The NOAA AR number of a row, 0 when blank, unknown or not a number."""
  text = str(_pick(row, _AR_COLUMNS) or "").strip()
  try:
    value = int(float(text)) if text else 0
  except ValueError:
    return 0
  return value if value > 0 else 0


def _degrees(row: dict, names: Sequence[str], limit: float) -> float:
  """A position column in degrees; NaN when blank, not a number or beyond +-``limit``."""
  text = str(_pick(row, names) or "").strip()
  try:
    value = float(text) if text else math.nan
  except ValueError:
    return math.nan
  return value if abs(value) <= limit else math.nan


def list_provenance(path, columns, stated: str = "", given: str | None = None) -> str:
  """``goes.list_provenance`` of a list; its ValueError as a ``FlareListError`` naming ``path``."""
  try:
    return goes.list_provenance(columns, stated, given)
  except ValueError as e:
    raise FlareListError(f"flare list {path}: {e}") from None


def _flare(row: dict, true_flux_since: datetime.datetime, provenance: str) -> tuple[Flare, str]:
  """(one row as a ``Flare``, its repair or ''); ValueError starting with a ``ROW_REASONS`` entry."""
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
  stated = str(row.get(PROVENANCE_COLUMN) or "").strip().lower()
  if stated and stated not in goes.LIST_PROVENANCES:
    raise ValueError(
      f"bad_provenance: {PROVENANCE_COLUMN} {stated!r} is not one of "
      f"{', '.join(goes.LIST_PROVENANCES)}"
    )
  provenance = stated or provenance
  if not provenance:
    raise _Unplaced(PROVENANCE_COLUMN)
  repair = _checked_order(times)  # before the flux: the scale depends on the peak's date
  try:
    flux = goes.listed_true_flux(
      goes.class_to_flux(goes_class), times["peak"], true_flux_since, provenance
    )
  except ValueError as e:
    raise ValueError(f"bad_class: {e}") from e
  event_id = str(_pick(row, _ID_COLUMNS) or "").strip()
  if not event_id:
    event_id = "SOL" + times["peak"].strftime("%Y-%m-%dT%H:%M:%S")
  flare = Flare(
    event_id=event_id,
    goes_class=goes_class,
    peak_flux=flux,
    noaa_ar=_noaa_ar(row),
    provenance=provenance,
    hgs_lat=_degrees(row, _LAT_COLUMNS, 90.0),
    hgs_lon=_degrees(row, _LON_COLUMNS, 180.0),
    **times,
  )
  return flare, repair


class _Unplaced(Exception):
  """A row whose list's provenance nobody decided (``read_flare_list`` names the remedies)."""


def _checked_order(times: dict) -> str:
  """Checks start <= peak <= end, repairing a midnight wrap in place; '' or what was repaired.

  SWPC-style lists give the peak and end as a time on the start's day: a flare that
  starts at 23:53 and ends at 00:04 reads as ending 23 h 49 min before it starts.
  A peak or end on the start's calendar day but before it is moved to the next
  day. Any other order is 'bad_order'; a flare longer than ``MAX_FLARE_DURATION``
  is 'too_long'. Raises ValueError with that reason.
  """
  start, repaired = times["start"], []
  for key, column in (("peak", "event_peaktime"), ("end", "event_endtime")):
    value = times[key]
    if value < start and value.date() == start.date():
      times[key] = value + datetime.timedelta(days=1)
      repaired.append(f"{column} {value:%H:%M:%S} before the start {start:%H:%M:%S}")
  if not times["start"] <= times["peak"] <= times["end"]:
    raise ValueError(
      f"bad_order: start {times['start']}, peak {times['peak']}, end {times['end']} "
      "are not in order"
    )
  if times["end"] - times["start"] > MAX_FLARE_DURATION:
    raise ValueError(
      f"too_long: start {times['start']} to end {times['end']} lasts "
      f"{times['end'] - times['start']}, more than {MAX_FLARE_DURATION} (a typo?)"
    )
  if not repaired:
    return ""
  return "midnight_wrap: " + " and ".join(repaired) + ": taken as the next day"


def read_flare_list(
  path,
  *,
  true_flux_since: datetime.datetime = goes.TRUE_FLUX_LISTS_SINCE,
  provenance: str | None = None,
) -> FlareList:
  """Reads an SWPC-style flare list CSV or a HEK export (CSV or JSON).

  Accepted columns: ``event_starttime``, ``event_peaktime``,
  ``event_endtime`` and ``goes_class`` (SWPC list) or ``fl_goescls`` (HEK).
  The event id is ``event_id``, ``SOL_standard`` or ``kb_archivid`` when
  present, else ``SOL<peak time>``. Flux comes from the class string. Times
  must be ISO 8601 (``TIME_FORMATS``), UTC unless they carry an offset.

  The flux of a class depends on where the list got it (``provenance``, one of
  ``goes.LIST_PROVENANCES``, kept on each ``Flare``): a row's ``class_provenance``
  field, else the list's own statement or ``provenance`` (the caller's setting,
  e.g. the builder's ``flare_list_provenance``; the two must agree), else the
  list's format (``list_provenance``).

  Each row must give start <= peak <= end: a peak or end before the start on the
  start's day (a midnight wrap of an SWPC list) is moved to the next day and
  listed in ``repaired``; any other order is skipped ('bad_order'), and so is a
  flare lasting more than ``MAX_FLARE_DURATION`` ('too_long').

  Returns:
    A ``FlareList`` (``Flare`` sorted by peak) whose ``skipped`` holds a
    ``SkippedRow`` per row left out (``ROW_REASONS``: no GOES class as in HEK
    events of other methods, unreadable time or class, wrong field count, times
    out of order, too long) and ``repaired`` a ``RepairedRow`` per midnight wrap.

  Raises:
    FlareListError: unreadable file, a malformed header, a required column is
      missing, no row at all (a header alone) or no flare read, a row whose
      provenance nothing decides (the message names the settings that do), or more than
      ``MAX_UNREADABLE_FRACTION`` of the rows cannot be read (the message names
      the first bad row and why).
  """
  path = pathlib.Path(path)
  records, stated = _records(path)
  rows = [r for _, r in records if isinstance(r, dict)]
  present = set().union(*(r.keys() for r in rows[:50])) if rows else set()
  if rows:
    for field, names in _COLUMNS.items():
      if not present.intersection(names):
        raise FlareListError(
          f"flare list {path}: no column {' or '.join(names)} (for the flare {field}); "
          f"columns are {sorted(c for c in present if c)}"
        )
  if not records:
    raise FlareListError(
      f"flare list {path}: no flare rows, only a header; every frame would be labelled "
      "quiet: give the list of the archive's period"
    )
  default = list_provenance(path, present, stated, provenance)
  flares, skipped, repaired = [], [], []
  for number, (line, row) in enumerate(records, start=1):
    where = "" if line is None else f"line {line}: "
    try:
      flare, repair = _flare(row, true_flux_since, default)
    except _Unplaced:
      raise FlareListError(
        f"flare list {path}: cannot tell where its classes come from (SWPC and HEK "
        "classes before 2020 carry the 0.7 scaling, NCEI's are true fluxes); say it: "
        f"provenance= ({', '.join(goes.LIST_PROVENANCES)}; the builder config's "
        f"flare_list_provenance) or a {PROVENANCE_COLUMN} column"
      ) from None
    except ValueError as e:
      reason, detail = str(e).split(": ", 1)
      skipped.append(SkippedRow(number, f"{reason}: {where}{detail}"))
      continue
    flares.append(flare)
    if repair:
      kind, detail = repair.split(": ", 1)
      repaired.append(RepairedRow(number, f"{kind}: {where}{detail}"))
  unreadable = [s for s in skipped if s.reason != "no_goes_class"]
  if unreadable and len(unreadable) > MAX_UNREADABLE_FRACTION * len(records):
    first = unreadable[0]
    raise FlareListError(
      f"flare list {path}: {len(unreadable)} of {len(records)} rows cannot be read "
      f"(more than {MAX_UNREADABLE_FRACTION:.0%}); first: row {first.row}, {first.detail}"
    )
  if not flares:
    counts = collections.Counter(s.reason for s in skipped)
    raise FlareListError(
      f"flare list {path}: none of its {len(records)} rows is a GOES flare "
      f"({', '.join(f'{k}={v}' for k, v in sorted(counts.items()))}); every frame would "
      "be labelled quiet: give a list with GOES classes"
    )
  flares.sort(key=lambda f: f.peak)
  return FlareList(flares, skipped, path, rows=len(records), repaired=repaired)


class FlareIndex:
  """Flares sorted by peak time, for fast window look-ups (``bisect``)."""

  def __init__(self, flares: Iterable[Flare]):
    self.flares = sorted(flares, key=lambda f: f.peak)
    self.peaks = [f.peak for f in self.flares]

  def __len__(self) -> int:
    return len(self.flares)

  def within(self, time: datetime.datetime, window: datetime.timedelta) -> list[Flare]:
    """Flares whose peak lies in ``[time - window, time + window]``."""
    return self.peaking(time - window, time + window)

  def peaking(self, lo: datetime.datetime, hi: datetime.datetime, *, open_lo=False) -> list:
    """Flares peaking in ``[lo, hi]`` (``(lo, hi]`` with ``open_lo``)."""
    first = (bisect.bisect_right if open_lo else bisect.bisect_left)(self.peaks, lo)
    return self.flares[first : bisect.bisect_right(self.peaks, hi)]


def merge_duplicates(flares: Sequence[Flare], minutes: float = 6.0) -> tuple[list[Flare], int]:
  """Joins near-duplicate events: peaks within ``minutes`` and the same NOAA AR.

  The HEK lists one flare once per detection module (SWPC, SSW Latest Events,
  ...). An event joins a group whose first peak lies within ``minutes`` before
  its own and whose AR agrees (an event or group without an AR agrees with
  any); of several, the group of its own AR, then the one of the most similar
  class (duplicates report about the same flux), then the nearest in time, then
  the newest. Flares of other regions in between do not split a group. A group
  becomes one flare: the largest class, the earliest start, the latest end, the
  known AR, the largest event's id and position (else the largest positioned event's).

  One sweep in peak order: the open groups (first peak within ``minutes``) are
  kept sorted by their largest flux, per AR and for groups without one, so an
  event finds its group by bisection: O(n log n) for n events, however many
  regions flare at once (``benchmarks/bench_merge.py``).

  Returns:
    (flares sorted by peak, number of events merged away).
  """
  ordered = sorted(flares, key=lambda f: f.peak)
  window = datetime.timedelta(minutes=minutes)
  groups: list[Group] = []
  opened: collections.deque[Group] = collections.deque()  # open groups, oldest first
  everyone, no_ar, by_ar = Shelf(), Shelf(), collections.defaultdict(Shelf)
  for flare in ordered:
    while opened and flare.peak - opened[0].first > window:
      closed = opened.popleft()  # groups are in order of first peak; older ones are closed
      everyone.remove(closed)
      (by_ar[closed.ar] if closed.ar else no_ar).remove(closed)
    if not flare.noaa_ar:
      shelf = everyone  # agrees with every group
    elif by_ar.get(flare.noaa_ar):
      shelf = by_ar[flare.noaa_ar]  # a group of its own AR beats any other
    else:
      shelf = no_ar
    best = shelf.best(flare)
    if best is None:
      best = Group(len(groups), flare)
      groups.append(best)
      opened.append(best)
    else:
      everyone.remove(best)
      (by_ar[best.ar] if best.ar else no_ar).remove(best)
      best.add(flare)
    everyone.add(best)
    (by_ar[best.ar] if best.ar else no_ar).add(best)
  merged = []
  for group in groups:
    members = group.members
    top = max(members, key=lambda f: f.peak_flux)
    placed = [f for f in members if math.isfinite(f.hgs_lat) and math.isfinite(f.hgs_lon)]
    where = max(placed, key=lambda f: f.peak_flux) if placed else top  # a listed position
    merged.append(
      dataclasses.replace(
        top,
        start=min(f.start for f in members),
        end=max(f.end for f in members),
        noaa_ar=group.ar,
        hgs_lat=where.hgs_lat,
        hgs_lon=where.hgs_lon,
      )
    )
  merged.sort(key=lambda f: f.peak)
  return merged, len(ordered) - len(merged)
