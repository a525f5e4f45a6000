"""Held-out denoising error of runs trained with and without min-SNR-gamma weighting.

  for w in none min_snr; do
    python -m solar_jax.main --config=quickstart --workdir=runs/snr_$w --mode=train \
      --config.data.data_dir=runs/qs/tfds --config.diffusion.loss_weighting=$w \
      --config.training.num_steps=300 --config.training.num_sample_images=0
  done
  JAX_PLATFORMS=cpu python benchmarks/bench_min_snr.py --workdirs=runs/snr_none,runs/snr_min_snr \
      --data_dir=runs/qs/tfds

The runs differ only in the loss weighting (same seed, batches and noise). For
each run's EMA (or, ``--params=raw``, raw) parameters, on the validation split, with the same timesteps
and noise for every run: the unweighted eps mean squared error (what 'none'
trains on; averaged over ``--keys`` draws of uniform t, as tests/test_train.py
does), the clipped x0 error (the ``x0_mse`` metric, comparable across
weightings), and the eps error at a few fixed timesteps.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solar_jax import checkpointing, parallel, xla_flags
from solar_jax.data import input_pipeline  # noqa: E402
from solar_jax.ddpm import train_state
from solar_jax.diffusion import losses, schedules  # noqa: E402
from solar_jax.models import unet  # noqa: E402

FIXED_T = (10, 100, 300, 500, 700, 900)


def main():
  xla_flags.configure_xla_cpu()  # Before JAX starts its CPU backend, as training does.
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdirs", required=True, help="comma-separated run directories")
  parser.add_argument("--data_dir", required=True)
  parser.add_argument("--split", default="validation")
  parser.add_argument("--keys", type=int, default=8)
  parser.add_argument("--params", choices=("ema", "raw"), default="ema")
  args = parser.parse_args()

  rows = []
  for workdir in args.workdirs.split(","):
    config = ml_collections.ConfigDict(json.loads((Path(workdir) / "config.json").read_text()))
    config.data.data_dir = args.data_dir
    config.data.classes = tuple(config.data.classes)
    weighting = config.diffusion.loss_weighting
    # Score every run on the same unweighted objective.
    config.diffusion.loss_weighting = "none"
    mesh = parallel.create_mesh(config.mesh)
    with jax.set_mesh(mesh):
      abstract_state, _ = train_state.abstract_train_state(config, mesh)
      checkpointer = checkpointing.Checkpointer(workdir, keep=1, read_only=True)
      state, meta = checkpointer.restore(abstract_state)
      checkpointer.close()
    params = checkpointing.host_copy(state.ema_params if args.params == "ema" else state.params)
    step = int(meta["step"])
    model = unet.create_model(config)
    schedule = schedules.get_schedule(config.diffusion)
    arrays = input_pipeline.make_for_inference(config.data, args.split)
    frames = {"image": jnp.asarray(arrays["image"]), "label": jnp.asarray(arrays["label"])}

    def apply_fn(p, x, t, y, train, rngs, model=model):
      return model.apply({"params": p}, x, t, y, train=False)

    @jax.jit
    def frame_loss(p, key, config=config, schedule=schedule, frames=frames, apply_fn=apply_fn):
      return losses.diffusion_loss(apply_fn, p, frames, key, schedule, config, train=False)

    out = [frame_loss(params, jax.random.key(k)) for k in range(args.keys)]
    eps_mse = float(np.mean([float(o[0]) for o in out]))
    x0_mse = float(np.mean([float(o[1]["x0_mse"]) for o in out]))
    noise = jax.random.normal(jax.random.key(99), frames["image"].shape)
    per_t = []
    for t in FIXED_T:
      tb = jnp.full((noise.shape[0],), t, jnp.int32)
      x_t = schedules.q_sample(schedule, frames["image"], tb, noise)
      pred = apply_fn(params, x_t, tb, frames["label"], False, None)
      sa = schedule.sqrt_alphas_cumprod[t]
      s1a = schedule.sqrt_one_minus_alphas_cumprod[t]
      eps, _ = losses.output_to_eps_x0(pred, x_t, sa, s1a, config.diffusion.prediction)
      per_t.append(float(jnp.mean((eps - noise) ** 2)))
    rows.append((workdir, weighting, step, len(arrays["label"]), eps_mse, x0_mse, per_t))

  print(
    f"JAX {jax.__version__}, {jax.devices()[0].platform}; split {args.split}, "
    f"{args.params} parameters"
  )
  head = " | ".join(f"eps MSE t={t}" for t in FIXED_T)
  print(f"| run | weighting | step | N | eps MSE (uniform t) | x0 MSE (clipped) | {head} |")
  print("| --- " * (6 + len(FIXED_T)) + "|")
  for workdir, weighting, step, n, eps_mse, x0_mse, per_t in rows:
    cells = " | ".join(f"{v:.4f}" for v in per_t)
    print(f"| {workdir} | {weighting} | {step} | {n} | {eps_mse:.4f} | {x0_mse:.4f} | {cells} |")


if __name__ == "__main__":
  main()
