#!/usr/bin/env bash
# make quickstart: demo archive -> tfds build -> train -> sample -> classify -> evaluate -> report.
#
#   bash scripts/quickstart.sh [WORKDIR]     (default runs/quickstart)
#
# Everything lands under WORKDIR: manual/ (the SIMULATED demo archive), tfds/
# (the built dataset), and the run itself (workdir contract of the README).
# Each step is skipped when its output already exists, so a second call
# resumes where the first stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
QS_DIR=${1:-runs/quickstart}
PY=${PYTHON:-.venv/bin/python}
NUM_FRAMES=${QS_NUM_FRAMES:-600}
START=$(date +%s)
export TF_CPP_MIN_LOG_LEVEL=2

step() { echo; echo "=== [quickstart] $* ==="; }

mkdir -p "$QS_DIR"
MANUAL="$QS_DIR/manual"
DATA="$QS_DIR/tfds"

step "1/3 demo archive (SIMULATED from sunpy's real AIA 171 frame) -> $MANUAL"
if [ -f "$MANUAL/demo_manifest.json" ]; then
  echo "exists, reused"
else
  rm -rf "$MANUAL"
  "$PY" -m solar_jax.data.demo --out "$MANUAL.partial" --num_frames "$NUM_FRAMES" --with_bad
  mv "$MANUAL.partial" "$MANUAL"
fi

step "2/3 tfds build sdo_aia171/64 -> $DATA"
if ls "$DATA"/sdo_aia171/64/*/dataset_info.json > /dev/null 2>&1; then
  echo "exists, reused"
else
  "$PY" -m tensorflow_datasets.scripts.cli.main build tfds_builders/sdo_aia171 \
    --config=64 --manual_dir="$MANUAL" --data_dir="$DATA" --noforce_checksums_validation
fi

step "3/3 train -> sample -> classify -> evaluate -> report (solar_jax/configs/quickstart.py)"
"$PY" -m solar_jax.main --config=quickstart --workdir="$QS_DIR" --mode=all \
  --config.data.data_dir="$DATA"

ELAPSED=$(( $(date +%s) - START ))
echo
echo "[quickstart] done in $((ELAPSED / 60)) min $((ELAPSED % 60)) s. What to open next:"
echo "  $QS_DIR/report.md                 every figure of the run, with N and uncertainty"
echo "  tensorboard --logdir $QS_DIR       loss curves, sample grids, evaluation scalars"
echo "  examples/quickstart.ipynb          sample a GOES class in Python, plot it with the limb"
echo "  $QS_DIR/samples/*/fits/            FITS files (sunpy.map.Map; titled SYNTHETIC)"
