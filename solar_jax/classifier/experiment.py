"""--mode=classify: do synthetic images help a flare classifier more than the classical fixes?

Each regime in ``config.classifier.regimes`` is trained once per seed in
``classifier.seeds`` (and, for the synthetic regimes, once per synthetic pool)
and scored once on the held-out test split:

* ``real``: the training split as it is;
* ``weighted``: class-weighted cross-entropy, ``w_c = (N / (K' n_c))^power`` (1: class-balanced);
* ``focal``: focal loss ``(1 - p_t)^gamma CE`` (``classifier.focal_gamma``; Lin et al. 2017);
* ``oversample``: every class resampled with replacement up to ``share / (1 - share)`` x the
  largest class (``classifier.oversample_share``; 0.5: balanced);
* ``augment``: the real split with random north-south flips, small rotations
  about the disk centre and intensity gains (``classifier_data``: why each
  keeps a plausible AIA frame);
* ``real_synthetic``: real + ``ratio * (max_c n_c - n_c)`` synthetic images per GOES class;
* ``synthetic_only``: synthetic images only, as many per GOES class as the real split (TSTR);
* ``reweighted``: the real split with class weights that give the class prior
  ``real_synthetic`` chose (does the synthetic regime help, or only its prior?).

The synthetic regimes must beat ``oversample``, ``weighted``/``focal`` and
``augment``, not only ``real``, to be called useful.

Tasks: 'multiclass', 'ge_m', 'ge_c' classify the frame's own class
(``data.label``); 'forecast_multiclass', 'forecast_ge_m', 'forecast_ge_c' the
largest GOES class among flares starting in the next 24 h, from the issuance frames
only (the dataset's ``max_class_next_24h``; ``frame_facts``, 'Forecast definition').
Binary tasks also get the Brier skill score against climatology (the
training split's base rate) and a reliability diagram.

The test split is touched once. The synthetic regimes' guidance scale
(``classifier.guidance_grid``) and synthetic ratio (``classifier.ratio_grid``), and
each classical regime's knob (``training_sets.KNOBS``: ``focal_grid``,
``oversample_grid``, ``weight_power_grid``, ``augment_rotation_grid``; the same
budget), are chosen on the VALIDATION split, training the first seed on pool 0 for
each grid point; the choice and the validation scores it was made from are recorded
under ``selection`` in metrics.json. Then every (regime, seed, pool) run is
trained with the chosen values and predicts the test split exactly once
(``test_reads`` in metrics.json; a reused run counts the read it made when it finished); the grid run of the chosen point is that
run for (first seed, pool 0) and is not trained again. Every run is scored at one
operating point (``decisions``): the threshold on its event probability that
maximises its validation TSS (its validation softmax is kept in ``val_probs.npz``),
with ROC AUC and the Brier skill of its probabilities moved to the real training
prior beside the TSS.

Uncertainty (``metrics/bootstrap``): per regime the mean over runs and a
95 % interval from a paired bootstrap over seeds, pools and test active regions
(``real_data.frame_units``: a flare's frames move with its merged NOAA
region, quiet frames in blocks of days), with the differences against every
classical baseline in the run, their two-sided bootstrap p-values and Holm's
adjustment over that family; ``classifier.primary_endpoint`` (the best
synthetic regime minus the best baseline, on TSS >=M by default) is named
before the run and tested alone. The test support (events, regions, frames,
per class) is written beside them. Synthetic pools are ``classifier.num_pools``
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
``reliability.png`` (the headline event at the real training prior),
``confusion_<regime>.png`` (summed over runs), ``runs/<regime>/seed_<s>[_pool<k>]/``
(best parameters; result.json; val_probs.npz),
``synthetic/`` and TensorBoard events. A finished run is reused when its config,
counts and pool match.

Runs are trained together (``classifier/stacked.py``; ``classifier.stacked_runs``
per group): first the runs of regimes without a grid with every validation grid,
then the runs at the chosen points (``train_all``). Each
run's result is what it would be alone (same seeds, batches and selection).
Batches are split over the devices as in the DDPM trainer.
"""

from __future__ import annotations

import dataclasses
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
from solar_jax.classifier import decisions, fingerprints, real_data, stacked, training_sets
from solar_jax.classifier.outputs import (  # noqa: F401 (PREDICTION_COLUMNS: the file's header)
  PREDICTION_COLUMNS,
  add_uncertainty,
  write_plots,
  write_predictions,
)
from solar_jax.classifier.stacked import train_many
from solar_jax.classifier.trainer import (
  architecture,
  make_programs,
  predict_labels,
  selection_metric,
  selection_score,
)
from solar_jax.classifier.training_sets import SYNTHETIC_REGIMES
from solar_jax.data import frame_facts, resolve
from solar_jax.metrics import classification, operating_point
from solar_jax.models import classifier as classifier_lib


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


VAL_PROBS = "val_probs.npz"  # A run's validation softmax ('prob' [N, K]) and 'labels' [N].


def _point_label(point: dict) -> str:
  """A grid point's file name: ``g10_r0.5`` (guidance, ratio) or ``focal_gamma2``."""
  short = {"guidance_scale": "g", "synthetic_ratio": "_r"}
  return "".join(
    f"{short.get(k, k)}{v:g}" for k, v in point.items() if v is not None and k in short
  ) or "_".join(f"{k}{v:g}" for k, v in point.items())


def run_dir(workdir, regime: str, seed: int, pool: int) -> epath.Path:
  """``runs/<regime>/seed_<s>`` (pool 0 and real-data regimes) or ``seed_<s>_pool<k>``."""
  path = wd.classifier_run_dir(workdir, regime, seed)
  return path if pool == 0 else path.with_name(f"seed_{seed}_pool{pool}")


@dataclasses.dataclass
class _Job:
  """One classifier run of the experiment: planned, trained (or reused), then finished."""

  regime: str
  seed: int
  k: int  # Synthetic pool (0 for the real-data regimes).
  pool: dict | None
  point: dict  # The regime's settings (training_sets.grid_points: guidance, ratio, knob).
  name: str
  path: epath.Path  # result.json of a run, or the grid point's json.
  fingerprint: str
  counts: dict | None = None
  grid: dict | None = None  # The point, where the job is a validation-grid point.
  trained: tuple | None = None  # (params, info) once trained, until finished.
  done: dict | None = None  # The finished result (runs) or info (grid points).


class _Experiment:
  """The data every run of one ``run`` call shares, and the runs' bookkeeping."""

  def __init__(self, config, workdir, splits, mesh, synthetic):
    c = config.classifier
    self.config, self.workdir, self.mesh = config, epath.Path(workdir), mesh
    self.goes = tuple(config.data.classes)
    self.task = classifier_lib.task_of(c, config.data.label)
    self.names = classifier_lib.task_class_names(self.task, self.goes)
    real_data.check_splits(config, splits)
    self.splits = splits
    # Finished runs are reused on the same frames only.
    self.records = fingerprints.records_digest(splits)
    self.train, val, self.test = splits["train"], splits["validation"], splits["test"]
    self.validation = {
      "image": np.asarray(val["image"], np.float32),
      "label": classifier_lib.task_labels(val["label"], self.task, self.goes),
    }
    self.test_labels = classifier_lib.task_labels(self.test["label"], self.task, self.goes)
    n = len(self.test_labels)
    self.test_times = fingerprints.text_values(self.test.get("time"), n)
    self.test_sources = fingerprints.text_values(self.test.get("source"), n)
    self.test_groups = real_data.frame_groups(self.test)
    self.test_units = real_data.frame_units(self.test)  # active regions, blocks of days
    # Per test frame: its unit and the facts behind it (predictions.csv; the folds' pooling).
    self.test_unit_facts = [
      [str(u) for u in self.test_units],
      *(fingerprints.text_values(self.test.get(k), n) for k in real_data.UNIT_FACTS),
    ]
    train_task = classifier_lib.task_labels(self.train["label"], self.task, self.goes)
    # Climatology: the training split's base rate of the positive class (binary tasks).
    self.climatology = float(np.mean(train_task == 1)) if len(self.names) == 2 else None
    # The real training split's class prior: every run's probabilities are moved to it.
    self.prior_test = operating_point.class_prior(train_task, len(self.names)).tolist()
    self.synthetic = synthetic  # None, one pool dict (tests) or callable(guidance, k) -> pool.
    self.pools: dict = {}
    self.trained: dict = {}  # Grid runs kept in memory: (regime, seed, fingerprint) -> (params, info).
    self.test_reads: dict[str, int] = {}

  def header(self) -> dict:
    c, data = self.config.classifier, self.config.data
    label = c.label or data.label
    forecast = label == frame_facts.FORECAST_LABEL
    return {
      "task": self.task,
      "label": label,
      # The forecast's definition and issuance grid, where the label is the forecast.
      **(
        {
          "forecast": frame_facts.forecast_rule(
            data.issuance_hours, data.issuance_tolerance_minutes
          )
        }
        if forecast
        else {}
      ),
      "class_scale": self.config.data.class_scale,
      "fold": self.config.data.fold,
      "class_names": list(self.names),
      "selection_metric": selection_metric(self.task),
      "seeds": list(c.seeds),
      "num_pools": c.num_pools,
      "num_steps": c.num_steps,
      "climatology": self.climatology,
      "prior_test": self.prior_test,
      "event_climatology": decisions.event_climatology(self.config, self.prior_test),
      "operating_point": decisions.RULE,
      "confusion_png": "confusion_<regime>.png: confusion matrix summed over runs",
      "data": {
        k: real_data.describe(v["label"], self.goes, v.get("flaring"))
        for k, v in self.splits.items()
      },
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

  # ------------------------------------------------------------ jobs ---

  def _training_set(self, regime, pool, seed, point) -> training_sets.TrainingSet:
    return training_sets.build_training_set(
      regime, self.train, pool, self.config, seed, ratio=point.get("synthetic_ratio"), setting=point
    )

  def _job(self, regime, seed, k, point, name, path) -> _Job:
    """A planned run; finished (``done``) when ``path`` holds a result of the same fingerprint."""
    guidance = point.get("guidance_scale")
    pool = self.pool(guidance, k) if regime in SYNTHETIC_REGIMES else None
    ts = self._training_set(regime, pool, seed, point)
    key = None if pool is None else self._pool_key(pool, guidance, k)
    fingerprint = fingerprints.fingerprint(self.config, ts, key, self.records)
    job = _Job(regime, seed, k, pool, point, name, path, fingerprint)
    job.counts = ts.counts
    saved = json.loads(path.read_text()) if path.exists() else {}
    if saved.get("fingerprint") == job.fingerprint:
      job.done = saved.get("result", saved.get("info"))
      if "result" in saved:  # Its one test read, made when it finished.
        self.test_reads[name] = self.test_reads.get(name, 0) + 1
      logging.info("Reusing the finished classifier run %s.", path)
    elif (regime, seed, job.fingerprint) in self.trained:  # The chosen grid point.
      job.trained = self.trained.pop((regime, seed, job.fingerprint))
    return job

  def grid_jobs(self, regime: str) -> list[_Job]:
    """The validation grid of ``regime`` (``training_sets.grid_points``): the first seed on
    pool 0 per point; none where the grid has one point."""
    points = training_sets.grid_points(self.config, regime)
    if len(points) == 1:
      return []
    seed, jobs = self.config.classifier.seeds[0], []
    for point in points:
      label = _point_label(point)
      path = wd.classifier_dir(self.workdir) / "runs" / regime / "grid" / f"{label}.json"
      job = self._job(regime, seed, 0, point, f"{regime}/grid_{label}", path)
      job.grid = point
      jobs.append(job)
    return jobs

  def final_jobs(self, regime: str, chosen: dict) -> list[_Job]:
    """Every (seed, pool) run of ``regime`` with the ``chosen`` point."""
    c = self.config.classifier
    synthetic, jobs = regime in SYNTHETIC_REGIMES, []
    for seed in c.seeds:
      for k in range(c.num_pools if synthetic else 1):
        name = f"{regime}/seed{seed}" + (f"/pool{k}" if k else "")
        path = run_dir(self.workdir, regime, seed, k) / "result.json"
        jobs.append(self._job(regime, seed, k, chosen, name, path))
    return jobs

  def train_jobs(self, jobs: list[_Job], writer) -> None:
    """Trains the unfinished ``jobs`` in stacked groups; finishes each (files, test read)."""
    c = self.config.classifier
    pending = [j for j in jobs if j.done is None and j.trained is None]
    groups = stacked.group_runs(pending, c.stacked_runs)
    programs = make_programs(self.config, self.mesh)
    for i, group in enumerate(groups):
      logging.info(
        "Classifier runs, stacked group %d of %d: %s.", i + 1, len(groups), [j.name for j in group]
      )
      runs = []
      for j in group:
        ts = self._training_set(j.regime, j.pool, j.seed, j.point)
        runs.append(stacked.Run(ts, j.seed, j.name))
      many = stacked.make_stacked_programs(self.config, self.mesh)
      results = train_many(self.config, many, runs, self.validation, writer=writer)
      for j, result in zip(group, results):
        j.trained = result
        self._finish(j, programs)
    for j in jobs:
      if j.done is None:
        self._finish(j, programs)

  def _finish(self, job: _Job, programs) -> None:
    """Writes a trained job: a grid point's info, or a run's test predictions and parameters."""
    params, info = job.trained
    info = classification.to_jsonable(info)
    if job.grid is not None:
      self.trained[(job.regime, job.seed, job.fingerprint)] = (params, info)
      job.done = info
      if parallel.is_main_process():
        job.path.parent.mkdir(parents=True, exist_ok=True)
        wd.write_text(job.path, json.dumps({"fingerprint": job.fingerprint, "info": info}))
      return
    _, prob = self.read_test(programs, params, job.name)
    c = self.config.classifier
    _, val_prob = predict_labels(
      programs, params, self.validation["image"], c.batch_size, self.mesh
    )
    val_labels = self.validation["label"]
    decided = decisions.decide(
      self.config,
      val_prob,
      val_labels,
      prob,
      self.test_labels,
      job.counts["prior"],
      self.prior_test,
    )
    result = {**decided, **info}
    meta = {"architecture": architecture(self.config), "regime": job.regime}
    meta.update(seed=job.seed, pool=job.k)
    _save_params(job.path.parent, params, int(info["best_step"]), meta)
    if parallel.is_main_process():  # The operating point can be recomputed from these.
      wd.write_npz(job.path.parent / VAL_PROBS, prob=val_prob, labels=val_labels)
    job.done = classification.to_jsonable(result)
    if parallel.is_main_process():
      result = {"fingerprint": job.fingerprint, "result": job.done}
      wd.write_text(job.path, json.dumps(result))

  # ------------------------------------------------- validation grid ---

  def choose(self, regime: str, jobs: list[_Job]) -> dict:
    """The point of ``regime`` (guidance and ratio; a classical regime's knob) chosen on
    validation from its trained grid ``jobs``.

    The best validation selection score wins (ties: the first grid point).
    """
    c, config = self.config.classifier, self.config
    record = {
      "split": "validation",
      "seed": c.seeds[0],
      "pool": 0,
      "metric": selection_metric(self.task),
      "grid": [],
    }
    if not jobs:
      record["chosen"] = training_sets.grid_points(config, regime)[0]
      record["note"] = "one grid point: nothing to choose"
      return record
    best = None
    for job in jobs:
      info = job.done
      validation = info.get("validation") or {}
      value = selection_score(config, validation) if validation else float("nan")
      point = {
        **job.grid,
        "selection_score": value,
        "best_step": info["best_step"],
        "validation": {k: validation.get(k) for k in ("macro_f1", "tss", "hss", "accuracy")},
      }
      record["grid"].append(point)
      if best is None or (np.isfinite(value) and not value <= best[0]):
        best = (value, job.grid)
    record["chosen"] = dict(best[1])
    logging.info("Classifier %s: chose %s on validation.", regime, record["chosen"])
    return record

  # ------------------------------------------------------------ runs ---

  def collect(self, regime: str, jobs: list[_Job], rows: list) -> dict:
    """The metrics entry of ``regime`` from its finished ``jobs``; appends its prediction rows."""
    names = self.names
    entry = {"seeds": {}, "runs": {}, "counts": jobs[-1].counts}  # Same for every seed/pool.
    confusion_sum = np.zeros((len(names), len(names)), np.int64)
    for job in jobs:
      result, seed, k = job.done, job.seed, job.k
      entry["runs"][f"{seed}/{k}"] = result
      if k == 0:
        entry["seeds"][str(seed)] = result
      confusion_sum += np.asarray(result["test"]["confusion"])
      prob, corrected, forecast = decisions.headline_event(result, len(self.test_labels))
      for i, p in enumerate(result["predictions"]):
        true = names[self.test_labels[i]]
        rows.append(
          [i, self.test_times[i], self.test_groups[i], true, names[p], prob[i], regime, seed, k]
          + [self.test_sources[i], corrected[i], forecast[i], *(c[i] for c in self.test_unit_facts)]
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

  def train_all(self, regimes: list[str], writer) -> tuple[dict, dict]:
    """Trains every run of ``regimes``: ``({regime: jobs}, {regime: validation choice})``.

    First the regimes without a choice to make and every validation grid, then the runs at
    the chosen points (and 'reweighted', at real_synthetic's chosen class prior): two sets
    of stacked groups.
    """
    config = self.config
    grids = {r: self.grid_jobs(r) for r in regimes if r != "reweighted"}
    grids = {r: g for r, g in grids.items() if g}
    jobs = {
      r: self.final_jobs(r, training_sets.grid_points(config, r)[0])
      for r in regimes
      if r not in grids and r not in SYNTHETIC_REGIMES and r != "reweighted"
    }
    self.train_jobs([j for js in (*jobs.values(), *grids.values()) for j in js], writer)
    later, selection = [r for r in regimes if r not in jobs], {}
    for regime in later:
      if regime != "reweighted":
        selection[regime] = self.choose(regime, grids.get(regime, []))
        jobs[regime] = self.final_jobs(regime, selection[regime]["chosen"])
    if "reweighted" in later:
      selection["reweighted"] = self.reweighted_choice(jobs["real_synthetic"][0])
      jobs["reweighted"] = self.final_jobs("reweighted", selection["reweighted"]["chosen"])
    self.train_jobs([j for r in later for j in jobs[r]], writer)
    return jobs, selection

  def reweighted_choice(self, real_synthetic: _Job) -> dict:
    """The 'reweighted' regime's setting: the class prior of real_synthetic's chosen set."""
    prior = real_synthetic.counts["prior"]
    return {
      "split": "validation",
      "seed": self.config.classifier.seeds[0],
      "pool": 0,
      "metric": selection_metric(self.task),
      "grid": [],
      "chosen": {"class_prior": prior},
      "from": "real_synthetic",
      "note": "the class prior of real_synthetic's chosen training set (real + synthetic)",
    }

  def read_test(self, programs, params, name: str):
    """The one read of the test split by run ``name``: (labels, probabilities)."""
    self.test_reads[name] = self.test_reads.get(name, 0) + 1
    c = self.config.classifier
    return predict_labels(programs, params, self.test["image"], c.batch_size, self.mesh)


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
    config, workdir, splits or real_data.load_real_splits(config), mesh, synthetic
  )
  metrics = experiment.header()
  skip_reason = experiment.synthetic_available()

  from clu import metric_writers  # Imports TensorFlow (~4 s): only when a run starts.

  writer = metric_writers.create_default_writer(
    os.fspath(out_dir), just_logging=not (main and config.logging.tensorboard), asynchronous=False
  )
  rows = []
  needs_pool = (*SYNTHETIC_REGIMES, "reweighted")
  trainable = [r for r in c.regimes if not (r in needs_pool and skip_reason)]
  with jax.set_mesh(mesh):
    jobs, selection = experiment.train_all(trainable, writer)
  for regime in c.regimes:
    if regime in jobs:
      metrics["regimes"][regime] = experiment.collect(regime, jobs[regime], rows)
    else:
      metrics["regimes"][regime] = {"skipped": skip_reason}
  writer.flush()
  if selection:
    metrics["selection"] = selection
  synthetic_chosen = [selection[r]["chosen"] for r in SYNTHETIC_REGIMES if r in selection]
  if synthetic_chosen:
    pool = experiment.pool(synthetic_chosen[0]["guidance_scale"], 0)
    metrics["synthetic"] = {
      "ddpm_step": pool.get("step"),
      "settings": pool.get("settings"),
      "path": pool.get("path", ""),
      "pools": c.num_pools,
      **real_data.describe(pool["label"], experiment.goes),
    }
  elif skip_reason:
    metrics["synthetic"] = {"skipped": skip_reason}
  metrics["test_reads"] = experiment.test_reads
  metrics["data"] = resolve.record(config)  # Resolved before config.json was written.
  recurrent = real_data.recurrent_regions(experiment.train, experiment.test)
  if recurrent is not None:
    metrics["data"]["recurrent_regions"] = recurrent
  add_uncertainty(
    metrics,
    experiment.test_labels,
    experiment.test_groups,
    config,
    experiment.climatology,
    units=experiment.test_units,
  )
  if main:
    wd.write_json(out_dir / "metrics.json", classification.to_jsonable(metrics))
    write_predictions(out_dir / "predictions.csv", rows)
    write_plots(out_dir, metrics)
    for regime, entry in metrics["regimes"].items():
      f1 = entry.get("scores", {}).get("macro_f1") or {}
      logging.info(
        "Classifier %s: test macro F1 %s, 95%% CI %s.", regime, f1.get("mean"), f1.get("ci95")
      )
  return metrics
