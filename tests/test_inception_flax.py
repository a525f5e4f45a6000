"""The Flax FID Inception without PyTorch: weight loading errors and sharded extraction.

Random weights in the converter's layout (state-dict names, OIHW kernels) stand
in for the real file; tests/test_inception.py compares features with a PyTorch
reference where PyTorch is installed.
"""

from __future__ import annotations

import jax
import ml_collections
import numpy as np
import pytest

from solar_jax import parallel
from solar_jax.models import inception


@pytest.fixture(scope="module")
def random_arrays():
  rng = np.random.default_rng(0)
  arrays = {}
  for name, shape in inception.expected_torch_shapes().items():
    if name.endswith("running_var"):
      arrays[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    elif name.endswith("bn.weight"):
      arrays[name] = rng.uniform(0.8, 1.2, shape).astype(np.float32)
    elif len(shape) == 4:
      fan_in = shape[1] * shape[2] * shape[3]
      arrays[name] = (rng.normal(size=shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    else:
      arrays[name] = (0.1 * rng.normal(size=shape)).astype(np.float32)
  return arrays


@pytest.fixture(scope="module")
def weights_file(random_arrays, tmp_path_factory):
  path = tmp_path_factory.mktemp("inception") / "random.npz"
  np.savez(path, **random_arrays)
  return path


def test_missing_weights_are_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="inception_weights is empty"):
    inception.load_variables("")
  with pytest.raises(FileNotFoundError, match="pt_inception-2015-12-05-6726825d.pth"):
    inception.load_variables(tmp_path / "nope.npz")


def test_incomplete_weights_are_rejected(tmp_path, random_arrays):
  partial = dict(random_arrays)
  del partial["Mixed_7c.branch_pool.conv.weight"]
  partial["Mixed_5b.branch1x1.bn.weight"] = np.zeros(3, np.float32)
  path = tmp_path / "partial.npz"
  np.savez(path, **partial)
  with pytest.raises(
    ValueError, match="1 missing .*Mixed_7c.branch_pool.conv.weight.*1 with wrong"
  ):
    inception.load_variables(path)


@pytest.mark.slow
def test_sharded_extraction_equals_single_device(weights_file):
  variables = inception.load_variables(weights_file)
  rng = np.random.default_rng(2)
  images = rng.uniform(-1.0, 1.0, (5, 32, 32, 1)).astype(np.float32)
  # A small input side keeps the test fast; the network is fully convolutional.
  single = inception.InceptionFeatureExtractor(variables, batch_size=4, input_size=75)(images)
  assert single.shape == (5, inception.FEATURE_DIM)
  assert np.abs(single[0] - single[1]).max() > 1e-3 * np.abs(single).max()
  mesh_config = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "distributed": "no"})
  mesh = parallel.create_mesh(mesh_config, jax.devices()[:4])
  sharded = inception.InceptionFeatureExtractor(
    variables, batch_size=3, sharding=parallel.data_sharding(mesh), input_size=75
  )
  assert sharded.batch_size == 4  # Rounded up to the 4 batch shards.
  scale = np.abs(single).max()
  np.testing.assert_allclose(sharded(images), single, rtol=1e-4, atol=1e-5 * scale)
