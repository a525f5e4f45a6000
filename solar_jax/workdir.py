"""The workdir contract: every path a mode reads or writes, in one place.

```
workdir/
  .lock                         held by the running mode (``Lock``)
  config.json                   the resolved config of the last command (``write_config``)
  config_train.json             the config the model was trained with: written when a model
                                starts from step 0, never by a resumed run or another mode
  train_info.json               who trained it (date, version, commit, command, devices) and
                                the train split's frames per class (``train_info_path``)
  checkpoints/<step>/           orbax (``checkpoints_dir``)
  train_metrics.jsonl           one line per logged step (``history_path``)
  samples/<step>-<key>/         samples.npz, grid.png, fits/ (``samples_dir``); <key> names
                                the sampler settings (``sample_key``): runs with other
                                settings or another checkpoint never overwrite each other;
                                COMPLETE, written last, says the set is whole
  export/<step>/                EMA weights, config.json, MODEL_CARD.md (``export_dir``)
  classifier/                   metrics.json, predictions.csv, runs/<regime>/seed_<s>/ (its
                                synthetic pools are sample sets under samples/)
  eval/                         metrics.json, features, plots (``eval_dir``)
  report.md
```

All I/O goes through ``etils.epath``, so a workdir may be a local path or a
``gs://`` URL; npz files are written whole to a temporary name and then
renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket

import jax
import ml_collections
from etils import epath

from solar_jax import configuration, errors
from solar_jax.data import splits
from solar_jax.diffusion import samplers
from solar_jax.files import (  # noqa: F401 - the workdir's writers, re-exported
  append_text,
  is_link,
  read_npz,
  write_bytes,
  write_json,
  write_npz,
  write_text,
)

# --------------------------------------------------------------- paths ---


def absolute(path) -> epath.Path:
  """``path`` as an absolute path (orbax refuses relative ones); URLs unchanged."""
  path = epath.Path(path)
  return path if "://" in os.fspath(path) else epath.Path(os.path.abspath(path))


def config_path(workdir) -> epath.Path:
  return epath.Path(workdir) / "config.json"


def train_config_path(workdir) -> epath.Path:
  return epath.Path(workdir) / "config_train.json"


def train_info_path(workdir) -> epath.Path:
  return epath.Path(workdir) / "train_info.json"


def checkpoints_dir(workdir) -> epath.Path:
  return epath.Path(workdir) / "checkpoints"


def history_path(workdir) -> epath.Path:
  return epath.Path(workdir) / "train_metrics.jsonl"


def sample_key(config: ml_collections.ConfigDict, per_class=None) -> str:
  """What distinguishes one sampled set from another of the same step, as a folder name.

  A readable ``<sampler>-<steps>-eta<eta>-g<guidance>-s<seed>`` then ``-<hash>``: a short
  hash of ``samplers.image_settings`` (every setting that changes the images: spacing,
  x0 clipping, the model's source, ...) and of the data the generator learned from
  (dataset, fold, embargo, label), so sets that differ in any of them never share a
  folder. ``per_class``: counts a caller draws instead of the config's (the
  classifier's pools), part of the key so such a set never replaces ``--mode=sample``'s.
  """
  info = samplers.recorded_settings(config)
  readable = (
    f"{info['sampler']}-{info['num_steps']}-eta{info['eta']:g}"
    f"-g{info['guidance_scale']:g}-s{info['seed']}"
  )
  settings = samplers.image_settings(config)
  # The generator's data (data.splits.training_record), so that sets of generators bound to
  # other data (another fold, label or embargo) never share a folder; the fold by number
  # and without the dataset's version: both are known before the dataset is read.
  record = splits.training_record(config.to_dict())
  del record["provenance.version"]
  record["data.fold"] = record["data.fold"]["fold"]
  settings["trained_on"] = record
  if per_class is not None:  # Counts given by the caller (a classifier pool), not the config.
    settings["per_class"] = [int(n) for n in per_class]
  return f"{readable}-{configuration.digest(settings)}"


def samples_dir(workdir, step: int, key: str | None = None) -> epath.Path:
  """``samples/<step>-<key>/`` (``samples/<step>/`` without a key: runs before keys)."""
  name = str(int(step)) if key is None else f"{int(step)}-{key}"
  return epath.Path(workdir) / "samples" / name


def export_dir(workdir, step: int) -> epath.Path:
  """An inference checkpoint (``--mode=export``) of the EMA weights at ``step``."""
  return epath.Path(workdir) / "export" / str(int(step))


def classifier_dir(workdir) -> epath.Path:
  return epath.Path(workdir) / "classifier"


def classifier_run_dir(workdir, regime: str, seed: int) -> epath.Path:
  return classifier_dir(workdir) / "runs" / regime / f"seed_{seed}"


def eval_dir(workdir) -> epath.Path:
  return epath.Path(workdir) / "eval"


def report_path(workdir) -> epath.Path:
  return epath.Path(workdir) / "report.md"


def holds_nothing(workdir) -> bool:
  """Whether ``workdir`` holds no file but ``.lock`` and ``config.json`` (folders may be empty)."""
  root = epath.Path(workdir)
  return all(p.name in (".lock", "config.json") and p.parent == root for p in files(root))


def files(directory) -> list[epath.Path]:
  """Every file under ``directory`` (epath: local or gs://, where ``glob('**')`` is refused)."""
  return [top / name for top, _, names in epath.Path(directory).walk() for name in names]


# --------------------------------------------------------------- steps ---


def steps(directory, *, containing: str | None = None) -> list[int]:
  """Sorted steps of the ``<step>/`` subdirectories of ``directory`` (those holding ``containing``).

  Orbax's temporary ``<step>.orbax-checkpoint-tmp`` and set-aside ``<step>.unreadable``
  directories are not steps.
  """
  directory = epath.Path(directory)
  if not directory.exists():
    return []
  found = [
    int(p.name)
    for p in directory.iterdir()
    if p.name.isdigit() and (containing is None or (p / containing).exists())
  ]
  return sorted(found)


def require_checkpoint(workdir) -> epath.Path:
  """Returns ``workdir/checkpoints``, or raises MissingInputError if it holds no step."""
  directory = checkpoints_dir(workdir)
  if not steps(directory):
    raise errors.MissingInputError(
      f"no checkpoint in {directory}: train first (--mode=train) with this workdir."
    )
  return directory


_SAMPLES_NAME = re.compile(r"^(\d+)(?:-(.+))?$")  # <step> or <step>-<key>
SAMPLES_COMPLETE = "COMPLETE"  # The last file of a keyed sample set (sample.sample_and_write).


def sample_sets(workdir) -> list[tuple[int, str | None, epath.Path]]:
  """``(step, key, samples.npz)`` of every sampled set in ``workdir/samples``, by step."""
  root = epath.Path(workdir) / "samples"
  if not root.exists():
    return []
  found = []
  for p in root.iterdir():
    match = _SAMPLES_NAME.match(p.name)
    if match and (p / "samples.npz").exists():
      found.append((int(match.group(1)), match.group(2), p / "samples.npz"))
  return sorted(found, key=lambda f: (f[0], f[1] or ""))


def latest_samples(workdir, config: ml_collections.ConfigDict | None = None) -> epath.Path:
  """The newest-step ``samples.npz`` drawn with ``config``'s sampler settings.

  Without ``config``: the newest step of any settings. Sets written before folders
  had keys (``samples/<step>/``) are used when none has ``config``'s key.

  Raises:
    errors.MissingInputError: no such set (names the sets there are).
  """
  root = epath.Path(workdir) / "samples"
  found = sample_sets(workdir)
  if config is not None:
    key = sample_key(config)
    matching = [f for f in found if f[1] == key] or [f for f in found if f[1] is None]
    if not matching:
      there = ", ".join(f[2].parent.name for f in found) or "none"
      raise errors.MissingInputError(
        f"no {root}/<step>-{key}/samples.npz (sets there: {there}): run --mode=sample "
        "(or --mode=train) with these sampling settings first."
      )
    found = matching
  if not found:
    raise errors.MissingInputError(
      f"no {root}/<step>-<sampler settings>/samples.npz: run --mode=sample (or --mode=train) first."
    )
  step, key, path = found[-1]
  # Keyed sets end with COMPLETE; sets of the runs before keys (samples/<step>/) had none.
  if key is not None and not (path.parent / SAMPLES_COMPLETE).exists():
    raise errors.DamagedFileError(
      f"{path.parent} is incomplete (no {SAMPLES_COMPLETE}: the run that wrote it stopped "
      "before the end); run --mode=sample with these settings again, or delete the folder."
    )
  return path


# ----------------------------------------------------------------- I/O ---


def write_config(config: ml_collections.ConfigDict, workdir) -> None:
  """Writes ``workdir/config.json`` (process 0 only)."""
  if jax.process_index() != 0:
    return
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  write_text(config_path(workdir), configuration.to_json(config))


# ---------------------------------------------------------------- lock ---

# Locks this process holds: path -> [fd, depth].
_HELD_LOCKS: dict[str, list[int]] = {}


class Lock:
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
    try:  # Never through a link: a planted .lock -> file must not truncate that file.
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as e:
      if e.errno != errno.ELOOP:
        raise
      raise errors.WorkdirError(
        f"{self.path} is a symbolic link; remove it (the lock is never taken through a link)."
      ) from None
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
      os.close(fd)
      raise errors.WorkdirBusyError(
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
