"""The DDPM's train state: parameters, EMA, optimiser, and how it is initialised and sharded.

One pytree (``TrainState``) that the trainer donates to its step, orbax saves
and restores, and sampling reads the EMA parameters of. ``abstract_train_state``
gives its shapes and shardings without allocating (for restoring a checkpoint
or lowering a step); ``init_train_state`` initialises it, sharded, in one jitted call.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from solar_jax import parallel
from solar_jax.models import unet


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  ema_params: Any
  opt_state: Any
  rng: jax.Array  # Raw uint32 key data; per step fold_in(step) gives the key.


def learning_rate_schedule(training: ml_collections.ConfigDict) -> optax.Schedule:
  """Linear warm-up to ``learning_rate``, then constant."""
  if training.warmup_steps == 0:
    return optax.constant_schedule(training.learning_rate)
  return optax.join_schedules(
    [
      optax.linear_schedule(0.0, training.learning_rate, training.warmup_steps),
      optax.constant_schedule(training.learning_rate),
    ],
    [training.warmup_steps],
  )


def create_optimizer(training: ml_collections.ConfigDict) -> optax.GradientTransformation:
  parts = []
  if training.grad_clip > 0:
    parts.append(optax.clip_by_global_norm(training.grad_clip))
  parts.append(
    optax.adamw(
      learning_rate_schedule(training), b1=0.9, b2=0.999, weight_decay=training.weight_decay
    )
  )
  return optax.chain(*parts)


def _init_state(rng, *, config, model, optimizer) -> TrainState:
  size, channels = config.data.image_size, config.data.channels
  x = jnp.zeros((1, size, size, channels), jnp.float32)
  t = jnp.zeros((1,), jnp.int32)
  y = jnp.zeros((1,), jnp.float32 if config.model.conditioning == "flux" else jnp.int32)
  params_rng, state_rng = jax.random.split(rng)
  params = model.init({"params": params_rng}, x, t, y, train=False)["params"]
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    ema_params=params,
    opt_state=optimizer.init(params),
    rng=jax.random.key_data(state_rng),
  )


def abstract_train_state(config, mesh):
  """Returns (abstract state with shardings, init program: root key -> state) without allocating.

  Remembered per (model, training and diffusion config, image shape, classes, mesh):
  what the state and its init depend on. Tracing the UNet's init takes about a second, and
  training, resuming, sampling and exporting in one process each ask for it.
  """
  d = config.data
  key = (
    json.dumps([d.image_size, d.channels, list(d.classes)]),
    *(config[k].to_json_best_effort(sort_keys=True) for k in ("model", "training", "diffusion")),
    mesh,
  )
  if key not in _ABSTRACT_STATES:
    if len(_ABSTRACT_STATES) >= 16:
      _ABSTRACT_STATES.clear()
    _ABSTRACT_STATES[key] = _abstract_train_state(copy.deepcopy(config), mesh)
  return _ABSTRACT_STATES[key]


_ABSTRACT_STATES: dict = {}


def _abstract_train_state(config, mesh):
  model = unet.create_model(config)
  optimizer = create_optimizer(config.training)
  init = functools.partial(_init_state, config=config, model=model, optimizer=optimizer)
  abstract = jax.eval_shape(init, jax.random.key(0))
  shardings = parallel.state_shardings(mesh, abstract)
  abstract = jax.tree.map(
    lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
  )
  # Run once per training: compiled cheaply (parallel.jit_run_once).
  return abstract, parallel.jit_run_once(init, out_shardings=shardings)


def init_train_state(config, mesh) -> TrainState:
  _, init = abstract_train_state(config, mesh)
  root = jax.random.fold_in(jax.random.key(config.seed), 0)  # Stream 0: model init.
  return init(root)
