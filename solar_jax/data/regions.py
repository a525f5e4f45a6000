"""Active-region identity: a NOAA region that returns a rotation later is the same region.

Flare skill is largely a property of a few active regions (fold 7's nine test
X flares are eight from AR 12192), so the bootstrap resamples regions, not
flares (``metrics/bootstrap``). NOAA numbers a region once per disk passage:
one that survives its far-side passage gets a new number when it comes back.
This module merges those numbers.

The rule (``region_ids``), on each NOAA region's flares with a listed position:

* its Carrington position: latitude, and longitude ``hgs_lon + L0(t)`` (mod
  360; ``sunpy.coordinates.sun.L0``), the circular mean over its flares;
* its central-meridian passage ``t - hgs_lon / (360° / 27.2753 d)``, the mean
  over its flares (the synodic Carrington period);
* two regions are one when their Carrington longitudes differ by less than
  ``LON_TOLERANCE_DEG`` (15°: differential rotation moves a region at 25° of
  latitude by about 13° per rotation against the Carrington frame), their
  latitudes by less than ``LAT_TOLERANCE_DEG`` (10°), and the later passage
  comes one rotation (``MAX_ROTATIONS``) after the earlier one, within
  ``TIME_TOLERANCE_DAYS`` (5 d): 22 to 32 days later. A region seen on three
  passages is a chain of two such links. Allowing a gap of a second rotation
  (a region that did not flare on one passage) added more chance merges than
  real ones on the cycle-24 list (chance: the same rule with each region's
  Carrington longitude turned by a random angle; ``benchmarks/bench_regions.py``).

Regions on the disk together are never one region, also not through a chain
of merges: a region links to at most one earlier and one later region (the
candidate links taken fewest rotations first, then closest in position), so a
merged region is a chain of passages a rotation or more apart. Of two regions
numbered side by side (AR 12172/12173 in September 2014), the closer one
continues (AR 12173 -> 12192 -> 12209). A region with no listed position
keeps its NOAA number; a flare with no NOAA number is its own unit (the
bootstrap uses its event id).
A merged region is named by its first NOAA number, ``region:<number>``.
"""

from __future__ import annotations

import numpy as np

SYNODIC_DAYS = 27.2753  # Carrington synodic rotation period
LON_TOLERANCE_DEG = 15.0
LAT_TOLERANCE_DEG = 10.0
TIME_TOLERANCE_DAYS = 5.0
MAX_ROTATIONS = 1


def _days(times) -> np.ndarray:
  """float64 days since 1970-01-01 of ISO strings / bytes / datetimes / datetime64."""
  values = [t.decode() if isinstance(t, bytes) else t for t in np.asarray(times, object).ravel()]
  stamps = np.array(values, dtype="datetime64[ms]").astype(np.int64)
  return stamps / 86_400_000.0


def carrington_l0(days: np.ndarray) -> np.ndarray:
  """``sunpy.coordinates.sun.L0`` (degrees) at ``days`` (since 1970-01-01), from a daily grid.

  L0 falls by 13.2° a day, smoothly: it is computed once a day over the span and
  interpolated (unwrapped), which agrees with sunpy to well under 0.01°; the cost
  is the span's days (a cycle: 3,300 evaluations, ~1.5 s), not the number of frames.
  """
  days = np.asarray(days, np.float64)
  if days.size == 0:
    return np.zeros(0)
  from astropy.time import Time
  from sunpy.coordinates import sun

  grid = np.arange(np.floor(days.min()), np.floor(days.max()) + 2.0)
  l0 = np.unwrap(np.radians(sun.L0(Time(grid * 86400.0, format="unix")).to_value("deg")))
  return np.degrees(np.interp(days, grid, l0)) % 360.0


def _circular_mean_deg(angles: np.ndarray, codes: np.ndarray, n: int) -> np.ndarray:
  rad = np.radians(angles)
  s = np.bincount(codes, np.sin(rad), n)
  c = np.bincount(codes, np.cos(rad), n)
  return np.degrees(np.arctan2(s, c)) % 360.0


def region_summary(noaa_ar, times, hgs_lat, hgs_lon) -> dict:
  """Per NOAA region with a position: ``ar``, ``lat``, ``carrington_lon``, ``passage`` (days).

  The inputs are per flare (or per frame of a flare): numbers > 0 and finite
  positions are used, the rest left out.
  """
  ar = np.asarray(noaa_ar, np.int64).ravel()
  lat, lon = (np.asarray(v, np.float64).ravel() for v in (hgs_lat, hgs_lon))
  days = _days(times)
  ok = (ar > 0) & np.isfinite(lat) & np.isfinite(lon)
  ar, lat, lon, days = ar[ok], lat[ok], lon[ok], days[ok]
  numbers, codes = np.unique(ar, return_inverse=True)
  n = numbers.size
  count = np.bincount(codes, minlength=n).astype(np.float64)
  carrington = (lon + carrington_l0(days)) % 360.0
  passage = days - lon / (360.0 / SYNODIC_DAYS)
  return {
    "ar": numbers,
    "lat": np.bincount(codes, lat, n) / np.maximum(count, 1),
    "carrington_lon": _circular_mean_deg(carrington, codes, n),
    "passage": np.bincount(codes, passage, n) / np.maximum(count, 1),
  }


def merge_summary(summary: dict, *, lon_offset=None) -> dict[int, int]:
  """{NOAA number: first NOAA number of its merged region} under the module's rule.

  ``lon_offset``: optional degrees [regions] added to the Carrington longitudes
  before matching (a null model: ``recurrent_overlap``'s chance level).
  """
  ar, lat = summary["ar"], summary["lat"]
  lon, passage = summary["carrington_lon"], summary["passage"]
  if lon_offset is not None:
    lon = (lon + np.asarray(lon_offset, np.float64)) % 360.0
  n = ar.size
  if n < 2:
    return {int(a): int(a) for a in ar}
  dlon = np.abs((lon[:, None] - lon[None, :] + 180.0) % 360.0 - 180.0)
  dlat = np.abs(lat[:, None] - lat[None, :])
  later = passage[None, :] - passage[:, None]  # [i, j]: j after i by this many days
  span = (SYNODIC_DAYS - TIME_TOLERANCE_DAYS, MAX_ROTATIONS * SYNODIC_DAYS + TIME_TOLERANCE_DAYS)
  match = (dlon < LON_TOLERANCE_DEG) & (dlat < LAT_TOLERANCE_DEG)
  match &= (later >= span[0]) & (later <= span[1])
  i, j = np.nonzero(match)
  rotations = np.rint(later[i, j] / SYNODIC_DAYS)
  distance = dlon[i, j] / LON_TOLERANCE_DEG + dlat[i, j] / LAT_TOLERANCE_DEG
  # Links i -> j: fewest rotations first, then closest; each region keeps one predecessor
  # and one successor, so a merged region is a chain whose members follow each other by a
  # rotation or more: never two regions on the disk together.
  successor, predecessor = np.full(n, -1), np.full(n, -1)
  order = np.lexsort((distance, rotations))
  for a, b in zip(i[order], j[order]):
    if successor[a] < 0 and predecessor[b] < 0:
      successor[a], predecessor[b] = b, a
  first = np.arange(n)
  for k in np.argsort(passage, kind="stable"):  # predecessors come first
    if predecessor[k] >= 0:
      first[k] = first[predecessor[k]]
  return {int(ar[k]): int(ar[first[k]]) for k in range(n)}


def region_ids(flares) -> dict[int, int]:
  """{NOAA number: first NOAA number of its merged region} of a list of ``flare_list.Flare``.

  Regions without a listed position map to themselves; flares without a NOAA
  number are left out (each is its own unit).
  """
  rows = [(f.noaa_ar, f.peak, f.hgs_lat, f.hgs_lon) for f in flares if f.noaa_ar > 0]
  if not rows:
    return {}
  ar, peak, lat, lon = zip(*rows)
  merged = merge_summary(region_summary(ar, np.array(peak, "datetime64[ms]"), lat, lon))
  return {int(a): merged.get(int(a), int(a)) for a in set(ar)}


def _texts(values) -> np.ndarray:
  return np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in values], object)


def _one_per_flare(ar: np.ndarray, peak: np.ndarray, use: np.ndarray) -> np.ndarray:
  """Indices of one row per flare (NOAA number, peak) among ``use``: a long flare's frames
  weigh once in its region's position."""
  keys = np.array([f"{a}|{p}" for a, p in zip(ar, peak)], object)
  _, first = np.unique(keys, return_index=True)
  return first[use[first] & (peak[first] != "")]


def frame_regions(noaa_ar, flare_peak, hgs_lat, hgs_lon) -> np.ndarray:
  """int64 [N]: each frame's merged region (its first NOAA number; 0 where the frame has none).

  Per frame: its flare's NOAA number, peak time and position (``frame_facts``
  fields); the merge runs over the distinct flares of the frames given.
  """
  ar = np.asarray(noaa_ar, np.int64).ravel()
  out = ar.copy()
  if not (ar > 0).any():
    return out
  peak = _texts(flare_peak)
  first = _one_per_flare(ar, peak, ar > 0)
  lat = np.asarray(hgs_lat, np.float64).ravel()
  lon = np.asarray(hgs_lon, np.float64).ravel()
  merged = merge_summary(region_summary(ar[first], peak[first], lat[first], lon[first]))
  mapped = np.array([merged.get(int(a), int(a)) for a in ar], np.int64)
  return np.where(ar > 0, mapped, 0)


# Draws of the chance level of ``recurrent_overlap``.
CHANCE_DRAWS = 20


def recurrent_overlap(
  noaa_ar, flare_peak, hgs_lat, hgs_lon, test, train, *, weights=None, seed: int = 0
) -> dict:
  """Share of test flaring frames whose merged region also flares in the training months.

  Args:
    noaa_ar, flare_peak, hgs_lat, hgs_lon: per frame (or per flare), the flare's NOAA number
      (0: none or not flaring), peak time and listed position.
    test, train: bool masks of the test and the training frames.
    weights: optional per-row weights (e.g. a flare's minutes in flare: its frames).

  Returns:
    {'share', 'chance', 'test_flaring_frames' (weighted), 'test_regions'}: ``share`` over
    the test rows with a NOAA number; ``chance`` the same share, mean of ``CHANCE_DRAWS``
    draws, with every region's Carrington longitude turned by an independent uniform
    random angle before the merge: the overlap the position rule makes by coincidence,
    at the activity and latitudes of these months (a NOAA number flaring in both splits
    stays a match). None where the test months hold no numbered flaring frame.
  """
  ar = np.asarray(noaa_ar, np.int64).ravel()
  test, train = np.asarray(test, bool) & (ar > 0), np.asarray(train, bool) & (ar > 0)
  w = np.ones(ar.size) if weights is None else np.asarray(weights, np.float64).ravel()
  out = {"test_flaring_frames": float(w[test].sum()), "test_regions": None}
  if not test.any():
    return {**out, "share": None, "chance": None}
  peak = _texts(flare_peak)
  used = _one_per_flare(ar, peak, test | train)
  lat = np.asarray(hgs_lat, np.float64).ravel()
  lon = np.asarray(hgs_lon, np.float64).ravel()
  summary = region_summary(ar[used], peak[used], lat[used], lon[used])

  def share(merged):
    ids = np.array([merged.get(int(a), int(a)) for a in ar], np.int64)
    seen = np.isin(ids[test], np.unique(ids[train]))
    return float(np.sum(w[test] * seen) / w[test].sum()), np.unique(ids[test]).size

  value, regions = share(merge_summary(summary))
  rng = np.random.default_rng(seed)
  chance = [
    share(merge_summary(summary, lon_offset=rng.uniform(0.0, 360.0, summary["ar"].size)))[0]
    for _ in range(CHANCE_DRAWS)
  ]
  return {**out, "test_regions": regions, "share": value, "chance": float(np.mean(chance))}
