"""Memorisation, class consistency, sample-size rules, flare physics and random features."""

from __future__ import annotations

import numpy as np
import pytest

from solar_jax.data import scaling
from solar_jax.evaluation import distribution
from solar_jax.metrics import consistency, memorisation, physics, random_features, sample_size


def test_copies_of_training_images_are_memorised_and_fresh_draws_are_not():
  rng = np.random.default_rng(0)
  train, heldout = rng.normal(size=(300, 8)), rng.normal(size=(100, 8))
  copies = train[rng.choice(300, 60, replace=False)] + rng.normal(scale=1e-4, size=(60, 8))
  fresh = rng.normal(size=(60, 8))
  labels = np.arange(60) % 3
  copied, arrays = memorisation.memorisation(
    copies, train, heldout, generated_labels=labels, class_names=("A", "B", "C")
  )
  assert copied["memorised"] and copied["share"] == 1.0 and copied["count"] == 60
  assert copied["null_share"] == pytest.approx(1 / 101)
  assert copied["per_class"] == {c: {"n": 20, "count": 20} for c in "ABC"}
  assert copied["ratio_generated"]["q50"] < 0.01 < copied["ratio_heldout"]["q05"]
  # The closest pairs point at the training rows that were copied.
  for pair in copied["closest"]:
    assert np.abs(copies[pair["generated"]] - train[pair["train"]]).max() < 1e-3
  assert len(arrays["ratio_generated"]) == 60
  new, _ = memorisation.memorisation(fresh, train, heldout)
  assert not new["memorised"] and new["binomial_pvalue"] > 0.01
  assert new["share"] < 0.1
  assert 0.7 < new["ratio_generated"]["q50"] < 1.4


def test_memorisation_in_pixels_of_images():
  rng = np.random.default_rng(1)
  train = rng.uniform(-1, 1, size=(50, 16, 16, 1))
  heldout = rng.uniform(-1, 1, size=(20, 16, 16, 1))
  out, _ = memorisation.memorisation(train[:10], train, heldout)
  assert out["memorised"] and out["n_train"] == 50 and out["n_heldout"] == 20
  few, _ = memorisation.memorisation(train[:10], train, heldout[:5])
  assert few["not_estimable"] == "held-out M=5 < 10"


def test_class_consistency_of_a_perfect_classifier_and_of_shuffled_labels():
  rng = np.random.default_rng(2)
  names = ("A", "B", "C", "M", "X")
  truth = rng.integers(0, 5, 3000)
  perfect = consistency.class_consistency(truth, truth, names)
  assert perfect["balanced_accuracy"] == 1.0
  assert np.array_equal(np.diag(perfect["confusion"]), np.bincount(truth, minlength=5))
  shuffled = consistency.class_consistency(rng.permutation(truth), truth, names)
  # Labels independent of the images: balanced accuracy at chance (0.2 here).
  assert shuffled["chance"] == pytest.approx(0.2, abs=0.02)
  assert shuffled["balanced_accuracy"] == pytest.approx(shuffled["chance"], abs=0.03)
  for entry in shuffled["per_class"].values():
    assert entry["ci_low"] < 0.2 + 0.05 and entry["ci_high"] > 0.2 - 0.05


def test_class_consistency_with_a_coarser_classifier():
  # A binary ">= M" classifier: A, B, C must be recognised as 0, M and X as 1.
  asked = np.array([0, 1, 2, 3, 4, 3])
  recognised = np.array([0, 0, 1, 1, 1, 0])
  out = consistency.class_consistency(
    asked, recognised, ("A", "B", "C", "M", "X"), ("<M", ">=M"), task_of_class=[0, 0, 0, 1, 1]
  )
  assert [out["per_class"][c]["recall"] for c in "ABCMX"] == [1.0, 1.0, 0.0, 0.5, 1.0]
  assert out["confusion"] == [[1, 0], [1, 0], [0, 1], [1, 1], [0, 1]]


def test_wilson_interval_closed_forms():
  z = consistency.Z95
  low, high = consistency.wilson_interval(0, 10)
  assert low == 0.0 and high == pytest.approx(z**2 / (10 + z**2))
  low, high = consistency.wilson_interval(10, 10)
  assert high == pytest.approx(1.0) and low == pytest.approx(10 / (10 + z**2))
  low, high = consistency.wilson_interval(50, 100)
  assert (low + high) / 2 == pytest.approx(0.5) and high - low < 0.2


def test_sample_size_rules():
  assert sample_size.fid_reason(64, 64) == "N=64 <= D=64"
  assert sample_size.fid_reason(65, 64) is None
  assert sample_size.kid_reason(sample_size.MIN_KID) is None
  assert sample_size.kid_reason(2) is not None
  assert sample_size.neighbours_reason(5, 5) is not None
  assert sample_size.clusters_reason(24, 8) is None and sample_size.clusters_reason(23, 8)
  assert sample_size.ks_reason(30, 4) == "N=4 < 5"


def test_flare_physics_on_constructed_disks():
  size, clip_min, clip_max = 32, 1.0, 3000.0
  disk = physics.disk_mask((size, size))
  quiet = np.where(disk, 100.0, 2.0)
  flaring = quiet.copy()
  flaring[15:17, 15:17] = 5000.0  # A 2x2 kernel, clipped by the transform.
  images = np.stack([quiet] * 6 + [flaring] * 6)[..., None]
  labels = np.array([0] * 6 + [1] * 6)
  assert physics.peak_on_disk(images).tolist() == [100.0] * 6 + [5000.0] * 6
  area = physics.kernel_area(images, 1500.0)
  assert area[-1] == pytest.approx(4 / disk.sum()) and area[0] == 0.0
  # A round trip through the intensity transform clips the kernel at clip_max.
  round_trip = scaling.inverse(scaling.forward(images, clip_min, clip_max), clip_min, clip_max)
  clipped = physics.clipped_fraction(round_trip[6:], clip_min, clip_max)
  assert clipped["high"] == pytest.approx(4 / size**2)
  out = physics.flare_physics_by_class(
    images, labels, round_trip, labels, ("quiet", "flare"),
    threshold=1500.0, clip_min=clip_min, clip_max=clip_max,
  )  # fmt: skip
  flare = out["per_class"]["flare"]
  assert flare["peak_dns"]["median_real"] == 5000.0
  assert flare["peak_dns"]["median_fake"] == pytest.approx(3000.0, rel=1e-4)
  assert flare["peak_dns"]["ks_statistic"] == 1.0
  assert flare["kernel_area"]["ks_statistic"] == 0.0
  # Real pixels above clip_max count as clipped too (the transform clips them).
  assert out["overall"]["clipped_real"]["high"] == pytest.approx(6 * 4 / (12 * size**2))
  assert out["per_class"]["quiet"]["clipped_fake"]["high"] == 0.0


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
