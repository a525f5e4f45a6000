"""glibc's malloc defaults against ``xla_flags.configure_malloc`` on the quickstart train step.

  PYTHONPATH=. .venv/bin/python benchmarks/bench_malloc.py --rounds=3 --steps=30

Each side runs in its own process (malloc is set once, at start), the sides alternating
``--rounds`` times: the quickstart UNet's train step (batch 16, 64², random batches) is
compiled and warmed up, then ``--steps`` steps are timed. Printed per run: steps per
second, user and system CPU seconds and minor page faults of the timed steps; then the
medians and the ratio of the steps per second (kept / default).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_side(steps: int) -> dict:
  """This process's figures (malloc as the environment says)."""
  import resource
  import time

  sys.path.insert(0, str(ROOT))
  from solar_jax import xla_flags

  applied = xla_flags.configure_malloc()
  xla_flags.configure_xla_cpu()
  import jax
  import numpy as np

  from solar_jax import parallel
  from solar_jax.configs import quickstart
  from solar_jax.ddpm import train, train_state

  config = quickstart.get_config()
  mesh = parallel.create_mesh(config.mesh)
  rng = np.random.default_rng(0)
  size, batch = config.data.image_size, config.training.batch_size
  with jax.set_mesh(mesh):
    abstract, _ = train_state.abstract_train_state(config, mesh)
    state = train_state.init_train_state(config, mesh)
    step_fn = train.make_train_step(config, mesh, abstract)

    def next_batch():
      return parallel.make_global_batch(
        mesh,
        {
          "image": rng.uniform(-1, 1, (batch, size, size, 1)).astype(np.float32),
          "label": rng.integers(0, 5, batch).astype(np.int32),
        },
      )

    for _ in range(4):  # Compile and warm up.
      state, metrics = step_fn(state, next_batch())
    jax.block_until_ready(metrics)
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
      state, metrics = step_fn(state, next_batch())
    jax.block_until_ready(metrics)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
  return {
    "malloc_kept": applied,
    "steps_per_s": steps / wall,
    "user_s": after.ru_utime - before.ru_utime,
    "sys_s": after.ru_stime - before.ru_stime,
    "minor_faults": after.ru_minflt - before.ru_minflt,
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=30)
  parser.add_argument("--side", choices=("kept", "default"), help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.side:
    print(json.dumps(one_side(args.steps)))
    return
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("SOLAR_JAX_KEEP_MALLOC", None)
  runs = {"kept": [], "default": []}
  for _ in range(args.rounds):
    for side in runs:
      side_env = dict(env, **({"SOLAR_JAX_KEEP_MALLOC": "1"} if side == "default" else {}))
      out = (
        subprocess.run(
          [sys.executable, __file__, f"--side={side}", f"--steps={args.steps}"],
          env=side_env,
          capture_output=True,
          text=True,
          check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
      )
      runs[side].append(json.loads(out))
      print(side, runs[side][-1], flush=True)
  med = {
    side: {k: statistics.median(r[k] for r in rs) for k in rs[0] if k != "malloc_kept"}
    for side, rs in runs.items()
  }
  med["ratio_steps_per_s_kept_over_default"] = (
    med["kept"]["steps_per_s"] / med["default"]["steps_per_s"]
  )
  print(json.dumps(med, indent=1))


if __name__ == "__main__":
  main()
