"""The paired group bootstrap: agreement with scikit-learn, resampling by event, pairing."""

import json

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, f1_score

from solar_jax import errors
from solar_jax.classifier import experiment
from solar_jax.classifier import folds as folds_lib
from solar_jax.classifier import tables as classifier_tables
from solar_jax.configs import tiny
from solar_jax.data import frame_facts
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
  # Integer weights are repeated frames: the same as scoring the repeated arrays over
  # the same label set (the whole split's, fixed whatever the weights drop).
  w = np.random.default_rng(1).integers(0, 4, 300)
  labels = np.union1d(y, pred)
  again = classification.classification_metrics(
    np.repeat(y, w), np.repeat(pred, w), NAMES, labels=labels
  )
  weighted = bootstrap.headline_scores(y, pred, w[None].astype(float), 5, {})
  assert weighted["macro_f1"][0] == pytest.approx(again["macro_f1"])
  assert weighted["tss"][0] == pytest.approx(again["tss"])


def test_macro_f1_with_a_predicted_class_absent_from_the_truth_is_sklearns():
  # The truth holds A, B, C; the predictions also M: scikit-learn's default label set.
  rng = np.random.default_rng(11)
  y = rng.integers(0, 3, 90)
  pred = np.where(rng.random(90) < 0.6, y, rng.integers(0, 4, 90))
  assert 3 in pred and 3 not in y
  expected = f1_score(y, pred, average="macro", zero_division=0)
  m = classification.classification_metrics(y, pred, NAMES)
  assert m["macro_f1"] == pytest.approx(expected)
  assert bootstrap.headline_scores(y, pred, np.ones((1, 90)), 5, {})["macro_f1"][0] == (
    pytest.approx(expected)
  )
  cms = bootstrap.weighted_confusions(y, pred, np.ones((1, 90)), 5)
  assert bootstrap.macro_f1(cms, [0, 1, 2, 3])[0] == pytest.approx(expected)
  # A resample that drops every M prediction still averages four classes (M with F1 0).
  keep = (pred != 3).astype(float)[None]
  dropped = bootstrap.headline_scores(y, pred, keep, 5, {})["macro_f1"][0]
  kept = pred != 3
  assert dropped == pytest.approx(
    f1_score(y[kept], pred[kept], labels=[0, 1, 2, 3], average="macro", zero_division=0)
  )


def test_interval_of_a_fixed_predictor_matches_sklearn_resampling():
  n, b, seed = 120, 300, 4
  y, pred = _predictor(n, 2)
  groups = [f"frame{i:04d}" for i in range(n)]  # One frame per event: codes = frame order.
  out = bootstrap.summarize(
    y, groups, {"real": {(0, 0): {"pred": pred}}}, NAMES, num_samples=b, seed=seed
  )
  # The same (stratified) draws, scored by scikit-learn on the resampled arrays over the
  # whole split's label set.
  rng = np.random.default_rng([seed, 20260])
  draws = bootstrap.group_draws(bootstrap.group_strata(np.arange(n), y, 5)[0], b, rng)
  labels = np.union1d(y, pred)
  f1 = [f1_score(y[d], pred[d], labels=labels, average="macro", zero_division=0) for d in draws]
  score = out["regimes"]["real"]["scores"]["macro_f1"]
  np.testing.assert_allclose(score["ci95"], np.percentile(f1, [2.5, 97.5]), rtol=1e-10)
  assert score["mean"] == pytest.approx(f1_score(y, pred, average="macro"))
  assert score["valid_fraction"] == 1.0


def test_stratified_resamples_hold_every_class_of_the_split():
  # 40 flares (one class each: 30 B, 8 M, 2 X) and 12 quiet days whose frames span
  # classes; class C occurs only on two days that are mostly B, A only on one A/B day.
  rng = np.random.default_rng(5)
  y, groups = [], []
  for i, c in enumerate([1] * 30 + [3] * 8 + [4] * 2):
    size = int(rng.integers(1, 6))
    y += [c] * size
    groups += [f"flare{i}"] * size
  days = [[1, 1, 1, 2], [1, 1, 2], [0, 1]] + [[1, 1]] * 9
  for d, classes in enumerate(days):
    y += classes
    groups += [f"day:{d}"] * len(classes)
  y = np.asarray(y)
  codes, _ = bootstrap.group_codes(groups)
  strata, classes = bootstrap.group_strata(codes, y, 5)
  assert sorted(classes) == [(0, 1), (1,), (1, 2), (3,), (4,)]
  b = 2000
  draws = bootstrap.group_draws(strata, b, np.random.default_rng(0))
  counts = bootstrap.draw_counts(draws, codes.max() + 1)
  weights = bootstrap.frame_weights(codes, counts)
  drawn_per_class = weights @ np.eye(5)[y]  # [B, K] frames of each class drawn.
  assert (drawn_per_class[:, np.unique(y)] > 0).all()
  # Each stratum draws exactly as many groups as it holds; a group only from its own.
  for s in range(len(classes)):
    members = strata == s
    assert (counts[:, members].sum(1) == members.sum()).all()
  # TSS >=M is defined in every stratified resample, so every resample is valid.
  pred = np.where(rng.random(y.size) < 0.7, y, rng.integers(0, 5, y.size))
  out = bootstrap.summarize(
    y, groups, {"r": {(0, 0): {"pred": pred}}}, NAMES, thresholds={"ge_m": 3}, num_samples=300
  )
  assert out["strata"] == {"A+B": 1, "B": 39, "B+C": 2, "M": 8, "X": 2}
  for score in out["regimes"]["r"]["scores"].values():
    assert score["valid_fraction"] == 1.0


def test_valid_share_of_resamples_is_computed_and_shown():
  # Regime 'partial' ran seed 0 only, the others seeds 0 and 1: a resample that draws
  # seed 1 twice has no run of 'partial', so its figure is undefined there. Seeds are
  # drawn with replacement, two per resample: valid share 1 - (1/2)^2 = 3/4.
  y, p1 = _predictor(60, 8)
  _, p2 = _predictor(60, 9)
  groups = [f"e{i // 2}" for i in range(60)]
  runs = {
    "oversample": {(0, 0): {"pred": p1}, (1, 0): {"pred": p2}},
    "partial": {(0, 0): {"pred": p2}},
  }
  b = 4000
  out = bootstrap.summarize(y, groups, runs, NAMES, thresholds={"ge_m": 3}, num_samples=b)
  f1 = out["regimes"]["partial"]["scores"]["macro_f1"]
  assert f1["valid_fraction"] == pytest.approx(0.75, abs=4 * np.sqrt(0.75 * 0.25 / b))
  assert out["regimes"]["oversample"]["scores"]["macro_f1"]["valid_fraction"] == 1.0
  metrics = {
    "task": "multiclass",
    "class_names": list(NAMES),
    "seeds": [0, 1],
    "support": out["support"],
    "bootstrap": {"num_samples": b},
    "regimes": out["regimes"],
  }
  text = classifier_tables.headline_table(metrics)
  row = next(line for line in text.splitlines() if line.startswith("| partial |"))
  assert f"({100 * f1['valid_fraction']:.1f} % valid)" in row
  over = next(line for line in text.splitlines() if line.startswith("| oversample |"))
  assert "(100 % valid)" in over


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
  strata, _ = bootstrap.group_strata(codes, [3, 0, 3, 3], 5)  # Two M flares, one quiet day.
  counts = bootstrap.draw_counts(bootstrap.group_draws(strata, 200, rng), 3)
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


def _write_fold(
  workdir,
  y,
  groups,
  preds,
  climatology,
  fold=0,
  num_folds=3,
  class_scale="swpc",
  ars=None,
  **data,
):
  """A fold's classifier outputs as --mode=classify writes them (config.json, metrics.json,
  predictions.csv)."""
  out = workdir / "classifier"
  out.mkdir(parents=True)
  config = tiny.get_config()
  config.data.fold, config.provenance.num_folds = fold, num_folds
  config.provenance.version = "sdo_aia171/64 2.1.0"
  config.data.update(data, class_scale=class_scale)
  (workdir / "config.json").write_text(config.to_json())
  names = ["<M", ">=M"]
  metrics = {"task": "forecast_ge_m", "class_names": names, "seeds": [0, 1]}
  metrics["class_scale"] = class_scale
  (out / "metrics.json").write_text(json.dumps({**metrics, "climatology": climatology}))
  lines = [",".join(experiment.PREDICTION_COLUMNS)]
  for (regime, seed, pool), (pred, prob) in preds.items():
    for i in range(len(y)):
      row = [i, "t", groups[i], names[y[i]], names[pred[i]], prob[i], regime, seed, pool, "s"]
      row += [prob[i] / 2, pred[i]]  # At the test prior (a stand-in); the forecast.
      if ars is not None:  # the unit columns: the frame's flare is its group, of NOAA ars[i]
        row += [groups[i], groups[i], ars[i], "2014-10-20T12:00:00.000", "", ""]
      lines.append(",".join(map(str, row)))
  (out / "predictions.csv").write_text("\n".join(lines) + "\n")


def test_folds_pool_every_test_event_once(tmp_path):
  rng = np.random.default_rng(0)
  keys = [(r, s, 0) for r in ("real", "oversample") for s in (0, 1)]
  folds, truth, groups, refs, runs = [], [], [], [], {}
  for f, (n, clim) in enumerate([(30, 0.1), (40, 0.3), (20, 0.2)]):
    y = (rng.random(n) < clim).astype(int)
    g = [f"fold{f}_E{i // 2}" for i in range(n)]
    preds = {k: (rng.integers(0, 2, n), rng.random(n).round(4)) for k in keys}
    _write_fold(tmp_path / f"fold{f}", y, g, preds, clim, fold=f)
    folds.append(tmp_path / f"fold{f}")
    truth.append(y)
    groups.extend(g)
    refs.extend([clim] * n)
    for (r, s, k), (pred, prob) in preds.items():
      run = runs.setdefault(r, {}).setdefault(
        (s, k), {"pred": [], "prob": [], "prob_corrected": []}
      )
      run["pred"].append(pred)
      run["prob"].append(prob)
      run["prob_corrected"].append(prob / 2)
  for regime in runs.values():
    for run in regime.values():
      for key in run:
        run[key] = np.concatenate(run[key])
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
  assert pooled["support"] == direct["support"] and pooled["support"]["frames"] == 90
  for regime in ("real", "oversample"):
    assert pooled["regimes"][regime]["scores"] == direct["regimes"][regime]["scores"]
    assert {"auc", "bss_corrected"} <= set(pooled["regimes"][regime]["scores"])
  folds_lib.main([*map(str, folds), f"--out={tmp_path / 'pooled'}", "--num_samples=200"])
  text = (tmp_path / "pooled" / "folds.md").read_text()
  assert "3 folds pooled" in text and "45 events / 90 frames" in text


def test_folds_of_one_study_only(tmp_path):
  """Distinct folds covering 0..K-1, on the same data: else one line naming the problem."""
  y, g = np.array([0, 1, 0, 1]), ["E0", "E0", "E1", "E1"]
  preds = {("real", 0, 0): (y, np.full(4, 0.5))}

  def fold(name, **kwargs):
    _write_fold(tmp_path / name, y, g, preds, 0.5, **kwargs)
    return tmp_path / name

  a, b, c = fold("a", fold=0), fold("b", fold=1), fold("c", fold=2)
  assert folds_lib.check_study([a, b, c]) == 3
  cases = [
    ([a, b, fold("b2", fold=1)], "are both fold 1"),
    ([a, b], "folds [2] are missing"),
    ([a, b, c, fold("d", fold=3)], "[3] do not exist"),
    ([a, b, fold("e", fold=2, label="flare_class")], "data.label='flare_class' differs"),
    ([a, b, fold("f", fold=2, embargo_days=3.0)], "data.embargo_days=3.0 differs"),
  ]
  for workdirs, words in cases:
    with pytest.raises(errors.InputMismatchError) as info:
      folds_lib.pool_folds(workdirs, num_samples=10)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_folds_on_different_class_scales_are_not_pooled(tmp_path):
  """>=M on the SWPC scale and >=M on the true scale are different events: never pooled."""
  rng = np.random.default_rng(1)
  y, groups = np.array([0, 1, 0, 1]), ["E0", "E1", "E2", "E3"]
  preds = {("real", 0, 0): (rng.integers(0, 2, 4), rng.random(4).round(4))}
  for fold, scale in enumerate(("swpc", "swpc", "true")):
    _write_fold(tmp_path / f"fold{fold}", y, groups, preds, 0.5, fold=fold, class_scale=scale)
  with pytest.raises(errors.InputMismatchError, match=r"class_scale='true' differs from 'swpc'"):
    folds_lib.pool_folds([tmp_path / f"fold{f}" for f in range(3)], num_samples=100)


# ------------------------------------------------- active regions ---


def _region_frames(sizes, seed=0):
  """Frames of regions (several flares each, one NOAA number) and quiet days: facts, groups."""
  rng = np.random.default_rng(seed)
  events, ars, peaks = [], [], []
  for r, size in enumerate(sizes):
    for _ in range(size):
      flare = int(rng.integers(0, 3))  # a region's frames come from up to three flares
      events.append(f"ar{r}-flare{flare}")
      ars.append(11000 + r)
      peaks.append(f"2012-03-{1 + r % 28:02d}T0{flare}:00:00.000")
  quiet = [f"day:2012-04-{d:02d}" for d in (1, 2, 3, 4, 5, 6, 7, 9)]
  facts = {
    "flare_event_id": np.array(events + [""] * len(quiet), object),
    "noaa_ar": np.array(ars + [0] * len(quiet)),
    "flare_peak": np.array(peaks + [""] * len(quiet), object),
  }
  return facts, np.array(events + quiet, object)


def test_the_region_bootstrap_moves_every_frame_of_a_region_together():
  sizes = [5, 9, 2, 14, 7, 3]
  facts, groups = _region_frames(sizes)
  units = frame_facts.bootstrap_units(facts, groups)
  codes, names = bootstrap.group_codes(units)
  flaring = np.char.startswith(names.astype(str), "region:")
  days = np.array([g[4:] for g in groups if g.startswith("day:")], "datetime64[D]")
  blocks = np.unique(days.astype(np.int64) // frame_facts.QUIET_BLOCK_DAYS).size
  assert flaring.sum() == len(sizes) and (~flaring).sum() == blocks < days.size
  y = np.where(np.asarray(facts["noaa_ar"]) > 0, 3, 0)
  strata, _ = bootstrap.group_strata(codes, y, 5)
  counts = bootstrap.draw_counts(
    bootstrap.group_draws(strata, 300, np.random.default_rng(1)), len(names)
  )
  w = bootstrap.frame_weights(codes, counts)
  for r, size in enumerate(sizes):
    mine = np.asarray(facts["noaa_ar"]) == 11000 + r
    frames = w[:, mine]
    assert (frames == frames[:, :1]).all()  # its frames of every flare share one weight
    assert (frames.sum(1) % size == 0).all()  # 0 or a multiple of the region's frames
  support = bootstrap.support(y, codes, NAMES, events=groups, units=units)
  assert support["per_class"]["M"]["regions"] == len(sizes)
  assert support["per_class"]["M"]["events"] == len(set(groups[y == 3]))
  assert support["per_class"]["A"] == {"events": 8, "regions": 0, "units": blocks, "frames": 8}


def test_the_region_bootstrap_se_of_a_mean_over_regions_is_the_analytic_one():
  # R equal-sized regions, each frame carrying its region's value: the statistic (the mean
  # over frames) is the mean over regions, whose bootstrap SE is the population sd / sqrt(R).
  r_count, size, b = 12, 4, 6000
  values = np.random.default_rng(2).normal(0.0, 1.0, r_count)
  units = np.repeat([f"region:{i}" for i in range(r_count)], size)
  codes, _ = bootstrap.group_codes(units)
  strata, _ = bootstrap.group_strata(codes, np.zeros(codes.size, int), 1)
  counts = bootstrap.draw_counts(
    bootstrap.group_draws(strata, b, np.random.default_rng(3)), r_count
  )
  w = bootstrap.frame_weights(codes, counts)
  means = (w @ np.repeat(values, size)) / w.sum(1)
  analytic = values.std(ddof=1) / np.sqrt(r_count) * np.sqrt((r_count - 1) / r_count)
  assert means.std() == pytest.approx(analytic, rel=0.05)


def test_holm_matches_the_step_down_by_hand_and_statsmodels():
  p = [0.01, 0.04, 0.03, 0.005]
  # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> running max.
  np.testing.assert_allclose(bootstrap.holm(p), [0.03, 0.06, 0.06, 0.02])
  np.testing.assert_allclose(bootstrap.holm([0.5, 0.9]), [1.0, 1.0])
  try:
    from statsmodels.stats.multitest import multipletests
  except ImportError:
    return
  q = np.random.default_rng(4).random(17) ** 3
  np.testing.assert_allclose(bootstrap.holm(q), multipletests(q, method="holm")[1])


def test_p_values_primary_endpoint_and_the_holm_family():
  assert bootstrap.p_value(np.r_[np.full(89, 0.1), np.full(10, -0.1)]) == pytest.approx(0.22)
  assert bootstrap.p_value(np.full(99, 0.1)) == pytest.approx(0.02)  # the resolution 2 / (B + 1)
  assert bootstrap.p_value(np.full(50, 0.0)) == 1.0
  y, p_good = _predictor(120, 8, accuracy=0.9)
  _, p_bad = _predictor(120, 9, accuracy=0.3)
  groups = [f"g{i // 4}" for i in range(120)]
  runs = {
    "real": {(0, 0): {"pred": p_bad}},
    "oversample": {(0, 0): {"pred": p_bad}},
    "real_synthetic": {(0, 0): {"pred": p_good}},
  }
  base = ("real", "weighted", "oversample")
  out = bootstrap.summarize(
    y, groups, runs, NAMES, thresholds={"ge_m": 3}, num_samples=300,
    baselines=base, primary=("tss_ge_m", ("real_synthetic", "synthetic_only"), base),
  )  # fmt: skip
  end = out["primary"]
  assert end["best_candidate"] == "real_synthetic" and end["baselines"] == ["real", "oversample"]
  delta = out["regimes"]["real_synthetic"]["delta_vs_real"]["tss_ge_m"]
  assert end["mean"] == pytest.approx(delta["mean"]) and end["p_value"] < 0.05
  assert out["regimes"]["oversample"]["delta_vs_real"]["macro_f1"]["p_value"] == 1.0
  rows = bootstrap.comparisons(out["regimes"], ["macro_f1", "tss_ge_m"], list(base))
  # real_synthetic and oversample against real, real_synthetic against oversample: 3 x 2.
  assert len(rows) == 6
  raw = [r["p_value"] for r in rows]
  np.testing.assert_allclose([r["p_holm"] for r in rows], bootstrap.holm(raw))


def test_folds_pool_the_regions_of_every_fold(tmp_path):
  """A NOAA region tested in two folds (its frames on both sides of a month boundary) is one
  unit of the pooled bootstrap; the pooled report names the primary endpoint."""
  keys = [(r, 0, 0) for r in ("real", "oversample", "real_synthetic")]
  rng = np.random.default_rng(5)
  folds = []
  for f in range(3):
    y = np.array([1, 1, 0, 0])
    groups = [f"F{f}E0", f"F{f}E1", f"F{f}E2", f"F{f}E3"]
    preds = {k: (rng.integers(0, 2, 4), rng.random(4).round(3)) for k in keys}
    _write_fold(tmp_path / f"f{f}", y, groups, preds, 0.5, fold=f, ars=[100, 100, 200 + f, 300])
    folds.append(tmp_path / f"f{f}")
  pooled = folds_lib.pool_folds(folds, num_samples=200)
  # Regions 100 and 300 are in every fold, 200-202 in one each: 5 regions, 12 events.
  assert pooled["support"]["regions"] == 5 and pooled["support"]["events"] == 12
  assert pooled["bootstrap"]["unit"].startswith("test active regions")
  assert pooled["primary_endpoint"]["best_candidate"] == "real_synthetic"
  text = classifier_tables.headline_table(pooled)
  assert "12 events / 5 regions / 12 frames" in text and "**Primary endpoint**" in text
