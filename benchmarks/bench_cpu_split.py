"""Two CPU cores as one process on both, or as two one-core processes side by side.

  PYTHONPATH=. .venv/bin/python benchmarks/bench_cpu_split.py --model=unet --steps=20
  PYTHONPATH=. .venv/bin/python benchmarks/bench_cpu_split.py --model=classifier --steps=150
  PYTHONPATH=. .venv/bin/python benchmarks/bench_cpu_split.py --model=classifier --steps=100 \
      --set=classifier.batch_size=64 --alone-only

The quickstart's work is a chain of independent jobs (the real-data classifier runs do
not need the DDPM; the two synthetic pools do not need each other), so two one-core
processes could run two of them at once instead of one process spreading each program
over both cores. Per round: the step rate of one process on every core ('alone'), then
two processes pinned one to each core (``os.sched_setaffinity`` before JAX starts; XLA
sizes its thread pool from the affinity) started together ('split'; their rates and
sum). Printed: every round, then the medians and ``split sum / alone``. The step is the
quickstart's (``solar_jax/configs/quickstart.py``): the UNet train step (batch 16, 64²)
or the classifier's (batch 32), on random fixed batches after a warm-up. ``--set`` takes
``field=value`` overrides of that config (Python literals; strings as they are).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _override(config, assignment: str) -> None:
  key, _, text = assignment.partition("=")
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    value = text
  config.update_from_flattened_dict({key: value})


def worker(model: str, steps: int, sets: list[str]) -> dict:
  """This process's step rate (affinity as the parent set it)."""
  sys.path.insert(0, str(ROOT))
  from solar_jax import xla_flags

  xla_flags.configure_malloc()
  xla_flags.configure_xla_cpu()
  import jax
  import numpy as np

  from solar_jax import parallel
  from solar_jax.configs import quickstart

  config = quickstart.get_config()
  for assignment in sets:
    _override(config, assignment)
  mesh = parallel.create_mesh(config.mesh)
  rng = np.random.default_rng(0)
  size = config.data.image_size
  with jax.set_mesh(mesh):
    if model == "unet":
      from solar_jax.ddpm import train, train_state

      batch_size = config.training.batch_size
      abstract, _ = train_state.abstract_train_state(config, mesh)
      state = train_state.init_train_state(config, mesh)
      step_fn = train.make_train_step(config, mesh, abstract)
      arrays = {"label": rng.integers(0, 5, batch_size).astype(np.int32)}
    else:
      from solar_jax.classifier import trainer

      batch_size = config.classifier.batch_size
      programs = trainer.make_programs(config, mesh)
      state, step_fn = trainer.init_state(programs, config, 0), programs.step
      arrays = {
        "label": rng.integers(0, 5, batch_size).astype(np.int32),
        "weight": np.ones(batch_size, np.float32),
        "gamma": np.zeros(batch_size, np.float32),
      }
    image = rng.uniform(-1, 1, (batch_size, size, size, 1)).astype(np.float32)
    batch = parallel.make_global_batch(mesh, {"image": image, **arrays})
    for _ in range(5):  # Compile and warm up.
      state, metrics = step_fn(state, batch)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
      state, metrics = step_fn(state, batch)
    jax.block_until_ready(metrics)
    wall = time.perf_counter() - start
  return {"steps_per_s": steps / wall}


def _launch(args, cpus: set[int] | None) -> subprocess.Popen:
  command = [sys.executable, __file__, "--worker", f"--model={args.model}", f"--steps={args.steps}"]
  command += [f"--set={s}" for s in args.set]

  def pin():
    if cpus is not None:
      os.sched_setaffinity(0, cpus)

  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True, preexec_fn=pin)


def _result(process: subprocess.Popen) -> dict:
  out, _ = process.communicate()
  if process.returncode:
    raise SystemExit(f"worker exited with {process.returncode}")
  return json.loads(out.strip().splitlines()[-1])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", choices=("unet", "classifier"), default="unet")
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--set", action="append", default=[], help="config override field=value")
  parser.add_argument("--alone-only", action="store_true", help="only the one-process rate")
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    print(json.dumps(worker(args.model, args.steps, args.set)))
    return
  cores = sorted(os.sched_getaffinity(0))
  if len(cores) < 2 and not args.alone_only:
    raise SystemExit(f"needs two cores to split; this process may use {len(cores)}.")
  alone, split = [], []
  for _ in range(args.rounds):
    alone.append(_result(_launch(args, None))["steps_per_s"])
    print(f"alone {alone[-1]:.3f} steps/s on {len(cores)} cores", flush=True)
    if args.alone_only:
      continue
    pair = [_launch(args, {core}) for core in cores[:2]]
    rates = [_result(p)["steps_per_s"] for p in pair]
    split.append(rates)
    print(f"split {rates[0]:.3f} + {rates[1]:.3f} = {sum(rates):.3f} steps/s", flush=True)
  summary = {"model": args.model, "set": args.set, "alone_median": statistics.median(alone)}
  if split:
    summary["split_sum_median"] = statistics.median(sum(r) for r in split)
    summary["split_over_alone"] = summary["split_sum_median"] / summary["alone_median"]
  print(json.dumps(summary, indent=1))


if __name__ == "__main__":
  main()
