"""Data: readers, facts, folds and the TFDS input pipeline.

``solar_jax.data.load(split, fold=0, label=..., data_dir=...)`` reads a fold's split of a
built ``sdo_aia171`` dataset with its labels (``loader``); ``solar_jax.data.to_map(record)``
makes a sunpy Map of one record (``frame_geometry``). Both are imported on first use, so
importing a module of this package loads neither TensorFlow nor sunpy.map.
"""

import importlib

_LAZY = {"load": "solar_jax.data.loader", "to_map": "solar_jax.data.frame_geometry"}


def __getattr__(name: str):
  if name in _LAZY:
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f"module 'solar_jax.data' has no attribute {name!r}")
