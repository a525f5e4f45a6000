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


def test_a_rare_class_is_compared_with_every_unseen_frame_of_it():
  """Per class against the unseen pool: a rare class uses all of its unseen frames (n =
  min(unseen, generated, num_images)), each entry is pair_metrics of those sets, and a
  shifted class scores a larger KID than a matching one."""
  from solar_jax.configs import tiny

  config = tiny.get_config()
  config.evaluation.num_images, config.evaluation.kid_bootstrap = 40, 10
  rng = np.random.default_rng(3)
  unseen_labels = np.repeat([0, 1, 2, 3, 4], [60, 60, 60, 25, 7])  # X: 7 unseen frames
  fake_labels = np.repeat([0, 1, 2, 3, 4], [30, 30, 30, 30, 30])
  d = 4
  feats = {
    "unseen": rng.normal(size=(len(unseen_labels), d)),
    "fake": rng.normal(size=(len(fake_labels), d)) + (fake_labels == 3)[:, None] * 2.0,
  }
  labels = {"unseen": unseen_labels, "fake": fake_labels}
  out = distribution.unseen_per_class(config, feats, labels, d, np.random.default_rng(0))
  assert [out[c]["n"] for c in "ABCMX"] == [30, 30, 30, 25, 7]
  assert out["X"]["n_real_available"] == 7 and out["X"]["n_generated_available"] == 30
  assert "kid_not_estimable" not in out["M"] and "not_estimable" not in out["X"]
  assert out["M"]["kid"]["mean"] > 10 * abs(out["A"]["kid"]["mean"])  # M shifted by 2.
  # The X entry is pair_metrics of all seven unseen X frames and 7 of the X samples.
  again = np.random.default_rng(0)
  for i in range(4):  # The draws of the classes before X, as unseen_per_class makes them.
    m = min(int((unseen_labels == i).sum()), 30, 40)
    again.choice(np.flatnonzero(unseen_labels == i), m, replace=False)
    again.choice(np.flatnonzero(fake_labels == i), m, replace=False)
  again.choice(np.flatnonzero(unseen_labels == 4), 7, replace=False)
  f = np.sort(again.choice(np.flatnonzero(fake_labels == 4), 7, replace=False))
  want = distribution.pair_metrics(
    feats["unseen"][unseen_labels == 4], feats["fake"][f], dim=d, config=config
  )
  assert out["X"]["kid"] == want["kid"] and out["X"]["precision"] == want["precision"]
