"""Writes a small SIMULATED AIA 171 Å archive built from a real AIA frame.

The quickstart and the tests need a manual directory for the ``sdo_aia171``
builder without internet. This module makes one from the real level-1 AIA
171 Å frame that ships with sunpy (``sunpy.data.test``, 2011-02-15, 128×128):

* ``DIR/aia/YYYY/MM/DD/*.fits``: the real disk turned by solar differential
  rotation (``sunpy.sun.models.differential_rotation``, Howard model) to each
  frame's time, with a flare brightening (a bright loop arc at an active
  region) whose strength follows the GOES flux at that time, photon-like
  noise, AIA's 14-bit saturation and automatic exposure control. Headers are
  the real AIA level-1 header with the times, exposure and statistics updated
  and ``SIMULATE = T``. Some files are RICE-compressed, some gzipped.
* ``DIR/goes/*.fits``: one GOES XRS file per month (1-minute cadence) in the
  SDAC FITS layout that ``sunpy.timeseries`` reads as XRS, with a slowly
  varying background and a flare profile (Gaussian rise, exponential decay)
  at each listed flare; fluxes on the SWPC scale, like SDAC files.
* ``DIR/flares.csv``: the flare list with the columns of
  ``final_flare_list_sc24.csv`` plus a ``simulated`` column; classes as an SWPC
  list of the GOES-15 era publishes them (the reader knows it by these columns).
* ``DIR/demo_manifest.json``: every frame with the class it was made for
  (``letter``: on the TRUE scale, ``data.class_scale='true'``; on the default SWPC
  scale a flare's frames take its published class and quiet frames 0.7 x their flux)
  and whether it is an issuance frame of the default forecast grid (``issuance``;
  quiet frames are placed on the grid, ``demo_plan``).

Frames are either near a flare's peak (flaring, the flare's class) or at
least several decay times away from any flare (quiet, the class of the
background flux), so the builder's labels can be checked against the
manifest. Classes follow a realistic imbalance (many A/B/C, few M, fewer X)
but every month has at least one X and one M flare, so each time-block split
holds every class. Everything is deterministic for a seed.

This module is the entry point (``write_demo_archive``, the CLI); the work is
split by job: ``demo_plan`` (the schedule), ``demo_render`` (the images) and
``demo_files`` (the FITS, CSV and bad files).

  python -m solar_jax.data.demo --out runs/aia_demo --num_frames 480
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import time as time_lib

import numpy as np

from solar_jax.data import frame_facts, goes
from solar_jax.data.demo import files as demo_files
from solar_jax.data.demo import plan as demo_plan
from solar_jax.data.demo import render as demo_render

CLASSES = goes.CLASS_LETTERS
XRS_CADENCE_S = demo_files.XRS_CADENCE_S


def write_demo_archive(
  out_dir,
  *,
  num_frames: int = 480,
  months: int = 12,
  start: str = "2011-01-01",
  seed: int = 0,
  with_bad: bool = False,
  xrs_cadence_s: int = XRS_CADENCE_S,
) -> dict:
  """Writes the simulated manual directory (layout in the module docstring).

  Args:
    out_dir: directory to write (created; existing demo files are overwritten).
    num_frames: number of good AIA frames.
    months: calendar months covered, from ``start``.
    start: first month (ISO date; the day is ignored).
    seed: seed of everything random.
    with_bad: also write one deliberately bad file of each kind under
      ``aia/bad/`` (see ``demo_files.write_bad_files``).
    xrs_cadence_s: GOES sample spacing (s); <= 240 keeps every window covered.

  Returns:
    A summary dict (also in ``demo_manifest.json``): counts per class, the
    frames and the bad files with the reason the reader should give.
  """
  if num_frames < months:
    raise ValueError(
      f"num_frames={num_frames} must be >= months={months} (one frame a month at least)."
    )
  out = pathlib.Path(out_dir)
  t_start = datetime.datetime.fromisoformat(start).replace(
    day=1, hour=0, minute=0, second=0, microsecond=0
  )
  disk = demo_render.prepare_disk()
  flares, frames, bkg, starts = demo_plan.plan_archive(
    num_frames, t_start, months, seed, len(disk.active_regions)
  )
  # One stream for all files, drawn in this order (GOES, frames, bad files):
  # the archive of a seed stays byte for byte the same.
  rng = np.random.default_rng([seed, 1])
  demo_files.write_goes_files(out / "goes", starts, flares, bkg, rng, xrs_cadence_s)
  demo_files.write_flare_csv(out / "flares.csv", flares, disk)
  records = demo_files.write_frames(out, disk, frames, flares, rng)
  bad = demo_files.write_bad_files(out, disk, frames, starts, rng) if with_bad else []
  counts = {c: sum(r["letter"] == c for r in records) for c in CLASSES}
  # The frames a forecast is issued from (the default grid, decided as on read).
  issuance = frame_facts.issuance_frames([r["time"] for r in records])
  for record, flag in zip(records, issuance):
    record["issuance"] = bool(flag)
  summary = dict(
    note=demo_files.SIMULATED_NOTE,
    seed=seed,
    num_frames=len(records),
    months=[f"{s:%Y-%m}" for s in starts[:-1]],
    class_counts=counts,
    issuance_frames=int(issuance.sum()),
    num_flares=len(flares),
    frames=records,
    bad_files=bad,
  )
  (out / "demo_manifest.json").write_text(json.dumps(summary, indent=1))
  return summary


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", required=True, help="manual directory to write")
  parser.add_argument("--num_frames", type=int, default=480)
  parser.add_argument("--months", type=int, default=12)
  parser.add_argument("--start", default="2011-01-01", help="first month (ISO date)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--with_bad", action="store_true", help="also write bad files under aia/bad/")
  parser.add_argument(
    "--xrs_cadence_s", type=int, default=XRS_CADENCE_S, help="GOES sample spacing"
  )
  args = parser.parse_args(argv)
  t0 = time_lib.time()
  summary = write_demo_archive(
    args.out,
    num_frames=args.num_frames,
    months=args.months,
    start=args.start,
    seed=args.seed,
    with_bad=args.with_bad,
    xrs_cadence_s=args.xrs_cadence_s,
  )
  print(
    f"Wrote a SIMULATED demo archive to {args.out} in {time_lib.time() - t0:.1f} s: "
    f"{summary['num_frames']} frames over {len(summary['months'])} months "
    f"({summary['months'][0]}..{summary['months'][-1]}), {summary['num_flares']} flares, "
    f"intended classes {summary['class_counts']}, {summary['issuance_frames']} on the "
    f"forecast issuance grid, {len(summary['bad_files'])} bad files."
  )
