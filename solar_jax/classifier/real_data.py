"""The real frames the experiment reads: the fold's splits, checked against the config,
their support and the units its bootstrap resamples (``classifier/experiment.py``)."""

from __future__ import annotations

import ml_collections
import numpy as np

from solar_jax import errors
from solar_jax.classifier.training_sets import per_class_counts
from solar_jax.data import frame_facts, input_pipeline, regions


def describe(goes_labels, goes_classes, flaring=None) -> dict:
  """``{'num_examples', 'goes_counts': {class: n}}`` of a set of GOES labels; with
  ``flaring`` (a bool per frame: inside a flare's window) also ``flaring_counts``, the
  frames of each class inside a flare (the rest of the class is quiet)."""
  counts = per_class_counts(goes_labels, len(goes_classes))
  out = {
    "num_examples": int(counts.sum()),
    "goes_counts": dict(zip(goes_classes, counts.tolist())),
  }
  if flaring is not None:
    labels = np.asarray(goes_labels)
    flaring_counts = per_class_counts(labels[np.asarray(flaring, bool)], len(goes_classes))
    out["flaring_counts"] = dict(zip(goes_classes, flaring_counts.tolist()))
  return out


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
  """Train, validation and test splits in model space, in memory.

  The concurrent tasks read the dataset's ``data.label``; the forecasting
  tasks read ``max_class_next_24h`` (the largest class among flares starting in the next
  24 h, issuance frames only).
  """
  # The label the classifier reads: classifier.label, else data.label (the reader's default).
  kwargs = {"label": config.classifier.label} if config.classifier.label else {}
  return {
    split: input_pipeline.make_for_inference(config.data, split, transform=True, **kwargs)
    for split in ("train", "validation", "test")
  }


def frame_groups(split: dict) -> np.ndarray:
  """The bootstrap's resampling unit of every frame of ``split`` (str [N]).

  The input pipeline's ``group`` array: the event the label comes from, else
  ``day:YYYY-MM-DD`` (``frame_facts.labels``), so frames of one flare or one quiet
  day move together.
  """
  if "group" not in split:
    raise KeyError("the split arrays have no 'group' (read them with input_pipeline).")
  return np.asarray(
    [v.decode() if isinstance(v, bytes) else str(v) for v in split["group"]], dtype=object
  )


UNIT_FACTS = ("flare_event_id", "noaa_ar", "flare_peak", "flare_hgs_lat", "flare_hgs_lon")


def frame_units(split: dict) -> np.ndarray:
  """The bootstrap's resampling unit of every frame of ``split`` (str [N]): active regions.

  ``frame_facts.bootstrap_units`` of the split's groups: a flare's frames resample with
  its merged active region, quiet frames by blocks of days. Without the region facts
  (arrays of an older reader, or tests), the groups (``frame_groups``).
  """
  groups = frame_groups(split)
  if not all(k in split for k in UNIT_FACTS[:3]):
    return groups
  return frame_facts.bootstrap_units({k: split[k] for k in UNIT_FACTS if k in split}, groups)


def recurrent_regions(train: dict, test: dict) -> dict | None:
  """How many test flaring frames come from an active region that flares in training too.

  ``regions.recurrent_overlap`` of the two splits' frames whose group is their own flare
  (merged regions, chance level from randomly turned Carrington longitudes); None
  without the region facts.
  """
  if not all(k in split for split in (train, test) for k in UNIT_FACTS):
    return None

  def numbered(split):
    own = frame_groups(split) == np.asarray(
      [v.decode() if isinstance(v, bytes) else str(v) for v in split["flare_event_id"]], object
    )
    return np.where(own, np.asarray(split["noaa_ar"], np.int64), 0)

  both = {k: np.concatenate([np.asarray(train[k]), np.asarray(test[k])]) for k in UNIT_FACTS[2:]}
  n = len(train["noaa_ar"])
  is_test = np.arange(n + len(test["noaa_ar"])) >= n
  out = regions.recurrent_overlap(
    np.concatenate([numbered(train), numbered(test)]),
    both["flare_peak"],
    both["flare_hgs_lat"],
    both["flare_hgs_lon"],
    is_test,
    ~is_test,
  )
  return {
    **out,
    "definition": "share of test flaring frames whose merged active region also flares in "
    "the training split; chance: the same with every region's Carrington longitude turned by "
    f"a random angle before the merge (mean of {regions.CHANCE_DRAWS} draws)",
  }
