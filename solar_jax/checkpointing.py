"""Orbax checkpoints of a train state: save, resume, fall back.

Layout: ``workdir/checkpoints/<step>/{state,meta}``. Orbax writes each step
into a temporary directory and renames it when complete, so a run killed during
a save leaves the previous checkpoint as the latest complete one. A checkpoint
that is complete but unreadable (truncated or corrupted files) is skipped with
a warning, renamed ``<step>.unreadable`` so that the step can be saved again,
and the next older one is used.
"""

from __future__ import annotations

import json
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

from solar_jax import configuration, errors, parallel
from solar_jax import workdir as wd
from solar_jax.data import splits


def all_finite(tree) -> bool:
  """Whether every floating leaf of ``tree`` is finite (one device->host read)."""
  leaves = [
    x
    for x in jax.tree.leaves(tree)
    if hasattr(x, "dtype") and jax.numpy.issubdtype(x.dtype, jax.numpy.floating)
  ]
  if not leaves:
    return True
  return bool(_all_finite_leaves(leaves))


def _all_finite(leaves):
  return jax.numpy.all(jax.numpy.stack([jax.numpy.isfinite(x).all() for x in leaves]))


# At module level: compiled once per tree structure and sharding, not at every save; a
# reduction run at each save, compiled cheaply.
_all_finite_leaves = parallel.jit_run_once(_all_finite)


# The config fields that give a DDPM checkpoint's parameters their meaning: their shapes
# (model), what the network predicts at which noise level (diffusion) and for which
# images and classes (data). A run whose config differs in one of them cannot use the
# checkpoint. model.dtype, remat and dropout are compute choices over the same parameters.
_MODEL_COMPUTE_ONLY = ("dtype", "remat", "dropout")
_DIFFUSION_MEANING = (
  "schedule",
  "num_timesteps",
  "beta_start",
  "beta_end",
  "cosine_s",
  "prediction",
)
_DATA_MEANING = ("classes", "image_size", "channels", "clip_min", "clip_max")


def parameter_meaning(config: dict) -> dict[str, Any]:
  """``{"section.field": value}`` of the fields above, from a config as a dict (JSON types).

  A field of ``configuration.DEFAULT_WHEN_ABSENT`` that a stored config lacks (it was
  written before the field existed) counts with its default.
  """
  config = json.loads(json.dumps(config, default=list))  # Tuples -> lists, as stored.
  defaults = json.loads(configuration.to_json(configuration.default_config()))
  for field in configuration.DEFAULT_WHEN_ABSENT:
    section, key = field.split(".")
    if isinstance(config.get(section), dict):
      config[section].setdefault(key, defaults[section][key])
  fields = ("model.*", *(f"diffusion.{k}" for k in _DIFFUSION_MEANING))
  fields += tuple(f"data.{k}" for k in _DATA_MEANING)
  return configuration.depends_on(
    config, fields, exclude=tuple(f"model.{k}" for k in _MODEL_COMPUTE_ONLY)
  )


class Checkpointer:
  """Keeps the last ``keep`` checkpoints of a run under ``workdir/checkpoints``."""

  def __init__(self, workdir, *, keep: int, read_only: bool = False):
    self.directory = wd.checkpoints_dir(wd.absolute(workdir))
    self._read_only = read_only
    options = ocp.CheckpointManagerOptions(
      max_to_keep=keep,
      create=not read_only,
      read_only=read_only,
      enable_async_checkpointing=False,
    )
    self._manager = ocp.CheckpointManager(
      self.directory, options=options, item_names=("state", "meta")
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def stored_config(self) -> dict | None:
    """The config (a dict) saved with the newest checkpoint that has one; None if none has."""
    for step in reversed(self.all_steps()):
      path = self.directory / str(step) / "meta" / "metadata"
      try:
        stored = json.loads(json.loads(path.read_text())["config"])
      except (OSError, ValueError, KeyError, TypeError):
        continue  # Unreadable meta: restore() deals with that checkpoint.
      if isinstance(stored, dict):
        return stored
    return None

  def check_config(self, config) -> None:
    """Raises InputMismatchError, before anything is restored or renamed, when the
    checkpoints were made with other ``parameter_meaning`` fields than ``config``, or
    learned from other data (``data.splits.training_record``: dataset version, training
    months, embargo, label policy): a generator is bound to its training partition."""
    stored = self.stored_config()
    if stored is None:
      return
    try:
      have = parameter_meaning(stored)
    except (KeyError, AttributeError):
      return  # A config of another layout: leave it to restore().
    want = parameter_meaning(config.to_dict())
    changed = [
      f"{k}={have.get(k)!r} there, {want[k]!r} here" for k in want if have.get(k) != want[k]
    ]
    changed += splits.record_changes(
      splits.training_record(stored), splits.training_record(config.to_dict())
    )
    if changed:
      raise errors.InputMismatchError(
        f"the checkpoints in {self.directory} were made with another config or other data "
        f"({'; '.join(changed)}); run with the config and data they were trained with, or use "
        "another --workdir. Nothing was changed."
      )

  def save(self, step: int, state: Any, meta: dict | None = None, *, force: bool = True) -> None:
    """Saves ``state`` at ``step``; refuses a non-finite state, keeping the last good one."""
    if not all_finite(state):
      latest = self.latest_step()
      kept = (
        f"the last good checkpoint (step {latest}) is kept"
        if latest is not None
        else ("no checkpoint had been saved yet")
      )
      raise errors.NonFiniteError(
        f"the train state at step {step} holds NaN or Inf; not saved, {kept}."
      )
    meta = dict(meta or {}, step=int(step))
    self._manager.save(
      int(step),
      args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
      force=force,
    )
    self._manager.wait_until_finished()

  def restore(self, abstract_state: Any) -> tuple[Any, dict] | None:
    """Restores the newest readable checkpoint onto ``abstract_state``'s shardings.

    Newer checkpoints that cannot be used are renamed ``<step>.unreadable`` (kept
    for inspection, invisible to orbax) unless read-only, so that training can
    save those steps again after falling back.

    Returns:
      ``(state, meta)``, or None when the directory has no usable checkpoint.
    """
    unusable = []
    result = None
    for step in reversed(self.all_steps()):
      try:
        restored = self._manager.restore(
          step,
          args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()
          ),
        )
      except Exception as e:  # noqa: BLE001 - any failure means this step is unusable.
        logging.warning(
          "checkpoint %s/%d is unreadable (%s: %s); falling back to an older one.",
          self.directory,
          step,
          type(e).__name__,
          str(e).splitlines()[0][:200],
        )
        unusable.append(step)
        continue
      if not all_finite(restored.state):
        logging.warning(
          "checkpoint %s/%d holds non-finite values; falling back.", self.directory, step
        )
        unusable.append(step)
        continue
      result = restored.state, dict(restored.meta)
      break
    if unusable and not self._read_only:
      self._set_aside(unusable)
    return result

  def _set_aside(self, steps: list[int]) -> None:
    if jax.process_index() == 0:
      for step in steps:
        source = self.directory / str(step)
        target = self.directory / f"{step}.unreadable"
        n = 1
        while target.exists():
          target, n = self.directory / f"{step}.unreadable.{n}", n + 1
        source.rename(target)
        logging.warning("moved unreadable checkpoint %s to %s.", source, target)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("solar_jax: unreadable checkpoints set aside")
    self._manager.reload()

  def reached_preemption(self, step: int) -> bool:
    """Multi-host preemption notice from JAX's sync manager (False on one process)."""
    if jax.process_count() == 1:
      return False
    return self._manager.reached_preemption(step)

  def close(self) -> None:
    self._manager.close()


def host_copy(tree):
  """A NumPy copy of a (possibly sharded) pytree, e.g. for tests."""
  return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)
