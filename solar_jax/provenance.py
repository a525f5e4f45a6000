"""What made an artefact: the date, the package's version and git commit, the command line.

Every file a person reads or shares carries it (report.md, MODEL_CARD.md, the FITS
headers of samples), so an image or a table can be traced to the code and the command
that made it. Not to be confused with ``config.provenance``: what the *dataset* says
about itself (``data.resolve``).
"""

from __future__ import annotations

import datetime
import functools
import os
import shlex
import subprocess
import sys
import urllib.parse

import solar_jax

UNKNOWN = "unknown"


@functools.cache
def git_commit() -> str:
  """The commit of the git checkout this package runs from, ``+dirty`` when files differ
  from it; ``'unknown'`` for an installed package, no git, or any failure (never raises)."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(solar_jax.__file__)))

  def git(*args) -> str:
    return subprocess.run(
      ["git", "-C", root, *args], capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()

  try:
    # Only this package's own repository: a site-packages inside another checkout is not it.
    if os.path.realpath(git("rev-parse", "--show-toplevel")) != os.path.realpath(root):
      return UNKNOWN
    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
  except (OSError, subprocess.SubprocessError, ValueError):
    return UNKNOWN
  return f"{commit}+dirty" if dirty else commit


def command_line(argv: list[str] | None = None) -> str:
  """``argv`` (default ``sys.argv``) as one shell-quoted line that a shell would run again;
  ``python -m solar_jax.main`` for the path ``-m`` leaves in ``argv[0]``."""
  argv = [str(a) for a in (sys.argv if argv is None else argv)]
  if argv and argv[0].replace(os.sep, "/").endswith("solar_jax/main.py"):
    argv = ["python", "-m", "solar_jax.main", *argv[1:]]
  return shlex.join(argv)


def utc_now() -> str:
  """The current UTC time, ISO 8601 to the second (``2026-12-02T09:30:00Z``)."""
  return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def record(argv: list[str] | None = None) -> dict:
  """``{'date', 'version', 'commit', 'command'}`` of this process, now."""
  return {
    "date": utc_now(),
    "version": solar_jax.__version__,
    "commit": git_commit(),
    "command": command_line(argv),
  }


def markdown_line(info: dict) -> str:
  """One markdown line of ``record()``: date, version, commit, command."""
  return (
    f"Made {info['date']} by solar_jax {info['version']} (commit `{info['commit']}`) "
    f"with `{info['command']}`."
  )


# ---------------------------------------------------------------- FITS ---

HISTORY_COMMAND = "solar_jax command (the next HISTORY cards joined, percent-decoded):"
_PRINTABLE = "".join(chr(c) for c in range(32, 127) if chr(c) != "%")  # What a card holds.
_HISTORY_WIDTH = 64  # Characters of the command per card; a card holds 72.


def history_lines(command: str) -> list[str]:
  """FITS ``HISTORY`` values of ``command``: ``HISTORY_COMMAND``, then the command with what
  a card cannot hold (not printable ASCII, ``%``) percent-encoded, in pieces of at most 72
  characters whose edge spaces are encoded too (readers strip them). ``unquote`` of the
  pieces joined gives ``command`` back (``command_from_history``)."""
  encoded = urllib.parse.quote(command, safe=_PRINTABLE)
  lines, start = [HISTORY_COMMAND], 0
  while start < len(encoded):
    size = _HISTORY_WIDTH
    while True:  # Shorter where encoded edge spaces would pass 72 characters.
      raw = encoded[start : start + size]
      body = raw.strip(" ")
      lead = len(raw) - len(raw.lstrip(" ")) if body else len(raw)
      line = "%20" * lead + body + "%20" * (len(raw) - lead - len(body))
      if len(line) <= 72:
        break
      size -= 1
    lines.append(line)
    start += len(raw)
  return lines


def command_from_history(history: list[str]) -> str | None:
  """The command ``history_lines`` wrote into these HISTORY values (None if none)."""
  history = [str(h) for h in history]
  if HISTORY_COMMAND not in history:
    return None
  pieces = history[history.index(HISTORY_COMMAND) + 1 :]
  return urllib.parse.unquote("".join(pieces))
