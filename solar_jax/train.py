"""DDPM training: sharded over devices and hosts, resumable, with EMA.

Sections: state and optimiser; the step; initialisation and sharding; the
loop (data, logging, checkpoints, preemption, periodic samples).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import time
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from clu import metric_writers
from etils import epath

from solar_jax import checkpointing, parallel
from solar_jax.diffusion import losses, schedules
from solar_jax.models import unet


class NonFiniteLossError(RuntimeError):
  """Training produced NaN/Inf; the message names the step."""


class Preempted(Exception):  # An outcome, not an error: main.py exits 0 on it.
  """Training stopped on SIGTERM (or a preemption notice) after saving the current step.

  Raised rather than returned so that callers running later stages (--mode=all)
  stop too instead of going on with a partly trained model.
  """


_FIRST_BAD = "first_nonfinite_step"
_NO_BAD_STEP = np.iinfo(np.int32).max


def _accumulate(sums, metrics):
  """Sums metrics over the log window; the first bad step is a minimum."""
  if sums is None:
    return metrics
  return {
    k: jnp.minimum(sums[k], v) if k == _FIRST_BAD else sums[k] + v for k, v in metrics.items()
  }


# --------------------------------------------------------------- state ---


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  ema_params: Any
  opt_state: Any
  rng: jax.Array  # Raw uint32 key data; per step fold_in(step) gives the key.


def learning_rate_schedule(training: ml_collections.ConfigDict) -> optax.Schedule:
  """Linear warm-up to ``learning_rate``, then constant."""
  if training.warmup_steps == 0:
    return optax.constant_schedule(training.learning_rate)
  return optax.join_schedules(
    [
      optax.linear_schedule(0.0, training.learning_rate, training.warmup_steps),
      optax.constant_schedule(training.learning_rate),
    ],
    [training.warmup_steps],
  )


def create_optimizer(training: ml_collections.ConfigDict) -> optax.GradientTransformation:
  parts = []
  if training.grad_clip > 0:
    parts.append(optax.clip_by_global_norm(training.grad_clip))
  parts.append(
    optax.adamw(
      learning_rate_schedule(training), b1=0.9, b2=0.999, weight_decay=training.weight_decay
    )
  )
  return optax.chain(*parts)


def _init_state(rng, *, config, model, optimizer) -> TrainState:
  size, channels = config.data.image_size, config.data.channels
  x = jnp.zeros((1, size, size, channels), jnp.float32)
  t = jnp.zeros((1,), jnp.int32)
  y = jnp.zeros((1,), jnp.int32)
  params_rng, state_rng = jax.random.split(rng)
  params = model.init({"params": params_rng}, x, t, y, train=False)["params"]
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    ema_params=params,
    opt_state=optimizer.init(params),
    rng=jax.random.key_data(state_rng),
  )


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


# ------------------------------------------------- init and sharding ---


def abstract_train_state(config, mesh):
  """Returns (abstract state with shardings, init function) without allocating."""
  model = unet.create_model(config)
  optimizer = create_optimizer(config.training)
  init = functools.partial(_init_state, config=config, model=model, optimizer=optimizer)
  abstract = jax.eval_shape(init, jax.random.key(0))
  shardings = parallel.state_shardings(mesh, abstract)
  abstract = jax.tree.map(
    lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
  )
  return abstract, init


def init_train_state(config, mesh) -> TrainState:
  abstract, init = abstract_train_state(config, mesh)
  shardings = jax.tree.map(lambda a: a.sharding, abstract)
  root = jax.random.fold_in(jax.random.key(config.seed), 0)  # Stream 0: model init.
  return jax.jit(init, out_shardings=shardings)(root)


def make_train_step(config, mesh, abstract_state):
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
    in_shardings=(state_shardings, {"image": batch_sharding, "label": batch_sharding}),
    out_shardings=(state_shardings, parallel.replicated(mesh)),
    donate_argnums=(0,),
  )


# ---------------------------------------------------------------- loop ---


class _Preemption:
  """Turns SIGTERM into a flag the loop reads between steps."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # Not the main thread: leave signals alone.
      self._previous = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def _train_iterator(config, start_step: int):
  from solar_jax.data import input_pipeline  # TensorFlow: only when training.

  return input_pipeline.get_dataset(
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


def _write_periodic_samples(config, workdir, state, step, mesh, writer):
  from solar_jax import sample  # Imports sunpy/matplotlib; only when sampling.

  n = config.training.num_sample_images
  num_classes = len(config.data.classes)
  counts = np.full(num_classes, n // num_classes)
  counts[: n % num_classes] += 1
  out_dir = sample.sample_and_write(
    config, workdir, state.ema_params, step, mesh=mesh, counts=counts
  )
  grid = epath.Path(out_dir) / "grid.png"
  if writer is not None and grid.exists():
    import matplotlib.image

    with grid.open("rb") as f:
      image = matplotlib.image.imread(f, format="png")
    writer.write_images(step, {"samples": image[None, ..., :3]})


def _truncate_history(workdir, step: int) -> None:
  """Keeps the rows of train_metrics.jsonl up to ``step``, where a resumed run goes on.

  A run killed after logging steps past its last checkpoint would otherwise list
  them twice; a line cut short by the kill is dropped too.
  """
  path = epath.Path(workdir) / "train_metrics.jsonl"
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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    tmp.replace(path)


def _append_history(workdir, step: int, scalars: dict) -> None:
  path = epath.Path(workdir) / "train_metrics.jsonl"
  line = json.dumps({"step": int(step), **{k: float(v) for k, v in scalars.items()}})
  with path.open("a") as f:
    f.write(line + "\n")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir, *, batches_fn=None):
  """Trains the DDPM in ``workdir``, resuming from its newest checkpoint.

  Args:
    config: the resolved config.
    workdir: run directory (local path or gs://).
    batches_fn: optional ``start_step -> iterator of local batches`` replacing
      the dataset (tests); it must continue the stream at ``start_step``.

  Returns:
    The final TrainState.

  Raises:
    Preempted: SIGTERM (or a multi-host preemption notice) arrived; the step
      reached was saved.
    NonFiniteLossError: a step gave NaN/Inf; the checkpoints before it are kept.
  """
  workdir = epath.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  with checkpointing.WorkdirLock(workdir, reentrant=True), _Preemption() as preemption:
    return _train(
      config, workdir, preemption, batches_fn or functools.partial(_train_iterator, config)
    )


def _train(config, workdir, preemption, batches_fn):
  mesh = parallel.create_mesh(config.mesh)
  parallel.check_local_batch(config.training.batch_size, mesh)
  main = parallel.is_main_process()
  with jax.set_mesh(mesh):
    abstract, _ = abstract_train_state(config, mesh)
    checkpointer = checkpointing.Checkpointer(workdir, keep=config.training.keep_checkpoints)
    restored = checkpointer.restore(abstract)
    if restored is None:
      state = init_train_state(config, mesh)
      logging.info("Initialised a new model (%d parameters).", unet.count_params(state.params))
    else:
      state, meta = restored
      logging.info("Resumed from checkpoint at step %d.", meta["step"])
    start = int(jax.device_get(state.step))
    if main:
      _truncate_history(workdir, start)
    total = config.training.num_steps
    step_fn = make_train_step(config, mesh, abstract)
    train_iter = batches_fn(start)
    writer = metric_writers.create_default_writer(
      os.fspath(workdir),
      just_logging=not (main and config.logging.tensorboard),
      asynchronous=False,
    )
    if start == 0 and main:
      writer.write_hparams({k: str(v) for k, v in config.to_dict().items()})
    progress = _progress_bar(config, start, total) if main else None
    sums, count, last_time, last_step = None, 0, time.time(), start
    step, preempted = start, False
    try:
      while step < total:
        local = next(train_iter)
        batch = parallel.make_global_batch(mesh, {k: local[k] for k in ("image", "label")})
        state, metrics = step_fn(state, batch)
        step += 1
        sums = _accumulate(sums, metrics)
        count += 1
        if progress is not None:
          progress.update(1)
        at_end = step == total
        checkpoint_due = step % config.training.checkpoint_every == 0
        if step % config.training.log_every == 0 or at_end or checkpoint_due:
          scalars = jax.device_get(sums)  # The only device->host read of the loop.
          if scalars[_FIRST_BAD] != _NO_BAD_STEP:
            raise NonFiniteLossError(
              f"non-finite loss or gradient at step {int(scalars[_FIRST_BAD])}; training "
              f"stopped; the last good checkpoint (step {checkpointer.latest_step()}) "
              "is intact."
            )
          now = time.time()
          scalars = {k: v / count for k, v in scalars.items() if k != _FIRST_BAD}
          rate = (step - last_step) / max(now - last_time, 1e-9)
          scalars.update(steps_per_sec=rate, images_per_sec=rate * config.training.batch_size)
          writer.write_scalars(step, scalars)
          if main:
            _append_history(workdir, step, scalars)
            if progress is not None:
              progress.set_postfix(loss=f"{scalars['loss']:.4f}")
          sums, count, last_time, last_step = None, 0, now, step
        preempted = preemption.requested or checkpointer.reached_preemption(step)
        if checkpoint_due or at_end or preempted:
          checkpointer.save(step, state, {"config": config.to_json()})
        if preempted:
          logging.warning("Preemption signal: saved step %d, exiting.", step)
          break
        every = config.training.sample_every
        if every and step % every == 0 and not at_end:
          _write_periodic_samples(config, workdir, state, step, mesh, writer if main else None)
      if step == total and total > start and config.training.num_sample_images:
        _write_periodic_samples(config, workdir, state, step, mesh, writer if main else None)
    finally:
      if progress is not None:
        progress.close()
      writer.flush()
      checkpointer.close()
    if main:
      _save_loss_curve(workdir)
    if preempted:
      raise Preempted(
        f"stopped at step {step} on a preemption signal, checkpoint saved; run the same "
        "command to resume."
      )
    return state


def _progress_bar(config, start: int, total: int):
  if not config.logging.progress:
    return None
  from tqdm import tqdm

  return tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True)


def _save_loss_curve(workdir) -> None:
  path = epath.Path(workdir) / "train_metrics.jsonl"
  if not path.exists():
    return
  rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
  if not rows:
    return
  from solar_jax import viz

  viz.save_loss_curve(
    [r["step"] for r in rows], [r["loss"] for r in rows], workdir / "loss_curve.png"
  )
