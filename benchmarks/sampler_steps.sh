#!/usr/bin/env bash
# How many DDIM (eta 1) steps the quickstart model needs: the evaluation's figures per step count.
#
#   bash benchmarks/sampler_steps.sh runs/quickstart
#
# Needs a finished quickstart workdir (make quickstart). For guidance 1 (the samples) and
# 10 (the classifier's synthetic pool), and 10, 15, 25 and 50 steps, it samples the
# quickstart's 150 images (30 per class) from the same checkpoint into a scratch workdir
# and runs --mode=evaluate there (the quickstart classifier's features, the same test
# images, N = 50). Two more sampling seeds at 25 steps give the seed-to-seed spread: a
# step count within it is as good as 25. Sampling time is the sample stage's wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
QS=$(cd "${1:-runs/quickstart}" && pwd)
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-runs/sampler_steps}
export TF_CPP_MIN_LOG_LEVEL=2
rows=()
for setting in 1:10:0 1:15:0 1:25:0 1:50:0 1:25:1 1:25:2 10:10:0 10:15:0 10:25:0 10:50:0 10:25:1 10:25:2; do
  IFS=: read -r g s seed <<< "$setting"
  W="$OUT/g${g}_s${s}_seed${seed}"
  rm -rf "$W"; mkdir -p "$W/classifier/runs/real"
  ln -s "$QS/checkpoints" "$W/checkpoints"
  cp -r "$QS/classifier/runs/real/seed_0" "$W/classifier/runs/real/"
  flags=(--config=quickstart --workdir="$W" --config.data.data_dir="$QS/tfds"
    --config.sampling.guidance_scale="$g" --config.sampling.num_steps="$s"
    --config.sampling.seed="$seed" --config.logging.progress=False --config.sampling.write_fits=False)
  start=$SECONDS
  "$PY" -m solar_jax.main "${flags[@]}" --mode=sample 2> "$W.sample.log"
  seconds=$((SECONDS - start))
  "$PY" -m solar_jax.main "${flags[@]}" --mode=evaluate 2> "$W.evaluate.log"
  rows+=("$W $g $s $seed $seconds")
  echo "done $setting"
done
"$PY" - "${rows[@]}" <<'PY'
import json, sys
print("| guidance | steps | seed | N | FID | KID | precision | recall | coverage | intensity W1 (dex) | sample stage (s) |")
print("| --- " * 11 + "|")
for row in sys.argv[1:]:
  w, g, s, seed, secs = row.split()
  m = json.load(open(f"{w}/eval/metrics.json"))
  o = m["features"]["classifier"]["overall"]
  phys = m["summary"]["physics"]["intensity_wasserstein_dex"]
  print(f"| {g} | {s} | {seed} | {o['n']} | {o['fid']:.3f} | {o['kid']['mean']:.4f} | "
        f"{o['precision']:.2f} | {o['recall']:.2f} | {o['coverage']:.2f} | {phys:.4f} | {float(secs):.0f} |")
PY
