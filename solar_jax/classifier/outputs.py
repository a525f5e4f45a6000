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
from solar_jax.metrics import bootstrap, classification


def event_thresholds(config) -> dict[str, int]:
  """{'ge_m': index of M, ...} for the bootstrap's ``tss_ge_m`` (multiclass tasks)."""
  return {f"ge_{k[2:].lower()}": v for k, v in thresholds(config).items()}


def add_uncertainty(metrics: dict, test_labels, groups, config, climatology) -> dict:
  """Adds the paired-bootstrap figures (``bootstrap.summarize``) to every trained regime."""
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
    groups,
    runs,
    metrics["class_names"],
    thresholds=event_thresholds(config),
    # Binary: the positive class's climatology; multiclass: each event's (its BSS').
    reference=climatology if climatology is not None else metrics.get("event_climatology"),
    num_samples=config.classifier.bootstrap_samples,
    seed=config.seed,
  )
  metrics["support"] = summary["support"]
  metrics["bootstrap"] = {
    "num_samples": summary["num_samples"],
    "unit": "test groups (flare event ids; days of quiet frames), seeds and synthetic pools",
    "strata": summary["strata"],
    "stratified": "groups drawn within strata of their class set (bootstrap.group_strata)",
    "macro_labels": "classes of the test truth or of the run's test predictions",
    "interval": "95 % percentile interval; differences paired (same resamples for every regime)",
  }
  for regime, figures in summary["regimes"].items():
    entry = metrics["regimes"][regime]
    entry["scores"] = figures["scores"]
    entry["ci95"] = {name: s["ci95"] for name, s in figures["scores"].items()}
    for base in ("real", "oversample"):
      if f"delta_vs_{base}" in figures:
        entry[f"delta_vs_{base}"] = figures[f"delta_vs_{base}"]
    entry["support"] = {k: summary["support"][k] for k in ("events", "frames")}
    # Reliability of the probabilities at the test prior (decisions.py), pooled over runs.
    event, index = reliability_event(metrics)
    if index is not None:
      probs = [decisions.reliability_probabilities(r, event) for r in entry["runs"].values()]
      if all(p is not None for p in probs):
        truth = np.tile(np.asarray(test_labels) >= index, len(probs))
        entry["reliability"] = bootstrap.reliability(np.concatenate(probs), truth)
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
)


def write_predictions(path, rows) -> None:
  buffer = io.StringIO()
  out = csv.writer(buffer)
  out.writerow(PREDICTION_COLUMNS)
  out.writerows(["" if v is None else v for v in row] for row in rows)
  wd.write_text(path, buffer.getvalue())
