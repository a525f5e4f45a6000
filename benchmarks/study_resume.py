"""The whole study (--mode=study) over every fold of the demo archive at tiny size:
its time, and a run SIGKILLed once in each stage that ends with the same results.

    PYTHONPATH=. .venv/bin/python benchmarks/study_resume.py [--out DIR] [--num_frames N]

1. Builds a demo archive (SIMULATED) and its sdo_aia171/64 dataset in DIR.
2. Runs `python -m solar_jax.main --config=tiny --mode=study` uninterrupted in DIR/a
   (the time printed and written to DIR/study_resume.json).
3. Runs the same command in DIR/b, SIGKILLing it a moment after it enters each stage
   of LEADER_STAGES (for the first leader fold) and each of PARTNER_STAGES (for the
   first partner fold), restarting it each time, then lets it finish.
4. Compares every fold's classifier metrics, the pooled folds.json and each fold's
   evaluation metrics between a and b (timings left out): they must be equal.

Exit 0 when they are; 1 with the differing keys otherwise. Minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
# The tiny config at the sizes of the test suite's runs: one classifier seed and pool.
OVERRIDES = (
  "--config.data.image_size=16",
  "--config.model.channel_mult=(1,)",
  "--config.model.attention_resolutions=()",
  "--config.model.num_groups=4",
  "--config.model.base_channels=8",
  "--config.training.num_steps=6",
  "--config.training.checkpoint_every=3",
  "--config.training.num_sample_images=0",
  "--config.sampling.num_steps=2",
  "--config.classifier.stage_sizes=(1,)",
  "--config.classifier.num_steps=4",
  "--config.classifier.regimes=('real','real_synthetic')",
  "--config.classifier.guidance_grid=()",
  "--config.classifier.ratio_grid=()",
  "--config.classifier.bootstrap_samples=100",
  "--config.evaluation.num_images=8",
  "--config.evaluation.kid_bootstrap=20",
  "--config.evaluation.nearest_k=2",
  "--config.evaluation.num_clusters=2",
  "--config.logging.tensorboard=False",
  "--config.logging.progress=False",
)
_STAGE = re.compile(r"=== study: fold (\d+) of (\d+), stage (\w+) ===")
# Keys whose values are times or paths, not results.
# (A sample folder's name and a checkpoint's path hold the study's root.)
_VOLATILE = re.compile(
  r"(seconds|_s$|time|elapsed|path|dir|date|commit|command|workdir|checkpoint|^folds$)"
)


def build(out: pathlib.Path, num_frames: int) -> pathlib.Path:
  data = out / "tfds"
  if (out / "built").exists():
    return data
  import tensorflow_datasets as tfds

  sys.path.insert(0, str(REPO))
  from solar_jax.data import demo
  from tfds_builders.sdo_aia171 import sdo_aia171_dataset_builder as sdo

  demo.write_demo_archive(
    out / "manual", num_frames=num_frames, months=12, seed=3, xrs_cadence_s=240
  )
  sdo.Builder(config="64", data_dir=str(data)).download_and_prepare(
    download_config=tfds.download.DownloadConfig(
      manual_dir=str(out / "manual"), compute_stats=tfds.download.ComputeStatsMode.SKIP
    )
  )
  (out / "built").write_text("")
  return data


def command(root: pathlib.Path, data: pathlib.Path) -> list[str]:
  return [
    sys.executable, "-m", "solar_jax.main", "--config=tiny", f"--workdir={root}",
    "--mode=study", f"--config.data.data_dir={data}", *OVERRIDES,
  ]  # fmt: skip


def run(root, data, log, kill_at=None, delay=1.0) -> tuple[int, str | None]:
  """Runs the study; with ``kill_at`` = (fold, stage), SIGKILLs it ``delay`` s into that
  stage. Returns (exit status, the stage it was killed in)."""
  env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
  with open(log, "a") as f:
    proc = subprocess.Popen(
      command(root, data), cwd=REPO, env=env, stderr=subprocess.PIPE, stdout=f, text=True
    )
    killed = None
    for line in proc.stderr:
      f.write(line)
      m = _STAGE.search(line)
      if kill_at and m and (int(m[1]), m[3]) == kill_at:
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        killed = f"fold {m[1]} {m[3]}"
        break
    proc.wait()
  return proc.returncode, killed


def results(root: pathlib.Path) -> dict:
  """Every metrics file of the study, without times and paths."""

  def clean(tree):
    if isinstance(tree, dict):
      return {k: clean(v) for k, v in tree.items() if not _VOLATILE.search(k)}
    if isinstance(tree, list):
      return [clean(v) for v in tree]
    return tree

  import hashlib

  import numpy as np

  files = sorted(root.glob("fold_*/classifier/metrics.json"))
  files += sorted(root.glob("fold_*/eval/metrics.json"))
  out = {str(p.relative_to(root)): clean(json.loads(p.read_text())) for p in files}
  for fold in sorted(root.glob("fold_*")):  # The images themselves, per fold.
    drawn = []
    for p in fold.glob("samples/*/samples.npz"):
      with np.load(p) as z:
        drawn.append(hashlib.sha256(b"".join(z[k].tobytes() for k in sorted(z))).hexdigest())
    out[f"{fold.name}/samples"] = sorted(drawn)
  out["folds.json"] = clean(json.loads((root / "folds.json").read_text()))
  return out


def differences(a, b, prefix="") -> list[str]:
  if isinstance(a, dict) and isinstance(b, dict):
    keys = sorted(set(a) | set(b))
    return [d for k in keys for d in differences(a.get(k), b.get(k), f"{prefix}/{k}")]
  if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
    return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{prefix}[{i}]")]
  return [] if a == b else [prefix]


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default="runs/study_resume")
  parser.add_argument("--num_frames", type=int, default=240)
  args = parser.parse_args()
  out = pathlib.Path(args.out).resolve()
  out.mkdir(parents=True, exist_ok=True)
  data = build(out, args.num_frames)

  start = time.time()
  status, _ = run(out / "a", data, out / "a.log")
  uninterrupted = time.time() - start
  print(f"uninterrupted study: exit {status}, {uninterrupted:.0f} s", flush=True)
  if status:
    return 1

  sys.path.insert(0, str(REPO))
  from solar_jax import pipeline

  folds = int(_STAGE.search((out / "a.log").read_text())[2])
  plan = pipeline.study_plan(folds)
  leader = plan[0][0]
  partner = next(f for f, lead in plan if lead is not None)
  kills = [(leader, s) for s in pipeline.LEADER_STAGES]
  kills += [(partner, s) for s in pipeline.PARTNER_STAGES]
  start, killed = time.time(), []
  for target in kills:
    status, where = run(out / "b", data, out / "b.log", kill_at=target)
    killed.append(where or f"not reached ({target}: exit {status})")
    print(f"killed in {killed[-1]}", flush=True)
  status, _ = run(out / "b", data, out / "b.log")
  resumed = time.time() - start
  print(f"run killed {len(kills)} times, then finished: exit {status}, {resumed:.0f} s")
  diff = differences(results(out / "a"), results(out / "b")) if status == 0 else ["(failed)"]
  summary = dict(
    folds=folds,
    uninterrupted_s=round(uninterrupted),
    killed_and_resumed_s=round(resumed),
    killed_in=killed,
    files_compared=len(results(out / "a")),
    differences=diff,
  )
  (out / "study_resume.json").write_text(json.dumps(summary, indent=1))
  print(json.dumps(summary, indent=1))
  return 0 if not diff else 1


if __name__ == "__main__":
  sys.exit(main())
