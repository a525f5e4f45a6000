"""Confidence intervals of classifier scores: a paired bootstrap over test events, seeds and pools.

Why: a flare test set holds few events, and frames of one flare are not
independent (a flare lasts many frames; quiet frames of one day look alike).
Resampling frames would understate the spread, so the resampling unit is the
frame's *group*: the classifier passes its active region
(``frame_facts.bootstrap_units``: flares of one NOAA region, merged with its
return a rotation later, move together; quiet frames in blocks of days), as
skill is largely per region; otherwise the dataset's ``group`` (the flare's
event id, or ``day:YYYY-MM-DD``). The groups are drawn with replacement and
every frame of a drawn group enters with that multiplicity.

The draw is stratified by class: each stratum draws, with replacement, as
many groups as it holds, so every class of the test split is in every
resample and a rare class's events are never all missed. A group's stratum is
the set of task classes its frames hold (``group_strata``): a flare's frames
share one class, so flares are stratified by their class; a quiet day (or a
forecast window) whose frames span classes, e.g. B and C, forms the stratum
{B, C} with the other days holding exactly B and C. Class sets rather than
one class per group is what guarantees the coverage: a day assigned to a
single class could carry the only frames of another class, which a
resample would then miss. The cost: a stratum of one group is drawn once in
every resample and adds no spread.

On top, each resample draws the classifier seeds with replacement and, for
regimes trained on synthetic images, one synthetic pool per drawn seed, so the
interval also holds the spread of training and of the generator (a two-level
bootstrap: runs, then test events). Every regime sees the same resamples
(the same groups, seeds and pools), so differences between regimes are
paired: a regime against itself differs by exactly 0 in every resample.
Each difference carries a two-sided bootstrap p-value (``p_value``); ``holm``
adjusts a family of them and ``primary_endpoint`` tests the one comparison
named before the run (the best of some regimes against the best of others).

A regime's figure is the mean over its (seed, pool) runs of the score on the
whole test set; its 95 % interval is the 2.5 and 97.5 percentiles of the
resampled figures (percentile bootstrap). Resamples where a score is undefined
are left out (stratification keeps every class of the split in every
resample, so this happens where a regime has no run for any seed a resample
drew, or where the split itself lacks a class the score needs), and their
share is reported as ``valid_fraction`` and printed beside the interval in
report.md.

Macro F1 averages over one label set per run, fixed on the whole test split:
the classes of the test truth and the classes the run predicts on it
(scikit-learn's default set, ``classification.macro_label_set``), with F1 0
for a class of the set neither drawn nor predicted in a resample
(``zero_division=0``): every resample averages the same classes.

Scores come from weighted confusion matrices (one per resample), so a
thousand resamples of tens of runs cost one matrix product each; they agree
with ``classification.classification_metrics`` on the unweighted data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from solar_jax.metrics.classification import macro_label_set

# ------------------------------------------------------------ groups ---


def group_codes(groups) -> tuple[np.ndarray, np.ndarray]:
  """``(codes int64 [N], names [G])``: each frame's group as an index into the distinct names."""
  names = np.asarray([g.decode() if isinstance(g, bytes) else str(g) for g in groups], dtype=object)
  if names.size == 0:
    return np.zeros(0, np.int64), np.zeros(0, object)
  unique, codes = np.unique(names.astype(str), return_inverse=True)
  return codes.astype(np.int64), unique


def group_strata(codes, y_true, num_classes: int) -> tuple[np.ndarray, list[tuple[int, ...]]]:
  """``(stratum int64 [G], classes of each stratum)``: a group's stratum is its set of classes.

  ``codes`` [N] are the frames' groups (``group_codes``), ``y_true`` [N] their
  class indices; strata are numbered in the lexicographic order of their
  class-membership rows.
  """
  codes, y_true = np.asarray(codes, np.int64), np.asarray(y_true, np.int64)
  if codes.size == 0:
    return np.zeros(0, np.int64), []
  holds = np.zeros((int(codes.max()) + 1, num_classes), bool)
  holds[codes, y_true] = True
  rows, stratum = np.unique(holds, axis=0, return_inverse=True)
  return stratum.reshape(-1).astype(np.int64), [tuple(np.flatnonzero(r).tolist()) for r in rows]


def group_draws(strata: np.ndarray, num_samples: int, rng: np.random.Generator) -> np.ndarray:
  """int64 [B, G]: the groups drawn by each of ``num_samples`` resamples, stratified.

  Each stratum draws as many of its own groups as it holds, with replacement
  (``strata`` [G]: each group's stratum, ``group_strata``); columns run
  stratum by stratum.
  """
  strata = np.asarray(strata, np.int64)
  parts = [np.zeros((num_samples, 0), np.int64)]
  for s in np.unique(strata):
    members = np.flatnonzero(strata == s)
    parts.append(members[rng.integers(0, members.size, (num_samples, members.size))])
  return np.concatenate(parts, axis=1)


def draw_counts(draws: np.ndarray, num_groups: int) -> np.ndarray:
  """int64 [B, G]: how often each group is drawn in each resample."""
  b = draws.shape[0]
  flat = draws + num_groups * np.arange(b)[:, None]
  return np.bincount(flat.ravel(), minlength=b * num_groups).reshape(b, num_groups)


def frame_weights(codes: np.ndarray, counts: np.ndarray) -> np.ndarray:
  """float64 [B, N]: each frame's multiplicity: the count of its group (frames of a group move together)."""
  return counts[:, codes].astype(np.float64)


def support(y_true, codes, class_names: Sequence[str], events=None, units=None) -> dict:
  """Test support: distinct events (groups) and frames, overall and per class.

  With ``events`` [N] (event ids; days of quiet frames) and ``units`` [N] (the
  resampling units, ``frame_facts.bootstrap_units``): events count ``events``,
  ``regions`` the distinct 'region:' units and ``units`` all distinct units.
  """
  y_true, codes = np.asarray(y_true), np.asarray(codes)
  event_codes = codes if events is None else group_codes(events)[0]
  region = None if units is None else np.char.startswith(_texts(units).astype(str), "region:")

  def count(members):
    out = {"events": int(np.unique(event_codes[members]).size)}
    if region is not None:
      out["regions"] = int(np.unique(codes[members & region]).size)
      out["units"] = int(np.unique(codes[members]).size)
    return {**out, "frames": int(members.sum())}

  per_class = {name: count(y_true == k) for k, name in enumerate(class_names)}
  return {**count(np.ones(y_true.shape, bool)), "per_class": per_class}


def _texts(values) -> np.ndarray:
  return np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in values], object)


# ------------------------------------------------ scores of confusions ---


def weighted_confusions(y_true, y_pred, weights: np.ndarray, num_classes: int) -> np.ndarray:
  """float64 [B, K, K] confusion matrices (rows true) of the frames weighted by ``weights`` [B, N]."""
  k = num_classes
  cell = np.asarray(y_true, np.int64) * k + np.asarray(y_pred, np.int64)
  onehot = np.zeros((cell.size, k * k))
  onehot[np.arange(cell.size), cell] = 1.0
  return (np.asarray(weights, np.float64) @ onehot).reshape(-1, k, k)


def _divide(a, b):
  with np.errstate(divide="ignore", invalid="ignore"):
    return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def macro_f1(cms: np.ndarray, labels) -> np.ndarray:
  """[B] macro F1 over the fixed class indices ``labels`` in every matrix (F1 0 where 0/0).

  The same as scikit-learn's ``f1_score(..., labels=labels, average='macro',
  zero_division=0)`` on the (weighted) frames of each matrix.
  """
  labels = np.asarray(labels, np.int64)
  if labels.size == 0:
    raise ValueError("macro_f1: the label set is empty.")
  tp = np.diagonal(cms, axis1=-2, axis2=-1)
  rows, cols = cms.sum(-1), cms.sum(-2)
  f1 = np.where(rows + cols > 0, _divide(2 * tp, rows + cols), 0.0)
  return f1[..., labels].mean(-1)


def multiclass_tss(cms: np.ndarray) -> np.ndarray:
  """[B] Hanssen-Kuipers discriminant (the TSS for two classes); NaN where undefined."""
  total = cms.sum((-2, -1))
  p = cms / np.where(total > 0, total, 1.0)[..., None, None]
  observed, forecast = p.sum(-1), p.sum(-2)
  correct = np.trace(p, axis1=-2, axis2=-1)
  chance = (observed * forecast).sum(-1)
  return _divide(correct - chance, 1.0 - (observed * observed).sum(-1))


def threshold_tss(cms: np.ndarray, threshold: int) -> np.ndarray:
  """[B] TSS of the event ``class >= threshold`` from K x K matrices."""
  t = np.arange(cms.shape[-1]) >= threshold
  tp = cms[..., t, :][..., :, t].sum((-2, -1))
  fn = cms[..., t, :][..., :, ~t].sum((-2, -1))
  fp = cms[..., ~t, :][..., :, t].sum((-2, -1))
  tn = cms[..., ~t, :][..., :, ~t].sum((-2, -1))
  return _divide(tp, tp + fn) - _divide(fp, fp + tn)


def brier_skill(prob, y_true, reference, weights: np.ndarray) -> np.ndarray:
  """[B] Brier skill score ``1 - BS / BS_ref`` of positive-class probabilities.

  Args:
    prob: float [N] forecast probability of class 1.
    y_true: int [N] in {0, 1}.
    reference: float [N] (or scalar) reference forecast, e.g. the training split's base rate
      (climatology).
    weights: [B, N] frame multiplicities.
  """
  o = np.asarray(y_true, np.float64)
  err = (np.asarray(prob, np.float64) - o) ** 2
  ref = (np.broadcast_to(np.asarray(reference, np.float64), o.shape) - o) ** 2
  return 1.0 - _divide(weights @ err, weights @ ref)


def roc_auc(scores, y_true, weights: np.ndarray) -> np.ndarray:
  """[B] area under the ROC curve of ``scores`` [N] for the event ``y_true`` [N] (bool), with
  frame multiplicities ``weights`` [B, N]; ties count one half; NaN without both classes.

  The same as scikit-learn's ``roc_auc_score(y_true, scores, sample_weight=w)`` per row,
  as one pass over the frames sorted by score.
  """
  s, y = np.asarray(scores, np.float64), np.asarray(y_true, bool)
  w = np.atleast_2d(np.asarray(weights, np.float64))
  order = np.argsort(s, kind="stable")
  s, y, w = s[order], y[order], w[:, order]
  neg = np.where(y, 0.0, w)
  # Exclusive cumulative weight of negatives before each sorted frame, and at the ends
  # of each group of equal scores (starts: first index of the value; ends: one past its last).
  cum = np.concatenate([np.zeros((w.shape[0], 1)), np.cumsum(neg, axis=1)], axis=1)
  _, start, counts = np.unique(s, return_index=True, return_counts=True)
  group = np.repeat(np.arange(start.size), counts)
  below = cum[:, start[group]]
  tied = cum[:, (start + counts)[group]] - below
  pos = np.where(y, w, 0.0)
  numerator = (pos * (below + 0.5 * tied)).sum(1)
  return _divide(numerator, pos.sum(1) * neg.sum(1))


def headline_scores(
  y_true,
  y_pred,
  weights: np.ndarray,
  num_classes: int,
  thresholds: Mapping[str, int],
  prob=None,
  reference=None,
  labels=None,
  prob_corrected=None,
  events: Mapping[str, Mapping] | None = None,
) -> dict[str, np.ndarray]:
  """The reported scores, each [B]: macro_f1, tss, ``tss_<name>`` per threshold, bss (binary).

  ``labels``: the macro average's class indices; None: the classes of ``y_true``
  or ``y_pred`` as given (unweighted: the whole test split when these are its arrays).
  Threshold-free skill (``metrics/operating_point``): binary tasks add ``auc`` of ``prob``
  and, with ``prob_corrected`` (probabilities moved to the test prior), ``bss_corrected``.
  ``events`` {name: {'decision' bool [N], 'prob' [N], 'prob_corrected' [N]}} (multiclass:
  the event ``class >= thresholds[name]`` decided at the validation operating point)
  replaces ``tss_<name>`` by the TSS of the decision and adds ``auc_<name>`` and, where
  ``reference`` is {name: climatology of the event}, ``bss_corrected_<name>``.
  """
  event_reference = reference if isinstance(reference, Mapping) else {}
  reference = None if isinstance(reference, Mapping) else reference
  cms = weighted_confusions(y_true, y_pred, weights, num_classes)
  if labels is None:
    labels = macro_label_set(y_true, y_pred)
  out = {"macro_f1": macro_f1(cms, labels), "tss": multiclass_tss(cms)}
  for name, index in thresholds.items():
    out[f"tss_{name}"] = threshold_tss(cms, index)
  if prob is not None and reference is not None:
    out["bss"] = brier_skill(prob, y_true, reference, weights)
  if prob is not None:
    out["auc"] = roc_auc(prob, np.asarray(y_true) == 1, weights)
  if prob_corrected is not None and reference is not None:
    out["bss_corrected"] = brier_skill(prob_corrected, y_true, reference, weights)
  for name, event in (events or {}).items():
    truth = np.asarray(y_true) >= thresholds[name]
    decision = np.asarray(event["decision"], np.int64)
    out[f"tss_{name}"] = threshold_tss(weighted_confusions(truth, decision, weights, 2), 1)
    out[f"auc_{name}"] = roc_auc(event["prob"], truth, weights)
    ref = event_reference.get(name)
    if ref is not None and event.get("prob_corrected") is not None:
      out[f"bss_corrected_{name}"] = brier_skill(event["prob_corrected"], truth, ref, weights)
  return out


# ------------------------------------------------------------ summary ---


def _interval(values: np.ndarray) -> dict:
  finite = values[np.isfinite(values)]
  if finite.size == 0:
    return {"ci95": None, "valid_fraction": 0.0}
  lo, hi = np.percentile(finite, [2.5, 97.5])
  return {"ci95": [float(lo), float(hi)], "valid_fraction": float(finite.size / values.size)}


def _nanmean(values: np.ndarray, axis) -> np.ndarray:
  finite = np.isfinite(values)
  total = np.where(finite, values, 0.0).sum(axis)
  return _divide(total, finite.sum(axis))


def _chunked_scores(y_true, run, codes, counts, k, thresholds, reference, chunk: int = 64):
  """``headline_scores`` of every row of ``counts``, a few rows at a time.

  Frame weights are [rows, N]: a thousand resamples of 10^5 test frames would need
  0.8 GB at once; chunks keep it to tens of MB.
  """
  parts: dict[str, list] = {}
  for start in range(0, len(counts), chunk):
    weights = frame_weights(codes, counts[start : start + chunk])
    scores = headline_scores(
      y_true,
      run["pred"],
      weights,
      k,
      thresholds,
      run.get("prob"),
      reference,
      prob_corrected=run.get("prob_corrected"),
      events=run.get("events"),
    )
    for name, values in scores.items():
      parts.setdefault(name, []).append(values)
  return {name: np.concatenate(values) for name, values in parts.items()}


def summarize(
  y_true,
  groups,
  runs: Mapping[str, Mapping[tuple[int, int], Mapping]],
  class_names: Sequence[str],
  *,
  thresholds: Mapping[str, int] | None = None,
  reference=None,
  num_samples: int = 1000,
  seed: int = 0,
  baselines: Sequence[str] = ("real", "oversample"),
  events=None,
  primary: tuple[str, Sequence[str], Sequence[str]] | None = None,
) -> dict:
  """Paired-bootstrap summary of every regime's test predictions.

  Args:
    y_true: int [N] task labels of the test frames.
    groups: [N] resampling unit of each frame (str or bytes).
    runs: regime -> {(seed, pool): {'pred': int [N], 'prob': float [N] or None}};
      every regime has the same seeds; pools are 0..P-1 (P = 1 for real-data regimes).
    class_names: the task's classes.
    thresholds: {name: class index} for ``tss_<name>`` (e.g. {'ge_m': 3}).
    reference: climatological probability of class 1 (scalar or [N]); with the
      runs' 'prob' gives the Brier skill score (binary tasks).
    num_samples: bootstrap resamples B.
    seed: seed of the resampling (the same draws serve every regime: paired).
    baselines: regimes every other regime is compared with (``delta_vs_<name>``).
    events: optional [N] event ids (days of quiet frames) where ``groups`` are coarser
      units (active regions, blocks of days): the support counts both.
    primary: optional (score, candidates, baselines): the primary endpoint, the best of
      the candidate regimes minus the best of the baselines on ``score``, the best taken
      in every resample (``primary_endpoint``).

  A run may also carry 'prob_corrected' [N] (binary) and 'events' (multiclass), whose
  Brier skill takes ``reference`` {event name: climatology}; see ``headline_scores``.

  Returns:
    {'support', 'num_samples', 'strata' (stratum -> groups), 'regimes': {regime: {'scores':
    {score: {'mean', 'ci95', 'valid_fraction', 'seed_std'}}, 'runs', 'delta_vs_<baseline>':
    {score: {'mean', 'ci95', 'valid_fraction', 'includes_zero', 'p_value'}}}}} and, with
    ``primary``, 'primary' (``primary_endpoint``).
  """
  y_true = np.asarray(y_true, np.int64)
  codes, _ = group_codes(groups)
  k, thresholds = len(class_names), dict(thresholds or {})
  rng = np.random.default_rng([seed, 20260])
  num_groups = int(codes.max()) + 1 if codes.size else 0
  strata, strata_classes = group_strata(codes, y_true, k)
  counts = draw_counts(group_draws(strata, num_samples, rng), num_groups)
  # Row 0: the whole test set (each group once: the point estimate); rows 1..B: resamples.
  counts = np.concatenate([np.ones((1, num_groups), np.int64), counts])
  seeds = sorted({s for regime in runs.values() for s, _ in regime})
  num_pools = max((p + 1 for regime in runs.values() for _, p in regime), default=1)
  seed_draw = rng.integers(0, len(seeds), (num_samples, len(seeds)))
  pool_draw = rng.integers(0, num_pools, (num_samples, len(seeds)))

  per_regime = {}
  for regime, regime_runs in runs.items():
    pools = max(p for _, p in regime_runs) + 1
    table: dict[str, np.ndarray] = {}
    for (s, p), run in regime_runs.items():
      scores = _chunked_scores(y_true, run, codes, counts, k, thresholds, reference)
      for name, values in scores.items():
        table.setdefault(name, np.full((len(seeds), pools, num_samples + 1), np.nan))
        table[name][seeds.index(s), p] = values
    resampled = {}
    for name, arr in table.items():
      drawn = arr[seed_draw, pool_draw % pools, np.arange(1, num_samples + 1)[:, None]]
      resampled[name] = (_nanmean(arr[..., 0], (0, 1)), _nanmean(drawn, 1), arr[..., 0])
    per_regime[regime] = resampled

  units = None if events is None else groups
  out = {
    "support": support(y_true, codes, class_names, events=events, units=units),
    "num_samples": num_samples,
    # Stratum (its classes joined by '+') -> number of groups it holds.
    "strata": {
      "+".join(class_names[c] for c in classes): int(np.sum(strata == s))
      for s, classes in enumerate(strata_classes)
    },
    "regimes": {},
  }
  for regime, resampled in per_regime.items():
    entry = {"runs": len(runs[regime]), "scores": {}}
    for name, (point, values, full) in resampled.items():
      seed_means = _nanmean(full, 1)
      finite = seed_means[np.isfinite(seed_means)]
      entry["scores"][name] = {
        "mean": float(point),
        **_interval(values),
        # Spread of the per-seed figures (pools averaged): what "± std" used to show.
        "seed_std": float(np.std(finite, ddof=1)) if finite.size > 1 else None,
      }
    for base in baselines:
      if base in per_regime:
        entry[f"delta_vs_{base}"] = _deltas(resampled, per_regime[base])
    out["regimes"][regime] = entry
  if primary is not None:
    out["primary"] = primary_endpoint(per_regime, *primary)
  return out


# ------------------------------------------- tests and multiplicity ---


def _deltas(resampled: dict, base: dict) -> dict:
  """{score: paired difference of a regime's figures against a baseline's}."""
  delta = {}
  for name, (point, values, _) in resampled.items():
    if name not in base:
      continue
    b_point, b_values, _ = base[name]
    interval = _interval(values - b_values)
    ci = interval["ci95"]
    delta[name] = {
      "mean": float(point - b_point),
      **interval,
      "includes_zero": None if ci is None else bool(ci[0] <= 0.0 <= ci[1]),
      "p_value": p_value(values - b_values),
    }
  return delta


def p_value(delta: np.ndarray) -> float | None:
  """Two-sided bootstrap p-value of a paired difference over its B defined resamples.

  ``min(1, 2 min(1 + #(d <= 0), 1 + #(d >= 0)) / (B + 1))``: twice the smaller tail,
  counted with the observed sample (Davison & Hinkley 1997, eq. 4.11), so it is never
  below 2 / (B + 1), the resolution of B resamples. None where no resample is defined.
  """
  finite = np.asarray(delta, np.float64)
  finite = finite[np.isfinite(finite)]
  if finite.size == 0:
    return None
  tail = 1 + min(np.sum(finite <= 0.0), np.sum(finite >= 0.0))
  return float(min(1.0, 2.0 * tail / (finite.size + 1)))


def holm(p_values) -> np.ndarray:
  """Holm's step-down adjusted p-values (family-wise error), in the order given.

  The i-th smallest of m p-values becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``;
  rejecting where the adjusted value is <= alpha is Holm's procedure at level alpha.
  """
  p = np.asarray(p_values, np.float64).ravel()
  m = p.size
  order = np.argsort(p, kind="stable")
  stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
  adjusted = np.empty(m)
  adjusted[order] = np.maximum.accumulate(stepped)
  return adjusted


def primary_endpoint(per_regime: dict, score: str, candidates, baselines) -> dict:
  """The best candidate regime minus the best baseline on ``score``, paired.

  The best is taken in the point estimate and, again, in every resample, so the
  interval and p-value hold the choice of the two regimes (they are not picked
  on the test split and then tested on it as if fixed). Regimes that did not
  run are left out; with no candidate or no baseline the endpoint is not estimable.
  """
  cands = [r for r in candidates if score in per_regime.get(r, {})]
  bases = [r for r in baselines if score in per_regime.get(r, {})]
  out = {"score": score, "candidates": cands, "baselines": bases}
  if not cands or not bases:
    return {**out, "mean": None, "ci95": None, "valid_fraction": 0.0, "p_value": None}

  def best(regimes):
    points = np.array([per_regime[r][score][0] for r in regimes], np.float64)
    draws = np.stack([per_regime[r][score][1] for r in regimes])
    # The best defined figure of each resample (NaN where none is).
    drawn = np.where(np.isfinite(draws), draws, -np.inf).max(0)
    drawn[~np.isfinite(drawn)] = np.nan
    if not np.isfinite(points).any():
      return np.nan, drawn, None
    k = int(np.nanargmax(points))
    return points[k], drawn, regimes[k]

  c_point, c_draws, c_pick = best(cands)
  b_point, b_draws, b_pick = best(bases)
  delta = c_draws - b_draws
  return {
    **out,
    "best_candidate": c_pick,
    "best_baseline": b_pick,
    "mean": None if not np.isfinite(c_point - b_point) else float(c_point - b_point),
    **_interval(delta),
    "p_value": p_value(delta),
  }


def comparisons(regimes: Mapping[str, Mapping], scores: Sequence[str], baselines) -> list[dict]:
  """Every reported paired difference with its raw and Holm-adjusted p-value.

  The family: each regime against each baseline it is not (a pair of baselines
  once, the later in ``baselines`` minus the earlier) on each of ``scores``, from
  ``summarize``'s ``delta_vs_<baseline>``. Holm over the family's defined p-values.
  """
  rows = []
  for regime, entry in regimes.items():
    for base in baselines:
      if regime == base or (
        regime in baselines and baselines.index(regime) < baselines.index(base)
      ):
        continue
      for score in scores:
        d = (entry.get(f"delta_vs_{base}") or {}).get(score)
        if d is None:
          continue
        rows.append(
          {"regime": regime, "baseline": base, "score": score, "mean": d["mean"],
           "ci95": d["ci95"], "valid_fraction": d.get("valid_fraction"), "p_value": d.get("p_value")}
        )  # fmt: skip
  tested = [i for i, r in enumerate(rows) if r["p_value"] is not None]
  adjusted = holm([rows[i]["p_value"] for i in tested])
  for row in rows:
    row["p_holm"] = None
  for i, a in zip(tested, adjusted):
    rows[i]["p_holm"] = float(a)
  return rows


def reliability(prob, y_true, num_bins: int = 10) -> dict:
  """Reliability table of binary forecasts: per probability bin, the mean forecast and frequency."""
  prob, y = np.asarray(prob, np.float64), np.asarray(y_true, np.float64)
  edges = np.linspace(0.0, 1.0, num_bins + 1)
  which = np.clip(np.digitize(prob, edges[1:-1]), 0, num_bins - 1)
  n = np.bincount(which, minlength=num_bins)
  mean_forecast = _divide(np.bincount(which, prob, num_bins), n)
  frequency = _divide(np.bincount(which, y, num_bins), n)
  return {
    "edges": edges.tolist(),
    "count": n.tolist(),
    "mean_forecast": [None if math.isnan(v) else float(v) for v in mean_forecast],
    "observed_frequency": [None if math.isnan(v) else float(v) for v in frequency],
  }
