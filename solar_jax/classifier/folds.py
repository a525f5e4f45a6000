"""Pools the classifier experiments of several cross-validation folds into one table.

Each fold is one workdir run with ``--config.data.fold=k`` (the dataset assigns
month blocks to folds; the test blocks of the folds are disjoint), so pooling
the folds' test predictions scores every flare once, X flares included. The
pooled figures use the same paired bootstrap as one fold
(``evaluation/bootstrap``): test events, seeds and pools are resampled, and the
runs of one (regime, seed, pool) are concatenated over the folds. The Brier
skill score's reference is each frame's own fold climatology.

    python -m solar_jax.classifier.folds --out=runs/folds runs/fold0 runs/fold1 ... runs/fold9

Writes ``<out>/folds.json`` (support, per-regime scores, ``ci95``,
``delta_vs_real``/``delta_vs_oversample``) and ``<out>/folds.md`` (the report's
headline table and the folds pooled).
"""

from __future__ import annotations

import argparse
import csv
import io
import json

import numpy as np
from etils import epath

from solar_jax import errors
from solar_jax import workdir as wd
from solar_jax.classifier import tables
from solar_jax.metrics import bootstrap, classification


def _read_fold(workdir) -> tuple[dict, list[dict]]:
  directory = wd.classifier_dir(workdir)
  metrics_path, rows_path = directory / "metrics.json", directory / "predictions.csv"
  for path in (metrics_path, rows_path):
    if not path.exists():
      raise errors.MissingInputError(f"{path} is missing: run --mode=classify on {workdir} first.")
  metrics = json.loads(metrics_path.read_text())
  rows = list(csv.DictReader(io.StringIO(rows_path.read_text())))
  return metrics, rows


def pool_folds(workdirs, *, num_samples: int = 1000, seed: int = 0) -> dict:
  """The pooled metrics of the folds in ``workdirs`` (a metrics.json-like dict)."""
  folds = [_read_fold(w) for w in workdirs]
  first = folds[0][0]
  for (metrics, _), workdir in zip(folds, workdirs):
    for key in ("task", "class_names", "seeds", "class_scale"):
      if metrics.get(key) != first.get(key):
        raise errors.InputMismatchError(
          f"{workdir}: classifier {key} {metrics.get(key)!r} differs from {first.get(key)!r} "
          f"of {workdirs[0]}; pool folds of one experiment."
        )
  names = first["class_names"]
  truth, groups, reference, runs = [], [], [], {}
  for fold_index, (metrics, rows) in enumerate(folds):
    by_run: dict = {}
    for row in rows:
      by_run.setdefault((row["regime"], int(row["seed"]), int(row["pool"] or 0)), []).append(row)
    frames = next(iter(by_run.values()))
    truth += [names.index(r["true_class"]) for r in frames]
    groups += [r["group"] for r in frames]
    reference += [metrics.get("climatology") or np.nan] * len(frames)
    for (regime, s, k), run_rows in by_run.items():
      run = runs.setdefault(regime, {}).setdefault((s, k), {"pred": [], "prob": [], "folds": []})
      run["pred"] += [names.index(r["predicted_class"]) for r in run_rows]
      run["prob"] += [float(r["prob_positive"]) if r["prob_positive"] else np.nan for r in run_rows]
      run["folds"].append(fold_index)
  for regime, regime_runs in runs.items():
    for key, run in regime_runs.items():
      if run["folds"] != list(range(len(folds))):
        raise errors.InputMismatchError(
          f"regime {regime} run (seed, pool) {key} is missing from some folds: rerun them."
        )
      run["pred"] = np.asarray(run["pred"])
      prob = np.asarray(run["prob"])
      run["prob"] = None if np.isnan(prob).any() else prob
  binary = len(names) == 2
  thresholds = {}
  if not binary:
    thresholds = {f"ge_{c.lower()}": names.index(c) for c in ("M", "C") if c in names}
  summary = bootstrap.summarize(
    truth,
    groups,
    runs,
    names,
    thresholds=thresholds,
    reference=np.asarray(reference) if binary else None,
    num_samples=num_samples,
    seed=seed,
  )
  pooled = {
    "task": first["task"],
    "label": first.get("label"),
    "class_scale": first.get("class_scale"),
    "fold": None,
    "folds": [str(w) for w in workdirs],
    "class_names": names,
    "seeds": first["seeds"],
    "climatology": float(np.nanmean(reference)) if binary else None,
    "support": summary["support"],
    "bootstrap": {"num_samples": num_samples},
    "regimes": {},
  }
  for regime, figures in summary["regimes"].items():
    pooled["regimes"][regime] = {
      **figures,
      "ci95": {k: v["ci95"] for k, v in figures["scores"].items()},
      "support": {k: summary["support"][k] for k in ("events", "frames")},
    }
  return pooled


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("workdirs", nargs="+", help="one workdir per fold, after --mode=classify")
  parser.add_argument("--out", required=True, help="directory for folds.json and folds.md")
  parser.add_argument("--num_samples", type=int, default=1000, help="bootstrap resamples")
  args = parser.parse_args(argv)
  pooled = pool_folds(args.workdirs, num_samples=args.num_samples)
  out = epath.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  wd.write_json(out / "folds.json", classification.to_jsonable(pooled))
  table = tables.headline_table(pooled).replace(
    "![scores with intervals](classifier/scores.png)", ""
  )
  text = f"# Classifier, {len(args.workdirs)} folds pooled\n\n{table}\n"
  wd.write_text(out / "folds.md", text)
  print(text)


if __name__ == "__main__":
  main()
