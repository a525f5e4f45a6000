"""Precision/recall and density/coverage on constructed cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.spatial.distance

from solar_jax.metrics import precision_recall as pr

K = 5


def _brute_force(real, fake, k):
  """Independent computation with scipy's cdist and full sorts."""
  d_rr = scipy.spatial.distance.cdist(real, real)
  d_ff = scipy.spatial.distance.cdist(fake, fake)
  d_fr = scipy.spatial.distance.cdist(fake, real)
  r_real = np.sort(d_rr, axis=1)[:, k]
  r_fake = np.sort(d_ff, axis=1)[:, k]
  inside = d_fr <= r_real[None, :]  # [fake, real]
  return {
    "precision": inside.any(axis=1).mean(),
    "recall": (d_fr.T <= r_fake[None, :]).any(axis=1).mean(),
    "density": inside.sum() / (k * len(fake)),
    "coverage": inside.any(axis=0).mean(),
  }


def test_chunked_computation_matches_brute_force():
  rng = np.random.default_rng(0)
  real = rng.normal(size=(120, 6))
  fake = rng.normal(size=(90, 6)) * 1.3 + 0.4
  got = pr.prdc(real, fake, k=3, chunk=17)  # Chunks that do not divide N.
  expected = _brute_force(real, fake, 3)
  for key, value in expected.items():
    assert got[key] == pytest.approx(value, abs=1e-12), key
  np.testing.assert_allclose(
    pr.pairwise_distances(real, fake, chunk=7), scipy.spatial.distance.cdist(real, fake), atol=1e-9
  )


def test_identical_sets_score_one():
  x = np.random.default_rng(1).normal(size=(300, 4))
  out = pr.prdc(x, x, k=K)
  assert out["precision"] == 1.0
  assert out["recall"] == 1.0
  assert out["coverage"] == 1.0


def test_two_samples_of_one_distribution():
  rng = np.random.default_rng(2)
  real, fake = rng.normal(size=(3000, 3)), rng.normal(size=(3000, 3))
  out = pr.prdc(real, fake, k=K)
  assert out["precision"] > 0.9 and out["recall"] > 0.9
  # Naeem et al. 2020: E[density] = 1 and E[coverage] = 1 - 2^-k for equal sizes.
  assert out["density"] == pytest.approx(1.0, abs=0.08)
  assert out["coverage"] == pytest.approx(1.0 - 2.0**-K, abs=0.02)


def test_disjoint_sets_score_zero():
  rng = np.random.default_rng(3)
  real = rng.normal(size=(400, 5))
  fake = rng.normal(size=(400, 5)) + 100.0
  out = pr.prdc(real, fake, k=K)
  assert out == {**out, "precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_dropped_mode_lowers_recall_by_its_mass_not_precision():
  rng = np.random.default_rng(4)
  n, d, mass_b = 3000, 3, 0.3
  n_b = int(mass_b * n)
  mode_b = np.zeros(d)
  mode_b[0] = 50.0
  real = np.concatenate([rng.normal(size=(n - n_b, d)), rng.normal(size=(n_b, d)) + mode_b])
  fake = rng.normal(size=(n, d))  # Only mode A.
  out = pr.prdc(real, fake, k=K)
  assert out["precision"] > 0.9
  assert out["recall"] == pytest.approx(1.0 - mass_b, abs=0.04)
  assert out["coverage"] == pytest.approx((1.0 - mass_b) * (1.0 - 2.0**-K), abs=0.04)


def test_knn_radius_is_the_kth_other_point():
  x = np.arange(10.0)[:, None]  # Points on a line, unit spacing.
  radii = pr.knn_radii(x, k=2)
  # Interior points have neighbours at distance 1 on each side: 2nd NN at 1;
  # the end points' 2nd neighbour is 2 away.
  np.testing.assert_allclose(radii, [2, 1, 1, 1, 1, 1, 1, 1, 1, 2])
  with pytest.raises(ValueError, match="nearest_k=10"):
    pr.knn_radii(x, k=10)
