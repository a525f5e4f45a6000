"""The schedule of the SIMULATED demo archive: flares, GOES background and frame times.

``plan_archive`` decides, for a seed, which flares happen when (class, rise
and decay times, active region), the daily GOES background flux, and the
time and intended class of every AIA frame: inside a flare, between its start
and a few minutes after its peak (flaring, the flare's class), or far from any
flare and away from a class boundary (quiet, the class of the background). Quiet
frames lie on the forecast issuance grid (00, 06, 12, 18 UT) while the month has
grid times left, so every month holds issuance frames for the forecast label.
Class edges are those of ``goes`` (sunkit-instruments' table), so the plan and
the builder's labels use one definition. Fluxes are TRUE fluxes (the dataset's
scale); ``SimFlare.goes_class`` is the class as an SWPC list of the GOES-15 era
would publish it (0.7 of the true flux, ``goes.SWPC_XRSB_SCALE``), which the
builder converts back. Nothing here draws images or writes files
(``demo_render``, ``demo_files``).
"""

from __future__ import annotations

import dataclasses
import datetime
import math

import numpy as np

from solar_jax.data import frame_facts, goes

CADENCE_S = 12  # AIA 171 cadence; planned times lie on this grid.
# UT hours of the forecast issuance grid (the default of data.issuance_hours): quiet
# frames are placed on it, so a forecast task (label 'max_class_next_24h') has frames.
ISSUANCE_HOURS = frame_facts.ISSUANCE_HOURS
# Flaring frames lie between the flare's start and this many minutes after its
# peak (within the end plus any cooling lag >= 12 min).
FLARING_OFFSET_MIN = 12.0


@dataclasses.dataclass
class SimFlare:
  """A simulated flare: times (naive UTC), class, GOES profile and where it shows."""

  event_id: str
  start: datetime.datetime
  peak: datetime.datetime
  end: datetime.datetime
  goes_class: str  # as published (SWPC scale, 0.7 of the true flux)
  peak_flux: float  # true flux
  rise_min: float
  decay_min: float
  background: float
  region: int  # index into the active regions
  loop_seed: int


@dataclasses.dataclass
class PlannedFrame:
  """An AIA frame to render: its time and the class it is made for."""

  time: datetime.datetime  # T_OBS (mid exposure)
  letter: str  # intended class
  flaring: bool
  event_id: str
  flux: float  # intended label flux (flare peak or background)


def _month_starts(start: datetime.datetime, months: int) -> list[datetime.datetime]:
  out = []
  y, m = start.year, start.month
  for _ in range(months + 1):
    out.append(datetime.datetime(y, m, 1))
    y, m = (y + 1, 1) if m == 12 else (y, m + 1)
  return out


def _class_string(letter: str, rng) -> tuple[str, float]:
  """A true flux of class ``letter`` and the class an SWPC list publishes for it.

  E.g. ('M1.75', 2.5e-5): one decimal of true flux in [1.1, 9.5] (X up to 5),
  away from the class boundaries; the published string has two decimals so the
  builder's /0.7 gives the true flux back to 0.3 %.
  """
  base = goes.class_edges()[letter]
  top = 5.0 if letter == "X" else 9.5
  value = round(float(math.exp(rng.uniform(0.0, math.log(top)))), 1)
  value = min(max(value, 1.1), top)
  flux = value * base
  return _published(flux), flux


def _published(true_flux: float) -> str:
  """The SWPC-scale class string of a true flux, two decimals: 2.5e-5 -> 'M1.75'."""
  flux = goes.SWPC_XRSB_SCALE * true_flux
  letter = goes.class_letter(flux)
  return f"{letter}{flux / goes.class_edges()[letter]:.2f}"


def _background(rng, month_starts) -> tuple[np.ndarray, np.ndarray]:
  """Daily log10 background flux (times in days since the first month)."""
  days = (month_starts[-1] - month_starts[0]).days + 1
  level = np.empty(days)
  monthly = {}
  value = 0.0
  for d in range(days):
    month = (month_starts[0] + datetime.timedelta(days=d)).strftime("%Y-%m")
    if month not in monthly:
      monthly[month] = rng.normal(-6.85, 0.2)
    value = 0.7 * value + rng.normal(0.0, 0.25)
    level[d] = np.clip(monthly[month] + value, -7.7, -5.8)
  return np.arange(days, dtype=np.float64), level


def _background_at(bkg, t0: datetime.datetime, t) -> float:
  days = (t - t0).total_seconds() / 86400.0
  return float(10.0 ** np.interp(days, bkg[0], bkg[1]))


def _quiet_after(flare: SimFlare) -> datetime.datetime:
  """When the flare's excess flux has dropped below 3 % of the background."""
  decay = flare.decay_min * math.log(max(flare.peak_flux / (0.03 * flare.background), 2.0))
  return flare.peak + datetime.timedelta(minutes=decay)


def plan_archive(
  num_frames: int, start: datetime.datetime, months: int, seed: int, num_regions: int
):
  """Flares, background and frame times of the archive.

  Args:
    num_frames: good AIA frames in all (spread evenly over the months).
    start: first day of the first month.
    months: calendar months covered.
    seed: seed of everything random.
    num_regions: active regions a flare may sit in.

  Returns:
    (flares, frames sorted by time, background, month starts): background is
    (days since ``start``, log10 flux) per day; month starts has ``months + 1``
    entries, the last one the end of the archive.
  """
  rng = np.random.default_rng(seed)
  # log10 of the lower edges of B..X: a quiet frame keeps away from them.
  boundaries = [math.log10(e) for c, e in goes.class_edges().items() if c != "A"]
  starts = _month_starts(start, months)
  bkg = _background(rng, starts)
  per_month = np.full(months, num_frames // months)
  per_month[: num_frames % months] += 1
  flares: list[SimFlare] = []
  frames: list[PlannedFrame] = []
  for m in range(months):
    lo, hi = starts[m], starts[m + 1]
    budget = int(per_month[m])
    per_event = 2 if budget >= 16 else 1
    counts = {
      "X": 1,
      "M": max(1, round(0.10 * budget / per_event)),
      "C": max(1, round(0.16 * budget / per_event)),
      "B": round(0.04 * budget / per_event),
    }
    month_flares = []
    for letter in ("X", "M", "C", "B"):
      for _ in range(counts[letter]):
        if budget - per_event * (len(month_flares) + 1) < 0:
          break
        flare = _place_flare(rng, letter, lo, hi, month_flares, bkg, starts[0], num_regions)
        if flare is not None:
          month_flares.append(flare)
    month_flares.sort(key=lambda f: f.peak)
    for flare in month_flares:
      rise = min(FLARING_OFFSET_MIN, (flare.peak - flare.start).total_seconds() / 60.0 - 0.5)
      offsets = rng.uniform(-rise, FLARING_OFFSET_MIN, size=per_event)
      for off in np.sort(offsets):
        t = _on_grid(flare.peak + datetime.timedelta(minutes=float(off)))
        frames.append(
          PlannedFrame(t, goes.class_letter(flare.peak_flux), True, flare.event_id, flare.peak_flux)
        )
    quiet = budget - per_event * len(month_flares)
    span = (hi - lo).total_seconds()
    # Quiet frames sit on the issuance grid (a forecast's frames) while grid times are
    # left, then anywhere in the month.
    grid = [
      t for t in _issuance_times(lo, hi) if 3600.0 <= (t - lo).total_seconds() <= span - 3600.0
    ]
    grid = [grid[i] for i in rng.permutation(len(grid))]
    placed = 0
    while placed < quiet:
      if grid:
        t = grid.pop()
      else:
        t = _on_grid(lo + datetime.timedelta(seconds=float(rng.uniform(3600.0, span - 3600.0))))
      if any(f.start - datetime.timedelta(hours=2) <= t <= _quiet_after(f) for f in month_flares):
        continue
      if any(abs((t - f.time).total_seconds()) < CADENCE_S for f in frames):
        continue
      flux = _background_at(bkg, starts[0], t)
      if min(abs(math.log10(flux) - e) for e in boundaries) < 0.03:
        continue  # too near a class boundary: XRS noise could flip the label
      frames.append(PlannedFrame(t, goes.class_letter(flux), False, "", flux))
      placed += 1
    flares.extend(month_flares)
  frames.sort(key=lambda f: f.time)
  return flares, frames, bkg, starts


def _issuance_times(lo: datetime.datetime, hi: datetime.datetime) -> list[datetime.datetime]:
  """The issuance grid's times (``ISSUANCE_HOURS`` UT each day) in ``[lo, hi)``."""
  days = (hi.date() - lo.date()).days + 1
  day0 = datetime.datetime.combine(lo.date(), datetime.time())
  times = (day0 + datetime.timedelta(days=d, hours=h) for d in range(days) for h in ISSUANCE_HOURS)
  return [t for t in times if lo <= t < hi]


def _on_grid(t: datetime.datetime) -> datetime.datetime:
  seconds = round(t.timestamp() / CADENCE_S) * CADENCE_S
  return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).replace(tzinfo=None)


def _place_flare(rng, letter, lo, hi, others, bkg, t0, num_regions) -> SimFlare | None:
  for _ in range(200):
    peak = lo + datetime.timedelta(
      minutes=int(rng.integers(24 * 60, (hi - lo).days * 1440 - 24 * 60))
    )
    background = _background_at(bkg, t0, peak)
    goes_class, flux = _class_string(letter, rng)
    if flux < 3.0 * background:
      continue  # a flare must stand out of the background to be listed
    rise = float(rng.uniform(4.0, 15.0)) * (1.5 if letter in "MX" else 1.0)
    decay = float(rng.uniform(8.0, 25.0)) * (1.5 if letter in "MX" else 1.0)
    flare = SimFlare(
      event_id=f"SIM{peak:%Y%m%dT%H%M}",
      start=peak - datetime.timedelta(minutes=round(2.0 * rise)),
      peak=peak,
      end=peak + datetime.timedelta(minutes=round(decay * math.log(2.0))),
      goes_class=goes_class,
      peak_flux=flux,
      rise_min=rise,
      decay_min=decay,
      background=background,
      region=int(rng.integers(num_regions)),
      loop_seed=int(rng.integers(2**31)),
    )
    busy = any(
      flare.start - datetime.timedelta(hours=3)
      <= o.peak
      <= _quiet_after(flare) + datetime.timedelta(hours=1)
      or o.start - datetime.timedelta(hours=3)
      <= flare.peak
      <= _quiet_after(o) + datetime.timedelta(hours=1)
      for o in others
    )
    if not busy:
      return flare
  return None


def flare_excess(flare: SimFlare, t) -> np.ndarray:
  """Flux above background (W m^-2) of a flare at times ``t`` (datetime64 array)."""
  minutes = (np.asarray(t, dtype="datetime64[s]") - np.datetime64(flare.peak, "s")).astype(
    np.float64
  ) / 60.0
  # Far from the peak the profile is 0 (clipped exponent: no overflow).
  minutes = np.clip(minutes, -60.0 * flare.rise_min, 60.0 * flare.decay_min)
  shape = np.where(
    minutes < 0, np.exp(-0.5 * (minutes / flare.rise_min) ** 2), np.exp(-minutes / flare.decay_min)
  )
  return (flare.peak_flux - flare.background) * shape
