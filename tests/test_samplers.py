"""Samplers against analytic answers: Gaussian data has a closed-form optimal denoiser.

For data ``x0 ~ N(mu_y, Sigma)`` (16-d: 4x4x1 images) the exact noise
prediction is ``E[eps | x_t] = sqrt(1 - abar) Sigma_t^-1 (x_t - sqrt(abar) mu_y)``
with ``Sigma_t = abar Sigma + (1 - abar) I``. Plugged into a sampler it must
return samples from N(mu_y, Sigma) up to sampling error (and, with few DDIM
steps, up to a discretisation error that is computed exactly here in float64:
every DDIM/DDPM step is affine in x for this denoiser).
"""

import ddim_inversion
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from solar_jax import parallel
from solar_jax.diffusion import losses, samplers, schedules

D = 16  # 4 x 4 x 1 images.
SHAPE = (4, 4, 1)
NUM_CLASSES = 3
N = 4000
# KL(fitted Gaussian || truth) of N exact samples in 16-d has mean ~0.019 and
# s.d. ~0.002 (152 fitted parameters); 0.04 is far outside sampling error.
KL_TOL = 0.04


def _diffusion(name, num_timesteps=1000):
  return ml_collections.ConfigDict(
    dict(schedule=name, num_timesteps=num_timesteps, beta_start=1e-4, beta_end=0.02, cosine_s=0.008)
  )


@pytest.fixture(scope="module")
def gaussian():
  rng = np.random.default_rng(0)
  q, _ = np.linalg.qr(rng.normal(size=(D, D)))
  lam = np.linspace(0.05, 1.0, D)
  sigma = (q * lam) @ q.T
  # Class means; the last row (index NUM_CLASSES) is the unconditional "null" mean.
  mus = rng.uniform(-0.5, 0.5, (NUM_CLASSES + 1, D))
  return dict(mus=mus, sigma=sigma, q=q, lam=lam)


def _params(g, schedule):
  return dict(
    mus=jnp.asarray(g["mus"], jnp.float32),
    q=jnp.asarray(g["q"], jnp.float32),
    lam=jnp.asarray(g["lam"], jnp.float32),
    abar=schedule.alphas_cumprod,
  )


def analytic_eps(params, x, t, y):
  """Exact E[eps | x_t] for N(mu_y, Q diag(lam) Q^T) data (t is the same for the batch)."""
  b = x.shape[0]
  a = params["abar"][t][:, None]
  r = x.reshape(b, D) - jnp.sqrt(a) * params["mus"][y]
  z = (r @ params["q"]) / (a * params["lam"] + 1.0 - a)  # Sigma_t^-1 in the eigenbasis.
  return (jnp.sqrt(1.0 - a) * (z @ params["q"].T)).reshape(x.shape)


def analytic_v(params, x, t, y):
  """The same optimal denoiser in the v parameterisation."""
  a = params["abar"][t][:, None, None, None]
  eps = analytic_eps(params, x, t, y)
  x0 = (x - jnp.sqrt(1.0 - a) * eps) / jnp.sqrt(a)
  return jnp.sqrt(a) * eps - jnp.sqrt(1.0 - a) * x0


def _gauss_kl(mean, cov, mu, sigma):
  """KL(N(mean, cov) || N(mu, sigma))."""
  si = np.linalg.inv(sigma)
  diff = mu - mean
  _, logdet_s = np.linalg.slogdet(sigma)
  _, logdet_c = np.linalg.slogdet(cov)
  return 0.5 * (np.trace(si @ cov) + diff @ si @ diff - len(mu) + logdet_s - logdet_c)


def _sample_kl(x, mu, sigma):
  x = x.reshape(x.shape[0], -1).astype(np.float64)
  return _gauss_kl(x.mean(0), np.cov(x.T), mu, sigma)


def _exact_output(g, betas, label, seq, *, ddpm=False):
  """Exact mean and covariance of the sampler output (float64 affine propagation).

  Written from the papers' update equations (DDIM eq. 12 with eta = 0; DDPM
  posterior mean and variance), independently of the sampler code.
  """
  abar = np.cumprod(1.0 - betas)
  mu, sigma = g["mus"][label], g["sigma"]
  mean, cov = np.zeros(D), np.eye(D)
  eye = np.eye(D)
  for i in reversed(range(len(seq))):
    t = seq[i]
    a = abar[t]
    a_prev = abar[seq[i - 1]] if i > 0 else 1.0
    p = np.linalg.inv(a * sigma + (1 - a) * eye)
    # eps_hat = E x + e with E = sqrt(1-a) P, e = -sqrt(1-a) sqrt(a) P mu.
    e_mat, e_vec = np.sqrt(1 - a) * p, -np.sqrt(1 - a) * np.sqrt(a) * p @ mu
    x0_mat, x0_vec = (
      (eye - np.sqrt(1 - a) * e_mat) / np.sqrt(a),
      -np.sqrt(1 - a) * e_vec / np.sqrt(a),
    )
    if ddpm:
      beta = 1 - a / a_prev
      c1, c2 = np.sqrt(a_prev) * beta / (1 - a), np.sqrt(1 - beta) * (1 - a_prev) / (1 - a)
      m, v = c1 * x0_mat + c2 * eye, c1 * x0_vec
      var = beta * (1 - a_prev) / (1 - a) if i > 0 else 0.0
    else:
      m = np.sqrt(a_prev) * x0_mat + np.sqrt(1 - a_prev) * e_mat
      v = np.sqrt(a_prev) * x0_vec + np.sqrt(1 - a_prev) * e_vec
      var = 0.0
    mean, cov = m @ mean + v, m @ cov @ m.T + var * eye
  return mean, cov


def _run(
  g,
  name,
  labels,
  *,
  key=0,
  model=analytic_eps,
  guidance=1.0,
  eta=0.0,
  mesh=None,
  batch_size=N,
  t_max=1000,
  **spec,
):
  schedule = schedules.get_schedule(_diffusion(name, t_max))
  spec = samplers.SamplerSpec(**{"guided": False, **spec})
  return samplers.sample_images(
    model,
    _params(g, schedule),
    schedule,
    jax.random.key(key),
    labels,
    spec=spec,
    num_classes=NUM_CLASSES,
    image_shape=SHAPE,
    batch_size=batch_size,
    guidance_scale=guidance,
    eta=eta,
    sharding=None if mesh is None else parallel.data_sharding(mesh),
  )


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.slow
def test_timesteps_properties(name):
  abar = schedules.get_schedule(_diffusion(name)).alphas_cumprod
  for spacing in samplers.SPACINGS:
    for final in samplers.FINAL_STEPS:
      for s in (1, 2, 7, 10, 50, 999):
        seq = np.asarray(samplers.timesteps(1000, s, spacing, final, abar))
        assert len(seq) == s and seq[-1] == 999 and seq[0] >= 0, (spacing, final, s)
        assert np.all(np.diff(seq) > 0), (spacing, final, s)
        if final == "zero" and s > 1:
          assert seq[0] == 0, (spacing, s)
      every = samplers.timesteps(1000, 1000, spacing, final, abar)
      np.testing.assert_array_equal(every, np.arange(1000))
  # The trailing uniform spacing (what 'uniform' + 'jump' always meant) and quadratic.
  np.testing.assert_array_equal(samplers.timesteps(1000, 10), np.arange(99, 1000, 100))
  np.testing.assert_array_equal(samplers.timesteps(1000, 5, "quadratic"), [40, 160, 359, 640, 999])
  # Quadratic spacing is denser near the data (small t) than uniform spacing.
  assert samplers.timesteps(1000, 20, "quadratic")[3] < samplers.timesteps(1000, 20, "uniform")[3]
  with pytest.raises(ValueError, match="sampling.num_steps"):
    samplers.timesteps(1000, 0)
  with pytest.raises(ValueError, match="sampling.spacing"):
    samplers.timesteps(1000, 10, "cubic")
  with pytest.raises(ValueError, match="sampling.final_step"):
    samplers.timesteps(1000, 10, "uniform", "half")


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("final", ["jump", "zero"])
def test_logsnr_placement(name, final):
  """Uniform in lambda = log(alpha / sigma) from the noisiest timestep to the data end."""
  schedule = schedules.get_schedule(_diffusion(name))
  abar = np.cumprod(1.0 - schedules.get_betas(_diffusion(name)))
  lam = 0.5 * np.log(abar / (1.0 - abar))
  for s in (10, 20, 50):
    seq = np.asarray(samplers.timesteps(1000, s, "logsnr", final, schedule.alphas_cumprod))
    assert seq[-1] == 999 and np.all(np.diff(seq) > 0)  # Starts at pure noise, monotone.
    # The final treatment: 'zero' ends at t = 0; 'jump' one lambda-step above it.
    points = s + (final == "jump")
    step = (lam[0] - lam[-1]) / (points - 1)
    if final == "zero":
      assert seq[0] == 0
    else:
      assert seq[0] >= 1 and abs(lam[seq[0]] - (lam[0] - step)) < max(step, lam[0] - lam[1])
    # Each point at the timestep of nearest lambda on that grid, unless two points share
    # one (the cosine schedule's clipped last beta puts lambda(999) 3.5 below lambda(998):
    # a quarter of the grid rounds to the last timesteps and is pushed apart).
    target = np.linspace(lam[0], lam[-1], points)[points - s :]
    nearest = np.argmin(np.abs(lam[None] - target[:, None]), axis=1)
    if np.all(np.diff(nearest) > 0) and nearest[0] >= (final == "jump"):
      np.testing.assert_array_equal(seq, nearest)
    assert np.mean(seq == nearest) > 0.5


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [10, 50])
def test_ddim_few_steps_matches_exact_discretisation(gaussian, name, steps):
  """DDIM's own recipe (spacing and final step) against the exact propagation over its timesteps."""
  labels = np.full(N, 1, np.int32)
  x = _run(gaussian, name, labels, num_steps=steps)
  schedule = schedules.get_schedule(_diffusion(name))
  visited = lambda s: np.asarray(  # noqa: E731
    samplers.visited_timesteps(schedule, samplers.SamplerSpec("ddim", s))
  )
  betas = schedules.get_betas(_diffusion(name))
  mean, cov = _exact_output(gaussian, betas, 1, visited(steps))
  assert _sample_kl(x, mean, cov) < KL_TOL
  # More steps, closer to the data distribution (the discretisation error shrinks).
  err = _gauss_kl(mean, cov, gaussian["mus"][1], gaussian["sigma"])
  more = visited(4 * steps)
  err_more = _gauss_kl(
    *_exact_output(gaussian, betas, 1, more), gaussian["mus"][1], gaussian["sigma"]
  )
  assert err_more < err


@pytest.mark.parametrize("name", [pytest.param("linear", marks=pytest.mark.long), "cosine"])
@pytest.mark.slow
def test_full_step_samplers_reproduce_data_distribution(gaussian, name):
  labels = np.full(N, 2, np.int32)
  mu, sigma = gaussian["mus"][2], gaussian["sigma"]
  ddim = _run(gaussian, name, labels, num_steps=1000)
  ddpm = _run(gaussian, name, labels, sampler="ddpm")
  assert _sample_kl(ddim, mu, sigma) < KL_TOL
  assert _sample_kl(ddpm, mu, sigma) < KL_TOL
  # The exact discretisation errors are tiny at T steps: the sample error is sampling error.
  betas = schedules.get_betas(_diffusion(name))
  seq = np.arange(1000)
  assert _gauss_kl(*_exact_output(gaussian, betas, 2, seq), mu, sigma) < 2e-3
  assert _gauss_kl(*_exact_output(gaussian, betas, 2, seq, ddpm=True), mu, sigma) < 2e-3
  if name == "linear":
    # DDIM with eta = 1 over all steps is DDPM: same update, and the same noise per image.
    ddim_eta1 = _run(gaussian, name, labels, num_steps=1000, eta=1.0)
    np.testing.assert_allclose(ddim_eta1, ddpm, atol=2e-3)
    assert not np.allclose(ddim, ddpm, atol=0.1)


def test_intermediate_eta_keeps_the_distribution(gaussian):
  labels = np.zeros(N, np.int32)
  x = _run(gaussian, "cosine", labels, num_steps=200, eta=0.5)
  assert _sample_kl(x, gaussian["mus"][0], gaussian["sigma"]) < KL_TOL


def test_one_step_ddim_is_the_posterior_mean(gaussian):
  """From pure noise, one eta=0 step returns E[x0 | x_T] (nearly mu for abar_T ~ 0)."""
  labels = np.zeros(64, np.int32)
  x = _run(gaussian, "linear", labels, num_steps=1, batch_size=64, key=5)
  # The documented key contract: image i starts from normal(split(fold_in(key, i))[0]).
  init_keys, _ = samplers.per_image_keys(jax.random.key(5), jnp.arange(64))
  x_t = np.asarray(jax.vmap(lambda k: jax.random.normal(k, SHAPE))(init_keys), np.float64)
  abar = np.cumprod(1 - schedules.get_betas(_diffusion("linear")))[-1]
  mu, sigma = gaussian["mus"][0], gaussian["sigma"]
  sigma_t = abar * sigma + (1 - abar) * np.eye(D)
  # E[x0 | x_t] = mu + sqrt(abar) Sigma Sigma_t^-1 (x_t - sqrt(abar) mu).
  r = x_t.reshape(64, D) - np.sqrt(abar) * mu
  expected = mu + np.sqrt(abar) * (sigma @ np.linalg.solve(sigma_t, r.T)).T
  # float32 round-off is amplified by 1/sqrt(abar_T) ~ 160 in the x0 prediction.
  np.testing.assert_allclose(x.reshape(64, D), expected, atol=5e-4)


def test_v_prediction_path_equals_eps_path(gaussian):
  labels = np.arange(500, dtype=np.int32) % NUM_CLASSES
  for sampler, t_max in (("ddim", 1000), ("ddpm", 100)):
    kw = dict(batch_size=500, sampler=sampler, num_steps=20, t_max=t_max)
    x_eps = _run(gaussian, "cosine", labels, **kw)
    x_v = _run(gaussian, "cosine", labels, model=analytic_v, prediction="v", **kw)
    np.testing.assert_allclose(x_v, x_eps, atol=2e-3)


def test_ddim_inversion_round_trip(gaussian):
  schedule = schedules.get_schedule(_diffusion("cosine"))
  params = _params(gaussian, schedule)
  rng = np.random.default_rng(1)
  n = 2000
  x0 = rng.multivariate_normal(gaussian["mus"][1], gaussian["sigma"], n).astype(np.float32)
  x0 = jnp.asarray(x0.reshape(n, *SHAPE))
  labels = jnp.ones(n, jnp.int32)
  errors = []
  for steps in (100, 500):
    kw = dict(spec=samplers.SamplerSpec(num_steps=steps, guided=False), num_classes=NUM_CLASSES)
    latents = ddim_inversion.ddim_invert(analytic_eps, params, schedule, x0, labels, **kw)
    # Inversion carries the data distribution to the prior N(0, I) (2x KL_TOL: n = N/2) ...
    assert _sample_kl(np.asarray(latents), np.zeros(D), np.eye(D)) < 2 * KL_TOL
    # ... and sampling from those latents gives the images back, up to the
    # first-order mismatch of the two Euler steps, which shrinks like 1/steps.
    back = ddim_inversion.ddim_decode(analytic_eps, params, schedule, latents, labels, **kw)
    errors.append(float(np.abs(np.asarray(back) - np.asarray(x0)).mean()))
  assert errors[1] < 5e-3 and errors[0] / errors[1] > 3.0


@pytest.mark.slow
def test_guidance_scales(gaussian):
  labels = np.full(N, 1, np.int32)
  null = np.full(N, NUM_CLASSES, np.int32)
  cond = _run(gaussian, "cosine", labels, num_steps=25)
  uncond = _run(gaussian, "cosine", null, num_steps=25)
  w0 = _run(gaussian, "cosine", labels, num_steps=25, guided=True, guidance=0.0)
  w1 = _run(gaussian, "cosine", labels, num_steps=25, guided=True, guidance=1.0)
  np.testing.assert_allclose(w0, uncond, atol=1e-5)
  np.testing.assert_allclose(w1, cond, atol=1e-5)
  # eps is affine in mu, so scale w samples N(mu_u + w (mu_c - mu_u), Sigma) exactly.
  mu_u, mu_c = gaussian["mus"][NUM_CLASSES], gaussian["mus"][1]
  w3 = _run(gaussian, "cosine", labels, num_steps=1000, guided=True, guidance=3.0)
  assert _sample_kl(w3, mu_u + 3.0 * (mu_c - mu_u), gaussian["sigma"]) < KL_TOL


def test_clip_x0_bounds_the_output(gaussian):
  labels = np.zeros(256, np.int32)
  g = dict(gaussian, mus=gaussian["mus"] * 4.0)  # Means far outside [-1, 1].
  x = _run(g, "linear", labels, num_steps=10, batch_size=256, clip_x0=True)
  assert x.min() >= -1.0 and x.max() <= 1.0 and np.mean(np.abs(x) == 1.0) > 0.1
  x = _run(g, "linear", labels, sampler="ddpm", batch_size=256, clip_x0=True)
  assert x.min() >= -1.0 and x.max() <= 1.0


def _mesh(devices):
  config = ml_collections.ConfigDict(dict(data=-1, fsdp=1, distributed="no"))
  return parallel.create_mesh(config, devices=devices)


def test_same_seed_same_images_on_1_and_8_devices_with_partial_batches(gaussian):
  labels = np.arange(13, dtype=np.int32) % NUM_CLASSES  # Odd N: the last batch is padded.
  mesh1, mesh8 = _mesh(jax.devices()[:1]), _mesh(jax.devices()[:8])
  kw = dict(num_steps=20, eta=0.7, guided=True, guidance=2.0, key=7)
  one = _run(gaussian, "linear", labels, mesh=mesh1, batch_size=8, **kw)
  eight = _run(gaussian, "linear", labels, mesh=mesh8, batch_size=8, **kw)
  whole = _run(gaussian, "linear", labels, batch_size=13, **kw)  # One batch, no mesh.
  assert one.shape == (13, *SHAPE)
  np.testing.assert_allclose(eight, one, atol=1e-5)
  np.testing.assert_allclose(whole, one, atol=1e-5)
  # A prefix of the run is the same images (per-image keys); another seed is not.
  prefix = _run(gaussian, "linear", labels[:5], mesh=mesh8, batch_size=8, **kw)
  np.testing.assert_allclose(prefix, one[:5], atol=1e-5)
  other = _run(gaussian, "linear", labels, mesh=mesh8, batch_size=8, **{**kw, "key": 8})
  assert np.abs(other - one).mean() > 0.1
  # Ancestral sampling too (fewer timesteps keep the test fast).
  kw = dict(sampler="ddpm", t_max=100, key=3)
  one = _run(gaussian, "cosine", labels, mesh=mesh1, batch_size=8, **kw)
  eight = _run(gaussian, "cosine", labels, mesh=mesh8, batch_size=16, **kw)
  np.testing.assert_allclose(eight, one, atol=1e-5)


def test_compiled_once_for_new_scales_and_keys(gaussian):
  labels = np.zeros(16, np.int32)
  kw = dict(num_steps=5, batch_size=16, guided=True)
  _run(gaussian, "linear", labels, guidance=1.0, eta=0.0, key=0, **kw)
  size = samplers.sample_batch._cache_size()
  _run(gaussian, "linear", labels, guidance=3.0, eta=0.5, key=1, **kw)
  _run(gaussian, "cosine", labels, guidance=0.0, eta=1.0, key=2, **kw)
  assert samplers.sample_batch._cache_size() == size


def test_loss_of_the_optimal_denoiser(gaussian):
  """The analytic denoiser minimises the loss; its value is the analytic MMSE."""
  schedule = schedules.get_schedule(_diffusion("linear"))
  params = _params(gaussian, schedule)
  rng = np.random.default_rng(2)
  b = 8192
  x0 = rng.multivariate_normal(gaussian["mus"][0], gaussian["sigma"], b).astype(np.float32)
  batch = {"image": jnp.asarray(x0.reshape(b, *SHAPE)), "label": jnp.zeros(b, jnp.int32)}
  config = ml_collections.ConfigDict(
    dict(
      diffusion=dict(prediction="eps", label_dropout=0.0, loss_weighting="none"),
      data=dict(classes=("a", "b", "c")),
    )
  )

  def apply_fn(scale):
    return lambda p, x, t, y, train, rngs: scale * analytic_eps(p, x, t, y)

  key = jax.random.key(3)
  best, metrics = losses.diffusion_loss(apply_fn(1.0), params, batch, key, schedule, config)
  worse, _ = losses.diffusion_loss(apply_fn(0.9), params, batch, key, schedule, config)
  assert float(best) < float(worse) and "x0_mse" in metrics
  # MMSE of eps given x_t, averaged over uniform t: tr(I - (1-a) Sigma_t^-1) / D.
  abar = np.cumprod(1 - schedules.get_betas(_diffusion("linear")))
  mmse = np.mean([np.sum(1 - (1 - a) / (a * gaussian["lam"] + 1 - a)) / D for a in abar])
  np.testing.assert_allclose(float(best), mmse, rtol=0.05)


def test_label_dropout_rate():
  labels = jnp.zeros(20000, jnp.int32)
  dropped = losses.drop_labels(jax.random.key(0), labels, 5, 0.1)
  frac = float(jnp.mean(dropped == 5))
  assert abs(frac - 0.1) < 0.01 and set(np.unique(np.asarray(dropped))) == {0, 5}
