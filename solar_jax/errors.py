"""The errors a run can end with, and the exit code of each.

| exit | meaning                                   | raised as                         |
| ---- | ----------------------------------------- | --------------------------------- |
| 0    | done, or stopped on a preemption signal   | ``Preempted`` (after saving)      |
| 1    | training produced a non-finite loss       | ``NonFiniteError``                |
| 2    | the command cannot run as given           | ``UserError`` and its subclasses, |
|      |                                           | ``PermissionError``               |
| 3    | the environment failed: disk full, quota, | ``OSError`` with such an errno    |
|      | read-only file system                     | (``environment_failure``)         |

Errors are raised where the user can act, with one line naming the field, file
or value and what to do; ``main`` prints that line and exits with the code
above. Anything else is a bug and keeps its traceback. The subclasses also
derive from the built-in error they stand for (``ValueError``,
``FileNotFoundError``), so library callers can catch either.
"""

from __future__ import annotations

import errno
import os
import re


class UserError(Exception):
  """The command cannot run as given (exit 2): a config value, a missing input, a busy workdir."""


class ConfigError(UserError, ValueError):
  """A config value that cannot work; the message names the field."""


class MissingInputError(UserError, FileNotFoundError):
  """An input the mode needs is absent: dataset, checkpoint, samples, weights, classifier."""


class InputMismatchError(UserError, ValueError):
  """An input exists but does not fit the config (shape, classes, architecture)."""


class WorkdirError(UserError):
  """The workdir cannot be created or read (permissions, a file in the way)."""


class DamagedFileError(UserError, ValueError):
  """A file the run reads is truncated or corrupt; the message names it and what to do."""


class WorkdirBusyError(UserError, RuntimeError):
  """Another live process holds the workdir; the message names it."""


class NonFiniteError(RuntimeError):
  """Training produced NaN/Inf (exit 1); the message names the step and what was kept."""


class Preempted(Exception):  # noqa: N818 - an outcome, not an error: exit 0.
  """Training stopped on SIGTERM (or a preemption notice) after saving the current step.

  Raised rather than returned so that callers running later stages (--mode=all)
  stop too instead of going on with a partly trained model.
  """


# errno values that say the machine, not the command or the code, is at fault.
_ENVIRONMENT_ERRNOS = frozenset(
  getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EROFS", "EIO") if hasattr(errno, name)
)


# TensorStore (orbax's array writer) reports an OS error as text, e.g.
# 'Error writing local file "PATH": ... [os_error_code='28']'.
_TENSORSTORE_OS_ERROR = re.compile(r"os_error_code='(\d+)'")
_TENSORSTORE_PATH = re.compile(r'(?:writing|reading) (?:local )?file "([^"]+)"')


def environment_failure(error: BaseException) -> OSError | None:
  """The OSError (disk full, quota, read-only file system, I/O error) behind ``error``, if any.

  Libraries (orbax, TensorStore, TensorFlow) wrap it or report it as text; the chain
  of causes is searched.
  """
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in _ENVIRONMENT_ERRNOS:
      return error
    code = _TENSORSTORE_OS_ERROR.search(str(error))
    if code and int(code.group(1)) in _ENVIRONMENT_ERRNOS:
      path = _TENSORSTORE_PATH.search(str(error))
      number = int(code.group(1))
      return OSError(number, os.strerror(number), path.group(1) if path else None)
    error = error.__cause__ or error.__context__
  return None


def exit_code(error: BaseException) -> int | None:
  """The exit code of ``error`` (table above); None for a bug, which keeps its traceback."""
  if isinstance(error, Preempted):
    return 0
  if isinstance(error, NonFiniteError):
    return 1
  if isinstance(error, UserError | PermissionError):  # A workdir or file the user cannot write.
    return 2
  if environment_failure(error) is not None:
    return 3
  return None
