"""DPM-Solver++(2M) against a known answer: a 1-D mixture of two Gaussians.

The exact eps-prediction of the mixture is closed form (``analytic_mixture``),
so the only errors of a sampler that uses it are its own. The samplers start
from the quantiles of the exact marginal of x_T: the probability-flow ODE is
monotone in 1-D, so a deterministic sampler maps them to the quantiles of its
output distribution, and the moments of the output carry no Monte Carlo
error. DDIM (eta = 0) and DPM-Solver++(2M) start from the same points.
"""

import functools

import analytic_mixture as am
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from solar_jax import checks, configuration, workdir
from solar_jax.configs import default
from solar_jax.diffusion import losses, samplers, schedules

NUM_CLASSES = 2  # Class 2 is the null class: the whole mixture.
NULL = NUM_CLASSES
N = 20000
MIX = am.two_modes()


def _schedule_config(name):
  return ml_collections.ConfigDict(
    dict(schedule=name, num_timesteps=1000, beta_start=1e-4, beta_end=0.02, cosine_s=0.008)
  )


def _schedule(name):
  return schedules.get_schedule(_schedule_config(name))


@functools.partial(jax.jit, static_argnames=("model_fn", "spec"))
def _sample_from(model_fn, params, schedule, x_T, labels, guidance_scale, *, spec):
  keys = jax.random.split(jax.random.key(0), x_T.shape[0])  # Unused: no sampler here adds noise.
  return samplers.sample_from(
    model_fn,
    params,
    schedule,
    x_T,
    keys,
    labels,
    guidance_scale,
    0.0,
    spec=spec,
    num_classes=NUM_CLASSES,
  )


@functools.cache
def _quantile_errors(name, sampler, steps):
  """Errors of mean, variance and lower-mode weight of the null-class samples (trailing grid)."""
  schedule = _schedule(name)
  x_T = am.marginal_quantiles(MIX, NULL, float(schedule.alphas_cumprod[-1]), N)
  spec = samplers.SamplerSpec(sampler, steps, "uniform", "jump", guided=False)
  x = _sample_from(
    am.mixture_eps,
    am.params(MIX, schedule),
    schedule,
    jnp.asarray(x_T.reshape(N, 1, 1, 1), jnp.float32),
    jnp.full((N,), NULL, jnp.int32),
    1.0,
    spec=spec,
  )
  return am.errors(np.asarray(x), MIX, NULL)


def _run(name, labels, *, model=am.mixture_eps, guidance=1.0, key=0, **spec):
  """The full sampling path (per-image keys, jitted batches) on 1x1x1 images."""
  schedule = _schedule(name)
  return samplers.sample_images(
    model,
    am.params(MIX, schedule),
    schedule,
    jax.random.key(key),
    labels,
    spec=samplers.SamplerSpec(**{"sampler": "dpmpp_2m", "guided": False, **spec}),
    num_classes=NUM_CLASSES,
    image_shape=(1, 1, 1),
    batch_size=len(labels),
    guidance_scale=guidance,
  ).reshape(-1)


def test_quantile_start_is_exact():
  """The test's own yardstick: the quantile grid has the mixture's moments (x_T at abar = 1)."""
  x = am.marginal_quantiles(MIX, NULL, 1.0, N)
  errors = am.errors(x, MIX, NULL)
  assert max(errors.values()) < 2e-4, errors


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_dpm_solver_beats_ddim_at_10_steps(name):
  ddim = _quantile_errors(name, "ddim", 10)
  dpm = _quantile_errors(name, "dpmpp_2m", 10)
  # Measured (linear / cosine): mean 5.0e-3 vs 1.7e-2 / 5.9e-3 vs 1.1e-2, variance
  # 7.6e-2 vs 1.3e-1 / 1.5e-2 vs 7.3e-2, weight 1.4e-3 vs 1.5e-2 / 1.3e-3 vs 1.4e-2.
  for stat in ("mean", "var", "low"):
    assert dpm[stat] < 0.7 * ddim[stat], (stat, dpm, ddim)
  assert dpm["low"] < 0.2 * ddim["low"], (dpm, ddim)


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("sampler", ["ddim", "dpmpp_2m"])
def test_both_converge_to_the_mixture(name, sampler):
  errs = [_quantile_errors(name, sampler, steps) for steps in (10, 50, 200)]
  total = [sum(e.values()) for e in errs]
  assert total[0] > total[1] > total[2], errs
  # At 200 steps DDIM is within 1e-2 and the second-order solver within 2e-4 on each
  # statistic (measured: DDIM <= 7.3e-3, DPM-Solver++ <= 7.6e-5).
  tol = 1e-2 if sampler == "ddim" else 2e-4
  assert max(errs[2].values()) < tol, errs[2]


@pytest.mark.slow
def test_one_and_two_steps_are_ddim():
  """With S <= 2 there is no multistep correction (the first and last steps are first order)."""
  labels = np.full(256, NULL, np.int32)
  # Linear schedule: the first x0 prediction amplifies float32 round-off by 1/sqrt(abar_T),
  # ~160 here but ~1e4 for the cosine schedule (then the two fusions differ by round-off).
  grid = dict(spacing="logsnr", final_step="zero")
  for steps in (1, 2):
    dpm = _run("linear", labels, num_steps=steps, **grid)
    ddim = _run("linear", labels, sampler="ddim", num_steps=steps, **grid)
    np.testing.assert_allclose(dpm, ddim, atol=1e-4)
  dpm, ddim = (_run("linear", labels, sampler=s, num_steps=5, **grid) for s in ("dpmpp_2m", "ddim"))
  assert np.abs(dpm - ddim).max() > 1e-2


def test_coefficients_from_the_log_snr():
  """The per-step coefficients against the paper's formulas in float64 (linear schedule)."""
  schedule = _schedule("linear")
  seq = np.asarray(samplers.timesteps(1000, 6))
  ratio, coef_d, corr = map(
    np.asarray, samplers.dpm_solver_2m_coefficients(schedule.alphas_cumprod, seq)
  )
  abar = np.cumprod(1.0 - schedules.get_betas(_schedule_config("linear")))
  ts = list(seq[::-1])
  lam = [0.5 * np.log(abar[t] / (1 - abar[t])) for t in ts]
  for k in range(len(ts) - 1):
    s, t = ts[k], ts[k + 1]
    h = lam[k + 1] - lam[k]
    np.testing.assert_allclose(ratio[k], np.sqrt((1 - abar[t]) / (1 - abar[s])), rtol=1e-5)
    np.testing.assert_allclose(coef_d[k], np.sqrt(abar[t]) * -np.expm1(-h), rtol=1e-5)
    if k > 0:
      np.testing.assert_allclose(corr[k], h / (2 * (lam[k] - lam[k - 1])), rtol=1e-4)
  # First step: no previous x0; last step: to the clean image, x = x0.
  assert corr[0] == 0 and corr[-1] == 0 and ratio[-1] == 0 and coef_d[-1] == 1


def test_v_prediction_gives_the_same_samples():
  labels = np.arange(1000, dtype=np.int32) % (NUM_CLASSES + 1)
  for name in ("linear", "cosine"):
    x_eps = _run(name, labels, num_steps=15)
    x_v = _run(name, labels, num_steps=15, model=am.mixture_v, prediction="v")
    np.testing.assert_allclose(x_v, x_eps, atol=2e-3)


def test_guidance_selects_the_mode():
  n = 2000
  mid = float(np.mean(MIX.means[NULL]))
  low, high, null = (np.full(n, c, np.int32) for c in (0, 1, NULL))
  cond = _run("cosine", low, num_steps=15)
  uncond = _run("cosine", null, num_steps=15)
  # Scale 1 is the conditional model, scale 0 the unconditional one (same per-image noise;
  # the tolerance is float32 round-off of the mix, amplified ~1e4 by the first x0 of the
  # cosine schedule).
  np.testing.assert_allclose(_run("cosine", low, num_steps=15, guided=True), cond, atol=3e-4)
  np.testing.assert_allclose(
    _run("cosine", low, num_steps=15, guided=True, guidance=0.0), uncond, atol=3e-4
  )
  # The label picks its mode; the unconditional samples keep both, in proportion.
  assert np.mean(cond < mid) > 0.99
  assert np.mean(_run("cosine", high, num_steps=15) > mid) > 0.99
  assert abs(np.mean(uncond < mid) - am.exact_stats(MIX, NULL)["low"]) < 0.04
  # Stronger guidance keeps to the chosen mode, pushed away from the other and narrower.
  for label, side in ((0, -1.0), (1, 1.0)):
    x = _run("cosine", np.full(n, label, np.int32), num_steps=15, guided=True, guidance=3.0)
    assert np.mean(side * (x - mid) > 0) > 0.99
    m, s = MIX.means[label, label], MIX.stds[label, label]
    assert side * (x.mean() - m) > 0 and x.std() < s


def test_clip_x0_bounds_the_output():
  labels = np.full(512, NULL, np.int32)
  wide = am.Mixture(MIX.weights, MIX.means * 3.0, MIX.stds)  # Modes outside [-1, 1].
  schedule = _schedule("linear")
  x = samplers.sample_images(
    am.mixture_eps,
    am.params(wide, schedule),
    schedule,
    jax.random.key(1),
    labels,
    spec=samplers.SamplerSpec("dpmpp_2m", 10, clip_x0=True, guided=False),
    num_classes=NUM_CLASSES,
    image_shape=(1, 1, 1),
    batch_size=512,
  )
  assert x.min() >= -1.0 and x.max() <= 1.0 and np.mean(np.abs(x) == 1.0) > 0.5


def test_config_and_recorded_settings():
  config = default.get_config()
  config.sampling.sampler = "dpmpp_2m"
  config.sampling.eta = 0.7  # Meaningless for a deterministic solver: recorded as 0.
  checks.validate(config)
  settings = samplers.recorded_settings(config)
  assert settings["sampler"] == "dpmpp_2m" and settings["eta"] == 0.0
  assert settings["num_steps"] == config.sampling.num_steps
  spec = samplers.SamplerSpec.from_config(config)
  assert spec.sampler == "dpmpp_2m" and spec.num_steps == config.sampling.num_steps


def test_every_recipe_names_registered_timesteps():
  for name, recipe in samplers.SAMPLERS.items():
    assert recipe.spacing in samplers.SPACINGS and recipe.final_step in samplers.FINAL_STEPS, name


def test_default_spacing_is_recorded_resolved():
  config = default.get_config()
  config.sampling.spacing = config.sampling.final_step = "default"
  for name, recipe in samplers.SAMPLERS.items():
    config.sampling.sampler = name
    checks.validate(config)
    settings = samplers.recorded_settings(config)
    spec = samplers.SamplerSpec.from_config(config)
    if recipe.stepped:
      assert (settings["spacing"], settings["final_step"]) == (recipe.spacing, recipe.final_step)
    else:  # DDPM visits every timestep down to t = 0, whatever the config says.
      assert (settings["spacing"], settings["final_step"]) == ("uniform", "zero")
    assert (spec.spacing, spec.final_step) == (settings["spacing"], settings["final_step"])
    # Drawn alike, recorded alike, and the sample folder says so.
    explicit = config.copy_and_resolve_references()
    explicit.sampling.spacing, explicit.sampling.final_step = spec.spacing, spec.final_step
    assert samplers.recorded_settings(explicit) == settings
    assert workdir.sample_key(explicit) == workdir.sample_key(config)
  config.sampling.sampler = "ddim"
  keys = {workdir.sample_key(config)}  # DDIM's recipe: quadratic + jump.
  config.sampling.spacing, config.sampling.final_step = "uniform", "jump"
  keys.add(workdir.sample_key(config))
  config.sampling.final_step = "zero"
  keys.add(workdir.sample_key(config))
  assert len(keys) == 3 and all(k.startswith("ddim-50-eta0-g1-s0-") for k in keys)
  config.sampling.final_step = "last"
  with pytest.raises(configuration.ConfigError, match="sampling.final_step"):
    checks.validate(config)


# w1 (mean |quantile difference| over 199 quantiles) of each deterministic sampler's recipe at
# its recommended steps on issue 32's mixture from the exact x_T quantiles (no Monte Carlo
# error), measured by benchmarks/bench_sampler_recipes.py (RESULTS.md, "Each sampler's
# timestep recipe"), and of DDIM's former 50 uniform 'jump' steps, which a recipe must beat.
RECIPE_W1 = {
  ("ddim", "linear"): 0.0087,
  ("ddim", "cosine"): 0.0071,
  ("dpmpp_2m", "linear"): 0.0121,
  ("dpmpp_2m", "cosine"): 0.0041,
}
DDIM_50_UNIFORM_W1 = {"linear": 0.0192, "cosine": 0.0101}
NARROW = am.narrow_modes()


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("sampler", list(samplers.SAMPLERS))
@pytest.mark.slow
def test_each_recipe_reproduces_the_mixture(name, sampler):
  recipe = samplers.SAMPLERS[sampler]
  schedule = _schedule(name)
  spec = samplers.SamplerSpec(sampler, recipe.num_steps, guided=False)
  if not recipe.stepped:
    # Ancestral DDPM, from random starts: measured 0.0041 +- 0.0009 (linear) and 0.0031 +-
    # 0.0006 (cosine) over 5 seeds of 131 072 values, exact draws 0.0015 +- 0.0004; with
    # 2^14 values exact draws alone are ~0.004.
    x = samplers.sample_images(
      am.mixture_eps, am.params(NARROW, schedule), schedule, jax.random.key(0),
      np.full(2**14, NULL, np.int32), spec=spec, num_classes=NUM_CLASSES,
      image_shape=(1, 1, 1), batch_size=2**14,
    )  # fmt: skip
    assert am.w1(x, NARROW, NULL) < 0.012
    return
  x_T = am.quantiles(NARROW, NULL, am.W1_PROBS, float(schedule.alphas_cumprod[-1]))
  n = len(x_T)
  x = _sample_from(
    am.mixture_eps, am.params(NARROW, schedule), schedule,
    jnp.asarray(x_T.reshape(n, 1, 1, 1), jnp.float32), jnp.full((n,), NULL, jnp.int32), 1.0,
    spec=spec,
  )  # fmt: skip
  w1 = am.w1_at_probs(np.asarray(x), NARROW, NULL)
  assert w1 < 1.15 * RECIPE_W1[sampler, name], w1  # float32 round-off only: no sampling noise.
  assert w1 < DDIM_50_UNIFORM_W1[name], w1


# ------------------------------------------------------------ min-SNR weighting ---


def test_min_snr_weights_at_known_snrs():
  snr = jnp.asarray([0.5, 5.0, 50.0])
  eps = np.asarray(losses.loss_weights(snr, "eps", "min_snr", 5.0))
  v = np.asarray(losses.loss_weights(snr, "v", "min_snr", 5.0))
  np.testing.assert_allclose(eps, [1.0, 1.0, 0.1], rtol=1e-6)
  np.testing.assert_allclose(v, [0.5 / 1.5, 5.0 / 6.0, 5.0 / 51.0], rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(losses.loss_weights(snr, "v", "none")), 1.0)
  with pytest.raises(ValueError, match="diffusion.loss_weighting"):
    losses.loss_weights(snr, "eps", "p2")


def _loss_config(prediction, weighting, gamma=5.0):
  return ml_collections.ConfigDict(
    dict(
      diffusion=dict(
        prediction=prediction,
        label_dropout=0.0,
        loss_weighting=weighting,
        min_snr_gamma=gamma,
      ),
      data=dict(classes=("a", "b")),
    )
  )


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_weighted_loss_against_its_definition(prediction):
  """'none' is the plain MSE; 'min_snr' is the x0 error weighted by min(SNR, gamma)."""
  schedule = _schedule("cosine")
  rng = np.random.default_rng(0)
  b = 64
  x0 = jnp.asarray(rng.uniform(-1, 1, (b, 4, 4, 1)), jnp.float32)
  batch = {"image": x0, "label": jnp.zeros(b, jnp.int32)}
  out = jnp.asarray(rng.normal(size=(b, 4, 4, 1)), jnp.float32)  # A fixed, wrong prediction.
  key = jax.random.key(4)

  def apply_fn(params, x, t, y, train, rngs):
    return out

  def loss(weighting, gamma=5.0):
    config = _loss_config(prediction, weighting, gamma)
    return losses.diffusion_loss(apply_fn, None, batch, key, schedule, config)

  # Rebuild t and the noise as diffusion_loss draws them, then each definition by hand.
  t_rng, noise_rng, _, _ = jax.random.split(key, 4)
  t = jax.random.randint(t_rng, (b,), 0, schedule.num_timesteps, dtype=jnp.int32)
  noise = jax.random.normal(noise_rng, x0.shape, jnp.float32)
  sa = np.asarray(schedule.sqrt_alphas_cumprod)[t][:, None, None, None]
  s1a = np.asarray(schedule.sqrt_one_minus_alphas_cumprod)[t][:, None, None, None]
  x_t = sa * x0 + s1a * noise
  target = noise if prediction == "eps" else sa * noise - s1a * x0
  plain, _ = loss("none")
  np.testing.assert_allclose(float(plain), np.mean((np.asarray(out) - target) ** 2), rtol=1e-5)
  _, x0_hat = losses.output_to_eps_x0(out, x_t, sa, s1a, prediction)
  snr = (sa / s1a) ** 2
  x0_err = np.mean((np.asarray(x0_hat) - np.asarray(x0)) ** 2, axis=(1, 2, 3), keepdims=True)
  weighted, _ = loss("min_snr", 5.0)
  np.testing.assert_allclose(float(weighted), np.mean(np.minimum(snr, 5.0) * x0_err), rtol=2e-3)
  if prediction == "eps":  # gamma above every SNR: every weight is 1.
    np.testing.assert_allclose(float(loss("min_snr", 1e12)[0]), float(plain), rtol=1e-6)


@pytest.mark.parametrize(
  "field, value",
  [("diffusion.loss_weighting", "p2"), ("diffusion.min_snr_gamma", 0.0)],
)
def test_bad_weighting_config_names_the_field(field, value):
  config = default.get_config()
  section, key = field.split(".")
  config[section][key] = value
  with pytest.raises(configuration.ConfigError, match=field.replace(".", r"\.")) as err:
    checks.validate(config)
  assert "\n" not in str(err.value)
