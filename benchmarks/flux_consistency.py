"""Flux consistency of a flux-conditioned generator (issue 28): requested against recovered.

  python -m solar_jax.main --config=quickstart --workdir=runs/flux --mode=train \
      --config.data.data_dir=runs/qs/tfds --config.model.conditioning=flux
  python -m solar_jax.main --config=runs/flux/config.json --workdir=runs/flux --mode=sample \
      --config.sampling.flux_draw=training
  python benchmarks/flux_consistency.py --workdir=runs/flux [--steps=2000]

A real-only regressor (``solar_jax/classifier/flux_regressor.py``: the classifier's
backbone with a log-flux head) trains on the run's training split (images and their
label fluxes), then reads the flux of (a) the newest sample set of the run's sampler
settings (``samples.npz``: images and the fluxes asked for) and (b) the real test
frames (the floor). Printed as JSON: Spearman rho and the MAE in decades between
requested (or true) and recovered flux with 95 % bootstrap intervals, and, along the
flux sweep (``sweep/sweep.npz``) when there is one, Spearman rho of the brightest
pixel (DN/s) against the requested flux.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solar_jax import configuration  # noqa: E402
from solar_jax import workdir as wd  # noqa: E402
from solar_jax.classifier import flux_regressor  # noqa: E402
from solar_jax.data import input_pipeline, scaling  # noqa: E402
from solar_jax.metrics import consistency  # noqa: E402


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--steps", type=int, default=0, help="regressor steps (0: classifier's)")
  parser.add_argument("--bootstrap", type=int, default=1000)
  args = parser.parse_args()
  config = configuration.from_json(Path(args.workdir) / "config.json")
  if config.model.conditioning != "flux":
    sys.exit(f"error: {args.workdir} holds a {config.model.conditioning!r} model, not a flux one.")
  train = input_pipeline.make_for_inference(config.data, "train")
  params, losses = flux_regressor.train(
    config, train["image"], train["label_flux"], num_steps=args.steps or None
  )
  test = input_pipeline.make_for_inference(config.data, "test")
  samples_path = wd.latest_samples(args.workdir, config)
  samples = np.load(samples_path)
  images = scaling.forward(samples["images"], config.data.clip_min, config.data.clip_max)
  result = {
    "regressor": {"steps": len(losses), "final_loss": float(np.mean(losses[-20:]))},
    "samples": flux_regressor.recovered_consistency(
      config, params, images, samples["fluxes"], num_samples=args.bootstrap
    ),
    "real_test_floor": flux_regressor.recovered_consistency(
      config, params, test["image"], test["label_flux"], num_samples=args.bootstrap
    ),
    "sample_set": str(samples_path.parent),
  }
  sweep = samples_path.parent / "sweep" / "sweep.npz"
  if sweep.exists():
    data = np.load(sweep)
    brightest = data["images"].reshape(len(data["fluxes"]), -1).max(1)
    rho = consistency._spearman_rows(np.log10(data["fluxes"])[None], brightest[None])[0]  # noqa: SLF001
    result["sweep_brightest_pixel_rho"] = float(rho) if np.isfinite(rho) else None  # Flat: None.
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  main()
