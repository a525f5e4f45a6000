"""solar_jax.metrics.random_features: fixed random projections that keep distances."""

from __future__ import annotations

import numpy as np
import pytest

from solar_jax.metrics import random_features


def test_random_features_are_fixed_and_keep_distances():
  rng = np.random.default_rng(3)
  images = rng.normal(size=(40, 32, 32, 1)).astype(np.float32)
  extract = random_features.make_extractor(256, seed=0)
  a = extract(images)
  assert a.shape == (40, 256)
  np.testing.assert_array_equal(a, random_features.make_extractor(256, seed=0)(images))
  # Entries N(0, 1/P): squared distances scale by dim / P on average (JL).
  pooled = random_features.pool(images)
  p = pooled.shape[1]
  d_pool = ((pooled[:20] - pooled[20:]) ** 2).sum(axis=1)
  d_feat = ((a[:20] - a[20:]) ** 2).sum(axis=1)
  assert np.mean(d_feat / d_pool) == pytest.approx(256 / p, rel=0.15)
