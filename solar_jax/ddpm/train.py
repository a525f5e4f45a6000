"""DDPM training: sharded over devices and hosts, resumable, with EMA.

Sections: the step (a pure function); its jit with shardings and donation;
the loop (data, logging, checkpoints, preemption, periodic samples). The train
state, optimiser and initialisation live in ``solar_jax.ddpm.train_state``.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import signal
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm
from absl import logging
from etils import epath

from solar_jax import checkpointing, configuration, errors, parallel, provenance, viz
from solar_jax import workdir as wd
from solar_jax.data import input_pipeline, splits
from solar_jax.ddpm import sample
from solar_jax.ddpm.train_state import (
  TrainState,
  abstract_train_state,
  create_optimizer,
  init_train_state,
  learning_rate_schedule,
)
from solar_jax.diffusion import losses, schedules
from solar_jax.models import unet

_FIRST_BAD = "first_nonfinite_step"
_NO_BAD_STEP = np.iinfo(np.int32).max


def _accumulate(sums, metrics):
  """Sums metrics over the log window; the first bad step is a minimum."""
  if sums is None:
    return metrics
  return {
    k: jnp.minimum(sums[k], v) if k == _FIRST_BAD else sums[k] + v for k, v in metrics.items()
  }


# ---------------------------------------------------------------- step ---


def train_step(state: TrainState, batch, *, model, schedule, config, optimizer):
  """One optimiser step. Pure: ``(state, batch) -> (state, metrics)``.

  A non-finite loss leaves the state unchanged and is reported in the metrics,
  so the last good state is never overwritten.
  """
  rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)

  def apply_fn(params, x, t, y, train, rngs):
    return model.apply({"params": params}, x, t, y, train=train, rngs=rngs)

  def loss_fn(params):
    return losses.diffusion_loss(apply_fn, params, batch, rng, schedule, config, train=True)

  (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  decay = config.training.ema_decay
  ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, params)
  grad_norm = optax.global_norm(grads)
  ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  new_state = state.replace(step=state.step + 1, params=params, ema_params=ema, opt_state=opt_state)
  new_state = jax.tree.map(lambda new, old: jnp.where(ok, new, old), new_state, state)
  new_state = new_state.replace(step=state.step + 1)  # Counts the skipped step too.
  metrics = {
    "loss": loss,
    "grad_norm": grad_norm,
    "learning_rate": learning_rate_schedule(config.training)(state.step),
    **aux,
    # 1-based number of this step if it was bad, else a sentinel; reduced by min.
    _FIRST_BAD: jnp.where(ok, _NO_BAD_STEP, state.step + 1).astype(jnp.int32),
  }
  return new_state, metrics


def make_train_step(config, mesh, abstract_state):
  """The jitted step of ``config`` on ``mesh``, remembered per (model, training, diffusion
  and data config, mesh): a resumed or repeated run in one process reuses its traced and
  compiled program instead of tracing the UNet's step again."""
  key = (*(config[k].to_json_best_effort(sort_keys=True) for k in _STEP_SECTIONS), mesh)
  if key not in _TRAIN_STEPS:
    if len(_TRAIN_STEPS) >= 8:
      _TRAIN_STEPS.clear()
    _TRAIN_STEPS[key] = _make_train_step(copy.deepcopy(config), mesh, abstract_state)
  return _TRAIN_STEPS[key]


# What the step reads of the config (train_step, losses.diffusion_loss, the UNet).
_STEP_SECTIONS = ("model", "training", "diffusion", "data")
_TRAIN_STEPS: dict = {}


def batch_keys(config) -> tuple[str, ...]:
  """The keys of the training stream a step reads: the image and its condition."""
  return ("image", "label", *(("label_flux",) if config.model.conditioning == "flux" else ()))


def _make_train_step(config, mesh, abstract_state):
  model = unet.create_model(config)
  schedule = schedules.get_schedule(config.diffusion)
  step = functools.partial(
    train_step,
    model=model,
    schedule=schedule,
    config=config,
    optimizer=create_optimizer(config.training),
  )
  state_shardings = jax.tree.map(lambda a: a.sharding, abstract_state)
  batch_sharding = parallel.data_sharding(mesh)
  return jax.jit(
    step,
    in_shardings=(state_shardings, {k: batch_sharding for k in batch_keys(config)}),
    out_shardings=(state_shardings, parallel.replicated(mesh)),
    donate_argnums=(0,),
  )


# ---------------------------------------------------------------- loop ---


class _Preemption:
  """Turns SIGTERM and SIGINT (Ctrl-C) into a flag the loop reads between steps.

  After the first SIGINT the previous handler is back, so a second Ctrl-C interrupts
  at once (orbax's renames keep the last complete checkpoint whole even then).
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.requested = False
    self.received = None  # The name of the first signal.
    self._previous = {}

  def __enter__(self):
    try:
      for signum in self.SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    except ValueError:  # Not the main thread: leave signals alone.
      self._previous = {}
    return self

  def _handle(self, signum, frame):
    del frame
    self.requested = True
    self.received = self.received or signal.Signals(signum).name
    if signum == signal.SIGINT:
      signal.signal(signum, self._previous.get(signum, signal.default_int_handler))

  def describe(self) -> str:
    return "an interrupt (SIGINT)" if self.received == "SIGINT" else "a preemption signal"

  def label(self) -> str:
    return "Interrupt (SIGINT)" if self.received == "SIGINT" else "Preemption signal"

  def __exit__(self, *exc):
    for signum, previous in self._previous.items():
      if previous is not None:
        signal.signal(signum, previous)


class _StopAgreement:
  """Makes every process stop at the same step when any one of them is asked to.

  SIGTERM may reach one host only; were it to save and leave alone, the others
  would wait in the next step's collective (and the save is collective too). At
  each step boundary every process adds its flag to a tiny all-reduce; its result
  is read one step later, so the host still keeps a step queued ahead of the
  devices, and every process reads the same answer at the same step.
  """

  def __init__(self, mesh):
    self.sharding = parallel.data_sharding(mesh) if jax.process_count() > 1 else None
    self.pending = None
    self._any = jax.jit(jnp.max, out_shardings=parallel.replicated(mesh))

  def __call__(self, requested: bool) -> bool:
    """Whether to stop now: the same answer on every process."""
    if self.sharding is None:
      return requested
    local = np.full(jax.local_device_count(), int(requested), np.int32)
    current = self._any(jax.make_array_from_process_local_data(self.sharding, local))
    previous, self.pending = self.pending, current
    return previous is not None and bool(np.asarray(previous.addressable_data(0)))


def _train_iterator(config, start_step: int):
  return input_pipeline.make_for_train(
    config.data,
    "train",
    config.training.batch_size // jax.process_count(),
    shuffle=True,
    seed=config.seed,
    repeat=True,
    start_step=start_step,
    process_index=jax.process_index(),
    process_count=jax.process_count(),
  )


def grid_counts(num_images: int, num_classes: int) -> np.ndarray:
  """Images per class in a periodic sample grid: ``num_images`` spread as evenly as the
  classes allow, the first classes taking the remainder, and never fewer than one per
  class (a grid that leaves out X, the class the model is for, would hide it)."""
  counts = np.full(num_classes, max(1, num_images // num_classes))
  if num_images > num_classes:
    counts[: num_images % num_classes] += 1
  return counts


def _write_periodic_samples(config, workdir, state, step, mesh, writer):
  counts = grid_counts(config.training.num_sample_images, len(config.data.classes))
  out_dir = sample.sample_and_write(
    config, workdir, state.ema_params, step, mesh=mesh, counts=counts
  )
  grid = out_dir / "grid.png"
  if writer is not None and grid.exists():
    writer.write_images(step, {"samples": viz.read_png(grid)[None, ..., :3]})


def train_frames_per_class(config) -> tuple[dict[str, int], dict[str, int]]:
  """Frames per class of the train split, all and flaring (inside a flare's window); one
  pass over its facts, no image decoded."""
  split = input_pipeline.make_for_inference(config.data, "train", images=False)
  labels, flaring = np.asarray(split["label"]), np.asarray(split["flaring"], bool)
  counts = input_pipeline.missing_classes(config.data, labels)[1]
  names = list(counts)
  flaring_counts = {n: int(np.sum(labels[flaring] == i)) for i, n in enumerate(names)}
  return counts, flaring_counts


def withheld_record(config) -> dict:
  """The days withheld from the model's training months (``data.splits.withhold``): the
  setting, and the days and frames it withheld here (the memorisation test's held-out)."""
  data = config.data
  record = {"fraction": float(data.withheld_day_fraction), "seed": int(data.withheld_day_seed)}
  times = input_pipeline.make_for_inference(data, splits.WITHHELD_SPLIT, images=False)["time"]
  days = np.unique(splits.as_times(times).astype("datetime64[D]")).astype(str).tolist()
  return {**record, "frames": len(times), "days": days}


def _write_training_record(config, workdir, reads_dataset: bool) -> None:
  """config_train.json and train_info.json of a model that started from step 0.

  Written once, with the model's first checkpoint; a resumed run and the other modes
  leave both alone (config.json is the last command's). train_info.json holds who
  trained (``provenance.record``, the devices) and the train split's frames per class,
  with the classes the model never saw (``missing``; the report names them), and the
  days withheld from its training months (``withheld_record``).
  """
  info = {
    **provenance.record(),
    "devices": f"{jax.device_count()} {jax.default_backend()} device(s), "
    f"{jax.process_count()} process(es)",
  }
  counts = train_frames_per_class(config) if reads_dataset else None
  if counts is not None:  # None: a stream that is not the dataset's (tests).
    counts, info["flaring_per_class"] = counts
    info.update(frames_per_class=counts, label=config.data.label)
    info["missing"] = [name for name, n in counts.items() if n == 0]
    info["withheld_days"] = withheld_record(config)
  wd.write_text(wd.train_config_path(workdir), configuration.to_json(config))
  wd.write_json(wd.train_info_path(workdir), info)


def _truncate_history(workdir, step: int) -> None:
  """Keeps the rows of train_metrics.jsonl up to ``step``, where a resumed run goes on.

  A run killed after logging steps past its last checkpoint would otherwise list
  them twice; a line cut short by the kill is dropped too.
  """
  path = wd.history_path(workdir)
  if wd.is_link(path):
    path.unlink()  # Not this run's file: never read or written through.
  if not path.exists():
    return
  lines = path.read_text().splitlines()
  kept = []
  for line in lines:
    try:
      if json.loads(line)["step"] <= step:
        kept.append(line)
    except (ValueError, KeyError, TypeError):
      continue
  if len(kept) != len(lines):
    wd.write_text(path, "".join(line + "\n" for line in kept))


def _append_history(workdir, step: int, scalars: dict) -> None:
  line = json.dumps({"step": int(step), **{k: float(v) for k, v in scalars.items()}})
  wd.append_text(wd.history_path(workdir), line + "\n")


def run(config: ml_collections.ConfigDict, workdir, *, batches_fn=None):
  """Trains the DDPM in ``workdir``, resuming from its newest checkpoint.

  Args:
    config: the resolved config.
    workdir: run directory (local path or gs://).
    batches_fn: optional ``start_step -> iterator of local batches`` replacing
      the dataset (tests); it must continue the stream at ``start_step``.

  Returns:
    The final TrainState.

  Raises:
    errors.Preempted: SIGTERM (or a multi-host preemption notice) arrived; the
      step reached was saved.
    errors.NonFiniteError: a step gave NaN/Inf; the checkpoints before it are kept.
  """
  workdir = epath.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  with wd.Lock(workdir, reentrant=True), _Preemption() as preemption:
    reads_dataset = batches_fn is None
    batches_fn = batches_fn or functools.partial(_train_iterator, config)
    return _train(config, workdir, preemption, batches_fn, reads_dataset)


def _restore_or_init(config, mesh, checkpointer, abstract) -> TrainState:
  restored = checkpointer.restore(abstract)
  if restored is None:
    state = init_train_state(config, mesh)
    logging.info("Initialised a new model (%d parameters).", unet.count_params(state.params))
    return state
  state, meta = restored
  logging.info("Resumed from checkpoint at step %d.", meta["step"])
  return state


class _LogWindow:
  """Metric sums since the last log step; read from the device only when logged."""

  def __init__(self, step: int):
    self.sums, self.count, self.time, self.step = None, 0, time.time(), step

  def add(self, metrics) -> None:
    self.sums = _accumulate(self.sums, metrics)
    self.count += 1

  def close(self, step: int, batch_size: int, latest_good: int | None) -> dict:
    """Mean scalars of the window; raises NonFiniteError if a step in it went bad."""
    scalars = jax.device_get(self.sums)  # The only device->host read of the loop.
    if scalars[_FIRST_BAD] != _NO_BAD_STEP:
      kept = (
        f"the last good checkpoint (step {latest_good}) is intact"
        if latest_good is not None
        else "no checkpoint had been saved yet; lower training.learning_rate (or raise "
        "training.warmup_steps) and run again"
      )
      raise errors.NonFiniteError(
        f"non-finite loss or gradient at step {int(scalars[_FIRST_BAD])}; training stopped; {kept}."
      )
    now = time.time()
    scalars = {k: v / self.count for k, v in scalars.items() if k != _FIRST_BAD}
    rate = (step - self.step) / max(now - self.time, 1e-9)
    scalars.update(steps_per_sec=rate, images_per_sec=rate * batch_size)
    self.sums, self.count, self.time, self.step = None, 0, now, step
    return scalars


def _train(config, workdir, preemption, batches_fn, reads_dataset):
  training = config.training
  mesh = parallel.create_mesh(config.mesh)
  parallel.check_local_batch(training.batch_size, mesh)
  main = parallel.is_main_process()
  with jax.set_mesh(mesh):
    abstract, _ = abstract_train_state(config, mesh)
    checkpointer = checkpointing.Checkpointer(workdir, keep=training.keep_checkpoints)
    try:
      checkpointer.check_config(config)  # Before restore() could set any checkpoint aside.
      state = _restore_or_init(config, mesh, checkpointer, abstract)
    except BaseException:
      checkpointer.close()
      raise
    start = int(jax.device_get(state.step))
    if main:
      _truncate_history(workdir, start)
    total = training.num_steps
    step_fn = make_train_step(config, mesh, abstract)
    train_iter = batches_fn(start)
    writer = _metric_writer(config, workdir, main)
    if start == 0 and main:
      writer.write_hparams({k: str(v) for k, v in config.to_dict().items()})
    progress = None  # Started after the first step: its ETA leaves out compilation.
    window, stop_agreed = _LogWindow(start), _StopAgreement(mesh)
    step, preempted = start, False
    try:
      while step < total:
        local = next(train_iter)
        batch = parallel.make_global_batch(mesh, {k: local[k] for k in batch_keys(config)})
        state, metrics = step_fn(state, batch)
        step += 1
        window.add(metrics)
        if progress is not None:
          progress.update(1)
        elif main:
          progress = _progress_bar(config, step, total)
        at_end = step == total
        checkpoint_due = step % training.checkpoint_every == 0
        if step % training.log_every == 0 or at_end or checkpoint_due:
          scalars = window.close(step, training.batch_size, checkpointer.latest_step())
          writer.write_scalars(step, scalars)
          if main:
            _append_history(workdir, step, scalars)
            if progress is not None:
              progress.set_postfix(loss=f"{scalars['loss']:.4f}")
        preempted = stop_agreed(preemption.requested) or checkpointer.reached_preemption(step)
        if checkpoint_due or at_end or preempted:
          if main and start == 0 and checkpointer.latest_step() is None:
            _write_training_record(config, workdir, reads_dataset)
          checkpointer.save(step, state, {"config": config.to_json()})
        if preempted:
          logging.warning("%s: saved step %d, exiting.", preemption.label(), step)
          break
        every = training.sample_every
        if every and step % every == 0 and not at_end:
          _write_periodic_samples(config, workdir, state, step, mesh, writer if main else None)
      if step == total and total > start and training.num_sample_images:
        _write_periodic_samples(config, workdir, state, step, mesh, writer if main else None)
    finally:
      if progress is not None:
        progress.close()
      writer.flush()
      checkpointer.close()
    if main:
      _save_loss_curve(workdir)
    if preempted:
      raise errors.Preempted(
        f"stopped at step {step} on {preemption.describe()}, checkpoint saved; run the same "
        "command to resume."
      )
    return state


class _LogLines:
  """What the loop writes when TensorBoard is off: one log line per logged step, as clu's
  LoggingWriter writes it, without importing clu.metric_writers (which imports TensorFlow,
  ~4 s, in every run that never writes a summary)."""

  def __init__(self, enabled: bool):
    self.enabled = enabled

  def write_scalars(self, step: int, scalars) -> None:
    if self.enabled:
      values = (
        f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(scalars.items())
      )
      logging.info("[%d] %s", step, ", ".join(values))

  def write_hparams(self, hparams) -> None:
    if self.enabled:
      logging.info("[Hyperparameters] %s", hparams)

  def write_images(self, step: int, images) -> None:
    pass  # The grid is a PNG in the workdir already.

  def flush(self) -> None:
    pass

  def close(self) -> None:
    pass


def _metric_writer(config, workdir, main: bool):
  """TensorBoard (process 0, when enabled) and log lines, unless a progress bar shows the
  loss: metric lines printed under a bar break it; train_metrics.jsonl keeps every value."""
  log_lines = not (main and config.logging.progress)
  if not (main and config.logging.tensorboard):
    return _LogLines(log_lines)
  from clu import metric_writers  # Imports TensorFlow (~4 s): only when summaries are written.

  writers = [metric_writers.SummaryWriter(os.fspath(workdir))]
  if log_lines:
    writers.append(metric_writers.LoggingWriter())
  return metric_writers.MultiWriter(writers)


def _progress_bar(config, start: int, total: int):
  if not config.logging.progress:
    return None
  return tqdm.tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True)


def _save_loss_curve(workdir) -> None:
  path = wd.history_path(workdir)
  if not path.exists():
    return
  rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
  if rows:
    viz.save_loss_curve(
      [r["step"] for r in rows], [r["loss"] for r in rows], epath.Path(workdir) / "loss_curve.png"
    )
