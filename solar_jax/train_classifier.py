"""--mode=classify: flare classifiers trained on real, rebalanced and synthetic data.

The scientific question: do synthetic images from the workdir's diffusion
model help a flare classifier more than the classical fixes for class
imbalance? Each regime in ``config.classifier.regimes`` is trained once per
seed in ``config.classifier.seeds`` and scored on the temporally held-out
test split:

* ``real``: the training split as it is;
* ``weighted``: the same, with class-weighted cross-entropy, weight
  ``w_c = N / (K' n_c)`` for the K' classes present (inverse frequency, mean
  weight per example 1);
* ``oversample``: every class resampled with replacement up to the largest
  class (all real examples kept, plus ``max - n_c`` repeats, drawn per seed);
* ``real_synthetic``: real + ``synthetic_ratio * (max_c n_c - n_c)`` (rounded half up)
  synthetic images of each GOES class (counts from the training split);
* ``synthetic_only``: synthetic images only, as many per GOES class as the
  real training split has (train on synthetic, test on real: TSTR).

Synthetic images are sampled once per DDPM checkpoint with
``solar_jax.sample.generate`` (the sampler of ``--mode=sample``) from
``sample.load_inference_params``, written to
``workdir/classifier/synthetic/step_<step>.npz`` (DN/s, same keys as
``samples.npz`` plus ``spacing``, ``clip_x0`` and ``prediction``), reused by
every seed and by later runs with the same sampling settings (a change of
guidance scale, sampler, steps, eta, spacing, clipping or seed resamples it and
retrains the synthetic regimes), and mapped to model space with
``scaling.forward``. They are not written under
``workdir/samples/<step>/``, which holds the set ``--mode=evaluate`` scores.
The DDPM only sees class labels here: no test-split time is involved. Counts
are per GOES class, the DDPM's conditioning; for the binary tasks the
rebalancing regimes (weighted, oversample) work on the two task classes.

Without a DDPM checkpoint in the workdir the synthetic regimes are skipped,
with a warning and ``{"skipped": "no DDPM checkpoint ..."}`` under their name
in metrics.json, so that ``--mode=classify`` works on its own for the real
regimes.

One run's training and model selection live in ``solar_jax.classifier_training``;
this module runs the experiment. Model selection: every ``eval_every`` steps and at the end, the model is
scored on the validation split; the parameters with the best macro F1
(multiclass) or TSS (binary tasks; macro F1 where the TSS is undefined) are
kept and scored on the test split. Runs are sharded over the devices like the
DDPM trainer (parameters replicated: the classifier is small). A finished
(regime, seed) run is reused when its config and training counts match.

The datasets are held in memory as NumPy arrays (a few thousand images at
64-256 px); a much larger archive would need the streaming tf.data pipeline
of ``solar_jax.data.input_pipeline.get_dataset`` and a class-balanced sampler.

Outputs under ``workdir/classifier/``: ``metrics.json``, ``predictions.csv``,
``confusion_<regime>.png`` (summed over seeds), ``runs/<regime>/seed_<s>/``
(best parameters, orbax; ``result.json``), ``synthetic/`` and TensorBoard
events.
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

from solar_jax import checkpointing, classifier_data, parallel
from solar_jax import workdir as wd
from solar_jax.classifier_data import SYNTHETIC_REGIMES
from solar_jax.classifier_training import (
  apply_batched,
  architecture,
  make_programs,
  score,
  selection_metric,
  train_one,
)
from solar_jax.evaluation import classification
from solar_jax.models import classifier as classifier_lib

# ---------------------------------------------------------------- run ---


def _text(values, n: int) -> list[str]:
  if values is None:
    return [""] * n
  return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).tolist()]


def _fingerprint(config, counts: dict, synthetic_pool) -> str:
  """What a finished run depends on: reused only when all of it matches."""
  return json.dumps(
    {
      # Adding a seed or a regime leaves the finished runs valid; the pool's guidance
      # counts through synthetic_pool (the real regimes do not depend on it).
      "classifier": {
        k: v
        for k, v in config.classifier.to_dict().items()
        if k not in ("seeds", "regimes", "guidance_scale")
      },
      "data": config.data.to_dict(),
      "seed": config.seed,
      "counts": counts,
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


class _Experiment:
  """The data every (regime, seed) run of one ``run`` call shares."""

  def __init__(self, config, workdir, splits, mesh):
    c = config.classifier
    self.config, self.workdir, self.mesh = config, epath.Path(workdir), mesh
    self.goes = tuple(config.data.classes)
    self.names = classifier_lib.task_class_names(c.task, self.goes)
    classifier_data.check_splits(config, splits)
    self.splits = splits
    self.train, val, self.test = splits["train"], splits["validation"], splits["test"]
    self.validation = {
      "image": np.asarray(val["image"], np.float32),
      "label": classifier_lib.task_labels(val["label"], c.task, self.goes),
    }
    self.test_labels = classifier_lib.task_labels(self.test["label"], c.task, self.goes)
    n = len(self.test_labels)
    self.test_times = _text(self.test.get("time"), n)
    self.test_sources = _text(self.test.get("source"), n)

  def header(self) -> dict:
    c = self.config.classifier
    return {
      "task": c.task,
      "class_names": list(self.names),
      "selection_metric": selection_metric(c.task),
      "seeds": list(c.seeds),
      "num_steps": c.num_steps,
      "confusion_png": "confusion_<regime>.png: confusion matrix summed over seeds",
      "data": {k: classifier_data.describe(v["label"], self.goes) for k, v in self.splits.items()},
      "regimes": {},
    }

  def synthetic_pool(self) -> tuple[dict | None, str | None]:
    """(the pool the synthetic regimes train on, or None with the reason they are skipped)."""
    c = self.config.classifier
    wanted = [r for r in c.regimes if r in SYNTHETIC_REGIMES]
    if not wanted:
      return None, None
    train_goes = classifier_data.per_class_counts(self.train["label"], len(self.goes))
    counts = classifier_data.synthetic_pool_counts(train_goes, wanted, c.synthetic_ratio)
    try:
      with jax.set_mesh(self.mesh):
        pool = classifier_data.synthetic_pool(self.config, self.workdir, counts, mesh=self.mesh)
    except classifier_data.NoDDPMCheckpointError as e:
      reason = f"skipped: no DDPM checkpoint ({e})"
      logging.warning("Synthetic regimes %s %s", ", ".join(wanted), reason)
      return None, reason
    return pool, None

  def run_regime(self, regime, programs, synthetic, writer, rows) -> dict:
    """Trains (or reuses) every seed of ``regime``; appends its test predictions to ``rows``."""
    c, names = self.config.classifier, self.names
    entry = {"seeds": {}}
    confusion_sum = np.zeros((len(names), len(names)), np.int64)
    for seed in c.seeds:
      ts = classifier_data.build_training_set(regime, self.train, synthetic, self.config, seed)
      entry["counts"] = ts.counts  # Counts do not depend on the seed.
      logging.info(
        "Classifier %s seed %d: %d examples per epoch, per class %s",
        regime,
        seed,
        len(ts.indices),
        dict(zip(names, ts.counts["total"])),
      )
      result = self.train_or_reuse(programs, ts, regime, seed, synthetic, writer)
      entry["seeds"][str(seed)] = result
      confusion_sum += np.asarray(result["test"]["confusion"])
      for i, p in enumerate(result.pop("predictions")):
        true = names[self.test_labels[i]]
        rows.append([i, self.test_times[i], true, names[p], regime, seed, self.test_sources[i]])
    entry["mean_std"] = classification.mean_std_over_seeds(
      [entry["seeds"][str(s)]["test"] for s in c.seeds]
    )
    entry["confusion_summed"] = confusion_sum.tolist()
    if parallel.is_main_process():
      classification.save_confusion_png(
        confusion_sum,
        names,
        wd.classifier_dir(self.workdir) / f"confusion_{regime}.png",
        title=f"{regime}: test split, summed over {len(c.seeds)} seed(s)",
      )
    return entry

  def train_or_reuse(self, programs, ts, regime, seed, synthetic, writer) -> dict:
    """Result of one (regime, seed): reused from its run directory when nothing changed."""
    config = self.config
    run_dir = wd.classifier_run_dir(self.workdir, regime, seed)
    pool = None
    if regime in SYNTHETIC_REGIMES:
      # The pool is a function of the DDPM step, its per-class sizes and the sampling settings.
      sizes = classifier_data.per_class_counts(synthetic["label"], len(self.goes))
      pool = [synthetic.get("step"), sizes.tolist(), synthetic.get("settings")]
    fingerprint = _fingerprint(config, ts.counts, pool)
    result_path = run_dir / "result.json"
    if result_path.exists():
      saved = json.loads(result_path.read_text())
      if saved.get("fingerprint") == fingerprint:
        logging.info("Reusing the finished classifier run %s.", run_dir)
        return saved["result"]
    params, info = train_one(
      config, programs, ts, self.validation, seed=seed, name=f"{regime}/seed{seed}", writer=writer
    )
    pred = apply_batched(
      programs.predict, params, self.test["image"], config.classifier.batch_size, self.mesh
    )
    result = {"test": score(config, self.test_labels, pred), **info, "predictions": pred.tolist()}
    meta = {"architecture": architecture(config), "regime": regime, "seed": seed}
    _save_params(run_dir, params, int(info["best_step"]), meta)
    result = classification.to_jsonable(result)
    if parallel.is_main_process():
      wd.write_text(result_path, json.dumps({"fingerprint": fingerprint, "result": result}))
    return result


def run(
  config: ml_collections.ConfigDict,
  workdir,
  *,
  splits: dict | None = None,
  synthetic: dict | None = None,
  mesh=None,
) -> dict:
  """--mode=classify: trains every regime x seed and writes ``workdir/classifier/``.

  Args:
    config: the resolved config.
    workdir: run directory (local or gs://).
    splits: optional {'train', 'validation', 'test'} -> arrays as returned by
      ``input_pipeline.load_split_arrays`` (tests); default: read the dataset.
    synthetic: optional synthetic pool {'image' (model space), 'label' (GOES
      index), 'step'} replacing sampling from the workdir's DDPM (tests).
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
    config, workdir, splits or classifier_data.load_real_splits(config), mesh
  )
  metrics = experiment.header()
  skip_reason = None
  if synthetic is None:
    synthetic, skip_reason = experiment.synthetic_pool()
  if synthetic is not None:
    metrics["synthetic"] = {
      "ddpm_step": synthetic.get("step"),
      "settings": synthetic.get("settings"),
      "path": synthetic.get("path", ""),
      **classifier_data.describe(synthetic["label"], experiment.goes),
    }
  elif skip_reason:
    metrics["synthetic"] = {"skipped": skip_reason}

  from clu import metric_writers  # Imports TensorFlow (~4 s): only when a run starts.

  writer = metric_writers.create_default_writer(
    os.fspath(out_dir), just_logging=not (main and config.logging.tensorboard), asynchronous=False
  )
  rows = []
  with jax.set_mesh(mesh):
    programs = make_programs(config, mesh)
    for regime in c.regimes:
      if regime in SYNTHETIC_REGIMES and synthetic is None:
        metrics["regimes"][regime] = {"skipped": skip_reason or "skipped: no synthetic images"}
        continue
      metrics["regimes"][regime] = experiment.run_regime(regime, programs, synthetic, writer, rows)
  writer.flush()
  if main:
    wd.write_json(out_dir / "metrics.json", classification.to_jsonable(metrics))
    _write_predictions(out_dir / "predictions.csv", rows)
    for regime, entry in metrics["regimes"].items():
      f1 = entry.get("mean_std", {}).get("macro_f1") or {}
      logging.info("Classifier %s: test macro F1 %s (mean over seeds).", regime, f1.get("mean"))
  return metrics


def _write_predictions(path, rows) -> None:
  buffer = io.StringIO()
  out = csv.writer(buffer)
  out.writerow(["id", "time", "true_class", "predicted_class", "regime", "seed", "source"])
  out.writerows(rows)
  wd.write_text(path, buffer.getvalue())
