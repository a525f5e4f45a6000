"""A real-only flux regressor: the classifier's backbone with a regression head on log flux.

Flux consistency of a flux-conditioned generator (issue 28) asks whether an image made
for a GOES flux shows that flux. The regressor is the flare classifier's ResNet
(``models/classifier.FlareClassifier``, ``classifier.stage_sizes``/``width``/
``stem_stride``/``dropout``) with one output: the log10 GOES 1-8 Å flux, centred on
C1 and scaled to decades / 2 (``_target``). It trains on real frames only (the training
split's images and their ``label_flux``), with AdamW at ``classifier.learning_rate``
and ``weight_decay`` on the squared error, for ``classifier.num_steps`` steps of
``classifier.batch_size`` (seeded); ``recovered_consistency`` scores the requested
against the recovered fluxes (``metrics.consistency.flux_consistency``), and the same
on real test frames is the floor.

``--mode=evaluate`` of a flux model trains it (or reuses it) and scores the samples, the
classifier's pool and the real test frames with it (``evaluation/flux_consistency``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from solar_jax.metrics import consistency
from solar_jax.models.classifier import FlareClassifier

_CENTRE, _SCALE = -6.0, 2.0  # log10 flux of C1; the target is (log10 F - centre) / scale.


def _target(fluxes) -> np.ndarray:
  return ((np.log10(np.asarray(fluxes, np.float64)) - _CENTRE) / _SCALE).astype(np.float32)


def create_regressor(config) -> FlareClassifier:
  """The classifier's backbone (``config.classifier``) with a one-output head."""
  c = config.classifier
  return FlareClassifier(
    num_classes=1,
    stage_sizes=tuple(c.stage_sizes),
    width=c.width,
    dropout=c.dropout,
    stem_stride=c.stem_stride,
  )


def _step(params, opt_state, images, targets, key, *, model, optimizer):
  def loss_fn(p):
    out = model.apply({"params": p}, images, train=True, rngs={"dropout": key})[:, 0]
    return jnp.mean((out - targets) ** 2)

  loss, grads = jax.value_and_grad(loss_fn)(params)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss


def train(config, images, fluxes, *, seed: int = 0, num_steps: int | None = None):
  """Parameters of the regressor trained on ``images`` (model space [N,H,W,C]) and their
  GOES ``fluxes`` (W m^-2); returns ``(params, losses per step)``."""
  c = config.classifier
  images = np.asarray(images, np.float32)
  targets = _target(fluxes)
  if len(images) != len(targets) or len(images) < 2 or not np.isfinite(targets).all():
    raise ValueError(f"flux regressor: {len(images)} images, {len(targets)} positive fluxes.")
  model = create_regressor(config)
  optimizer = optax.adamw(c.learning_rate, weight_decay=c.weight_decay)
  key = jax.random.key(seed)
  params = jax.jit(model.init)(key, images[:1])["params"]
  opt_state = optimizer.init(params)
  step = jax.jit(functools.partial(_step, model=model, optimizer=optimizer))
  rng = np.random.default_rng(seed)
  batch = min(int(c.batch_size), len(images))
  losses = []
  for i in range(int(num_steps or c.num_steps)):
    idx = rng.choice(len(images), batch, replace=False)
    params, opt_state, loss = step(
      params, opt_state, images[idx], targets[idx], jax.random.fold_in(key, i)
    )
    losses.append(float(loss))
  return params, np.array(losses)


def predict(config, params, images, batch_size: int = 256) -> np.ndarray:
  """The fluxes (W m^-2) the regressor reads from ``images`` (model space)."""
  model = create_regressor(config)
  apply = jax.jit(lambda p, x: model.apply({"params": p}, x)[:, 0])
  images = np.asarray(images, np.float32)
  out = [
    np.asarray(apply(params, images[i : i + batch_size])) for i in range(0, len(images), batch_size)
  ]
  return 10.0 ** (np.concatenate(out).astype(np.float64) * _SCALE + _CENTRE)


def recovered_consistency(config, params, images, requested, **kwargs) -> dict:
  """``flux_consistency`` of the ``requested`` fluxes and those read from ``images``."""
  return consistency.flux_consistency(requested, predict(config, params, images), **kwargs)
