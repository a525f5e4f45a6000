"""The denoising loss and the conversions between model outputs, eps and x0.

Two parameterisations (``config.diffusion.prediction``):

* ``'eps'`` (Ho et al. 2020): the model predicts the noise ``eps``.
* ``'v'`` (Salimans & Ho 2022): the model predicts
  ``v = sqrt(abar) eps - sqrt(1 - abar) x0``.

Both losses are the mean squared error of the prediction (the "simple"
objective), optionally weighted per timestep (``config.diffusion.loss_weighting``,
see ``loss_weights``); labels are replaced by the null class with probability
``config.diffusion.label_dropout`` so one network learns the conditional and
unconditional models used by classifier-free guidance.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections

from solar_jax.diffusion import schedules

PREDICTIONS = ("eps", "v")
LOSS_WEIGHTINGS = ("none", "min_snr")


def _check_prediction(prediction: str) -> None:
  if prediction not in PREDICTIONS:
    raise ValueError(
      f"diffusion.prediction={prediction!r} is not one of {', '.join(map(repr, PREDICTIONS))}."
    )


def output_to_eps_x0(output, x_t, sqrt_abar, sqrt_one_minus_abar, prediction: str):
  """Returns ``(eps, x0)`` implied by the model ``output`` at ``x_t``.

  ``sqrt_abar`` and ``sqrt_one_minus_abar`` broadcast against ``x_t`` (scalars
  inside a sampler step, [B,1,1,1] in the loss).
  """
  _check_prediction(prediction)
  if prediction == "eps":
    eps = output
    x0 = (x_t - sqrt_one_minus_abar * eps) / sqrt_abar
  else:
    x0 = sqrt_abar * x_t - sqrt_one_minus_abar * output
    eps = sqrt_one_minus_abar * x_t + sqrt_abar * output
  return eps, x0


def eps_x0_to_output(eps, x0, sqrt_abar, sqrt_one_minus_abar, prediction: str):
  """The model output (training target) for ``eps`` and ``x0``; inverse of the above."""
  _check_prediction(prediction)
  if prediction == "eps":
    return eps
  return sqrt_abar * eps - sqrt_one_minus_abar * x0


def loss_weights(snr, prediction: str, weighting: str, gamma: float = 5.0):
  """Per-example weights of the squared prediction error at signal-to-noise ratios ``snr``.

  'min_snr' is min-SNR-gamma (Hang et al. 2023): the error of the implied x0
  weighted by ``min(SNR, gamma)``. The squared eps error is ``SNR`` times the
  x0 error and the squared v error ``SNR + 1`` times, hence ``min(SNR, gamma) /
  SNR`` for eps and ``min(SNR, gamma) / (SNR + 1)`` for v. 'none' is 1.
  """
  _check_prediction(prediction)
  if weighting == "none":
    return jnp.ones_like(snr)
  if weighting != "min_snr":
    raise ValueError(
      f"diffusion.loss_weighting={weighting!r} is not one of "
      f"{', '.join(map(repr, LOSS_WEIGHTINGS))}."
    )
  clipped = jnp.minimum(snr, gamma)
  return clipped / snr if prediction == "eps" else clipped / (snr + 1.0)


def drop_labels(rng, labels, num_classes: int, rate: float):
  """Replaces each label by the null condition with probability ``rate``: the class
  ``num_classes`` for int labels, NaN for float ones (log10 fluxes)."""
  if rate <= 0:
    return labels
  drop = jax.random.bernoulli(rng, rate, labels.shape)
  null = jnp.nan if jnp.issubdtype(labels.dtype, jnp.floating) else num_classes
  return jnp.where(drop, null, labels).astype(labels.dtype)


def condition(batch: dict, conditioning: str):
  """What the UNet is conditioned on: int32 class labels, or float32 log10 fluxes
  (``batch["label_flux"]``, W m^-2) under ``model.conditioning='flux'``."""
  if conditioning == "flux":
    return jnp.log10(batch["label_flux"].astype(jnp.float32))
  return batch["label"].astype(jnp.int32)


def diffusion_loss(
  apply_fn: Callable,
  params,
  batch: dict,
  rng: jax.Array,
  schedule: schedules.Schedule,
  config: ml_collections.ConfigDict,
  train: bool = True,
):
  """Monte-Carlo estimate of the simple denoising loss on one batch.

  Args:
    apply_fn: ``(params, x, t, y, train, rngs) -> output`` (wraps ``model.apply``).
    params: model parameters.
    batch: ``{'image': [B,H,W,C] in [-1, 1], 'label': [B] int}`` (and 'label_flux': [B]
      W m^-2, the condition of a flux model).
    rng: a key; split here into timestep, noise, label-dropout and dropout streams.
    schedule: the diffusion Schedule.
    config: the full config (reads ``diffusion`` and ``data.classes``).
    train: enables label dropout and model dropout.

  Returns:
    ``(loss, metrics)``: scalar mean squared error of the prediction (each
    example weighted by ``loss_weights`` under 'min_snr'), and
    ``{'x0_mse': ...}``, the error of the implied clean image clipped to
    [-1, 1] (comparable across parameterisations; the clip keeps eps models
    at abar ~ 0 from dominating it).
  """
  prediction = config.diffusion.prediction
  num_classes = len(config.data.classes)
  x0 = batch["image"].astype(jnp.float32)
  labels = condition(batch, config.get("model", {}).get("conditioning", "class"))
  t_rng, noise_rng, label_rng, dropout_rng = jax.random.split(rng, 4)

  t = jax.random.randint(t_rng, (x0.shape[0],), 0, schedule.num_timesteps, dtype=jnp.int32)
  noise = jax.random.normal(noise_rng, x0.shape, jnp.float32)
  x_t = schedules.q_sample(schedule, x0, t, noise)
  if train:
    labels = drop_labels(label_rng, labels, num_classes, config.diffusion.label_dropout)

  output = apply_fn(params, x_t, t, labels, train, {"dropout": dropout_rng}).astype(jnp.float32)
  sa = schedules.extract(schedule.sqrt_alphas_cumprod, t, x0.ndim)
  s1a = schedules.extract(schedule.sqrt_one_minus_alphas_cumprod, t, x0.ndim)
  target = eps_x0_to_output(noise, x0, sa, s1a, prediction)
  weighting = config.diffusion.loss_weighting
  if weighting == "none":
    loss = jnp.mean((output - target) ** 2)
  else:
    snr = schedules.extract(schedules.snr(schedule), t, x0.ndim)
    weight = loss_weights(snr, prediction, weighting, config.diffusion.min_snr_gamma)
    loss = jnp.mean(weight * (output - target) ** 2)
  _, x0_pred = output_to_eps_x0(output, x_t, sa, s1a, prediction)
  x0_pred = jnp.clip(x0_pred, -1.0, 1.0)
  return loss, {"x0_mse": jnp.mean((x0_pred - x0) ** 2)}
