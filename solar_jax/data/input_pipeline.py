"""Input pipeline: the built ``sdo_aia171`` TFDS dataset, two ways in (as big_vision).

``make_for_train`` is the training stream: resumable, per-process sharded,
optionally class-balanced batches. ``make_for_inference`` is one pass over a
split as numpy arrays: the facts always, the images when asked. Both read the
records through one tf.data path (``_records``) and finish images with one map
(``_finish``: block means to ``data.image_size``, then the intensity transform);
class counts, the clip level (``data.resolve``) and the data span of an export
are computed by their callers from ``make_for_inference(..., images=False)``.

Labels and splits are policies applied here, on read (DESIGN.md, 'Records keep
facts'). A split of ``data.fold`` is the union of its stored month blocks
(``splits``); a first pass over the records' facts (images not decoded) decides
which records the split keeps (its months, less the embargo, less frames without
a label under ``data.label``) and their labels (``frame_facts.labels``, class
thresholds on ``data.class_scale``: 'swpc', the published classes, or 'true',
with the GOES-16 era's first day the dataset's metadata records). The
data pass reads the same blocks in the same order and keeps those records. For
training, each process keeps every ``process_count``-th of them, equal shares so
every host runs the same number of steps, and maps DN/s to the model's [-1, 1]
(``forward_tf``, the TensorFlow form of ``solar_jax.data.scaling.forward``).

Order and resume. The stream is a sequence of epochs; epoch ``e`` is the
process's share in stored order shuffled with a buffer seeded by
``(seed, e)``, so any epoch can be rebuilt on its own. Batches are cut from the
concatenated epochs (batch ``k`` holds stream elements ``k*b .. k*b+b-1``), so
``start_step=k`` starts at epoch ``k*b // n`` and skips ``k*b % n`` elements
(``n`` = examples per epoch): the batches equal the uninterrupted stream's
from step ``k`` on, and the skip costs less than one epoch of reading.

Class balancing (``data.class_balance``) repeats each example of class ``c``
``round(max_count / count_c)`` times before the per-epoch shuffle: exact,
deterministic, and it keeps the epoch structure above.
"""

from __future__ import annotations

import dataclasses
import importlib
import os

import numpy as np
from absl import logging
from etils import epath

from solar_jax import errors
from solar_jax.data import frame_facts, frame_geometry, scaling, shards, splits
from solar_jax.data.dataset_meta import (  # noqa: F401 - re-exported: the readers' checks.
  BUILD_COMMAND,
  FORECAST_FACTS_SINCE,
  REQUIRED_METADATA,
  _check_metadata,
  check_forecast_facts,
  metadata,
  true_flux_since,
)

LABELS = frame_facts.LABELS

# The TFDS datasets this reads (builders in tfds_builders/): data.dataset.
DATASETS = ("sdo_aia171",)
# The stored resolutions (builder configs of tfds_builders/sdo_aia171).
BUILDER_CONFIGS = ("64", "128", "256", "512")
_BUILDER_MODULE = "tfds_builders.sdo_aia171.sdo_aia171_dataset_builder"
_FACT_KEYS = ("time", "source", "exposure", "intensity_max", "intensity_p999", *frame_facts.FIELDS)
# How to build it, from any directory (the package registers the builder by name).


def get_builder(data_config):
  """The TFDS builder of ``data_config`` (dataset name, builder config, data dir)."""
  import tensorflow_datasets as tfds

  data_dir = data_config.data_dir or None
  if data_config.dataset == "sdo_aia171":
    module = importlib.import_module(_BUILDER_MODULE)  # registers the builder class
    builder = module.Builder(config=data_config.builder_config, data_dir=data_dir)
    builder = _readable_version(builder, module.Builder)
  else:
    builder = tfds.builder(
      data_config.dataset, config=data_config.builder_config, data_dir=data_dir
    )
  shape = builder.info.features["image"].shape
  if shape[0] % data_config.image_size or shape[-1] != data_config.channels:
    raise errors.InputMismatchError(
      f"data.image_size={data_config.image_size}, data.channels={data_config.channels} do not fit "
      f"the stored images {shape} of {data_config.dataset}/{data_config.builder_config}: the "
      "image size must divide the stored side; set data.builder_config to a matching resolution."
    )
  if not builder.is_prepared():
    older = _other_versions(builder)
    found = f" (it holds version {', '.join(older)} only)" if older else ""
    raise errors.MissingInputError(
      f"{data_config.dataset}/{data_config.builder_config} {builder.version} is not built in "
      f"{builder.data_dir_root}{found}. Build it first: {BUILD_COMMAND} "
      f"--config={data_config.builder_config} --manual_dir=<dir> --data_dir={data_config.data_dir or '<dir>'}"
    )
  _check_metadata(builder, data_config)
  return builder


def _readable_version(builder, builder_cls):
  """``builder``, or the newest older version the code still reads (``SUPPORTED_VERSIONS``)
  when only that one is built: the records differ by fields nothing but ``to_map`` reads."""
  if builder.is_prepared():
    return builder
  built = set(_other_versions(builder))
  older = [v for v in builder_cls.SUPPORTED_VERSIONS if str(v) in built]
  if not older:
    return builder
  version, root = str(max(older)), builder.data_dir_root
  logging.info(
    "%s holds version %s, not %s: reading it (%s).", root, version, builder.version, BUILD_COMMAND
  )
  return builder_cls(config=builder.builder_config.name, data_dir=root, version=version)


def _other_versions(builder) -> list[str]:
  """Versions of this dataset and config built in the data dir other than the code's."""
  root = epath.Path(builder.data_dir_root) / builder.name / builder.builder_config.name
  if not root.is_dir():
    return []
  return sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != str(builder.version))


def verify_shards(data_config, *, builder=None) -> None:
  """Checks every stored shard before a run reads them (``shards.verify``); names the
  first damaged one (errors.DamagedFileError)."""
  shards.verify(builder or get_builder(data_config), data_config.verify_shards)


def _named_read_errors(batches, split: str, data_dir):
  """Re-raises a TensorFlow read error mid-stream as one line naming the split and data dir."""
  import tensorflow as tf

  try:
    yield from batches
  except tf.errors.OpError as e:
    raise errors.DamagedFileError(
      f"reading split {split!r} of {data_dir} failed ({e.message.splitlines()[0]}); "
      "rebuild the dataset (tfds build)."
    ) from None


def forward_tf(images, clip_min: float, clip_max: float):
  """``scaling.forward`` in TensorFlow ops (for tf.data maps)."""
  import tensorflow as tf

  lo, hi = scaling._bounds(clip_min, clip_max)  # noqa: SLF001 - same validation and constants
  logs = tf.math.log(tf.clip_by_value(images, clip_min, clip_max)) / np.log(10.0)
  return tf.cast(2.0 * (logs - lo) / (hi - lo) - 1.0, images.dtype)


def block_factor(builder, data_config) -> int:
  """Stored pixels per model pixel along each side (``get_builder`` checked it divides)."""
  return builder.info.features["image"].shape[0] // data_config.image_size


@dataclasses.dataclass
class _Plan:
  """Which stored records a split keeps, and their labels (positions in ``spec`` order)."""

  spec: str  # TFDS split string: the split's blocks joined by '+'
  keep: np.ndarray  # bool [records of spec]
  labels: np.ndarray  # int32 [records of spec], -1 where not kept
  groups: np.ndarray  # object [records of spec]
  fluxes: np.ndarray  # float32 [records of spec]: the label's flux (W m^-2), NaN not kept
  facts: dict  # arrays [records of spec] of _FACT_KEYS


def _read_config():
  import tensorflow_datasets as tfds

  return tfds.ReadConfig(try_autocache=False)  # epochs are rebuilt, not cached


# Facts read in this process: (data dir, split string, files' signature) -> arrays. Each
# mode reads them for every split it opens (the train, validation and test plans, the
# memorisation search, the classifier's splits), and building the tf.data graph costs
# more than the reading; a dataset rebuilt in place has another signature.
_FACTS_READ: dict = {}


def _facts(builder, spec: str) -> dict:
  """The facts of every record of ``spec`` in stored order (images skipped, not decoded)."""
  directory = os.fspath(builder.data_dir)
  key = (directory, spec, shards.files_signature(directory))
  if key not in _FACTS_READ:
    if len(_FACTS_READ) > 64:
      _FACTS_READ.clear()
    _FACTS_READ[key] = _read_facts(builder, spec)
  return {k: v.copy() for k, v in _FACTS_READ[key].items()}


def _read_facts(builder, spec: str) -> dict:
  import tensorflow_datasets as tfds

  ds = builder.as_dataset(
    split=spec,
    shuffle_files=False,
    read_config=_read_config(),
    decoders={"image": tfds.decode.SkipDecoding()},
  )
  keys = _FACT_KEYS + frame_geometry.stored(builder.info.features)  # geometry from 2.4.0 on
  parts: dict = {k: [] for k in keys}
  for batch in ds.map(lambda ex: {k: ex[k] for k in keys}).batch(4096).as_numpy_iterator():
    for k in keys:
      parts[k].append(batch[k])
  return {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}


def _blocks(builder, data_config, split: str) -> list[str]:
  readable = (*splits.SPLITS, splits.WITHHELD_SPLIT, splits.UNSEEN_SPLIT, "all")
  if split not in readable:
    raise ValueError(f"split {split!r}: use one of {readable}.")
  meta = metadata(builder)
  names = sorted(n for n in builder.info.splits if n.startswith("block"))
  if (
    split in ("all", splits.UNSEEN_SPLIT) or data_config.split == "forward"
  ):  # Forward: years cut across blocks.
    return names
  role = splits.roles(meta["num_folds"], data_config.fold)
  code = splits.TRAIN if split == splits.WITHHELD_SPLIT else splits.SPLITS.index(split)
  return [n for n in names if role[int(n[len("block") :])] == code]


def _split_codes(builder, data_config, times) -> np.ndarray:
  """``data.split``'s code of every frame: month blocks with the embargo, or forward in
  time (the whole archive read: its calendar years are the forward folds' units)."""
  try:
    if data_config.split == "forward":
      return splits.assign_forward(
        times, fold=data_config.fold, embargo_days=data_config.embargo_days
      )
  except ValueError as e:
    raise errors.InputMismatchError(f"{builder.data_dir}: {e}") from None
  return splits.assign(
    times,
    fold=data_config.fold,
    num_folds=metadata(builder)["num_folds"],
    embargo_days=data_config.embargo_days,
  )


def _plan(builder, data_config, split: str, label: str | None) -> _Plan:
  """The records ``split`` keeps under ``data.fold``, the embargo, the withheld days
  ('train' leaves them out, 'withheld' is them) and the label policy; 'unseen' is every
  labelled frame but 'train' (every block read)."""
  label = label or data_config.label
  blocks = _blocks(builder, data_config, split)
  if not blocks:
    raise errors.InputMismatchError(
      f"split {split!r} of fold {data_config.fold} has no stored month block in "
      f"{builder.data_dir} (blocks: {sorted(builder.info.splits)}): the archive covers too few "
      "months for this fold; choose another data.fold or add data."
    )
  if label == frame_facts.FORECAST_LABEL:
    check_forecast_facts(builder)
  spec = "+".join(blocks)
  facts = _facts(builder, spec)
  labels, groups = frame_facts.labels(
    facts,
    label,
    data_config.cooling_lag_minutes,
    class_scale=data_config.class_scale,
    true_flux_since=true_flux_since(metadata(builder)),
    issuance_hours=tuple(data_config.issuance_hours),
    issuance_tolerance_minutes=data_config.issuance_tolerance_minutes,
  )
  fluxes = frame_facts.label_fluxes(
    facts,
    label,
    data_config.cooling_lag_minutes,
    class_scale=data_config.class_scale,
    true_flux_since=true_flux_since(metadata(builder)),
  )
  keep = labels >= 0
  if split != "all":
    codes = _split_codes(builder, data_config, facts["time"])
    codes = splits.withhold(
      codes, facts["time"], data_config.withheld_day_fraction, data_config.withheld_day_seed
    )
    if split == splits.UNSEEN_SPLIT:
      keep &= codes != splits.TRAIN
    else:
      keep &= codes == splits.code_of(split)
  if label == frame_facts.FORECAST_LABEL:
    logging.info(
      "Label %s: split %r keeps %d labelled issuance frames (%s UT +- %g min) of %d frames read; "
      "the others have no forecast label.",
      label,
      split,
      int(keep.sum()),
      "/".join(f"{h:02d}" for h in data_config.issuance_hours),
      data_config.issuance_tolerance_minutes,
      len(labels),
    )
  labels = np.where(keep, labels, -1).astype(np.int32)
  return _Plan(spec, keep, labels, groups, np.where(keep, fluxes, np.nan).astype(np.float32), facts)


def _process_share(keep: np.ndarray, process_index: int, process_count: int) -> np.ndarray:
  """Every ``process_count``-th kept record, equal shares (up to count - 1 dropped)."""
  if not 0 <= process_index < process_count:
    raise ValueError(
      f"process_index={process_index} must lie in [0, process_count={process_count})."
    )
  kept = np.flatnonzero(keep)
  per_process = len(kept) // process_count
  mine = np.zeros_like(keep)
  mine[kept[process_index::process_count][:per_process]] = True
  return mine


def _repeats(labels: np.ndarray, num_classes: int) -> np.ndarray:
  """Per-class repetition counts for class balancing (from the whole split's counts)."""
  counts = np.bincount(labels[labels >= 0], minlength=num_classes)[:num_classes]
  present = counts[counts > 0]
  top = present.max() if present.size else 1
  return np.where(counts > 0, np.maximum(1, np.round(top / np.maximum(counts, 1))), 1).astype(
    np.int64
  )


# ------------------------------------------------- the one tf.data path ---


def _records(builder, plan: _Plan, selected: np.ndarray):
  """tf.data of the ``selected`` records of ``plan``, in stored order, with their labels."""
  import tensorflow as tf

  selected_t, labels_t = tf.constant(selected), tf.constant(plan.labels)
  fluxes_t = tf.constant(plan.fluxes)
  base = builder.as_dataset(split=plan.spec, shuffle_files=False, read_config=_read_config())
  base = base.enumerate().filter(lambda i, ex: selected_t[i])
  return base.map(
    lambda i, ex: dict(
      image=ex["image"],
      label=labels_t[i],
      label_flux=fluxes_t[i],
      time=ex["time"],
      source=ex["source"],
    )
  )


def _finish(builder, data_config, transform: bool):
  """The one finishing map: block means to ``data.image_size``, then the intensity transform.

  Block means of ``factor``² stored pixels keep the flux (DN/s); ``transform`` maps
  DN/s to the model's [-1, 1] (``forward_tf``, the TensorFlow form of
  ``scaling.forward``, which inverts samples).
  """
  import tensorflow as tf

  factor = block_factor(builder, data_config)

  def finish(ex):
    image = tf.cast(ex["image"], tf.float32)
    if factor > 1:
      image = tf.nn.avg_pool2d(image[None], factor, factor, "VALID")[0]
    if transform:
      image = forward_tf(image, data_config.clip_min, data_config.clip_max)
    return {**ex, "image": image}

  return finish


# ---------------------------------------------------- the two ways in ---


def missing_classes(data_config, labels: np.ndarray) -> tuple[list[str], dict[str, int]]:
  """``(classes with no frame, {class: frames})`` of the kept ``labels`` (-1: not kept)."""
  names = tuple(data_config.classes)
  counts = np.bincount(labels[labels >= 0], minlength=len(names))[: len(names)]
  return [n for n, c in zip(names, counts) if c == 0], dict(zip(names, map(int, counts)))


def _warn_of_missing_classes(data_config, split: str, plan: _Plan, label: str) -> None:
  """A warning when the stream holds no frame of some class: a model trained on it never
  sees that class, and what it makes for that label comes from the label embedding alone."""
  missing, counts = missing_classes(data_config, plan.labels)
  if missing:
    logging.warning(
      "Split %r of fold %d has no frame of class %s (frames per class: %s, label policy %r): "
      "a model trained on it never sees %s; use more data or another data.fold.",
      split,
      data_config.fold,
      ", ".join(missing),
      ", ".join(f"{k} {v}" for k, v in counts.items()),
      label,
      "it" if len(missing) == 1 else "them",
    )


def make_for_train(
  data_config,
  split: str,
  batch_size: int,
  *,
  shuffle: bool,
  seed: int,
  repeat: bool,
  start_step: int = 0,
  process_index: int = 0,
  process_count: int = 1,
  drop_remainder: bool = True,
  transform: bool = True,
  label: str | None = None,
):
  """The training stream: an iterator of batches (dicts of numpy) of this process's share.

  Args:
    data_config: the ``config.data`` section.
    split: 'train', 'validation' or 'test' of ``data.fold``, 'withheld' (the withheld
      days of its training months), 'unseen' (every frame but 'train'), or 'all'.
    batch_size: examples per batch on THIS process.
    shuffle: shuffle each epoch with a buffer of ``data.shuffle_buffer``.
    seed: seed of the shuffle (epoch ``e`` uses ``(seed, e)``).
    repeat: loop over epochs forever; otherwise one epoch.
    start_step: skip the first ``start_step`` batches of the stream (resume).
    process_index, process_count: this process's share (the trainer passes JAX's).
    drop_remainder: drop a last incomplete batch.
    transform: map images to [-1, 1] (``forward_tf``); else DN/s.
    label: a label policy of ``LABELS``; None = ``data.label``.

  Returns:
    An iterator of {'image': float32 [b, S, S, C], 'label': int32 [b], 'label_flux':
    float32 [b] (the flux the label is the class of, W m^-2: a flux model's condition),
    'time': bytes [b], 'source': bytes [b]}.
  """
  import tensorflow as tf

  if batch_size < 1 or start_step < 0:
    raise ValueError(f"batch_size={batch_size} must be >= 1 and start_step={start_step} >= 0.")
  builder = get_builder(data_config)
  plan = _plan(builder, data_config, split, label)
  _warn_of_missing_classes(data_config, split, plan, label or data_config.label)
  mine = _process_share(plan.keep, process_index, process_count)
  reps = np.ones(len(data_config.classes), np.int64)
  if data_config.class_balance:
    reps = _repeats(plan.labels, len(data_config.classes))
  per_epoch = int(reps[plan.labels[mine]].sum())
  reps_t = tf.constant(reps)
  base = _records(builder, plan, mine)
  if data_config.class_balance:
    base = base.flat_map(lambda ex: tf.data.Dataset.from_tensors(ex).repeat(reps_t[ex["label"]]))

  def epoch(e):
    if not shuffle:
      return base
    epoch_seed = tf.cast(seed, tf.int64) * 1_000_003 + tf.cast(e, tf.int64)
    return base.shuffle(data_config.shuffle_buffer, seed=epoch_seed, reshuffle_each_iteration=False)

  skip_elements = start_step * batch_size
  first_epoch = 0
  if skip_elements and repeat:
    if per_epoch == 0:
      raise ValueError(f"split {split!r} is empty on this process.")
    first_epoch, skip_elements = divmod(skip_elements, per_epoch)
  if repeat:
    stream = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(epoch)
  else:
    stream = epoch(0)
  stream = stream.skip(skip_elements)
  stream = stream.map(
    _finish(builder, data_config, transform),
    num_parallel_calls=tf.data.AUTOTUNE,
    deterministic=True,
  )
  stream = stream.batch(batch_size, drop_remainder=drop_remainder)
  stream = stream.prefetch(data_config.prefetch)
  return _named_read_errors(stream.as_numpy_iterator(), split, builder.data_dir)


def make_for_inference(
  data_config,
  split: str,
  *,
  images: bool = True,
  transform: bool = True,
  max_examples: int | None = None,
  label: str | None = None,
  indices=None,
) -> dict:
  """One pass over ``split`` (or its first ``max_examples``) as numpy arrays, in stored order.

  ``indices``: only these positions among the split's labelled frames (the rows a
  call without them returns; sorted, distinct), e.g. a random subset chosen from
  the facts of an image-free call; ``max_examples`` then applies to them.

  The facts come from a pass that decodes no image; with ``images`` the images come
  through the training stream's records and finishing map (``_records``, ``_finish``),
  so they equal what ``make_for_train`` yields for the same frames. Counts, the clip
  level and the export's data span are computed from these facts by their callers.

  Returns:
    {'label': int32 [N] (``label`` policy, None = ``data.label``), 'label_flux': float32
    [N] (the flux of which the label is the class, W m^-2), 'group': the
    bootstrap unit (``frame_facts.labels``), 'event_id': the flare of a flaring frame
    ('' otherwise), 'flaring': bool, 'noaa_ar': int32, 'goes_flux', 'exposure':
    float32, 'time', 'source': bytes, every stored fact of ``frame_facts.FIELDS``,
    and with ``images`` 'image': float32 [N, S, S, C] ([-1, 1] with ``transform``,
    else DN/s)}.
  """
  builder = get_builder(data_config)
  plan = _plan(builder, data_config, split, label)
  kept = np.flatnonzero(plan.keep)
  if indices is not None:
    indices = np.asarray(indices, np.int64).reshape(-1)
    if indices.size and (
      indices.min() < 0 or indices.max() >= kept.size or (np.diff(indices) <= 0).any()
    ):
      raise ValueError(
        f"indices into split {split!r} must be sorted, distinct and in [0, {kept.size - 1}]."
      )
    kept = kept[indices]
  kept = kept[:max_examples]
  arrays = _arrays(data_config, plan, kept)
  if images:
    selected = np.zeros_like(plan.keep)
    selected[kept] = True
    arrays["image"] = _images(builder, data_config, plan, selected, transform, split)
  return arrays


def _arrays(data_config, plan: _Plan, kept: np.ndarray) -> dict:
  """The facts of records ``kept`` (positions in ``plan``) with their labels and units."""
  arrays = {k: v[kept] for k, v in plan.facts.items()}
  flaring = frame_facts.in_flare(arrays, data_config.cooling_lag_minutes)
  arrays.update(
    label=plan.labels[kept].astype(np.int32),
    label_flux=plan.fluxes[kept],
    group=plan.groups[kept].astype(bytes) if len(kept) else np.zeros(0, bytes),
    event_id=np.where(flaring, arrays["flare_event_id"], b""),
    flaring=flaring,
    noaa_ar=arrays["noaa_ar"].astype(np.int32),
  )
  return arrays


def make_dataset(data_config, split: str, *, transform: bool = False, label: str | None = None):
  """``make_for_inference`` as a tf.data.Dataset, one unbatched element per frame in stored
  order: its images (the same records and finishing map) zipped with its other arrays."""
  import tensorflow as tf

  builder = get_builder(data_config)
  plan = _plan(builder, data_config, split, label)
  facts = tf.data.Dataset.from_tensor_slices(_arrays(data_config, plan, np.flatnonzero(plan.keep)))
  finish = _finish(builder, data_config, transform)
  images = _records(builder, plan, plan.keep).map(finish, tf.data.AUTOTUNE, deterministic=True)
  return tf.data.Dataset.zip(images, facts).map(lambda ex, f: {**f, "image": ex["image"]})


def _images(builder, data_config, plan: _Plan, selected: np.ndarray, transform: bool, split: str):
  """The finished images of the ``selected`` records (float32 [N, S, S, C], stored order)."""
  import tensorflow as tf

  side, n = data_config.image_size, int(selected.sum())
  if not n:
    return np.zeros((0, side, side, data_config.channels), np.float32)
  ds = _records(builder, plan, selected).take(n)  # Stops reading after the last one.
  finish = _finish(builder, data_config, transform)
  ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.map(lambda ex: ex["image"]).batch(256).prefetch(data_config.prefetch)
  batches = _named_read_errors(ds.as_numpy_iterator(), split, builder.data_dir)
  return np.concatenate(list(batches))
