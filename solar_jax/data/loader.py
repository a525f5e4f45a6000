"""``solar_jax.data.load``: a fold's train / validation / test with labels, in one call.

The stored splits of ``sdo_aia171`` are month blocks and its records keep facts, not
labels (DESIGN.md, 'Records keep facts'): a fold's splits, the embargo and the label
are decided on read. ``load`` is that read without a config: it fills the ``data``
section of ``configs/default.py`` with its arguments and goes through the one
reader every mode uses (``input_pipeline.make_for_inference`` /
``input_pipeline.make_dataset``), so it gives exactly the frames and labels a run of
that fold and label sees, in DN/s at the stored resolution unless asked otherwise.
"""

from __future__ import annotations

from solar_jax.configs import default
from solar_jax.data import input_pipeline

SPLITS = ("train", "validation", "test", "all")


def data_config(
  *,
  fold: int = 0,
  label: str | None = None,
  data_dir: str | None = None,
  builder_config: str = "64",
  image_size: int | None = None,
  **fields,
):
  """The ``data`` section ``load`` reads with: the defaults, these arguments, ``fields``.

  ``image_size`` None: the stored side. ``fields``: any other field of the ``data``
  section (``embargo_days=0``, ``class_scale='true'``, ...); an unknown one is a
  ``ValueError`` naming it.
  """
  data = default.get_config().data
  unknown = sorted(set(fields) - set(data.keys()))
  if unknown:
    raise ValueError(
      f"data field {', '.join(unknown)} does not exist; the data section has {sorted(data.keys())}."
    )
  data.update(fields, fold=fold, data_dir=data_dir or "", builder_config=str(builder_config))
  if label is not None:
    data.label = label
  if label not in (None, *input_pipeline.LABELS):
    raise ValueError(f"label={label!r}: use one of {input_pipeline.LABELS}.")
  if image_size is None and data.builder_config in input_pipeline.BUILDER_CONFIGS:
    image_size = int(data.builder_config)  # The named configs are their stored side.
  elif image_size is None:  # Any size divides the stored side while it is looked up.
    data.image_size = 1
    image_size = input_pipeline.get_builder(data).info.features["image"].shape[0]
  data.image_size = int(image_size)
  return data


def load(
  split: str,
  *,
  fold: int = 0,
  label: str | None = None,
  data_dir: str | None = None,
  builder_config: str = "64",
  image_size: int | None = None,
  as_numpy: bool = False,
  as_supervised: bool = False,
  transform: bool = False,
  **fields,
):
  """One split of one fold of a built ``sdo_aia171`` dataset, with its labels.

  Args:
    split: 'train', 'validation' or 'test' of ``fold`` (month blocks, less the
      embargo and the frames without a label), or 'all'.
    fold: the fold (``data.fold``; 0 is the default run's).
    label: the label policy (``input_pipeline.LABELS``; None: ``data.label``,
      'xrs_class'). Labels index ``data.classes`` (A, B, C, M, X).
    data_dir: the TFDS data dir it was built in (None: TFDS's default).
    builder_config: the stored resolution ('64', '128', '256', '512').
    image_size: side of the images (None: the stored one; a divisor of it gives
      block means, as a run with that ``data.image_size`` sees).
    as_numpy: a dict of NumPy arrays (``input_pipeline.make_for_inference``) instead
      of a tf.data.Dataset.
    as_supervised: (image, label) pairs: a tf.data.Dataset of them, or with
      ``as_numpy`` a tuple (images [N, S, S, 1], labels [N]).
    transform: images in the model's [-1, 1] (``data.clip_min``..``data.clip_max``)
      instead of DN/s.
    **fields: other fields of the ``data`` section (``data_config``).

  Returns:
    A tf.data.Dataset of one dict per frame in stored order ('image' float32
    [S, S, 1], 'label' int32, 'time', 'source', the stored facts and, from dataset
    2.4.0 on, the frame geometry ``to_map`` reads), or its ``as_numpy`` /
    ``as_supervised`` forms.
  """
  if split not in SPLITS:
    raise ValueError(f"split={split!r}: use one of {SPLITS} (folds are chosen on read).")
  data = data_config(
    fold=fold,
    label=label,
    data_dir=data_dir,
    builder_config=builder_config,
    image_size=image_size,
    **fields,
  )
  if as_numpy:
    arrays = input_pipeline.make_for_inference(data, split, transform=transform)
    return (arrays["image"], arrays["label"]) if as_supervised else arrays
  ds = input_pipeline.make_dataset(data, split, transform=transform)
  return ds.map(lambda ex: (ex["image"], ex["label"])) if as_supervised else ds
