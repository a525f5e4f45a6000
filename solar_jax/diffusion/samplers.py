"""DDIM, DPM-Solver++(2M) and ancestral DDPM samplers with classifier-free guidance.

The model enters as ``model_fn(params, x [B,H,W,C], t [B] int32, y [B] int32)
-> output`` (eps or v, see ``losses``), so the samplers run as well on a UNet
as on an analytic denoiser (tests). Each sampler is one jitted function whose
time loop is a ``lax.scan``; the per-step coefficients are gathered from the
schedule once, before the loop. The guidance scale and DDIM's eta are traced
arguments: changing them does not recompile. ``SAMPLERS`` lists the samplers,
each with its recipe (default spacing and final step, recommended steps;
measured in benchmarks/RESULTS.md, "Each sampler's timestep recipe"), and
``timesteps.SPACINGS`` the timestep placements: adding a sampler touches this module
only, a placement ``timesteps.py`` only.

Randomness is per image: image ``i`` of a run with key ``k`` draws its initial
noise and every step's noise from ``fold_in(k, i)`` (split into an initial and
a per-step stream; the step noise at timestep ``t`` is ``fold_in(stream, t)``).
A run therefore gives the same images whatever the batch size, the padding of
the last batch or the number of devices, and DDIM with ``eta = 1`` over all
``T`` steps draws exactly the noise that DDPM draws.

Timesteps are 0-based integers (``t = T - 1`` is the noisiest; the model knows
integer timesteps only, so every placement is rounded to them). A stepped
sampler visits ``t_1 < ... < t_S = T - 1`` and returns the x0 prediction at
``t_1``: S model evaluations. The final step is 'jump' (``t_1`` where the
spacing puts it: a first-order jump to the clean image) or 'zero' (``t_1 = 0``:
the last evaluation denoises from the least noisy timestep). 'uniform' +
'jump' is the trailing spacing of Lin et al. 2024; 'logsnr' is DPM-Solver's,
uniform in ``lambda = log(alpha / sigma)`` from ``lambda(T - 1)`` to
``lambda(0)`` at the timesteps of nearest lambda.

DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) is deterministic, one model
evaluation per step. In log-SNR (``alpha = sqrt(abar)``, ``sigma = sqrt(1 -
abar)``) a step ``s -> t`` of length ``h = lambda_t - lambda_s`` is

  x_t = (sigma_t / sigma_s) x_s + alpha_t (1 - exp(-h)) D,
  D = x0_s + (h / (2 h_prev)) (x0_s - x0_prev),

the first-order part being exactly DDIM (eta = 0) and the second term a
multistep correction from the previous step's data prediction ``x0_prev``.
The first step has no previous prediction and the last step, to the clean
image (``h`` infinite), returns ``x0`` itself: both are first order.
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
from solar_jax.diffusion import losses, schedules
from solar_jax.diffusion.timesteps import (  # noqa: F401 - part of the samplers' interface
  DEFAULT,
  FINAL_STEPS,
  SPACINGS,
  timesteps,
)
from solar_jax.errors import ConfigError

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
    sampler: a key of ``SAMPLERS``: 'ddim', 'dpmpp_2m' or 'ddpm' (all T steps).
    num_steps: DDIM / DPM-Solver++ steps in 1..T (ignored by DDPM).
    spacing, final_step: a key of ``SPACINGS`` and 'jump' or 'zero' (module
      docstring), or 'default': the sampler's recipe.
    prediction: what the model outputs, 'eps' or 'v'.
    clip_x0: clip the predicted clean image to [-1, 1] at every step.
    guided: evaluate conditional and unconditional outputs (one 2B forward)
      and mix them with the guidance scale; False evaluates the conditional
      model only (the same as a guidance scale of 1, at half the cost).
  """

  sampler: str = "ddim"
  num_steps: int = 50
  spacing: str = DEFAULT
  final_step: str = DEFAULT
  prediction: str = "eps"
  clip_x0: bool = False
  guided: bool = True

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, guided: bool | None = None):
    """From ``config.sampling`` and ``config.diffusion``, resolved; ``guided`` defaults to scale != 1."""
    s = config.sampling
    if guided is None:
      guided = float(s.guidance_scale) != 1.0
    fields = (s.sampler, int(s.num_steps), s.spacing, s.final_step, config.diffusion.prediction)
    return cls(*fields, clip_x0=bool(s.clip_x0), guided=bool(guided)).resolved()

  def resolved(self) -> SamplerSpec:
    """This spec with 'default' replaced by the sampler's recipe, every name checked."""
    recipe = _recipe(self.sampler)
    if not recipe.stepped:  # DDPM visits every timestep down to t = 0, whatever they say.
      return self._replace(spacing="uniform", final_step="zero")
    spacing = recipe.spacing if self.spacing == DEFAULT else self.spacing
    final = recipe.final_step if self.final_step == DEFAULT else self.final_step
    _choice(spacing, "sampling.spacing", tuple(SPACINGS))
    _choice(final, "sampling.final_step", FINAL_STEPS)
    return self._replace(spacing=spacing, final_step=final)


def _choice(value, field, allowed):
  if value not in allowed:
    raise ConfigError(f"{field}={value!r} is not one of {', '.join(map(repr, allowed))}.")


def _recipe(name: str) -> Sampler:
  _choice(name, "sampling.sampler", tuple(SAMPLERS))
  return SAMPLERS[name]


def recorded_settings(config: ml_collections.ConfigDict) -> dict:
  """How a sampled set is drawn, as written beside its images: the effective values.

  DDPM runs all ``num_timesteps`` steps down to t = 0 with eta = 1, whatever
  ``sampling`` says; DPM-Solver++(2M) adds no noise (eta recorded 0); 'default'
  is recorded as the recipe's values. So two sets drawn alike record alike.
  """
  s = config.sampling
  recipe = _recipe(s.sampler)
  spec = SamplerSpec.from_config(config)
  return {
    "sampler": s.sampler,
    "num_steps": int(s.num_steps if recipe.stepped else config.diffusion.num_timesteps),
    "eta": float(s.eta if recipe.eta is None else recipe.eta),
    "spacing": spec.spacing,
    "final_step": spec.final_step,
    "guidance_scale": float(s.guidance_scale),
    "seed": int(s.seed),
  }


# sampling.* fields that change no image of a set: how many images, how they are batched
# and written. Every other sampling field (and any added later) changes the images, so it
# is part of a sample set's key (``image_settings``); a test flips each one.
NOT_IMAGE_FIELDS = ("batch_size", "per_class", "counts", "max_images", "write_fits")
# sampling.* fields a class model never reads (its sets keep the keys they had).
FLUX_FIELDS = ("fluxes", "flux_draw")


def image_settings(config: ml_collections.ConfigDict) -> dict:
  """Every setting that changes the images of a sampled set, besides the model's step.

  The effective values of ``recorded_settings`` (so two sets drawn alike key alike)
  plus every other ``sampling`` field not in ``NOT_IMAGE_FIELDS`` (nor, for a class
  model, ``FLUX_FIELDS``) and the model's prediction target; per-image noise keys make the batch size irrelevant.
  """
  not_read = NOT_IMAGE_FIELDS
  if config.model.get("conditioning", "class") != "flux":
    not_read += FLUX_FIELDS
  fields = configuration.depends_on(
    config, ("sampling.*",), exclude=tuple(f"sampling.{k}" for k in not_read)
  )
  settings = {k.removeprefix("sampling."): v for k, v in fields.items()}
  if not_read == NOT_IMAGE_FIELDS:
    settings["conditioning"] = "flux"
  settings.update(recorded_settings(config))
  settings["prediction"] = config.diffusion.prediction
  return settings


def visited_timesteps(schedule: schedules.Schedule, spec: SamplerSpec) -> jax.Array:
  """The timesteps ``spec`` visits on ``schedule`` (int32 [S] increasing; DDPM: all T)."""
  spec = spec.resolved()
  num_timesteps = schedule.num_timesteps
  if not _recipe(spec.sampler).stepped:
    return jnp.arange(num_timesteps, dtype=jnp.int32)
  return timesteps(
    num_timesteps, spec.num_steps, spec.spacing, spec.final_step, schedule.alphas_cumprod
  )


# ------------------------------------------------------------- samplers ---


def guided_output(model_fn, params, x, t, labels, guidance_scale, *, num_classes, guided):
  """Model output at ``(x, t)`` with classifier-free guidance.

  ``out = out_u + w (out_c - out_u)``, with conditional and unconditional
  (null class ``num_classes``; NaN for float labels, a flux model's log10 fluxes)
  outputs from one batched forward of 2B images.
  The mix is the same whether the output is eps or v (both are affine in the
  output at fixed ``x_t``).
  """
  b = x.shape[0]
  t_b = jnp.full((b,), t, jnp.int32) if jnp.ndim(t) == 0 else t
  if not guided:
    return model_fn(params, x, t_b, labels).astype(jnp.float32)
  null = jnp.full_like(labels, jnp.nan if labels.dtype == jnp.float32 else num_classes)
  out = model_fn(
    params,
    jnp.concatenate([x, x]),
    jnp.concatenate([t_b, t_b]),
    jnp.concatenate([labels, null]),
  ).astype(jnp.float32)
  out_c, out_u = out[:b], out[b:]
  return out_u + guidance_scale * (out_c - out_u)


def _denoiser(model_fn, params, labels, guidance_scale, spec: SamplerSpec, num_classes: int):
  """``(x, t, abar_t) -> (eps, x0)`` of the guided model; with clipping, eps follows the clipped x0."""

  def denoise(x, t, abar):
    out = guided_output(
      model_fn, params, x, t, labels, guidance_scale, num_classes=num_classes, guided=spec.guided
    )
    sa, s1a = jnp.sqrt(abar), jnp.sqrt(1.0 - abar)
    eps, x0 = losses.output_to_eps_x0(out, x, sa, s1a, spec.prediction)
    if spec.clip_x0:
      x0 = jnp.clip(x0, -1.0, 1.0)
      eps = (x - sa * x0) / s1a
    return eps, x0

  return denoise


def per_image_keys(key: jax.Array, indices: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(initial-noise keys [B], step-noise keys [B]) of the images ``indices`` of run ``key``."""
  image_keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, indices)
  pairs = jax.vmap(jax.random.split)(image_keys)
  return pairs[:, 0], pairs[:, 1]


def _step_noise(step_keys, t, shape):
  return jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, t), shape))(step_keys)


def _ancestral_loop(denoise, x_T, step_keys, t_arr, abar_arr, c_x0, c_eps, c_x, std):
  """``x <- c_x0 x0 + c_eps eps + c_x x + std z`` per visited timestep, noisiest first."""
  shape = x_T.shape[1:]

  def step(x, inputs):
    t, a, c1, c2, c3, noise_scale = inputs
    eps, x0 = denoise(x, t, a)
    # Deterministic steps (DDIM eta = 0, DDPM's last step) skip drawing noise.
    z = jax.lax.cond(
      noise_scale > 0, lambda: _step_noise(step_keys, t, shape), lambda: jnp.zeros_like(x)
    )
    return c1 * x0 + c2 * eps + c3 * x + noise_scale * z, None

  inputs = (t_arr, abar_arr, c_x0, c_eps, c_x, std)
  x, _ = jax.lax.scan(step, x_T.astype(jnp.float32), inputs)
  return x


def ddim_from(model_fn, params, schedule, x_T, seq, step_keys, labels, guidance_scale, eta, *,
              spec, num_classes):  # fmt: skip
  """DDIM (Song et al. 2021, eq. 12) over ``seq``; ``eta`` in [0, 1] (0: deterministic)."""
  abar_all = schedule.alphas_cumprod
  t_arr = seq[::-1]
  prev = jnp.concatenate([jnp.full((1,), -1, jnp.int32), seq[:-1]])[::-1]  # -1: clean image.
  abar = abar_all[t_arr]
  abar_prev = jnp.where(prev >= 0, abar_all[jnp.maximum(prev, 0)], 1.0)
  eta = jnp.asarray(eta, jnp.float32)
  sigma = eta * jnp.sqrt((1.0 - abar_prev) / (1.0 - abar) * (1.0 - abar / abar_prev))
  c_eps = jnp.sqrt(jnp.maximum(1.0 - abar_prev - sigma**2, 0.0))
  denoise = _denoiser(model_fn, params, labels, guidance_scale, spec, num_classes)
  zero = jnp.zeros_like(abar)
  return _ancestral_loop(denoise, x_T, step_keys, t_arr, abar, jnp.sqrt(abar_prev), c_eps, zero,
                         sigma)  # fmt: skip


def ddpm_from(model_fn, params, schedule, x_T, seq, step_keys, labels, guidance_scale, eta, *,
              spec, num_classes):  # fmt: skip
  """Ancestral DDPM over every timestep (``seq`` = all T): the posterior q(x_{t-1} | x_t, x0)."""
  t_arr = seq[::-1]
  std = jnp.where(t_arr > 0, jnp.exp(0.5 * schedule.posterior_log_variance_clipped[t_arr]), 0.0)
  denoise = _denoiser(model_fn, params, labels, guidance_scale, spec, num_classes)
  coef1, coef2 = schedule.posterior_mean_coef1[t_arr], schedule.posterior_mean_coef2[t_arr]
  abar = schedule.alphas_cumprod[t_arr]
  return _ancestral_loop(denoise, x_T, step_keys, t_arr, abar, coef1, jnp.zeros_like(abar), coef2,
                         std)  # fmt: skip


def dpm_solver_2m_coefficients(abar_all: jax.Array, seq) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Per-step coefficients of DPM-Solver++(2M) over ``seq``, noisiest step first.

  Step ``k`` goes from ``t = seq[::-1][k]`` to the next visited timestep (the
  clean image after the last). Returns float32 [S] arrays ``(ratio, coef_d,
  corr)`` with ``x_next = ratio x + coef_d (x0 + corr (x0 - x0_prev))``:
  ``ratio = sigma_next / sigma``, ``coef_d = alpha_next (1 - exp(-h))`` and
  ``corr = h / (2 h_prev)``, 0 at the first and the last step.
  ``abar_all`` [T] and the increasing ``seq`` may be traced.
  """
  seq = jnp.asarray(seq, jnp.int32)
  t_arr = seq[::-1]
  nxt = jnp.concatenate([seq[:-1][::-1], jnp.full((1,), -1, jnp.int32)])  # -1: the clean image.
  abar = abar_all[t_arr]
  abar_next = jnp.where(nxt >= 0, abar_all[jnp.maximum(nxt, 0)], 1.0)
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
  if seq.shape[0] > 2:
    corr = corr.at[1:-1].set(h[1:] / (2.0 * h[:-1]))
  return ratio, coef_d, corr


def dpm_solver_2m_from(model_fn, params, schedule, x_T, seq, step_keys, labels, guidance_scale,
                       eta, *, spec, num_classes):  # fmt: skip
  """DPM-Solver++(2M) over ``seq``, deterministic (ignores ``step_keys`` and ``eta``).

  ``spec.clip_x0`` clips the data prediction before it enters the update (the
  thresholding that the data-prediction form allows).
  """
  abar_all = schedule.alphas_cumprod
  t_arr = jnp.asarray(seq, jnp.int32)[::-1]
  coefs = dpm_solver_2m_coefficients(abar_all, seq)
  denoise = _denoiser(model_fn, params, labels, guidance_scale, spec, num_classes)

  def step(carry, inputs):
    x, x0_prev = carry
    t, a, ratio, coef_d, corr = inputs
    _, x0 = denoise(x, t, a)
    d = x0 + corr * (x0 - x0_prev)
    return (ratio * x + coef_d * d, x0), None

  x = x_T.astype(jnp.float32)
  (x, _), _ = jax.lax.scan(step, (x, jnp.zeros_like(x)), (t_arr, abar_all[t_arr], *coefs))
  return x


# ------------------------------------------------------------- registry ---


class Sampler(NamedTuple):
  """A sampler and its recipe: what 'default' means for it (RESULTS.md has the measurements)."""

  # (model_fn, params, schedule, x_T, seq, step_keys, labels, guidance_scale, eta, *,
  #  spec, num_classes) -> x0, over the visited timesteps seq.
  run: Callable
  stepped: bool  # Visits num_steps timesteps; False: all T (DDPM).
  spacing: str  # The default spacing and final step.
  final_step: str
  num_steps: int  # Recommended (tests hold it to its measured error; the config decides).
  eta: float | None  # The eta it always uses; None: sampling.eta.


SAMPLERS = {
  "ddim": Sampler(ddim_from, True, "quadratic", "jump", 50, None),
  "ddpm": Sampler(ddpm_from, False, "uniform", "zero", 1000, 1.0),
  "dpmpp_2m": Sampler(dpm_solver_2m_from, True, "quadratic", "jump", 15, 0.0),
}


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
  """Runs the reverse process from ``x_T`` [B,H,W,C] to float32 clean images (not jitted).

  ``model_fn(params, x, t, y)`` gives eps or v on the ``schedule`` it was trained
  with; ``step_keys`` [B] key the per-step noise (unused by deterministic
  samplers); ``labels`` [B] int32 (``num_classes`` = the null class); the CFG
  scale (ignored unless ``spec.guided``) and DDIM's ``eta`` are traced; 'default'
  in ``spec`` resolves to the sampler's recipe.
  """
  spec = spec.resolved()
  seq = visited_timesteps(schedule, spec)
  run = SAMPLERS[spec.sampler].run
  return run(model_fn, params, schedule, x_T, seq, step_keys, labels, guidance_scale, eta,
             spec=spec, num_classes=num_classes)  # fmt: skip


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


def batch_layout(n: int, batch_size: int, sharding=None) -> tuple[int, int]:
  """``(images per batch, number of batches)`` of ``n`` images drawn by ``sample_batches``:
  ``batch_size`` rounded up to the number of batch shards, lowered to ``n`` (rounded up)
  when ``n`` is smaller."""
  shards = 1 if sharding is None else _num_shards(sharding)
  round_up = lambda v: shards * math.ceil(v / shards)  # noqa: E731
  batch = min(round_up(batch_size), round_up(max(n, 1)))
  return batch, math.ceil(n / batch)


def _conditions(labels) -> np.ndarray:
  """int32 class labels, or float32 log10 fluxes (a flux model's; NaN = null) as given."""
  labels = np.asarray(labels).reshape(-1)
  return labels.astype(np.float32 if np.issubdtype(labels.dtype, np.floating) else np.int32)


def sample_images(model_fn: ModelFn, params, schedule, key, labels, **kwargs) -> np.ndarray:
  """Samples ``len(labels)`` images in batch groups, split as ``sharding`` splits a batch.

  Image ``i`` is a function of ``(key, i, labels[i])`` only: the same seed
  gives the same images on 1 or 8 devices and for any ``batch_size``. The last
  partial batch is padded (with copies of label 0) and the padding dropped.
  Arguments as for ``sample_batches`` (but ``skip``).

  Returns:
    float32 numpy [N, H, W, C] on every process.
  """
  labels = _conditions(labels)
  out = np.zeros((labels.shape[0], *kwargs["image_shape"]), np.float32)
  for _, start, images in sample_batches(model_fn, params, schedule, key, labels, **kwargs):
    out[start : start + len(images)] = images
  return out


def sample_batches(
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
  skip=(),
):
  """Yields ``(g, start, images)`` for batch ``g`` of ``batch_layout``, images ``start``
  to ``start + len(images)`` (float32 numpy [b, H, W, C] on every process), in order.

  Batch ``g`` holds images ``g * batch ...``: a function of ``(key, index, label)`` and
  of the batch size only, whatever batches ran before, so a run that stopped resumes by
  ``skip``-ping the batches it has (byte-identical images). Batch ``g + 1`` is dispatched
  before batch ``g`` is read back.

  Args:
    model_fn, params, schedule, spec, num_classes: as for ``sample_from``.
    key: the run's root key.
    labels: int [N] class per image, or float [N] log10 flux per image (a flux model).
    image_shape: (H, W, C).
    batch_size: images per batch group (global); see ``batch_layout``.
    guidance_scale, eta: traced CFG scale and DDIM eta.
    sharding: how a batch [B, ...] is split over devices (e.g.
      ``parallel.data_sharding(mesh)``); None = the default device.
    progress: show a tqdm bar over images (those of skipped batches counted as done).
    skip: indices of batches not to draw (every process must pass the same).
  """
  labels = _conditions(labels)
  n = labels.shape[0]
  if n == 0:
    return
  if labels.dtype == np.int32 and (labels.min() < 0 or labels.max() > num_classes):
    raise ValueError(f"labels must lie in [0, {num_classes}] ({num_classes} = null class).")
  batch, num_batches = batch_layout(n, batch_size, sharding)
  skip = {int(g) for g in skip}
  todo = [g for g in range(num_batches) if g not in skip]
  if sharding is not None:  # Every process holds the key whole.
    key = jax.device_put(
      key, jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
    )
  scale = jnp.asarray(guidance_scale, jnp.float32)
  eta = jnp.asarray(eta, jnp.float32)
  done = n - sum(min(batch, n - g * batch) for g in todo)
  bar = None
  if progress:
    bar = tqdm.tqdm(total=n, initial=done, desc="sample", unit="img", dynamic_ncols=True)

  def dispatch(g):
    idx = np.arange(g * batch, (g + 1) * batch, dtype=np.int32)
    lab = np.zeros(batch, labels.dtype)
    valid = idx < n
    lab[valid] = labels[idx[valid]]
    return sample_batch(
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
    )

  try:
    pending = None
    for g in [*todo, None]:
      current = None if g is None else (g, dispatch(g))
      if pending is not None:
        pg, arr = pending
        size = min(batch, n - pg * batch)
        images = _to_host(arr)[:size]
        if bar is not None:
          bar.update(size)
        yield pg, pg * batch, images
      pending = current
  finally:
    if bar is not None:
      bar.close()
