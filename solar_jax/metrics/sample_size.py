"""The sample-size rules: the smallest N at which each evaluation figure is reported.

A figure computed from too few images is not a weak estimate but a different
quantity (FID with N <= D measures the rank deficit of the covariance, not the
distance between distributions), so below its minimum a figure is marked "not
estimable" with the reason, in ``eval/metrics.json`` and in the report, and
never printed as a number. The rules, with N the images per set and D the
feature dimension:

* FID: N > D. The sample covariance of N images has rank N - 1; with N <= D
  it is singular and the matrix square root meaningless.
* KID: N >= MIN_KID. The unbiased MMD² exists from N = 2, but its bootstrap
  interval needs a handful of distinct images to say anything.
* precision / recall / density / coverage: N > nearest_k (the k-th
  neighbour of a point must exist in its own set).
* cluster occupancy: N >= CLUSTER_FACTOR × num_clusters (about that many
  real images per cluster).
* two-sample KS tests of physical quantities: N >= MIN_KS per set.
* memorisation: M >= MIN_HELDOUT held-out images (its null share is
  1 / (M + 1)); per class also a training and a generated image of the
  class, and G, M for which the test can reach alpha at all (its smallest
  p-value, every generated image below the threshold, is 1 / C(G + M, G)).

Figures are only comparable at one N (FID's bias falls as 1/N): every figure
carries its N, and its real-vs-real floor is computed at the same N.
"""

from __future__ import annotations

import math

MIN_KID = 6
MIN_KS = 5
MIN_HELDOUT = 10
CLUSTER_FACTOR = 3

RULES = {
  "fid": "N > D (feature dimension); below, the covariance is singular",
  "kid": f"N >= {MIN_KID} (bootstrap interval)",
  "precision_recall": "N > nearest_k",
  "clusters": f"N >= {CLUSTER_FACTOR} x num_clusters",
  "ks_test": f"N >= {MIN_KS} per set",
  "memorisation": f"held-out M >= {MIN_HELDOUT} (null share 1/(M+1)); per class also "
  "N_train >= 1, G >= 1 and 1/C(G+M, G) < alpha (the test can flag at all)",
  "fid_comparability": "FID's bias falls as 1/N: compare figures only at one N, "
  "against the real-vs-real floor at that N",
}


def fid_reason(n: int, dim: int) -> str | None:
  """Why FID is not estimable for N = n images of dimension ``dim`` (None: it is)."""
  return None if n > dim else f"N={n} <= D={dim}"


def kid_reason(n: int) -> str | None:
  return None if n >= MIN_KID else f"N={n} < {MIN_KID}"


def neighbours_reason(n: int, k: int) -> str | None:
  return None if n > k else f"N={n} <= nearest_k={k}"


def clusters_reason(n: int, num_clusters: int) -> str | None:
  need = CLUSTER_FACTOR * num_clusters
  return None if n >= need else f"N={n} < {CLUSTER_FACTOR} x num_clusters={need}"


def ks_reason(n_real: int, n_fake: int) -> str | None:
  n = min(n_real, n_fake)
  return None if n >= MIN_KS else f"N={n} < {MIN_KS}"


def heldout_reason(m: int) -> str | None:
  return None if m >= MIN_HELDOUT else f"held-out M={m} < {MIN_HELDOUT}"


def memorisation_reason(g: int, n_train: int, m: int, alpha: float) -> str | None:
  """Why one class's class-matched memorisation test is not run (None: it is)."""
  if n_train == 0:
    return "no training images of the class searched (N_train=0)"
  if g == 0:
    return "no generated images of the class (G=0)"
  reason = heldout_reason(m)
  if reason is not None:
    return reason
  smallest = 1.0 / math.comb(g + m, g)
  if smallest >= alpha:
    return f"G={g}, M={m}: the smallest attainable p-value 1/C(G+M, G)={smallest:.2g} >= {alpha:g}"
  return None
