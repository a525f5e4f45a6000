"""Where a stepped sampler evaluates the model: the timestep placements and final steps.

``SPACINGS`` is the registry of placements (name -> function); each sampler's default
placement is part of its recipe in ``samplers.SAMPLERS``. See ``samplers`` for the
conventions (0-based integer timesteps, 'jump' and 'zero' final steps) and
benchmarks/RESULTS.md ("Each sampler's timestep recipe") for what each placement costs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from solar_jax.errors import ConfigError

FINAL_STEPS = ("jump", "zero")
DEFAULT = "default"  # sampling.spacing / final_step: the sampler's recipe.


def _choice(value, field, allowed):
  if value not in allowed:
    raise ConfigError(f"{field}={value!r} is not one of {', '.join(map(repr, allowed))}.")


def _uniform(num_timesteps, num_steps, final, alphas_cumprod):
  """'jump': ``round(i T / S) - 1``, i = 1..S (trailing); 'zero': ``round((T - 1) i / (S - 1))``, i = 0..S-1."""
  i = np.arange(1, num_steps + 1, dtype=np.float64)
  if final == "zero":
    return np.round((num_timesteps - 1) * (i - 1) / (num_steps - 1))
  return np.round(i / num_steps * num_timesteps) - 1  # In this order: the grid of old runs.


def _quadratic(num_timesteps, num_steps, final, alphas_cumprod):
  """As 'uniform' with the fractions squared: denser near the data."""
  i = np.arange(1, num_steps + 1, dtype=np.float64)
  if final == "zero":
    return np.round((num_timesteps - 1) * ((i - 1) / (num_steps - 1)) ** 2)
  return np.ceil((i / num_steps) ** 2 * num_timesteps) - 1


def _logsnr(num_timesteps, num_steps, final, alphas_cumprod):
  """Uniform in lambda, S points (+ one at t = 0 that 'jump' drops); ``alphas_cumprod`` may be traced."""
  if alphas_cumprod is None:
    raise ValueError("the 'logsnr' spacing needs the schedule's alphas_cumprod.")
  abar = jnp.asarray(alphas_cumprod, jnp.float32)
  lam = 0.5 * (jnp.log(abar) - jnp.log1p(-abar))  # Decreasing in t.
  target = jnp.linspace(lam[0], lam[-1], num_steps + (final == "jump"))
  seq = jnp.argmin(jnp.abs(lam[None, :] - target[:, None]), axis=1)  # Nearest lambda.
  return jnp.maximum(seq[1:], 1) if final == "jump" else seq


SPACINGS = {"uniform": _uniform, "quadratic": _quadratic, "logsnr": _logsnr}


def timesteps(
  num_timesteps: int,
  num_steps: int,
  spacing: str = "uniform",
  final_step: str = "jump",
  alphas_cumprod=None,
) -> jax.Array:
  """The strictly increasing timesteps (int32 [S]) a stepped sampler visits; last = T - 1.

  ``spacing`` is a key of ``SPACINGS`` and ``final_step`` one of ``FINAL_STEPS``;
  ``alphas_cumprod`` [T] (may be traced) is needed by 'logsnr'. Points that
  collide after rounding are pushed apart (up from the data end, then down
  from T - 1); S = T visits every timestep, S = 1 only T - 1.
  """
  if not 1 <= num_steps <= num_timesteps:
    raise ConfigError(
      f"sampling.num_steps={num_steps} must lie in [1, diffusion.num_timesteps={num_timesteps}]."
    )
  _choice(spacing, "sampling.spacing", tuple(SPACINGS))
  _choice(final_step, "sampling.final_step", FINAL_STEPS)
  if num_steps == 1:
    return jnp.full((1,), num_timesteps - 1, jnp.int32)
  seq = jnp.asarray(SPACINGS[spacing](num_timesteps, num_steps, final_step, alphas_cumprod))
  # Strictly increasing within [0, T - 1]: push collisions up, then down from the top.
  idx = jnp.arange(num_steps)
  seq = jax.lax.cummax(jnp.maximum(seq.astype(jnp.int32), 0) - idx) + idx
  seq = jax.lax.cummin(jnp.minimum(seq, num_timesteps - 1) - idx, reverse=True) + idx
  return seq.astype(jnp.int32)
