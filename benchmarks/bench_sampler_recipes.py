"""Each sampler's timestep recipe: quality per model evaluation on the analytic mixture.

  JAX_PLATFORMS=cpu python benchmarks/bench_sampler_recipes.py               # both schedules
  JAX_PLATFORMS=cpu python benchmarks/bench_sampler_recipes.py --schedules=cosine --seeds=5

Every pixel is drawn from issue 32's 1-D mixture 0.3 N(-0.6, 0.1^2) + 0.7 N(0.5, 0.15^2)
(``tests/analytic_mixture.py``, ``narrow_modes``) and the model is its exact eps-prediction,
so every error is the sampler's. The error is ``w1``: the mean |quantile difference| to the
exact mixture over 199 quantiles (0.005..0.995), about the Wasserstein-1 distance.

Per schedule (linear, cosine), sampler (DDIM eta 0, DPM-Solver++(2M), ancestral = DDIM
eta 1 on the same timesteps), spacing (uniform, quadratic, logsnr), final-step treatment
('jump': x0 from the last visited timestep; 'zero': the grid ends at t = 0) and step count
(= model evaluations, NFE), two figures:

* random start: ``--seeds`` independent runs of ``--n`` values each through
  ``samplers.sample_from`` (run key = seed: initial noise from the key, step noise per
  value as ``sample_images`` draws it; every sampler sees the same noise per seed), as
  mean and standard deviation over the seeds: the seed spread to judge differences by;
* quantile start (deterministic samplers only): the sampler applied to the 199 quantiles
  of the exact x_T marginal, in the same run; the 1-D ODE is monotone, so this is the
  same figure without Monte Carlo error.

The "exact draws" row is ``--n`` draws from the mixture itself (the Monte Carlo floor), and
"DDPM 1000" the ancestral sampler over all T steps.
"""

from __future__ import annotations

import argparse
import functools
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

NULL = 2  # The null class: the whole mixture.
SETTINGS = (("ddim", 0.0, "DDIM η0"), ("dpmpp_2m", 0.0, "DPM-Solver++(2M)"),
            ("ddim", 1.0, "ancestral (DDIM η1)"))  # fmt: skip


def get_schedule(name):
  return schedules.get_schedule(
    ml_collections.ConfigDict(
      dict(schedule=name, num_timesteps=1000, beta_start=1e-4, beta_end=0.02, cosine_s=0.008)
    )
  )


@functools.partial(jax.jit, static_argnames=("spec", "n"))
def _draw(params, schedule, seed, x_q, eta, *, spec, n):
  """[seeds, n + Q]: per seed, n random starts then the Q fixed starts ``x_q`` (same run)."""

  def one(key):
    init_keys, step_keys = samplers.per_image_keys(key, jnp.arange(n + x_q.shape[0]))
    x_T = jnp.concatenate([jax.random.normal(init_keys[0], (n,)), x_q])[:, None, None, None]
    labels = jnp.full((x_T.shape[0],), NULL, jnp.int32)
    x = samplers.sample_from(
      am.mixture_eps, params, schedule, x_T, step_keys, labels, 1.0, eta, spec=spec,
      num_classes=2,
    )  # fmt: skip
    return x.reshape(-1)

  return jax.vmap(one)(jax.vmap(jax.random.key)(seed))


def run(mix, schedule, spec, eta, seeds, n):
  """(w1 of ``n`` random starts per seed [seeds], w1 from the exact quantile start)."""
  x_q = am.quantiles(mix, NULL, am.W1_PROBS, float(schedule.alphas_cumprod[-1]))
  x = np.asarray(
    _draw(
      am.params(mix, schedule),
      schedule,
      jnp.asarray(list(seeds)),
      jnp.asarray(x_q, jnp.float32),
      jnp.float32(eta),
      spec=spec,
      n=n,
    )  # fmt: skip
  )
  random = np.array([am.w1(row[:n], mix, NULL) for row in x])
  return random, am.w1_at_probs(x[0, n:], mix, NULL)


def exact_draws(mix, seeds, n):
  out = []
  for seed in seeds:
    rng = np.random.default_rng(seed)
    comp = rng.random(n) < mix.weights[NULL][1]
    x = np.where(comp, rng.normal(mix.means[NULL][1], mix.stds[NULL][1], n),
                 rng.normal(mix.means[NULL][0], mix.stds[NULL][0], n))  # fmt: skip
    out.append(am.w1(x, mix, NULL))
  return np.array(out)


def cell(values):
  return (
    f"{values.mean():.4f} ± {values.std(ddof=1):.4f}" if len(values) > 1 else f"{values[0]:.4f}"
  )


def main():
  xla_flags.configure_xla_cpu()
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--schedules", default="linear,cosine")
  parser.add_argument("--steps", default="10,15,20,30,50,100")
  parser.add_argument("--spacings", default="uniform,quadratic,logsnr")
  parser.add_argument("--finals", default="jump,zero")
  parser.add_argument("--samplers", default="ddim:0,dpmpp_2m:0,ddim:1")
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--n", type=int, default=131_072)
  parser.add_argument("--ddpm", action=argparse.BooleanOptionalAction, default=True)
  args = parser.parse_args()
  steps = [int(s) for s in args.steps.split(",")]
  seeds = range(args.seeds)
  names = {(s, e): label for s, e, label in SETTINGS}
  settings = [(p.split(":")[0], float(p.split(":")[1])) for p in args.samplers.split(",")]
  mix = am.narrow_modes()
  start = time.perf_counter()
  print(f"JAX {jax.__version__}, {jax.devices()[0].platform}; N = {args.n}, {args.seeds} seeds")
  print(f"exact draws (Monte Carlo floor): w1 {cell(exact_draws(mix, seeds, args.n))}")
  for name in args.schedules.split(","):
    schedule = get_schedule(name)
    head = " | ".join(str(s) for s in steps)
    print(f"\n{name} schedule: w1, random start (mean ± s.d. over {args.seeds} seeds) "
          "[quantile start]\n")  # fmt: skip
    print(f"| sampler | spacing | final | {head} |")
    print("| --- " * (3 + len(steps)) + "|")
    for sampler, eta in settings:
      for spacing in args.spacings.split(","):
        for final in args.finals.split(","):
          cells = []
          for k in steps:
            spec = samplers.SamplerSpec(sampler, k, spacing, final, guided=False)
            random, quantile = run(mix, schedule, spec, eta, seeds, args.n)
            cells.append(cell(random) + (f" [{quantile:.4f}]" if eta == 0.0 else ""))
          label = names.get((sampler, eta), f"{sampler} η{eta:g}")
          print(f"| {label} | {spacing} | {final} | " + " | ".join(cells) + " |", flush=True)
    if args.ddpm:
      spec = samplers.SamplerSpec("ddpm", guided=False)
      c = cell(run(mix, schedule, spec, 1.0, seeds, args.n)[0])
      print(f"| DDPM (all T) | - | zero | 1000 steps: {c} |" + " |" * (len(steps) - 1))
  print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
  main()
