#!/usr/bin/env bash
# Rebuilds the model shipped with the package, solar_jax/pretrained/demo
# (solar_jax.DiffusionPipeline.from_pretrained("demo")): the tiny config trained on the
# SIMULATED demo archive of configs/tiny.py's docstring, exported, with a section added to
# its MODEL_CARD.md that says how it was made and how its samples score.
#
#   bash scripts/demo_model.sh   # about 50 min on 2 CPU cores shared with other jobs (RESULTS.md)
#
# The steps (each reused when its output exists):
#   python -m solar_jax.data.demo --out runs/demo60 --num_frames 60
#   python -m tensorflow_datasets.scripts.cli.main build tfds_builders/sdo_aia171 --config=64 \
#       --manual_dir=runs/demo60 --data_dir=runs/tfds_demo60 --noforce_checksums_validation
#   python -m solar_jax.main --config=tiny --workdir=runs/demo_model --mode=train \
#       --config.data.data_dir=runs/tfds_demo60 --config.training.num_steps=1500 \
#       --config.training.checkpoint_every=500 --config.training.log_every=100 \
#       --config.training.num_sample_images=0 --config.logging.tensorboard=False \
#       --config.training.warmup_steps=50 --config.training.learning_rate=1e-3 \
#       --config.training.ema_decay=0.99
#   python -m solar_jax.main --config=runs/demo_model/config.json --workdir=runs/demo_model \
#       --mode=export
# then the export is copied to solar_jax/pretrained/demo and its card completed.
# The learning rate, warm-up and EMA are benchmarks/tiny_sampler.sh's (tiny's own 4 steps
# learn nothing). Training on another machine gives other weights (floating-point order),
# not a better or worse model.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
W=runs/demo_model
STEPS=1500
export TF_CPP_MIN_LOG_LEVEL=2
if [ ! -f runs/demo60/demo_manifest.json ]; then
  "$PY" -m solar_jax.data.demo --out runs/demo60 --num_frames 60
fi
if [ ! -d runs/tfds_demo60/sdo_aia171 ]; then
  "$PY" -m tensorflow_datasets.scripts.cli.main build tfds_builders/sdo_aia171 --config=64 \
    --manual_dir=runs/demo60 --data_dir=runs/tfds_demo60 --noforce_checksums_validation
fi
"$PY" -m solar_jax.main --config=tiny --workdir="$W" --mode=train \
  --config.data.data_dir=runs/tfds_demo60 --config.training.num_steps="$STEPS" \
  --config.training.checkpoint_every=500 --config.training.log_every=100 \
  --config.training.num_sample_images=0 --config.logging.tensorboard=False \
  --config.training.warmup_steps=50 --config.training.learning_rate=1e-3 \
  --config.training.ema_decay=0.99
"$PY" -m solar_jax.main --config="$W/config.json" --workdir="$W" --mode=export
"$PY" -m scripts.demo_model_card "$W/export/$STEPS" solar_jax/pretrained/demo
