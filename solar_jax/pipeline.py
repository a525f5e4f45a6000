"""--mode=all: train -> sample -> classify -> evaluate -> report, for any config."""

from __future__ import annotations

import time

from absl import logging

from solar_jax import report


def run_all(config, workdir) -> None:
  """Runs every stage in ``workdir``; each stage resumes or reuses what exists."""
  from solar_jax import sample, train, train_classifier
  from solar_jax.evaluation import evaluate

  stages = (
    ("train", train.train_and_evaluate),
    ("sample", sample.run),
    ("classify", train_classifier.run),
    ("evaluate", evaluate.run),
    ("report", report.write_report),
  )
  timings = {}
  start = time.time()
  for name, stage in stages:
    logging.info("=== stage %s ===", name)
    print(f"[solar_jax] stage: {name}", flush=True)
    t0 = time.time()
    stage(config, workdir)
    timings[name] = time.time() - t0
    print(f"[solar_jax] stage {name} done in {timings[name]:.0f} s", flush=True)
  total = time.time() - start
  summary = ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
  print(f"[solar_jax] all stages done in {total:.0f} s ({summary})", flush=True)
