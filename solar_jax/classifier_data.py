"""Training sets of the classifier regimes: counts, resampling, weights, synthetic images.

Pure NumPy on the host (the datasets are held in memory, see
``solar_jax.train_classifier``), except ``synthetic_pool``, which samples the
workdir's DDPM once per checkpoint and caches the images. Counts of synthetic
images are per GOES class, the DDPM's conditioning; oversampling and class
weights work on the classifier task's classes.
"""

from __future__ import annotations

import dataclasses
import os

import ml_collections
import numpy as np
from absl import logging

from solar_jax import errors, parallel, sample
from solar_jax import workdir as wd
from solar_jax.data import input_pipeline, scaling
from solar_jax.diffusion import samplers
from solar_jax.models import classifier as classifier_lib

SYNTHETIC_REGIMES = ("real_synthetic", "synthetic_only")


# ------------------------------------------------------ training sets ---


@dataclasses.dataclass
class TrainingSet:
  """What one regime trains on.

  ``images``/``labels`` hold each distinct example once; ``indices`` lists the
  examples of one epoch (with repeats when oversampling).
  """

  images: np.ndarray  # float32 [M, H, W, C], model space.
  labels: np.ndarray  # int32 [M], task labels.
  weights: np.ndarray  # float32 [M], per-example loss weight.
  indices: np.ndarray  # int64 [E], one epoch.
  counts: dict  # Per task class: real, synthetic, total (per epoch), unique_real.


def per_class_counts(labels, num_classes: int) -> np.ndarray:
  return np.bincount(np.asarray(labels, np.int64), minlength=num_classes)[:num_classes]


def synthetic_topup_counts(train_counts, ratio: float) -> np.ndarray:
  """``ratio * (max_c n_c - n_c)`` per class, rounded half up: images that balance the classes."""
  train_counts = np.asarray(train_counts, np.int64)
  if ratio < 0:
    raise errors.ConfigError(f"classifier.synthetic_ratio={ratio} must be >= 0.")
  return np.floor(ratio * (train_counts.max() - train_counts) + 0.5).astype(np.int64)


def synthetic_pool_counts(train_counts, regimes, ratio: float) -> np.ndarray:
  """Synthetic images per GOES class that serve every requested synthetic regime."""
  train_counts = np.asarray(train_counts, np.int64)
  need = np.zeros_like(train_counts)
  if "real_synthetic" in regimes:
    need = np.maximum(need, synthetic_topup_counts(train_counts, ratio))
  if "synthetic_only" in regimes:
    need = np.maximum(need, train_counts)
  return need


def oversample_indices(labels, num_classes: int, rng: np.random.Generator) -> np.ndarray:
  """All indices, plus ``max - n_c`` draws with replacement from each class ``c``."""
  labels = np.asarray(labels)
  counts = per_class_counts(labels, num_classes)
  parts = [np.arange(len(labels))]
  for c in range(num_classes):
    members = np.flatnonzero(labels == c)
    if len(members):
      parts.append(rng.choice(members, counts.max() - len(members), replace=True))
  return np.concatenate(parts).astype(np.int64)


def inverse_frequency_weights(labels, num_classes: int) -> np.ndarray:
  """Per-class weights ``N / (K' n_c)`` over the K' classes present (absent classes: 0)."""
  counts = per_class_counts(labels, num_classes).astype(np.float64)
  present = counts > 0
  weights = np.zeros(num_classes)
  weights[present] = counts.sum() / (present.sum() * counts[present])
  return weights


def _take_per_class(labels, counts) -> np.ndarray:
  """Indices of the first ``counts[c]`` examples of each class ``c``."""
  picked = []
  for c, n in enumerate(np.asarray(counts)):
    members = np.flatnonzero(labels == c)
    if len(members) < n:
      raise ValueError(f"the synthetic pool has {len(members)} images of class {c}, {n} needed.")
    picked.append(members[:n])
  return np.concatenate(picked) if picked else np.zeros(0, np.int64)


def build_training_set(
  regime: str,
  real: dict,
  synthetic: dict | None,
  config: ml_collections.ConfigDict,
  seed: int,
) -> TrainingSet:
  """The training set of ``regime``.

  Args:
    regime: one of ``configuration.CLASSIFIER_REGIMES``.
    real: the real training split: 'image' (model space), 'label' (GOES index).
    synthetic: the synthetic pool, 'image' (model space) and 'label' (GOES
      index), at least ``synthetic_pool_counts`` per class; None if absent.
    config: reads data.classes and classifier.{task, synthetic_ratio}.
    seed: the run's seed (oversampling draws).
  """
  c = config.classifier
  goes = tuple(config.data.classes)
  names = classifier_lib.task_class_names(c.task, goes)
  k = len(names)
  real_goes = np.asarray(real["label"], np.int64)
  real_images = np.asarray(real["image"], np.float32)
  if regime in SYNTHETIC_REGIMES:
    if synthetic is None:
      raise ValueError(f"regime {regime!r} needs synthetic images; none were given.")
    goes_counts = per_class_counts(real_goes, len(goes))
    if regime == "real_synthetic":
      want = synthetic_topup_counts(goes_counts, c.synthetic_ratio)
    else:
      want = goes_counts
    pick = _take_per_class(np.asarray(synthetic["label"]), want)
    syn_images = np.asarray(synthetic["image"], np.float32)[pick]
    syn_goes = np.asarray(synthetic["label"], np.int64)[pick]
  else:
    syn_images = np.zeros((0, *real_images.shape[1:]), np.float32)
    syn_goes = np.zeros(0, np.int64)
  if regime == "synthetic_only":
    real_images, real_goes = real_images[:0], real_goes[:0]

  images = np.concatenate([real_images, syn_images])
  is_real = np.concatenate([np.ones(len(real_goes), bool), np.zeros(len(syn_goes), bool)])
  labels = classifier_lib.task_labels(np.concatenate([real_goes, syn_goes]), c.task, goes)
  weights = np.ones(len(labels), np.float32)
  indices = np.arange(len(labels), dtype=np.int64)
  if regime == "weighted":
    weights = inverse_frequency_weights(labels, k)[labels].astype(np.float32)
  elif regime == "oversample":
    indices = oversample_indices(labels, k, np.random.default_rng([seed, 7]))
  if len(indices) == 0:
    raise ValueError(f"regime {regime!r} has no training examples.")

  epoch_labels, epoch_real = labels[indices], is_real[indices]
  counts = {
    "class_names": list(names),
    "real": per_class_counts(epoch_labels[epoch_real], k).tolist(),
    "synthetic": per_class_counts(epoch_labels[~epoch_real], k).tolist(),
    "total": per_class_counts(epoch_labels, k).tolist(),
    "unique_real": per_class_counts(labels[is_real], k).tolist(),
  }
  if regime in SYNTHETIC_REGIMES:
    counts["synthetic_goes"] = dict(zip(goes, per_class_counts(syn_goes, len(goes)).tolist()))
  if regime == "weighted":
    counts["class_weight"] = inverse_frequency_weights(labels, k).tolist()
  return TrainingSet(images, labels, weights, indices, counts)


class EpochSampler:
  """Global batches of indices: a fresh permutation of ``indices`` every epoch.

  The last partial batch of an epoch is dropped; a set smaller than one batch
  is repeated to fill it. Every process draws the same global batch.
  """

  def __init__(self, indices: np.ndarray, batch_size: int, rng: np.random.Generator):
    self._indices = np.asarray(indices)
    if len(self._indices) < batch_size:
      reps = -(-batch_size // len(self._indices))
      self._indices = np.tile(self._indices, reps)
    self._batch_size = batch_size
    self._rng = rng
    self._order = np.zeros(0, np.int64)

  def next(self) -> np.ndarray:
    if len(self._order) < self._batch_size:
      self._order = self._rng.permutation(self._indices)
    batch, self._order = self._order[: self._batch_size], self._order[self._batch_size :]
    return batch


# --------------------------------------------------------- synthetic ---


class NoDDPMCheckpointError(errors.MissingInputError):
  """The workdir has no diffusion checkpoint to sample synthetic images from."""


def pool_config(config) -> ml_collections.ConfigDict:
  """``config`` with ``classifier.guidance_scale`` (when set) as the sampling guidance."""
  scale = config.classifier.get("guidance_scale")
  if scale is None or float(scale) == float(config.sampling.guidance_scale):
    return config
  config = config.copy_and_resolve_references()
  config.sampling.guidance_scale = float(scale)
  return config


def pool_settings(config) -> dict:
  """The settings that decide a synthetic pool's images, besides the DDPM step (JSON-friendly).

  ``samplers.recorded_settings`` (as samples.npz records them) plus the DDIM spacing,
  x0 clipping and the model's prediction; the sampler's noise is per image, so the
  batch size does not count.
  """
  config = pool_config(config)
  s = config.sampling
  return {
    **samplers.recorded_settings(config),
    "spacing": s.spacing,
    "clip_x0": bool(s.clip_x0),
    "prediction": config.diffusion.prediction,
  }


def _stored_settings(data: dict, keys) -> dict | None:
  """The settings a cached pool was drawn with; None for a cache written before they were."""
  try:
    return {key: data[key].item() for key in keys}
  except KeyError:
    return None


def synthetic_pool(config, workdir, counts, *, mesh=None) -> dict:
  """Synthetic images per GOES class from the workdir's newest DDPM checkpoint.

  Reuses ``workdir/classifier/synthetic/step_<step>.npz`` when it holds at
  least ``counts`` images of each class and was drawn with the config's
  sampling settings (``pool_settings``: sampler, steps, eta, spacing, guidance,
  x0 clipping, seed, prediction); samples (and overwrites) it otherwise. The
  guidance is ``classifier.guidance_scale`` when set, else ``sampling.guidance_scale``.

  Returns:
    {'image': float32 [N,H,W,C] model space, 'label': int32 GOES index,
     'step': DDPM step, 'settings': pool_settings(config), 'path': the npz}.

  Raises:
    NoDDPMCheckpointError: the workdir holds no DDPM checkpoint.
  """
  counts = np.asarray(counts, np.int64)
  config = pool_config(config)
  classes = tuple(config.data.classes)
  checkpoints = wd.checkpoints_dir(workdir)
  steps = wd.steps(checkpoints)
  if not steps:
    raise NoDDPMCheckpointError(
      f"no checkpoint in {checkpoints}: train the DDPM first (--mode=train) with this workdir."
    )

  def cached(step):
    path = wd.pool_path(workdir, step)
    if not path.exists():
      return path, None
    try:
      data = wd.read_npz(path)
    except errors.DamagedFileError as e:  # A cache: drawn again and rewritten whole.
      logging.warning("Resampling the synthetic pool: %s", e)
      return path, None
    have = per_class_counts(data["labels"], len(classes))
    if tuple(str(c) for c in data["class_names"]) != classes or np.any(have < counts):
      return path, None
    stored = _stored_settings(data, settings)
    if stored != settings:
      changed = sorted(k for k in settings if stored is None or stored.get(k) != settings[k])
      logging.info(
        "Resampling %s: drawn with other sampling settings (%s).", path, ", ".join(changed)
      )
      return path, None
    return path, data

  settings = pool_settings(config)
  step = max(steps)
  path, data = cached(step)  # Found without loading the DDPM.
  if data is None:
    try:
      params, step = sample.load_inference_params(workdir, config, mesh=mesh)
    except errors.MissingInputError as e:
      raise NoDDPMCheckpointError(str(e)) from None
    path, data = cached(step)  # An unreadable newest checkpoint falls back to an older step.
  if data is None:
    labels = np.repeat(np.arange(len(classes), dtype=np.int32), counts)
    logging.info("Sampling %d synthetic images %s at DDPM step %d.", len(labels), counts, step)
    images = sample.generate(
      config,
      params,
      labels,
      mesh=mesh,
      progress=bool(config.logging.progress) and parallel.is_main_process(),
    )
    data = {
      "images": scaling.inverse(images, config.data.clip_min, config.data.clip_max),
      "labels": labels,
      "class_names": np.array(classes),
      "step": np.int64(step),
      **{key: np.asarray(value) for key, value in settings.items()},
    }
    if parallel.is_main_process():
      path.parent.mkdir(parents=True, exist_ok=True)
      wd.write_npz(path, **data)
  images = np.asarray(data["images"], np.float32)
  return {
    "image": scaling.forward(images, config.data.clip_min, config.data.clip_max),
    "label": np.asarray(data["labels"], np.int32),
    "step": int(step),
    "settings": settings,
    "path": os.fspath(path),
  }


# -------------------------------------------------------- real data ---


def describe(goes_labels, goes_classes) -> dict:
  """``{'num_examples', 'goes_counts': {class: n}}`` of a set of GOES labels."""
  counts = per_class_counts(goes_labels, len(goes_classes))
  return {
    "num_examples": int(counts.sum()),
    "goes_counts": dict(zip(goes_classes, counts.tolist())),
  }


def check_splits(config: ml_collections.ConfigDict, splits: dict) -> None:
  """Raises naming the split whose images do not fit the config, or an empty test split."""
  want = (config.data.image_size, config.data.image_size, config.data.channels)
  for name in ("train", "validation", "test"):
    if name not in splits:
      raise KeyError(f"the classifier needs a {name!r} split; got {sorted(splits)}.")
    shape = tuple(np.shape(splits[name]["image"])[1:])
    if len(splits[name]["label"]) and shape != want:
      raise errors.InputMismatchError(
        f"{name} images have shape {shape}, but data.image_size={config.data.image_size} "
        f"and data.channels={config.data.channels} ask for {want}."
      )
  if len(splits["test"]["label"]) == 0:
    raise errors.InputMismatchError("the test split is empty: nothing to score the classifier on.")


def load_real_splits(config) -> dict[str, dict]:
  """Train, validation and test splits in model space, in memory."""
  return {
    split: input_pipeline.load_split_arrays(config.data, split, transform=True)
    for split in ("train", "validation", "test")
  }
