"""The errors a run can end with, and the exit code of each.

| exit | meaning                                   | raised as                         |
| ---- | ----------------------------------------- | --------------------------------- |
| 0    | done, or stopped on a preemption signal   | ``Preempted`` (after saving)      |
| 1    | training produced a non-finite loss       | ``NonFiniteError``                |
| 2    | the command cannot run as given           | ``UserError`` and its subclasses  |

Errors are raised where the user can act, with one line naming the field, file
or value and what to do; ``main`` prints that line and exits with the code
above. Anything else is a bug and keeps its traceback. The subclasses also
derive from the built-in error they stand for (``ValueError``,
``FileNotFoundError``), so library callers can catch either.
"""

from __future__ import annotations


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


class WorkdirBusyError(UserError, RuntimeError):
  """Another live process holds the workdir; the message names it."""


class NonFiniteError(RuntimeError):
  """Training produced NaN/Inf (exit 1); the message names the step and what was kept."""


class Preempted(Exception):  # noqa: N818 - an outcome, not an error: exit 0.
  """Training stopped on SIGTERM (or a preemption notice) after saving the current step.

  Raised rather than returned so that callers running later stages (--mode=all)
  stop too instead of going on with a partly trained model.
  """


def exit_code(error: BaseException) -> int | None:
  """The exit code of ``error`` (table above); None for a bug, which keeps its traceback."""
  if isinstance(error, Preempted):
    return 0
  if isinstance(error, NonFiniteError):
    return 1
  if isinstance(error, UserError):
    return 2
  return None
