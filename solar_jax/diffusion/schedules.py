"""Noise schedules and the forward (noising) process.

Every array is computed once in float64 with NumPy and then cast to float32,
so ``1 - alphas_cumprod`` near ``t = 0`` and the posterior coefficients keep
their precision. Timesteps are 0-based: ``t = 0`` is the least noisy step,
``t = T - 1`` the noisiest, and ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

# Nichol & Dhariwal clip the cosine betas below 1 so the last step stays invertible.
_MAX_BETA = 0.999


class Schedule(NamedTuple):
  """Per-timestep float32 arrays [T] of a discrete diffusion (a JAX pytree)."""

  betas: jax.Array
  alphas: jax.Array
  alphas_cumprod: jax.Array
  alphas_cumprod_prev: jax.Array  # abar_{t-1}, with abar_{-1} = 1.
  sqrt_alphas_cumprod: jax.Array
  sqrt_one_minus_alphas_cumprod: jax.Array
  sqrt_recip_alphas_cumprod: jax.Array
  sqrt_recipm1_alphas_cumprod: jax.Array
  # q(x_{t-1} | x_t, x_0) = N(coef1 x_0 + coef2 x_t, posterior_variance).
  posterior_variance: jax.Array
  posterior_log_variance_clipped: jax.Array
  posterior_mean_coef1: jax.Array
  posterior_mean_coef2: jax.Array

  @property
  def num_timesteps(self) -> int:
    return self.betas.shape[0]


def linear_betas(num_timesteps: int, beta_start: float, beta_end: float) -> np.ndarray:
  """Ho et al. (2020): betas linear in t (float64)."""
  return np.linspace(beta_start, beta_end, num_timesteps, dtype=np.float64)


def cosine_betas(num_timesteps: int, s: float = 0.008) -> np.ndarray:
  """Nichol & Dhariwal (2021): abar(t) = cos^2(((t/T + s)/(1 + s)) pi/2), betas clipped."""
  steps = np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps
  f = np.cos((steps + s) / (1.0 + s) * math.pi / 2.0) ** 2
  abar = f / f[0]
  return np.clip(1.0 - abar[1:] / abar[:-1], 0.0, _MAX_BETA)


def schedule_from_betas(betas: np.ndarray) -> Schedule:
  """All derived arrays from float64 betas, cast to float32 at the end."""
  betas = np.asarray(betas, dtype=np.float64)
  if betas.ndim != 1 or not np.all((betas > 0) & (betas < 1)):
    raise ValueError("betas must be a 1-d array with every value in (0, 1).")
  alphas = 1.0 - betas
  abar = np.cumprod(alphas)
  abar_prev = np.concatenate([[1.0], abar[:-1]])
  posterior_variance = betas * (1.0 - abar_prev) / (1.0 - abar)
  arrays = dict(
    betas=betas,
    alphas=alphas,
    alphas_cumprod=abar,
    alphas_cumprod_prev=abar_prev,
    sqrt_alphas_cumprod=np.sqrt(abar),
    sqrt_one_minus_alphas_cumprod=np.sqrt(1.0 - abar),
    sqrt_recip_alphas_cumprod=np.sqrt(1.0 / abar),
    sqrt_recipm1_alphas_cumprod=np.sqrt(1.0 / abar - 1.0),
    posterior_variance=posterior_variance,
    # The posterior variance is 0 at t = 0; use the t = 1 value in the log (as ADM does).
    posterior_log_variance_clipped=np.log(
      np.concatenate([posterior_variance[1:2], posterior_variance[1:]])
    ),
    posterior_mean_coef1=betas * np.sqrt(abar_prev) / (1.0 - abar),
    posterior_mean_coef2=(1.0 - abar_prev) * np.sqrt(alphas) / (1.0 - abar),
  )
  return Schedule(**{k: jnp.asarray(v, dtype=jnp.float32) for k, v in arrays.items()})


def get_betas(diffusion_config: ml_collections.ConfigDict) -> np.ndarray:
  """float64 betas [T] for ``diffusion_config`` (schedule, num_timesteps, ...)."""
  name = diffusion_config.schedule
  num_timesteps = int(diffusion_config.num_timesteps)
  if num_timesteps < 1:
    raise ValueError(f"diffusion.num_timesteps={num_timesteps} must be positive.")
  if name not in SCHEDULES:
    raise ValueError(
      f"diffusion.schedule={name!r} is not one of {', '.join(map(repr, SCHEDULES))}."
    )
  return SCHEDULES[name](diffusion_config, num_timesteps)


# The registry: diffusion.schedule -> betas(diffusion_config, num_timesteps).
SCHEDULES = {
  "linear": lambda c, n: linear_betas(n, c.beta_start, c.beta_end),
  "cosine": lambda c, n: cosine_betas(n, c.cosine_s),
}


def get_schedule(diffusion_config: ml_collections.ConfigDict) -> Schedule:
  """The Schedule named by ``diffusion_config.schedule`` ('linear' or 'cosine')."""
  return schedule_from_betas(get_betas(diffusion_config))


def extract(values: jax.Array, t: jax.Array, ndim: int) -> jax.Array:
  """``values[t]`` reshaped to [B, 1, ..., 1] to broadcast against rank-``ndim`` arrays."""
  return values[t].reshape(t.shape + (1,) * (ndim - t.ndim))


def q_sample(schedule: Schedule, x0: jax.Array, t: jax.Array, noise: jax.Array) -> jax.Array:
  """Samples ``x_t ~ q(x_t | x_0)``: ``sqrt(abar_t) x0 + sqrt(1 - abar_t) noise``."""
  return (
    extract(schedule.sqrt_alphas_cumprod, t, x0.ndim) * x0
    + extract(schedule.sqrt_one_minus_alphas_cumprod, t, x0.ndim) * noise
  )


def snr(schedule: Schedule) -> jax.Array:
  """Signal-to-noise ratio abar / (1 - abar) per timestep."""
  return schedule.alphas_cumprod / (1.0 - schedule.alphas_cumprod)
