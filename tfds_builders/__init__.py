"""TFDS builders of solar_jax. Importing this package registers them with TFDS by name.

  import tensorflow_datasets as tfds
  import tfds_builders  # noqa: F401 - registers sdo_aia171
  ds = tfds.load("sdo_aia171/64", split="block0", data_dir=...)

and from the command line, from any directory:

  tfds build sdo_aia171 --imports=tfds_builders --config=64 --manual_dir=DIR --data_dir=OUT

Reading a fold's train/validation/test with labels (chosen on read): solar_jax.data.load.
"""

from tfds_builders.sdo_aia171 import sdo_aia171_dataset_builder  # noqa: F401 - registers it
