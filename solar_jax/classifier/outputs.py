"""What the classifier experiment writes besides its runs: intervals, predictions.csv, plots.

``add_uncertainty`` puts the paired-bootstrap figures (``metrics/bootstrap``)
beside every regime's scores; ``write_predictions`` writes one row per test
frame and run; ``write_plots`` the scores and reliability figures.
"""

from __future__ import annotations

import csv
import io

import numpy as np

from solar_jax import workdir as wd
from solar_jax.classifier import decisions
from solar_jax.classifier.trainer import thresholds
from solar_jax.classifier.training_sets import BASELINES, CLASSICAL, SYNTHETIC_REGIMES
from solar_jax.data import frame_facts
from solar_jax.metrics import bootstrap, classification


def event_thresholds(config) -> dict[str, int]:
  """{'ge_m': index of M, ...} for the bootstrap's ``tss_ge_m`` (multiclass tasks)."""
  return {f"ge_{k[2:].lower()}": v for k, v in thresholds(config).items()}


def endpoint_score(endpoint: str, task: str, class_names) -> str | None:
  """The score key of ``classifier.primary_endpoint`` in ``task``; None where it has none.

  'delta_tss_ge_m': ``tss_ge_m`` of the multiclass tasks, ``tss`` of the binary >=M
  tasks ('ge_m', 'forecast_ge_m'); not defined for >=C tasks.
  """
  score = endpoint.removeprefix("delta_")
  if score == "tss_ge_m" and len(class_names) == 2:
    return "tss" if task.endswith("ge_m") else None
  return score


def primary_spec(endpoint: str, task: str, class_names) -> tuple[str, tuple, tuple] | None:
  """(score, candidates, baselines) of the primary endpoint (``bootstrap.primary_endpoint``)."""
  score = endpoint_score(endpoint, task, class_names)
  return None if score is None else (score, SYNTHETIC_REGIMES, CLASSICAL)


def test_family(summary: dict, class_names) -> list[dict]:
  """``bootstrap.comparisons`` of the report's scores against every baseline (Holm family)."""
  scores = ["macro_f1", "tss_ge_m"] if len(class_names) > 2 else ["macro_f1", "tss", "bss"]
  return bootstrap.comparisons(summary["regimes"], scores, BASELINES)


def add_uncertainty(metrics: dict, test_labels, groups, config, climatology, units=None) -> dict:
  """Adds the paired-bootstrap figures (``bootstrap.summarize``) to every trained regime.

  ``units``: the resampling units (``real_data.frame_units``: active regions, blocks
  of quiet days) where coarser than the event ``groups``; the support counts both.
  """
  runs = {}
  for regime, entry in metrics["regimes"].items():
    if "runs" not in entry:
      continue
    runs[regime] = {}
    for key, result in entry["runs"].items():
      seed, k = (int(x) for x in key.split("/"))
      runs[regime][(seed, k)] = decisions.bootstrap_run(result)
  if not runs:
    return metrics
  summary = bootstrap.summarize(
    test_labels,
    groups if units is None else units,
    runs,
    metrics["class_names"],
    thresholds=event_thresholds(config),
    # Binary: the positive class's climatology; multiclass: each event's (its BSS').
    reference=climatology if climatology is not None else metrics.get("event_climatology"),
    num_samples=config.classifier.bootstrap_samples,
    seed=config.seed,
    baselines=BASELINES,
    events=None if units is None else groups,
    primary=primary_spec(
      config.classifier.primary_endpoint, metrics["task"], metrics["class_names"]
    ),
  )
  metrics["support"] = summary["support"]
  metrics["bootstrap"] = {
    "num_samples": summary["num_samples"],
    "unit": (
      "test groups (flare event ids; days of quiet frames), seeds and synthetic pools"
      if units is None
      else "test active regions (a region returning a rotation later is one; flares without "
      f"NOAA number: the event), blocks of {frame_facts.QUIET_BLOCK_DAYS} days of quiet "
      "frames, seeds and synthetic pools"
    ),
    "strata": summary["strata"],
    "stratified": "groups drawn within strata of their class set (bootstrap.group_strata)",
    "macro_labels": "classes of the test truth or of the run's test predictions",
    "interval": "95 % percentile interval; differences paired (same resamples for every regime)",
  }
  for regime, figures in summary["regimes"].items():
    entry = metrics["regimes"][regime]
    entry["scores"] = figures["scores"]
    entry["ci95"] = {name: s["ci95"] for name, s in figures["scores"].items()}
    for base in BASELINES:
      if f"delta_vs_{base}" in figures:
        entry[f"delta_vs_{base}"] = figures[f"delta_vs_{base}"]
    entry["support"] = {k: v for k, v in summary["support"].items() if k != "per_class"}
    # Reliability of the probabilities at the test prior (decisions.py), pooled over runs.
    event, index = reliability_event(metrics)
    if index is not None:
      probs = [decisions.reliability_probabilities(r, event) for r in entry["runs"].values()]
      if all(p is not None for p in probs):
        truth = np.tile(np.asarray(test_labels) >= index, len(probs))
        entry["reliability"] = bootstrap.reliability(np.concatenate(probs), truth)
  endpoint = summary.get("primary")
  if endpoint is None:
    endpoint = {"score": None, "mean": None, "note": f"not defined for task {metrics['task']}"}
  metrics["primary_endpoint"] = {"name": config.classifier.primary_endpoint, **endpoint}
  metrics["comparisons"] = {
    "family": "every regime x baseline x score difference reported (a pair of baselines once)",
    "p_value": "two-sided paired bootstrap: min(1, 2 min(P(delta <= 0), P(delta >= 0)))",
    "adjustment": "Holm (family-wise); the primary endpoint is not in the family",
    "rows": test_family(summary, metrics["class_names"]),
  }
  return metrics


def reliability_event(metrics: dict) -> tuple[str | None, int | None]:
  """(event, first class index) of the reliability diagram: the positive class of a binary
  task, >=M of a multiclass one; (None, None) where there is none."""
  names = metrics["class_names"]
  if len(names) == 2:
    return None, 1
  if "M" in names and "ge_m" in (metrics.get("event_climatology") or {}):
    return "ge_m", list(names).index("M")
  return None, None


def write_plots(out_dir, metrics: dict) -> None:
  regimes = {r: e for r, e in metrics["regimes"].items() if "scores" in e}
  if not regimes:
    return
  multiclass = len(metrics["class_names"]) > 2
  suffix = "_ge_m" if multiclass else ""
  event = ">=M" if multiclass else metrics["class_names"][1]
  labels = {"macro_f1": "macro F1", f"tss{suffix}": f"TSS {event}", f"auc{suffix}": f"AUC {event}"}
  classification.save_interval_png(regimes, labels, out_dir / "scores.png", baseline="oversample")
  tables = {r: e["reliability"] for r, e in regimes.items() if "reliability" in e}
  name, _ = reliability_event(metrics)
  reference = metrics.get("climatology") if name is None else metrics["event_climatology"][name]
  if tables and reference is not None:
    classification.save_reliability_png(
      tables,
      reference,
      out_dir / "reliability.png",
      title=f"P({event}) at the real training prior; test split, pooled over runs",
    )


PREDICTION_COLUMNS = (
  "id",
  "time",
  "group",
  "true_class",
  "predicted_class",
  "prob_positive",  # P(positive class); multiclass tasks: P(M) + P(X), the >=M event.
  "regime",
  "seed",
  "pool",
  "source",
  "prob_positive_corrected",  # The same at the real training prior (decisions.py).
  "forecast_positive",  # 1 where prob_positive reaches the run's validation operating point.
  # The bootstrap unit and the facts behind it: pooled folds merge regions across folds.
  "unit",
  "flare_event_id",
  "noaa_ar",
  "flare_peak",
  "flare_hgs_lat",
  "flare_hgs_lon",
)


def write_predictions(path, rows) -> None:
  buffer = io.StringIO()
  out = csv.writer(buffer)
  out.writerow(PREDICTION_COLUMNS)
  out.writerows(["" if v is None else v for v in row] for row in rows)
  wd.write_text(path, buffer.getvalue())
