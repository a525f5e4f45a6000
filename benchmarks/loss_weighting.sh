#!/usr/bin/env bash
# eps vs v prediction, with and without min-SNR-gamma weighting, at equal training steps.
#
#   bash benchmarks/loss_weighting.sh runs/quickstart
#
# Needs a finished quickstart workdir (make quickstart): its built demo dataset, its
# classifier (the evaluation's feature extractor, shared by every variant so the
# distribution metrics use one feature space) and its own run, which is the eps/none
# variant. Every other variant trains the quickstart config for the same 1000 steps
# (same seed, batches and noise), samples the same 150 images (DDIM eta 1, 25 steps,
# guidance 1) and is evaluated against the same test images (N = 100). Then
# bench_min_snr.py scores every run's EMA parameters on the validation split with the
# same timesteps and noise. Wall time per variant is printed (train stage only).
set -euo pipefail
cd "$(dirname "$0")/.."
QS=${1:-runs/quickstart}
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-runs/loss_weighting}
export TF_CPP_MIN_LOG_LEVEL=2
run() {
  "$PY" -m solar_jax.main --config=quickstart --workdir="$1" --mode="$2" \
    --config.data.data_dir="$QS/tfds" --config.diffusion.prediction="$3" \
    --config.diffusion.loss_weighting="$4" --config.logging.progress=False 2> "$1.$2.log"
}
workdirs="$QS"
for variant in eps:min_snr v:none v:min_snr; do
  pred=${variant%%:*}; weighting=${variant##*:}
  W="$OUT/${pred}_${weighting}"
  mkdir -p "$W/classifier/runs/real"
  cp -r "$QS/classifier/runs/real/seed_0" "$W/classifier/runs/real/" 2>/dev/null || true
  start=$(date +%s)
  run "$W" train "$pred" "$weighting"
  echo "$variant: trained 1000 steps in $(( $(date +%s) - start )) s"
  run "$W" sample "$pred" "$weighting"
  run "$W" evaluate "$pred" "$weighting"
  workdirs="$workdirs,$W"
done
"$PY" benchmarks/bench_min_snr.py --workdirs="$workdirs" --data_dir="$QS/tfds"
"$PY" - "$workdirs" <<'PY'
import json, sys
print("| run | prediction | weighting | N | FID | KID | precision | recall | coverage |")
print("| --- " * 9 + "|")
for w in sys.argv[1].split(","):
  config = json.load(open(f"{w}/config.json"))
  m = json.load(open(f"{w}/eval/metrics.json"))
  o = m["features"]["classifier"]["overall"]
  kid = o["kid"]
  print(f"| {w} | {config['diffusion']['prediction']} | {config['diffusion']['loss_weighting']} "
        f"| {o['n']} | {o['fid']:.3f} | {kid['mean']:.4f} ± {kid['std']:.4f} | "
        f"{o['precision']:.2f} | {o['recall']:.2f} | {o['coverage']:.2f} |")
PY
