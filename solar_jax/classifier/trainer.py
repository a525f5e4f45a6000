"""Training one flare classifier: its state, step, jitted programs and model selection.

A run trains from a ``classifier_data.TrainingSet`` and keeps the parameters
that score best on the validation split (macro F1 for the multiclass task,
TSS for the binary ones). Batches are split over the mesh's devices;
parameters are replicated (the classifier has 10^5-10^6 of them). The jitted
programs are built once per (config, mesh) and shared by every run of a
process (regimes, seeds, the feature extractor of the evaluation).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm

from solar_jax import configuration, errors, parallel
from solar_jax.classifier.training_sets import EpochSampler, TrainingSet, augment_batch
from solar_jax.metrics import classification
from solar_jax.models import classifier as classifier_lib

_CLASSIFIER_STREAM = 1  # jax.random.fold_in stream of the root key (0 is the DDPM's init).


# ----------------------------------------------------- state and step ---


@flax.struct.dataclass
class ClassifierState:
  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array  # Raw uint32 key data; per step fold_in(step) gives the dropout key.


def create_optimizer(c: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """AdamW with a cosine decay of ``learning_rate`` to 1% over ``num_steps``."""
  schedule = optax.cosine_decay_schedule(c.learning_rate, c.num_steps, alpha=0.01)
  return optax.adamw(schedule, weight_decay=c.weight_decay)


def new_state(rng, *, config, model, optimizer) -> ClassifierState:
  """The initial state from key ``rng`` (jit it; ``init_state`` does)."""
  size, channels = config.data.image_size, config.data.channels
  params_rng, state_rng = jax.random.split(rng)
  x = jnp.zeros((1, size, size, channels), jnp.float32)
  params = model.init({"params": params_rng}, x, train=False)["params"]
  return ClassifierState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    opt_state=optimizer.init(params),
    rng=jax.random.key_data(state_rng),
  )


def focal_factor(logits, labels, gamma):
  """``(1 - p_t)^gamma`` of the focal loss (Lin et al. 2017); 1 where ``gamma`` is 0.

  ``p_t`` is the softmax probability of the true class. Clamping ``1 - p_t``
  away from 0 keeps the gradient finite at ``gamma = 0`` (0 * inf otherwise).
  """
  log_p = jax.nn.log_softmax(logits)
  p_true = jnp.exp(jnp.take_along_axis(log_p, labels[:, None], axis=-1)[:, 0])
  return jnp.power(jnp.maximum(1.0 - p_true, 1e-12), gamma)


def train_step(state: ClassifierState, batch, *, model, optimizer):
  """One step of (weighted, optionally focal) cross-entropy: ``(state, batch) -> (state, metrics)``.

  ``batch`` = {'image', 'label', 'weight', 'gamma'}; the loss is
  sum(w * (1 - p_t)^gamma * CE) / sum(w) (gamma 0: cross-entropy; one compiled
  step serves every regime). A non-finite loss leaves the parameters unchanged
  and shows in the metrics.
  """
  rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)

  def loss_fn(params):
    logits = model.apply({"params": params}, batch["image"], train=True, rngs={"dropout": rng})
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
    ce = ce * focal_factor(logits, batch["label"], batch["gamma"])
    w = batch["weight"]
    loss = jnp.sum(w * ce) / jnp.maximum(jnp.sum(w), 1e-12)
    return loss, jnp.mean(jnp.argmax(logits, -1) == batch["label"])

  (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  grad_norm = optax.global_norm(grads)
  ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  new = state.replace(params=params, opt_state=opt_state)
  new = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, state)
  new = new.replace(step=state.step + 1)
  metrics = {
    "loss": loss,
    "accuracy": accuracy,
    "grad_norm": grad_norm,
    "nonfinite": (~ok).astype(jnp.int32),
  }
  return new, metrics


@dataclasses.dataclass
class Programs:
  """The jitted functions of one (config, mesh); compiled once, shared by every run."""

  model: classifier_lib.FlareClassifier
  mesh: jax.sharding.Mesh
  init: Any  # root key -> ClassifierState (replicated)
  step: Any  # (state, batch) -> (state, metrics), state donated
  predict: Any  # (params, images) -> float32 class probabilities [B, K] (replicated)
  features: Any  # (params, images) -> float32 features (replicated)


# What a stored classifier's parameters mean (``architecture``), and what its compiled
# programs depend on: the architecture plus the optimisation settings baked into them.
ARCHITECTURE_FIELDS = (
  "classifier.label",
  "classifier.grouping",
  "classifier.stage_sizes",
  "classifier.width",
  "classifier.stem_stride",
  "data.label",
  "data.class_scale",
  "data.image_size",
  "data.channels",
  "data.classes",
)
PROGRAM_FIELDS = (
  *ARCHITECTURE_FIELDS,
  "classifier.dropout",
  "classifier.learning_rate",
  "classifier.weight_decay",
  "classifier.num_steps",
)

# Programs by (the config fields they depend on, mesh): later runs in one process
# (regimes, seeds, the feature extractor of --mode=all) reuse the compiled functions.
_PROGRAMS: dict[tuple[str, Any], Programs] = {}


def program_key(config: ml_collections.ConfigDict, mesh) -> tuple:
  """What the compiled classifier programs depend on: the cache key of plain and stacked ones."""
  return (configuration.digest(configuration.depends_on(config, PROGRAM_FIELDS)), mesh)


def make_programs(config: ml_collections.ConfigDict, mesh) -> Programs:
  """Builds (or reuses) the init, train-step and predict programs with their shardings.

  The whole state is replicated (the classifier has ~10^5-10^6 parameters);
  batches are split over every device of the mesh.
  """
  key = program_key(config, mesh)
  if key not in _PROGRAMS:
    _PROGRAMS[key] = _build_programs(config, mesh)
  return _PROGRAMS[key]


def _build_programs(config, mesh) -> Programs:
  model = classifier_lib.create_classifier(config)
  optimizer = create_optimizer(config.classifier)
  rep, data = parallel.replicated(mesh), parallel.data_sharding(mesh)
  init = parallel.jit_run_once(  # Once per seed: compiled cheaply.
    functools.partial(new_state, config=config, model=model, optimizer=optimizer),
    out_shardings=rep,
  )
  step = jax.jit(
    functools.partial(train_step, model=model, optimizer=optimizer),
    in_shardings=(rep, data),
    out_shardings=(rep, rep),
    donate_argnums=(0,),
  )

  def _predict(params, images):
    return jax.nn.softmax(model.apply({"params": params}, images, train=False), -1)

  def _features(params, images):
    return model.apply({"params": params}, images, train=False, return_features=True)[1]

  predict = jax.jit(_predict, in_shardings=(rep, data), out_shardings=rep)
  features = jax.jit(_features, in_shardings=(rep, data), out_shardings=rep)
  return Programs(model, mesh, init, step, predict, features)


def seed_key(config, seed: int) -> jax.Array:
  """The init key of seed ``seed``: the same for every regime (common random numbers)."""
  root = jax.random.fold_in(jax.random.key(config.seed), _CLASSIFIER_STREAM)
  return jax.random.fold_in(root, seed)


def init_state(programs: Programs, config, seed: int) -> ClassifierState:
  """Initial state of seed ``seed``: the same for every regime (common random numbers)."""
  return programs.init(seed_key(config, seed))


def _global(mesh, arrays: dict) -> dict:
  """Global arrays from full host batches (identical on every process): each gives its share."""
  n, p, i = len(next(iter(arrays.values()))), jax.process_count(), jax.process_index()
  local = n // p
  return parallel.make_global_batch(
    mesh, {k: v[i * local : (i + 1) * local] for k, v in arrays.items()}
  )


def apply_batched(fn, params, images: np.ndarray, batch_size: int, mesh, axis: int = 0):
  """``fn(params, batch)`` over ``images`` in fixed-size batches (last one zero-padded).

  ``axis``: the image axis of ``fn``'s output (1 for stacked runs' ``[R, B, ...]``).
  """
  images = np.asarray(images, np.float32)
  out = []
  for start in range(0, len(images), batch_size):
    batch = images[start : start + batch_size]
    pad = batch_size - len(batch)
    if pad:
      batch = np.concatenate([batch, np.zeros((pad, *batch.shape[1:]), np.float32)])
    result = np.asarray(jax.device_get(fn(params, _global(mesh, {"image": batch})["image"])))
    out.append(np.take(result, np.arange(batch_size - pad), axis=axis))
  if not out:
    return np.zeros((0,), np.int32)
  return np.concatenate(out, axis=axis)


# ----------------------------------------------------------- one run ---


def is_multiclass(task: str) -> bool:
  return task in ("multiclass", "forecast_multiclass")


def selection_metric(task: str) -> str:
  """Validation figure that picks the checkpoint: macro F1 (multiclass) or TSS (binary)."""
  return "macro_f1" if is_multiclass(task) else "tss"


def thresholds(config) -> dict[str, int]:
  """For the multiclass tasks: the class index of >=M and >=C (TSS/HSS of those events)."""
  goes = tuple(config.data.classes)
  if not is_multiclass(classifier_lib.task_of(config.classifier, config.data.label)):
    return {}
  return {f">={c}": goes.index(c) for c in ("M", "C") if c in goes}


def predict_labels(programs: Programs, params, images, batch_size: int, mesh) -> np.ndarray:
  """``(labels int32 [N], probabilities float32 [N, K])`` of ``images``."""
  prob = apply_batched(programs.predict, params, images, batch_size, mesh)
  if prob.ndim == 1:  # No images.
    return prob.astype(np.int32), prob.reshape(0, 0)
  return np.argmax(prob, -1).astype(np.int32), prob


def score(config, y_true, y_pred) -> dict:
  names = classifier_lib.task_class_names(
    classifier_lib.task_of(config.classifier, config.data.label), config.data.classes
  )
  return classification.classification_metrics(y_true, y_pred, names, thresholds=thresholds(config))


def selection_score(config, metrics: dict) -> float:
  """The selection metric of validation ``metrics`` (macro F1 where the TSS is undefined)."""
  value = metrics[selection_metric(classifier_lib.task_of(config.classifier, config.data.label))]
  return value if np.isfinite(value) else metrics["macro_f1"]


class BatchStream:
  """The host batches of one run: its epoch order and augmentation draws come from its seed.

  Two runs with the same seed and training set draw the same batches, whether
  they are trained alone or stacked with others.
  """

  def __init__(self, config, training_set: TrainingSet, seed: int):
    c = config.classifier
    self.config, self.training_set = config, training_set
    rng = np.random.default_rng([config.seed, seed, 11])
    self.sampler = EpochSampler(training_set.indices, c.batch_size, rng)
    self.augment_rng = np.random.default_rng([config.seed, seed, 13])
    self.gamma = np.full(c.batch_size, training_set.focal_gamma, np.float32)

  def next(self) -> dict:
    """{'image', 'label', 'weight', 'gamma'} of the next global batch."""
    ts, idx = self.training_set, self.sampler.next()
    arrays = {k: getattr(ts, k + "s")[idx] for k in ("image", "label", "weight")}
    arrays["gamma"] = self.gamma
    if ts.augment:
      rotation = ts.settings.get("augment_rotation_deg")
      arrays["image"] = augment_batch(arrays["image"], self.config, self.augment_rng, rotation)
    return arrays


class RunLog:
  """One run's history and best-on-validation selection (host side; device-free)."""

  def __init__(self, config, name: str, validation: dict | None):
    c = config.classifier
    self.config, self.name = config, name
    self.validation = validation
    self.has_val = validation is not None and len(validation["label"]) > 0
    self.every = c.eval_every if c.eval_every > 0 else c.num_steps
    self.best = None  # (selection score, step, validation metrics)
    self.history: list[dict] = []

  def evaluates(self, step: int) -> bool:
    """Whether ``step`` ends a logging window (and evaluates on validation)."""
    return step % self.every == 0 or step == self.config.classifier.num_steps

  def window(self, scalars: dict, count: int, step: int) -> dict:
    """The record of the window ending at ``step`` from the summed host ``scalars``."""
    if scalars["nonfinite"]:
      raise errors.NonFiniteError(
        f"{self.name}: non-finite loss or gradient within steps {step - count + 1}-{step}; "
        "lower classifier.learning_rate."
      )
    return {
      "step": step,
      "train_loss": float(scalars["loss"] / count),
      "train_accuracy": float(scalars["accuracy"] / count),
    }

  def validate(self, record: dict, pred: np.ndarray) -> bool:
    """Scores validation predictions into ``record``; True when they are the best so far."""
    val = score(self.config, self.validation["label"], pred)
    record.update(val_macro_f1=val["macro_f1"], val_tss=val["tss"], val_hss=val["hss"])
    value = selection_score(self.config, val)
    if self.best is None or value > self.best[0]:
      self.best = (value, record["step"], val)
      return True
    return False

  def append(self, record: dict, writer) -> None:
    self.history.append(record)
    if writer is not None:
      tags = {f"{self.name}/{k}": v for k, v in record.items() if k != "step"}
      writer.write_scalars(record["step"], tags)

  def info(self) -> dict:
    """best_step, selection metric and rule, history, final loss, validation metrics."""
    c = self.config.classifier
    info = {
      "best_step": c.num_steps,
      "selection_metric": selection_metric(classifier_lib.task_of(c, self.config.data.label)),
      "history": self.history,
      "final_train_loss": self.history[-1]["train_loss"],
    }
    if self.best is None:
      info["selection"] = "final step (no validation examples)"
    else:
      _, info["best_step"], info["validation"] = self.best
      info["selection"] = f"best validation {info['selection_metric']} of {len(self.history)}"
    return info


def progress_bar(config, name: str):
  show = config.logging.progress and parallel.is_main_process()
  total = config.classifier.num_steps
  return tqdm.tqdm(total=total, desc=name, unit="step", dynamic_ncols=True, disable=not show)


def train_one(
  config: ml_collections.ConfigDict,
  programs: Programs,
  training_set: TrainingSet,
  validation: dict | None,
  *,
  seed: int,
  name: str = "classifier",
  writer=None,
):
  """Trains one classifier and keeps the parameters that score best on validation.

  ``stacked.train_many`` trains several such runs as one program, with the same result.

  Args:
    config: reads classifier.{batch_size, num_steps, eval_every, task}.
    programs: from ``make_programs``.
    training_set: from ``classifier_data.build_training_set``.
    validation: {'image' (model space), 'label' (task labels)}; None or empty:
      the final parameters are kept.
    seed: the run's seed (initialisation, batch order, dropout).
    name: label for the progress bar, logs and TensorBoard tags.
    writer: optional clu metric writer.

  Returns:
    ``(params, info)``: the selected parameters (on device) and a dict with
    best_step, the validation metrics there, and the last training loss.
  """
  c = config.classifier
  mesh = programs.mesh
  parallel.check_local_batch(c.batch_size, mesh)
  state = init_state(programs, config, seed)
  stream, log = BatchStream(config, training_set, seed), RunLog(config, name, validation)
  best_params, sums, count = None, None, 0
  with progress_bar(config, name) as progress:
    for step in range(1, c.num_steps + 1):
      state, metrics = programs.step(state, _global(mesh, stream.next()))
      sums = metrics if sums is None else jax.tree.map(jnp.add, sums, metrics)
      count += 1
      progress.update(1)
      if not log.evaluates(step):
        continue
      # The only device->host read between evaluations.
      record = log.window(jax.device_get(sums), count, step)
      sums, count = None, 0
      if log.has_val:
        pred, _ = predict_labels(programs, state.params, validation["image"], c.batch_size, mesh)
        if log.validate(record, pred):
          # A copy: the state's buffers are donated to the next step.
          best_params = jax.tree.map(jnp.copy, state.params)
      log.append(record, writer)
      progress.set_postfix(loss=f"{record['train_loss']:.3f}")
  return (state.params if best_params is None else best_params), log.info()


def architecture(config) -> dict:
  """What a stored classifier must match to be loaded with ``config``."""
  fields = configuration.depends_on(config, ARCHITECTURE_FIELDS)
  return {k.rpartition(".")[2]: v for k, v in fields.items()}
