"""--mode=classify: do synthetic images help a flare classifier more than the classical fixes?

Each regime in ``config.classifier.regimes`` is trained once per seed in
``classifier.seeds`` (and, for the synthetic regimes, once per synthetic pool)
and scored once on the held-out test split:

* ``real``: the training split as it is;
* ``weighted``: class-weighted cross-entropy, ``w_c = N / (K' n_c)`` (class-balanced loss);
* ``focal``: focal loss ``(1 - p_t)^gamma CE`` (``classifier.focal_gamma``; Lin et al. 2017);
* ``oversample``: every class resampled with replacement up to the largest class;
* ``augment``: the real split with random north-south flips, small rotations
  about the disk centre and intensity gains (``classifier_data``: why each
  keeps a plausible AIA frame);
* ``real_synthetic``: real + ``ratio * (max_c n_c - n_c)`` synthetic images per GOES class;
* ``synthetic_only``: synthetic images only, as many per GOES class as the real split (TSTR).

The synthetic regimes must beat ``oversample``, ``weighted``/``focal`` and
``augment``, not only ``real``, to be called useful.

Tasks: 'multiclass', 'ge_m', 'ge_c' classify the frame's own class
(``data.label``); 'forecast_multiclass', 'forecast_ge_m', 'forecast_ge_c' the
largest GOES class of the next 24 h (the dataset's ``max_class_next_24h``).
Binary tasks also get the Brier skill score against climatology (the
training split's base rate) and a reliability diagram.

The test split is touched once. The synthetic regimes' guidance scale
(``classifier.guidance_grid``) and synthetic ratio (``classifier.ratio_grid``)
are chosen on the VALIDATION split, training the first seed on pool 0 for each
grid point; the choice and the validation scores it was made from are recorded
under ``selection`` in metrics.json. Then every (regime, seed, pool) run is
trained with the chosen values and predicts the test split exactly once
(``test_reads`` in metrics.json); the grid run of the chosen point is that
run for (first seed, pool 0) and is not trained again.

Uncertainty (``evaluation/bootstrap``): per regime the mean over runs and a
95 % interval from a paired bootstrap over seeds, pools and test events (the
dataset's ``group``: flares, and days of quiet frames), with the differences
against ``real`` and ``oversample``; the test support (events, frames, per
class) is written beside them. Synthetic pools are ``classifier.num_pools``
draws of the DDPM with seeds ``sampling.seed + k``, cached under
``samples/<step>-<key>/`` (a sample set like any other, drawn by the same function,
without FITS; ``training_sets.pool_set``); ``metrics.json`` names the chosen
guidance's pool 0 (``synthetic.path``), which ``--mode=evaluate`` scores.
Without a DDPM checkpoint the synthetic regimes are skipped (recorded).

Cross-validation: ``--config.data.fold=k`` runs all of this on fold k (one
workdir per fold); ``python -m solar_jax.classifier.folds`` pools the folds' test
predictions into one table.

Outputs under ``workdir/classifier/``: ``metrics.json``, ``predictions.csv``
(one row per test frame and run, with its group and positive-class
probability), ``scores.png`` (scores and differences with intervals),
``reliability.png`` (binary tasks), ``confusion_<regime>.png`` (summed over
runs), ``runs/<regime>/seed_<s>[_pool<k>]/`` (best parameters; result.json),
``synthetic/`` and TensorBoard events. Runs are sharded over the devices like
the DDPM trainer; a finished run is reused when its config, counts and pool match.
"""

from __future__ import annotations

import csv
import io
import json
import os

import jax
import ml_collections
import numpy as np
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from solar_jax import checkpointing, parallel
from solar_jax import workdir as wd
from solar_jax.classifier import training_sets
from solar_jax.classifier.trainer import (
  architecture,
  make_programs,
  predict_labels,
  score,
  selection_metric,
  selection_score,
  thresholds,
  train_one,
)
from solar_jax.classifier.training_sets import SYNTHETIC_REGIMES
from solar_jax.data import resolve
from solar_jax.metrics import bootstrap, classification
from solar_jax.models import classifier as classifier_lib

# Fields whose value a run does not depend on (or that enter through its pool and counts).
_NOT_FINGERPRINTED = (
  "seeds",
  "regimes",
  "guidance_scale",
  "guidance_grid",
  "ratio_grid",
  "synthetic_ratio",
  "sampling_steps",
  "num_pools",
  "bootstrap_samples",
  # Enter through the training set, for the regimes that use them:
  "focal_gamma",
  "augment_flips",
  "augment_rotation_deg",
  "augment_intensity",
)
_AUGMENT_FIELDS = ("augment_flips", "augment_rotation_deg", "augment_intensity")


def _text(values, n: int) -> list[str]:
  if values is None:
    return [""] * n
  return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).tolist()]


def _fingerprint(config, ts, synthetic_pool) -> str:
  """What a finished run depends on: reused only when all of it matches."""
  c = config.classifier
  return json.dumps(
    {
      "focal_gamma": ts.focal_gamma,
      "augment": {k: c[k] for k in _AUGMENT_FIELDS} if ts.augment else None,
      "classifier": {
        k: v for k, v in config.classifier.to_dict().items() if k not in _NOT_FINGERPRINTED
      },
      "data": config.data.to_dict(),
      "seed": config.seed,
      "counts": ts.counts,
      "synthetic_pool": synthetic_pool,
    },
    sort_keys=True,
    default=str,
  )


def _save_params(run_dir, params, step: int, meta: dict) -> None:
  # A retrained run replaces the old one, whose best step may equal or follow the new one.
  stale = wd.checkpoints_dir(wd.absolute(run_dir))
  if parallel.is_main_process() and stale.exists():
    stale.rmtree()
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"solar_jax: {run_dir} cleared")
  checkpointer = checkpointing.Checkpointer(run_dir, keep=1)
  try:
    checkpointer.save(step, {"params": params}, meta)
  finally:
    checkpointer.close()


def run_dir(workdir, regime: str, seed: int, pool: int) -> epath.Path:
  """``runs/<regime>/seed_<s>`` (pool 0 and real-data regimes) or ``seed_<s>_pool<k>``."""
  path = wd.classifier_run_dir(workdir, regime, seed)
  return path if pool == 0 else path.with_name(f"seed_{seed}_pool{pool}")


def event_thresholds(config) -> dict[str, int]:
  """{'ge_m': index of M, ...} for the bootstrap's ``tss_ge_m`` (multiclass tasks)."""
  return {f"ge_{k[2:].lower()}": v for k, v in thresholds(config).items()}


class _Experiment:
  """The data every run of one ``run`` call shares, and the runs' bookkeeping."""

  def __init__(self, config, workdir, splits, mesh, synthetic):
    c = config.classifier
    self.config, self.workdir, self.mesh = config, epath.Path(workdir), mesh
    self.goes = tuple(config.data.classes)
    self.task = classifier_lib.task_of(c, config.data.label)
    self.names = classifier_lib.task_class_names(self.task, self.goes)
    training_sets.check_splits(config, splits)
    self.splits = splits
    self.train, val, self.test = splits["train"], splits["validation"], splits["test"]
    self.validation = {
      "image": np.asarray(val["image"], np.float32),
      "label": classifier_lib.task_labels(val["label"], self.task, self.goes),
    }
    self.test_labels = classifier_lib.task_labels(self.test["label"], self.task, self.goes)
    n = len(self.test_labels)
    self.test_times = _text(self.test.get("time"), n)
    self.test_sources = _text(self.test.get("source"), n)
    self.test_groups = training_sets.frame_groups(self.test)
    train_task = classifier_lib.task_labels(self.train["label"], self.task, self.goes)
    # Climatology: the training split's base rate of the positive class (binary tasks).
    self.climatology = float(np.mean(train_task == 1)) if len(self.names) == 2 else None
    self.synthetic = synthetic  # None, one pool dict (tests) or callable(guidance, k) -> pool.
    self.pools: dict = {}
    self.trained: dict = {}  # Grid runs kept in memory: (regime, seed, fingerprint) -> (params, info).
    self.test_reads: dict[str, int] = {}

  def header(self) -> dict:
    c = self.config.classifier
    return {
      "task": self.task,
      "label": self.config.classifier.label or self.config.data.label,
      "fold": self.config.data.fold,
      "class_names": list(self.names),
      "selection_metric": selection_metric(self.task),
      "seeds": list(c.seeds),
      "num_pools": c.num_pools,
      "num_steps": c.num_steps,
      "climatology": self.climatology,
      "confusion_png": "confusion_<regime>.png: confusion matrix summed over runs",
      "data": {k: training_sets.describe(v["label"], self.goes) for k, v in self.splits.items()},
      "regimes": {},
    }

  # ------------------------------------------------------------ pools ---

  def pool(self, guidance: float, k: int) -> dict:
    """Synthetic pool ``k`` at ``guidance`` (raises NoDDPMCheckpointError without a DDPM)."""
    if (guidance, k) in self.pools:
      return self.pools[(guidance, k)]
    if callable(self.synthetic):
      pool = self.synthetic(guidance, k)
    elif self.synthetic is not None:
      pool = self.synthetic
    else:
      c = self.config.classifier
      wanted = [r for r in c.regimes if r in SYNTHETIC_REGIMES]
      train_goes = training_sets.per_class_counts(self.train["label"], len(self.goes))
      ratio = max(training_sets.pool_ratios(self.config))
      counts = training_sets.synthetic_pool_counts(train_goes, wanted, ratio)
      with jax.set_mesh(self.mesh):
        pool = training_sets.synthetic_pool(
          self.config, self.workdir, counts, mesh=self.mesh, guidance=guidance, pool=k
        )
    self.pools[(guidance, k)] = pool
    return pool

  def synthetic_available(self) -> str | None:
    """None when synthetic images can be had, else why the synthetic regimes are skipped."""
    c = self.config.classifier
    if not any(r in SYNTHETIC_REGIMES for r in c.regimes):
      return None
    try:
      self.pool(training_sets.pool_guidances(self.config)[0], 0)
    except training_sets.NoDDPMCheckpointError as e:
      reason = f"skipped: no DDPM checkpoint ({e})"
      logging.warning("Synthetic regimes %s", reason)
      return reason
    return None

  def _pool_key(self, pool: dict, guidance: float, k: int) -> list:
    # The pool is a function of the DDPM step, its per-class sizes and the sampling settings.
    sizes = training_sets.per_class_counts(pool["label"], len(self.goes))
    return [pool.get("step"), sizes.tolist(), pool.get("settings"), guidance, k]

  # ------------------------------------------------- validation grid ---

  def choose(self, regime: str, programs, writer) -> dict:
    """Guidance (and ratio) of ``regime`` chosen on validation, with the scores of each point.

    The best validation selection score wins (ties: the first grid point).
    """
    c, config = self.config.classifier, self.config
    ratios = training_sets.pool_ratios(config) if regime == "real_synthetic" else (None,)
    grid = [(g, r) for g in training_sets.pool_guidances(config) for r in ratios]
    seed = c.seeds[0]
    record = {
      "split": "validation",
      "seed": seed,
      "pool": 0,
      "metric": selection_metric(self.task),
      "grid": [],
    }
    if len(grid) == 1:
      g, r = grid[0]
      record["chosen"] = {"guidance_scale": g, "synthetic_ratio": r}
      record["note"] = "one grid point: nothing to choose"
      return record
    best = None
    for g, r in grid:
      pool = self.pool(g, 0)
      ts = training_sets.build_training_set(regime, self.train, pool, config, seed, ratio=r)
      fingerprint = _fingerprint(config, ts, self._pool_key(pool, g, 0))
      point_name = f"g{g:g}" + ("" if r is None else f"_r{r:g}")
      cache = wd.classifier_dir(self.workdir) / "runs" / regime / "grid" / f"{point_name}.json"
      saved = json.loads(cache.read_text()) if cache.exists() else {}
      if saved.get("fingerprint") == fingerprint:
        info = saved["info"]
      else:
        params, info = train_one(
          config,
          programs,
          ts,
          self.validation,
          seed=seed,
          name=f"{regime}/grid_{point_name}",
          writer=writer,
        )
        info = classification.to_jsonable(info)
        self.trained[(regime, seed, fingerprint)] = (params, info)
        if parallel.is_main_process():
          cache.parent.mkdir(parents=True, exist_ok=True)
          wd.write_text(cache, json.dumps({"fingerprint": fingerprint, "info": info}))
      validation = info.get("validation") or {}
      value = selection_score(config, validation) if validation else float("nan")
      point = {
        "guidance_scale": g,
        "synthetic_ratio": r,
        "selection_score": value,
        "best_step": info["best_step"],
        "validation": {k: validation.get(k) for k in ("macro_f1", "tss", "hss", "accuracy")},
      }
      record["grid"].append(point)
      if best is None or (np.isfinite(value) and not value <= best[0]):
        best = (value, g, r)
    record["chosen"] = {"guidance_scale": best[1], "synthetic_ratio": best[2]}
    logging.info("Classifier %s: chose %s on validation.", regime, record["chosen"])
    return record

  # ------------------------------------------------------------ runs ---

  def run_regime(self, regime, programs, writer, rows, chosen) -> dict:
    """Trains (or reuses) every seed (and pool) of ``regime``; appends test predictions to rows."""
    c, names = self.config.classifier, self.names
    synthetic = regime in SYNTHETIC_REGIMES
    entry = {"seeds": {}, "runs": {}}
    confusion_sum = np.zeros((len(names), len(names)), np.int64)
    for seed in c.seeds:
      for k in range(c.num_pools if synthetic else 1):
        pool = self.pool(chosen["guidance_scale"], k) if synthetic else None
        ts = training_sets.build_training_set(
          regime, self.train, pool, self.config, seed, ratio=chosen.get("synthetic_ratio")
        )
        entry["counts"] = ts.counts  # Counts depend on neither the seed nor the pool.
        result = self.train_or_reuse(programs, ts, regime, seed, k, pool, chosen, writer)
        entry["runs"][f"{seed}/{k}"] = result
        if k == 0:
          entry["seeds"][str(seed)] = result
        confusion_sum += np.asarray(result["test"]["confusion"])
        prob = result.get("probabilities") or [None] * len(result["predictions"])
        for i, p in enumerate(result["predictions"]):
          true = names[self.test_labels[i]]
          rows.append(
            [i, self.test_times[i], self.test_groups[i], true, names[p], prob[i], regime, seed, k]
            + [self.test_sources[i]]
          )
    entry["mean_std"] = classification.mean_std_over_seeds(
      [r["test"] for r in entry["runs"].values()]
    )
    entry["confusion_summed"] = confusion_sum.tolist()
    if parallel.is_main_process():
      classification.save_confusion_png(
        confusion_sum,
        names,
        wd.classifier_dir(self.workdir) / f"confusion_{regime}.png",
        title=f"{regime}: test split, summed over {len(entry['runs'])} run(s)",
      )
    return entry

  def read_test(self, programs, params, name: str):
    """The one read of the test split by run ``name``: (labels, probabilities)."""
    self.test_reads[name] = self.test_reads.get(name, 0) + 1
    c = self.config.classifier
    return predict_labels(programs, params, self.test["image"], c.batch_size, self.mesh)

  def train_or_reuse(self, programs, ts, regime, seed, k, pool, chosen, writer) -> dict:
    """Result of one (regime, seed, pool) run: reused from its directory when nothing changed."""
    config = self.config
    directory = run_dir(self.workdir, regime, seed, k)
    key = None if pool is None else self._pool_key(pool, chosen["guidance_scale"], k)
    fingerprint = _fingerprint(config, ts, key)
    name = f"{regime}/seed{seed}" + (f"/pool{k}" if k else "")
    self.runs_started = getattr(self, "runs_started", 0) + 1
    logging.info(
      "Classifier run %d of %d: %s.", self.runs_started, getattr(self, "runs_total", 0), name
    )
    result_path = directory / "result.json"
    if result_path.exists():
      saved = json.loads(result_path.read_text())
      if saved.get("fingerprint") == fingerprint:
        logging.info("Reusing the finished classifier run %s.", directory)
        return saved["result"]
    if (regime, seed, fingerprint) in self.trained:  # The chosen grid point: trained already.
      params, info = self.trained.pop((regime, seed, fingerprint))
    else:
      params, info = train_one(
        config, programs, ts, self.validation, seed=seed, name=name, writer=writer
      )
    pred, prob = self.read_test(programs, params, name)
    result = {"test": score(config, self.test_labels, pred), **info, "predictions": pred.tolist()}
    if len(self.names) == 2:
      result["probabilities"] = prob[:, 1].tolist()
    meta = {"architecture": architecture(config), "regime": regime, "seed": seed, "pool": k}
    _save_params(directory, params, int(info["best_step"]), meta)
    result = classification.to_jsonable(result)
    if parallel.is_main_process():
      wd.write_text(result_path, json.dumps({"fingerprint": fingerprint, "result": result}))
    return result


def add_uncertainty(metrics: dict, test_labels, groups, config, climatology) -> dict:
  """Adds the paired-bootstrap figures (``bootstrap.summarize``) to every trained regime."""
  runs = {}
  for regime, entry in metrics["regimes"].items():
    if "runs" not in entry:
      continue
    runs[regime] = {}
    for key, result in entry["runs"].items():
      seed, k = (int(x) for x in key.split("/"))
      prob = result.get("probabilities")
      runs[regime][(seed, k)] = {
        "pred": np.asarray(result["predictions"]),
        "prob": None if prob is None else np.asarray(prob, np.float64),
      }
  if not runs:
    return metrics
  summary = bootstrap.summarize(
    test_labels,
    groups,
    runs,
    metrics["class_names"],
    thresholds=event_thresholds(config),
    reference=climatology,
    num_samples=config.classifier.bootstrap_samples,
    seed=config.seed,
  )
  metrics["support"] = summary["support"]
  metrics["bootstrap"] = {
    "num_samples": summary["num_samples"],
    "unit": "test groups (flare event ids; days of quiet frames), seeds and synthetic pools",
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
    if climatology is not None:
      prob = np.concatenate([r["prob"] for r in runs[regime].values()])
      truth = np.tile(np.asarray(test_labels), len(runs[regime]))
      entry["reliability"] = bootstrap.reliability(prob, truth)
  return metrics


def run(
  config: ml_collections.ConfigDict,
  workdir,
  *,
  splits: dict | None = None,
  synthetic=None,
  mesh=None,
) -> dict:
  """--mode=classify: the whole experiment; writes ``workdir/classifier/``.

  Args:
    config: the resolved config.
    workdir: run directory (local or gs://).
    splits: optional {'train', 'validation', 'test'} -> arrays as returned by
      ``input_pipeline.make_for_inference`` (tests); default: read the dataset.
    synthetic: optional synthetic pools replacing sampling from the workdir's
      DDPM (tests): one dict {'image' (model space), 'label' (GOES index),
      'step'} for every guidance and pool, or ``callable(guidance, k) -> dict``.
    mesh: default ``parallel.create_mesh(config.mesh)``.

  Returns:
    The metrics written to ``workdir/classifier/metrics.json``.
  """
  c = config.classifier
  out_dir = wd.classifier_dir(workdir)
  main = parallel.is_main_process()
  if main:
    out_dir.mkdir(parents=True, exist_ok=True)
  mesh = mesh or parallel.create_mesh(config.mesh)
  parallel.check_local_batch(c.batch_size, mesh)
  experiment = _Experiment(
    config, workdir, splits or training_sets.load_real_splits(config), mesh, synthetic
  )
  metrics = experiment.header()
  skip_reason = experiment.synthetic_available()

  from clu import metric_writers  # Imports TensorFlow (~4 s): only when a run starts.

  writer = metric_writers.create_default_writer(
    os.fspath(out_dir), just_logging=not (main and config.logging.tensorboard), asynchronous=False
  )
  rows, selection = [], {}
  # The stage's overall counter ("run k of N"; the validation grid's runs come on top).
  experiment.runs_total = sum(
    len(c.seeds) * (c.num_pools if r in SYNTHETIC_REGIMES else 1)
    for r in c.regimes
    if not (r in SYNTHETIC_REGIMES and skip_reason)
  )
  with jax.set_mesh(mesh):
    programs = make_programs(config, mesh)
    for regime in c.regimes:
      if regime in SYNTHETIC_REGIMES and skip_reason:
        metrics["regimes"][regime] = {"skipped": skip_reason}
        continue
      chosen = {}
      if regime in SYNTHETIC_REGIMES:
        selection[regime] = experiment.choose(regime, programs, writer)
        chosen = selection[regime]["chosen"]
      metrics["regimes"][regime] = experiment.run_regime(regime, programs, writer, rows, chosen)
  writer.flush()
  if selection:
    metrics["selection"] = selection
    first = selection[next(iter(selection))]["chosen"]["guidance_scale"]
    pool = experiment.pool(first, 0)
    metrics["synthetic"] = {
      "ddpm_step": pool.get("step"),
      "settings": pool.get("settings"),
      "path": pool.get("path", ""),
      "pools": c.num_pools,
      **training_sets.describe(pool["label"], experiment.goes),
    }
  elif skip_reason:
    metrics["synthetic"] = {"skipped": skip_reason}
  metrics["test_reads"] = experiment.test_reads
  metrics["data"] = resolve.record(config)  # Resolved before config.json was written.
  add_uncertainty(
    metrics, experiment.test_labels, experiment.test_groups, config, experiment.climatology
  )
  if main:
    wd.write_json(out_dir / "metrics.json", classification.to_jsonable(metrics))
    _write_predictions(out_dir / "predictions.csv", rows)
    _write_plots(out_dir, metrics)
    for regime, entry in metrics["regimes"].items():
      f1 = entry.get("scores", {}).get("macro_f1") or {}
      logging.info(
        "Classifier %s: test macro F1 %s, 95%% CI %s.", regime, f1.get("mean"), f1.get("ci95")
      )
  return metrics


def _write_plots(out_dir, metrics: dict) -> None:
  regimes = {r: e for r, e in metrics["regimes"].items() if "scores" in e}
  if not regimes:
    return
  multiclass = len(metrics["class_names"]) > 2
  event = "tss_ge_m" if multiclass else "tss"
  labels = {
    "macro_f1": "macro F1",
    event: "TSS " + (">=M" if multiclass else metrics["class_names"][1]),
  }
  classification.save_interval_png(regimes, labels, out_dir / "scores.png", baseline="oversample")
  if metrics.get("climatology") is not None:
    classification.save_reliability_png(
      {r: e["reliability"] for r, e in regimes.items()},
      metrics["climatology"],
      out_dir / "reliability.png",
    )


PREDICTION_COLUMNS = (
  "id",
  "time",
  "group",
  "true_class",
  "predicted_class",
  "prob_positive",
  "regime",
  "seed",
  "pool",
  "source",
)


def _write_predictions(path, rows) -> None:
  buffer = io.StringIO()
  out = csv.writer(buffer)
  out.writerow(PREDICTION_COLUMNS)
  out.writerows(["" if v is None else v for v in row] for row in rows)
  wd.write_text(path, buffer.getvalue())
