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
* the next 24 hours ``(t, t + 24 h]``: the largest flux (listed peaks there and
  XRS samples there), the largest listed event, and whether XRS covers the
  whole window.

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

* ``goes_class``: inside a flare (``start <= t <= end + cooling lag``) the
  flare's class, else the class of ``goes_flux``: the X-ray level the frame
  sees, one meaning for every frame;
* ``flare_class``: flaring frames only, the flare's class;
* ``background_class``: frames outside every flare window only, ``goes_flux``;
* ``max_class_next_24h``: the largest class in ``(t, t + 24 h]``, where XRS
  covers the window or a listed flare lies in it (the list is complete above
  its threshold); otherwise unknown (no label).

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
LABELS = ("goes_class", "flare_class", "background_class", "max_class_next_24h")
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
  "next24_flux": "f",
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
  coming = flares.peaking(t, t + NEXT_WINDOW, open_lo=True)
  best = max(coming, key=lambda f: f.peak_flux) if coming else None
  values = [best.peak_flux] if best else []
  if xrs is not None:
    ahead = xrs.partial(t + datetime.timedelta(microseconds=1), t + NEXT_WINDOW)
    if len(ahead):
      values.append(float(ahead.max()))
    facts["next24_complete"] = xrs.window(t, t + NEXT_WINDOW) is not None
  if values:
    facts["next24_flux"] = max(values)
  facts["next24_event_id"] = best.event_id if best else ""
  return facts


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


def labels(
  facts: dict,
  policy: str,
  cooling_lag_minutes: float,
  *,
  class_scale: str = "swpc",
  true_flux_since: datetime.datetime = goes.TRUE_FLUX_LISTS_SINCE,
) -> tuple[np.ndarray, np.ndarray]:
  """(class index int32 [-1 = no label under ``policy``], resampling group) per frame.

  ``facts`` holds arrays of ``FIELDS`` and ``time`` (ISO strings). Classes are
  those of the fluxes on ``class_scale`` (module docstring; ``true_flux_since``:
  the first day of the GOES-16 era, the dataset's metadata records it). The group
  is the unit a bootstrap resamples: the event the label comes from, else the
  frame's UTC day ('day:YYYY-MM-DD'), so frames of one flare or one quiet day
  move together.
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
  if policy == "max_class_next_24h":
    known = np.asarray(facts["next24_complete"], bool) | (_text(facts["next24_event_id"]) != "")
    label = np.where(known, class_index(scaled("next24_flux", times)), -1)
    ids = _text(facts["next24_event_id"])
    return label.astype(np.int32), np.where(ids != "", ids, days)
  if policy == "flare_class":
    label = np.where(flaring, flare, -1)
  elif policy == "background_class":
    label = np.where(flaring, -1, background)
  else:  # goes_class
    label = np.where(flaring, flare, background)
  return label.astype(np.int32), np.where(flaring, flare_ids, days)


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
