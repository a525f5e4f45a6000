"""Orbax checkpoints of the train state: save, resume, fall back, load for inference.

Layout: ``workdir/checkpoints/<step>/{state,meta}``. Orbax writes each step
into a temporary directory and renames it when complete, so a run killed during
a save leaves the previous checkpoint as the latest complete one. A checkpoint
that is complete but unreadable (truncated or corrupted files) is skipped with
a warning, renamed ``<step>.unreadable`` so that the step can be saved again,
and the next older one is used.
"""

from __future__ import annotations

import fcntl
import os
import socket
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath


class NonFiniteStateError(RuntimeError):
  """Raised instead of saving a state with NaN or Inf in it."""


def all_finite(tree) -> bool:
  """Whether every floating leaf of ``tree`` is finite (one device->host read)."""
  leaves = [
    x
    for x in jax.tree.leaves(tree)
    if hasattr(x, "dtype") and jax.numpy.issubdtype(x.dtype, jax.numpy.floating)
  ]
  if not leaves:
    return True
  flags = jax.jit(
    lambda xs: jax.numpy.all(jax.numpy.stack([jax.numpy.isfinite(x).all() for x in xs]))
  )(leaves)
  return bool(flags)


class WorkdirBusyError(RuntimeError):
  """Another live process holds the workdir; the message names it."""


# Locks this process holds: path -> [fd, depth].
_HELD_LOCKS: dict[str, list[int]] = {}


class WorkdirLock:
  """An exclusive lock on ``workdir/.lock`` for local workdirs.

  ``flock`` is released by the kernel when the holder dies, so a crashed run
  never blocks the next one; a live one makes the second refuse, naming it.
  With ``reentrant=True`` a holder inside a process that already holds the lock
  (main.py around the trainer) joins it instead of refusing. Only process 0 of
  a multi-host run takes it: the others would refuse each other on a shared
  file system.
  """

  def __init__(self, workdir, *, reentrant: bool = False):
    self.path = epath.Path(workdir) / ".lock"
    self._reentrant = reentrant
    self._key = None

  def __enter__(self):
    if "://" in os.fspath(self.path) or jax.process_index() != 0:
      return self  # Cloud storage: rely on the scheduler to run one job.
    key = os.path.realpath(os.fspath(self.path))
    if self._reentrant and key in _HELD_LOCKS:
      _HELD_LOCKS[key][1] += 1
      self._key = key
      return self
    self.path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
      os.close(fd)
      raise WorkdirBusyError(
        f"workdir {self.path.parent} is in use by {holder}; stop it or choose another --workdir."
      ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
    _HELD_LOCKS[key] = [fd, 1]
    self._key = key
    return self

  def __exit__(self, *exc):
    if self._key is None:
      return
    held = _HELD_LOCKS[self._key]
    held[1] -= 1
    if held[1] == 0:
      del _HELD_LOCKS[self._key]
      fcntl.flock(held[0], fcntl.LOCK_UN)
      os.close(held[0])
    self._key = None


def absolute(path) -> epath.Path:
  """``path`` as an absolute path (orbax refuses relative ones); URLs unchanged."""
  path = epath.Path(path)
  return path if "://" in os.fspath(path) else epath.Path(os.path.abspath(path))


class Checkpointer:
  """Keeps the last ``keep`` checkpoints of a run under ``workdir/checkpoints``."""

  def __init__(self, workdir, *, keep: int, read_only: bool = False):
    self.directory = absolute(workdir) / "checkpoints"
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

  def save(self, step: int, state: Any, meta: dict | None = None, *, force: bool = True) -> None:
    """Saves ``state`` at ``step``; refuses a non-finite state, keeping the last good one."""
    if not all_finite(state):
      raise NonFiniteStateError(
        f"the train state at step {step} holds NaN or Inf; not saved, the last good "
        f"checkpoint (step {self.latest_step()}) is kept."
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
      from jax.experimental import multihost_utils

      multihost_utils.sync_global_devices("solar_jax: unreadable checkpoints set aside")
    self._manager.reload()

  def reached_preemption(self, step: int) -> bool:
    """Multi-host preemption notice from JAX's sync manager (False on one process)."""
    if jax.process_count() == 1:
      return False
    return self._manager.reached_preemption(step)

  def close(self) -> None:
    self._manager.close()


def require_checkpoint(workdir) -> epath.Path:
  """Returns ``workdir/checkpoints``, or raises FileNotFoundError if it holds no step."""
  directory = epath.Path(workdir) / "checkpoints"
  if not directory.exists() or not any(p.name.isdigit() for p in directory.iterdir()):
    raise FileNotFoundError(
      f"no checkpoint in {directory}: train first (--mode=train) with this workdir."
    )
  return directory


def load_inference_params(workdir, config, mesh=None) -> tuple[Any, int]:
  """Returns ``(ema_params, step)`` from the newest checkpoint in ``workdir``.

  Raises:
    FileNotFoundError: the workdir holds no checkpoint (train first).
  """
  from solar_jax import parallel, train  # train imports the model; avoid a cycle.

  directory = require_checkpoint(workdir)
  mesh = mesh or parallel.create_mesh(config.mesh)
  abstract_state, _ = train.abstract_train_state(config, mesh)
  checkpointer = Checkpointer(workdir, keep=config.training.keep_checkpoints, read_only=True)
  restored = checkpointer.restore(abstract_state)
  checkpointer.close()
  if restored is None:
    raise FileNotFoundError(f"no readable checkpoint in {directory}.")
  state, meta = restored
  return state.ema_params, int(meta["step"])


def host_copy(tree):
  """A NumPy copy of a (possibly sharded) pytree, e.g. for tests."""
  return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)
