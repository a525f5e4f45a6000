"""DDIM, DPM-Solver++(2M) and ancestral DDPM samplers with classifier-free guidance.

The model enters as ``model_fn(params, x [B,H,W,C], t [B] int32, y [B] int32)
-> output`` (eps or v, see ``losses``), so the samplers run as well on a UNet
as on an analytic denoiser (tests). Each sampler is one jitted function whose
time loop is a ``lax.scan``; the per-step coefficients are gathered from the
schedule once, before the loop. The guidance scale and DDIM's eta are traced
arguments: changing them does not recompile.

Randomness is per image: image ``i`` of a run with key ``k`` draws its initial
noise and every step's noise from ``fold_in(k, i)`` (split into an initial and
a per-step stream; the step noise at timestep ``t`` is ``fold_in(stream, t)``).
A run therefore gives the same images whatever the batch size, the padding of
the last batch or the number of devices, and DDIM with ``eta = 1`` over all
``T`` steps draws exactly the noise that DDPM draws.

Timesteps are 0-based (``t = T - 1`` is the noisiest). DDIM visits ``S``
timesteps ``t_1 < ... < t_S = T - 1`` ("trailing" spacing, Lin et al. 2024,
which always starts at pure noise): uniform ``t_i = round(i T / S) - 1``, or
quadratic ``t_i ~ T (i / S)^2`` (denser near the data), made strictly
increasing. ``S = T`` visits every timestep with either spacing.

DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) visits the same timesteps as
DDIM, deterministically, with one model evaluation per step. In log-SNR
``lambda = log(alpha / sigma)`` (``alpha = sqrt(abar)``, ``sigma = sqrt(1 -
abar)``) a step ``s -> t`` of length ``h = lambda_t - lambda_s`` is

  x_t = (sigma_t / sigma_s) x_s + alpha_t (1 - exp(-h)) D,
  D = x0_s + (h / (2 h_prev)) (x0_s - x0_prev),

the first-order part being exactly DDIM (eta = 0) and the second term a
multistep correction from the previous step's data prediction ``x0_prev``
(``r = h_prev / h`` in the paper's notation). The first step has no previous
prediction and the last step, to the clean image (``sigma = 0``, ``h``
infinite), returns ``x0`` itself: both are first order, which is also what
the "lower order final" trick asks for at few steps.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm
from jax.experimental import multihost_utils

from solar_jax import configuration
from solar_jax.configuration import SAMPLERS, SPACINGS
from solar_jax.diffusion import losses, schedules
from solar_jax.errors import ConfigError

# Samplers that visit ``timesteps(T, num_steps, spacing)``; DDPM visits all T.
STEPPED = ("ddim", "dpmpp_2m")

ModelFn = Callable[[Any, jax.Array, jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class LinenModelFn:
  """Hashable ``model_fn`` for a Flax Linen module (so jitted samplers cache across calls)."""

  module: Any

  def __call__(self, params, x, t, y):
    return self.module.apply({"params": params}, x, t, y, train=False)


class SamplerSpec(NamedTuple):
  """The static (compile-time) choices of a sampler run.

  Attributes:
    sampler: 'ddim', 'dpmpp_2m' (DPM-Solver++(2M), deterministic) or 'ddpm'
      (ancestral, all T steps).
    num_steps: DDIM / DPM-Solver++ steps in 1..T (ignored by DDPM).
    spacing: their timestep spacing, 'uniform' or 'quadratic'.
    prediction: what the model outputs, 'eps' or 'v'.
    clip_x0: clip the predicted clean image to [-1, 1] at every step.
    guided: evaluate conditional and unconditional outputs (one 2B forward)
      and mix them with the guidance scale; False evaluates the conditional
      model only (the same as a guidance scale of 1, at half the cost).
  """

  sampler: str = "ddim"
  num_steps: int = 50
  spacing: str = "uniform"
  prediction: str = "eps"
  clip_x0: bool = False
  guided: bool = True

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, guided: bool | None = None):
    """From ``config.sampling`` and ``config.diffusion``; ``guided`` defaults to scale != 1."""
    s = config.sampling
    if guided is None:
      guided = float(s.guidance_scale) != 1.0
    return cls(
      sampler=s.sampler,
      num_steps=int(s.num_steps),
      spacing=s.spacing,
      prediction=config.diffusion.prediction,
      clip_x0=bool(s.clip_x0),
      guided=bool(guided),
    )


def recorded_settings(config: ml_collections.ConfigDict) -> dict:
  """How a sampled set is drawn, as written beside its images: the effective values.

  DDPM runs all ``num_timesteps`` steps and is DDIM with eta = 1, whatever
  ``sampling.num_steps`` and ``sampling.eta`` say; DPM-Solver++(2M) adds no
  noise whatever ``sampling.eta`` says (recorded 0). So two sets drawn alike
  record alike.
  """
  s = config.sampling
  ddpm = s.sampler == "ddpm"
  eta = {"ddpm": 1.0, "dpmpp_2m": 0.0}.get(s.sampler, float(s.eta))
  return {
    "sampler": s.sampler,
    "num_steps": int(config.diffusion.num_timesteps if ddpm else s.num_steps),
    "eta": eta,
    "guidance_scale": float(s.guidance_scale),
    "seed": int(s.seed),
  }


# sampling.* fields that change no image of a set: how many images, how they are batched
# and written. Every other sampling field (and any added later) changes the images, so it
# is part of a sample set's key (``image_settings``); a test flips each one.
NOT_IMAGE_FIELDS = ("batch_size", "per_class", "counts", "max_images", "write_fits")


def image_settings(config: ml_collections.ConfigDict) -> dict:
  """Every setting that changes the images of a sampled set, besides the model's step.

  The effective values of ``recorded_settings`` (so two sets drawn alike key alike)
  plus every other ``sampling`` field not in ``NOT_IMAGE_FIELDS`` and the model's
  prediction target; per-image noise keys make the batch size irrelevant.
  """
  fields = configuration.depends_on(
    config, ("sampling.*",), exclude=tuple(f"sampling.{k}" for k in NOT_IMAGE_FIELDS)
  )
  settings = {k.removeprefix("sampling."): v for k, v in fields.items()}
  settings.update(recorded_settings(config))
  settings["prediction"] = config.diffusion.prediction
  return settings


def _check_spec(spec: SamplerSpec, num_timesteps: int) -> None:
  if spec.sampler not in SAMPLERS:
    raise ConfigError(
      f"sampling.sampler={spec.sampler!r} is not one of {', '.join(map(repr, SAMPLERS))}."
    )
  if spec.sampler in STEPPED:
    timesteps(num_timesteps, spec.num_steps, spec.spacing)  # Validates steps and spacing.


def timesteps(num_timesteps: int, num_steps: int, spacing: str = "uniform") -> np.ndarray:
  """The strictly increasing timesteps (int32 [num_steps]) a DDIM run visits; last = T - 1."""
  if not 1 <= num_steps <= num_timesteps:
    raise ConfigError(
      f"sampling.num_steps={num_steps} must lie in [1, diffusion.num_timesteps={num_timesteps}]."
    )
  frac = np.arange(1, num_steps + 1, dtype=np.float64) / num_steps
  if spacing == "uniform":
    seq = np.round(frac * num_timesteps).astype(np.int64) - 1
  elif spacing == "quadratic":
    seq = np.ceil(frac**2 * num_timesteps).astype(np.int64) - 1
    for i in range(1, num_steps):  # Early quadratic steps can collide; push them apart.
      seq[i] = max(seq[i], seq[i - 1] + 1)
  else:
    raise ConfigError(
      f"sampling.spacing={spacing!r} is not one of {', '.join(map(repr, SPACINGS))}."
    )
  if seq[0] < 0 or seq[-1] != num_timesteps - 1 or np.any(np.diff(seq) <= 0):
    raise AssertionError(f"bad timestep sequence for T={num_timesteps}, S={num_steps}: {seq}")
  return seq.astype(np.int32)


def guided_output(model_fn, params, x, t, labels, guidance_scale, *, num_classes, guided):
  """Model output at ``(x, t)`` with classifier-free guidance.

  ``out = out_u + w (out_c - out_u)``, with conditional and unconditional
  (null class ``num_classes``) outputs from one batched forward of 2B images.
  The mix is the same whether the output is eps or v (both are affine in the
  output at fixed ``x_t``).
  """
  b = x.shape[0]
  t_b = jnp.full((b,), t, jnp.int32) if jnp.ndim(t) == 0 else t
  if not guided:
    return model_fn(params, x, t_b, labels).astype(jnp.float32)
  null = jnp.full_like(labels, num_classes)
  out = model_fn(
    params,
    jnp.concatenate([x, x]),
    jnp.concatenate([t_b, t_b]),
    jnp.concatenate([labels, null]),
  ).astype(jnp.float32)
  out_c, out_u = out[:b], out[b:]
  return out_u + guidance_scale * (out_c - out_u)


def _eps_x0(output, x, sqrt_abar, sqrt_1m_abar, spec: SamplerSpec):
  """(eps, x0) from the model output; with clipping, eps is recomputed from the clipped x0."""
  eps, x0 = losses.output_to_eps_x0(output, x, sqrt_abar, sqrt_1m_abar, spec.prediction)
  if spec.clip_x0:
    x0 = jnp.clip(x0, -1.0, 1.0)
    eps = (x - sqrt_abar * x0) / sqrt_1m_abar
  return eps, x0


def per_image_keys(key: jax.Array, indices: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(initial-noise keys [B], step-noise keys [B]) of the images ``indices`` of run ``key``."""
  image_keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, indices)
  pairs = jax.vmap(jax.random.split)(image_keys)
  return pairs[:, 0], pairs[:, 1]


def _step_noise(step_keys, t, shape):
  return jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, t), shape))(step_keys)


def sample_from(
  model_fn: ModelFn,
  params,
  schedule: schedules.Schedule,
  x_T: jax.Array,
  step_keys: jax.Array,
  labels: jax.Array,
  guidance_scale,
  eta,
  *,
  spec: SamplerSpec,
  num_classes: int,
) -> jax.Array:
  """Runs the reverse process from ``x_T`` [B,H,W,C] to clean images (not jitted itself).

  DPM-Solver++(2M) is delegated to ``dpm_solver_2m_from`` (it ignores
  ``step_keys`` and ``eta``).

  Args:
    model_fn: ``(params, x, t, y) -> eps or v``.
    params: passed to ``model_fn``.
    schedule: the diffusion Schedule the model was trained with.
    x_T: the initial latents.
    step_keys: [B] keys for the per-step noise (unused when DDIM eta = 0).
    labels: [B] int32 class labels (``num_classes`` = null class).
    guidance_scale: CFG scale ``w`` (traced); ignored when ``spec.guided`` is False.
    eta: DDIM stochasticity in [0, 1] (traced); ignored by DDPM.
    spec: static sampler choices.
    num_classes: number of real classes (the null class index).

  Returns:
    float32 [B,H,W,C] samples.
  """
  num_timesteps = schedule.num_timesteps
  _check_spec(spec, num_timesteps)
  if spec.sampler == "dpmpp_2m":
    return dpm_solver_2m_from(
      model_fn,
      params,
      schedule,
      x_T,
      labels,
      guidance_scale,
      spec=spec,
      num_classes=num_classes,
    )
  shape = x_T.shape[1:]
  abar_all = schedule.alphas_cumprod
  if spec.sampler == "ddim":
    seq = timesteps(num_timesteps, spec.num_steps, spec.spacing)
    prev = np.concatenate([[-1], seq[:-1]]).astype(np.int32)
  else:
    seq = np.arange(num_timesteps, dtype=np.int32)
    prev = seq - 1
  # Per-step coefficients, computed once outside the loop; iterate noisiest first.
  t_arr = jnp.asarray(seq[::-1])
  prev_np = prev[::-1]
  abar = abar_all[t_arr]
  abar_prev = jnp.where(jnp.asarray(prev_np) >= 0, abar_all[jnp.maximum(prev_np, 0)], 1.0)
  sqrt_abar, sqrt_1m_abar = jnp.sqrt(abar), jnp.sqrt(1.0 - abar)
  if spec.sampler == "ddim":
    eta = jnp.asarray(eta, jnp.float32)
    sigma = eta * jnp.sqrt((1.0 - abar_prev) / (1.0 - abar) * (1.0 - abar / abar_prev))
    coef_x0 = jnp.sqrt(abar_prev)
    coef_eps = jnp.sqrt(jnp.maximum(1.0 - abar_prev - sigma**2, 0.0))
    coefs = (coef_x0, coef_eps, sigma)
  else:
    # Posterior q(x_{t-1} | x_t, x0): mean coef1 x0 + coef2 x_t; no noise at t = 0.
    std = jnp.where(t_arr > 0, jnp.exp(0.5 * schedule.posterior_log_variance_clipped[t_arr]), 0.0)
    coefs = (schedule.posterior_mean_coef1[t_arr], schedule.posterior_mean_coef2[t_arr], std)

  def step(x, inputs):
    t, sa, s1a, c1, c2, noise_scale = inputs
    out = guided_output(
      model_fn, params, x, t, labels, guidance_scale, num_classes=num_classes, guided=spec.guided
    )
    eps, x0 = _eps_x0(out, x, sa, s1a, spec)
    if spec.sampler == "ddim":
      mean = c1 * x0 + c2 * eps
    else:
      mean = c1 * x0 + c2 * x
    # Deterministic steps (DDIM eta = 0, DDPM's last step) skip drawing noise.
    z = jax.lax.cond(
      noise_scale > 0, lambda: _step_noise(step_keys, t, shape), lambda: jnp.zeros_like(x)
    )
    return mean + noise_scale * z, None

  x, _ = jax.lax.scan(step, x_T.astype(jnp.float32), (t_arr, sqrt_abar, sqrt_1m_abar, *coefs))
  return x


def dpm_solver_2m_coefficients(
  abar_all: jax.Array, seq: np.ndarray
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Per-step coefficients of DPM-Solver++(2M) over ``seq``, noisiest step first.

  Step ``k`` goes from ``t = seq[::-1][k]`` to the next visited timestep (the
  clean image after the last). Returns float32 [S] arrays ``(ratio, coef_d,
  corr)`` with ``x_next = ratio x + coef_d (x0 + corr (x0 - x0_prev))``:
  ``ratio = sigma_next / sigma``, ``coef_d = alpha_next (1 - exp(-h))`` and
  ``corr = h / (2 h_prev)``, 0 at the first and the last step.

  Args:
    abar_all: the schedule's alphas_cumprod [T] (traced).
    seq: the visited timesteps, increasing (``timesteps``).
  """
  t_arr = jnp.asarray(seq[::-1])
  nxt = np.concatenate([seq[:-1][::-1], [-1]]).astype(np.int32)  # -1: the clean image.
  abar = abar_all[t_arr]
  abar_next = jnp.where(jnp.asarray(nxt) >= 0, abar_all[jnp.maximum(nxt, 0)], 1.0)
  alpha, sigma = jnp.sqrt(abar), jnp.sqrt(1.0 - abar)
  alpha_next, sigma_next = jnp.sqrt(abar_next), jnp.sqrt(1.0 - abar_next)
  ratio = sigma_next / sigma
  # alpha_next exp(-h) = alpha sigma_next / sigma: finite at the clean end (it is 0 there).
  coef_d = alpha_next - alpha * ratio
  # lambda = log(alpha / sigma) = 0.5 log(abar / (1 - abar)); the clean end's (+inf) is
  # never used: its step is first order.
  lam = 0.5 * jnp.log(abar / (1.0 - abar))
  h = lam[1:] - lam[:-1]  # Steps 0..S-2 (each ends on a visited timestep).
  corr = jnp.zeros_like(ratio)
  if len(seq) > 2:
    corr = corr.at[1:-1].set(h[1:] / (2.0 * h[:-1]))
  return ratio, coef_d, corr


def dpm_solver_2m_from(
  model_fn: ModelFn,
  params,
  schedule: schedules.Schedule,
  x_T: jax.Array,
  labels: jax.Array,
  guidance_scale,
  *,
  spec: SamplerSpec,
  num_classes: int,
) -> jax.Array:
  """DPM-Solver++(2M) from ``x_T`` [B,H,W,C] over ``timesteps(T, spec.num_steps, spec.spacing)``.

  Deterministic, one (guided) model evaluation per step; ``spec.clip_x0``
  clips the data prediction before it enters the update (the thresholding
  that the data-prediction form allows). The scan carries the previous data
  prediction for the multistep correction. Arguments as for ``sample_from``.
  """
  seq = timesteps(schedule.num_timesteps, spec.num_steps, spec.spacing)
  abar_all = schedule.alphas_cumprod
  t_arr = jnp.asarray(seq[::-1])
  abar = abar_all[t_arr]
  coefs = dpm_solver_2m_coefficients(abar_all, seq)

  def step(carry, inputs):
    x, x0_prev = carry
    t, a, ratio, coef_d, corr = inputs
    out = guided_output(
      model_fn, params, x, t, labels, guidance_scale, num_classes=num_classes, guided=spec.guided
    )
    _, x0 = _eps_x0(out, x, jnp.sqrt(a), jnp.sqrt(1.0 - a), spec)
    d = x0 + corr * (x0 - x0_prev)
    return (ratio * x + coef_d * d, x0), None

  x = x_T.astype(jnp.float32)
  (x, _), _ = jax.lax.scan(step, (x, jnp.zeros_like(x)), (t_arr, abar, *coefs))
  return x


# ---------------------------------------------------------- jitted entry points ---


@functools.partial(
  jax.jit,
  static_argnames=("model_fn", "spec", "num_classes", "image_shape", "out_sharding"),
)
def sample_batch(
  model_fn: ModelFn,
  params,
  schedule: schedules.Schedule,
  key: jax.Array,
  indices: jax.Array,
  labels: jax.Array,
  guidance_scale,
  eta,
  *,
  spec: SamplerSpec,
  num_classes: int,
  image_shape: tuple[int, ...],
  out_sharding=None,
) -> jax.Array:
  """Samples images ``indices`` [B] of the run ``key``; image i depends only on (key, i).

  Compiled once per (model_fn, spec, image_shape, batch shape, shardings);
  params, schedule, key, labels, guidance scale and eta are traced.
  """
  init_keys, step_keys = per_image_keys(key, indices)
  x_T = jax.vmap(lambda k: jax.random.normal(k, image_shape))(init_keys)
  if out_sharding is not None:
    x_T = jax.lax.with_sharding_constraint(x_T, out_sharding)
  x = sample_from(
    model_fn,
    params,
    schedule,
    x_T,
    step_keys,
    labels,
    guidance_scale,
    eta,
    spec=spec,
    num_classes=num_classes,
  )
  if out_sharding is not None:
    x = jax.lax.with_sharding_constraint(x, out_sharding)
  return x


# ------------------------------------------------------------- driver ---


def _global_array(values: np.ndarray, sharding):
  """A global array from a host array that every process holds in full."""
  if sharding is None:
    return jnp.asarray(values)
  return jax.make_array_from_callback(values.shape, sharding, lambda index: values[index])


def _num_shards(sharding) -> int:
  """Into how many parts ``sharding`` splits a batch's leading dimension."""
  devices = len(sharding.device_set)
  return devices // sharding.shard_shape((devices,))[0]


def _to_host(x: jax.Array) -> np.ndarray:
  if x.is_fully_addressable:
    return np.asarray(jax.device_get(x))
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def sample_images(
  model_fn: ModelFn,
  params,
  schedule: schedules.Schedule,
  key: jax.Array,
  labels,
  *,
  spec: SamplerSpec,
  num_classes: int,
  image_shape: tuple[int, ...],
  batch_size: int,
  guidance_scale: float = 1.0,
  eta: float = 0.0,
  sharding: jax.sharding.NamedSharding | None = None,
  progress: bool = False,
) -> np.ndarray:
  """Samples ``len(labels)`` images in batch groups, split as ``sharding`` splits a batch.

  Image ``i`` is a function of ``(key, i, labels[i])`` only: the same seed
  gives the same images on 1 or 8 devices and for any ``batch_size``. The last
  partial batch is padded (with copies of label 0) and the padding dropped.

  Args:
    model_fn, params, schedule, spec, num_classes: as for ``sample_from``.
    key: the run's root key.
    labels: int [N] class per image.
    image_shape: (H, W, C).
    batch_size: images per batch group (global); rounded up to the number of
      batch shards, and lowered to N (rounded up) when N is smaller.
    guidance_scale, eta: traced CFG scale and DDIM eta.
    sharding: how a batch [B, ...] is split over devices (e.g.
      ``parallel.data_sharding(mesh)``); None = the default device.
    progress: show a tqdm bar over batches.

  Returns:
    float32 numpy [N, H, W, C] on every process.
  """
  labels = np.asarray(labels, dtype=np.int32).reshape(-1)
  n = labels.shape[0]
  if n == 0:
    return np.zeros((0, *image_shape), np.float32)
  if labels.min() < 0 or labels.max() > num_classes:
    raise ValueError(f"labels must lie in [0, {num_classes}] ({num_classes} = null class).")
  shards = 1 if sharding is None else _num_shards(sharding)
  round_up = lambda v: shards * math.ceil(v / shards)  # noqa: E731
  batch = min(round_up(batch_size), round_up(n))
  num_batches = math.ceil(n / batch)
  if sharding is not None:  # Every process holds the key whole.
    key = jax.device_put(
      key, jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
    )
  scale = jnp.asarray(guidance_scale, jnp.float32)
  eta = jnp.asarray(eta, jnp.float32)

  bar = None
  if progress:
    bar = tqdm.tqdm(total=n, desc="sample", unit="img", dynamic_ncols=True)
  out = np.empty((num_batches * batch, *image_shape), np.float32)
  pending = None  # Dispatch batch g+1 before reading batch g back.
  for g in range(num_batches + 1):
    current = None
    if g < num_batches:
      idx = np.arange(g * batch, (g + 1) * batch, dtype=np.int32)
      lab = np.zeros(batch, np.int32)
      valid = idx < n
      lab[valid] = labels[idx[valid]]
      current = (
        g,
        sample_batch(
          model_fn,
          params,
          schedule,
          key,
          _global_array(idx, sharding),
          _global_array(lab, sharding),
          scale,
          eta,
          spec=spec,
          num_classes=num_classes,
          image_shape=tuple(image_shape),
          out_sharding=sharding,
        ),
      )
    if pending is not None:
      pg, arr = pending
      out[pg * batch : (pg + 1) * batch] = _to_host(arr)
      if bar is not None:
        bar.update(min(batch, n - pg * batch))
    pending = current
  if bar is not None:
    bar.close()
  return out[:n]
