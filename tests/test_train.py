"""DDPM trainer: 1 vs 8 devices, resume equals uninterrupted, non-finite stop."""

import json

import jax
import numpy as np
import pytest

from solar_jax import checkpointing, configuration, errors, parallel, provenance
from solar_jax import workdir as wd
from solar_jax.configs import tiny
from solar_jax.ddpm import train, train_state


def _config(**training):
  """Tiny at half its sizes (16² images, 8 base channels), one resolution level, attention
  in the middle block only: the properties tested here (devices, resuming, NaN, a falling
  loss) do not depend on the depth (the batch is split per image; every layer but the loss
  and its gradient's sum is per image), and compiling the train step is most of their time
  (two levels double it). The UNet's levels are tested in test_unet.py."""
  config = tiny.get_config()
  config.data.image_size = 16
  config.model.base_channels = 8
  config.model.num_groups = 4
  config.model.channel_mult, config.model.attention_resolutions = (1,), ()
  config.training.num_sample_images = 0
  for key, value in training.items():
    config.training[key] = value
  return config


def _batches(config):
  """Deterministic stream: batch k depends on k only, so it resumes exactly."""
  size, b = config.data.image_size, config.training.batch_size

  def batches_fn(start):
    step = start
    while True:
      rng = np.random.default_rng(1000 + step)
      batch = {
        "image": rng.uniform(-1, 1, (b, size, size, 1)).astype(np.float32),
        "label": rng.integers(0, 5, b).astype(np.int32),
      }
      if config.model.conditioning == "flux":  # The label's flux: a flux model's condition.
        batch["label_flux"] = (10.0 ** (batch["label"] - 8 + rng.uniform(0, 1, b))).astype(
          np.float32
        )
      yield batch
      step += 1

  return batches_fn


def _one_step(config, devices):
  config.mesh.data = len(devices)
  mesh = parallel.create_mesh(config.mesh, devices=devices)
  with jax.set_mesh(mesh):
    abstract, _ = train_state.abstract_train_state(config, mesh)
    state = train_state.init_train_state(config, mesh)
    step_fn = train.make_train_step(config, mesh, abstract)
    batch = parallel.make_global_batch(mesh, next(_batches(config)(0)))
    state, metrics = step_fn(state, batch)
    return checkpointing.host_copy(state.params), jax.device_get(metrics)


def _conditioned(conditioning, **training):
  config = _config(**training)
  config.model.conditioning = conditioning
  return config


@pytest.mark.slow
@pytest.mark.parametrize("conditioning", ["class", pytest.param("flux", marks=pytest.mark.long)])
def test_one_step_same_on_1_and_8_devices(conditioning):
  config = _conditioned(conditioning)
  params1, metrics1 = _one_step(_conditioned(conditioning), jax.devices()[:1])
  params8, metrics8 = _one_step(config, jax.devices()[:8])
  np.testing.assert_allclose(metrics1["loss"], metrics8["loss"], rtol=1e-5)
  np.testing.assert_allclose(metrics1["grad_norm"], metrics8["grad_norm"], rtol=1e-4)
  for a, b in zip(jax.tree.leaves(params1), jax.tree.leaves(params8)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("conditioning", ["class", "flux"])
def test_resumed_run_equals_uninterrupted(tmp_path, conditioning):
  config = _conditioned(conditioning, num_steps=4, checkpoint_every=2)
  full = train.run(config, tmp_path / "full", batches_fn=_batches(config))
  first = _conditioned(conditioning, num_steps=2, checkpoint_every=2)
  train.run(first, tmp_path / "resumed", batches_fn=_batches(config))
  # The model's config and who trained it, written with its first checkpoint ...
  trained_with = wd.train_config_path(tmp_path / "resumed").read_bytes()
  info = wd.train_info_path(tmp_path / "resumed").read_bytes()
  assert trained_with.decode() == configuration.to_json(first)
  assert json.loads(info)["commit"] == provenance.git_commit()
  assert json.loads(info)["command"] == provenance.command_line()
  resumed = train.run(config, tmp_path / "resumed", batches_fn=_batches(config))
  # ... and left as they were by the run that resumed it with another num_steps.
  assert wd.train_config_path(tmp_path / "resumed").read_bytes() == trained_with
  assert wd.train_info_path(tmp_path / "resumed").read_bytes() == info
  assert int(resumed.step) == int(full.step) == 4
  for a, b in zip(
    jax.tree.leaves(checkpointing.host_copy(full.ema_params)),
    jax.tree.leaves(checkpointing.host_copy(resumed.ema_params)),
  ):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  steps = checkpointing.Checkpointer(tmp_path / "resumed", keep=2).all_steps()
  assert steps == [2, 4]


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_last_good(tmp_path):
  # The step of the resume test (so its compiled program is reused); the 4th batch holds a
  # NaN pixel, so the loss and every gradient of step 4 are NaN.
  config = _conditioned("class", num_steps=6, checkpoint_every=1, log_every=1)
  clean = _batches(config)

  def batches_fn(start):
    for step, batch in enumerate(clean(start), start):
      if step == 3:
        batch["image"][0, 0, 0, 0] = np.nan
      yield batch

  with pytest.raises(errors.NonFiniteError, match=r"at step \d") as info:
    train.run(config, tmp_path, batches_fn=batches_fn)
  bad_step = int(str(info.value).split("at step ")[1].split(";")[0])
  assert bad_step == 4
  ckpt = checkpointing.Checkpointer(tmp_path, keep=5)
  assert ckpt.latest_step() == bad_step - 1
  mesh = parallel.create_mesh(config.mesh)
  abstract, _ = train_state.abstract_train_state(config, mesh)
  state, _ = ckpt.restore(abstract)  # Intact and finite.
  assert checkpointing.all_finite(state)


def test_learning_rate_warmup():
  config = _config(warmup_steps=10, learning_rate=1e-3)
  schedule = train_state.learning_rate_schedule(config.training)
  np.testing.assert_allclose(
    [schedule(0), schedule(5), schedule(10), schedule(50)], [0.0, 5e-4, 1e-3, 1e-3], rtol=1e-6
  )


def _demo_images(tmp_path, config, num_frames=24):
  """Frames of the SIMULATED demo archive (sunpy's real AIA 171 disk, rotated) read by the reader."""
  from solar_jax.data import aia, demo, scaling

  demo.write_demo_archive(tmp_path / "manual", num_frames=num_frames, months=1)
  files = aia.find_fits_files(tmp_path / "manual" / "aia")
  images = np.stack(
    [
      aia.read_frame(f, image_size=config.data.image_size, accept_synthetic=True).image
      for f in files
    ]
  )
  images = scaling.forward(images, config.data.clip_min, config.data.clip_max)
  return images[..., None].astype(np.float32)


@pytest.mark.slow
def test_tiny_run_lowers_the_loss_on_real_derived_frames(tmp_path):
  from solar_jax.diffusion import losses, schedules
  from solar_jax.models import unet

  config = _config(num_steps=25, warmup_steps=5, learning_rate=3e-3, checkpoint_every=25)
  config.training.log_every = 25
  images = _demo_images(tmp_path, config)
  b = config.training.batch_size

  def batches_fn(start):
    step = start
    while True:
      idx = np.random.default_rng(step).choice(len(images), b, replace=False)
      yield {"image": images[idx], "label": np.zeros(b, np.int32)}
      step += 1

  model = unet.create_model(config)
  schedule = schedules.get_schedule(config.diffusion)
  frames = {"image": images, "label": np.zeros(len(images), np.int32)}

  def apply_fn(params, x, t, y, train, rngs):
    return model.apply({"params": params}, x, t, y, train=train, rngs=rngs)

  @jax.jit
  def frame_loss(params, key):
    return losses.diffusion_loss(apply_fn, params, frames, key, schedule, config, train=False)[0]

  def loss(params):  # The same timesteps and noise before and after training.
    return np.mean([frame_loss(params, jax.random.key(k)) for k in range(8)])

  mesh = parallel.create_mesh(config.mesh)
  with jax.set_mesh(mesh):
    before = loss(checkpointing.host_copy(train_state.init_train_state(config, mesh).params))
  state = train.run(config, tmp_path / "run", batches_fn=batches_fn)
  after = loss(checkpointing.host_copy(state.params))
  assert after < 0.5 * before, (before, after)


def test_sample_grid_shows_every_class_and_spreads_the_rest_evenly():
  for num_classes in range(1, 7):
    for n in range(1, 25):
      counts = train.grid_counts(n, num_classes)
      assert len(counts) == num_classes and counts.min() >= 1, (n, counts)
      assert counts.sum() == max(n, num_classes), (n, counts)
      assert counts.max() - counts.min() <= 1 and list(counts) == sorted(counts, reverse=True)
  np.testing.assert_array_equal(train.grid_counts(4, 5), [1, 1, 1, 1, 1])  # tiny's 4: X too.
  np.testing.assert_array_equal(train.grid_counts(12, 5), [3, 3, 2, 2, 2])
