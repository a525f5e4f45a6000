"""solar_jax.metrics.consistency: class consistency of generated images, Wilson intervals."""

from __future__ import annotations

import numpy as np
import pytest

from solar_jax.metrics import consistency


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
