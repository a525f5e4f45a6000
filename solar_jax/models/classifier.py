"""Flare classifier: a small pre-activation ResNet for AIA 171 Å images.

Structure, for ``S = len(stage_sizes)`` stages and ``width`` = w::

  conv_in 3x3 (w, stride stem_stride) -> stage 0: stage_sizes[0] blocks at w
                  -> stage i: stage_sizes[i] blocks at w * 2**i, the first with stride 2
  -> GroupNorm -> SiLU -> global average pool = features [B, w * 2**(S-1)]
  -> dropout -> Dense(num_classes) = logits

Each block is GroupNorm-SiLU-conv3x3, GroupNorm-SiLU-dropout-conv3x3, plus a
1x1 projection of the input when the shape changes. GroupNorm (not
BatchNorm) keeps the variables to ``params`` alone, so the train state has no
mutable collections to shard and average.

Tasks (``task_of(config.classifier, config.data.label)``) map the dataset's GOES class index to the
classifier's label: 'multiclass' keeps A, B, C, M, X; 'ge_m' is >=M against
<M; 'ge_c' is >=C against <C; the 'forecast_' forms map the same way (their labels
are the largest class of the next 24 h). The pooled features are the domain-specific
feature extractor used by the evaluation (``return_features=True``).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import numpy as np

from solar_jax.models import layers
from solar_jax.models.layers import group_count

# Concurrent tasks (the class of the frame, data.label) and their forecasting forms
# (the largest class among flares starting in the next 24 h, label 'max_class_next_24h',
# issuance frames only): same classes.
TASKS = ("multiclass", "ge_m", "ge_c", "forecast_multiclass", "forecast_ge_m", "forecast_ge_c")
GROUPINGS = ("multiclass", "ge_m", "ge_c")  # classifier.grouping: how GOES classes are grouped.
FORECAST_LABEL = "max_class_next_24h"  # The dataset's label of the forecasting tasks (frame_facts).


def task_of(classifier_config, data_label: str = "goes_class") -> str:
  """The task a classifier config asks for: its grouping, as a forecast ('forecast_' +
  grouping) when the label it reads (``classifier.label``, '' = ``data.label``) is the
  largest class of the next 24 h."""
  label = classifier_config.label or data_label
  return ("forecast_" if label == FORECAST_LABEL else "") + classifier_config.grouping


# Binary tasks: the GOES class from which an image counts as positive.
_THRESHOLD_CLASS = {"ge_m": "M", "ge_c": "C", "forecast_ge_m": "M", "forecast_ge_c": "C"}
# GroupNorm groups (clipped to the channel count). Fixed rather than configured:
# 8 groups work for every width the classifier is used at (8 to 256 channels).
NUM_GROUPS = 8


def task_class_names(task: str, goes_classes: Sequence[str]) -> tuple[str, ...]:
  """Names of the classifier's classes for ``task`` (index = label).

  Binary tasks are ``('<M', '>=M')`` (or C): index 1 is the positive, flaring class.
  """
  goes_classes = tuple(goes_classes)
  if task in ("multiclass", "forecast_multiclass"):
    return goes_classes
  if task in _THRESHOLD_CLASS:
    letter = _threshold_index(task, goes_classes)[1]
    return (f"<{letter}", f">={letter}")
  raise ValueError(
    f"classifier task {task!r} (classifier.label + classifier.grouping) is not one of {', '.join(map(repr, TASKS))}."
  )


def _threshold_index(task: str, goes_classes: tuple[str, ...]) -> tuple[int, str]:
  letter = _THRESHOLD_CLASS[task]
  if letter not in goes_classes:
    raise ValueError(
      f"classifier task {task!r} needs class {letter!r} in data.classes={goes_classes}."
    )
  return goes_classes.index(letter), letter


def task_labels(goes_labels, task: str, goes_classes: Sequence[str]) -> np.ndarray:
  """Maps GOES class indices (int [N], position in ``goes_classes``) to task labels (int32)."""
  goes_classes = tuple(goes_classes)
  goes_labels = np.asarray(goes_labels)
  if goes_labels.size and (goes_labels.min() < 0 or goes_labels.max() >= len(goes_classes)):
    raise ValueError(
      f"GOES labels must lie in [0, {len(goes_classes) - 1}] (data.classes={goes_classes}); "
      f"got values from {goes_labels.min()} to {goes_labels.max()}."
    )
  if task in ("multiclass", "forecast_multiclass"):
    return goes_labels.astype(np.int32)
  task_class_names(task, goes_classes)  # Validates the task name.
  threshold, _ = _threshold_index(task, goes_classes)
  return (goes_labels >= threshold).astype(np.int32)


class ResidualBlock(nn.Module):
  """Pre-activation residual block (He et al. 2016) with GroupNorm and dropout."""

  channels: int
  strides: int = 1
  num_groups: int = NUM_GROUPS
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, *, train: bool):
    h = layers.GroupNorm(group_count(self.num_groups, x.shape[-1]), name="norm1")(x)
    h = nn.silu(h)
    shortcut = x
    if self.strides != 1 or x.shape[-1] != self.channels:
      # Projects the activated input, as in the pre-activation ResNet.
      shortcut = nn.Conv(self.channels, (1, 1), self.strides, name="proj")(h)
    h = nn.Conv(self.channels, (3, 3), self.strides, name="conv1")(h)
    h = layers.GroupNorm(group_count(self.num_groups, self.channels), name="norm2")(h)
    h = nn.silu(h)
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    # Zero-initialised last conv: each block starts as the identity.
    h = nn.Conv(self.channels, (3, 3), kernel_init=nn.initializers.zeros, name="conv2")(h)
    return shortcut + h


class FlareClassifier(nn.Module):
  """ResNet classifier on model-space images ``[B, H, W, C]`` in [-1, 1]."""

  num_classes: int
  stage_sizes: Sequence[int] = (2, 2, 2)
  width: int = 32
  dropout: float = 0.1
  stem_stride: int = 1
  num_groups: int = NUM_GROUPS

  @nn.compact
  def __call__(self, x, *, train: bool = False, return_features: bool = False):
    """Returns logits ``[B, num_classes]``, or ``(logits, features [B, D])``."""
    h = nn.Conv(self.width, (3, 3), self.stem_stride, name="conv_in")(x.astype(jnp.float32))
    for i, size in enumerate(self.stage_sizes):
      channels = self.width * 2**i
      for j in range(size):
        strides = 2 if i > 0 and j == 0 else 1
        h = ResidualBlock(
          channels, strides, self.num_groups, self.dropout, name=f"stage{i}_block{j}"
        )(h, train=train)
    h = layers.GroupNorm(group_count(self.num_groups, h.shape[-1]), name="norm_out")(h)
    features = jnp.mean(nn.silu(h), axis=(1, 2))
    h = nn.Dropout(self.dropout, deterministic=not train)(features)
    logits = nn.Dense(self.num_classes, name="head")(h)
    return (logits, features) if return_features else logits


def feature_dim(classifier_config: ml_collections.ConfigDict) -> int:
  """Length of the penultimate feature vector."""
  return classifier_config.width * 2 ** (len(classifier_config.stage_sizes) - 1)


def create_classifier(config: ml_collections.ConfigDict) -> FlareClassifier:
  """The classifier for ``config.classifier`` and the task's number of classes."""
  c = config.classifier
  if not c.stage_sizes or min(c.stage_sizes) < 1:
    raise ValueError(
      f"classifier.stage_sizes={tuple(c.stage_sizes)} needs at least one stage, each >= 1 block."
    )
  if c.width < 1:
    raise ValueError(f"classifier.width={c.width} must be positive.")
  if c.stem_stride < 1:
    raise ValueError(f"classifier.stem_stride={c.stem_stride} must be positive.")
  return FlareClassifier(
    num_classes=len(task_class_names(task_of(c, config.data.label), config.data.classes)),
    stage_sizes=tuple(c.stage_sizes),
    width=c.width,
    dropout=c.dropout,
    stem_stride=c.stem_stride,
  )
