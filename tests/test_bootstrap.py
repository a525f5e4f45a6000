"""The paired group bootstrap: agreement with scikit-learn, resampling by event, pairing."""

import json

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, f1_score

from solar_jax import errors
from solar_jax.classifier import experiment
from solar_jax.classifier import folds as folds_lib
from solar_jax.metrics import bootstrap, classification

NAMES = ("A", "B", "C", "M", "X")


def _predictor(n, seed, accuracy=0.6):
  """Labels of five classes and a fixed predictor that is right with probability ``accuracy``."""
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 5, n)
  pred = np.where(rng.random(n) < accuracy, y, rng.integers(0, 5, n))
  return y, pred


def test_scores_of_confusions_agree_with_classification_metrics():
  y, pred = _predictor(300, 0)
  scores = bootstrap.headline_scores(y, pred, np.ones((1, 300)), 5, {"ge_m": 3, "ge_c": 2})
  m = classification.classification_metrics(y, pred, NAMES, thresholds={">=M": 3, ">=C": 2})
  assert scores["macro_f1"][0] == pytest.approx(m["macro_f1"])
  assert scores["tss"][0] == pytest.approx(m["tss"])
  assert scores["tss_ge_m"][0] == pytest.approx(m["thresholds"][">=M"]["tss"])
  assert scores["tss_ge_c"][0] == pytest.approx(m["thresholds"][">=C"]["tss"])
  # Integer weights are repeated frames: the same as scoring the repeated arrays.
  w = np.random.default_rng(1).integers(0, 4, 300)
  again = classification.classification_metrics(np.repeat(y, w), np.repeat(pred, w), NAMES)
  weighted = bootstrap.headline_scores(y, pred, w[None].astype(float), 5, {})
  assert weighted["macro_f1"][0] == pytest.approx(again["macro_f1"])
  assert weighted["tss"][0] == pytest.approx(again["tss"])


def test_interval_of_a_fixed_predictor_matches_sklearn_resampling():
  n, b, seed = 120, 300, 4
  y, pred = _predictor(n, 2)
  groups = [f"frame{i:04d}" for i in range(n)]  # One frame per event: codes = frame order.
  out = bootstrap.summarize(
    y, groups, {"real": {(0, 0): {"pred": pred}}}, NAMES, num_samples=b, seed=seed
  )
  # The same draws, scored by scikit-learn on the resampled arrays.
  rng = np.random.default_rng([seed, 20260])
  draws = rng.integers(0, n, (b, n))
  f1 = [
    f1_score(y[d], pred[d], labels=np.unique(y[d]), average="macro", zero_division=0) for d in draws
  ]
  score = out["regimes"]["real"]["scores"]["macro_f1"]
  np.testing.assert_allclose(score["ci95"], np.percentile(f1, [2.5, 97.5]), rtol=1e-10)
  assert score["mean"] == pytest.approx(f1_score(y, pred, average="macro"))


def test_accuracy_like_interval_matches_the_analytic_binomial_width():
  # Two classes, a predictor right on a fraction p of N independent frames: the TSS
  # of a predictor that is right on every positive and on a fraction q of the negatives is
  # q (recall 1, false-alarm rate 1-q) with standard error sqrt(q (1-q) / N_neg).
  n_pos, n_neg, q = 400, 1600, 0.8
  y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
  pred = np.r_[np.ones(n_pos, int), (np.arange(n_neg) >= q * n_neg).astype(int)]
  groups = [f"f{i:05d}" for i in range(y.size)]
  out = bootstrap.summarize(y, groups, {"r": {(0, 0): {"pred": pred}}}, ("<M", ">=M"), seed=1)
  tss = out["regimes"]["r"]["scores"]["tss"]
  assert tss["mean"] == pytest.approx(q)
  analytic = 2 * 1.96 * np.sqrt(q * (1 - q) / n_neg)
  assert tss["ci95"][1] - tss["ci95"][0] == pytest.approx(analytic, rel=0.15)


def test_frames_of_one_event_move_together():
  codes, names = bootstrap.group_codes([b"flare1", "day:2014-01-01", "flare1", "flare2"])
  assert list(names) == ["day:2014-01-01", "flare1", "flare2"]
  rng = np.random.default_rng(0)
  counts = bootstrap.draw_counts(bootstrap.group_draws(3, 200, rng), 3)
  assert (counts.sum(1) == 3).all()
  w = bootstrap.frame_weights(codes, counts)
  np.testing.assert_array_equal(w[:, 0], w[:, 2])  # The two frames of flare1.
  # Doubling every event's frames changes nothing (the events are the units), while
  # counting the copies as separate events narrows the interval.
  y, pred = _predictor(60, 3)
  groups = [f"e{i:03d}" for i in range(60)]
  runs = {"r": {(0, 0): {"pred": pred}}}
  once = bootstrap.summarize(y, groups, runs, NAMES, seed=2)
  runs2 = {"r": {(0, 0): {"pred": np.r_[pred, pred]}}}
  twice = bootstrap.summarize(np.r_[y, y], groups + groups, runs2, NAMES, seed=2)
  assert twice["support"]["events"] == 60 and twice["support"]["frames"] == 120
  np.testing.assert_allclose(
    twice["regimes"]["r"]["scores"]["macro_f1"]["ci95"],
    once["regimes"]["r"]["scores"]["macro_f1"]["ci95"],
  )
  as_frames = [f"x{i:03d}" for i in range(120)]
  naive = bootstrap.summarize(np.r_[y, y], as_frames, runs2, NAMES, seed=2)
  width = lambda o: np.diff(o["regimes"]["r"]["scores"]["macro_f1"]["ci95"])[0]  # noqa: E731
  assert width(naive) < 0.85 * width(once)


def test_paired_difference_of_a_regime_with_itself_is_exactly_zero():
  y, p1 = _predictor(80, 5)
  _, p2 = _predictor(80, 6)
  groups = [f"g{i // 3}" for i in range(80)]
  same = {(0, 0): {"pred": p1}, (1, 0): {"pred": p2}}
  runs = {
    "oversample": same,
    "copy": dict(same),
    "real": {(0, 0): {"pred": p2}, (1, 0): {"pred": p1}},
  }
  out = bootstrap.summarize(y, groups, runs, NAMES, thresholds={"ge_m": 3}, num_samples=400)
  for regime in ("copy", "oversample"):
    for name, delta in out["regimes"][regime]["delta_vs_oversample"].items():
      assert delta["mean"] == 0.0 and delta["ci95"] == [0.0, 0.0], (regime, name)
      assert delta["includes_zero"] is True
  # Unpaired would be wider: real and oversample hold the same two runs, seed-swapped,
  # so their difference is not zero in every resample but averages to about zero.
  delta = out["regimes"]["real"]["delta_vs_oversample"]["macro_f1"]
  assert delta["mean"] == pytest.approx(0.0, abs=1e-12)
  assert delta["ci95"][0] < 0 < delta["ci95"][1]


def test_spread_of_runs_enters_the_interval():
  # One event: every resample holds the same frames, so the interval comes from
  # drawing runs alone: seeds with replacement, then one of two pools per drawn seed.
  y = np.array([0, 1, 1, 0])
  groups = ["one"] * 4
  runs = {
    "syn": {
      (0, 0): {"pred": np.array([0, 1, 1, 0])},  # macro F1 1
      (0, 1): {"pred": np.array([1, 1, 1, 1])},  # macro F1 1/3
      (1, 0): {"pred": np.array([0, 1, 1, 0])},
      (1, 1): {"pred": np.array([1, 1, 1, 1])},
    }
  }
  out = bootstrap.summarize(y, groups, runs, ("<M", ">=M"), num_samples=2000)
  f1 = out["regimes"]["syn"]["scores"]["macro_f1"]
  assert f1["mean"] == pytest.approx(2 / 3)
  # Two draws each 1 or 1/3 with probability 1/2: means 1/3, 2/3, 1.
  np.testing.assert_allclose(f1["ci95"], [1 / 3, 1.0])


def test_brier_skill_score_against_climatology():
  rng = np.random.default_rng(7)
  y = (rng.random(500) < 0.2).astype(int)
  prob = np.clip(0.2 + 0.5 * (y - 0.2) + 0.1 * rng.standard_normal(500), 0, 1)
  w = np.ones((1, 500))
  bss = bootstrap.brier_skill(prob, y, 0.2, w)[0]
  expected = 1 - brier_score_loss(y, prob) / brier_score_loss(y, np.full(500, 0.2))
  assert bss == pytest.approx(expected)
  assert bootstrap.brier_skill(np.full(500, 0.2), y, 0.2, w)[0] == pytest.approx(0.0)
  assert bootstrap.brier_skill(y.astype(float), y, 0.2, w)[0] == pytest.approx(1.0)
  table = bootstrap.reliability(prob, y, num_bins=5)
  assert sum(table["count"]) == 500
  first = np.asarray(prob) < 0.2
  assert table["observed_frequency"][0] == pytest.approx(y[first].mean())


def _write_fold(workdir, y, groups, preds, climatology, class_scale="swpc"):
  """A fold's classifier outputs as --mode=classify writes them (metrics.json, predictions.csv)."""
  out = workdir / "classifier"
  out.mkdir(parents=True)
  names = ["<M", ">=M"]
  metrics = {"task": "forecast_ge_m", "class_names": names, "seeds": [0, 1]}
  metrics["class_scale"] = class_scale
  (out / "metrics.json").write_text(json.dumps({**metrics, "climatology": climatology}))
  lines = [",".join(experiment.PREDICTION_COLUMNS)]
  for (regime, seed, pool), (pred, prob) in preds.items():
    for i in range(len(y)):
      row = [i, "t", groups[i], names[y[i]], names[pred[i]], prob[i], regime, seed, pool, "s"]
      lines.append(",".join(map(str, row)))
  (out / "predictions.csv").write_text("\n".join(lines) + "\n")


def test_folds_pool_every_test_event_once(tmp_path):
  rng = np.random.default_rng(0)
  keys = [(r, s, 0) for r in ("real", "oversample") for s in (0, 1)]
  folds, truth, groups, refs, runs = [], [], [], [], {}
  for f, (n, clim) in enumerate([(30, 0.1), (40, 0.3)]):
    y = (rng.random(n) < clim).astype(int)
    g = [f"fold{f}_E{i // 2}" for i in range(n)]
    preds = {k: (rng.integers(0, 2, n), rng.random(n).round(4)) for k in keys}
    _write_fold(tmp_path / f"fold{f}", y, g, preds, clim)
    folds.append(tmp_path / f"fold{f}")
    truth.append(y)
    groups.extend(g)
    refs.extend([clim] * n)
    for (r, s, k), (pred, prob) in preds.items():
      run = runs.setdefault(r, {}).setdefault((s, k), {"pred": [], "prob": []})
      run["pred"].append(pred)
      run["prob"].append(prob)
  for regime in runs.values():
    for run in regime.values():
      run["pred"], run["prob"] = np.concatenate(run["pred"]), np.concatenate(run["prob"])
  pooled = folds_lib.pool_folds(folds, num_samples=300, seed=3)
  direct = bootstrap.summarize(
    np.concatenate(truth),
    groups,
    runs,
    ("<M", ">=M"),
    reference=np.asarray(refs),
    num_samples=300,
    seed=3,
  )
  assert pooled["support"] == direct["support"] and pooled["support"]["frames"] == 70
  for regime in ("real", "oversample"):
    assert pooled["regimes"][regime]["scores"] == direct["regimes"][regime]["scores"]
  folds_lib.main([*map(str, folds), f"--out={tmp_path / 'pooled'}", "--num_samples=200"])
  text = (tmp_path / "pooled" / "folds.md").read_text()
  assert "2 folds pooled" in text and "35 events / 70 frames" in text


def test_folds_on_different_class_scales_are_not_pooled(tmp_path):
  """>=M on the SWPC scale and >=M on the true scale are different events: never pooled."""
  rng = np.random.default_rng(1)
  y, groups = np.array([0, 1, 0, 1]), ["E0", "E1", "E2", "E3"]
  preds = {("real", 0, 0): (rng.integers(0, 2, 4), rng.random(4).round(4))}
  for fold, scale in enumerate(("swpc", "true")):
    _write_fold(tmp_path / f"fold{fold}", y, groups, preds, 0.5, class_scale=scale)
  with pytest.raises(errors.InputMismatchError, match=r"class_scale 'true' differs from 'swpc'"):
    folds_lib.pool_folds([tmp_path / "fold0", tmp_path / "fold1"], num_samples=100)
