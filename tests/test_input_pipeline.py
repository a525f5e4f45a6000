"""solar_jax.data.input_pipeline on a small built sdo_aia171 dataset (SIMULATED demo archive)."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs import default
from solar_jax.data import demo, input_pipeline, scaling
from tfds_builders.sdo_aia171 import sdo_aia171_dataset_builder as sdo


@pytest.fixture(scope="module")
def data_config(tmp_path_factory):
  manual = tmp_path_factory.mktemp("manual")
  demo.write_demo_archive(
    manual, num_frames=36, months=3, start="2011-06-01", seed=4, xrs_cadence_s=240
  )
  data_dir = tmp_path_factory.mktemp("tfds")
  sdo.Builder(config="64", data_dir=str(data_dir)).download_and_prepare(
    download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual), compute_stats=tfds.download.ComputeStatsMode.SKIP
    )
  )
  config = default.get_config().data
  config.data_dir = str(data_dir)
  config.shuffle_buffer = 8
  return config


def take(iterator, n):
  return [next(iterator) for _ in range(n)]


def test_resume_equals_the_uninterrupted_stream(data_config):
  kw = dict(shuffle=True, seed=7, repeat=True, process_index=0, process_count=1)
  full = take(input_pipeline.get_dataset(data_config, "train", 5, **kw), 14)
  for start in (1, 3, 9):  # within the first epoch, at and across epoch ends (12 train examples)
    resumed = take(
      input_pipeline.get_dataset(data_config, "train", 5, start_step=start, **kw), 14 - start
    )
    for a, b in zip(full[start:], resumed):
      np.testing.assert_array_equal(a["source"], b["source"])
      np.testing.assert_array_equal(a["image"], b["image"])
  # Epochs are shuffled differently, and each epoch is a permutation of the split.
  sources = np.concatenate([b["source"] for b in full])
  n = input_pipeline.get_builder(data_config).info.splits["train"].num_examples
  assert sorted(sources[:n]) == sorted(sources[n : 2 * n])
  assert list(sources[:n]) != list(sources[n : 2 * n])


def test_process_shares_are_disjoint_and_cover_the_split(data_config):
  shares = []
  for index in range(3):
    it = input_pipeline.get_dataset(
      data_config,
      "train",
      1,
      shuffle=False,
      seed=0,
      repeat=False,
      process_index=index,
      process_count=3,
    )
    shares.append({s for b in it for s in b["source"]})
  assert all(len(s) == 4 for s in shares)
  assert not (shares[0] & shares[1] or shares[0] & shares[2] or shares[1] & shares[2])
  everything = input_pipeline.load_split_arrays(data_config, "train", transform=False)
  assert set().union(*shares) == set(everything["source"])


def test_transform_matches_scaling_forward(data_config):
  kw = dict(shuffle=False, seed=0, repeat=False, process_index=0, process_count=1)
  raw = next(input_pipeline.get_dataset(data_config, "test", 4, transform=False, **kw))
  model = next(input_pipeline.get_dataset(data_config, "test", 4, transform=True, **kw))
  assert model["image"].dtype == np.float32 and model["label"].dtype == np.int32
  want = scaling.forward(raw["image"], data_config.clip_min, data_config.clip_max)
  np.testing.assert_allclose(model["image"], want, atol=2e-6)
  assert model["image"].min() >= -1 and model["image"].max() <= 1


def test_class_counts_and_balancing(data_config):
  arrays = input_pipeline.load_split_arrays(data_config, "train")
  counts = input_pipeline.class_counts(data_config, "train")
  np.testing.assert_array_equal(counts, np.bincount(arrays["label"], minlength=5))
  data_config.class_balance = True
  try:
    it = input_pipeline.get_dataset(
      data_config,
      "train",
      4,
      shuffle=True,
      seed=1,
      repeat=False,
      process_index=0,
      process_count=1,
      drop_remainder=False,
    )
    balanced = np.bincount(np.concatenate([b["label"] for b in it]), minlength=5)
  finally:
    data_config.class_balance = False
  reps = np.where(counts > 0, np.maximum(1, np.round(counts.max() / np.maximum(counts, 1))), 0)
  np.testing.assert_array_equal(balanced, counts * reps)


def test_wrong_image_size_is_an_error_naming_the_field(data_config):
  data_config.image_size = 48  # Does not divide the stored 64.
  try:
    with pytest.raises(ValueError, match="data.image_size=48"):
      input_pipeline.get_builder(data_config)
  finally:
    data_config.image_size = 64


def test_a_smaller_image_size_reads_block_means_of_the_stored_images(data_config):
  kw = dict(shuffle=False, seed=0, repeat=False, process_index=0, process_count=1)
  full = next(input_pipeline.get_dataset(data_config, "test", 4, transform=False, **kw))
  data_config.image_size = 32
  try:
    half = next(input_pipeline.get_dataset(data_config, "test", 4, transform=False, **kw))
    arrays = input_pipeline.load_split_arrays(data_config, "test", transform=False)
  finally:
    data_config.image_size = 64
  # Mean of each 2x2 block, in DN/s: the total flux of the image is kept.
  want = full["image"].reshape(4, 32, 2, 32, 2, 1).mean(axis=(2, 4))
  np.testing.assert_allclose(half["image"], want, rtol=1e-5)
  np.testing.assert_allclose(arrays["image"][:4], want, rtol=1e-5)
  np.testing.assert_allclose(
    half["image"].sum((1, 2, 3)) * 4, full["image"].sum((1, 2, 3)), rtol=1e-5
  )
