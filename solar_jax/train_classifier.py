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
``checkpointing.load_inference_params``, written to
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

Model selection: every ``eval_every`` steps and at the end, the model is
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
import dataclasses
import functools
import io
import json
import os
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from etils import epath

from solar_jax import checkpointing, classifier_data, parallel
from solar_jax.classifier_data import SYNTHETIC_REGIMES, TrainingSet
from solar_jax.evaluation import classification
from solar_jax.models import classifier as classifier_lib

_CLASSIFIER_STREAM = 1  # jax.random.fold_in stream of the root key (0 is the DDPM's init).


class NonFiniteLossError(RuntimeError):
  """The classifier's loss became NaN/Inf; the message names the regime, seed and step."""


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


def _init_state(rng, *, config, model, optimizer) -> ClassifierState:
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


def train_step(state: ClassifierState, batch, *, model, optimizer):
  """One step of (weighted) cross-entropy: ``(state, batch) -> (state, metrics)``.

  ``batch`` = {'image', 'label', 'weight'}; the loss is sum(w * CE) / sum(w).
  A non-finite loss leaves the parameters unchanged and shows in the metrics.
  """
  rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)

  def loss_fn(params):
    logits = model.apply({"params": params}, batch["image"], train=True, rngs={"dropout": rng})
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
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
  predict: Any  # (params, images) -> int32 predictions (replicated)
  features: Any  # (params, images) -> float32 features (replicated)


# Programs by (the config fields they depend on, mesh): later runs in one process
# (regimes, seeds, the feature extractor of --mode=all) reuse the compiled functions.
_PROGRAMS: dict[tuple[str, Any], Programs] = {}


def make_programs(config: ml_collections.ConfigDict, mesh) -> Programs:
  """Builds (or reuses) the init, train-step and predict programs with their shardings.

  The whole state is replicated (the classifier has ~10^5-10^6 parameters);
  batches are split over every device of the mesh.
  """
  c = config.classifier
  key = (
    json.dumps(
      [
        c.task,
        c.stage_sizes,
        c.width,
        c.stem_stride,
        c.dropout,
        c.learning_rate,
        c.weight_decay,
        c.num_steps,
      ],
      default=list,
    ),
    json.dumps([config.data.image_size, config.data.channels, list(config.data.classes)]),
    mesh,
  )
  if key not in _PROGRAMS:
    _PROGRAMS[key] = _build_programs(config, mesh)
  return _PROGRAMS[key]


def _build_programs(config, mesh) -> Programs:
  model = classifier_lib.create_classifier(config)
  optimizer = create_optimizer(config.classifier)
  rep, data = parallel.replicated(mesh), parallel.data_sharding(mesh)
  init = jax.jit(
    functools.partial(_init_state, config=config, model=model, optimizer=optimizer),
    out_shardings=rep,
  )
  step = jax.jit(
    functools.partial(train_step, model=model, optimizer=optimizer),
    in_shardings=(rep, data),
    out_shardings=(rep, rep),
    donate_argnums=(0,),
  )

  def _predict(params, images):
    return jnp.argmax(model.apply({"params": params}, images, train=False), -1).astype(jnp.int32)

  def _features(params, images):
    return model.apply({"params": params}, images, train=False, return_features=True)[1]

  predict = jax.jit(_predict, in_shardings=(rep, data), out_shardings=rep)
  features = jax.jit(_features, in_shardings=(rep, data), out_shardings=rep)
  return Programs(model, mesh, init, step, predict, features)


def init_state(programs: Programs, config, seed: int) -> ClassifierState:
  """Initial state of seed ``seed``: the same for every regime (common random numbers)."""
  root = jax.random.fold_in(jax.random.key(config.seed), _CLASSIFIER_STREAM)
  return programs.init(jax.random.fold_in(root, seed))


def _global(mesh, arrays: dict) -> dict:
  """Global arrays from full host batches (identical on every process): each gives its share."""
  n, p, i = len(next(iter(arrays.values()))), jax.process_count(), jax.process_index()
  local = n // p
  return parallel.make_global_batch(
    mesh, {k: v[i * local : (i + 1) * local] for k, v in arrays.items()}
  )


def apply_batched(fn, params, images: np.ndarray, batch_size: int, mesh) -> np.ndarray:
  """``fn(params, batch)`` over ``images`` in fixed-size batches (last one zero-padded)."""
  images = np.asarray(images, np.float32)
  out = []
  for start in range(0, len(images), batch_size):
    batch = images[start : start + batch_size]
    pad = batch_size - len(batch)
    if pad:
      batch = np.concatenate([batch, np.zeros((pad, *batch.shape[1:]), np.float32)])
    result = fn(params, _global(mesh, {"image": batch})["image"])
    out.append(np.asarray(jax.device_get(result))[: batch_size - pad])
  if not out:
    return np.zeros((0,), np.int32)
  return np.concatenate(out)


# ----------------------------------------------------------- one run ---


def selection_metric(task: str) -> str:
  """Validation figure that picks the checkpoint: macro F1 (multiclass) or TSS (binary)."""
  return "macro_f1" if task == "multiclass" else "tss"


def _thresholds(config) -> dict[str, int]:
  """For the multiclass task: TSS/HSS of >=M and >=C from the five-class predictions."""
  goes = tuple(config.data.classes)
  if config.classifier.task != "multiclass":
    return {}
  return {f">={c}": goes.index(c) for c in ("M", "C") if c in goes}


def score(config, y_true, y_pred) -> dict:
  names = classifier_lib.task_class_names(config.classifier.task, config.data.classes)
  return classification.classification_metrics(
    y_true, y_pred, names, thresholds=_thresholds(config)
  )


def _selection_score(config, metrics: dict) -> float:
  value = metrics[selection_metric(config.classifier.task)]
  return value if np.isfinite(value) else metrics["macro_f1"]


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

  Args:
    config: reads classifier.{batch_size, num_steps, eval_every, task}.
    programs: from ``make_programs``.
    training_set: from ``build_training_set``.
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
  sampler = classifier_data.EpochSampler(
    training_set.indices, c.batch_size, np.random.default_rng([config.seed, seed, 11])
  )
  has_val = validation is not None and len(validation["label"]) > 0
  every = c.eval_every if c.eval_every > 0 else c.num_steps
  progress = None
  if config.logging.progress and parallel.is_main_process():
    from tqdm import tqdm

    progress = tqdm(total=c.num_steps, desc=name, unit="step", dynamic_ncols=True)
  best = None
  info = {"best_step": c.num_steps, "selection_metric": selection_metric(c.task), "history": []}
  sums, count = None, 0
  try:
    for step in range(1, c.num_steps + 1):
      idx = sampler.next()
      batch = _global(
        mesh,
        {
          "image": training_set.images[idx],
          "label": training_set.labels[idx],
          "weight": training_set.weights[idx],
        },
      )
      state, metrics = programs.step(state, batch)
      sums = metrics if sums is None else jax.tree.map(jnp.add, sums, metrics)
      count += 1
      if progress is not None:
        progress.update(1)
      if step % every and step != c.num_steps:
        continue
      scalars = jax.device_get(sums)  # The only device->host read between evaluations.
      if scalars["nonfinite"]:
        raise NonFiniteLossError(
          f"{name}: non-finite loss or gradient within steps {step - count + 1}-{step}; "
          "lower classifier.learning_rate."
        )
      record = {
        "step": step,
        "train_loss": float(scalars["loss"] / count),
        "train_accuracy": float(scalars["accuracy"] / count),
      }
      sums, count = None, 0
      if has_val:
        pred = apply_batched(
          programs.predict, state.params, validation["image"], c.batch_size, mesh
        )
        val = score(config, validation["label"], pred)
        record.update(val_macro_f1=val["macro_f1"], val_tss=val["tss"], val_hss=val["hss"])
        value = _selection_score(config, val)
        if best is None or value > best[0]:
          # A copy: the state's buffers are donated to the next step.
          best = (value, jax.tree.map(jnp.copy, state.params), step, val)
      info["history"].append(record)
      if writer is not None:
        writer.write_scalars(step, {f"{name}/{k}": v for k, v in record.items() if k != "step"})
      if progress is not None:
        progress.set_postfix(loss=f"{record['train_loss']:.3f}")
  finally:
    if progress is not None:
      progress.close()
  info["final_train_loss"] = info["history"][-1]["train_loss"]
  if best is None:
    info["selection"] = "final step (no validation examples)"
    return state.params, info
  _, params, info["best_step"], info["validation"] = best
  info["selection"] = f"best validation {info['selection_metric']} of {len(info['history'])}"
  return params, info


# ---------------------------------------------------------------- run ---


def _text(values, n: int) -> list[str]:
  if values is None:
    return [""] * n
  return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).tolist()]


def _run_dir(workdir, regime: str, seed: int) -> epath.Path:
  return epath.Path(workdir) / "classifier" / "runs" / regime / f"seed_{seed}"


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
  stale = checkpointing.absolute(run_dir) / "checkpoints"
  if parallel.is_main_process() and stale.exists():
    stale.rmtree()
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(f"solar_jax: {run_dir} cleared")
  checkpointer = checkpointing.Checkpointer(run_dir, keep=1)
  try:
    checkpointer.save(step, {"params": params}, meta)
  finally:
    checkpointer.close()


def _architecture(config) -> dict:
  c = config.classifier
  return {
    "task": c.task,
    "stage_sizes": list(c.stage_sizes),
    "width": c.width,
    "stem_stride": c.stem_stride,
    "image_size": config.data.image_size,
    "channels": config.data.channels,
    "classes": list(config.data.classes),
  }


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
  workdir = epath.Path(workdir)
  out_dir = workdir / "classifier"
  main = parallel.is_main_process()
  if main:
    out_dir.mkdir(parents=True, exist_ok=True)
  mesh = mesh or parallel.create_mesh(config.mesh)
  parallel.check_local_batch(c.batch_size, mesh)
  goes = tuple(config.data.classes)
  names = classifier_lib.task_class_names(c.task, goes)
  splits = splits or classifier_data.load_real_splits(config)
  classifier_data.check_splits(config, splits)
  train, val, test = splits["train"], splits["validation"], splits["test"]
  train_goes = classifier_data.per_class_counts(train["label"], len(goes))
  validation = {
    "image": np.asarray(val["image"], np.float32),
    "label": classifier_lib.task_labels(val["label"], c.task, goes),
  }
  test_labels = classifier_lib.task_labels(test["label"], c.task, goes)
  metrics: dict = {
    "task": c.task,
    "class_names": list(names),
    "selection_metric": selection_metric(c.task),
    "seeds": list(c.seeds),
    "num_steps": c.num_steps,
    "confusion_png": "confusion_<regime>.png: confusion matrix summed over seeds",
    "data": {k: classifier_data.describe(v["label"], goes) for k, v in splits.items()},
    "regimes": {},
  }

  wanted = [r for r in c.regimes if r in SYNTHETIC_REGIMES]
  skip_reason = None
  if wanted and synthetic is None:
    pool_counts = classifier_data.synthetic_pool_counts(train_goes, wanted, c.synthetic_ratio)
    try:
      with jax.set_mesh(mesh):
        synthetic = classifier_data.synthetic_pool(config, workdir, pool_counts, mesh=mesh)
    except classifier_data.NoDDPMCheckpointError as e:
      skip_reason = f"skipped: no DDPM checkpoint ({e})"
      logging.warning("Synthetic regimes %s %s", wanted, skip_reason)
      print(f"[solar_jax] warning: regimes {', '.join(wanted)} {skip_reason}", flush=True)
  if synthetic is not None:
    metrics["synthetic"] = {
      "ddpm_step": synthetic.get("step"),
      "settings": synthetic.get("settings"),
      "path": synthetic.get("path", ""),
      **classifier_data.describe(synthetic["label"], goes),
    }
  elif skip_reason:
    metrics["synthetic"] = {"skipped": skip_reason}

  from clu import metric_writers  # Imports TensorFlow: only when running.

  writer = metric_writers.create_default_writer(
    os.fspath(out_dir), just_logging=not (main and config.logging.tensorboard), asynchronous=False
  )
  rows = []
  test_ids = np.arange(len(test_labels))
  test_times = _text(test.get("time"), len(test_labels))
  test_sources = _text(test.get("source"), len(test_labels))
  with jax.set_mesh(mesh):
    programs = make_programs(config, mesh)
    for regime in c.regimes:
      if regime in SYNTHETIC_REGIMES and synthetic is None:
        metrics["regimes"][regime] = {"skipped": skip_reason or "skipped: no synthetic images"}
        continue
      entry = metrics["regimes"][regime] = {"seeds": {}}
      confusion_sum = np.zeros((len(names), len(names)), np.int64)
      for seed in c.seeds:
        ts = classifier_data.build_training_set(regime, train, synthetic, config, seed)
        entry["counts"] = ts.counts  # Counts do not depend on the seed.
        logging.info(
          "Classifier %s seed %d: %d examples per epoch, per class %s",
          regime,
          seed,
          len(ts.indices),
          dict(zip(names, ts.counts["total"])),
        )
        result = _train_or_reuse(
          config,
          workdir,
          programs,
          ts,
          validation,
          test,
          test_labels,
          regime,
          seed,
          synthetic,
          writer,
        )
        entry["seeds"][str(seed)] = result
        confusion_sum += np.asarray(result["test"]["confusion"])
        for i, p in zip(test_ids, result["predictions"]):
          rows.append(
            [int(i), test_times[i], names[test_labels[i]], names[p], regime, seed, test_sources[i]]
          )
        del result["predictions"]
      entry["mean_std"] = classification.mean_std_over_seeds(
        [entry["seeds"][str(s)]["test"] for s in c.seeds]
      )
      entry["confusion_summed"] = confusion_sum.tolist()
      if main:
        classification.save_confusion_png(
          confusion_sum,
          names,
          out_dir / f"confusion_{regime}.png",
          title=f"{regime}: test split, summed over {len(c.seeds)} seed(s)",
        )
  writer.flush()
  if main:
    (out_dir / "metrics.json").write_text(json.dumps(classification.to_jsonable(metrics), indent=2))
    _write_predictions(out_dir / "predictions.csv", rows)
    logging.info("Classifier results:\n%s", results_table_markdown(metrics))
  return metrics


def _train_or_reuse(
  config, workdir, programs, ts, validation, test, test_labels, regime, seed, synthetic, writer
) -> dict:
  """Result of one (regime, seed): reused from its run directory when nothing changed."""
  run_dir = _run_dir(workdir, regime, seed)
  pool = None
  if regime in SYNTHETIC_REGIMES:
    # The pool is a function of the DDPM step, its per-class sizes and the sampling settings.
    sizes = classifier_data.per_class_counts(synthetic["label"], len(config.data.classes))
    pool = [synthetic.get("step"), sizes.tolist(), synthetic.get("settings")]
  fingerprint = _fingerprint(config, ts.counts, pool)
  result_path = run_dir / "result.json"
  if result_path.exists():
    saved = json.loads(result_path.read_text())
    if saved.get("fingerprint") == fingerprint:
      logging.info("Reusing the finished classifier run %s.", run_dir)
      return saved["result"]
  params, info = train_one(
    config, programs, ts, validation, seed=seed, name=f"{regime}/seed{seed}", writer=writer
  )
  pred = apply_batched(
    programs.predict, params, test["image"], config.classifier.batch_size, programs.mesh
  )
  result = {"test": score(config, test_labels, pred), **info, "predictions": pred.tolist()}
  meta = {"architecture": _architecture(config), "regime": regime, "seed": seed}
  _save_params(run_dir, params, int(info["best_step"]), meta)
  if parallel.is_main_process():
    result_path.write_text(
      json.dumps({"fingerprint": fingerprint, "result": classification.to_jsonable(result)})
    )
  return classification.to_jsonable(result)


def _write_predictions(path, rows) -> None:
  buffer = io.StringIO()
  out = csv.writer(buffer)
  out.writerow(["id", "time", "true_class", "predicted_class", "regime", "seed", "source"])
  out.writerows(rows)
  epath.Path(path).write_text(buffer.getvalue())


# ------------------------------------------------------------ report ---


def _pm(stats: dict | None) -> str:
  if not stats or stats.get("mean") is None:
    return "n/a"
  std = stats.get("std")
  return f"{stats['mean']:.3f} ± {std:.3f}" if std is not None else f"{stats['mean']:.3f}"


def _pool_line(synthetic: dict | None) -> list[str]:
  """How the synthetic training images were drawn, as a paragraph (none if unknown)."""
  settings = (synthetic or {}).get("settings") or {}
  if not {"sampler", "num_steps", "eta", "guidance_scale", "seed"} <= settings.keys():
    return []
  if settings["sampler"] == "ddim":
    sampler = f"DDIM {settings['num_steps']} steps, η {settings['eta']:g}"
  else:
    sampler = "ancestral DDPM"
  return [
    f"Synthetic images: DDPM step {synthetic.get('ddpm_step')}, {sampler}, guidance "
    f"{settings['guidance_scale']:g}, seed {settings['seed']}.",
    "",
  ]


def results_table_markdown(metrics: dict) -> str:
  """Markdown tables of ``classifier/metrics.json``: scores (mean ± std over seeds) and counts."""
  names = metrics["class_names"]
  thresholds = []
  for regime in metrics["regimes"].values():
    thresholds = sorted(regime.get("mean_std", {}).get("thresholds", {}), reverse=True)
    if thresholds:
      break
  head = ["regime", "macro F1", "TSS", "HSS", "balanced acc."]
  head += [f"TSS {t}" for t in thresholds] + [f"HSS {t}" for t in thresholds]
  lines = [
    f"Task `{metrics['task']}` ({', '.join(names)}); test split, mean ± std over seeds "
    f"{metrics['seeds']}; model chosen on validation {metrics['selection_metric']}. "
    "TSS/HSS are the multiclass (Hanssen-Kuipers, Heidke) forms; equal to the 2×2 forms "
    "for binary tasks.",
    "",
    "| " + " | ".join(head) + " |",
    "|" + " --- |" * len(head),
  ]
  for regime, entry in metrics["regimes"].items():
    if "skipped" in entry:
      lines.append(f"| {regime} | {entry['skipped']} |" + " |" * (len(head) - 2))
      continue
    ms = entry["mean_std"]
    cells = [regime] + [_pm(ms.get(k)) for k in ("macro_f1", "tss", "hss", "balanced_accuracy")]
    cells += [_pm(ms.get("thresholds", {}).get(t, {}).get("tss")) for t in thresholds]
    cells += [_pm(ms.get("thresholds", {}).get(t, {}).get("hss")) for t in thresholds]
    lines.append("| " + " | ".join(cells) + " |")
  lines += [
    "",
    *_pool_line(metrics.get("synthetic")),
    "Training examples per class and epoch (real + synthetic):",
    "",
    "| regime | " + " | ".join(names) + " | total |",
    "|" + " --- |" * (len(names) + 2),
  ]
  for regime, entry in metrics["regimes"].items():
    if "counts" not in entry:
      continue
    counts = entry["counts"]
    cells = [f"{r} + {s}" if s else str(r) for r, s in zip(counts["real"], counts["synthetic"])]
    lines.append(f"| {regime} | " + " | ".join(cells) + f" | {sum(counts['total'])} |")
  return "\n".join(lines)


# ------------------------------------------------- feature extractor ---


def load_feature_extractor(config, workdir):
  """The trained 'real' classifier (first seed) as a feature extractor.

  Returns:
    ``fn(images [N,H,W,C] model space, numpy) -> float32 numpy [N, D]``: the
    pooled penultimate features.

  Raises:
    FileNotFoundError: no trained classifier (run --mode=classify with 'real'
      in classifier.regimes).
    ValueError: the stored classifier does not match the config's architecture.
  """
  seed = config.classifier.seeds[0]
  run_dir = _run_dir(workdir, "real", seed)
  directory = run_dir / "checkpoints"
  if not directory.exists() or not any(p.name.isdigit() for p in directory.iterdir()):
    raise FileNotFoundError(
      f"no trained flare classifier in {directory}: run --mode=classify with 'real' in "
      "config.classifier.regimes first."
    )
  mesh = parallel.create_mesh(config.mesh)
  programs = make_programs(config, mesh)
  abstract = jax.eval_shape(lambda: programs.init(jax.random.key(0)).params)
  rep = parallel.replicated(mesh)
  abstract = {
    "params": jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=rep), abstract)
  }
  checkpointer = checkpointing.Checkpointer(run_dir, keep=1, read_only=True)
  try:
    meta_arch = _stored_architecture(checkpointer, directory)
    if meta_arch is not None and meta_arch != _architecture(config):
      raise ValueError(
        f"the classifier in {directory} was trained with {meta_arch}, but the config asks for "
        f"{_architecture(config)}; rerun --mode=classify or use the matching config."
      )
    restored = checkpointer.restore(abstract)
  finally:
    checkpointer.close()
  if restored is None:
    raise FileNotFoundError(f"no readable classifier checkpoint in {directory}.")
  params = restored[0]["params"]
  batch_size = config.evaluation.batch_size
  shards = parallel.num_batch_shards(mesh) * jax.process_count()
  batch_size = -(-batch_size // shards) * shards

  def extract(images) -> np.ndarray:
    images = np.asarray(images, np.float32)
    if len(images) == 0:
      return np.zeros((0, classifier_lib.feature_dim(config.classifier)), np.float32)
    with jax.set_mesh(mesh):
      feats = apply_batched(programs.features, params, images, batch_size, mesh)
    return feats.astype(np.float32)

  return extract


def _stored_architecture(checkpointer, directory) -> dict | None:
  step = checkpointer.latest_step()
  meta_path = epath.Path(directory) / str(step) / "meta" / "metadata"
  if step is None or not meta_path.exists():
    return None
  return json.loads(meta_path.read_text()).get("architecture")
