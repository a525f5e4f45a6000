"""Cost of the whole study (``--mode=study``) at research scale, before starting it.

  PYTHONPATH=. python benchmarks/study_cost.py --out=runs/study_cost.json

For configs/aia171_{64,128,256}.py (each with configs/default.py's experiment) it
prints, per config and in total, with every assumption on its own line:

* DDPM training: one per training partition (``pipeline.study_plan`` of the
  dataset's folds), train GFLOPs/image from the memory-plan table of
  benchmarks/RESULTS.md (the single source, as tests/test_benchmarks.py reads it)
  x global batch x ``training.num_steps``; device-hours on an H100 SXM (bf16 dense
  peak 989 TFLOP/s) and a TPU v5e (197 TFLOP/s bf16) at ``--mfu``; the fewest
  80 GiB devices that hold the global batch (the table's plain batch/device);
* sampling: model evaluations per image (the sampler recipe's steps, x2 where
  classifier-free guidance is on: ``samplers.SamplerSpec.from_config``), a forward
  pass taken as 1/3 of a train step's FLOPs, for every fold's evaluation set
  (``sampling.per_class``) and synthetic pools (``classifier.guidance_grid`` points on
  pool 0, then the chosen guidances' other pools; sizes from
  ``training_sets.synthetic_pool_counts`` of ``--train_frames_per_class``);
* classifier runs: those ``classifier.experiment`` trains per fold (``run_counts``),
  x folds x ``classifier.num_steps`` x the train step's FLOPs (XLA's cost analysis of
  the lowered classifier step at the config's image size, on CPU);
* storage: the dataset's frames (float32 images), DDPM checkpoints (params, EMA and
  AdamW's two moments, float32, x ``training.keep_checkpoints``) and exports, samples
  (npz float32, plus a FITS file per evaluation image).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solar_jax import pipeline  # noqa: E402
from solar_jax.classifier import training_sets  # noqa: E402
from solar_jax.diffusion import samplers  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("aia171_64", "aia171_128", "aia171_256")
PEAKS = {"H100 SXM": 989e12, "TPU v5e": 197e12}  # bf16 dense, vendors' datasheets.
# The classifier computes in float32: on an H100 XLA's default precision runs its convs in
# TF32 (495 TFLOP/s dense), on a TPU in bf16 passes.
CLASSIFIER_PEAKS = {"H100 SXM": 495e12, "TPU v5e": 197e12}
FORWARD_SHARE = 1 / 3  # A forward pass ~ 1/3 of forward + backward (+ AdamW, negligible).
NUM_FOLDS = 10  # tfds_builders/sdo_aia171: SdoAia171Config.num_folds.
# An hourly frame grid over the cycle-24 list's span, 2010-01-02..2018-07-07 (RESULTS.md,
# 'What an embargo and forward folds cost').
FRAMES = 74_592
# Assumed training-split frames per GOES class A, B, C, M, X (about 46k: 8 of 10 month
# blocks less 23 % embargoed; shares 10/40/44/5.5/0.5 %). Not measured: take the train
# counts of your dataset's build report.
TRAIN_FRAMES_PER_CLASS = (4600, 18400, 20200, 2530, 230)
FACTS_BYTES = 1024  # Per stored frame besides the image: facts, keys, TFRecord framing.
FITS_HEADER_BYTES = 4 * 2880  # The sample FITS header (cards, comments, HISTORY): 4 blocks.
STATE_COPIES = 4  # A DDPM checkpoint holds params, EMA params and AdamW's mu and nu.


def results_row(name: str, results=ROOT / "benchmarks" / "RESULTS.md") -> dict:
  """The memory-plan table's row of ``name``: params, train FLOPs/image, batch/device in 80 GiB."""
  rows = [line for line in Path(results).read_text().splitlines() if line.startswith(f"| {name} |")]
  if len(rows) != 1:
    raise ValueError(f"{results}: {len(rows)} rows for {name} in the memory plan table, not 1")
  cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
  if "pending" in cells[6]:
    raise ValueError(f"{results}: the memory plan of {name} is pending: {cells[6]!r}")
  return {
    "params": float(re.fullmatch(r"([\d.]+)M", cells[1])[1]) * 1e6,
    "train_flops_per_image": float(cells[2]) * 1e9,
    "batch_per_device_16gib": int(cells[5].split(",")[0]),
    "batch_per_device_80gib": int(cells[6].split(",")[0]),
  }


def ddpm_trainings(num_folds: int) -> int:
  """DDPMs ``--mode=study`` trains: the leader folds of ``pipeline.study_plan``."""
  return sum(leader is None for _, leader in pipeline.study_plan(num_folds))


def run_counts(config) -> dict[str, int]:
  """Classifier runs ``classifier.experiment`` trains per fold, by regime
  (``training_sets.planned_runs``; tests/test_classifier.py checks it against a run)."""
  return training_sets.planned_runs(config)


def pools_drawn(config) -> int:
  """Synthetic pools one fold draws, at most: every guidance grid point's pool 0, then the
  other ``num_pools - 1`` pools of each synthetic regime's chosen guidance (assumed distinct)."""
  c = config.classifier
  synthetic = [r for r in c.regimes if r in training_sets.SYNTHETIC_REGIMES]
  if not synthetic:
    return 0
  guidances = training_sets.pool_guidances(config)
  return len(guidances) + (c.num_pools - 1) * min(len(synthetic), len(guidances))


def pool_images(config, train_per_class) -> int:
  c = config.classifier
  wanted = [r for r in c.regimes if r in training_sets.SYNTHETIC_REGIMES]
  ratio = max(training_sets.pool_ratios(config))
  return int(training_sets.synthetic_pool_counts(train_per_class, wanted, ratio).sum())


def evaluations_per_image(config, guidance: float | None = None) -> int:
  """Model forward passes per sampled image (x2 where guidance is on: one 2B forward)."""
  if guidance is not None:
    config = training_sets.pool_config(config, guidance)
  spec = samplers.SamplerSpec.from_config(config)
  return int(samplers.recorded_settings(config)["num_steps"]) * (2 if spec.guided else 1)


def classifier_step_flops(config) -> float:
  """FLOPs of one classifier train step (XLA cost analysis of the lowered step, CPU)."""
  import jax
  import numpy as np

  from solar_jax import parallel
  from solar_jax.classifier import trainer

  mesh = parallel.create_mesh(config.mesh, devices=jax.devices()[:1])
  programs = trainer.make_programs(config, mesh)
  c, size, channels = config.classifier, config.data.image_size, config.data.channels
  state = trainer.init_state(programs, config, 0)
  batch = {
    "image": np.zeros((c.batch_size, size, size, channels), np.float32),
    "label": np.zeros(c.batch_size, np.int32),
    "weight": np.ones(c.batch_size, np.float32),
    "gamma": np.zeros(c.batch_size, np.float32),
  }
  analysis = programs.step.lower(state, trainer._global(mesh, batch)).cost_analysis()
  if isinstance(analysis, list | tuple):
    analysis = analysis[0]
  return float(analysis["flops"])


def hours(flops: float, peaks: dict, mfu: float) -> dict[str, float]:
  return {device: flops / (peak * mfu) / 3600 for device, peak in peaks.items()}


def study_cost(name: str, args, classifier_flops: float | None = None) -> dict:
  """The cost figures of config ``name`` (module of solar_jax.configs) under ``args``."""
  config = importlib.import_module(f"solar_jax.configs.{name}").get_config()
  row = results_row(name, args.results)
  t, s, c = config.training, config.sampling, config.classifier
  size, folds = config.data.image_size, args.num_folds
  trainings = ddpm_trainings(folds)
  train_flops = trainings * row["train_flops_per_image"] * t.batch_size * t.num_steps
  forward = FORWARD_SHARE * row["train_flops_per_image"]
  eval_images = sum(s.per_class)
  grid_images = (t.num_steps // t.sample_every if t.sample_every else 1) * t.num_sample_images
  pool_size = pool_images(config, args.train_frames_per_class)
  guidances = training_sets.pool_guidances(config)
  # Pool 0 at every guidance point, the other pools at the most expensive guidances chosen.
  per_guidance = sorted((evaluations_per_image(config, g) for g in guidances), reverse=True)
  extra = (pools_drawn(config) - len(guidances)) if guidances else 0
  pool_evals = pool_size * (sum(per_guidance) + sum(per_guidance[:1]) * extra)
  sample_evals = folds * (eval_images * evaluations_per_image(config) + pool_evals)
  sample_evals += trainings * grid_images * evaluations_per_image(config)
  sample_flops = sample_evals * forward
  runs = run_counts(config)
  if classifier_flops is None:
    classifier_flops = classifier_step_flops(config)
  clf_flops = folds * sum(runs.values()) * c.num_steps * classifier_flops
  image_bytes = size * size * config.data.channels * 4
  fits_bytes = FITS_HEADER_BYTES + math.ceil(image_bytes / 2880) * 2880
  sample_images = folds * (eval_images + pools_drawn(config) * pool_size)
  storage = {
    "dataset": args.frames * (image_bytes + FACTS_BYTES),
    "checkpoints": trainings * row["params"] * 4 * (STATE_COPIES * t.keep_checkpoints + 1),
    "samples": sample_images * image_bytes + folds * eval_images * fits_bytes * bool(s.write_fits),
  }
  return {
    "config": name,
    "ddpm_trainings": trainings,
    "train_flops": train_flops,
    "train_hours": hours(train_flops, PEAKS, args.mfu),
    "min_devices": {
      f"{gib} GiB": math.ceil(t.batch_size / max(row[f"batch_per_device_{gib}gib"], 1e-9))
      for gib in (80, 16)
    },
    "sampled_images": sample_images + trainings * grid_images,
    "pool_images": pool_size,
    "sample_flops": sample_flops,
    "sample_hours": hours(sample_flops, PEAKS, args.mfu),
    "classifier_runs_per_fold": runs,
    "classifier_step_flops": classifier_flops,
    "classifier_flops": clf_flops,
    "classifier_hours": hours(clf_flops, CLASSIFIER_PEAKS, args.classifier_mfu),
    "storage_bytes": storage,
    "total_hours": {
      d: hours(train_flops + sample_flops, PEAKS, args.mfu)[d]
      + hours(clf_flops, CLASSIFIER_PEAKS, args.classifier_mfu)[d]
      for d in PEAKS
    },
  }


def assumptions(args) -> list[str]:
  return [
    f"MFU {args.mfu} of the bf16 dense peak: H100 SXM 989 TFLOP/s, TPU v5e 197 TFLOP/s "
    f"(classifier, float32, stacked runs: MFU {args.classifier_mfu}, H100 at TF32 495 TFLOP/s)",
    f"{args.num_folds} folds (the builder's num_folds); one DDPM per training partition "
    "(pipeline.study_plan)",
    "train FLOPs/image and batch/device in 80 and 16 GiB (plain): RESULTS.md memory plan "
    "(XLA:CPU estimate)",
    "classifier FLOPs/step: XLA cost analysis of the lowered step (the compiled step's "
    "figure is ~1 % higher: 38.2 against 37.7 GFLOP at 64^2)",
    "a forward pass = 1/3 of a train step's FLOPs per image; guided sampling = 2 forwards",
    "pools: every guidance grid point's pool 0, then num_pools - 1 more at each synthetic "
    "regime's chosen guidance (assumed distinct: an upper bound), no FITS",
    f"training split per class A..X {list(args.train_frames_per_class)} (assumed, not "
    "measured: use your build report's train counts)",
    f"dataset: {args.frames} frames (hourly over 2010-01..2018-07), float32 images + "
    f"{FACTS_BYTES} B of facts each, one resolution",
    "checkpoints: float32 params + EMA + AdamW mu, nu, x keep_checkpoints, + one export "
    "(params) per DDPM",
    "samples: npz float32 per image; evaluation sets also one FITS (4 header blocks)",
    "not counted: evaluation features (Inception, k-means), bootstrap, classifier "
    "parameters and predictions, compilation, input pipelines",
  ]


def table(rows) -> str:
  head = (
    "| config | DDPMs | train EFLOP | train h H100 / v5e | min devices 80 / 16 GiB | images "
    "sampled | sampling h H100 / v5e | classifier runs | GFLOP/step | classifier h H100 / v5e "
    "| device-hours H100 / v5e | dataset, checkpoints, samples (GB) |"
  )
  lines = [head, "| --- " * 12 + "|"]

  def h(d):
    digits = 1 if max(d.values()) < 10 else 0
    return f"{d['H100 SXM']:,.{digits}f} / {d['TPU v5e']:,.{digits}f}"

  for r in rows:
    runs = sum(r["classifier_runs_per_fold"].values())
    gb = ", ".join(f"{v / 1e9:,.0f}" for v in r["storage_bytes"].values())
    lines.append(
      f"| `{r['config']}` | {r['ddpm_trainings']} | {r['train_flops'] / 1e18:,.0f} | "
      f"{h(r['train_hours'])} | {' / '.join(map(str, r['min_devices'].values()))} | "
      f"{r['sampled_images']:,} | {h(r['sample_hours'])} | {runs} x {r['folds']} | "
      f"{r['classifier_step_flops'] / 1e9:.1f} | {h(r['classifier_hours'])} | "
      f"{h(r['total_hours'])} | {gb} |"
    )
  keys = ("train_hours", "sample_hours", "classifier_hours", "total_hours")
  total = {k: {d: sum(r[k][d] for r in rows) for d in PEAKS} for k in keys}
  tb = sum(sum(r["storage_bytes"].values()) for r in rows) / 1e12
  lines.append(
    f"| all configs | {sum(r['ddpm_trainings'] for r in rows)} | "
    f"{sum(r['train_flops'] for r in rows) / 1e18:,.0f} | {h(total['train_hours'])} | | "
    f"{sum(r['sampled_images'] for r in rows):,} | {h(total['sample_hours'])} | | | "
    f"{h(total['classifier_hours'])} | {h(total['total_hours'])} | {tb:.2f} TB |"
  )
  return "\n".join(lines)


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--configs", default=",".join(CONFIGS))
  parser.add_argument("--mfu", type=float, default=0.35, help="model FLOPs utilisation")
  parser.add_argument(
    "--classifier_mfu",
    type=float,
    default=0.1,
    help="of the classifier runs, stacked (alone a small classifier leaves a device idle)",
  )
  parser.add_argument("--num_folds", type=int, default=NUM_FOLDS)
  parser.add_argument("--frames", type=int, default=FRAMES, help="frames in the dataset")
  parser.add_argument(
    "--train_frames_per_class",
    type=lambda text: tuple(int(v) for v in text.split(",")),
    default=TRAIN_FRAMES_PER_CLASS,
    help="training-split frames per GOES class A,B,C,M,X",
  )
  parser.add_argument(
    "--classifier_gflop",
    type=float,
    default=None,
    help="classifier train-step GFLOP (default: XLA cost analysis per config)",
  )
  parser.add_argument("--results", default=str(ROOT / "benchmarks" / "RESULTS.md"))
  parser.add_argument("--out", default=None)
  args = parser.parse_args(argv)
  for flag in ("mfu", "classifier_mfu"):
    if not 0 < getattr(args, flag) <= 1:
      parser.error(f"--{flag}={getattr(args, flag)} must be in (0, 1]")
  if args.num_folds < 3:
    parser.error(f"--num_folds={args.num_folds}: --mode=study needs at least 3 folds")
  return args


def main(argv=None) -> list[dict]:
  args = parse_args(argv)
  gflop = None if args.classifier_gflop is None else args.classifier_gflop * 1e9
  rows = [dict(study_cost(n, args, gflop), folds=args.num_folds) for n in args.configs.split(",")]
  print(table(rows))
  for line in assumptions(args):
    print(f"- {line}")
  if args.out:
    Path(args.out).write_text(
      json.dumps({"assumptions": assumptions(args), "configs": rows}, indent=2) + "\n"
    )
  return rows


if __name__ == "__main__":
  main()
