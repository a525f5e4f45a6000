"""solar_jax.evaluation.distribution: the floor of two samples of one distribution."""

from __future__ import annotations

import numpy as np

from solar_jax.evaluation import distribution


def test_floor_of_two_gaussian_samples_matches_the_analytic_fid_bias():
  # The floor path (selection, class-mix matching, pair metrics) on real and
  # reference sets that are two samples of one Gaussian: E FID = 2D/n + D(D+1)/(2(n-1))
  # (tests/test_fid.py derives it); KID's floor is 0 in expectation.
  from solar_jax.configs import tiny

  config = tiny.get_config()
  config.evaluation.num_images = 150
  config.evaluation.kid_bootstrap = 20
  d, n, reps = 6, 150, 30
  fids, kids = [], []
  rng = np.random.default_rng(9)
  for _ in range(reps):
    labels = rng.integers(0, 3, 450)
    real_labels, ref_labels, fake_labels = labels[:150], labels[150:300], labels[300:]
    sel = distribution.select(config, real_labels, fake_labels, ref_labels, rng)
    feats = {
      "real": rng.normal(size=(150, d)),
      "reference": rng.normal(size=(150, d)),
      "fake": rng.normal(size=(150, d)) + 1.0,
    }
    out = distribution.space_metrics(config, feats, sel, d)
    floor = out["overall"]["floor"]
    assert floor["n"] == out["overall"]["n"] == n  # The floor is at the same N.
    fids.append(floor["fid"])
    kids.append(floor["kid"]["mean"])
    assert out["overall"]["fid"] > 10 * floor["fid"]  # A unit shift: FID about D = 6.
    for name in ("A", "B", "C"):
      entry = out["per_class"][name]
      assert entry["floor"]["n"] == min(entry["n"], int((ref_labels == "ABC".index(name)).sum()))
  expected = 2 * d / n + d * (d + 1) / (2 * (n - 1))
  assert abs(np.mean(fids) - expected) < 4 * np.std(fids) / np.sqrt(reps)
  assert abs(np.mean(kids)) < 4 * np.std(kids) / np.sqrt(reps)
