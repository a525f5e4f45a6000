"""solar_jax.metrics.sample_size: when a metric is estimable at a sample size."""

from __future__ import annotations

from solar_jax.metrics import sample_size


def test_sample_size_rules():
  assert sample_size.fid_reason(64, 64) == "N=64 <= D=64"
  assert sample_size.fid_reason(65, 64) is None
  assert sample_size.kid_reason(sample_size.MIN_KID) is None
  assert sample_size.kid_reason(2) is not None
  assert sample_size.neighbours_reason(5, 5) is not None
  assert sample_size.clusters_reason(24, 8) is None and sample_size.clusters_reason(23, 8)
  assert sample_size.ks_reason(30, 4) == "N=4 < 5"
