"""solar_jax.metrics.memorisation: an exact null, class-matched tests, copies found, fresh draws not."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from solar_jax.metrics import memorisation

NAMES = ("A", "B", "C", "M", "X")


def test_copies_of_training_images_are_memorised_and_fresh_draws_are_not():
  rng = np.random.default_rng(0)
  train, heldout = rng.normal(size=(300, 8)), rng.normal(size=(100, 8))
  copies = train[rng.choice(300, 60, replace=False)] + rng.normal(scale=1e-4, size=(60, 8))
  fresh = rng.normal(size=(60, 8))
  copied, arrays = memorisation.memorisation(copies, train, heldout)
  assert copied["memorised"] and copied["share"] == 1.0 and copied["count"] == 60
  assert copied["null_share"] == pytest.approx(1 / 101)
  # K = G = 60 of G + M = 160: p = 1 / C(160, 60).
  assert copied["pvalue"] == pytest.approx(1 / math.comb(160, 60), rel=1e-6)
  assert copied["ratio_generated"]["q50"] < 0.01 < copied["ratio_heldout"]["q05"]
  # The closest pairs point at the training rows that were copied.
  for pair in copied["closest"]:
    assert np.abs(copies[pair["generated"]] - train[pair["train"]]).max() < 1e-3
  assert len(arrays["ratio_generated"]) == 60
  assert copied["class_matched"] == {"not_estimable": "class labels of every set are needed"}
  new, _ = memorisation.memorisation(fresh, train, heldout)
  assert not new["memorised"] and new["pvalue"] > 0.01
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


@pytest.mark.parametrize("g, m", [(1, 10), (150, 50), (40, 15), (7, 300)])
def test_the_null_is_the_rank_distribution_of_exchangeable_sets(g, m):
  # K >= k iff the k smallest of G + M exchangeable distances are all generated:
  # C(G, k) / C(G + M, k), which is the Beta-Binomial(G, 1, M) tail the code uses.
  for k in range(0, g + 1, max(1, g // 7)):
    exact = math.comb(g, k) / math.comb(g + m, k)
    assert memorisation.pvalue(k, g, m) == pytest.approx(exact, rel=1e-9, abs=1e-300)
    # scipy's Beta-Binomial tail, to its own precision (it loses digits far out).
    scipy_sf = scipy.stats.betabinom.sf(k - 1, g, 1, m)
    assert memorisation.pvalue(k, g, m) == pytest.approx(scipy_sf, rel=1e-6)
  pmf = memorisation.null_pmf(g, m)
  np.testing.assert_allclose(pmf, scipy.stats.betabinom.pmf(np.arange(g + 1), g, 1, m), rtol=1e-6)
  assert pmf.sum() == pytest.approx(1.0)
  tails = [memorisation.pvalue(k, g, m) for k in range(g + 1)]
  np.testing.assert_allclose(np.cumsum(pmf[::-1])[::-1], tails, rtol=1e-9)


def _false_alarms(runs, m, g, rng, test="exact"):
  """Copy-free runs (i.i.d. Gaussian sets) flagged at alpha = 0.01."""
  flags = 0
  for _ in range(runs):
    train = rng.normal(size=(100, 4))
    gen, held = rng.normal(size=(g, 4)), rng.normal(size=(m, 4))
    if test == "exact":
      flags += memorisation.memorisation(gen, train, held)[0]["memorised"]
    else:  # The binomial(G, 1/(M+1)) test this module used before.
      out, _ = memorisation.memorisation(gen, train, held)
      p = scipy.stats.binomtest(out["count"], g, 1 / (m + 1), alternative="greater").pvalue
      flags += p < 0.01
  return flags


@pytest.mark.parametrize("m, g", [(50, 150), (200, 150), (1000, 150), (20, 40)])
def test_no_copying_false_alarm_rate_stays_at_alpha(m, g):
  runs, rng = 300, np.random.default_rng(m * 7 + g)
  flags = _false_alarms(runs, m, g, rng)
  # The exact size of the test (discrete: at most alpha) ...
  pmf = memorisation.null_pmf(g, m)
  tails = np.cumsum(pmf[::-1])[::-1]  # P(K >= k)
  size = float(tails[tails < 0.01].max(initial=0.0))
  assert size <= 0.01
  # ... and the simulated rate is within what a rate of alpha allows (99.9 % bound).
  bound = scipy.stats.binom.ppf(0.999, runs, 0.01)
  assert flags <= bound, (flags, runs)


def test_the_binomial_test_it_replaces_raises_false_alarms():
  # The same check fails for the old binomial test (about 12 % at M = 50, G = 150).
  runs = 300
  flags = _false_alarms(runs, 50, 150, np.random.default_rng(3), test="binomial")
  assert flags > scipy.stats.binom.ppf(0.999, runs, 0.01)


def _classes(rng, sizes, centres):
  """Gaussian features per class (class c around centres[c]), with their labels."""
  labels = np.repeat(np.arange(len(sizes)), sizes)
  return centres[labels] + rng.normal(size=(len(labels), centres.shape[1])), labels


def test_a_rare_class_that_copies_one_training_image_is_flagged_in_its_class():
  rng = np.random.default_rng(5)
  centres = 3.0 * rng.normal(size=(5, 8))
  train, train_labels = _classes(rng, [400, 400, 300, 200, 45], centres)
  held, held_labels = _classes(rng, [200, 200, 100, 60, 15], centres)
  gen, gen_labels = _classes(rng, [60, 60, 60, 60, 20], centres)
  # The generator returns one of the 45 X training images for 12 of its 20 X samples.
  x_train = np.flatnonzero(train_labels == 4)
  copied = x_train[17]
  x_gen = np.flatnonzero(gen_labels == 4)[:12]
  gen[x_gen] = train[copied] + 1e-3 * rng.normal(size=(12, 8))
  out, _ = memorisation.memorisation(
    gen, train, held, generated_labels=gen_labels, train_labels=train_labels,
    heldout_labels=held_labels, class_names=NAMES,
  )  # fmt: skip
  x = out["per_class"]["X"]
  assert (x["n_generated"], x["n_train"], x["n_heldout"]) == (20, 45, 15)
  assert x["count"] >= 12
  assert x["pvalue"] == pytest.approx(memorisation.pvalue(x["count"], 20, 15))
  assert x["memorised"] and x["pvalue_holm"] < 0.01
  for name in "ABCM":
    assert not out["per_class"][name]["memorised"], out["per_class"][name]
  assert out["class_matched"]["tested"] == list(NAMES)
  assert out["class_matched"]["combined"]["memorised"]
  # The p-values are Holm-adjusted over the five tested classes.
  raw = [out["per_class"][c]["pvalue"] for c in NAMES]
  adjusted = [out["per_class"][c]["pvalue_holm"] for c in NAMES]
  np.testing.assert_allclose(adjusted, memorisation.holm(raw))
  assert min(adjusted) == pytest.approx(min(1.0, 5 * min(raw)))


def test_classes_too_small_to_test_are_not_estimable_with_a_reason():
  rng = np.random.default_rng(6)
  centres = 3.0 * rng.normal(size=(5, 8))
  train, train_labels = _classes(rng, [100, 100, 0, 50, 45], centres)
  held, held_labels = _classes(rng, [60, 60, 30, 5, 10], centres)
  gen, gen_labels = _classes(rng, [20, 0, 20, 20, 1], centres)
  out, _ = memorisation.memorisation(
    gen, train, held, generated_labels=gen_labels, train_labels=train_labels,
    heldout_labels=held_labels, class_names=NAMES,
  )  # fmt: skip
  per = out["per_class"]
  assert per["B"]["not_estimable"] == "no generated images of the class (G=0)"
  assert per["C"]["not_estimable"] == "no training images of the class searched (N_train=0)"
  assert per["M"]["not_estimable"] == "held-out M=5 < 10"
  # One X sample against 10 held-out: even a copy gives p = 1/11 at best.
  assert per["X"]["not_estimable"].startswith("G=1, M=10: the smallest attainable p-value")
  assert all("pvalue" not in per[c] for c in "BCMX")
  assert out["class_matched"]["tested"] == ["A"]
  assert per["A"]["pvalue_holm"] == per["A"]["pvalue"]


def test_class_matched_tests_hold_alpha_over_the_family():
  # Copy-free runs with five classes: Holm keeps the chance that any class is flagged at
  # alpha, and the combined count's convolution null keeps its own rate at alpha.
  runs, rng = 200, np.random.default_rng(8)
  centres = 3.0 * rng.normal(size=(5, 4))
  any_flag = combined = 0
  for _ in range(runs):
    train, tl = _classes(rng, [80, 80, 60, 40, 20], centres)
    held, hl = _classes(rng, [60, 60, 40, 20, 12], centres)
    gen, gl = _classes(rng, [40, 40, 40, 40, 20], centres)
    out, _ = memorisation.memorisation(
      gen, train, held, generated_labels=gl, train_labels=tl, heldout_labels=hl,
      class_names=NAMES,
    )  # fmt: skip
    any_flag += any(out["per_class"][c]["memorised"] for c in NAMES)
    combined += out["class_matched"]["combined"]["memorised"]
  bound = scipy.stats.binom.ppf(0.999, runs, 0.01)
  assert any_flag <= bound and combined <= bound, (any_flag, combined)


def test_holm_against_a_hand_worked_example():
  # Sorted p 0.01, 0.02, 0.03, 0.5 -> 4 x 0.01, 3 x 0.02, max(0.06, 2 x 0.03), 0.5 (monotone).
  np.testing.assert_allclose(memorisation.holm([0.03, 0.5, 0.01, 0.02]), [0.06, 0.5, 0.04, 0.06])


def test_training_subset_searches_rare_classes_whole_and_samples_the_rest_at_random():
  labels = np.r_[np.zeros(500, int), np.ones(300, int), np.full(45, 4)]
  labels = labels[np.random.default_rng(9).permutation(labels.size)]
  idx, record = memorisation.training_subset(labels, 200, seed=3, class_names=NAMES)
  assert (np.diff(idx) > 0).all()
  assert np.bincount(labels[idx], minlength=5).tolist() == [200, 200, 0, 0, 45]
  assert record["per_class"]["X"] == {"available": 45, "searched": 45}
  assert record["per_class"]["A"] == {"available": 500, "searched": 200}
  assert (record["searched"], record["seed"], record["per_class_cap"]) == (445, 3, 200)
  # Seeded: the same seed gives the same subset, another seed another one.
  assert np.array_equal(idx, memorisation.training_subset(labels, 200, seed=3)[0])
  assert not np.array_equal(idx, memorisation.training_subset(labels, 200, seed=4)[0])
  # Uniform, not the first in stored order: over many seeds every A frame is chosen
  # with probability 200/500 (mean count 0.4 x seeds, binomial spread).
  hits = np.zeros(labels.size)
  for seed in range(200):
    hits[memorisation.training_subset(labels, 200, seed=seed)[0]] += 1
  a = labels == 0
  assert hits[a].mean() == pytest.approx(0.4 * 200)
  assert abs(hits[a][:250].mean() - hits[a][250:].mean()) < 3 * np.sqrt(2 * 48 / 250)
