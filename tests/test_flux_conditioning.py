"""Conditioning on the GOES flux (model.conditioning='flux'): the embedding, guidance,
label dropout, the config rules, and checkpoints of the other kind refused."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from solar_jax import checkpointing, checks, errors
from solar_jax.configs import tiny
from solar_jax.data import goes
from solar_jax.ddpm import flux_sampling, synthetic_fits
from solar_jax.diffusion import losses, samplers
from solar_jax.models import unet


def flux_config():
  config = tiny.get_config()
  config.model.conditioning = "flux"
  config.data.image_size = 16
  return config


def test_flux_embedding_is_continuous_and_distinct_from_the_null():
  embed = unet.FluxEmbedding(32)
  log_flux = jnp.linspace(-8.5, -3.0, 551)  # 0.01 decade apart.
  params = jax.jit(embed.init)(jax.random.key(0), log_flux)
  apply = jax.jit(embed.apply)
  e = np.asarray(apply(params, log_flux))
  steps = np.linalg.norm(np.diff(e, axis=0), axis=1)  # Neighbours 0.01 decade apart.
  decade = np.linalg.norm(e[100:] - e[:-100], axis=1)  # 1 decade apart.
  assert steps.max() < 0.1 * np.median(decade) and decade.min() > 2 * steps.max()
  null = np.asarray(apply(params, jnp.full((4,), np.nan)))[0]
  assert np.linalg.norm(e - null, axis=1).min() > 10 * steps.max()
  # Outside the range the condition saturates (clipped), and no value is NaN.
  far = np.asarray(apply(params, jnp.array([-12.0, -8.5, -3.0, 0.0])))
  np.testing.assert_allclose(far[0], far[1], atol=1e-6)
  np.testing.assert_allclose(far[2], far[3], atol=1e-6)
  assert np.isfinite(e).all()


def _random_params(model, x, t, y, seed=0):
  shapes = jax.eval_shape(model.init, jax.random.key(0), x, t, y)["params"]
  rng = np.random.default_rng(seed)
  return jax.tree.map(
    lambda s: jnp.asarray(0.2 * rng.normal(size=s.shape).astype(np.float32)), shapes
  )


def test_guidance_zero_is_the_unconditional_prediction_of_a_flux_model():
  # The guidance of samplers.guided_output on float conditions: the null is NaN.
  embed = unet.FluxEmbedding(4)
  y = jnp.log10(jnp.array([3e-6, 2e-4], jnp.float32))
  params = jax.jit(embed.init)(jax.random.key(1), y)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 4, 4)), jnp.float32)

  def model_fn(p, xs, ts, ys):
    return xs * embed.apply(p, ys)[:, None, None, :] + ts[:, None, None, None]

  t = jnp.array([7, 7])
  cond = np.asarray(jax.jit(model_fn)(params, x, t, y))
  uncond = np.asarray(jax.jit(model_fn)(params, x, t, jnp.full((2,), jnp.nan)))
  assert np.abs(cond - uncond).max() > 1e-3
  mix = jax.jit(
    lambda w: samplers.guided_output(model_fn, params, x, 7, y, w, num_classes=5, guided=True)
  )

  def guided(w):
    return np.asarray(mix(jnp.float32(w)))

  np.testing.assert_allclose(guided(0.0), uncond, atol=1e-5)
  np.testing.assert_allclose(guided(1.0), cond, atol=1e-5)
  np.testing.assert_allclose(guided(3.0), uncond + 3.0 * (cond - uncond), atol=1e-4)


@pytest.mark.slow  # ~10 s on the 2-core machine: the UNet compiled for two batch shapes.
def test_guidance_zero_is_the_unconditional_prediction_of_a_flux_unet():
  model = unet.create_model(flux_config())
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 16, 16, 1)), jnp.float32)
  t = jnp.array([10, 10], jnp.int32)
  y = jnp.log10(jnp.array([3e-6, 2e-4], jnp.float32))  # C3, X2.
  params = _random_params(model, x, t, y)

  @jax.jit  # One compile per batch shape: op by op, the UNet's forward took ~25 s here.
  def model_fn(p, xs, ts, ys):
    return model.apply({"params": p}, xs, ts, ys)

  cond = np.asarray(model_fn(params, x, t, y))
  uncond = np.asarray(model_fn(params, x, t, jnp.full((2,), jnp.nan)))
  assert np.abs(cond - uncond).max() > 1e-4 and np.abs(cond[0] - cond[1]).max() > 1e-4

  def guided(w):
    out = samplers.guided_output(model_fn, params, x, 10, y, w, num_classes=5, guided=True)
    return np.asarray(out)

  np.testing.assert_allclose(guided(0.0), uncond, atol=1e-5)
  np.testing.assert_allclose(guided(1.0), cond, atol=1e-5)
  np.testing.assert_allclose(guided(3.0), uncond + 3.0 * (cond - uncond), atol=1e-4)


def test_label_dropout_of_fluxes_is_the_nan_null():
  fluxes = jnp.full((20_000,), -5.0, jnp.float32)
  dropped = np.asarray(losses.drop_labels(jax.random.key(0), fluxes, 5, 0.1))
  assert abs(np.isnan(dropped).mean() - 0.1) < 0.01
  assert (dropped[~np.isnan(dropped)] == -5.0).all()
  batch = {"label": jnp.array([3]), "label_flux": jnp.array([2.5e-5])}
  assert float(losses.condition(batch, "flux")[0]) == pytest.approx(np.log10(2.5e-5))
  assert int(losses.condition(batch, "class")[0]) == 3


def test_config_rules_of_the_conditioning():
  config = tiny.get_config()
  config.model.conditioning = "fluxes"
  with pytest.raises(errors.ConfigError, match="model.conditioning='fluxes'"):
    checks.validate(config)
  config = tiny.get_config()
  config.sampling.fluxes = ("M2.5",)
  with pytest.raises(errors.ConfigError, match="needs a flux-conditioned model"):
    checks.validate(config)
  config.model.conditioning = "flux"
  checks.validate(config)
  config.sampling.fluxes = ("M2.5", "Z9")
  with pytest.raises(errors.ConfigError, match="'Z9' is neither"):
    checks.validate(config)
  config.sampling.fluxes, config.sampling.flux_draw = (), "random"
  with pytest.raises(errors.ConfigError, match="sampling.flux_draw='random'"):
    checks.validate(config)


def test_parameter_meaning_records_the_conditioning_and_old_configs_are_class():
  config = tiny.get_config().to_dict()
  assert checkpointing.parameter_meaning(config)["model.conditioning"] == "class"
  del config["model"]["conditioning"]  # A config stored before the field.
  assert checkpointing.parameter_meaning(config)["model.conditioning"] == "class"
  assert checkpointing.parameter_meaning(flux_config().to_dict())["model.conditioning"] == "flux"


def _set_stored_conditioning(workdir, conditioning):
  """Rewrites the conditioning in the config stored with ``workdir``'s checkpoints."""
  for path in workdir.glob("checkpoints/*/meta/metadata"):
    meta = json.loads(path.read_text())
    config = json.loads(meta["config"])
    config["model"]["conditioning"] = conditioning
    meta["config"] = json.dumps(config)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("stored, asked", [("class", "flux"), ("flux", "class")])
def test_a_checkpoint_of_the_other_conditioning_is_refused_in_one_line(
  tiny_checkpoint, stored, asked
):
  from conftest import tiny_checkpoint_config

  _set_stored_conditioning(tiny_checkpoint, stored)
  config = tiny_checkpoint_config()
  config.model.conditioning = asked
  checkpointer = checkpointing.Checkpointer(tiny_checkpoint, keep=1, read_only=True)
  try:
    with pytest.raises(errors.InputMismatchError) as caught:
      checkpointer.check_config(config)
  finally:
    checkpointer.close()
  message = str(caught.value)
  assert f"model.conditioning={stored!r} there, {asked!r} here" in message
  assert "\n" not in message and errors.exit_code(caught.value) == 2


@pytest.mark.parametrize(
  "value, flux",
  [("M2.5", 2.5e-5), ("X10", 1e-3), ("a1", 1e-8), ("C3.2", 3.2e-6), (3e-6, 3e-6), ("7e-5", 7e-5)],
)
def test_fluxes_from_numbers_and_class_strings(value, flux):
  assert flux_sampling.parse_flux(value) == pytest.approx(flux, rel=1e-12)


@pytest.mark.parametrize("value", ["Q3", "M", -1e-6, 0.0, 5.0, float("nan"), True])
def test_a_bad_flux_is_one_line_naming_the_field(value):
  with pytest.raises(errors.ConfigError, match="sampling.fluxes") as caught:
    flux_sampling.parse_flux(value)
  assert "\n" not in str(caught.value)


def test_class_strings_round_trip_through_the_goes_table():
  for name in ("A1", "B4.5", "C9.99", "M2.5", "X10", "X1.2"):
    flux = flux_sampling.parse_flux(name)
    assert flux_sampling.class_string(flux) == name
    assert goes.class_letter(flux) == name[0]


def test_requested_fluxes_listed_and_drawn_per_class():
  config = flux_config()
  config.sampling.fluxes = ("M2.5", 3e-8, "X10", "C1")
  labels, fluxes = flux_sampling.requested(config, None)
  np.testing.assert_array_equal(labels, [3, 0, 4, 2])
  np.testing.assert_allclose(fluxes, [2.5e-5, 3e-8, 1e-3, 1e-6])
  config.sampling.fluxes = ()
  centres = flux_sampling.per_class_fluxes(config, [1, 0, 2, 1, 1])
  np.testing.assert_allclose(centres, [10**-7.5, 10**-5.5, 10**-5.5, 10**-4.5, 10**-3.5])
  # 'training': each class's fluxes come from the training frames of that class only.
  train_labels = np.array([0, 0, 1, 2, 2, 3, 4])
  train_fluxes = np.array([2e-8, 5e-8, 3e-7, 1.1e-6, 8e-6, 4e-5, 2e-4])
  config.sampling.flux_draw = "training"
  drawn = flux_sampling.per_class_fluxes(config, [50, 5, 50, 5, 5], (train_labels, train_fluxes))
  classes = np.repeat(np.arange(5), [50, 5, 50, 5, 5])
  for c in range(5):
    assert set(drawn[classes == c]) <= set(train_fluxes[train_labels == c])
  assert len(set(drawn[classes == 0])) == 2  # Both A fluxes drawn (50 draws).
  again = flux_sampling.per_class_fluxes(config, [50, 5, 50, 5, 5], (train_labels, train_fluxes))
  np.testing.assert_array_equal(drawn, again)  # Seeded by sampling.seed.
  with pytest.raises(errors.InputMismatchError, match="no frame of class X"):
    flux_sampling.per_class_fluxes(config, [1, 0, 0, 0, 1], (train_labels[:6], train_fluxes[:6]))


def test_fits_header_records_the_requested_flux_and_its_class():
  kwargs = dict(
    step=3,
    seed=0,
    index=0,
    sampler_info={"sampler": "ddim", "num_steps": 2, "eta": 0.0, "guidance_scale": 1.0},
    obs={"rsun_arcsec": 960.0, "dsun_m": 1.496e11, "hglt_deg": 0.0},
    made_by={"date": "2026-01-01T00:00:00Z", "version": "0", "commit": "x", "command": "x"},
  )
  header = synthetic_fits.fits_header(16, class_name="M", flux=2.5e-5, **kwargs)
  assert header["GOESFLUX"] == pytest.approx(2.5e-5) and header["GOESCLS"] == "M2.5"
  assert "2.5e-05 W m^-2 (M2.5)" in "".join(header["COMMENT"])
  plain = synthetic_fits.fits_header(16, class_name="M", **kwargs)
  assert "GOESFLUX" not in plain and plain["GOESCLS"] == "M"


def test_a_flux_generators_pools_draw_each_classs_fluxes_from_the_training_split():
  from solar_jax.classifier import training_sets

  config = flux_config()
  config.sampling.fluxes = ("M2.5",)
  pool = training_sets.pool_config(config, 3.0, pool=1)
  assert pool.sampling.flux_draw == "training" and tuple(pool.sampling.fluxes) == ()
  assert pool.sampling.seed == config.sampling.seed + 1
  plain = tiny.get_config()  # A class generator's pools: as before.
  assert training_sets.pool_config(plain).sampling.flux_draw == plain.sampling.flux_draw


def test_the_flux_sweep_spans_a1_to_x10_and_its_files_carry_the_fluxes(tmp_path, monkeypatch):
  from astropy.io import fits

  from solar_jax.ddpm import flux_sweep

  fluxes = flux_sampling.sweep_fluxes()
  assert fluxes[0] == pytest.approx(1e-8) and fluxes[-1] == pytest.approx(1e-3)
  np.testing.assert_allclose(np.diff(np.log10(fluxes)), 0.5)
  config = flux_config()
  drawn = []

  def fake_draw(config, params, fluxes):  # The UNet's compile is not what this checks.
    drawn.append(np.asarray(fluxes))
    return np.random.default_rng(0).uniform(-1, 1, (len(fluxes), 16, 16, 1)).astype(np.float32)

  monkeypatch.setattr(flux_sweep, "draw", fake_draw)
  directory = flux_sweep.write(config, tmp_path, None, 3, "src", fluxes=fluxes[[0, 6, 10]])
  np.testing.assert_allclose(drawn[0], [1e-8, 1e-5, 1e-3])
  assert (directory / "sweep.png").exists()
  saved = np.load(directory / "sweep.npz")
  np.testing.assert_allclose(saved["fluxes"], [1e-8, 1e-5, 1e-3])
  names = sorted(p.name for p in (directory / "fits").iterdir())
  assert names == ["sweep_00_A1.fits", "sweep_01_M1.fits", "sweep_02_X10.fits"]
  header = fits.getheader(directory / "fits" / names[1])
  assert header["GOESFLUX"] == pytest.approx(1e-5) and header["GOESCLS"] == "M1"


def test_flux_consistency_agrees_with_scipy_and_brackets_the_truth():
  from scipy.stats import spearmanr

  from solar_jax.metrics import consistency

  rng = np.random.default_rng(0)
  requested = 10 ** rng.uniform(-8, -3, 400)
  recovered = requested * 10 ** rng.normal(0, 0.5, 400)  # 0.5 decade scatter.
  out = consistency.flux_consistency(requested, recovered, num_samples=500)
  rho = spearmanr(requested, recovered).statistic
  assert out["spearman_rho"]["value"] == pytest.approx(rho, abs=1e-12)
  assert out["spearman_rho"]["low"] < rho < out["spearman_rho"]["high"]
  # E|N(0, 0.5)| = 0.5 sqrt(2 / pi): inside the interval of the MAE in decades.
  mae = out["mae_decades"]
  assert mae["low"] < 0.5 * np.sqrt(2 / np.pi) < mae["high"] and out["n"] == 400
  perfect = consistency.flux_consistency(requested, 3 * requested, num_samples=50)
  assert perfect["spearman_rho"]["value"] == pytest.approx(1.0)
  assert perfect["mae_decades"]["value"] == pytest.approx(np.log10(3))
  unrelated = consistency.flux_consistency(requested, rng.permutation(requested), num_samples=500)
  assert unrelated["spearman_rho"]["low"] < 0 < unrelated["spearman_rho"]["high"]


@pytest.mark.slow  # Trains a small ResNet for 300 steps (~5 s on the 2-core machine).
def test_the_flux_regressor_recovers_flux_from_brightness():
  from solar_jax.classifier import flux_regressor

  config = tiny.get_config()
  c = config.classifier
  c.stage_sizes, c.width, c.dropout, c.batch_size, c.learning_rate = (1,), 8, 0.0, 32, 3e-3
  rng = np.random.default_rng(0)

  def frames(n):  # Brightness rises with log flux, as flare kernels do; plus noise.
    fluxes = 10 ** rng.uniform(-8, -3, n)
    level = (np.log10(fluxes) + 5.5) / 3.0
    images = level[:, None, None, None] + 0.1 * rng.normal(size=(n, 8, 8, 1))
    return images.astype(np.float32), fluxes

  params, losses = flux_regressor.train(config, *frames(256), num_steps=300)
  assert losses[-20:].mean() < 0.3 * losses[:10].mean()
  test_images, test_fluxes = frames(100)
  out = flux_regressor.recovered_consistency(config, params, test_images, test_fluxes)
  assert out["spearman_rho"]["low"] > 0.8 and out["mae_decades"]["value"] < 0.5
