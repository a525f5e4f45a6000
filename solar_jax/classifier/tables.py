"""The classifier's headline table: scores and paired differences with 95 % intervals.

Shared by report.md and the pooled-folds table (``classifier/folds.py``).
"""

from __future__ import annotations

import re

_METHOD = (
  ", groups drawn within each class stratum so every test class is in every resample; "
  "'valid': the share of resamples where the score is defined, the interval is taken "
  "over those). Macro F1 averages over the classes of the test truth and of each run's "
  "predictions (scikit-learn's default set), the same in every resample."
)


def _ci(stats: dict | None, signed: bool = False) -> str:
  """``0.412 [0.351, 0.470] (98 % valid)``: mean, 95 % interval, share of valid resamples.

  n/a where not estimable; the valid share is left out only where the figures
  predate it (no ``valid_fraction``).
  """
  if not stats or stats.get("mean") is None:
    return "n/a"
  fmt = "{:+.3f}" if signed else "{:.3f}"
  ci = stats.get("ci95")
  interval = f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]" if ci else " [n/a]"
  valid = stats.get("valid_fraction")
  share = "" if valid is None else f" ({_percent(valid)} valid)"
  return fmt.format(stats["mean"]) + interval + share


def interval_text(stats: dict | None, signed: bool = False) -> str:
  """``_ci`` for other tables (the generators' comparison)."""
  return _ci(stats, signed)


def _percent(fraction: float) -> str:
  """100 % only when every resample is valid; otherwise one decimal, never rounded up to 100."""
  if fraction >= 1.0:
    return "100 %"
  return f"{min(fraction * 100.0, 99.9):.1f} %"


def _support_cell(support: dict) -> str:
  """``12 events / 3 regions / 480 frames`` (regions where the units were active regions)."""
  regions = f" / {support['regions']} regions" if support.get("regions") is not None else ""
  return f"{support.get('events')} events{regions} / {support.get('frames')} frames"


def _p(value, relation: bool = False) -> str:
  """A p-value to 3 decimals ('< 0.001' below); ``relation``: with '=' before a number."""
  if value is None:
    return "n/a"
  if value < 0.001:
    return "< 0.001"
  return f"= {value:.3f}" if relation else f"{value:.3f}"


_SCORE_NAMES = {"macro_f1": "macro F1", "tss_ge_m": "TSS ≥M", "tss": "TSS", "bss": "BSS"}


def primary_lines(metrics: dict) -> list[str]:
  """The primary endpoint, named before the run (``classifier.primary_endpoint``)."""
  end = metrics.get("primary_endpoint")
  if not end:
    return []
  head = f"**Primary endpoint** (`{end['name']}`, named before the run): "
  if end.get("mean") is None:
    why = end.get("note") or "not estimable (no synthetic regime or no baseline was run)"
    return [head + why + ".", ""]
  score = _SCORE_NAMES.get(end["score"], end["score"])
  return [
    head + f"best synthetic regime minus best classical baseline on {score} "
    f"({end['best_candidate']} − {end['best_baseline']} on the whole test set; the best "
    f"taken again in every resample): {_ci(end, signed=True)}, two-sided bootstrap "
    f"p {_p(end.get('p_value'), relation=True)} (not adjusted: the one pre-named test).",
    "",
  ]


def comparisons_table(metrics: dict) -> list[str]:
  """Every regime x baseline x score difference with raw and Holm-adjusted p-values."""
  block = metrics.get("comparisons") or {}
  rows = block.get("rows") or []
  if not rows:
    return []
  lines = [
    f"Paired differences against every classical baseline ({len(rows)} in the family; "
    "two-sided bootstrap p, Holm-adjusted over the family):",
    "",
    "| regime − baseline | score | Δ [95% CI] | the interval | p | p (Holm) |",
    "| --- | --- | --- | --- | --- | --- |",
  ]
  for r in rows:
    name = f"| {r['regime']} − {r['baseline']} | {_SCORE_NAMES.get(r['score'], r['score'])} | "
    lines.append(
      name
      + " | ".join(_delta_cells(metrics, r, r["regime"], r["baseline"], r["score"]))
      + f" | {_p(r.get('p_value'))} | {_p(r.get('p_holm'))} |"
    )
  return [*lines, ""]


def _score_keys(metrics: dict) -> dict[str, str]:
  """The headline scores of the task: key -> column name."""
  names = metrics["class_names"]
  if len(names) > 2:
    keys = {"macro_f1": "macro F1", "tss_ge_m": "TSS ≥M", "auc_ge_m": "AUC ≥M"}
    return {**keys, "bss_corrected_ge_m": "BSS′ ≥M"}
  keys = {"macro_f1": "macro F1", "tss": f"TSS {names[1]}", "auc": f"AUC {names[1]}"}
  return {**keys, "bss": "BSS", "bss_corrected": "BSS′"}


def _has_key(metrics: dict, key: str) -> bool:
  """Whether any regime reports ``key`` (figures that predate a score leave its column out)."""
  return any(key in (e.get("scores") or {}) for e in metrics["regimes"].values())


def _units(metrics: dict) -> str:
  """What the bootstrap resampled, in words."""
  unit = (metrics.get("bootstrap") or {}).get("unit") or ""
  if unit.startswith("test active regions"):
    return "test active regions (a region returning a rotation later is one; blocks of days of quiet frames)"
  return "test events (flares; days of quiet frames)"


MIN_EVENTS = 2  # A skill score on one test event has no interval worth printing.
_NOT_SHOWN = "identical predictions"


def _positive_classes(metrics: dict, key: str) -> list[str]:
  """The classes a score's positive side holds: M and above for ``*_ge_m`` (C for
  ``*_ge_c``), the second
  class of a binary task, none for scores over every class (macro F1)."""
  names = list(metrics["class_names"])
  above = re.search(r"_ge_([a-z])$", key)
  if above:
    letter = above.group(1).upper()
    return names[names.index(letter) :] if letter in names else []
  if len(names) == 2 and key != "macro_f1":
    return names[1:]
  return []


def few_events(metrics: dict, key: str) -> str | None:
  """Why ``key`` is not estimable on this test split (fewer than ``MIN_EVENTS`` positive
  test events), or None."""
  classes = _positive_classes(metrics, key)
  per_class = (metrics.get("support") or {}).get("per_class") or {}
  if not classes or not all(c in per_class for c in classes):
    return None
  events = sum(int(per_class[c].get("events") or 0) for c in classes)
  if events >= MIN_EVENTS:
    return None
  return f"not estimable: {events} test event{'s' * (events != 1)} {'+'.join(classes)}"


def degenerate(metrics: dict) -> dict:
  """Regimes that predict one class for every test frame, and groups of regimes whose
  predictions are identical (the same confusion matrix summed over runs).

  Returns:
    {'one_class': {regime: class name}, 'identical': [[regime, ...], ...]}.
  """
  names = list(metrics.get("class_names") or [])
  one_class, by_matrix = {}, {}
  for regime, entry in (metrics.get("regimes") or {}).items():
    cm = entry.get("confusion_summed")
    if not cm:
      continue
    predicted = [j for j in range(len(cm[0])) if sum(row[j] for row in cm) > 0]
    if len(predicted) == 1:
      j = predicted[0]
      one_class[regime] = names[j] if j < len(names) else str(j)
    by_matrix.setdefault(str(cm), []).append(regime)
  return {"one_class": one_class, "identical": [g for g in by_matrix.values() if len(g) > 1]}


def _same(metrics: dict, a: str, b: str) -> bool:
  return any(a in g and b in g for g in degenerate(metrics)["identical"])


def _verdict(d: dict, identical: bool) -> str:
  if identical:
    return _NOT_SHOWN
  if d["includes_zero"]:
    return "includes 0"
  return "above 0" if d["ci95"][0] > 0 else "below 0"


def _delta_cells(metrics: dict, d: dict, regime: str, base: str, key: str) -> list[str]:
  """[Δ with its interval, where the interval lies]; not estimable on too few events, no
  number where both regimes predict the same."""
  why = few_events(metrics, key)
  if why:
    return [why, "not estimable"]
  ci = d.get("ci95")
  if d.get("includes_zero") is None and ci:  # The family's rows carry the interval alone.
    d = {**d, "includes_zero": ci[0] <= 0.0 <= ci[1]}
  if d.get("includes_zero") is None:
    return [_ci(d, signed=True), "n/a"]
  same = _same(metrics, regime, base)
  return ["—" if same else _ci(d, signed=True), _verdict(d, same)]


def verdict_table(metrics: dict, keys: dict, deltas: list) -> list[str]:
  """Every regime's paired difference to oversample (synthetic ones to real too) that the
  family of comparisons below does not hold, one row per comparison and score, where the
  interval lies in a column."""
  family = {
    (r["regime"], r["baseline"], r["score"])
    for r in (metrics.get("comparisons") or {}).get("rows") or []
  }
  rows = []
  for regime, entry in metrics["regimes"].items():
    if "scores" not in entry:
      continue
    for base in ("oversample", "real") if "synthetic" in regime else ("oversample",):
      for key in deltas:
        d = (entry.get(f"delta_vs_{base}") or {}).get(key) or {}
        if regime == base or d.get("includes_zero") is None or (regime, base, key) in family:
          continue
        cells = [f"{regime} − {base}", keys[key], *_delta_cells(metrics, d, regime, base, key)]
        rows.append("| " + " | ".join(cells) + " |")
  if not rows:
    return []
  return [
    "Paired differences (95 % interval; 'includes 0': no difference shown at this test "
    f"support; '{_NOT_SHOWN}': both regimes predict the same, a zero by construction):",
    "",
    "| regime − baseline | score | Δ [95% CI] | the interval |",
    "| --- | --- | --- | --- |",
    *rows,
    "",
  ]


def _score_cell(metrics: dict, entry: dict, key: str) -> str:
  why = few_events(metrics, key)
  return f"n/a ({why})" if why else _ci(entry["scores"].get(key))


def headline_table(metrics: dict) -> str:
  """The classifier section's lead: scores and paired differences with 95 % intervals."""
  keys = {k: v for k, v in _score_keys(metrics).items() if _has_key(metrics, k)}
  support = metrics.get("support") or {}
  deltas = [k for k in keys if not k.startswith("bss")]
  head = ["regime", *(f"{v} [95% CI]" for v in keys.values())]
  head += [f"Δ {keys[k]} vs oversample [CI]" for k in deltas] + ["test support"]
  lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
  for regime, entry in metrics["regimes"].items():
    if "scores" not in entry:
      reason = entry.get("skipped", "not trained")
      lines.append(f"| {regime} | {reason} |" + " |" * (len(head) - 2))
      continue
    cells = [regime] + [_score_cell(metrics, entry, k) for k in keys]
    delta = entry.get("delta_vs_oversample") or {}
    for k in deltas:
      if regime == "oversample":
        cells.append("—")
      elif few_events(metrics, k):
        cells.append("n/a")
      elif _same(metrics, regime, "oversample"):
        cells.append(_NOT_SHOWN)
      else:
        cells.append(_ci(delta.get(k), signed=True))
    cells.append(_support_cell(support))
    lines.append("| " + " | ".join(cells) + " |")
  per_class = support.get("per_class") or {}
  text = [
    f"Task `{metrics['task']}` (labels `{metrics.get('label', '?')}`"
    + (f", fold {metrics['fold']}" if metrics.get("fold") is not None else "")
    + f"); test split; mean over {len(metrics['seeds'])} seed(s) × synthetic pools; 95 % "
    f"interval of a paired bootstrap over {_units(metrics)}, seeds "
    f"and pools ({(metrics.get('bootstrap') or {}).get('num_samples', '?')} resamples{_METHOD}",
    "",
    *lines,
    "",
    "Test support per class: "
    + ", ".join(f"{n} {_support_cell(s)}" for n, s in per_class.items())
    + ".",
  ]
  text += ["", *primary_lines(metrics), *comparisons_table(metrics)]
  if metrics.get("forecast"):
    text[1:1] = ["", f"Forecast definition: {metrics['forecast']}."]
  if metrics.get("climatology") is not None:
    text.append(
      f"BSS: Brier skill score against climatology (training base rate "
      f"{metrics['climatology']:.3f}); reliability diagram below."
    )
  if metrics.get("operating_point"):
    text.append(OPERATING_POINT)
  text += ["", "![scores with intervals](classifier/scores.png)", ""]
  text += verdict_table(metrics, keys, deltas)
  text.append(
    "- The synthetic regimes count as useful only where their difference to oversample "
    "(and to focal / augment) lies above zero."
  )
  for regime, sel in (metrics.get("selection") or {}).items():
    grid = "; ".join(
      f"{_point_text(p)} → {p['selection_score']:.3f}"
      for p in sel["grid"]
      if p.get("selection_score") is not None
    )
    if sel.get("from"):  # Taken from another regime's choice ('reweighted').
      text.append(f"- {regime}: {_point_text(sel['chosen'])}: {sel.get('note', '')}.")
      continue
    if not sel["grid"]:  # One point: fixed a priori in the config, nothing chosen.
      text.append(f"- {regime}: {_point_text(sel['chosen'])}, fixed a priori (config).")
      continue
    text.append(
      f"- {regime}: {_point_text(sel['chosen'])}"
      + f" chosen on validation {sel['metric']} (seed {sel['seed']}, pool 0"
      + (f"; {grid}" if grid else f"; {sel.get('note', '')}")
      + ")."
    )
  return "\n".join(text)


OPERATING_POINT = (
  "Operating point: every regime's TSS is read at one rule, the threshold on the event "
  "probability (the positive class; P(M)+P(X) for ≥M) that maximises its validation TSS "
  "(metrics.json: operating_point per run; the runs' validation probabilities in "
  "val_probs.npz); macro F1 of a multiclass task stays the argmax's. AUC: ROC area of that "
  "probability (threshold-free). BSS′: Brier skill after moving each regime's probabilities "
  "from the class prior it trained on (oversampled, synthetic and weighted examples "
  "included) to the real training base rate (p′ ∝ p·π_test/π_train)."
)

_POINT_WORDS = {
  "guidance_scale": "guidance",
  "synthetic_ratio": "ratio",
  "focal_gamma": "focal γ",
  "oversample_share": "oversample share",
  "class_weight_power": "class-weight power",
  "augment_rotation_deg": "rotation (deg)",
}


def _point_text(point: dict) -> str:
  """``guidance 10, ratio 0.5`` / ``focal γ 2`` / ``class prior 0.52, 0.48``: a grid point."""
  words = []
  for key, value in point.items():
    if key in ("selection_score", "best_step", "validation") or value is None:
      continue
    if isinstance(value, list | tuple):
      words.append(f"{key.replace('_', ' ')} " + ", ".join(f"{v:.3g}" for v in value))
    else:
      words.append(f"{_POINT_WORDS.get(key, key)} {value:g}")
  return ", ".join(words)
