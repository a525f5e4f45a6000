"""A 1-D mixture of Gaussians per pixel, whose optimal denoiser is closed form.

Shared by ``test_dpm_solver.py`` and ``benchmarks/bench_quality_nfe.py``.
Each pixel of ``x0`` is drawn independently from ``sum_k w_k N(m_k, s_k^2)``
(weights, means and standard deviations per class; the last row is the
unconditional "null" class of classifier-free guidance). Under
``x_t = sqrt(abar) x0 + sqrt(1 - abar) eps`` component ``k`` has the marginal
``N(sqrt(abar) m_k, v_k)``, ``v_k = abar s_k^2 + 1 - abar``, and

  E[eps | x_t] = sum_k pi_k(x_t) sqrt(1 - abar) (x_t - sqrt(abar) m_k) / v_k,

with ``pi_k`` the posterior weight of component ``k``. (Written in this form
rather than ``(x_t - sqrt(abar) E[x0 | x_t]) / sqrt(1 - abar)``, which is the
same value, to avoid the cancellation at small noise in float32.)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special


class Mixture(NamedTuple):
  """float64 [num_classes + 1, K] component weights, means and standard deviations."""

  weights: np.ndarray
  means: np.ndarray
  stds: np.ndarray


def two_modes() -> Mixture:
  """Two unequal, well separated modes; class 0 and 1 are the modes, class 2 (null) both."""
  w, m, s = (0.3, 0.7), (-0.9, 0.6), (0.15, 0.25)
  return Mixture(
    weights=np.array([[1.0, 0.0], [0.0, 1.0], w]),
    means=np.array([m, m, m]),
    stds=np.array([s, s, s]),
  )


def params(mix: Mixture, schedule) -> dict:
  """The ``params`` of ``mixture_eps`` for ``mix`` under ``schedule``."""
  return dict(
    # A zero weight becomes a very negative log weight (its posterior weight underflows to 0).
    log_w=jnp.asarray(np.log(np.maximum(mix.weights, 1e-30)), jnp.float32),
    means=jnp.asarray(mix.means, jnp.float32),
    stds=jnp.asarray(mix.stds, jnp.float32),
    abar=schedule.alphas_cumprod,
  )


def mixture_eps(p, x, t, y):
  """Exact E[eps | x_t] for every pixel of ``x`` [B,...] at timesteps ``t`` [B], classes ``y`` [B]."""
  extra = (1,) * (x.ndim - 1)
  abar = p["abar"][t].reshape(-1, *extra, 1)
  pick = lambda a: a[y].reshape(-1, *extra, a.shape[-1])  # noqa: E731
  log_w, m, s = pick(p["log_w"]), pick(p["means"]), pick(p["stds"])
  var = abar * s**2 + 1.0 - abar
  r = x[..., None] - jnp.sqrt(abar) * m
  post = jax.nn.softmax(log_w - 0.5 * r**2 / var - 0.5 * jnp.log(var), axis=-1)
  return jnp.sum(post * jnp.sqrt(1.0 - abar) * r / var, axis=-1)


def mixture_v(p, x, t, y):
  """The same optimal denoiser in the v parameterisation."""
  abar = p["abar"][t].reshape(-1, *(1,) * (x.ndim - 1))
  eps = mixture_eps(p, x, t, y)
  x0 = (x - jnp.sqrt(1.0 - abar) * eps) / jnp.sqrt(abar)
  return jnp.sqrt(abar) * eps - jnp.sqrt(1.0 - abar) * x0


def exact_stats(mix: Mixture, label: int) -> dict:
  """Mean, variance and weight of the lower mode (mass below the midpoint of the modes)."""
  w, m, s = mix.weights[label], mix.means[label], mix.stds[label]
  mean = float(np.sum(w * m))
  var = float(np.sum(w * (s**2 + m**2)) - mean**2)
  mid = float(np.mean(mix.means[label]))
  return dict(mean=mean, var=var, low=float(np.sum(w * special.ndtr((mid - m) / s))))


def sample_stats(x, mix: Mixture, label: int) -> dict:
  """The statistics of ``exact_stats`` of samples ``x`` (any shape)."""
  x = np.asarray(x, np.float64).reshape(-1)
  mid = float(np.mean(mix.means[label]))
  return dict(mean=float(x.mean()), var=float(x.var()), low=float(np.mean(x < mid)))


def errors(x, mix: Mixture, label: int) -> dict:
  """Absolute errors of the samples' mean, variance and lower-mode weight."""
  got, want = sample_stats(x, mix, label), exact_stats(mix, label)
  return {k: abs(got[k] - want[k]) for k in want}


def marginal_quantiles(mix: Mixture, label: int, abar_T: float, n: int) -> np.ndarray:
  """float64 [n]: the (i + 1/2)/n quantiles of the exact marginal of x_T (bisection).

  The probability-flow ODE is monotone in 1-D, so a deterministic sampler maps
  these to the quantiles of its output: its sample moments carry no Monte
  Carlo error, only the sampler's own (and O(1/n) from the quantile grid).
  """
  w, m, s = mix.weights[label], mix.means[label], mix.stds[label]
  mu, sd = math.sqrt(abar_T) * m, np.sqrt(abar_T * s**2 + 1.0 - abar_T)
  target = (np.arange(n) + 0.5) / n
  lo, hi = np.full(n, -12.0), np.full(n, 12.0)
  for _ in range(80):
    mid = 0.5 * (lo + hi)
    below = np.sum(w * special.ndtr((mid[:, None] - mu) / sd), axis=1) < target
    lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
  return 0.5 * (lo + hi)
