"""The stored shards of a built dataset: present, of their recorded size, readable.

Every split reads month blocks from all of the dataset (a fold's train split is most
of it), so every stored block is checked, whichever splits a mode reads. Each shard
must exist; the TFRecord files of a split must add up to the bytes
``dataset_info.json`` records for it; with ``data.verify_shards`` every record is read
once (TensorFlow checks its CRCs) and counted against the recorded shard length, so
flipped bytes and truncation are found before a run, not mid-training.
"""

from __future__ import annotations

import os

import numpy as np
from etils import epath

from solar_jax import errors

# Bytes a TFRecord adds to each record: 8 of length, 4 of length CRC, 4 of data CRC.
TFRECORD_FRAMING = 16
# Datasets ``verify`` passed in this process: (data dir, CRC check, files' signature).
# --mode=all and the study check before each stage; an altered file has another signature.
_VERIFIED: set = set()


def files_signature(directory) -> tuple:
  """(name, size, mtime) of every file of a dataset directory: what a rebuild changes."""
  try:
    entries = sorted(os.scandir(directory), key=lambda e: e.name)
  except OSError:
    return ()
  return tuple((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries if e.is_file())


def verify(builder, read_records: bool) -> None:
  """Checks the shards of ``builder``'s dataset (module docstring); with ``read_records``
  also every record's CRC and the shard lengths. Once per process for the same files.

  Raises:
    errors.DamagedFileError: a shard is missing, truncated or corrupt.
  """
  directory = os.fspath(builder.data_dir)
  checked = (directory, bool(read_records), files_signature(directory))
  if checked in _VERIFIED:  # This process checked these very files already.
    return
  _check(builder, read_records)
  _VERIFIED.add(checked)


def _check(builder, read_records: bool) -> None:
  import tensorflow as tf

  for name in sorted(builder.info.splits):
    info = builder.info.splits[name]
    paths = [epath.Path(p) for p in info.filepaths]
    missing = [p for p in paths if not p.exists()]
    if missing:
      raise errors.DamagedFileError(
        f"shard {missing[0]} of split {name!r} is missing: rebuild the dataset in "
        f"{builder.data_dir} (tfds build)."
      )
    if builder.info.file_format.value == "tfrecord":
      want = info.num_bytes + TFRECORD_FRAMING * info.num_examples
      have = sum(p.stat().length for p in paths)
      if have != want:
        raise errors.DamagedFileError(
          f"the shards of split {name!r} in {builder.data_dir} hold {have} bytes, "
          f"dataset_info.json records {want}: a shard is truncated or altered; rebuild it."
        )
    if not read_records:
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
