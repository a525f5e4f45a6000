"""Recurrent active regions between each fold's test and training months (cycle-24 list).

  python benchmarks/bench_regions.py [--flares ../shared/data/flare_lists/final_flare_list_sc24.csv]
  python benchmarks/bench_regions.py --embargo   # what a longer embargo, forward folds cost

For each of the ``--folds`` month-block folds (``data.splits``: test months
``m mod K = f``, the 14-day embargo of the configs), the share of the test
months' flaring frames whose merged active region (``data.regions``: a NOAA
region returning a rotation later is the same region) also flares in the
training months, beside its chance level (``regions.recurrent_overlap``: each
region's Carrington longitude turned by a random angle before the merge) and
the share by NOAA number alone (no merge). A flare's frames are counted by its
minutes from start to end plus the 30-min cooling lag (frames at a fixed
cadence); the share of test flares (unweighted) is printed too. It also prints
how many NOAA regions the merge joins, and by chance; ``--sweep`` does that for
other tolerances (latitude °, longitude °, rotations), how they were chosen.

``--embargo`` measures, for ``data.embargo_days`` of 0, 14 and 27 (a rotation) under the
month-block folds and the forward folds (``splits.assign_forward``: train on the years
before, test on the next but one), what the embargo costs and buys: the share of the
frames of an hourly grid over the list's span (whole days from the first flare to the
last) that no split keeps (embargoed), the share of the training frames lost to it, the
share of >=M flares (SWPC classes, by peak) embargoed, and the recurrent-region share of
the test flaring frames with its chance level; means over the folds.
"""

import argparse
import datetime
import pathlib

import numpy as np

from solar_jax.data import flare_list, frame_facts, goes, regions, splits

COOLING_LAG_MINUTES = 30.0
EMBARGO_DAYS = 14.0


SWEEP = ((10, 15, 1), (5, 15, 1), (10, 10, 1), (10, 15, 2), (5, 10, 2), (10, 15, 3))


def joined(summary: dict, draws: int = 5) -> tuple[int, float]:
  """NOAA numbers that join an earlier region: as merged, and the mean with longitudes
  turned at random (``draws`` draws)."""
  real = sum(a != b for a, b in regions.merge_summary(summary).items())
  rng = np.random.default_rng(0)
  chance = [
    sum(a != b for a, b in regions.merge_summary(summary, lon_offset=o).items())
    for o in rng.uniform(0, 360, (draws, summary["ar"].size))
  ]
  return real, float(np.mean(chance))


def fold_codes(times, rule: str, fold: int, folds: int, embargo: float, years) -> np.ndarray:
  if rule == "forward":
    return splits.assign_forward(times, fold=fold, embargo_days=embargo, years=years)
  return splits.assign(times, fold=fold, num_folds=folds, embargo_days=embargo)


def embargo_costs(flares, folds: int, positions) -> None:
  """The ``--embargo`` table (module docstring): one row per split rule and embargo."""
  ar, peak, lat, lon, minutes = positions
  first = min(f.start for f in flares).date()
  last = max(f.end for f in flares).date() + datetime.timedelta(days=1)
  grid = np.arange(np.datetime64(first, "h"), np.datetime64(last, "h")).astype("datetime64[ms]")
  years = splits.forward_years(grid)
  big = np.array([f.flux_on("swpc") >= goes.CLASS_BASE_FLUX["M"] for f in flares])
  print(f"{grid.size} hourly frames {first}..{last}, {big.sum()} >=M flares, years {years}")
  print("rule | embargo (d) | folds | frames embargoed | train frames lost | >=M flares "
        "embargoed | test frames in a training region | chance")  # fmt: skip
  for rule, count in (("month_blocks", folds), ("forward", len(years) - 2)):
    for embargo in (0.0, 14.0, 27.0):
      rows = []
      for fold in range(count):
        codes = fold_codes(grid, rule, fold, folds, embargo, years)
        plain = fold_codes(grid, rule, fold, folds, 0.0, years)
        at_peak = fold_codes(peak.astype("datetime64[ms]"), rule, fold, folds, embargo, years)
        test, train = at_peak == splits.TEST, at_peak == splits.TRAIN
        got = regions.recurrent_overlap(ar, peak, lat, lon, test, train, weights=minutes)
        rows.append((
          np.mean(codes == splits.EMBARGOED),
          1 - np.sum(codes == splits.TRAIN) / np.sum(plain == splits.TRAIN),
          np.mean(at_peak[big] == splits.EMBARGOED),
          np.nan if got["share"] is None else got["share"],
          np.nan if got["chance"] is None else got["chance"],
        ))  # fmt: skip
      m = np.nanmean(rows, axis=0)
      print(f"{rule} | {embargo:g} | {count} | {m[0]:.3f} | {m[1]:.3f} | {m[2]:.3f} | "
            f"{m[3]:.3f} | {m[4]:.3f}")  # fmt: skip


def main() -> None:
  default = pathlib.Path(__file__).resolve().parents[2] / "shared/data/flare_lists"
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--flares", default=str(default / "final_flare_list_sc24.csv"))
  parser.add_argument("--folds", type=int, default=10)
  parser.add_argument("--sweep", action="store_true", help="merges per tolerance, then stop")
  parser.add_argument("--embargo", action="store_true", help="embargo and forward costs, stop")
  args = parser.parse_args()
  flares = [f for f in flare_list.read_flare_list(args.flares, provenance="swpc")]
  ar = np.array([f.noaa_ar for f in flares])
  peak = np.array([frame_facts.iso(f.peak) for f in flares], object)
  lat = np.array([f.hgs_lat for f in flares])
  lon = np.array([f.hgs_lon for f in flares])
  minutes = np.array(
    [(f.end - f.start) / datetime.timedelta(minutes=1) + COOLING_LAG_MINUTES for f in flares]
  )
  if args.embargo:
    embargo_costs(flares, args.folds, (ar, peak, lat, lon, minutes))
    return
  numbered = ar > 0
  summary = regions.region_summary(ar[numbered], peak[numbered], lat[numbered], lon[numbered])
  if args.sweep:
    print("lat tol | lon tol | rotations | numbers joined | by chance")
    for lat_tol, lon_tol, rotations in SWEEP:
      regions.LAT_TOLERANCE_DEG, regions.LON_TOLERANCE_DEG = lat_tol, lon_tol
      regions.MAX_ROTATIONS = rotations
      real, chance = joined(summary)
      print(f"{lat_tol:g} | {lon_tol:g} | {rotations} | {real} | {chance:.0f}")
    return
  merged = regions.merge_summary(summary)
  _, by_chance = joined(summary)
  print(
    f"{len(flares)} flares, {numbered.sum()} with a NOAA number; {summary['ar'].size} NOAA "
    f"regions with positions -> {len(set(merged.values()))} merged regions "
    f"({sum(a != b for a, b in merged.items())} numbers joined an earlier region; by chance "
    f"{by_chance:.0f})"
  )
  print("fold | numbered test flares | test regions | share of test flaring frames in training "
        "(merged) | chance | NOAA number only | share of test flares (merged)")  # fmt: skip
  rows = []
  for fold in range(args.folds):
    codes = splits.assign(peak, fold=fold, num_folds=args.folds, embargo_days=EMBARGO_DAYS)
    test, train = codes == splits.TEST, codes == splits.TRAIN
    got = regions.recurrent_overlap(ar, peak, lat, lon, test, train, weights=minutes, seed=fold)
    flares_share = regions.recurrent_overlap(ar, peak, lat, lon, test, train, seed=fold)["share"]
    t, r = test & numbered, train & numbered
    plain = float(np.sum(minutes[t] * np.isin(ar[t], ar[r])) / minutes[t].sum())
    rows.append((got["share"], got["chance"], plain))
    print(
      f"{fold} | {t.sum()} | {got['test_regions']} | {got['share']:.3f} | {got['chance']:.3f} | "
      f"{plain:.3f} | {flares_share:.3f}"
    )
  share, chance, plain = np.mean(rows, axis=0)
  print(f"mean | | | {share:.3f} | {chance:.3f} | {plain:.3f} |")


if __name__ == "__main__":
  main()
