"""Improved precision/recall and density/coverage of generated features.

Both estimate each set's manifold by k-nearest-neighbour balls in feature
space:

* precision and recall (Kynkäänniemi et al. 2019): a generated sample is
  precise when it falls inside the ball of some real sample (radius = the
  distance to that real sample's k-th real neighbour); recall is the same
  question with the roles swapped. Precision falls when samples leave the data
  manifold, recall when modes of the data are missing.
* density and coverage (Naeem et al. 2020): density counts, per generated
  sample, how many real balls contain it (divided by k; its expectation is 1
  for identical distributions and it is not capped at 1); coverage is the
  fraction of real balls that contain at least one generated sample
  (``1 - 2^-k`` in expectation for identical distributions of equal size).

Distances are computed in float64 in row chunks, so memory stays at
``chunk × N`` whatever the set sizes.
"""

from __future__ import annotations

import numpy as np

DEFAULT_CHUNK = 1024


def _squared_norms(x: np.ndarray) -> np.ndarray:
  return np.einsum("ij,ij->i", x, x)


def _distance_chunks(a: np.ndarray, b: np.ndarray, chunk: int):
  """Yields (start, distances [chunk, len(b)]) between rows of ``a`` and ``b``."""
  b_norms = _squared_norms(b)
  for start in range(0, len(a), chunk):
    block = a[start : start + chunk]
    d2 = _squared_norms(block)[:, None] + b_norms[None, :] - 2.0 * block @ b.T
    yield start, np.sqrt(np.clip(d2, 0.0, None))


def pairwise_distances(a: np.ndarray, b: np.ndarray, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
  """Euclidean distances ``[len(a), len(b)]`` (float64); for small sets and tests."""
  a, b = _as_features(a), _as_features(b)
  out = np.empty((len(a), len(b)))
  for start, d in _distance_chunks(a, b, chunk):
    out[start : start + len(d)] = d
  return out


def knn_radii(features: np.ndarray, k: int, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
  """Distance from each row to its k-th nearest other row of the same set."""
  x = _as_features(features)
  if not 1 <= k < len(x):
    raise ValueError(f"nearest_k={k} must lie in [1, N-1] for a set of N={len(x)} features.")
  radii = np.empty(len(x))
  for start, d in _distance_chunks(x, x, chunk):
    # Each row's smallest distance is to itself (0); the (k+1)-th smallest is
    # then its k-th neighbour, as in the reference implementations.
    radii[start : start + len(d)] = np.partition(d, k, axis=1)[:, k]
  return radii


def _as_features(x) -> np.ndarray:
  x = np.asarray(x, dtype=np.float64)
  if x.ndim != 2:
    raise ValueError(f"features must have shape [N, D], got {x.shape}.")
  return x


def as_matrix(x) -> np.ndarray:
  """``x`` as float64 ``[N, D]`` (images ``[N, H, W, C]`` are flattened)."""
  x = np.asarray(x, dtype=np.float64)
  return _as_features(x.reshape(len(x), -1) if x.ndim > 2 else x)


def nearest_neighbour(queries, references, chunk: int = DEFAULT_CHUNK):
  """Distance to, and index of, each query's nearest reference row.

  Args:
    queries, references: ``[Q, D]`` and ``[R >= 1, D]`` (or images, flattened).

  Returns:
    (distances float64 [Q], indices int64 [Q] into ``references``).
  """
  q, r = as_matrix(queries), as_matrix(references)
  if len(r) == 0:
    raise ValueError("nearest_neighbour needs at least one reference row.")
  dist, index = np.empty(len(q)), np.empty(len(q), np.int64)
  for start, d in _distance_chunks(q, r, chunk):
    index[start : start + len(d)] = d.argmin(axis=1)
    dist[start : start + len(d)] = d.min(axis=1)
  return dist, index


def _fraction_inside(
  queries: np.ndarray, centres: np.ndarray, radii: np.ndarray, chunk: int
) -> np.ndarray:
  """Per query: does it lie in some ball (centre_j, radius_j)? -> bool [len(queries)]."""
  inside = np.empty(len(queries), dtype=bool)
  for start, d in _distance_chunks(queries, centres, chunk):
    inside[start : start + len(d)] = (d <= radii[None, :]).any(axis=1)
  return inside


def precision_recall(
  real_features: np.ndarray,
  fake_features: np.ndarray,
  k: int = 5,
  chunk: int = DEFAULT_CHUNK,
  real_radii: np.ndarray | None = None,
) -> dict:
  """Improved precision and recall (Kynkäänniemi et al. 2019).

  ``real_radii`` (from :func:`knn_radii`) may be passed to reuse them.

  Returns:
    {'precision', 'recall', 'nearest_k', 'num_real', 'num_fake'}.
  """
  real, fake = _as_features(real_features), _as_features(fake_features)
  real_radii = knn_radii(real, k, chunk) if real_radii is None else real_radii
  fake_radii = knn_radii(fake, k, chunk)
  precision = _fraction_inside(fake, real, real_radii, chunk).mean()
  recall = _fraction_inside(real, fake, fake_radii, chunk).mean()
  return {
    "precision": float(precision),
    "recall": float(recall),
    "nearest_k": int(k),
    "num_real": len(real),
    "num_fake": len(fake),
  }


def density_coverage(
  real_features: np.ndarray,
  fake_features: np.ndarray,
  k: int = 5,
  chunk: int = DEFAULT_CHUNK,
  real_radii: np.ndarray | None = None,
) -> dict:
  """Density and coverage (Naeem et al. 2020), with real k-NN balls only.

  Returns:
    {'density', 'coverage', 'nearest_k', 'num_real', 'num_fake'}.
  """
  real, fake = _as_features(real_features), _as_features(fake_features)
  real_radii = knn_radii(real, k, chunk) if real_radii is None else real_radii
  # Count, per generated sample, the real balls that contain it; and per real
  # ball, its nearest generated sample (coverage). One pass over fake chunks.
  balls_containing = 0
  nearest_fake = np.full(len(real), np.inf)
  for _, d in _distance_chunks(fake, real, chunk):
    balls_containing += int((d <= real_radii[None, :]).sum())
    np.minimum(nearest_fake, d.min(axis=0), out=nearest_fake)
  density = balls_containing / (k * len(fake))
  coverage = (nearest_fake <= real_radii).mean()
  return {
    "density": float(density),
    "coverage": float(coverage),
    "nearest_k": int(k),
    "num_real": len(real),
    "num_fake": len(fake),
  }


def prdc(real_features, fake_features, k: int = 5, chunk: int = DEFAULT_CHUNK) -> dict:
  """Precision, recall, density and coverage in one dict (real radii computed once)."""
  real_radii = knn_radii(real_features, k, chunk)
  out = precision_recall(real_features, fake_features, k, chunk, real_radii)
  out.update(density_coverage(real_features, fake_features, k, chunk, real_radii))
  return out
