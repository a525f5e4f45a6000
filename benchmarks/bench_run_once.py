"""Compile time of the programs run once, with and without XLA:CPU's LLVM optimisation.

  PYTHONPATH=. .venv/bin/python benchmarks/bench_run_once.py --rounds=2

``parallel.jit_run_once`` compiles a program that runs once or rarely (the quickstart
UNet's and classifier's initialisation) with ``xla_backend_optimization_level`` 0 and
without LLVM's expensive passes. Each side compiles in a fresh process (no cache), the
sides alternating; printed: compile seconds per side and round, and whether both give
the same parameters.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_side(cheap: bool) -> dict:
  import time

  sys.path.insert(0, str(ROOT))
  from solar_jax import xla_flags

  xla_flags.configure_xla_cpu()
  import functools

  import jax
  import numpy as np

  from solar_jax import parallel
  from solar_jax.classifier import trainer
  from solar_jax.configs import quickstart
  from solar_jax.ddpm import train_state
  from solar_jax.models import classifier as classifier_lib
  from solar_jax.models import unet

  options = parallel._RUN_ONCE_CPU_OPTIONS if cheap else None
  config = quickstart.get_config()
  mesh = parallel.create_mesh(config.mesh, devices=jax.devices()[:1])
  unet_init = functools.partial(
    train_state._init_state,
    config=config,
    model=unet.create_model(config),
    optimizer=train_state.create_optimizer(config.training),
  )
  classifier_init = functools.partial(
    trainer.new_state,
    config=config,
    model=classifier_lib.create_classifier(config),
    optimizer=trainer.create_optimizer(config.classifier),
  )
  fns = {
    "unet_init": (unet_init, jax.random.key(0)),
    "classifier_init": (classifier_init, trainer.seed_key(config, 0)),
  }
  out = {}
  with jax.set_mesh(mesh):
    for name, (fn, arg) in fns.items():
      lowered = jax.jit(fn).lower(arg)
      start = time.perf_counter()
      compiled = lowered.compile(compiler_options=options)
      seconds = time.perf_counter() - start
      leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(compiled(arg).params)]
      out[name] = {
        "compile_s": round(seconds, 2),
        "checksum": float(sum(np.abs(x).sum() for x in leaves)),
      }
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--side", choices=("cheap", "default"), help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.side:
    print(json.dumps(one_side(args.side == "cheap")))
    return
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR="")
  for _ in range(args.rounds):
    for side in ("cheap", "default"):
      out = (
        subprocess.run(
          [sys.executable, __file__, f"--side={side}"],
          env=env,
          capture_output=True,
          text=True,
          check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
      )
      print(side, out, flush=True)


if __name__ == "__main__":
  main()
