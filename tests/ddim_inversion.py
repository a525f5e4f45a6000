"""DDIM inversion: integrates the DDIM ODE from images to latents, for the round-trip test.

Moved here from solar_jax.diffusion.samplers, where nothing used it: it exists
to check that deterministic DDIM (eta = 0) is the invertible ODE map it should
be (tests/test_samplers.py), which tests the sampler's coefficients.
"""

import functools

import jax
import jax.numpy as jnp

from solar_jax.diffusion import losses, samplers


def invert_to(
  model_fn,
  params,
  schedule,
  x0: jax.Array,
  labels: jax.Array,
  guidance_scale,
  *,
  spec: samplers.SamplerSpec,
  num_classes: int,
) -> jax.Array:
  """DDIM inversion (eta = 0): integrates the DDIM ODE from images ``x0`` to latents x_T.

  Step ``t_{i-1} -> t_i`` uses the model at the start point, mirroring the
  sampler's Euler step; the first step (from the clean image) evaluates the
  model at ``t_1``. Inversion never clips x0 (``spec.clip_x0`` is ignored).
  """
  seq = samplers.visited_timesteps(schedule, spec)
  t_eval = jnp.concatenate([seq[:1], seq[:-1]])
  abar_all = schedule.alphas_cumprod
  abar_eval = abar_all[t_eval]
  abar_from = jnp.concatenate([jnp.ones((1,), jnp.float32), abar_all[seq[:-1]]])
  abar_to = abar_all[seq]

  def step(x, inputs):
    t, a_eval, a_from, a_to = inputs
    out = samplers.guided_output(
      model_fn, params, x, t, labels, guidance_scale, num_classes=num_classes, guided=spec.guided
    )
    # The output is read at the timestep the model saw; x0 at the current noise level.
    eps, _ = losses.output_to_eps_x0(
      out, x, jnp.sqrt(a_eval), jnp.sqrt(1.0 - a_eval), spec.prediction
    )
    x_clean = (x - jnp.sqrt(1.0 - a_from) * eps) / jnp.sqrt(a_from)
    return jnp.sqrt(a_to) * x_clean + jnp.sqrt(1.0 - a_to) * eps, None

  x, _ = jax.lax.scan(step, x0.astype(jnp.float32), (t_eval, abar_eval, abar_from, abar_to))
  return x


@functools.partial(jax.jit, static_argnames=("model_fn", "spec", "num_classes"))
def ddim_invert(
  model_fn,
  params,
  schedule,
  x0: jax.Array,
  labels: jax.Array,
  guidance_scale=1.0,
  *,
  spec: samplers.SamplerSpec,
  num_classes: int,
) -> jax.Array:
  """Jitted ``invert_to``: images -> DDIM latents (eta = 0)."""
  return invert_to(
    model_fn, params, schedule, x0, labels, guidance_scale, spec=spec, num_classes=num_classes
  )


@functools.partial(jax.jit, static_argnames=("model_fn", "spec", "num_classes"))
def ddim_decode(
  model_fn,
  params,
  schedule,
  x_T: jax.Array,
  labels: jax.Array,
  guidance_scale=1.0,
  *,
  spec: samplers.SamplerSpec,
  num_classes: int,
) -> jax.Array:
  """Deterministic DDIM (eta = 0) from given latents ``x_T``; the inverse of ``ddim_invert``."""
  if spec.sampler != "ddim":
    raise ValueError("ddim_decode needs spec.sampler='ddim'.")
  keys = jax.random.split(jax.random.key(0), x_T.shape[0])  # Unused: eta = 0 adds no noise.
  return samplers.sample_from(
    model_fn,
    params,
    schedule,
    x_T,
    keys,
    labels,
    guidance_scale,
    0.0,
    spec=spec,
    num_classes=num_classes,
  )
