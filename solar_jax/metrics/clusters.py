"""Cluster occupancy: which kinds of real Sun does the model over- or under-produce?

k-means (scikit-learn) partitions the real features into clusters; each
generated feature is assigned to its nearest real cluster centre. Comparing
the two occupancy histograms shows mode dropping (a cluster with real mass but
no generated samples) and mode collapse (a cluster the model over-fills),
which single-number metrics average away. Reproducible for a given seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
  from sklearn.cluster import KMeans
# scikit-learn and scipy.stats are imported where they are used: together ~2.4 s, paid
# otherwise by every command that imports the pipeline (a training run never clusters).

# A cluster is "missed" when it holds at least this share of the real set and
# the generated share is below MISSED_RATIO times the real share.
MISSED_MIN_REAL_FRACTION = 0.02
MISSED_RATIO = 0.1
# A cluster is "over-filled" when the generated share exceeds this multiple of
# the real share.
OVERFILLED_RATIO = 2.0


def fit_clusters(real_features: np.ndarray, num_clusters: int, seed: int = 0) -> KMeans:
  """k-means on the real features (``num_clusters`` clipped to N)."""
  x = np.asarray(real_features, np.float64)
  k = int(min(num_clusters, len(x)))
  if k < 1:
    raise ValueError(f"num_clusters={num_clusters} and N={len(x)}: need at least one of each.")
  from sklearn.cluster import KMeans

  return KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x)


def occupancy(assignments: np.ndarray, num_clusters: int) -> np.ndarray:
  """Counts per cluster, ``int64 [num_clusters]``."""
  return np.bincount(np.asarray(assignments, np.int64), minlength=num_clusters)


def cluster_metrics(
  real_features: np.ndarray,
  fake_features: np.ndarray,
  num_clusters: int = 20,
  seed: int = 0,
  *,
  missed_min_real_fraction: float = MISSED_MIN_REAL_FRACTION,
  missed_ratio: float = MISSED_RATIO,
  overfilled_ratio: float = OVERFILLED_RATIO,
) -> dict:
  """Occupancy of real k-means clusters by real and generated features.

  Returns a dict with:
    real_counts, fake_counts: per-cluster counts (lists of int);
    js_divergence: Jensen-Shannon divergence of the two occupancy
      distributions, base 2 (0 = identical, 1 = disjoint);
    chi2, chi2_pvalue, chi2_dof: chi-squared test of homogeneity of the 2×K
      count table (clusters empty in both sets left out);
    missed: clusters with real share >= missed_min_real_fraction whose
      generated share is < missed_ratio × the real share;
    overfilled: clusters whose generated share > overfilled_ratio × real share;
    missed_real_mass: total real share of the missed clusters;
    num_clusters, num_real, num_fake, seed.
  """
  real = np.asarray(real_features, np.float64)
  fake = np.asarray(fake_features, np.float64)
  kmeans = fit_clusters(real, num_clusters, seed)
  k = kmeans.n_clusters
  real_counts = occupancy(kmeans.labels_, k)
  fake_counts = occupancy(kmeans.predict(fake), k)
  p_real = real_counts / real_counts.sum()
  p_fake = fake_counts / fake_counts.sum()

  import scipy.spatial.distance
  import scipy.stats

  js = float(scipy.spatial.distance.jensenshannon(p_real, p_fake, base=2) ** 2)
  table = np.stack([real_counts, fake_counts])
  table = table[:, table.sum(axis=0) > 0]
  if table.shape[1] >= 2:
    chi2, pvalue, dof, _ = scipy.stats.chi2_contingency(table)
  else:  # One occupied cluster: the two histograms cannot differ.
    chi2, pvalue, dof = 0.0, 1.0, 0

  missed = np.flatnonzero((p_real >= missed_min_real_fraction) & (p_fake < missed_ratio * p_real))
  with np.errstate(divide="ignore", invalid="ignore"):
    ratio = np.where(p_real > 0, p_fake / p_real, np.inf)
  overfilled = np.flatnonzero((ratio > overfilled_ratio) & (p_fake > 0))
  return {
    "num_clusters": int(k),
    "num_real": len(real),
    "num_fake": len(fake),
    "seed": int(seed),
    "real_counts": real_counts.tolist(),
    "fake_counts": fake_counts.tolist(),
    "js_divergence": js,
    "chi2": float(chi2),
    "chi2_pvalue": float(pvalue),
    "chi2_dof": int(dof),
    "missed": missed.tolist(),
    "missed_real_mass": float(p_real[missed].sum()),
    "overfilled": overfilled.tolist(),
    "thresholds": {
      "missed_min_real_fraction": missed_min_real_fraction,
      "missed_ratio": missed_ratio,
      "overfilled_ratio": overfilled_ratio,
    },
  }
