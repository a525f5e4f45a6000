"""Classifier runs per hour: each run alone (``train_one``) against runs stacked (``train_many``).

  JAX_PLATFORMS=cpu PYTHONPATH=. .venv/bin/python benchmarks/bench_classifier_batching.py \\
      --runs=4 --rounds=2

The quickstart's classifier (``configs/quickstart.py``: 64x64x1 images, stages
(1, 1, 1), width 16, batch 32, 500 steps, validation every 100) on synthetic
toy images of that shape (a bright disk whose radius is the class; the cost
does not depend on the pixels). ``--runs`` runs (seeds 0..runs-1 of the
'real' regime) are trained alone one after the other ("before", as
``experiment`` did) and as one stacked program ("after"), alternating, each
side ``--rounds`` times; both sides are compiled before the clock starts and
the compile times are reported apart. Runs per hour = runs / wall seconds
* 3600 (training, validation every ``eval_every`` steps, best-checkpoint copies;
not the test read or the files).

``--sides=...,after_vmap`` adds every run side by side in one vmapped state,
the form the experiment uses on an accelerator (slower on XLA:CPU).

Also printed: the train step's FLOPs per run from XLA's cost analysis of the
compiled (unstacked) step, for the quickstart's and the research
(``configs/default.py``) classifier: the figures behind the accelerator
estimate in benchmarks/RESULTS.md. Prints one JSON object (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solar_jax import xla_flags  # noqa: E402

xla_flags.configure_xla_cpu()  # Before JAX starts its CPU backend.

import jax  # noqa: E402
import numpy as np  # noqa: E402

from solar_jax import parallel  # noqa: E402
from solar_jax.classifier import stacked, trainer, training_sets  # noqa: E402
from solar_jax.configs import default, quickstart  # noqa: E402


def toy_split(n: int, size: int, num_classes: int, rng) -> dict:
  """``n`` model-space images ``[n, size, size, 1]``, a disk whose radius encodes the class."""
  yy, xx = np.mgrid[:size, :size]
  labels = rng.integers(0, num_classes, n).astype(np.int32)
  radius = size * (0.1 + 0.06 * labels)
  centre = rng.uniform(0.3 * size, 0.7 * size, (n, 2))
  disk = (yy - centre[:, :1, None]) ** 2 + (xx - centre[:, 1:, None]) ** 2 <= radius[
    :, None, None
  ] ** 2
  images = np.where(disk, 0.8, -0.8) + 0.05 * rng.standard_normal((n, size, size))
  return {"image": images.astype(np.float32)[..., None], "label": labels}


def step_flops(programs, config, mesh) -> float:
  """FLOPs of one (unstacked) train step, from XLA's cost analysis."""
  c = config.classifier
  size, channels = config.data.image_size, config.data.channels
  state = trainer.init_state(programs, config, 0)
  batch = {
    "image": np.zeros((c.batch_size, size, size, channels), np.float32),
    "label": np.zeros(c.batch_size, np.int32),
    "weight": np.ones(c.batch_size, np.float32),
    "gamma": np.zeros(c.batch_size, np.float32),
  }
  analysis = programs.step.lower(state, trainer._global(mesh, batch)).compile().cost_analysis()
  if isinstance(analysis, list | tuple):
    analysis = analysis[0]
  return float(analysis["flops"])


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--runs", type=int, default=4)
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--num_steps", type=int, default=None, help="default: the quickstart's")
  parser.add_argument("--train_size", type=int, default=600)
  parser.add_argument("--val_size", type=int, default=100)
  parser.add_argument(
    "--sides",
    default="before,after",
    help="before: runs alone; after: train_many, classifier.vectorized_runs auto (1 on CPU); "
    "after_vmap: train_many with every run side by side (the accelerator's form)",
  )
  parser.add_argument("--out", default=None)
  args = parser.parse_args(argv)

  config = quickstart.get_config()
  config.logging.progress = False
  if args.num_steps:
    config.classifier.num_steps = args.num_steps
  c = config.classifier
  mesh = parallel.create_mesh(config.mesh, devices=jax.devices()[:1])
  rng = np.random.default_rng(0)
  size, k = config.data.image_size, len(config.data.classes)
  train = toy_split(args.train_size, size, k, rng)
  val = toy_split(args.val_size, size, k, rng)
  ts = training_sets.build_training_set("real", train, None, config, 0)
  runs = [stacked.Run(ts, seed, f"real/seed{seed}") for seed in range(args.runs)]

  with jax.set_mesh(mesh):
    programs = trainer.make_programs(config, mesh)
    many = stacked.make_stacked_programs(config, mesh)

    def before():
      for run in runs:
        trainer.train_one(config, programs, run.training_set, val, seed=run.seed, name=run.name)

    def after():
      stacked.train_many(config, many, runs, val)

    def after_vmap():
      c.vectorized_runs = len(runs)
      try:
        stacked.train_many(config, many, runs, val)
      finally:
        c.vectorized_runs = 0

    sides = {
      name: {"before": before, "after": after, "after_vmap": after_vmap}[name]
      for name in args.sides.split(",")
    }

    def timed(fn):
      start = time.perf_counter()
      fn()
      return time.perf_counter() - start

    # Compile both sides (the first call of each also runs; its time includes the compile).
    steps = c.num_steps
    c.num_steps = c.eval_every = 1
    first = {name: timed(fn) for name, fn in sides.items()}
    c.num_steps, c.eval_every = steps, quickstart.get_config().classifier.eval_every
    flops = step_flops(programs, config, mesh)
    research = default.get_config()  # The research classifier: 64x64, (2, 2, 2) x 32, batch 64.
    research_flops = step_flops(trainer.make_programs(research, mesh), research, mesh)
    times = {name: [] for name in sides}
    for _ in range(args.rounds):  # Interleaved: the machine's load hits every side alike.
      for name, fn in sides.items():
        times[name].append(timed(fn))
  med = {side: statistics.median(t) for side, t in times.items()}
  result = {
    "device": str(jax.devices()[0].device_kind),
    "runs": args.runs,
    "num_steps": c.num_steps,
    "batch_size": c.batch_size,
    "image": [size, size, config.data.channels],
    "first_call_s (1 step, compile included)": first,
    "wall_s": times,
    "runs_per_hour": {side: args.runs / t * 3600 for side, t in med.items()},
    "runs_per_hour_ratio_over_before": {side: med["before"] / t for side, t in med.items()},
    "train_step_gflop_per_run": flops / 1e9,
    "research_train_step_gflop_per_run": research_flops / 1e9,
  }
  print(json.dumps(result, indent=1))
  if args.out:
    Path(args.out).write_text(json.dumps(result, indent=1))
  return result


if __name__ == "__main__":
  main()
