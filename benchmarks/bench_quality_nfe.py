"""Quality per model evaluation: DDIM (eta 0, eta 1) against DPM-Solver++(2M).

  # (a) the analytic two-Gaussian mixture (exact answer known), both schedules
  JAX_PLATFORMS=cpu python benchmarks/bench_quality_nfe.py --part=mixture
  # (b) a trained quickstart model (train it first: --mode=train into runs/qs)
  JAX_PLATFORMS=cpu python benchmarks/bench_quality_nfe.py --part=model --workdir=runs/qs
  # side-by-side timing only
  JAX_PLATFORMS=cpu python benchmarks/bench_quality_nfe.py --part=model --steps=10,25 \
      --ref_steps=0 --ddpm_n=0 --timing=5

(a) Every pixel is drawn from the 1-D mixture of ``tests/analytic_mixture.py``
(null class: both modes); the model is its exact eps-prediction, so every
error is the sampler's. Two starts: the quantiles of the exact x_T marginal
(deterministic samplers only: the 1-D ODE is monotone, so the output moments
carry no Monte Carlo error) and ``--mixture_n`` random starts through the full
sampling path (the same per-image noise for every sampler; the "exact" row is
as many draws from the mixture itself, the Monte Carlo floor).

(b) ``--n`` images (classes in turn, guidance 1, the quickstart's x0
clipping unless ``--no-clip``) from the newest EMA checkpoint of
``--workdir``, the same seed for every setting. Per setting: the mean per-image RMS distance (model space
[-1, 1]) to the same image drawn by DPM-Solver++(2M) and by DDIM eta 0 at
``--ref_steps`` steps (the ODE's answer; meaningful for the deterministic
samplers only: a stochastic sampler draws another image), the mean |discrete
Laplacian| of the images (pixel noise; real test images alongside), the
Wasserstein-1 distance of on-disk log10 intensities to real test images
(``evaluation.physics``; real validation vs test at the same N as floor), and
seconds per image of the compiled sampler (run once each, after compiling).
``--timing=R`` adds a table of the same settings timed interleaved (A, B, C,
A, B, C, ...), median of R runs: the ratios to trust on a shared machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import analytic_mixture as am  # noqa: E402

from solar_jax import xla_flags  # noqa: E402
from solar_jax.diffusion import samplers, schedules  # noqa: E402

SETTINGS = (("ddim", 0.0), ("ddim", 1.0), ("dpmpp_2m", 0.0))
# The trailing uniform grid of the tables in RESULTS.md (bench_sampler_recipes.py compares grids).
GRID = ("uniform", "jump")


def _name(sampler, eta):
  return "DPM-Solver++(2M)" if sampler == "dpmpp_2m" else f"DDIM eta {eta:g}"


# ----------------------------------------------------------------- (a) mixture ---


def _mixture_schedule(name):
  return schedules.get_schedule(
    ml_collections.ConfigDict(
      dict(schedule=name, num_timesteps=1000, beta_start=1e-4, beta_end=0.02, cosine_s=0.008)
    )
  )


def mixture_part(steps_list, n_random, n_quantiles):
  mix, null = am.two_modes(), 2
  exact = am.exact_stats(mix, null)
  print(
    f"\n(a) mixture 0.3 N(-0.9, 0.15^2) + 0.7 N(0.6, 0.25^2): mean {exact['mean']:.4f}, "
    f"variance {exact['var']:.4f}, weight below the midpoint {exact['low']:.4f}"
  )
  for name in ("cosine", "linear"):
    schedule = _mixture_schedule(name)
    params = am.params(mix, schedule)
    x_q = am.marginal_quantiles(mix, null, float(schedule.alphas_cumprod[-1]), n_quantiles)
    x_q = jnp.asarray(x_q.reshape(-1, 1, 1, 1), jnp.float32)
    keys = jax.random.split(jax.random.key(0), n_quantiles)
    labels_q = jnp.full((n_quantiles,), null, jnp.int32)
    labels_r = np.full(n_random, null, np.int32)
    print(f"\n{name} schedule; |error| of mean, variance, weight")
    print(
      f"| sampler | steps (NFE) | quantile start (exact): mean | var | weight "
      f"| random start (N={n_random}): mean | var | weight |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    draws = np.random.default_rng(0)
    comp = draws.random(n_random) < mix.weights[null][1]
    x_exact = np.where(
      comp,
      draws.normal(mix.means[null][1], mix.stds[null][1], n_random),
      draws.normal(mix.means[null][0], mix.stds[null][0], n_random),
    )
    e = am.errors(x_exact, mix, null)
    print(f"| exact draws | - | - | - | - | {e['mean']:.1e} | {e['var']:.1e} | {e['low']:.1e} |")
    for steps in (*steps_list, 200):
      for sampler, eta in SETTINGS:
        spec = samplers.SamplerSpec(sampler, steps, *GRID, guided=False)
        q = "| - | - | -"
        if eta == 0.0:
          x = samplers.sample_from(
            am.mixture_eps, params, schedule, x_q, keys, labels_q, 1.0, 0.0, spec=spec,
            num_classes=2,
          )  # fmt: skip
          e = am.errors(np.asarray(x), mix, null)
          q = f"| {e['mean']:.1e} | {e['var']:.1e} | {e['low']:.1e}"
        x = samplers.sample_images(
          am.mixture_eps, params, schedule, jax.random.key(1), labels_r, spec=spec,
          num_classes=2, image_shape=(1, 1, 1), batch_size=n_random, eta=eta,
        )  # fmt: skip
        e = am.errors(x, mix, null)
        r = f"| {e['mean']:.1e} | {e['var']:.1e} | {e['low']:.1e} |"
        print(f"| {_name(sampler, eta)} | {steps} {q} {r}", flush=True)


# ------------------------------------------------------------------- (b) model ---


def _laplacian(images):
  """Mean |5-point Laplacian| per image over the interior (model space)."""
  x = np.asarray(images, np.float64)[..., 0]
  lap = x[:, 1:-1, :-2] + x[:, 1:-1, 2:] + x[:, :-2, 1:-1] + x[:, 2:, 1:-1] - 4 * x[:, 1:-1, 1:-1]
  return float(np.mean(np.abs(lap)))


def model_part(workdir, steps_list, n, ref_steps, ddpm_n, data_dir, seed, settings, clip, timing):
  from solar_jax import checkpointing, parallel
  from solar_jax.configs import quickstart  # noqa: PLC0415
  from solar_jax.data import input_pipeline, scaling  # noqa: PLC0415
  from solar_jax.ddpm import sample
  from solar_jax.metrics import physics
  from solar_jax.models import unet  # noqa: PLC0415

  config = quickstart.get_config()
  config.data.data_dir = data_dir or str(Path(workdir) / "tfds")
  mesh = parallel.create_mesh(config.mesh)
  with jax.set_mesh(mesh):
    params, step = sample.load_inference_params(workdir, config, mesh=mesh)
  params = checkpointing.host_copy(params)
  model_fn = samplers.LinenModelFn(unet.create_model(config))
  schedule = schedules.get_schedule(config.diffusion)
  num_classes = len(config.data.classes)
  shape = (config.data.image_size, config.data.image_size, config.data.channels)
  dn_range = (config.data.clip_min, config.data.clip_max)
  key = jax.random.key(config.sampling.seed if seed is None else seed)

  def compile_run(sampler, steps, eta, count):
    """(compiled sample_batch, its dynamic arguments, compile seconds)."""
    spec = samplers.SamplerSpec(
      sampler, steps, *GRID, config.diffusion.prediction, clip_x0=clip, guided=False
    )
    args = (
      model_fn, params, schedule, key, jnp.arange(count, dtype=jnp.int32),
      jnp.arange(count, dtype=jnp.int32) % num_classes, jnp.float32(1.0), jnp.float32(eta),
    )  # fmt: skip
    kw = dict(spec=spec, num_classes=num_classes, image_shape=shape)
    start = time.perf_counter()
    compiled = samplers.sample_batch.lower(*args, **kw).compile()
    return compiled, args[1:], time.perf_counter() - start

  def draw(sampler, steps, eta, count):
    compiled, args, compile_s = compile_run(sampler, steps, eta, count)
    start = time.perf_counter()
    x = np.asarray(jax.block_until_ready(compiled(*args)))
    return x, (time.perf_counter() - start) / count, compile_s

  real = input_pipeline.make_for_inference(config.data, "test", max_examples=n, transform=False)
  val = input_pipeline.make_for_inference(
    config.data, "validation", max_examples=n, transform=False
  )
  real_dns, val_dns = real["image"], val["image"]
  real_model = scaling.forward(real_dns, *dn_range)
  print(
    f"\n(b) quickstart model, step {step}, {workdir}; N = {n} ({len(real_dns)} real test, "
    f"{len(val_dns)} validation images), x0 clipping {clip}"
  )
  print(
    f"real test images: mean |Laplacian| {_laplacian(real_model):.3f}; intensity W1 "
    f"validation vs test {physics.intensity_wasserstein(real_dns, val_dns):.4f} dex"
  )
  refs = {}
  for sampler in ("dpmpp_2m", "ddim") if ref_steps else ():
    refs[sampler], sec, _ = draw(sampler, ref_steps, 0.0, n)
    print(f"reference {sampler} {ref_steps} steps: {1000 * sec:.0f} ms/image", flush=True)
  rms = lambda a, b: float(np.mean(np.sqrt(np.mean((a - b) ** 2, axis=(1, 2, 3)))))  # noqa: E731
  if refs:
    print(f"RMS distance between the two references: {rms(refs['dpmpp_2m'], refs['ddim']):.4f}")
  to_ref = lambda x, s: f"{rms(x, refs[s]):.4f}" if refs else "-"  # noqa: E731
  print(
    f"\n| sampler | steps (NFE) | RMS to DPM++ {ref_steps} | RMS to DDIM {ref_steps} "
    "| mean abs Laplacian | intensity W1 to real (dex) | ms / image | x DDIM eta 0 same steps |"
  )
  print("| --- | --- | --- | --- | --- | --- | --- | --- |")
  rows = [(s, e, k) for k in steps_list for s, e in settings]
  base = None
  for sampler, eta, steps in rows:
    x, sec, _ = draw(sampler, steps, eta, n)
    if sampler == "ddim" and eta == 0.0:
      base = sec
    w1 = physics.intensity_wasserstein(real_dns, scaling.inverse(x, *dn_range))
    print(
      f"| {_name(sampler, eta)} | {steps} | {to_ref(x, 'dpmpp_2m')} "
      f"| {to_ref(x, 'ddim')} | {_laplacian(x):.3f} | {w1:.4f} | {1000 * sec:.0f} "
      f"| {sec / base if base else float('nan'):.2f} |",
      flush=True,
    )
  for sampler, x in refs.items():
    steps = ref_steps
    w1 = physics.intensity_wasserstein(real_dns, scaling.inverse(x, *dn_range))
    print(
      f"| {_name(sampler, 0.0)} (reference) | {steps} | - | - | {_laplacian(x):.3f} "
      f"| {w1:.4f} | - | - |"
    )
  if timing:
    # Interleaved (A, B, C, A, B, C, ...) so that a change of machine load hits all alike.
    print(f"\nInterleaved timing, median of {timing} runs, batch {n} (ms / image):")
    print("| steps | " + " | ".join(_name(*s) for s in settings) + " | ratios to the first |")
    print("| --- " * (len(settings) + 2) + "|")
    for steps in steps_list:
      runs = [compile_run(sampler, steps, eta, n)[:2] for sampler, eta in settings]
      times = [[] for _ in runs]
      for _ in range(timing):
        for (compiled, args), spent in zip(runs, times):
          start = time.perf_counter()
          jax.block_until_ready(compiled(*args))
          spent.append((time.perf_counter() - start) / n)
      med = [1000 * float(np.median(t)) for t in times]
      ratios = ", ".join(f"{m / med[0]:.3f}" for m in med[1:])
      print(f"| {steps} | " + " | ".join(f"{m:.1f}" for m in med) + f" | {ratios} |", flush=True)
  if ddpm_n:
    x, sec, _ = draw("ddpm", 1000, 1.0, ddpm_n)
    w1 = physics.intensity_wasserstein(real_dns, scaling.inverse(x, *dn_range))
    print(
      f"| DDPM (ancestral, N = {ddpm_n}) | 1000 | - | - | {_laplacian(x):.3f} | {w1:.4f} "
      f"| {1000 * sec:.0f} | - |"
    )


def main():
  xla_flags.configure_xla_cpu()  # Before JAX starts its CPU backend, as training does.
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--part", choices=("mixture", "model", "both"), default="both")
  parser.add_argument("--steps", default="5,10,15,25,50")
  parser.add_argument("--mixture_n", type=int, default=100_000)
  parser.add_argument("--quantiles", type=int, default=20_000)
  parser.add_argument("--workdir", default="runs/qs")
  parser.add_argument("--data_dir", default="", help="TFDS data dir (default WORKDIR/tfds)")
  parser.add_argument("--n", type=int, default=40)
  parser.add_argument("--ref_steps", type=int, default=200)
  parser.add_argument("--ddpm_n", type=int, default=20, help="0 skips DDPM-1000")
  parser.add_argument("--clip", action=argparse.BooleanOptionalAction, default=True)
  parser.add_argument(
    "--timing", type=int, default=0, help="N > 0: also an interleaved timing table, median of N"
  )
  parser.add_argument("--seed", type=int, default=None, help="default: sampling.seed")
  parser.add_argument(
    "--samplers", default="ddim:0,ddim:1,dpmpp_2m:0", help="sampler:eta pairs of (b)"
  )
  args = parser.parse_args()
  steps = tuple(int(s) for s in args.steps.split(","))
  print(f"JAX {jax.__version__}, {jax.devices()[0].platform}")
  if args.part in ("mixture", "both"):
    mixture_part(steps, args.mixture_n, args.quantiles)
  if args.part in ("model", "both"):
    settings = [(p.split(":")[0], float(p.split(":")[1])) for p in args.samplers.split(",")]
    model_part(
      args.workdir,
      steps,
      args.n,
      args.ref_steps,
      args.ddpm_n,
      args.data_dir,
      args.seed,
      settings,
      args.clip,
      args.timing,
    )


if __name__ == "__main__":
  main()
