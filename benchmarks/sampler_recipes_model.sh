#!/usr/bin/env bash
# Each sampler's timestep recipe on a trained model: the evaluation's figures per recipe.
#
#   bash benchmarks/sampler_recipes_model.sh runs/quickstart
#   CANDIDATES="ddim:0:50:uniform:jump:0 dpmpp_2m:0:15:default:default:0" \
#     bash benchmarks/sampler_recipes_model.sh runs/quickstart
#
# Needs a finished quickstart workdir (make quickstart: checkpoints, tfds and the real-only
# classifier, whose features the evaluation uses). For each candidate
# sampler:eta:steps:spacing:final_step:seed it samples the quickstart's 150 images (30 per
# class, guidance $GUIDANCE, default 1) from the same checkpoint into a scratch workdir with
# --mode=sample and the sampling.* overrides, runs --mode=evaluate there (the same test
# images, N = 50) and prints one table. The three DDIM eta 0, 50-step uniform 'jump' rows
# (seeds 0, 1, 2: the research configs' sampler today) are the seed spread: a recipe inside
# their range is as good as DDIM-50. The spacing and final step each row was drawn with are
# read back from samples.npz (as resolved from 'default'). Sampling time is the sample
# stage's wall time (about 15 s of it start-up).
set -euo pipefail
cd "$(dirname "$0")/.."
QS=$(cd "${1:-runs/quickstart}" && pwd)
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-runs/sampler_recipes}
GUIDANCE=${GUIDANCE:-1}
# The analytic table's candidates (benchmarks/RESULTS.md, "Each sampler's timestep recipe":
# DPM-Solver++(2M) on its recipe, quadratic + jump, at 11-15 steps, 12 with three seeds; its
# log-SNR grid; DDIM's recipe at 50), then the quickstart's own sampler (DDIM eta 1, 25
# uniform steps) and the same on DDIM's recipe.
CANDIDATES=${CANDIDATES:-"ddim:0:50:uniform:jump:0 ddim:0:50:uniform:jump:1 ddim:0:50:uniform:jump:2
  dpmpp_2m:0:11:default:default:0 dpmpp_2m:0:12:default:default:0 dpmpp_2m:0:12:default:default:1
  dpmpp_2m:0:12:default:default:2 dpmpp_2m:0:15:default:default:0 dpmpp_2m:0:15:logsnr:jump:0
  ddim:0:50:default:default:0 ddim:1:25:uniform:jump:0 ddim:1:25:default:default:0"}
export TF_CPP_MIN_LOG_LEVEL=2
rows=()
for setting in $CANDIDATES; do
  IFS=: read -r sampler eta steps spacing final seed <<< "$setting"
  W="$OUT/g${GUIDANCE}_${sampler}_eta${eta}_${steps}_${spacing}_${final}_seed${seed}"
  rm -rf "$W"; mkdir -p "$W/classifier/runs/real"
  ln -s "$QS/checkpoints" "$W/checkpoints"
  cp -r "$QS/classifier/runs/real/seed_0" "$W/classifier/runs/real/"
  flags=(--config=quickstart --workdir="$W" --config.data.data_dir="$QS/tfds"
    --config.sampling.sampler="$sampler" --config.sampling.eta="$eta"
    --config.sampling.num_steps="$steps" --config.sampling.spacing="$spacing"
    --config.sampling.final_step="$final" --config.sampling.seed="$seed"
    --config.sampling.guidance_scale="$GUIDANCE" --config.logging.progress=False
    --config.sampling.write_fits=False)
  start=$SECONDS
  "$PY" -m solar_jax.main "${flags[@]}" --mode=sample 2> "$W.sample.log"
  seconds=$((SECONDS - start))
  "$PY" -m solar_jax.main "${flags[@]}" --mode=evaluate 2> "$W.evaluate.log"
  rows+=("$W $seconds")
  echo "done $setting"
done
"$PY" - "${rows[@]}" <<'PY'
import glob, json, sys
import numpy as np
print("| sampler | eta | steps (NFE) | spacing | final step | seed | N | FID | KID | precision "
      "| recall | coverage | intensity W1 (dex) | sample stage (s) |")
print("| --- " * 14 + "|")
for row in sys.argv[1:]:
  w, secs = row.split()
  (npz,) = glob.glob(f"{w}/samples/*/samples.npz")
  with np.load(npz) as s:
    info = {k: s[k].item() for k in ("sampler", "eta", "num_steps", "spacing", "final_step", "seed")}
  m = json.load(open(f"{w}/eval/metrics.json"))
  o = m["features"]["classifier"]["overall"]
  phys = m["summary"]["physics"]["intensity_wasserstein_dex"]
  print(f"| {info['sampler']} | {info['eta']:g} | {info['num_steps']} | {info['spacing']} "
        f"| {info['final_step']} | {info['seed']} | {o['n']} | {o['fid']:.3f} "
        f"| {o['kid']['mean']:.4f} | {o['precision']:.2f} | {o['recall']:.2f} "
        f"| {o['coverage']:.2f} | {phys:.4f} | {float(secs):.0f} |")
PY
