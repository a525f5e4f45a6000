"""Pools the classifier experiments of several cross-validation folds into one table.

Each fold is one workdir run with ``--config.data.fold=k`` (the dataset assigns
month blocks to folds; the test blocks of the folds are disjoint), so pooling
the folds' test predictions scores every flare once, X flares included. The
pooled figures use the same paired bootstrap as one fold
(``metrics/bootstrap``): test active regions (merged over the folds: a region
returning a rotation later may be tested in two folds), blocks of quiet days,
seeds and pools are resampled, and the runs of one (regime, seed, pool) are
concatenated over the folds. The primary endpoint (the first fold's
``classifier.primary_endpoint``) is pooled too, beside every regime x baseline
difference with Holm-adjusted p-values. The Brier
skill score's reference is each frame's own fold climatology.

    python -m solar_jax.classifier.folds --out=runs/folds runs/fold0 runs/fold1 ... runs/fold9

Writes ``<out>/folds.json`` (support, per-regime scores, ``ci95``,
``delta_vs_<baseline>``, ``primary_endpoint``, ``comparisons``) and ``<out>/folds.md`` (the report's
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
from solar_jax.classifier import outputs, tables, training_sets
from solar_jax.data import frame_facts, splits
from solar_jax.metrics import bootstrap, classification

# Run keys of the headline event -> predictions.csv columns (outputs.PREDICTION_COLUMNS).
_EVENT_COLUMNS = {
  "prob": "prob_positive",
  "prob_corrected": "prob_positive_corrected",
  "decision": "forecast_positive",
}


def _number(text) -> float:
  return float(text) if text else np.nan


def read_fold(workdir) -> tuple[dict, list[dict]]:
  directory = wd.classifier_dir(workdir)
  metrics_path, rows_path = directory / "metrics.json", directory / "predictions.csv"
  for path in (metrics_path, rows_path):
    if not path.exists():
      raise errors.MissingInputError(f"{path} is missing: run --mode=classify on {workdir} first.")
  metrics = json.loads(metrics_path.read_text())
  rows = list(csv.DictReader(io.StringIO(rows_path.read_text())))
  return metrics, rows


def check_study(workdirs) -> int:
  """Refuses folds that are not one study; returns the number of folds K.

  The workdirs' config.json must give distinct folds covering 0..K-1 (K: the dataset's
  ``provenance.num_folds``), and the same data otherwise (``data.splits.training_record``
  but the fold: dataset and version, embargo, label policy, cooling lag, class scale): two copies of
  one fold, a missing fold or a fold of other data would not test every flare once.

  Raises:
    errors.MissingInputError: a workdir without config.json.
    errors.InputMismatchError: one line naming the workdirs and the field.
  """
  configs = []
  for workdir in workdirs:
    path = wd.config_path(workdir)
    if not path.exists():
      raise errors.MissingInputError(f"{path} is missing: run --mode=classify on {workdir} first.")
    configs.append(json.loads(path.read_text()))
  records = [splits.training_record(c) for c in configs]
  for workdir, record in zip(workdirs[1:], records[1:]):
    for key, value in records[0].items():
      if key != "data.fold" and record[key] != value:
        raise errors.InputMismatchError(
          f"{workdir}: {key}={record[key]!r} differs from {value!r} of {workdirs[0]}; pool "
          "the folds of one study (same dataset, version, embargo, label, cooling lag and scale)."
        )
  seen: dict = {}
  for workdir, record in zip(workdirs, records):
    fold = record["data.fold"]["fold"]
    if fold in seen:
      raise errors.InputMismatchError(
        f"{seen[fold]} and {workdir} are both fold {fold}: pool each fold once."
      )
    seen[fold] = workdir
  num_folds = int((configs[0].get("provenance") or {}).get("num_folds") or 0)
  if num_folds < 1:
    raise errors.InputMismatchError(
      f"{wd.config_path(workdirs[0])} records no provenance.num_folds (the dataset was not "
      "read): run --mode=classify again where the dataset is readable."
    )
  missing = sorted(set(range(num_folds)) - set(seen))
  extra = sorted(set(seen) - set(range(num_folds)))
  if missing or extra:
    raise errors.InputMismatchError(
      f"the dataset has {num_folds} folds (0..{num_folds - 1}); of the {len(seen)} workdirs, "
      f"folds {missing} are missing and {extra} do not exist: pool all of them, so that "
      "every flare is tested once."
    )
  return num_folds


def summarize_pooled(
  truth, groups, facts, runs, names, reference, event_reference, *, classes, **summarize_kwargs
) -> dict:
  """``bootstrap.summarize`` of runs gathered over folds (or workdirs) on one test set: the
  event thresholds ``ge_<c>`` of ``classes`` (multiclass tasks), every run's headline event
  (``headline_events``), resampling units from ``facts`` (else ``groups``) and the
  climatology / event reference. ``summarize_kwargs``: the rest of summarize's arguments."""
  binary = len(names) == 2
  thresholds = {}
  if not binary:
    thresholds = {f"ge_{c.lower()}": names.index(c) for c in classes if c in names}
  headline_events(runs, binary, "ge_m" in thresholds)
  ge_m_reference = np.asarray(event_reference)
  event_ref = None if np.isnan(ge_m_reference).any() else {"ge_m": ge_m_reference}
  units = pooled_units(groups, facts)
  return bootstrap.summarize(
    truth,
    groups if units is None else units,
    runs,
    names,
    thresholds=thresholds,
    reference=np.asarray(reference) if binary else event_ref,
    events=None if units is None else groups,
    **summarize_kwargs,
  )


def headline_events(runs: dict, binary: bool, has_ge_m: bool) -> None:
  """Puts each run's headline-event columns where ``bootstrap.summarize`` reads them."""
  for regime_runs in runs.values():
    for run in regime_runs.values():
      event = {k: run.pop(k) for k in ("prob", "prob_corrected", "decision")}
      if binary:
        run.update(prob=event["prob"], prob_corrected=event["prob_corrected"])
      elif has_ge_m and event["decision"] is not None and event["prob"] is not None:
        # The >=M event at each fold's own operating point (multiclass: P(M) + P(X)).
        run["events"] = {"ge_m": {**event, "decision": event["decision"] > 0.5}}


def pool_folds(workdirs, *, num_samples: int = 1000, seed: int = 0) -> dict:
  """The pooled metrics of the folds in ``workdirs`` (a metrics.json-like dict); the folds
  must be one study (``check_study``)."""
  check_study(workdirs)
  folds = [read_fold(w) for w in workdirs]
  first = folds[0][0]
  for (metrics, _), workdir in zip(folds, workdirs):
    for key in ("task", "class_names", "seeds", "class_scale"):
      if metrics.get(key) != first.get(key):
        raise errors.InputMismatchError(
          f"{workdir}: classifier {key} {metrics.get(key)!r} differs from {first.get(key)!r} "
          f"of {workdirs[0]}; pool folds of one experiment."
        )
  names = first["class_names"]
  truth, groups, reference, event_reference, runs, facts = gather(folds, names)
  binary = len(names) == 2
  endpoint = (first.get("primary_endpoint") or {}).get("name") or "delta_tss_ge_m"
  summary = summarize_pooled(
    truth,
    groups,
    facts,
    runs,
    names,
    reference,
    event_reference,
    classes=("M", "C"),
    num_samples=num_samples,
    seed=seed,
    baselines=training_sets.BASELINES,
    primary=outputs.primary_spec(endpoint, first["task"], names),
  )
  undefined = {"mean": None, "note": f"not defined for task {first['task']}"}
  pooled = {
    "task": first["task"],
    "label": first.get("label"),
    "class_scale": first.get("class_scale"),
    "fold": None,
    "folds": [str(w) for w in workdirs],
    "class_names": names,
    "seeds": first["seeds"],
    "climatology": float(np.nanmean(reference)) if binary else None,
    "operating_point": first.get("operating_point"),  # Each fold's runs at their own.
    "support": summary["support"],
    "bootstrap": {
      "num_samples": num_samples,
      "strata": summary["strata"],
      "unit": "test groups"
      if pooled_units(groups, facts) is None
      else "test active regions, merged over the folds",
    },
    "primary_endpoint": {"name": endpoint, **(summary.get("primary") or undefined)},
    "comparisons": {"rows": outputs.test_family(summary, names)},
    "regimes": {},
  }
  for regime, figures in summary["regimes"].items():
    pooled["regimes"][regime] = {
      **figures,
      "ci95": {k: v["ci95"] for k, v in figures["scores"].items()},
      "support": {k: v for k, v in summary["support"].items() if k != "per_class"},
    }
  return pooled


def gather(folds, names) -> tuple:
  """(truth, groups, climatology, >=M climatology, runs, prediction rows) of the folds'
  test frames, in fold order; every run must be in every fold."""
  truth, groups, reference, event_reference, runs, facts = [], [], [], [], {}, []
  for fold_index, (metrics, rows) in enumerate(folds):
    by_run: dict = {}
    for row in rows:
      by_run.setdefault((row["regime"], int(row["seed"]), int(row["pool"] or 0)), []).append(row)
    frames = next(iter(by_run.values()))
    truth += [names.index(r["true_class"]) for r in frames]
    groups += [r["group"] for r in frames]
    facts += frames
    reference += [metrics.get("climatology") or np.nan] * len(frames)
    ge_m = (metrics.get("event_climatology") or {}).get("ge_m")
    event_reference += [np.nan if ge_m is None else ge_m] * len(frames)
    for (regime, s, k), run_rows in by_run.items():
      run = runs.setdefault(regime, {}).setdefault((s, k), {"folds": []})
      run.setdefault("pred", []).extend(names.index(r["predicted_class"]) for r in run_rows)
      # The headline event's probability, at the test prior, and forecast (older files: NaN).
      for key, column in _EVENT_COLUMNS.items():
        run.setdefault(key, []).extend(_number(r.get(column)) for r in run_rows)
      run["folds"].append(fold_index)
  for regime, regime_runs in runs.items():
    for key, run in regime_runs.items():
      if run["folds"] != list(range(len(folds))):
        raise errors.InputMismatchError(
          f"regime {regime} run (seed, pool) {key} is missing from some folds: rerun them."
        )
      run["pred"] = np.asarray(run["pred"])
      for key in _EVENT_COLUMNS:
        values = np.asarray(run[key], np.float64)
        run[key] = None if np.isnan(values).any() else values
  return truth, groups, reference, event_reference, runs, facts


def pooled_units(groups, rows) -> np.ndarray | None:
  """The resampling units of the pooled test frames: active regions merged over all folds.

  A region whose passages fall in the test months of two folds (month m and m + 1
  are two folds) is one unit. From the prediction rows' region facts; None where
  a fold's predictions.csv predates them (the groups are used).
  """
  if not rows or any(not r.get("unit") for r in rows):
    return None

  def column(key, kind=str, blank=""):
    return np.array([kind(r.get(key) or blank) for r in rows], object if kind is str else kind)

  facts = {
    "flare_event_id": column("flare_event_id"),
    "noaa_ar": column("noaa_ar", int, 0),
    "flare_peak": column("flare_peak"),
    "flare_hgs_lat": column("flare_hgs_lat", float, "nan"),
    "flare_hgs_lon": column("flare_hgs_lon", float, "nan"),
  }
  return frame_facts.bootstrap_units(facts, groups)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("workdirs", nargs="+", help="one workdir per fold, after --mode=classify")
  parser.add_argument("--out", required=True, help="directory for folds.json and folds.md")
  parser.add_argument("--num_samples", type=int, default=1000, help="bootstrap resamples")
  args = parser.parse_args(argv)
  print(write_pooled(args.workdirs, args.out, num_samples=args.num_samples))


def write_pooled(workdirs, out, *, num_samples: int = 1000) -> str:
  """Pools ``workdirs`` (``pool_folds``) into ``out``/folds.json and folds.md; returns the text."""
  pooled = pool_folds(workdirs, num_samples=num_samples)
  out = epath.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  wd.write_json(out / "folds.json", classification.to_jsonable(pooled))
  table = tables.headline_table(pooled).replace(
    "![scores with intervals](classifier/scores.png)", ""
  )
  text = f"# Classifier, {len(workdirs)} folds pooled\n\n{table}\n"
  wd.write_text(out / "folds.md", text)
  return text


if __name__ == "__main__":
  main()
