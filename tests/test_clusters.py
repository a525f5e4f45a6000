"""Cluster occupancy metrics on constructed mixtures."""

from __future__ import annotations

import numpy as np
import pytest

from solar_jax.metrics import clusters

CENTRES = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0], [20.0, 20.0]])
WEIGHTS = np.array([0.4, 0.3, 0.2, 0.1])


def _mixture(rng, n, weights):
  counts = rng.multinomial(n, weights)
  parts = [rng.normal(size=(c, 2)) + centre for c, centre in zip(counts, CENTRES)]
  return np.concatenate(parts)


def _cluster_of(result_kmeans, centre):
  return int(result_kmeans.predict(centre[None])[0])


def test_same_distribution_has_no_missed_or_overfilled_cluster():
  rng = np.random.default_rng(0)
  real, fake = _mixture(rng, 4000, WEIGHTS), _mixture(rng, 4000, WEIGHTS)
  out = clusters.cluster_metrics(real, fake, num_clusters=4, seed=0)
  assert out["missed"] == [] and out["overfilled"] == []
  assert out["js_divergence"] < 1e-3
  assert out["chi2_pvalue"] > 1e-3
  assert sorted(np.array(out["real_counts"]) / 4000) == pytest.approx(sorted(WEIGHTS), abs=0.03)


def test_dropped_mode_is_reported_missed_and_the_rest_overfilled():
  rng = np.random.default_rng(1)
  real = _mixture(rng, 4000, WEIGHTS)
  # The model never makes mode 1 (30 % of the data); its mass goes to mode 3.
  fake = _mixture(rng, 4000, np.array([0.4, 0.0, 0.2, 0.4]))
  out = clusters.cluster_metrics(real, fake, num_clusters=4, seed=0)
  kmeans = clusters.fit_clusters(real, 4, seed=0)
  dropped, boosted = _cluster_of(kmeans, CENTRES[1]), _cluster_of(kmeans, CENTRES[3])
  assert out["missed"] == [dropped]
  assert out["missed_real_mass"] == pytest.approx(0.3, abs=0.03)
  assert out["overfilled"] == [boosted]  # 0.4 vs 0.1: ratio 4 > 2.
  assert out["fake_counts"][dropped] == 0
  # JS divergence of (.4,.3,.2,.1) vs (.4,0,.2,.4), base 2, computed by hand.
  p, q = WEIGHTS, np.array([0.4, 0.0, 0.2, 0.4])
  m = (p + q) / 2

  def kl(a, b):
    return np.sum(np.where(a > 0, a * np.log2(np.where(a > 0, a, 1) / b), 0.0))

  assert out["js_divergence"] == pytest.approx(0.5 * kl(p, m) + 0.5 * kl(q, m), abs=0.03)
  assert out["chi2_pvalue"] < 1e-10


def test_reproducible_with_a_seed_and_clusters_clipped_to_n():
  rng = np.random.default_rng(2)
  real, fake = rng.normal(size=(50, 3)), rng.normal(size=(40, 3))
  a = clusters.cluster_metrics(real, fake, num_clusters=6, seed=3)
  b = clusters.cluster_metrics(real, fake, num_clusters=6, seed=3)
  assert a == b
  assert clusters.cluster_metrics(real[:4], fake, num_clusters=6)["num_clusters"] == 4
  assert sum(a["real_counts"]) == 50 and sum(a["fake_counts"]) == 40
