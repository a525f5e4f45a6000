"""What is true of one AIA frame (stored), and the label policies applied on read.

A record keeps facts, not one baked-in label (DESIGN.md, 'Records keep facts'):
``frame_facts`` computes them at build time from the flare list and the GOES
series, all fluxes on the true scale (``goes``):

* ``goes_flux``: the median 1-8 Å flux of the primary satellite within
  ``FLUX_HALF_WINDOW`` of the frame (NaN without XRS coverage);
* the flare the frame belongs to: the largest listed flare in progress
  (``start <= t <= end``), else the one that ended last within the association
  lag before ``t``: its id, class as published, flux (``flare_flux``: the larger of
  the listed one and the XRS peak within ``PEAK_HALF_WINDOW`` of the listed peak,
  the listed one alone where another listed flare is in progress there),
  start/peak/end, NOAA AR, listed Stonyhurst position (``flare_hgs_lat``/``_lon``, NaN
  where the list gives none), and the frame's minutes after its start and after its end;
* the next 24 hours ``(t, t + 24 h]`` (the forecast facts, below): ``next24_flux``,
  ``next24_event_id`` and ``next24_complete`` (XRS covers the whole window).

Forecast definition (Leka et al. 2019, Bobra & Couvidat 2015, SWAN-SF; dataset
>= 2.3.0). A forecast issued at ``t`` predicts the largest event that STARTS in
``(t, t + 24 h]`` (``NEXT_WINDOW``): ``next24_flux`` is the peak flux of the largest
listed flare whose start lies there (``flare_flux``: refined by the XRS peak as for
``flare_class``; ``next24_event_id`` its id), so a flare in progress at ``t`` never
counts, however bright its decay. The raw XRS maximum of the window is never the
label. XRS only (a) decides coverage, and (b) gives the quiet level: the median of
the window's XRS samples outside every listed flare's ``[start, end + association
lag]``. ``next24_flux`` is the larger of that flare's flux and the quiet level (a
window without a starting flare is labelled by its background class, A or B
typically, never by a flare's decay), NaN when neither is known. Datasets before 2.3.0 stored the window's XRS maximum
(which holds the decay of the flare in progress: detection, not forecasting) and are
refused for this label (``input_pipeline``).

Issuance grid. A forecast is issued at fixed UT hours (``data.issuance_hours``,
default 00, 06, 12, 18): a frame is an issuance frame when its time lies within
``data.issuance_tolerance_minutes`` of a grid time (the edge included), and of
several frames near one grid time only the nearest (the earliest of equals). This is
decided on read from the frame's time (``issuance_frames``), not stored: the grid is
a policy like the label, so another grid needs no rebuild. Under the forecast label
every other frame has no label (-1): it is in no split's training, validation or test
set.

``labels`` turns these facts into class indices with a policy (``LABELS``), with
the class thresholds applied on a chosen scale (``goes.CLASS_SCALES``,
``data.class_scale``): 'swpc' (default of the configs), the scale SWPC published
the classes on, so a frame of a flare published C8.0 in 2011 is C (its true flux
is M1.14), as in the cycle-24 forecasting literature; or 'true'. The true fluxes
stored are brought to the SWPC scale with the factor of their time
(``goes.to_class_scale``: x 0.7 before the GOES-16 era, x 1 after): ``goes_flux``
by the frame's time, ``flare_flux`` by the flare's peak, ``next24_flux`` by the
frame's time (a window straddling the era's first day takes the earlier factor).
A listed flare of an SWPC or HEK list is thus its published class (refined by
the XRS peak on the same scale), and one of an NCEI list what SWPC would have
published.

* ``xrs_class`` (the configs' default): the class of ``goes_flux``, the 1-8 Å level
  the Sun shows at the frame's time (median within ``FLUX_HALF_WINDOW``), for every
  frame, flaring or quiet: one meaning, "the X-ray class now". A frame in a flare's
  rise or decay is the class of the flux then, not of the flare's peak; no XRS, no
  label;
* ``goes_class``: two meanings in one label, kept for comparison with the earlier
  runs: inside a flare (``start <= t <= end + cooling lag``) the flare's PEAK class
  (even during its rise), else the class of ``goes_flux`` (the background). On the
  demo's train split class B is mostly quiet frames and class C mostly flaring ones;
* ``flare_class``: flaring frames only, the flare's class;
* ``background_class``: frames outside every flare window only, ``goes_flux``;
* ``max_class_next_24h``: issuance frames only, the class of ``next24_flux`` (the
  largest flare starting in ``(t, t + 24 h]``, else the quiet level), where XRS
  covers the window or a listed flare starts in it (the list is complete above its
  threshold); otherwise unknown (no label).

The cooling lag: 171 Å (Fe IX, ~0.7 MK) brightens as flare loops cool, tens of
minutes after the GOES 1-8 Å end (Viall & Klimchuk 2012; the cooling sequence
94 -> 335 -> 211 -> 193 -> 171 Å), so a frame shortly after the listed end still
shows the flare. ``data.cooling_lag_minutes`` (at most the dataset's
association lag) sets it on read.
"""

from __future__ import annotations

import datetime

import numpy as np

from solar_jax.data import flare_list, goes, regions

# The label policies applied on read (``labels`` implements each; docstring above).
LABELS = ("xrs_class", "goes_class", "flare_class", "background_class", "max_class_next_24h")
FORECAST_LABEL = "max_class_next_24h"  # The look-ahead label, read on the issuance grid only.
# The issuance grid's defaults (configs/default.py: data.issuance_hours,
# data.issuance_tolerance_minutes): 4 forecasts a day, the frame nearest each hour.
ISSUANCE_HOURS = (0, 6, 12, 18)
ISSUANCE_TOLERANCE_MINUTES = 6.0
FLUX_HALF_WINDOW = datetime.timedelta(minutes=5)
NEXT_WINDOW = datetime.timedelta(hours=24)
# The XRS peak of a flare is looked for this close to its listed peak: lists give the
# peak to the minute, from 1-min averages, and the detection modules' peaks of one
# flare differ by a few minutes (merge_duplicates joins peaks within 6 min).
PEAK_HALF_WINDOW = datetime.timedelta(minutes=5)
# Flares are looked up by peak within this of the frame (longer flares are not read).
_LONGEST_FLARE = flare_list.MAX_FLARE_DURATION

# Stored fields (TFDS feature name -> kind): 'f' float32, 'i' int32, 's' text, 'b' bool.
FIELDS = {
  "goes_flux": "f",
  "flare_event_id": "s",
  "flare_class": "s",
  "flare_flux": "f",
  "flare_start": "s",
  "flare_peak": "s",
  "flare_end": "s",
  "minutes_after_flare_start": "f",
  "minutes_after_flare_end": "f",
  "noaa_ar": "i",
  "flare_hgs_lat": "f",
  "flare_hgs_lon": "f",
  "next24_flux": "f",  # the forecast flux (module docstring), since dataset 2.3.0
  "next24_event_id": "s",
  "next24_complete": "b",
}


def flare_flux(flare: flare_list.Flare, flares: flare_list.FlareIndex, xrs) -> float:
  """A flare's peak flux (true scale): the listed one, or the XRS peak near the listed peak.

  The XRS peak within ``PEAK_HALF_WINDOW`` of the listed peak refines the class
  string (M2.5 is any flux in [2.5, 2.6) e-5) when it is larger, but only when no
  other listed flare is in progress in that window: there the peak may be the
  neighbour's (a C flare under an X flare's peak must not become X). Otherwise,
  and without full XRS coverage of the window, the listed flux.
  """
  if xrs is None:
    return flare.peak_flux
  lo, hi = flare.peak - PEAK_HALF_WINDOW, flare.peak + PEAK_HALF_WINDOW
  around = flares.peaking(lo - _LONGEST_FLARE, hi + _LONGEST_FLARE)
  if any(f is not flare and f.start <= hi and f.end >= lo for f in around):
    return flare.peak_flux
  samples = xrs.window(lo, hi)
  if samples is None or not len(samples):
    return flare.peak_flux
  return max(flare.peak_flux, float(samples.max()))


def iso(time: datetime.datetime) -> str:
  """ISO 8601 with milliseconds, the form records store."""
  return time.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def frame_facts(
  time, flares: flare_list.FlareIndex, xrs: goes.XRSSeries | None, *, association_lag_minutes: float
) -> dict:
  """The stored facts of a frame at ``time`` (``FIELDS``; module docstring)."""
  t = flare_list.to_naive_utc(time)
  lag = datetime.timedelta(minutes=association_lag_minutes)
  facts = {k: {"f": np.nan, "i": 0, "s": "", "b": False}[v] for k, v in FIELDS.items()}
  if xrs is not None:
    samples = xrs.window(t - FLUX_HALF_WINDOW, t + FLUX_HALF_WINDOW)
    if samples is not None:
      facts["goes_flux"] = float(np.median(samples))
  near = flares.peaking(t - _LONGEST_FLARE - lag, t + _LONGEST_FLARE)
  inside = [f for f in near if f.start <= t <= f.end]
  cooling = [f for f in near if f.end < t <= f.end + lag]
  if inside or cooling:
    if inside:  # the largest flare in progress
      flare = max(inside, key=lambda f: (f.peak_flux, -abs((f.peak - t).total_seconds())))
    else:  # else the one that ended last (its loops are the ones cooling through 171 Å)
      flare = max(cooling, key=lambda f: (f.end, f.peak_flux))
    flux = flare_flux(flare, flares, xrs)
    facts.update(
      flare_event_id=flare.event_id,
      flare_class=flare.goes_class,
      flare_flux=flux,
      flare_start=iso(flare.start),
      flare_peak=iso(flare.peak),
      flare_end=iso(flare.end),
      minutes_after_flare_start=(t - flare.start).total_seconds() / 60.0,
      minutes_after_flare_end=(t - flare.end).total_seconds() / 60.0,
      noaa_ar=flare.noaa_ar,
      flare_hgs_lat=flare.hgs_lat,
      flare_hgs_lon=flare.hgs_lon,
    )
  facts.update(_next24(t, flares, xrs, lag))
  return facts


def _next24(t: datetime.datetime, flares: flare_list.FlareIndex, xrs, lag) -> dict:
  """The forecast facts of a frame at ``t`` (module docstring, 'Forecast definition')."""
  end = t + NEXT_WINDOW
  # A flare starting in (t, end] peaks in (t, end + its duration].
  coming = [f for f in flares.peaking(t, end + _LONGEST_FLARE, open_lo=True) if t < f.start <= end]
  best = max(coming, key=lambda f: (f.peak_flux, f.peak)) if coming else None
  values = [flare_flux(best, flares, xrs)] if best else []
  complete = False
  if xrs is not None:
    complete = xrs.window(t, end) is not None
    times, flux = xrs.samples(t + datetime.timedelta(microseconds=1), end)
    quiet = np.ones(len(times), bool)
    for f in flares.peaking(t - _LONGEST_FLARE - lag, end + _LONGEST_FLARE):
      lo, hi = np.datetime64(f.start, "ns"), np.datetime64(f.end + lag, "ns")
      quiet &= (times < lo) | (times > hi)
    if quiet.any():
      values.append(float(np.median(flux[quiet])))
  return dict(
    next24_flux=max(values) if values else np.nan,
    next24_event_id=best.event_id if best else "",
    next24_complete=complete,
  )


# ------------------------------------------------------------- on read ---


# Significant digits a flux keeps before the class thresholds apply. Records store
# float32 (about 7 digits): a published C7.0 stored as its true flux 7e-6 / 0.7 reads
# 9.9999997e-06 and M1.0 brought back by x 0.7 reads 9.99999986e-06; rounded to 6
# digits both sit on the M edge, as the class strings say. Class strings carry 2-3
# digits and XRS fluxes about 3, so no measured flux changes class by it.
CLASS_DIGITS = 6


def _rounded(flux: np.ndarray) -> np.ndarray:
  """``flux`` rounded to ``CLASS_DIGITS`` significant digits (non-finite, <= 1e-30 kept:
  class A either way, and 10**decimals stays finite)."""
  ok = np.isfinite(flux) & (flux > 1e-30)
  safe = np.where(ok, flux, 1.0)
  decimals = CLASS_DIGITS - 1 - np.floor(np.log10(safe))
  scale = 10.0**decimals
  return np.where(ok, np.round(safe * scale) / scale, flux)


def class_index(flux: np.ndarray) -> np.ndarray:
  """Class index 0..4 (A..X) of fluxes (below A1.0 is A); -1 where not finite.

  Fluxes are rounded to ``CLASS_DIGITS`` significant digits first (float32 storage
  and the 0.7 factor must not move a published class across an edge).
  """
  edges = np.array([goes.class_edges()[c] for c in goes.CLASS_LETTERS])
  flux = _rounded(np.asarray(flux, np.float64))
  index = np.clip(np.searchsorted(edges, np.nan_to_num(flux, nan=0.0), side="right") - 1, 0, 4)
  return np.where(np.isfinite(flux), index, -1).astype(np.int32)


def _text(values) -> np.ndarray:
  return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)


def in_flare(facts: dict, cooling_lag_minutes: float) -> np.ndarray:
  """Frames inside their flare: ``start <= t <= end + cooling lag``."""
  after_start = np.asarray(facts["minutes_after_flare_start"], np.float64)
  after_end = np.asarray(facts["minutes_after_flare_end"], np.float64)
  with np.errstate(invalid="ignore"):
    return np.isfinite(after_start) & (after_start >= 0) & (after_end <= cooling_lag_minutes)


def forecast_rule(
  hours=ISSUANCE_HOURS, tolerance_minutes: float = ISSUANCE_TOLERANCE_MINUTES
) -> str:
  """One sentence of the forecast label's definition and its issuance grid (for reports)."""
  grid = "/".join(f"{int(h):02d}" for h in sorted(hours))
  horizon = NEXT_WINDOW / datetime.timedelta(hours=1)
  return (
    f"the class of the largest listed flare STARTING in (t, t + {horizon:g} h] (the flare in "
    "progress at t never counts), or of the window's quiet XRS level (median outside listed "
    "flares) where that is larger or no flare starts; issued from the frame nearest "
    f"{grid} UT within {tolerance_minutes:g} min (other frames unlabelled)"
  )


def issuance_frames(
  times, hours=ISSUANCE_HOURS, tolerance_minutes: float = ISSUANCE_TOLERANCE_MINUTES
) -> np.ndarray:
  """bool per frame: the frame a forecast is issued from (module docstring, 'Issuance grid').

  A frame within ``tolerance_minutes`` (inclusive, to the millisecond) of a grid time
  (a UT hour of ``hours`` on any day) qualifies; of several near one grid time, only
  the nearest (the earliest of equals). ``times``: ISO strings, bytes or datetime64.
  """
  values = [t.decode() if isinstance(t, bytes) else t for t in np.asarray(times).ravel()]
  times = np.array(values, dtype="datetime64[ms]")
  hours = np.asarray(sorted(set(int(h) for h in hours)), np.int64)
  if not len(times) or not len(hours):
    return np.zeros(len(times), bool)
  ms_hour, ms_day = 3_600_000, 86_400_000
  days = times.astype("datetime64[D]").astype("datetime64[ms]").astype(np.int64)
  # Grid times of the day before, the day and the day after, nearest first.
  grid = (days[:, None, None] + ms_day * np.arange(-1, 2)[None, :, None]).reshape(
    len(times), 3, 1
  ) + ms_hour * hours[None, None, :]
  grid = grid.reshape(len(times), -1)
  t = times.astype(np.int64)
  offset = np.abs(grid - t[:, None])
  nearest = np.argmin(offset, axis=1)
  instant = grid[np.arange(len(t)), nearest]
  distance = offset[np.arange(len(t)), nearest]
  near = ~np.isnat(times) & (distance <= round(tolerance_minutes * 60_000))
  chosen = np.zeros(len(t), bool)
  candidates = np.flatnonzero(near)
  order = candidates[np.lexsort((t[candidates], distance[candidates], instant[candidates]))]
  first = np.ones(len(order), bool)
  first[1:] = instant[order][1:] != instant[order][:-1]
  chosen[order[first]] = True
  return chosen


def labels(
  facts: dict,
  policy: str,
  cooling_lag_minutes: float,
  *,
  class_scale: str = "swpc",
  true_flux_since: datetime.datetime = goes.TRUE_FLUX_LISTS_SINCE,
  issuance_hours=ISSUANCE_HOURS,
  issuance_tolerance_minutes: float = ISSUANCE_TOLERANCE_MINUTES,
) -> tuple[np.ndarray, np.ndarray]:
  """(class index int32 [-1 = no label under ``policy``], resampling group) per frame.

  ``facts`` holds arrays of ``FIELDS`` and ``time`` (ISO strings). Classes are
  those of the fluxes on ``class_scale`` (module docstring; ``true_flux_since``:
  the first day of the GOES-16 era, the dataset's metadata records it). The group
  is the unit a bootstrap resamples: the event the label comes from, else the
  frame's UTC day ('day:YYYY-MM-DD'), so frames of one flare or one quiet day
  move together. The forecast label (``FORECAST_LABEL``) labels issuance frames
  only (``issuance_frames`` of ``issuance_hours``, ``issuance_tolerance_minutes``).
  """
  if policy not in LABELS:
    raise ValueError(f"label policy {policy!r}: use one of {LABELS}.")
  if class_scale not in goes.CLASS_SCALES:
    raise ValueError(f"class scale {class_scale!r}: use one of {goes.CLASS_SCALES}.")
  times = _text(facts["time"])
  days = np.array(["day:" + t[:10] for t in times], dtype=object)
  flaring = in_flare(facts, cooling_lag_minutes)
  flare_ids = _text(facts["flare_event_id"])

  def scaled(key, at):
    return goes.to_class_scale(facts[key], at, class_scale, true_flux_since)

  background = class_index(scaled("goes_flux", times))
  flare = class_index(scaled("flare_flux", _text(facts["flare_peak"])))
  if policy == FORECAST_LABEL:
    known = np.asarray(facts["next24_complete"], bool) | (_text(facts["next24_event_id"]) != "")
    known &= issuance_frames(times, issuance_hours, issuance_tolerance_minutes)
    label = np.where(known, class_index(scaled("next24_flux", times)), -1)
    ids = _text(facts["next24_event_id"])
    return label.astype(np.int32), np.where(ids != "", ids, days)
  if policy == "xrs_class":
    label = background
  elif policy == "flare_class":
    label = np.where(flaring, flare, -1)
  elif policy == "background_class":
    label = np.where(flaring, -1, background)
  else:  # goes_class
    label = np.where(flaring, flare, background)
  return label.astype(np.int32), np.where(flaring, flare_ids, days)


def label_fluxes(
  facts: dict,
  policy: str,
  cooling_lag_minutes: float,
  *,
  class_scale: str = "swpc",
  true_flux_since: datetime.datetime = goes.TRUE_FLUX_LISTS_SINCE,
) -> np.ndarray:
  """The GOES 1-8 Å flux [W m^-2, float64, on ``class_scale``] whose class is each frame's
  label under ``policy`` (``labels``' meaning: the flare's peak flux for a flaring frame
  under 'flare_class' and 'goes_class', the flux at the frame under 'xrs_class' and
  'background_class', the next 24 h's under the forecast label); NaN where the policy
  gives no flux (the input pipeline keeps NaN wherever ``labels`` gives no label).
  ``class_index`` of it is the label wherever ``labels`` gives one."""
  if policy not in LABELS:
    raise ValueError(f"label policy {policy!r}: use one of {LABELS}.")
  times = _text(facts["time"])

  def scaled(key, at):
    return np.asarray(goes.to_class_scale(facts[key], at, class_scale, true_flux_since), float)

  if policy == FORECAST_LABEL:
    return scaled("next24_flux", times)
  background = scaled("goes_flux", times)
  if policy == "xrs_class":
    return background
  flaring = in_flare(facts, cooling_lag_minutes)
  if policy == "background_class":
    return np.where(flaring, np.nan, background)
  flare = scaled("flare_flux", _text(facts["flare_peak"]))
  return np.where(flaring, flare, np.nan if policy == "flare_class" else background)


# Quiet frames are resampled in blocks of this many UTC days (counted from 1970-01-01):
# the X-ray background and the disk change over days, so neighbouring quiet days are
# alike; 3 days is about the time a region takes to cross a fifth of the disk.
QUIET_BLOCK_DAYS = 3


def bootstrap_units(facts: dict, groups) -> np.ndarray:
  """The unit the bootstrap resamples for each frame (object [N]): where skill lives.

  ``groups`` are ``labels``' groups (event ids; 'day:YYYY-MM-DD' of unlabelled-event
  frames). A frame whose group is its own flare (``flare_event_id``) with a NOAA
  number resamples with its merged active region, 'region:<first NOAA number>'
  (``regions.frame_regions`` over these frames: a region returning a rotation
  later is the same region); another event group stays its event (a flare without
  NOAA number, a next-24-h event); a day group becomes its block of
  ``QUIET_BLOCK_DAYS`` days, 'days:<first day>'. ``facts`` needs ``flare_event_id``,
  ``noaa_ar``, ``flare_peak`` and, for the merge, ``flare_hgs_lat``/``_lon`` (absent:
  NOAA numbers are not merged).
  """
  groups = _text(groups)
  n = groups.size
  if n == 0:
    return np.zeros(0, object)
  own = (groups == _text(facts["flare_event_id"])) & (groups != "")
  ar = np.where(own, np.asarray(facts["noaa_ar"], np.int64), 0)
  nan = np.full(n, np.nan)
  region = regions.frame_regions(
    ar,
    _text(facts["flare_peak"]),
    np.asarray(facts.get("flare_hgs_lat", nan), np.float64),
    np.asarray(facts.get("flare_hgs_lon", nan), np.float64),
  )
  out = groups.copy()
  out[region > 0] = np.array([f"region:{r}" for r in region[region > 0]], object)
  day = np.char.startswith(groups.astype(str), "day:")
  if day.any():
    days = np.array([g[4:] for g in groups[day]], "datetime64[D]").astype(np.int64)
    start = (days // QUIET_BLOCK_DAYS * QUIET_BLOCK_DAYS).astype("datetime64[D]")
    out[day] = np.array([f"days:{d}" for d in start], object)
  return out
