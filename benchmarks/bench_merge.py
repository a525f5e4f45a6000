"""Near-duplicate flare merging (``flare_list.merge_duplicates``) on 10k synthetic HEK rows.

  python benchmarks/bench_merge.py [--rows 10000] [--repeat 3]

Two layouts, seeded, so runs compare:
  * ``hek``: flares every ~20 min on average over the rows' span, each reported by 1-3
    detection modules (peaks within 3 min, classes within ~10 %, the AR given or not);
    several regions flare at once, as in a busy week of cycle 24;
  * ``storm``: the same rows squeezed into a few hours (peaks seconds apart);
  * ``regions``: every row a flare of its own AR, all peaking within 5 min: nothing merges,
    and every row has every earlier one open beside it (the worst case of a 6 min window;
    the quadratic sweep took tens of seconds here);
  * ``mixed``: as ``regions``, every other row without an AR (it may join any group).
Prints seconds per call (best of ``--repeat``) and the number of events merged away.
"""

import argparse
import datetime
import random
import time

from solar_jax.data import flare_list, goes

_CLASSES = ("B", "C", "C", "C", "M")


def synthetic_rows(rows: int, layout: str, seed: int = 0) -> list[flare_list.Flare]:
  rng = random.Random(seed)
  base = datetime.datetime(2014, 1, 1)
  if layout in ("regions", "mixed"):
    flares = []
    for i in range(rows):
      peak = base + datetime.timedelta(seconds=rng.uniform(0, 300))
      goes_class = f"C{rng.uniform(1.0, 9.9):.1f}"
      ar = 0 if layout == "mixed" and i % 2 else 10000 + i
      flares.append(
        flare_list.Flare(
          f"e{i}",
          peak - datetime.timedelta(minutes=5),
          peak,
          peak + datetime.timedelta(minutes=5),
          goes_class,
          goes.class_to_flux(goes_class),
          ar,
        )
      )
    return flares
  spacing = {"hek": 20 * 60.0, "storm": 1.5}[layout]  # seconds between distinct flares
  flares, t, i = [], 0.0, 0
  while len(flares) < rows:
    t += rng.expovariate(1.0 / spacing)
    letter = rng.choice(_CLASSES)
    value = rng.uniform(1.0, 9.9)
    ar = rng.choice((0, *range(11900, 11912)))
    for _ in range(rng.choice((1, 2, 3))):  # one report per detection module
      peak = base + datetime.timedelta(seconds=t + rng.uniform(0, 180))
      goes_class = f"{letter}{value * rng.uniform(0.9, 1.1):.1f}".replace("10.", "9.")
      flares.append(
        flare_list.Flare(
          event_id=f"e{i}",
          start=peak - datetime.timedelta(minutes=rng.uniform(2, 20)),
          peak=peak,
          end=peak + datetime.timedelta(minutes=rng.uniform(2, 40)),
          goes_class=goes_class,
          peak_flux=goes.class_to_flux(goes_class),
          noaa_ar=ar if rng.random() < 0.7 else 0,
        )
      )
      i += 1
  return flares[:rows]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rows", type=int, default=10000)
  parser.add_argument("--repeat", type=int, default=3)
  parser.add_argument("--layouts", nargs="+", default=["hek", "storm", "regions", "mixed"])
  args = parser.parse_args()
  for layout in args.layouts:
    flares = synthetic_rows(args.rows, layout)
    best, merged = float("inf"), None
    for _ in range(args.repeat):
      t0 = time.perf_counter()
      _, merged = flare_list.merge_duplicates(flares)
      best = min(best, time.perf_counter() - t0)
    print(f"{layout:6s} rows={args.rows} merged_away={merged} seconds={best:.3f}")


if __name__ == "__main__":
  main()
