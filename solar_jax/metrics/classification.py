"""Flare-classification metrics: F1, balanced accuracy, TSS and HSS, over seeds.

Conventions (used in every figure the classifier writes):

* Confusion matrices have true classes on the rows and predictions on the
  columns (scikit-learn's ``confusion_matrix``), over all ``K`` classes.
* One-vs-rest counts for class ``k``: TP = cm[k, k], FN = row k minus TP,
  FP = column k minus TP, TN = the rest.
* True Skill Statistic (Hanssen & Kuipers 1965; Bloomfield et al. 2012):
  TSS = TP/(TP+FN) - FP/(FP+TN) = recall + specificity - 1, in [-1, 1].
* Heidke Skill Score, 2x2 form:
  HSS = 2(TP·TN - FN·FP) / ((TP+FN)(FN+TN) + (TP+FP)(FP+TN)), in [-1, 1].
* Multiclass forms over the K x K table with p_ij = cm[i, j] / N, row sums
  (observed) p_i. and column sums (forecast) p_.j:
  HSS = (sum_i p_ii - sum_i p_i. p_.i) / (1 - sum_i p_i. p_.i) (equal to Cohen's kappa);
  TSS = (sum_i p_ii - sum_i p_i. p_.i) / (1 - sum_i p_i.^2) (Hanssen-Kuipers
  discriminant). For K = 2 both equal the 2x2 forms of class 1.
* A score whose denominator is zero (e.g. TSS of a class absent from the test
  set) is NaN, written as ``null`` in JSON, and left out of means over seeds.
* Macro averages (precision, recall, F1) run over a fixed label set: by
  default the classes that occur in the true labels or in the predictions of
  the whole test split, which is scikit-learn's default for
  ``f1_score(..., average='macro')``; computed with ``labels=`` explicitly and
  ``zero_division=0``, so a predicted class that never occurs in the truth
  counts with F1 0 (its precision is 0) instead of being left out. The
  bootstrap (``bootstrap.macro_f1``) averages every resample over the same
  set, fixed on the whole test split, never over the classes a resample drew.

Precision, recall, F1, balanced accuracy and the confusion matrix come from
scikit-learn.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from etils import epath

from solar_jax import viz


def confusion(y_true, y_pred, num_classes: int) -> np.ndarray:
  """K x K confusion counts (int64), rows true, columns predicted."""
  from sklearn.metrics import confusion_matrix

  return confusion_matrix(y_true, y_pred, labels=np.arange(num_classes)).astype(np.int64)


def one_vs_rest(cm: np.ndarray, k: int) -> tuple[int, int, int, int]:
  """``(TP, FN, FP, TN)`` of class ``k`` against all others."""
  cm = np.asarray(cm, np.int64)
  tp = int(cm[k, k])
  fn = int(cm[k].sum()) - tp
  fp = int(cm[:, k].sum()) - tp
  tn = int(cm.sum()) - tp - fn - fp
  return tp, fn, fp, tn


def _ratio(numerator: float, denominator: float) -> float:
  return float(numerator) / float(denominator) if denominator else math.nan


def true_skill_statistic(tp: int, fn: int, fp: int, tn: int) -> float:
  """TSS = TP/(TP+FN) - FP/(FP+TN); NaN when there are no positives or no negatives."""
  return _ratio(tp, tp + fn) - _ratio(fp, fp + tn)


def heidke_skill_score(tp: int, fn: int, fp: int, tn: int) -> float:
  """HSS = 2(TP·TN - FN·FP) / ((TP+FN)(FN+TN) + (TP+FP)(FP+TN)); NaN on a zero denominator."""
  # Python ints: no overflow for any realistic count.
  tp, fn, fp, tn = (int(v) for v in (tp, fn, fp, tn))
  return _ratio(2 * (tp * tn - fn * fp), (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def _chance_agreement(cm: np.ndarray) -> tuple[float, float, np.ndarray]:
  p = np.asarray(cm, np.float64) / cm.sum()
  observed, forecast = p.sum(axis=1), p.sum(axis=0)
  return float(np.trace(p)), float(observed @ forecast), observed


def multiclass_hss(cm: np.ndarray) -> float:
  """Multiclass Heidke skill score (= Cohen's kappa) of a K x K table; NaN if undefined."""
  if np.asarray(cm).sum() == 0:
    return math.nan
  correct, chance, _ = _chance_agreement(cm)
  return _ratio(correct - chance, 1.0 - chance)


def multiclass_tss(cm: np.ndarray) -> float:
  """Hanssen-Kuipers discriminant of a K x K table (the TSS for K = 2); NaN if undefined."""
  if np.asarray(cm).sum() == 0:
    return math.nan
  correct, chance, observed = _chance_agreement(cm)
  return _ratio(correct - chance, 1.0 - float(observed @ observed))


def threshold_skill(y_true, y_pred, threshold: int) -> dict:
  """TSS and HSS of the binary event ``label >= threshold`` (e.g. >=M from A..X labels)."""
  t = np.asarray(y_true) >= threshold
  p = np.asarray(y_pred) >= threshold
  tp, fn = int(np.sum(t & p)), int(np.sum(t & ~p))
  fp, tn = int(np.sum(~t & p)), int(np.sum(~t & ~p))
  return {
    "tss": true_skill_statistic(tp, fn, fp, tn),
    "hss": heidke_skill_score(tp, fn, fp, tn),
    "tp": tp,
    "fn": fn,
    "fp": fp,
    "tn": tn,
  }


def macro_label_set(y_true, y_pred) -> np.ndarray:
  """int64 [L] sorted: the classes in the truth or the predictions (scikit-learn's default set)."""
  return np.union1d(np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64))


def classification_metrics(
  y_true,
  y_pred,
  class_names: Sequence[str],
  *,
  thresholds: Mapping[str, int] | None = None,
  labels: Sequence[int] | None = None,
) -> dict:
  """Every classification figure for one set of predictions.

  Args:
    y_true, y_pred: int labels [N], positions in ``class_names``.
    class_names: the task's class names (K of them).
    labels: the class indices the macro averages run over; None: the classes
      in ``y_true`` or ``y_pred`` (``macro_label_set``, scikit-learn's default).
    thresholds: optional ``{name: class index}``: adds the TSS/HSS of the
      binary event ``label >= index`` under ``metrics['thresholds'][name]``
      (used to score >=M and >=C from a five-class classifier).

  Returns:
    A JSON-ready dict (NaN where a score is undefined): ``num_examples``,
    ``accuracy``, ``balanced_accuracy``, ``macro_precision``, ``macro_recall``,
    ``macro_f1``, ``macro_over`` (the names of the label set averaged over),
    ``tss`` and ``hss`` (multiclass forms; for
    K = 2 the 2x2 scores of class 1), ``confusion``, ``per_class`` (precision,
    recall, f1, support, one-vs-rest tss, hss and counts) and ``thresholds``.
  """
  from sklearn.metrics import balanced_accuracy_score, precision_recall_fscore_support

  names = tuple(class_names)
  k = len(names)
  y_true = np.asarray(y_true, np.int64).reshape(-1)
  y_pred = np.asarray(y_pred, np.int64).reshape(-1)
  if y_true.shape != y_pred.shape:
    raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in length.")
  if y_true.size == 0:
    raise ValueError("no examples to score: the test set is empty.")
  for label_name, given in (("y_true", y_true), ("y_pred", y_pred)):
    if given.min() < 0 or given.max() >= k:
      raise ValueError(f"{label_name} holds labels outside [0, {k - 1}] (classes {names}).")
  cm = confusion(y_true, y_pred, k)
  precision, recall, f1, support = precision_recall_fscore_support(
    y_true, y_pred, labels=np.arange(k), zero_division=0
  )
  over = macro_label_set(y_true, y_pred) if labels is None else np.asarray(labels, np.int64)
  if over.size == 0 or over.min() < 0 or over.max() >= k:
    raise ValueError(
      f"labels {over.tolist()}: give class indices in [0, {k - 1}] (classes {names})."
    )
  per_class = {}
  for i, name in enumerate(names):
    tp, fn, fp, tn = one_vs_rest(cm, i)
    per_class[name] = {
      "precision": float(precision[i]),
      "recall": float(recall[i]),
      "f1": float(f1[i]),
      "support": int(support[i]),
      "tss": true_skill_statistic(tp, fn, fp, tn),
      "hss": heidke_skill_score(tp, fn, fp, tn),
      "tp": tp,
      "fn": fn,
      "fp": fp,
      "tn": tn,
    }
  with warnings.catch_warnings():
    # sklearn warns when a predicted class is absent from y_true; that is expected here.
    warnings.simplefilter("ignore", UserWarning)
    balanced = float(balanced_accuracy_score(y_true, y_pred))
  out = {
    "num_examples": int(y_true.size),
    "accuracy": float(np.mean(y_true == y_pred)),
    "balanced_accuracy": balanced,
    "macro_precision": float(np.mean(precision[over])),
    "macro_recall": float(np.mean(recall[over])),
    "macro_f1": float(np.mean(f1[over])),
    "macro_over": [names[i] for i in over],
    "tss": multiclass_tss(cm),
    "hss": multiclass_hss(cm),
    "confusion": cm.tolist(),
    "per_class": per_class,
  }
  if thresholds:
    out["thresholds"] = {n: threshold_skill(y_true, y_pred, t) for n, t in thresholds.items()}
  return out


# ---------------------------------------------------------- over seeds ---

# Leaves that are counts or layouts, not scores: not averaged over seeds.
_NOT_AVERAGED = frozenset({"confusion", "macro_over", "tp", "fn", "fp", "tn", "support"})


def _numeric_leaves(tree, prefix=()):
  if isinstance(tree, Mapping):
    for key, value in tree.items():
      if key not in _NOT_AVERAGED:
        yield from _numeric_leaves(value, (*prefix, key))
  elif isinstance(tree, numbers.Number) and not isinstance(tree, bool):
    yield prefix, float(tree)


def mean_std_over_seeds(results: Sequence[Mapping]) -> dict:
  """Mean and standard deviation of every score across seeds.

  Args:
    results: one ``classification_metrics`` dict per seed.

  Returns:
    The same nesting with each score replaced by ``{'mean', 'std', 'n'}``:
    ``n`` finite values, ``std`` the sample standard deviation (ddof=1; 0 for
    one value). NaN seeds are left out; all-NaN gives NaN with ``n = 0``.
  """
  values: dict[tuple, list[float]] = {}
  for result in results:
    for path, value in _numeric_leaves(result):
      values.setdefault(path, []).append(value)
  out: dict = {}
  for path, vals in values.items():
    finite = np.asarray([v for v in vals if math.isfinite(v)], np.float64)
    n = int(finite.size)
    stats = {
      "mean": float(finite.mean()) if n else math.nan,
      "std": float(finite.std(ddof=1)) if n > 1 else (0.0 if n else math.nan),
      "n": n,
    }
    node = out
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = stats
  return out


def to_jsonable(tree):
  """Converts NumPy scalars/arrays to Python and NaN/Inf to None (strict JSON)."""
  if isinstance(tree, Mapping):
    return {str(k): to_jsonable(v) for k, v in tree.items()}
  if isinstance(tree, (list, tuple)):
    return [to_jsonable(v) for v in tree]
  if isinstance(tree, np.ndarray):
    return to_jsonable(tree.tolist())
  if isinstance(tree, (bool, np.bool_)):
    return bool(tree)
  if isinstance(tree, numbers.Integral):
    return int(tree)
  if isinstance(tree, numbers.Real):
    return float(tree) if math.isfinite(tree) else None
  return tree


# ---------------------------------------------------------------- plot ---


def save_confusion_png(cm, class_names: Sequence[str], path, title: str = "") -> epath.Path:
  """Writes a confusion matrix as a PNG: colour = fraction of the true row, text = counts."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  cm = np.asarray(cm, np.int64)
  rows = cm.sum(axis=1, keepdims=True)
  frac = np.divide(cm, rows, out=np.zeros(cm.shape, np.float64), where=rows > 0)
  k = len(class_names)
  side = 1.2 + 0.7 * k
  fig = Figure(figsize=(side + 1.0, side), dpi=100)
  FigureCanvasAgg(fig)
  ax = fig.add_subplot(1, 1, 1)
  image = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
  fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
  for i in range(k):
    for j in range(k):
      ax.text(
        j,
        i,
        str(cm[i, j]),
        ha="center",
        va="center",
        color="white" if frac[i, j] > 0.5 else "black",
        fontsize=9,
      )
  ax.set_xticks(range(k), labels=list(class_names))
  ax.set_yticks(range(k), labels=list(class_names))
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  if title:
    ax.set_title(title, fontsize=9)
  return _save_figure(fig, path)


def _save_figure(fig, path) -> epath.Path:
  fig.tight_layout()
  return viz.save_png(fig, path)


def save_interval_png(regimes: Mapping[str, Mapping], labels: Mapping[str, str], path, *, baseline):
  """Scores with 95 % intervals per regime (top) and their paired differences to ``baseline``.

  Args:
    regimes: regime -> metrics.json entry with 'scores' and 'delta_vs_<baseline>'.
    labels: score key -> axis label (one column of panels per score).
    path: the PNG.
    baseline: the regime the differences are taken against (a dashed zero line).
  """
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  names = list(regimes)
  fig = Figure(figsize=(4.2 * len(labels), 0.45 * len(names) * 2 + 2.0), dpi=100)
  FigureCanvasAgg(fig)
  y = np.arange(len(names))[::-1]
  for col, (key, label) in enumerate(labels.items()):
    for row, (field, title) in enumerate(
      (("scores", label), (f"delta_vs_{baseline}", f"{label}: regime − {baseline}"))
    ):
      ax = fig.add_subplot(2, len(labels), row * len(labels) + col + 1)
      for yi, name in zip(y, names):
        s = regimes[name].get(field, {}).get(key) or {}
        mean, ci = s.get("mean"), s.get("ci95")
        if mean is None or (isinstance(mean, float) and not math.isfinite(mean)):
          ax.text(0.5, yi, "n/a", transform=ax.get_yaxis_transform(), ha="center", va="center")
          continue
        if ci:
          ax.plot(ci, [yi, yi], color="C0", lw=2)
        ax.plot([mean], [yi], "o", color="C3" if field != "scores" else "C0")
      if field != "scores":
        ax.axvline(0.0, color="k", ls="--", lw=1)
      ax.set_yticks(y, labels=names)
      ax.set_title(title, fontsize=9)
      ax.grid(axis="x", alpha=0.3)
  fig.suptitle("test split: mean over runs, 95 % paired bootstrap interval", fontsize=9)
  return _save_figure(fig, path)


def save_reliability_png(
  tables: Mapping[str, Mapping],
  climatology: float,
  path,
  title: str = "reliability, test split, pooled over runs",
):
  """Reliability diagram of binary forecasts: observed frequency against mean forecast per bin."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  fig = Figure(figsize=(5.0, 4.6), dpi=100)
  FigureCanvasAgg(fig)
  ax = fig.add_subplot(1, 1, 1)
  ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect reliability")
  ax.axhline(climatology, color="grey", ls=":", lw=1, label=f"climatology {climatology:.3f}")
  for name, table in tables.items():
    pts = [
      (f, o)
      for f, o in zip(table["mean_forecast"], table["observed_frequency"])
      if f is not None and o is not None
    ]
    if pts:
      ax.plot(*zip(*pts), "o-", ms=4, label=f"{name} (N={sum(table['count'])})")
  ax.set_xlim(0, 1)
  ax.set_ylim(0, 1)
  ax.set_xlabel("forecast probability (bin mean)")
  ax.set_ylabel("observed frequency")
  ax.legend(fontsize=7)
  ax.set_title(title, fontsize=9)
  return _save_figure(fig, path)
