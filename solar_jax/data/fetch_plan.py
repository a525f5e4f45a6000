"""The frame plan of the fetcher: the issuance grid, flare peaks, quiet marks (OUT/plan.csv).

The AIA 171 Å frame nearest each time of the forecast issuance grid (``--issuance_hours``
UT every day), whatever the Sun does then, marked ``issuance``; those more than
``--quiet_margin`` outside every listed flare's [start, end] also marked ``quiet``; and
the frame nearest each flare peak.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import pathlib
import re

from solar_jax.data import frame_facts

# Columns of OUT/plan.csv, one row per planned frame.
PLAN_COLUMNS = ("time", "issuance", "quiet", "flare_event_id")


def parse_duration(text: str, what: str = "duration") -> datetime.timedelta:
  """'6h', '30m', '1d', '90s', '0m' -> timedelta (zero allowed, negative not)."""
  match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
  if not match:
    raise ValueError(f"{what} {text!r}: use a number and s/m/h/d, e.g. '6h'.")
  unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
  return datetime.timedelta(**{unit: float(match.group(1))})


def parse_hours(text: str) -> tuple[int, ...]:
  """'0,6,12,18' -> (0, 6, 12, 18): distinct UT hours in [0, 23], at least one."""
  try:
    hours = tuple(int(h) for h in text.split(","))
  except ValueError:
    hours = ()
  if not hours or len(set(hours)) != len(hours) or not all(0 <= h <= 23 for h in hours):
    raise ValueError(f"issuance hours {text!r}: give distinct UT hours 0..23, e.g. '0,6,12,18'.")
  return tuple(sorted(hours))


def issuance_times(
  start: datetime.datetime, end: datetime.datetime, hours
) -> list[datetime.datetime]:
  """The issuance grid in ``[start, end)``: every day at ``hours`` UT, in order."""
  day = datetime.datetime.combine(start.date(), datetime.time())
  times = []
  while day < end:
    times += [day + datetime.timedelta(hours=h) for h in sorted(hours)]
    day += datetime.timedelta(days=1)
  return [t for t in times if start <= t < end]


def near_flares(times, flares, margin: datetime.timedelta) -> list[bool]:
  """For sorted ``times``: whether each lies in a flare's [start - margin, end + margin].

  The windows are closed (a time on an edge is near). One sweep over the sorted windows.
  """
  windows = sorted((f.start - margin, f.end + margin) for f in flares)
  near, i = [], 0
  reach = None  # the latest end of the windows opened at or before t
  for t in times:
    while i < len(windows) and windows[i][0] <= t:
      reach = windows[i][1] if reach is None else max(reach, windows[i][1])
      i += 1
    near.append(reach is not None and t <= reach)
  return near


@dataclasses.dataclass(frozen=True)
class PlannedFrame:
  """A frame to fetch (the one nearest ``time``) and why: a row of OUT/plan.csv."""

  time: datetime.datetime
  issuance: bool  # a time of the issuance grid (forecasts are issued from it)
  quiet: bool  # an issuance time more than the margin outside every listed flare
  flare_event_id: str  # the flare whose peak this is ('' none)


def plan_frames(
  start: datetime.datetime,
  end: datetime.datetime,
  flares,
  hours=frame_facts.ISSUANCE_HOURS,
  margin: datetime.timedelta = datetime.timedelta(hours=2),
) -> list[PlannedFrame]:
  """Every issuance time in ``[start, end)`` and every flare peak in ``[start, end]``.

  A peak on a grid time is one frame with both marks. Sorted by time.
  """
  grid = issuance_times(start, end, hours)
  near = near_flares(grid, flares, margin)
  rows = {t: PlannedFrame(t, True, not n, "") for t, n in zip(grid, near)}
  for f in flares:
    if start <= f.peak <= end:
      rows[f.peak] = dataclasses.replace(
        rows.get(f.peak, PlannedFrame(f.peak, False, False, "")),
        quiet=False,
        flare_event_id=f.event_id,
      )
  return [rows[t] for t in sorted(rows)]


def write_plan(path: pathlib.Path, plan: list[PlannedFrame]) -> None:
  """``plan`` as CSV (``PLAN_COLUMNS``; times ISO, marks 'true'/'false')."""
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(PLAN_COLUMNS)
    for p in plan:
      marks = [str(p.issuance).lower(), str(p.quiet).lower()]
      writer.writerow([p.time.isoformat(), *marks, p.flare_event_id])
