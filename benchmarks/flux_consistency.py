"""Flux consistency of a flux-conditioned generator (issue 28): requested against recovered.

  python -m solar_jax.main --config=quickstart --workdir=runs/flux --mode=train \
      --config.data.data_dir=runs/qs/tfds --config.model.conditioning=flux \
      --config.sampling.flux_draw=training
  python -m solar_jax.main --config=runs/flux/config.json --workdir=runs/flux --mode=sample
  python benchmarks/flux_consistency.py --workdir=runs/flux [--steps=2000]
  # a set drawn at another guidance (sampled first with --config.sampling.guidance_scale=10):
  python benchmarks/flux_consistency.py --workdir=runs/flux --guidance_scale=10

The figures ``--mode=evaluate`` writes under ``flux_consistency`` in eval/metrics.json
(``solar_jax/evaluation/flux_consistency.py``), alone and printed as JSON: a real-only
regressor (the classifier's backbone with a log-flux head, trained on the run's training
split, or reused from ``eval/flux_regressor/``) reads the flux of the newest sample set of
the run's sampler settings and of the real test frames (the floor); Spearman rho and the
MAE in decades with 95 % bootstrap intervals, and the sweep's brightest on-disk
intensity against the requested flux. ``--steps`` trains the regressor for other than
``classifier.num_steps`` steps (a regressor of other steps is trained anew).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solar_jax import configuration  # noqa: E402
from solar_jax import workdir as wd  # noqa: E402
from solar_jax.evaluation import flux_consistency  # noqa: E402


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--steps", type=int, default=0, help="regressor steps (0: classifier's)")
  parser.add_argument(
    "--guidance_scale", type=float, default=None, help="the sample set's guidance (default: run's)"
  )
  args = parser.parse_args()
  config = configuration.from_json(Path(args.workdir) / "config.json")
  if config.model.conditioning != "flux":
    sys.exit(f"error: {args.workdir} holds a {config.model.conditioning!r} model, not a flux one.")
  if args.steps:
    config.classifier.num_steps = args.steps
  if args.guidance_scale is not None:
    config.sampling.guidance_scale = args.guidance_scale
  samples_path = wd.latest_samples(args.workdir, config)
  entry, _ = flux_consistency.evaluate(
    config, args.workdir, samples_path.parent, wd.read_npz(samples_path), out_dir=None
  )
  print(json.dumps({**entry, "sample_set": str(samples_path.parent)}, indent=1))


if __name__ == "__main__":
  main()
