"""Classification metrics against a hand-worked confusion matrix and scikit-learn."""

import json
import math
from fractions import Fraction as F

import numpy as np
import pytest
from sklearn.metrics import (
  balanced_accuracy_score,
  cohen_kappa_score,
  f1_score,
  precision_score,
  recall_score,
)

from solar_jax.metrics import classification

# Rows true, columns predicted; N = 15. Worked out by hand below.
HAND_CM = np.array([[5, 1, 0], [2, 3, 1], [0, 2, 1]])
NAMES = ("A", "B", "C")


def _labels_from_confusion(cm):
  y_true, y_pred = [], []
  for i in range(cm.shape[0]):
    for j in range(cm.shape[1]):
      y_true += [i] * cm[i, j]
      y_pred += [j] * cm[i, j]
  rng = np.random.default_rng(0)
  order = rng.permutation(len(y_true))  # Order must not matter.
  return np.array(y_true)[order], np.array(y_pred)[order]


def test_hand_worked_example():
  y_true, y_pred = _labels_from_confusion(HAND_CM)
  m = classification.classification_metrics(y_true, y_pred, NAMES)
  np.testing.assert_array_equal(m["confusion"], HAND_CM)
  # One-vs-rest counts (TP, FN, FP, TN):
  #   A: TP 5, FN 1, FP 2, TN 7;  B: TP 3, FN 3, FP 3, TN 6;  C: TP 1, FN 2, FP 1, TN 11.
  expected = {
    # TSS = TP/(TP+FN) - FP/(FP+TN); HSS = 2(TP.TN - FN.FP)/((TP+FN)(FN+TN) + (TP+FP)(FP+TN)).
    "A": dict(counts=(5, 1, 2, 7), tss=F(5, 6) - F(2, 9), hss=F(2 * (35 - 2), 6 * 8 + 7 * 9)),
    "B": dict(counts=(3, 3, 3, 6), tss=F(1, 2) - F(3, 9), hss=F(2 * (18 - 9), 6 * 9 + 6 * 9)),
    "C": dict(counts=(1, 2, 1, 11), tss=F(1, 3) - F(1, 12), hss=F(2 * (11 - 2), 3 * 13 + 2 * 12)),
  }
  precision = {"A": F(5, 7), "B": F(1, 2), "C": F(1, 2)}
  recall = {"A": F(5, 6), "B": F(1, 2), "C": F(1, 3)}
  f1 = {"A": F(10, 13), "B": F(1, 2), "C": F(2, 5)}
  for name, e in expected.items():
    pc = m["per_class"][name]
    assert (pc["tp"], pc["fn"], pc["fp"], pc["tn"]) == e["counts"]
    assert pc["tss"] == pytest.approx(float(e["tss"]))
    assert pc["hss"] == pytest.approx(float(e["hss"]))
    assert pc["precision"] == pytest.approx(float(precision[name]))
    assert pc["recall"] == pytest.approx(float(recall[name]))
    assert pc["f1"] == pytest.approx(float(f1[name]))
  assert float(expected["A"]["tss"]) == pytest.approx(11 / 18)
  assert float(expected["C"]["hss"]) == pytest.approx(2 / 7)
  # Multiclass: PC = 9/15, sum_i row_i col_i = 6*7 + 6*6 + 3*2 = 84, sum_i row_i^2 = 81.
  assert m["hss"] == pytest.approx((135 - 84) / (225 - 84))  # 17/47
  assert m["tss"] == pytest.approx((135 - 84) / (225 - 81))  # 17/48
  assert m["accuracy"] == pytest.approx(9 / 15)
  assert m["balanced_accuracy"] == pytest.approx(5 / 9)
  assert m["macro_f1"] == pytest.approx(float((F(10, 13) + F(1, 2) + F(2, 5)) / 3))
  # And the same figures from scikit-learn where it has them.
  assert m["hss"] == pytest.approx(cohen_kappa_score(y_true, y_pred))
  assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
  assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
  for i, name in enumerate(NAMES):
    # One-vs-rest TSS is Youden's J = adjusted balanced accuracy of the binary problem.
    j = balanced_accuracy_score(y_true == i, y_pred == i, adjusted=True)
    assert m["per_class"][name]["tss"] == pytest.approx(j)
    assert m["per_class"][name]["hss"] == pytest.approx(cohen_kappa_score(y_true == i, y_pred == i))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_forms_agree_with_sklearn(seed):
  rng = np.random.default_rng(seed)
  y_true = rng.integers(0, 2, 200)
  y_pred = np.where(rng.random(200) < 0.7, y_true, 1 - y_true)
  m = classification.classification_metrics(y_true, y_pred, ("<M", ">=M"))
  tss_sklearn = balanced_accuracy_score(y_true, y_pred, adjusted=True)
  hss_sklearn = cohen_kappa_score(y_true, y_pred)
  # For K = 2 the multiclass forms equal the 2x2 forms of the positive class.
  assert m["tss"] == pytest.approx(tss_sklearn)
  assert m["per_class"][">=M"]["tss"] == pytest.approx(tss_sklearn)
  assert m["hss"] == pytest.approx(hss_sklearn)
  assert m["per_class"][">=M"]["hss"] == pytest.approx(hss_sklearn)
  assert m["per_class"][">=M"]["precision"] == pytest.approx(precision_score(y_true, y_pred))
  assert m["per_class"][">=M"]["recall"] == pytest.approx(recall_score(y_true, y_pred))


def test_multiclass_hss_is_cohens_kappa_on_random_labels():
  rng = np.random.default_rng(3)
  y_true = rng.integers(0, 5, 300)
  y_pred = np.where(rng.random(300) < 0.5, y_true, rng.integers(0, 5, 300))
  m = classification.classification_metrics(y_true, y_pred, "ABCMX")
  assert m["hss"] == pytest.approx(cohen_kappa_score(y_true, y_pred))
  assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))


def test_threshold_skill_collapses_classes():
  # GOES labels A..X = 0..4; the event is >= M (index 3).
  y_true = np.array([0, 1, 2, 3, 4, 3, 4, 2])
  y_pred = np.array([0, 3, 2, 3, 2, 4, 4, 1])
  m = classification.classification_metrics(y_true, y_pred, "ABCMX", thresholds={">=M": 3})
  t = m["thresholds"][">=M"]
  # Events (true >= M): items 3, 4, 5, 6; forecast >= M: items 1, 3, 5, 6.
  assert (t["tp"], t["fn"], t["fp"], t["tn"]) == (3, 1, 1, 3)
  assert t["tss"] == pytest.approx(3 / 4 - 1 / 4)
  assert t["hss"] == pytest.approx(2 * (9 - 1) / (4 * 4 + 4 * 4))


def test_undefined_scores_are_nan_and_null_in_json():
  y_true = np.array([0, 0, 1, 1])
  y_pred = np.array([0, 1, 1, 2])  # Class 2 never occurs in truth.
  m = classification.classification_metrics(y_true, y_pred, NAMES)
  assert math.isnan(m["per_class"]["C"]["tss"])  # No positives: recall undefined.
  assert m["macro_over"] == ["A", "B", "C"]
  # A: TP 1, FN 1, FP 0 -> F1 2/3; B: TP 1, FN 1, FP 1 -> F1 1/2; C (predicted, absent) F1 0.
  assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
  text = json.dumps(classification.to_jsonable(m), allow_nan=False)
  assert json.loads(text)["per_class"]["C"]["tss"] is None
  assert math.isnan(classification.heidke_skill_score(0, 0, 0, 0))


def test_mean_std_over_seeds():
  a = {"macro_f1": 0.5, "tss": math.nan, "confusion": [[1]], "per_class": {"A": {"f1": 0.2}}}
  b = {"macro_f1": 0.7, "tss": 0.4, "confusion": [[2]], "per_class": {"A": {"f1": 0.4}}}
  out = classification.mean_std_over_seeds([a, b])
  assert out["macro_f1"]["mean"] == pytest.approx(0.6)
  assert out["macro_f1"]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
  assert out["macro_f1"]["n"] == 2
  assert out["tss"] == {"mean": 0.4, "std": 0.0, "n": 1}  # The NaN seed is left out.
  assert out["per_class"]["A"]["f1"]["mean"] == pytest.approx(0.3)
  assert "confusion" not in out


def test_rejects_out_of_range_labels():
  with pytest.raises(ValueError, match="outside"):
    classification.classification_metrics([0, 3], [0, 1], NAMES)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_macro_averages_over_the_truth_and_the_predictions_as_sklearn(seed):
  # Five classes: the truth holds A, B, C only, the predictions also X (never true), so
  # scikit-learn's default set is the union {A, B, C, X}.
  rng = np.random.default_rng(seed)
  y_true = rng.integers(0, 3, 80)
  y_pred = np.where(rng.random(80) < 0.6, y_true, rng.choice([0, 1, 2, 4], 80))
  assert 4 in y_pred and 4 not in y_true
  m = classification.classification_metrics(y_true, y_pred, "ABCMX")
  assert m["macro_over"] == ["A", "B", "C", "X"]
  union = np.union1d(y_true, y_pred)
  for key, score in (
    ("macro_f1", f1_score),
    ("macro_precision", precision_score),
    ("macro_recall", recall_score),
  ):
    assert m[key] == pytest.approx(score(y_true, y_pred, average="macro", zero_division=0))
    explicit = score(y_true, y_pred, labels=union, average="macro", zero_division=0)
    assert m[key] == pytest.approx(explicit)
  # The old convention (classes of the truth only) gives a different, larger figure here.
  truth_only = f1_score(y_true, y_pred, labels=np.unique(y_true), average="macro")
  assert m["macro_f1"] < truth_only
  # An explicit label set is honoured (all five classes, M and X with F1 0).
  five = classification.classification_metrics(y_true, y_pred, "ABCMX", labels=range(5))
  assert five["macro_f1"] == pytest.approx(
    f1_score(y_true, y_pred, labels=range(5), average="macro", zero_division=0)
  )
  with pytest.raises(ValueError, match="labels"):
    classification.classification_metrics(y_true, y_pred, "ABCMX", labels=[0, 5])
