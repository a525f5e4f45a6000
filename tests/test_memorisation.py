"""solar_jax.metrics.memorisation: copies of training images are found, fresh draws are not."""

from __future__ import annotations

import numpy as np
import pytest

from solar_jax.metrics import memorisation


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
