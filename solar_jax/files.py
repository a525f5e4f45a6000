"""Files written whole or not at all, never through a link; npz read with a one-line error.

Every writer of the project (workdir outputs, figures, FITS, exports) goes through
these, so a reader never sees half a file and a symbolic link planted at an output
name is replaced instead of followed. Paths go through ``etils.epath`` (local or gs://).
"""

from __future__ import annotations

import errno
import io
import json
import os
import zipfile

import numpy as np
from etils import epath

from solar_jax import errors


def _is_local(path) -> bool:
  return "://" not in os.fspath(path)


def write_bytes(path, data: bytes) -> None:
  """Writes ``data`` to a temporary name beside ``path``, then renames it over ``path``.

  A reader never sees half a file, and no link is followed: the rename replaces a
  symbolic link at ``path`` instead of writing to its target, and the temporary
  file is created new (``O_EXCL | O_NOFOLLOW``).
  """
  path = epath.Path(path)
  tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
  if _is_local(path):
    if os.path.lexists(tmp):
      os.unlink(tmp)  # A leftover of a killed run (or a planted link): removed, not followed.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as f:
      f.write(data)
  else:
    tmp.write_bytes(data)
  tmp.replace(path)


def write_text(path, text: str) -> None:
  write_bytes(path, text.encode())


def append_text(path, text: str) -> None:
  """Appends ``text`` to ``path`` (a log such as train_metrics.jsonl) without following a link.

  Locally the file is opened with ``O_APPEND | O_NOFOLLOW``; a symbolic link planted
  at ``path`` is replaced by a new file holding ``text`` (its target is not touched).
  On cloud storage, which cannot append, the file is rewritten whole.
  """
  path = epath.Path(path)
  if not _is_local(path):
    write_text(path, (path.read_text() if path.exists() else "") + text)
    return
  try:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
  except OSError as e:
    if e.errno != errno.ELOOP:
      raise
    write_text(path, text)  # Replaces the link.
    return
  with os.fdopen(fd, "a") as f:
    f.write(text)


def is_link(path) -> bool:
  """Whether ``path`` is a local symbolic link (cloud storage has none)."""
  return _is_local(path) and os.path.islink(os.fspath(path))


def write_json(path, tree) -> None:
  write_text(path, json.dumps(tree, indent=2) + "\n")


def write_npz(path, **arrays) -> None:
  """``np.savez`` through epath (local or gs://), whole or not at all."""
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  write_bytes(path, buffer.getvalue())


def read_npz(path) -> dict[str, np.ndarray]:
  """Every array of an npz file, read through epath.

  Raises:
    errors.DamagedFileError: the file is truncated or not an npz (names the file).
  """
  try:
    with epath.Path(path).open("rb") as f:
      data = np.load(io.BytesIO(f.read()))
      return {k: data[k] for k in data.files}
  except (ValueError, EOFError, OSError, zipfile.BadZipFile) as e:
    if isinstance(e, FileNotFoundError):
      raise
    raise errors.DamagedFileError(
      f"{path} is damaged ({type(e).__name__}: {e}); delete it and run the stage that writes it."
    ) from None
