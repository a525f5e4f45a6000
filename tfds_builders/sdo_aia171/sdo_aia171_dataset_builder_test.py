"""TFDS test of the sdo_aia171 builder over dummy_data/ (real-frame based, SIMULATED).

dummy_data/ was written by
  python -m solar_jax.data.demo --out tfds_builders/sdo_aia171/dummy_data \
    --num_frames 6 --months 3 --start 2011-06-01 --xrs_cadence_s 240 --seed 1
(two frames in each of June/July/August 2011: the stored month blocks 7, 8 and 9;
train / validation / test are chosen on read, see solar_jax/data/splits.py).
"""

import tensorflow_datasets as tfds

from tfds_builders.sdo_aia171 import sdo_aia171_dataset_builder


class SdoAia171Test(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = sdo_aia171_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["64"]
  SPLITS = {"block7": 2, "block8": 2, "block9": 2}
  SKIP_CHECKSUMS = True


if __name__ == "__main__":
  tfds.testing.test_main()
