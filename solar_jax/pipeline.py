"""The modes: what each needs before it starts, and --mode=all.

``--mode=all`` runs train -> sample -> classify -> evaluate -> report, for any config.

On several processes every mode runs on all of them, and only process 0 writes:
training, sampling (each process samples its share of every batch; the images
are gathered for process 0 to write), the classifier experiment and the
evaluation's feature extraction are sharded over the global mesh; the report,
which only reads files and writes one, runs on process 0 while the others wait
at a barrier.
"""

from __future__ import annotations

import time

import jax
from absl import logging
from jax.experimental import multihost_utils

from solar_jax import checkpointing, report
from solar_jax import workdir as wd
from solar_jax.classifier import experiment
from solar_jax.data import input_pipeline, resolve
from solar_jax.ddpm import export, sample, train
from solar_jax.evaluation import evaluate, features


def check_inputs(config, workdir: str, mode: str) -> None:
  """Fails fast, before anything is written, on an input that ``mode`` cannot run without.

  Only checks: the values that depend on the data are set afterwards, by
  ``data.resolve.resolve_data`` (main.run_in_workdir).

  Raises:
    errors.UserError: a generator that learned from other data (``check_generator``),
      no built dataset matching config.data, no checkpoint (sample), no samples or
      classifier (evaluate), or no Inception weights.
  """
  check_generator(config, workdir, mode)
  if mode in ("sample", "all") and config.sampling.counts == "fixed":
    sample.sample_counts(config)  # Counts and their memory, before anything is allocated.
  if mode in ("evaluate", "all"):
    features.check_available(config, workdir, classifier_yet_to_train=mode == "all")
  if mode == "evaluate":
    wd.latest_samples(workdir, config)  # Present and complete, before the dataset is read.
  if mode in ("train", "evaluate", "classify", "all"):
    input_pipeline.verify_shards(config.data)  # Every stored block: every split reads some.
  if mode in ("sample", "export"):
    kind, source = sample.checkpoint_source(config, workdir)  # sampling.checkpoint, or here.
    if kind == "workdir":
      wd.require_checkpoint(source)
    else:
      sample.check_export(source)  # Whole and undamaged, before anything is written.


def check_generator(config, workdir: str, mode: str) -> None:
  """Refuses, before anything is written, a generator that learned from other data than
  this run reads (DESIGN.md: a generator is bound to the data it learned from).

  The stages that use the diffusion model (sample, export, evaluate, and classify when
  a synthetic regime is on) compare the record of its checkpoint or export
  (``data.splits.training_record``: dataset version, training months, embargo, label
  policy) with this run's, the dataset's facts read as ``data.resolve`` reads them; train
  does the same when it resumes. A workdir without a checkpoint is left to the stage.

  Raises:
    errors.InputMismatchError: one line naming the fields that differ.
  """
  synthetic = set(config.classifier.regimes) & set(experiment.SYNTHETIC_REGIMES)
  if mode not in ("sample", "export", "evaluate", "classify") or (
    mode == "classify" and not synthetic
  ):
    return
  kind, source = sample.checkpoint_source(config, workdir)
  config = config.copy_and_resolve_references()
  config.provenance.update(resolve.dataset_provenance(config.data))  # Version, folds.
  if kind == "export":
    sample.check_export_data(source, config)
  elif wd.steps(wd.checkpoints_dir(source)):
    checkpointer = checkpointing.Checkpointer(source, keep=1, read_only=True)
    try:
      checkpointer.check_config(config)
    finally:
      checkpointer.close()


def write_report(config, workdir) -> None:
  """The report stage: process 0 writes report.md, the other processes wait for it."""
  if jax.process_index() == 0:
    report.write_report(config, workdir)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("solar_jax: report written")


def run_all(config, workdir) -> None:
  """Runs every stage in ``workdir``; each stage resumes or reuses what exists."""
  stages = (
    ("train", train.run),
    ("sample", sample.run),
    ("classify", experiment.run),
    ("evaluate", evaluate.run),
    ("report", write_report),
  )
  timings = {}
  start = time.time()
  for name, stage in stages:
    logging.info("=== stage %s ===", name)
    t0 = time.time()
    stage(config, workdir)
    timings[name] = time.time() - t0
    logging.info("Stage %s done in %.0f s.", name, timings[name])
  summary = ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
  logging.info("All stages done in %.0f s (%s).", time.time() - start, summary)


ENTRY_POINTS = {  # mode -> function(config, workdir); --mode=NAME runs NAME's module
  "train": train.run,
  "sample": sample.run,
  "evaluate": evaluate.run,
  "classify": experiment.run,
  "all": run_all,
  "export": export.run,
}
MODES = tuple(ENTRY_POINTS)
