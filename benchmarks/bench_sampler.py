"""Sampler cost: DDIM-50 vs DDPM-1000 per image, and sampler overhead over bare UNet calls.

  JAX_PLATFORMS=cpu python benchmarks/bench_sampler.py            # tiny UNet, CPU
  python benchmarks/bench_sampler.py --config=quickstart --batch=40  # on an accelerator
  JAX_PLATFORMS=cpu python benchmarks/bench_sampler.py --config=quickstart --batch=40 \
      --no-ddpm --repeats=7                                         # overhead only, CPU

Measured side by side in one process, interleaved (A, B, A, B, ...), median of
``--repeats`` runs after one compile run each:

1. seconds per image for DDIM with 50 steps and for ancestral DDPM over all
   T = 1000 steps, and their ratio (ideally 20: both cost one UNet forward per
   step);
2. the sampler's overhead: DDIM with S steps against S bare UNet forwards in a
   ``lax.scan`` of the same batch (no schedule maths, no noise, no x0
   clipping). The target is < 5 %.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solar_jax import xla_flags  # noqa: E402
from solar_jax.diffusion import samplers, schedules  # noqa: E402
from solar_jax.models import unet  # noqa: E402


def _random_params(model, size, seed=0):
  x = jax.ShapeDtypeStruct((1, size, size, 1), jnp.float32)
  t = jax.ShapeDtypeStruct((1,), jnp.int32)
  shapes = jax.eval_shape(model.init, jax.random.key(0), x, t, t)["params"]
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda a: jnp.asarray(0.02 * rng.normal(size=a.shape), jnp.float32), shapes)


def _timed(fn):
  start = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - start


def main():
  xla_flags.configure_xla_cpu()  # Before JAX starts its CPU backend, as training does.
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="tiny", help="configs/<name>.py")
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--overhead_steps", type=int, default=50)
  parser.add_argument(
    "--ddpm",
    action=argparse.BooleanOptionalAction,
    default=True,
    help="also time ancestral DDPM over all 1000 steps (--no-ddpm: the overhead figure only)",
  )
  args = parser.parse_args()

  config = importlib.import_module(f"solar_jax.configs.{args.config}").get_config()
  config.diffusion.num_timesteps = 1000
  size, b = config.data.image_size, args.batch
  model = unet.create_model(config)
  model_fn = samplers.LinenModelFn(model)
  params = _random_params(model, size)
  schedule = schedules.get_schedule(config.diffusion)
  key = jax.random.key(0)
  labels = jnp.arange(b, dtype=jnp.int32) % len(config.data.classes)
  indices = jnp.arange(b, dtype=jnp.int32)
  common = dict(num_classes=len(config.data.classes), image_shape=(size, size, 1))

  def sampler(spec):
    return lambda: samplers.sample_batch(
      model_fn, params, schedule, key, indices, labels, 1.0, 0.0, spec=spec, **common
    )

  steps = args.overhead_steps

  @jax.jit
  def bare(params, x):
    def body(x, t):
      return model_fn(params, x, jnp.full((b,), t, jnp.int32), labels), None

    return jax.lax.scan(body, x, jnp.arange(steps, dtype=jnp.int32)[::-1])[0]

  x0 = jax.random.normal(key, (b, size, size, 1))
  runs = {f"ddim{steps}": sampler(samplers.SamplerSpec("ddim", steps, guided=False))}
  if args.ddpm:
    if steps != 50:
      runs["ddim50"] = sampler(samplers.SamplerSpec("ddim", 50, guided=False))
    runs["ddpm1000"] = sampler(samplers.SamplerSpec("ddpm", guided=False))
  runs[f"bare{steps}"] = lambda: bare(params, x0)
  times = {name: [] for name in runs}
  for fn in runs.values():
    _timed(fn)  # Compile.
  for _ in range(args.repeats):
    for name, fn in runs.items():
      times[name].append(_timed(fn))
  med = {name: statistics.median(v) for name, v in times.items()}

  print(
    f"device {jax.devices()[0].device_kind}, config {args.config} ({size}x{size}, "
    f"{unet.count_params(params):,} params), batch {b}, median of {args.repeats}"
  )
  if args.ddpm:
    for name in ("ddim50", "ddpm1000"):
      print(f"  {name:>10}: {med[name] / b * 1e3:9.2f} ms/image  ({med[name]:.3f} s/batch)")
    print(f"  ratio ddpm1000 / ddim50: {med['ddpm1000'] / med['ddim50']:.1f} (ideal 20.0)")
  s, f = med[f"ddim{steps}"], med[f"bare{steps}"]
  overheads = [100 * (a / c - 1) for a, c in zip(times[f"ddim{steps}"], times[f"bare{steps}"])]
  print(
    f"  DDIM-{steps} {s:.3f} s vs {steps} bare forwards {f:.3f} s (medians): "
    f"overhead {100 * (s / f - 1):+.1f} %; per interleaved pair "
    + ", ".join(f"{o:+.1f}" for o in overheads)
    + " %"
  )


if __name__ == "__main__":
  main()
