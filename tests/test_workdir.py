"""The workdir contract's keys: a sample set's folder covers every setting that changes it."""

import pytest

from solar_jax import workdir as wd
from solar_jax.configs import tiny
from solar_jax.diffusion import samplers


def _flipped(value):
  """Another valid value of the same type."""
  if isinstance(value, bool):
    return not value
  if isinstance(value, int):
    return value + 1
  if isinstance(value, float):
    return value + 0.25
  if isinstance(value, str):
    return {
      "ddim": "dpmpp_2m",
      "uniform": "quadratic",
      "fixed": "balance",
      "jump": "zero",
      "": "/x/checkpoints",
    }[value]
  if isinstance(value, tuple):
    return tuple(v + 1 for v in value)
  raise AssertionError(f"no flip for {value!r}")


def _config():
  config = tiny.get_config()
  config.sampling.sampler, config.sampling.spacing = "ddim", "uniform"
  config.sampling.eta = 0.25  # DDIM: eta and num_steps are effective.
  return config


@pytest.mark.parametrize("field", sorted(_config().sampling.keys()))
def test_every_sampling_field_that_changes_images_changes_the_folder(field):
  config = _config()
  before = wd.sample_key(config)
  config.sampling[field] = _flipped(config.sampling[field])
  after = wd.sample_key(config)
  if field in samplers.NOT_IMAGE_FIELDS:
    assert after == before, f"sampling.{field} changes no image but changes the folder"
  else:
    assert after != before, f"sampling.{field} changes the images but not the folder"


def test_x0_clipping_no_longer_shares_a_folder():
  config = _config()
  clipped = wd.samples_dir("run", 100, wd.sample_key(config))
  config.sampling.clip_x0 = False
  assert wd.samples_dir("run", 100, wd.sample_key(config)) != clipped


def test_sets_drawn_alike_share_a_folder():
  """DDPM runs every timestep with eta 1 whatever num_steps and eta say: one set, one key."""
  config = _config()
  config.sampling.sampler = "ddpm"
  before = wd.sample_key(config)
  config.sampling.num_steps, config.sampling.eta = 7, 0.5
  assert wd.sample_key(config) == before
  assert wd.sample_key(config).startswith("ddpm-100-eta1-g")
