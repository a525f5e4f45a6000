"""Feature extractors for the evaluation: the flare classifier, random projections, Inception-v3.

'classifier' is the penultimate layer of the 'real' regime's classifier (first
seed, the checkpoint chosen on validation) from
``workdir/classifier/runs/real/seed_<s>/``; 'random' is a fixed random
projection of block-averaged images that needs no training nor download (a
sanity floor, ``solar_jax.metrics.random_features``); 'inception' needs the
FID Inception weights (``config.evaluation.inception_weights``, see
``solar_jax.models.inception``). Each extractor maps model-space images
[N, H, W, C] to float32 features [N, D].

The same real-only classifier's predictions score class consistency
(``load_classifier_predictor``).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import jax
import numpy as np
from absl import logging
from etils import epath

from solar_jax import checkpointing, errors, parallel
from solar_jax import workdir as wd
from solar_jax.classifier.trainer import apply_batched, architecture, make_programs
from solar_jax.metrics import random_features
from solar_jax.models import classifier as classifier_lib
from solar_jax.models import inception

Extractor = Callable[[np.ndarray], np.ndarray]  # model-space [N, H, W, C] -> [N, D]

# What each feature space is, in the words the report uses.
DESCRIPTIONS = {
  "classifier": "penultimate layer of the real-only flare classifier ('real' regime, first "
  "seed, checkpoint chosen on validation)",
  "random": "fixed random projection of 16x16 block means of the transformed image "
  "(no training, no download: a sanity floor)",
  "inception": "Inception-v3 pool3 (pytorch-fid weights)",
}

EXTRACTORS = tuple(DESCRIPTIONS)  # The feature spaces build_extractors knows.


class NoExtractorError(errors.UserError, RuntimeError):
  """None of ``config.evaluation.extractors`` can run; the message says what each needs."""


def check_available(config, workdir, *, classifier_yet_to_train: bool = False) -> None:
  """Raises MissingInputError, before anything runs, when no requested extractor can work.

  The checks read only file names: the classifier's checkpoint directory (unless
  the run trains it first, as --mode=all does) and the Inception weights file
  (whose loader gives the error that says how to get them).
  """
  names = tuple(config.evaluation.extractors)
  if "random" in names:
    return  # Always available.
  if "inception" in names:
    weights = config.evaluation.inception_weights
    if not weights or not epath.Path(weights).exists():
      inception.load_variables(weights)  # Raises the error that says how to get them.
    return
  if "classifier" in names and not classifier_yet_to_train:
    seed = config.classifier.seeds[0]
    directory = wd.checkpoints_dir(wd.classifier_run_dir(workdir, "real", seed))
    if not wd.steps(directory):
      raise errors.MissingInputError(
        f"no trained flare classifier in {directory} for the evaluation's 'classifier' "
        "features: run --mode=classify (with 'real' in classifier.regimes) first, or add "
        "'inception' to config.evaluation.extractors."
      )


def build_extractors(config, workdir, mesh=None) -> tuple[dict[str, Extractor], dict[str, str]]:
  """Feature extractors named in ``config.evaluation.extractors``.

  Returns:
    (extractors by name, skipped extractor -> reason).
  """
  names = tuple(config.evaluation.extractors)
  if not names:
    raise errors.ConfigError(
      "config.evaluation.extractors is empty; use 'inception' and/or 'classifier'."
    )
  extractors: dict[str, Extractor] = {}
  skipped: dict[str, str] = {}
  batch_size = config.evaluation.batch_size
  progress = bool(config.logging.progress)
  for name in names:
    if name == "inception":
      sharding = None if mesh is None else parallel.data_sharding(mesh)
      model = inception.make_extractor(config.evaluation.inception_weights, batch_size, sharding)
      extractors[name] = lambda x, m=model: m(x, progress=progress)
    elif name == "random":
      extractors[name] = random_features.make_extractor(
        config.evaluation.random_features_dim, config.seed
      )
    elif name == "classifier":
      try:
        fn = load_classifier_extractor(config, workdir)
      except errors.MissingInputError as e:
        skipped[name] = f"no trained flare classifier in {workdir} ({e}); run --mode=classify first"
        continue
      extractors[name] = _batched_callable(fn, batch_size, progress, "classifier features")
    else:
      raise errors.ConfigError(f"config.evaluation.extractors: unknown extractor {name!r}.")
  if not extractors:
    raise NoExtractorError(
      "no feature extractor is available: "
      + "; ".join(f"{k}: {v}" for k, v in skipped.items())
      + ". Train the classifier (--mode=classify) or add 'inception' to "
      "config.evaluation.extractors with config.evaluation.inception_weights set."
    )
  for name, reason in skipped.items():
    logging.warning("Skipping the %s extractor: %s", name, reason)
  return extractors, skipped


def _batched_callable(fn, batch_size, progress, desc) -> Extractor:
  return lambda x: inception.batched_features(fn, x, batch_size, progress=progress, desc=desc)


def _restore_classifier(config, workdir):
  """(programs, params, mesh, step) of the stored 'real' classifier (first seed)."""
  seed = config.classifier.seeds[0]
  run_dir = wd.classifier_run_dir(workdir, "real", seed)
  directory = wd.checkpoints_dir(run_dir)
  if not wd.steps(directory):
    raise errors.MissingInputError(
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
    if meta_arch is not None and meta_arch != architecture(config):
      raise errors.InputMismatchError(
        f"the classifier in {directory} was trained with {meta_arch}, but the config asks for "
        f"{architecture(config)}; rerun --mode=classify or use the matching config."
      )
    step = checkpointer.latest_step()
    restored = checkpointer.restore(abstract)
  finally:
    checkpointer.close()
  if restored is None:
    raise errors.MissingInputError(f"no readable classifier checkpoint in {directory}.")
  return programs, restored[0]["params"], mesh, step


def _apply(config, mesh, fn, params, images, empty) -> np.ndarray:
  images = np.asarray(images, np.float32)
  if len(images) == 0:
    return empty
  shards = parallel.num_batch_shards(mesh) * jax.process_count()
  batch_size = -(-config.evaluation.batch_size // shards) * shards
  with jax.set_mesh(mesh):
    return apply_batched(fn, params, images, batch_size, mesh)


def load_classifier_extractor(config, workdir):
  """The trained 'real' classifier (first seed) as a feature extractor.

  Returns:
    ``fn(images [N,H,W,C] model space, numpy) -> float32 numpy [N, D]``: the
    pooled penultimate features.

  Raises:
    MissingInputError: no trained classifier (run --mode=classify with 'real'
      in classifier.regimes).
    InputMismatchError: the stored classifier does not match the config's architecture.
  """
  programs, params, mesh, _ = _restore_classifier(config, workdir)
  empty = np.zeros((0, classifier_lib.feature_dim(config.classifier)), np.float32)

  def extract(images) -> np.ndarray:
    feats = _apply(config, mesh, programs.features, params, images, empty)
    return np.asarray(feats, np.float32)

  return extract


def load_classifier_predictor(config, workdir):
  """The real-only classifier's labels, for class consistency.

  Returns:
    (``fn(model-space images [N,H,W,C]) -> int32 [N]`` task labels, info:
    {'regime', 'seed', 'step', 'task', 'class_names'}).

  Raises:
    MissingInputError, InputMismatchError: as :func:`load_classifier_extractor`.
  """
  programs, params, mesh, step = _restore_classifier(config, workdir)
  empty = np.zeros(
    (
      0,
      len(
        classifier_lib.task_class_names(
          classifier_lib.task_of(config.classifier, config.data.label), config.data.classes
        )
      ),
    ),
    np.float32,
  )
  task = classifier_lib.task_of(config.classifier, config.data.label)
  info = {
    "regime": "real",
    "seed": int(config.classifier.seeds[0]),
    "step": None if step is None else int(step),
    "task": task,
    "class_names": list(classifier_lib.task_class_names(task, config.data.classes)),
  }

  def predict(images) -> np.ndarray:
    # programs.predict gives class probabilities [N, K]; the label is their argmax.
    prob = np.asarray(_apply(config, mesh, programs.predict, params, images, empty))
    return np.argmax(prob, axis=-1).astype(np.int32)

  return predict, info


def _stored_architecture(checkpointer, directory) -> dict | None:
  step = checkpointer.latest_step()
  meta_path = directory / str(step) / "meta" / "metadata"
  if step is None or not meta_path.exists():
    return None
  return json.loads(meta_path.read_text()).get("architecture")
