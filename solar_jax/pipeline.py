"""The modes: what each needs before it starts, and --mode=all.

``--mode=all`` runs train -> sample -> classify -> evaluate -> report, for any config;
``--mode=report`` runs its last stage alone: report.md rebuilt from a workdir's files,
no model loaded and no image drawn.

On several processes every mode runs on all of them, and only process 0 writes:
training, sampling (each process samples its share of every batch; the images
are gathered for process 0 to write), the classifier experiment and the
evaluation's feature extraction are sharded over the global mesh; the report,
which only reads files and writes one, runs on process 0 while the others wait
at a barrier.
"""

from __future__ import annotations

import json
import time

import jax
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from solar_jax import checkpointing, checks, errors, parallel, report
from solar_jax import workdir as wd
from solar_jax.classifier import experiment, folds
from solar_jax.data import input_pipeline, resolve, splits
from solar_jax.ddpm import export, sample, train
from solar_jax.evaluation import evaluate, features
from solar_jax.evaluation import tables as eval_tables


def check_inputs(config, workdir: str, mode: str) -> None:
  """Fails fast, before anything is written, on an input that ``mode`` cannot run without.

  Only checks: the values that depend on the data are set afterwards, by
  ``data.resolve.resolve_data`` (``run_in_workdir``).

  Raises:
    errors.UserError: a generator that learned from other data (``check_generator``),
      no built dataset matching config.data, no checkpoint (sample), no samples or
      classifier (evaluate), or no Inception weights.
  """
  check_generator(config, workdir, mode)
  if mode == "report" and (not epath.Path(workdir).exists() or wd.holds_nothing(workdir)):
    raise errors.MissingInputError(
      f"--mode=report: {workdir} holds no run to report on; run --mode=all (or train) there first."
    )
  if mode in ("sample", "all") and config.sampling.counts == "fixed" and not config.sampling.fluxes:
    sample.sample_counts(config)  # Counts and their memory, before anything is allocated.
  if mode in ("evaluate", "all"):
    features.check_available(config, workdir, classifier_yet_to_train=mode == "all")
  if mode == "evaluate":
    wd.latest_samples(workdir, config)  # Present and complete, before the dataset is read.
  if mode in ("train", "evaluate", "classify", "all", "study"):
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
  # Only the data here: the rest of the model's meaning (data.clip_max among it, which
  # data.resolve may still set) is compared by the stage itself once it is resolved.
  if kind == "export":
    meta, stored = sample.check_export(source)
    record, where = meta.get("trained_on") or splits.training_record(stored.to_dict()), source
  elif wd.steps(wd.checkpoints_dir(source)):
    checkpointer = checkpointing.Checkpointer(source, keep=1, read_only=True)
    try:
      stored, where = checkpointer.stored_config(), checkpointer.directory
    finally:
      checkpointer.close()
    if stored is None:
      return
    record = splits.training_record(stored)
  else:
    return
  changed = splits.record_changes(record, splits.training_record(config.to_dict()))
  if changed:
    raise errors.InputMismatchError(
      f"the generator in {where} learned from other data ({'; '.join(changed)}): a generator "
      "is used only on the data it was trained on; train one for this data (another "
      "--workdir), or run with its data settings. Nothing was changed."
    )


def run_in_workdir(config, workdir: str, mode: str, entry_point) -> None:
  """Checks the inputs, resolves the data-dependent values, locks the workdir, records
  config.json and runs ``entry_point``.

  What a failed run leaves behind: nothing is written before the inputs are
  checked; the lock is taken before config.json is touched, so a second run on
  a busy workdir changes nothing; a run that fails on a user error puts
  config.json back as it was (removes it if there was none), and removes the
  whole workdir (lock, empty folders) when this run created it and wrote nothing
  else into it (``workdir.holds_nothing``). A run stopped by a
  non-finite loss keeps it: its checkpoints were made with that config.
  """
  check_inputs(config, workdir, mode)
  recorded = config.provenance.simulated is not None and not config.data.clip_max_quantile
  if mode != "report" or not recorded:
    # data.clip_max, provenance: recorded in config.json below. A report of a run's
    # config.json (--config=<workdir>/config.json) keeps what it recorded: no data read.
    resolve.resolve_data(config)
  config_path = wd.config_path(workdir)
  try:
    created = not epath.Path(workdir).exists()
    epath.Path(workdir).mkdir(parents=True, exist_ok=True)
    previous = config_path.read_text() if config_path.exists() else None
  except OSError as e:
    raise errors.WorkdirError(f"cannot use --workdir={workdir}: {e}") from None
  with wd.Lock(workdir):
    wd.write_config(config, workdir)
    try:
      entry_point(config, workdir)
    except errors.UserError:
      if parallel.is_main_process():
        if created and wd.holds_nothing(workdir):  # Ours, empty, and still locked.
          epath.Path(workdir).rmtree(missing_ok=True)
        elif previous is None:
          config_path.unlink(missing_ok=True)
        else:
          wd.write_text(config_path, previous)
      raise


def start(config, workdir: str, mode: str) -> None:
  """What ``main`` runs once the command is parsed and its JAX-free checks passed: JAX
  starts (``jax.distributed`` when asked), the config is checked against the devices
  (``checks.validate``), and ``mode`` runs in ``workdir`` (``run_in_workdir``).

  Raises:
    errors.ConfigError: a field the devices or a registry refuse (one line).
  """
  parallel.initialize(config)  # jax.distributed (when asked), then the config's values.
  checks.validate(config, num_devices=jax.device_count(), num_processes=jax.process_count())
  logging.info(
    f"JAX {jax.__version__}: process {jax.process_index()} of {jax.process_count()}, "
    f"{jax.local_device_count()} local / {jax.device_count()} global {jax.default_backend()} devices"
  )
  run_in_workdir(config, workdir, mode, ENTRY_POINTS[mode])


def write_report(config, workdir) -> None:
  """The report stage (--mode=report, and --mode=all's last): process 0 writes report.md from
  the workdir's files, the other processes wait for it."""
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


def study_plan(num_folds: int) -> list[tuple[int, int | None]]:
  """``[(fold, leader)]`` of a study of ``num_folds`` folds, leaders first: one DDPM per
  training partition (``data.splits.training_partition``). A leader (``leader`` None)
  trains it; a fold training on the same months (f + K/2 of an even K) uses its export."""
  leaders: dict[str, int] = {}
  plan = []
  for fold in range(num_folds):
    partition = splits.training_partition(fold, num_folds)
    plan.append((fold, leaders.get(partition)))
    leaders.setdefault(partition, fold)
  return sorted(plan, key=lambda p: (p[1] is not None, p[0]))


LEADER_STAGES = ("train", "export", "sample", "classify", "evaluate", "report")
PARTNER_STAGES = ("sample", "classify", "evaluate", "report")


def run_study(config, root, run_in_workdir=run_in_workdir) -> None:
  """--mode=study: the whole cross-validation study in ``root``; resumable.

  Every fold of the dataset runs in ``root/fold_<k>``: a partition's leader fold runs
  ``LEADER_STAGES`` (its DDPM trained on its training months, then exported), the fold
  sharing those months runs ``PARTNER_STAGES`` with ``sampling.checkpoint`` set to the
  leader's export; then every fold's classifier is pooled (``classifier.folds``) into
  ``root/folds.json`` and ``root/folds.md``. Each stage goes through ``run_in_workdir``
  (checks, lock, config.json, as a command's) and resumes or reuses what exists, so the same
  command continues after a kill anywhere. ``data.fold`` of ``config`` is not used.
  """
  num_folds = int(config.provenance.num_folds)
  if config.data.split != "month_blocks":
    raise errors.ConfigError(
      f"--mode=study runs the month-block folds; data.split={config.data.split!r} is run fold "
      "by fold (--mode=all --config.data.fold=F), or set data.split='month_blocks'."
    )
  if num_folds < 3:
    raise errors.MissingInputError(
      f"--mode=study needs the dataset's number of folds: {config.provenance.unreadable}"
    )
  root = epath.Path(root)
  workdirs = {fold: root / f"fold_{fold}" for fold in range(num_folds)}
  for fold, leader in study_plan(num_folds):
    fold_config = config.copy_and_resolve_references()
    fold_config.data.fold = fold
    stages = LEADER_STAGES
    if leader is not None:
      fold_config.sampling.checkpoint = str(_newest_export(workdirs[leader]))
      stages = PARTNER_STAGES
    for stage in stages:
      logging.info("=== study: fold %d of %d, stage %s ===", fold, num_folds, stage)
      if stage == "export" and _newest_export(workdirs[fold], missing_ok=True):
        continue  # Exported at the newest step already.
      run_in_workdir(fold_config, str(workdirs[fold]), stage, ENTRY_POINTS[stage])
  if jax.process_index() == 0:
    text = folds.write_pooled([workdirs[f] for f in range(num_folds)], root)
    logging.info("The %d folds pooled: %s\n%s", num_folds, root / "folds.md", text)
    leaders = [fold for fold, leader in study_plan(num_folds) if leader is None]
    write_study_realism({f: workdirs[f] for f in leaders}, root)


def write_study_realism(workdirs: dict, root) -> str | None:
  """``root/realism.md``: the rare-class realism of every generator of the study (the
  leader folds' eval/metrics.json), pooled; None (nothing written) when none evaluated."""
  found = {}
  for fold, workdir in workdirs.items():
    path = wd.eval_dir(workdir) / "metrics.json"
    if path.exists():
      found[fold] = json.loads(path.read_text())
  if not found:
    return None
  text = eval_tables.study_unseen_markdown(found)
  wd.write_text(epath.Path(root) / "realism.md", text)
  return text


def _newest_export(workdir, missing_ok: bool = False):
  """``export/<step>/`` of the newest checkpoint of ``workdir`` (None when not exported yet
  and ``missing_ok``)."""
  steps = wd.steps(wd.checkpoints_dir(workdir))
  path = wd.export_dir(workdir, max(steps)) if steps else None
  if path is not None and (path / sample.EXPORT_META).exists():
    return path
  if missing_ok:
    return None
  raise errors.MissingInputError(f"no export of {workdir}'s newest checkpoint: run its fold first.")


ENTRY_POINTS = {  # mode -> function(config, workdir); --mode=NAME runs NAME's module
  "train": train.run,
  "sample": sample.run,
  "evaluate": evaluate.run,
  "classify": experiment.run,
  "all": run_all,
  "export": export.run,
  "study": run_study,
  "report": write_report,
}
MODES = tuple(ENTRY_POINTS)
