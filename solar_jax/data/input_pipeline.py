"""Input pipeline: the built ``sdo_aia171`` TFDS dataset as numpy batches.

Each process reads its own share of a split (``tfds.even_splits`` over
processes, equal sizes so every host runs the same number of steps), maps
DN/s to the model's [-1, 1] with the same transform as
``solar_jax.data.scaling.forward``, and yields dicts of numpy arrays.

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

import importlib
import json

import numpy as np
from etils import epath

from solar_jax import errors
from solar_jax.data import scaling

_BUILDER_MODULE = "tfds_builders.sdo_aia171.sdo_aia171_dataset_builder"
# Bytes a TFRecord adds to each record: 8 of length, 4 of length CRC, 4 of data CRC.
_TFRECORD_FRAMING = 16
_KEYS = ("image", "label", "time", "source")


def get_builder(data_config):
  """The TFDS builder of ``data_config`` (dataset name, builder config, data dir)."""
  import tensorflow_datasets as tfds

  data_dir = data_config.data_dir or None
  if data_config.dataset == "sdo_aia171":
    module = importlib.import_module(_BUILDER_MODULE)  # registers the builder class
    builder = module.Builder(config=data_config.builder_config, data_dir=data_dir)
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
  names = tuple(builder.info.features["label"].names)
  if names != tuple(data_config.classes):
    raise errors.InputMismatchError(
      f"data.classes={tuple(data_config.classes)} differ from the dataset's labels {names}."
    )
  if not builder.is_prepared():
    raise errors.MissingInputError(
      f"{data_config.dataset}/{data_config.builder_config} is not built in "
      f"{builder.data_dir_root}. Build it first: tfds build tfds_builders/sdo_aia171 "
      f"--config={data_config.builder_config} --manual_dir=<dir> --data_dir={data_config.data_dir or '<dir>'}"
    )
  return builder


def verify_shards(data_config, splits=("train", "validation", "test"), *, builder=None) -> None:
  """Checks every shard of ``splits`` before a run reads them; names the first damaged one.

  Each shard must exist; the TFRecord files of a split must add up to the bytes
  ``dataset_info.json`` records for it; with ``data.verify_shards`` every record is
  read once (TensorFlow checks its CRCs) and counted against the recorded shard
  length, so flipped bytes and truncation are found now, not mid-training.

  Raises:
    errors.DamagedFileError: a shard is missing, truncated or corrupt.
  """
  import tensorflow as tf

  builder = builder or get_builder(data_config)
  for name in splits:
    info = builder.info.splits[name]
    paths = [epath.Path(p) for p in info.filepaths]
    missing = [p for p in paths if not p.exists()]
    if missing:
      raise errors.DamagedFileError(
        f"shard {missing[0]} of split {name!r} is missing: rebuild the dataset in "
        f"{builder.data_dir} (tfds build)."
      )
    if builder.info.file_format.value == "tfrecord":
      want = info.num_bytes + _TFRECORD_FRAMING * info.num_examples
      have = sum(p.stat().length for p in paths)
      if have != want:
        raise errors.DamagedFileError(
          f"the shards of split {name!r} in {builder.data_dir} hold {have} bytes, "
          f"dataset_info.json records {want}: a shard is truncated or altered; rebuild it."
        )
    if not data_config.verify_shards:
      continue
    for path, length in zip(paths, info.shard_lengths):
      try:
        count = int(tf.data.TFRecordDataset(str(path)).reduce(np.int64(0), lambda n, _: n + 1))
      except tf.errors.OpError as e:
        raise errors.DamagedFileError(
          f"shard {path} of split {name!r} is corrupt ({e.message.splitlines()[0]}); "
          "rebuild the dataset (tfds build)."
        ) from None
      if count != length:
        raise errors.DamagedFileError(
          f"shard {path} of split {name!r} holds {count} records, dataset_info.json "
          f"records {length}; rebuild the dataset (tfds build)."
        )


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


def downsample(images: np.ndarray, factor: int) -> np.ndarray:
  """Means of ``factor``² pixel blocks of [N, S, S, C] images (DN/s: flux-conserving)."""
  if factor == 1:
    return images
  n, s, _, c = images.shape
  blocks = images.reshape(n, s // factor, factor, s // factor, factor, c)
  return blocks.mean(axis=(2, 4), dtype=np.float64).astype(images.dtype)


def _process_split(split: str, process_index, process_count) -> str:
  import tensorflow_datasets as tfds

  if not 0 <= process_index < process_count:
    raise ValueError(
      f"process_index={process_index} must lie in [0, process_count={process_count})."
    )
  if process_count == 1:
    return split
  # Equal shares (up to process_count - 1 examples dropped): every host
  # must run the same number of steps.
  return tfds.even_splits(split, n=process_count, drop_remainder=True)[process_index]


def _repeats(builder, data_config, split: str):
  """Per-class repetition counts for class balancing (from the whole split's counts)."""
  counts = class_counts(data_config, split, builder=builder)
  present = counts[counts > 0]
  top = present.max() if present.size else 1
  return np.where(counts > 0, np.maximum(1, np.round(top / np.maximum(counts, 1))), 1).astype(
    np.int64
  )


def get_dataset(
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
):
  """Iterator of batches (dicts of numpy) of this process's share of ``split``.

  Args:
    data_config: the ``config.data`` section.
    split: 'train', 'validation' or 'test' (or a TFDS slice such as 'train[:10%]').
    batch_size: examples per batch on THIS process.
    shuffle: shuffle each epoch with a buffer of ``data.shuffle_buffer``.
    seed: seed of the shuffle (epoch ``e`` uses ``(seed, e)``).
    repeat: loop over epochs forever; otherwise one epoch.
    start_step: skip the first ``start_step`` batches of the stream (resume).
    process_index, process_count: this process's share (the trainer passes JAX's).
    drop_remainder: drop a last incomplete batch.
    transform: map images to [-1, 1] (``scaling.forward``); else DN/s.

  Returns:
    An iterator of {'image': float32 [b, S, S, C], 'label': int32 [b],
    'time': bytes [b], 'source': bytes [b]}.
  """
  import tensorflow as tf
  import tensorflow_datasets as tfds

  if batch_size < 1 or start_step < 0:
    raise ValueError(f"batch_size={batch_size} must be >= 1 and start_step={start_step} >= 0.")
  builder = get_builder(data_config)
  sub_split = _process_split(split, process_index, process_count)
  read_config = tfds.ReadConfig(try_autocache=False)  # epochs are rebuilt, not cached
  base = builder.as_dataset(split=sub_split, shuffle_files=False, read_config=read_config)
  base = base.map(lambda ex: {k: ex[k] for k in _KEYS})
  if data_config.class_balance:
    reps = tf.constant(_repeats(builder, data_config, split))
    base = base.flat_map(lambda ex: tf.data.Dataset.from_tensors(ex).repeat(reps[ex["label"]]))
    per_epoch = None  # counted below only when resuming
  else:
    per_epoch = builder.info.splits[sub_split].num_examples

  def epoch(e):
    if not shuffle:
      return base
    epoch_seed = tf.cast(seed, tf.int64) * 1_000_003 + tf.cast(e, tf.int64)
    return base.shuffle(data_config.shuffle_buffer, seed=epoch_seed, reshuffle_each_iteration=False)

  skip_elements = start_step * batch_size
  first_epoch = 0
  if skip_elements and repeat:
    if per_epoch is None:
      per_epoch = int(base.reduce(np.int64(0), lambda n, _: n + 1))
    if per_epoch == 0:
      raise ValueError(f"split {sub_split!r} is empty on this process.")
    first_epoch, skip_elements = divmod(skip_elements, per_epoch)
  if repeat:
    stream = tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(epoch)
  else:
    stream = epoch(0)
  stream = stream.skip(skip_elements)

  factor = block_factor(builder, data_config)

  def finish(ex):
    image = tf.cast(ex["image"], tf.float32)
    if factor > 1:  # Same block means as ``downsample``.
      image = tf.nn.avg_pool2d(image[None], factor, factor, "VALID")[0]
    if transform:
      image = forward_tf(image, data_config.clip_min, data_config.clip_max)
    return dict(
      image=image, label=tf.cast(ex["label"], tf.int32), time=ex["time"], source=ex["source"]
    )

  stream = stream.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  stream = stream.batch(batch_size, drop_remainder=drop_remainder)
  stream = stream.prefetch(data_config.prefetch)
  return _named_read_errors(stream.as_numpy_iterator(), split, builder.data_dir)


def load_split_arrays(
  data_config, split: str, max_examples: int | None = None, transform: bool = True
) -> dict:
  """A whole split (or its first ``max_examples``) as numpy arrays, in stored order.

  Returns:
    {'image': float32 [N, S, S, C], 'label': int32 [N], 'goes_flux': float32,
    'exposure': float32, 'flaring': bool, 'time', 'source', 'event_id': bytes}.
  """
  builder = get_builder(data_config)
  ds = builder.as_dataset(split=split, shuffle_files=False)
  if max_examples is not None:
    ds = ds.take(max_examples)
  parts = {}
  for batch in ds.batch(256).as_numpy_iterator():
    for key, value in batch.items():
      parts.setdefault(key, []).append(value)
  if not parts:
    side = data_config.image_size
    shape = (side, side, data_config.channels)
    return dict(image=np.zeros((0, *shape), np.float32), label=np.zeros((0,), np.int32))
  arrays = {k: np.concatenate(v) for k, v in parts.items()}
  arrays["label"] = arrays["label"].astype(np.int32)
  arrays["image"] = downsample(arrays["image"], block_factor(builder, data_config))
  if transform:
    arrays["image"] = scaling.forward(arrays["image"], data_config.clip_min, data_config.clip_max)
  return arrays


def class_counts(data_config, split: str, *, builder=None) -> np.ndarray:
  """Examples per class (order of ``data.classes``) in ``split``.

  From the build report when it is there (no data read), else by reading the
  labels (images are not decoded).
  """
  import tensorflow_datasets as tfds

  builder = builder or get_builder(data_config)
  classes = tuple(data_config.classes)
  report = builder.data_path / "build_report.json"
  if split in ("train", "validation", "test") and report.exists():
    counts = json.loads(report.read_text())["examples"].get(split)
    if counts is not None:
      return np.array([counts.get(c, 0) for c in classes], dtype=np.int64)
  ds = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
  labels = ds.map(lambda ex: ex["label"]).batch(4096).as_numpy_iterator()
  counts = np.zeros(len(classes), np.int64)
  for batch in labels:
    counts += np.bincount(batch, minlength=len(classes))[: len(classes)]
  return counts
