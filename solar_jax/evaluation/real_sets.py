"""The real image sets the evaluation reads, in DN/s: the evaluation and floor splits, the
DDPM's training frames the memorisation search covers, its held-out withheld days, and
every frame the generator never trained on (the per-class realism pool)."""

from __future__ import annotations

import numpy as np

from solar_jax.data import input_pipeline, splits
from solar_jax.metrics import memorisation


def load_real(config, max_examples: int, split: str | None = None) -> dict:
  """Real images of ``split`` (default ``config.evaluation.split``) in DN/s, with labels."""
  arrays = input_pipeline.make_for_inference(
    config.data, split or config.evaluation.split, max_examples=max_examples, transform=False
  )
  out = {"images": np.asarray(arrays["image"], np.float32), "labels": np.asarray(arrays["label"])}
  return out | {k: arrays[k] for k in ("time", "goes_flux") if k in arrays}  # For the titles.


def load_train(config) -> tuple[dict | None, dict]:
  """The DDPM's training images the memorisation search covers (DN/s), and their record.

  Every frame of a class with at most ``evaluation.memorisation_train_images``
  frames, else a uniform random subset of that many (``memorisation.training_subset``,
  seed ``config.seed``); (None, a record saying so) when that setting is 0.
  """
  cap = config.evaluation.memorisation_train_images
  if not cap:
    return None, {"searched": 0, "rule": "none (evaluation.memorisation_train_images=0)"}
  facts = input_pipeline.make_for_inference(config.data, "train", images=False)
  indices, record = memorisation.training_subset(
    facts["label"], cap, config.seed, tuple(config.data.classes)
  )
  arrays = input_pipeline.make_for_inference(config.data, "train", transform=False, indices=indices)
  train = {"images": np.asarray(arrays["image"], np.float32)}
  return {**train, "labels": np.asarray(arrays["label"])}, record


def load_heldout(config) -> tuple[dict | None, dict]:
  """The memorisation test's held-out images (DN/s): the DDPM's withheld days, and their record.

  The frames of the days withheld from the training months (``data.splits.withhold``,
  ``data.withheld_day_fraction`` and ``_seed``, which ``pipeline.check_generator`` has
  matched with the generator's record): never trained on, and exchangeable with the
  training frames. Every frame of a class with at most
  ``evaluation.memorisation_train_images``, else a uniform random subset of that many
  (seed ``config.seed + 1``). (None, why) when no day is withheld or none has a frame:
  the test then uses the evaluation split.
  """
  data, cap = config.data, config.evaluation.memorisation_train_images
  setting = {"split": splits.WITHHELD_SPLIT, "fraction": float(data.withheld_day_fraction)}
  setting["day_seed"] = int(data.withheld_day_seed)
  if not data.withheld_day_fraction or not cap:
    return None, {**setting, "rule": "none (data.withheld_day_fraction=0 or no search)"}
  facts = input_pipeline.make_for_inference(data, splits.WITHHELD_SPLIT, images=False)
  if not len(facts["label"]):
    return None, {**setting, "rule": "none (no labelled frame on the withheld days)"}
  indices, record = memorisation.training_subset(
    facts["label"], cap, config.seed + 1, tuple(data.classes)
  )
  days = np.unique(splits.as_times(facts["time"]).astype("datetime64[D]"))
  arrays = input_pipeline.make_for_inference(
    data, splits.WITHHELD_SPLIT, transform=False, indices=indices
  )
  held = {"images": np.asarray(arrays["image"], np.float32), "labels": np.asarray(arrays["label"])}
  return held, {**setting, "days": int(days.size), **record}


def load_unseen(config) -> tuple[dict, dict]:
  """Every real frame the generator did not train on (split 'unseen': test, validation,
  embargoed, withheld days), per class all of them or a seeded uniform subset of
  ``evaluation.num_images`` (seed ``config.seed + 2``), in DN/s; and its record."""
  data = config.data
  facts = input_pipeline.make_for_inference(data, splits.UNSEEN_SPLIT, images=False)
  indices, record = memorisation.training_subset(
    facts["label"], config.evaluation.num_images, config.seed + 2, tuple(data.classes)
  )
  arrays = input_pipeline.make_for_inference(
    data, splits.UNSEEN_SPLIT, transform=False, indices=indices
  )
  unseen = {"images": np.asarray(arrays["image"], np.float32), "labels": arrays["label"]}
  record["rule"] = "every frame the generator did not train on, per class all or a subset"
  return unseen, record
