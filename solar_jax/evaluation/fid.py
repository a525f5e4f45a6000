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
mean discrepancy with the cubic polynomial kernel ``k(x, y) = (x·y / D + 1)³``,
averaged over random subsets; it is unbiased (≈ 0 for two samples of one
distribution) where FID is not, so it is the fairer figure at small N.
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


def kernel_inception_distance(
  features1: np.ndarray,
  features2: np.ndarray,
  *,
  num_subsets: int = 100,
  subset_size: int = 1000,
  degree: int = 3,
  seed: int = 0,
) -> dict:
  """KID: unbiased MMD² over random subsets, as mean ± std.

  ``subset_size`` is clipped to the smaller set's size (subsets are drawn
  without replacement within each subset).

  Returns:
    {'mean', 'std', 'num_subsets', 'subset_size'}.
  """
  x = np.asarray(features1, np.float64)
  y = np.asarray(features2, np.float64)
  size = int(min(subset_size, len(x), len(y)))
  if size < 2:
    raise ValueError(f"KID needs at least 2 features per set, got {len(x)} and {len(y)}.")
  rng = np.random.default_rng(seed)
  values = np.empty(num_subsets)
  for i in range(num_subsets):
    xs = x[rng.choice(len(x), size, replace=False)]
    ys = y[rng.choice(len(y), size, replace=False)]
    values[i] = mmd2_unbiased(xs, ys, degree)
  return {
    "mean": float(values.mean()),
    "std": float(values.std()),
    "num_subsets": int(num_subsets),
    "subset_size": size,
  }
