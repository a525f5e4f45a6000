#!/usr/bin/env bash
# Which sampler draws disks from a tiny model: pixel noise and disk shape per sampler.
#
#   bash benchmarks/tiny_sampler.sh runs/tfds_demo60
#
# Needs the demo dataset of configs/tiny.py's docstring (60 frames, sdo_aia171/64). Trains
# tiny for STEPS steps (learning rate 1e-3, 50 warm-up steps, EMA 0.99: the defaults' 4 steps
# learn nothing), then samples 2 images per class with each sampler from that checkpoint
# (solar_jax.generate, seed 1) and prints, on log10 DN/s, the mean |Laplacian| (pixel
# noise, as "Quality per model evaluation" measures it) and the mean correlation with the
# mean real test image (1: a limb-brightened disk where the data have one; 0: noise).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=$(cd "${1:-runs/tfds_demo60}" && pwd)
PY=${PYTHON:-.venv/bin/python}
W=${OUT:-runs/tiny_sampler}
export TF_CPP_MIN_LOG_LEVEL=2
"$PY" -m solar_jax.main --config=tiny --workdir="$W" --mode=train --config.data.data_dir="$DATA" \
  --config.training.num_steps="${STEPS:-480}" --config.training.checkpoint_every=200 \
  --config.training.log_every=50 --config.training.num_sample_images=0 \
  --config.logging.tensorboard=False --config.training.warmup_steps=50 \
  --config.training.learning_rate=1e-3 --config.training.ema_decay=0.99 2> "$W.train.log"
"$PY" - "$W" <<'PYTHON'
import sys
import numpy as np
from scipy import ndimage
import solar_jax
from solar_jax import configuration
from solar_jax.data import input_pipeline, scaling

workdir = sys.argv[1]
config = configuration.from_json(workdir + "/config.json")
real = input_pipeline.make_for_inference(config.data, "test", images=True)["image"][..., 0]
real = scaling.inverse(real, config.data.clip_min, config.data.clip_max)
mean_real = np.log10(np.maximum(real, 1)).mean(0)

def stats(images):
  logs = np.log10(np.maximum(images, 1))
  lap = np.mean([np.abs(ndimage.laplace(x)).mean() for x in logs])
  corr = np.mean([np.corrcoef(x.ravel(), mean_real.ravel())[0, 1] for x in logs])
  return f"{lap:.3f} | {corr:.3f}"

print("| images | mean abs Laplacian | corr. with mean real |\n| --- | --- | --- |")
print(f"| real test ({len(real)}) | {stats(real)} |")
for sampler, steps, eta in [("ddim", 5, 0.0), ("ddim", 5, 1.0), ("ddim", 25, 0.0),
                            ("ddim", 25, 1.0), ("ddpm", 100, 1.0)]:
  out = solar_jax.generate(workdir, n=2, sampler=sampler, num_steps=steps, eta=eta, seed=1)
  print(f"| {sampler} {steps} steps, eta {eta:g} | {stats(out.images)} |", flush=True)
PYTHON
