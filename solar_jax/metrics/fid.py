"""Fréchet distance (FID) and kernel inception distance (KID) of feature sets.

Both take feature matrices ``[N, D]`` from any extractor (Inception pool3,
the flare classifier's penultimate layer) and work in float64 on the host.

FID (Heusel et al. 2017) is the Fréchet distance between Gaussians fitted to
the two sets::

  d² = ||mu1 - mu2||² + Tr(S1 + S2 - 2 (S1 S2)^{1/2})

computed as pytorch-fid does (``scipy.linalg.sqrtm``, an ``eps`` offset when
the product is singular, and an error when the square root has a significant
imaginary part), or through the eigenvalues of the symmetric matrix
``S1^{1/2} S2 S1^{1/2}``, whose square roots sum to the same trace and which
never goes complex.

KID (Bińkowski et al. 2018) is the unbiased estimator of the squared maximum
mean discrepancy with the cubic polynomial kernel ``k(x, y) = (x·y / D + 1)³``;
it is unbiased (≈ 0 for two samples of one distribution) where FID is not, so
it is the fairer figure at small N. Here it is computed on the whole sets and
its 95 % interval comes from a bootstrap over images (the original paper's
mean over subsets of 1000 says nothing about precision when the subsets are
as large as the set).

FID is only estimable when N > D: below that the sample covariance has rank
N - 1 < D (``solar_jax.metrics.sample_size``); callers mark it so instead
of printing a number.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import scipy.linalg

# pytorch-fid tolerates this much imaginary part on the diagonal of sqrtm's
# result before it declares the computation failed.
IMAGINARY_ATOL = 1e-3
METHODS = ("sqrtm", "eigh")


@dataclasses.dataclass(frozen=True)
class FeatureStats:
  """Mean and covariance of a feature set, with the number of rows behind them."""

  mu: np.ndarray  # [D] float64
  sigma: np.ndarray  # [D, D] float64
  n: int


def feature_statistics(features: np.ndarray) -> FeatureStats:
  """Mean and unbiased covariance (``np.cov``, ddof=1) of ``features [N, D]``."""
  x = np.asarray(features, dtype=np.float64)
  if x.ndim != 2 or x.shape[0] < 2:
    raise ValueError(f"features must have shape [N >= 2, D], got {x.shape}.")
  if not np.isfinite(x).all():
    raise ValueError("features contain NaN or inf; check the extractor's input.")
  return FeatureStats(mu=x.mean(axis=0), sigma=np.atleast_2d(np.cov(x, rowvar=False)), n=len(x))


def _trace_sqrt_product_sqrtm(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> float:
  """Tr((S1 S2)^{1/2}) by ``scipy.linalg.sqrtm``, as pytorch-fid computes it."""
  with warnings.catch_warnings():
    # scipy warns on near-singular products; finiteness is checked below.
    warnings.simplefilter("ignore", RuntimeWarning)
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
  if not np.isfinite(covmean).all():
    warnings.warn(
      f"FID: the product of covariances is singular; adding {eps} to the diagonals.",
      RuntimeWarning,
      stacklevel=3,
    )
    offset = np.eye(sigma1.shape[0]) * eps
    covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
  if np.iscomplexobj(covmean):
    imaginary = np.max(np.abs(np.diagonal(covmean).imag))
    if imaginary > IMAGINARY_ATOL:
      raise ValueError(
        f"FID: sqrtm of the covariance product has an imaginary component of {imaginary:.3g} "
        f"(> {IMAGINARY_ATOL}); the covariances are ill-conditioned (too few samples for the "
        "feature dimension?). Use more images or method='eigh'."
      )
    covmean = covmean.real
  return float(np.trace(covmean))


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
  values, vectors = np.linalg.eigh(sigma)
  return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def _trace_sqrt_product_eigh(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
  """Tr((S1 S2)^{1/2}) = Σ sqrt(eig(S1^{1/2} S2 S1^{1/2})), a symmetric PSD matrix."""
  root1 = _psd_sqrt(sigma1)
  inner = root1 @ sigma2 @ root1
  values = np.linalg.eigvalsh((inner + inner.T) / 2.0)
  return float(np.sqrt(np.clip(values, 0.0, None)).sum())


def frechet_distance(
  mu1: np.ndarray,
  sigma1: np.ndarray,
  mu2: np.ndarray,
  sigma2: np.ndarray,
  *,
  method: str = "sqrtm",
  eps: float = 1e-6,
) -> float:
  """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

  Args:
    mu1, sigma1, mu2, sigma2: means [D] and covariances [D, D].
    method: 'sqrtm' (pytorch-fid's computation, raises when the matrix square
      root is significantly complex) or 'eigh' (symmetric eigenvalues, stable).
    eps: diagonal offset used by 'sqrtm' when the product is singular.

  Returns:
    The distance (FID when the Gaussians are fitted to Inception features).
  """
  mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
  sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
  sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
    raise ValueError(
      f"shapes do not match: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}."
    )
  if method == "sqrtm":
    trace_covmean = _trace_sqrt_product_sqrtm(sigma1, sigma2, eps)
  elif method == "eigh":
    trace_covmean = _trace_sqrt_product_eigh(sigma1, sigma2)
  else:
    raise ValueError(f"method={method!r} is not one of {METHODS}.")
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_covmean)


def fid_from_stats(a: FeatureStats, b: FeatureStats, **kwargs) -> float:
  """Fréchet distance between two :class:`FeatureStats`."""
  return frechet_distance(a.mu, a.sigma, b.mu, b.sigma, **kwargs)


def fid_from_features(features1: np.ndarray, features2: np.ndarray, **kwargs) -> float:
  """FID between two feature sets ``[N1, D]`` and ``[N2, D]``."""
  return fid_from_stats(feature_statistics(features1), feature_statistics(features2), **kwargs)


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0):
  """``k(x, y) = (x·y / D + coef0) ** degree`` for rows of ``x [n, D]``, ``y [m, D]``."""
  return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3) -> float:
  """Unbiased estimate of MMD² between the rows of ``x`` and ``y`` (polynomial kernel).

  The diagonal terms k(x_i, x_i) are left out of the within-set means, which
  makes the estimator unbiased (it can be slightly negative).
  """
  m, n = len(x), len(y)
  if m < 2 or n < 2:
    raise ValueError(f"MMD² needs at least 2 rows per set, got {m} and {n}.")
  k_xx = polynomial_kernel(x, x, degree)
  k_yy = polynomial_kernel(y, y, degree)
  k_xy = polynomial_kernel(x, y, degree)
  term_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
  term_yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
  return float(term_xx + term_yy - 2.0 * k_xy.mean())


def _weighted_within(k: np.ndarray, w: np.ndarray) -> np.ndarray:
  """Mean of k(x_i, x_j) over pairs of different images, rows of ``w`` = bootstrap counts.

  Pairs of an image with itself (a repeat in the resample) are left out, as
  the diagonal is in :func:`mmd2_unbiased`, so a resample keeps the estimator
  free of the k(x, x) bias.
  """
  diag = np.diagonal(k)
  total = ((w @ k) * w).sum(axis=1) - (w**2) @ diag
  pairs = w.sum(axis=1) ** 2 - (w**2).sum(axis=1)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(pairs > 0, total / np.where(pairs > 0, pairs, 1.0), np.nan)


def kernel_inception_distance(
  features1: np.ndarray,
  features2: np.ndarray,
  *,
  num_bootstrap: int = 200,
  degree: int = 3,
  seed: int = 0,
  confidence: float = 0.95,
) -> dict:
  """KID: the unbiased MMD² of the whole sets, with a bootstrap interval over images.

  The point estimate uses every image (all pairs), the best unbiased estimate
  at this N. Its uncertainty comes from ``num_bootstrap`` resamples of the
  images of each set (with replacement; pairs of one image with itself left
  out): the interval widens as N shrinks, unlike the spread of subsets as
  large as the set itself, which is zero.

  Returns:
    {'mean', 'ci_low', 'ci_high', 'confidence', 'std' (of the resamples),
    'num_bootstrap', 'n_real', 'n_fake'}.
  """
  x = np.asarray(features1, np.float64)
  y = np.asarray(features2, np.float64)
  m, n = len(x), len(y)
  if m < 2 or n < 2:
    raise ValueError(f"KID needs at least 2 features per set, got {m} and {n}.")
  k_xx = polynomial_kernel(x, x, degree)
  k_yy = polynomial_kernel(y, y, degree)
  k_xy = polynomial_kernel(x, y, degree)
  rng = np.random.default_rng(seed)
  u = np.stack([np.bincount(rng.integers(0, m, m), minlength=m) for _ in range(num_bootstrap)])
  v = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(num_bootstrap)])
  u, v = u.astype(np.float64), v.astype(np.float64)
  cross = ((u @ k_xy) * v).sum(axis=1) / (u.sum(axis=1) * v.sum(axis=1))
  values = _weighted_within(k_xx, u) + _weighted_within(k_yy, v) - 2.0 * cross
  tail = 100.0 * (1.0 - confidence) / 2.0
  low, high = np.nanpercentile(values, [tail, 100.0 - tail])
  return {
    "mean": mmd2_unbiased(x, y, degree),
    "ci_low": float(low),
    "ci_high": float(high),
    "confidence": float(confidence),
    "std": float(np.nanstd(values)),
    "num_bootstrap": int(num_bootstrap),
    "n_real": m,
    "n_fake": n,
  }
