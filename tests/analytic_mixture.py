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

import functools
import math
from typing import NamedTuple

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


def narrow_modes() -> Mixture:
  """Issue 32's mixture, narrower modes: 0.3 N(-0.6, 0.1^2) + 0.7 N(0.5, 0.15^2) (null class both)."""
  w, m, s = (0.3, 0.7), (-0.6, 0.5), (0.1, 0.15)
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
  x_flat = x.reshape(x.shape[0], -1)
  abar = p["abar"][t][:, None]
  logits, terms = [], []
  # One array per component and a softmax written out: a component axis and
  # jax.nn.softmax run ~50x slower on XLA:CPU (the benchmarks sample 10^6 values).
  for k in range(p["means"].shape[-1]):
    log_w, m, s = (p[name][y, k][:, None] for name in ("log_w", "means", "stds"))
    var = abar * s**2 + 1.0 - abar
    r = x_flat - jnp.sqrt(abar) * m
    logits.append(log_w - 0.5 * r**2 / var - 0.5 * jnp.log(var))
    terms.append(r / var)
  top = functools.reduce(jnp.maximum, logits)
  weights = [jnp.exp(logit - top) for logit in logits]
  mean = sum(w * r for w, r in zip(weights, terms, strict=True)) / sum(weights)
  return (jnp.sqrt(1.0 - abar) * mean).reshape(x.shape)


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
  return quantiles(mix, label, (np.arange(n) + 0.5) / n, abar_T)


def quantiles(mix: Mixture, label: int, probs, abar: float = 1.0) -> np.ndarray:
  """float64: the ``probs`` quantiles of the mixture noised to ``abar`` (1: the data; bisection)."""
  w, m, s = mix.weights[label], mix.means[label], mix.stds[label]
  mu, sd = math.sqrt(abar) * m, np.sqrt(abar * s**2 + 1.0 - abar)
  target = np.asarray(probs, np.float64)
  lo, hi = np.full(target.shape, -12.0), np.full(target.shape, 12.0)
  for _ in range(80):
    mid = 0.5 * (lo + hi)
    below = np.sum(w * special.ndtr((mid[:, None] - mu) / sd), axis=1) < target
    lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
  return 0.5 * (lo + hi)


# The 199 probabilities of ``w1``: 0.005, 0.010, ..., 0.995.
W1_PROBS = np.arange(1, 200) / 200.0


def w1(x, mix: Mixture, label: int) -> float:
  """Mean |sample quantile - exact quantile| of samples ``x`` over ``W1_PROBS`` (~ W1, tails cut)."""
  x = np.asarray(x, np.float64).reshape(-1)
  return float(np.mean(np.abs(np.quantile(x, W1_PROBS) - quantiles(mix, label, W1_PROBS))))


def w1_at_probs(x_at_probs, mix: Mixture, label: int) -> float:
  """``w1`` of a monotone map's outputs at the ``W1_PROBS`` quantiles of its input (no noise)."""
  x = np.sort(np.asarray(x_at_probs, np.float64).reshape(-1))
  return float(np.mean(np.abs(x - quantiles(mix, label, W1_PROBS))))
