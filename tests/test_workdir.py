"""The workdir contract: a sample set's folder covers every setting that changes it;
damaged outputs are named; planted links are replaced, never written through."""

import json
import os

import numpy as np
import pytest

from solar_jax import errors
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
      "centre": "training",
    }[value]
  if isinstance(value, tuple):
    return tuple(v + 1 if not isinstance(v, str) else v + "1" for v in value)
  raise AssertionError(f"no flip for {value!r}")


def _config(conditioning="flux"):
  config = tiny.get_config()
  config.sampling.sampler, config.sampling.spacing = "ddim", "uniform"
  config.sampling.eta = 0.25  # DDIM: eta and num_steps are effective.
  config.model.conditioning = conditioning  # A flux model reads every sampling field.
  if conditioning == "flux":
    config.sampling.fluxes = (1e-6, "M2.5")
  return config


def test_a_class_models_sets_keep_their_keys_and_flux_lists_key_flux_sets():
  # The flux fields change no class model's images: its keys are those from before them.
  config = _config("class")
  before = wd.sample_key(config)
  config.sampling.flux_draw = "training"
  assert wd.sample_key(config) == before
  flux = _config()
  other = _config()
  other.sampling.fluxes = (1e-6, "M2.6")
  assert len({before, wd.sample_key(flux), wd.sample_key(other)}) == 3


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


@pytest.mark.parametrize(
  "field, value",
  [("fold", 3), ("label", "flare_class"), ("embargo_days", 30.0), ("cooling_lag_minutes", 0.0)],
)
def test_sets_of_generators_of_other_data_never_share_a_folder(field, value):
  """A synthetic pool (or any set) drawn for another fold, label or embargo: another folder,
  whatever the counts, so a pool drawn for one fold is never read for another."""
  config = _config()
  counts = (3, 2, 2, 2, 2)
  before = {wd.sample_key(config), wd.sample_key(config, per_class=counts)}
  config.data[field] = value
  after = {wd.sample_key(config), wd.sample_key(config, per_class=counts)}
  assert len(before | after) == 4


# ---------------------------------------------------- damaged outputs and links ---


def test_truncated_samples_npz_is_an_error_naming_the_file(tmp_path):
  path = wd.samples_dir(tmp_path, 7) / "samples.npz"
  path.parent.mkdir(parents=True)
  wd.write_npz(path, images=np.zeros((3, 8, 8, 1), np.float32))
  path.write_bytes(path.read_bytes()[:-40])
  with pytest.raises(errors.DamagedFileError, match=str(path)) as info:
    wd.read_npz(path)
  assert errors.exit_code(info.value) == 2


def test_planted_links_are_never_written_through(tmp_path):
  target = tmp_path / "precious.txt"
  target.write_text("keep me")
  run = tmp_path / "run"
  run.mkdir()
  (run / ".lock").symlink_to(target)
  with pytest.raises(errors.WorkdirError, match="symbolic link"):
    with wd.Lock(run):
      pass
  (run / ".lock").unlink()
  (run / "config.json").symlink_to(target)
  wd.write_text(wd.config_path(run), '{"seed": 0}')
  assert target.read_text() == "keep me"
  assert not (run / "config.json").is_symlink()
  assert json.loads((run / "config.json").read_text()) == {"seed": 0}
  # A planted temporary name is removed, not followed.
  tmp_link = run / f"out.json.tmp{os.getpid()}"
  tmp_link.symlink_to(target)
  wd.write_json(run / "out.json", [1])
  assert target.read_text() == "keep me"
