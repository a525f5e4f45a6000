"""Entry point, the only module with flags: check inputs, lock the workdir, run a mode.

Exit codes (``solar_jax.errors``): 0 done or preempted, 1 non-finite loss,
2 the command cannot run as given, 3 the environment failed (disk full, read-only);
1-3 print one line ``error: ...`` and no traceback.
"""

from __future__ import annotations

import logging as stdlib_logging
import os
import sys

import jax
from absl import app, flags, logging
from etils import epath
from ml_collections import config_flags

from solar_jax import (
  configuration,
  errors,
  parallel,
  pipeline,
  xla_flags,
)
from solar_jax import workdir as wd

FLAGS = flags.FLAGS
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, samples, reports.")
_MODE = flags.DEFINE_enum("mode", "train", configuration.MODES, "What to run.")
config_flags.DEFINE_config_file(
  "config", None, "Path to a config file (configs/*.py).", lock_config=True
)
flags.mark_flags_as_required(["config", "workdir"])


def run_in_workdir(config, workdir: str, mode: str, entry_point) -> None:
  """Checks the inputs, locks the workdir, records config.json and runs ``entry_point``.

  What a failed run leaves behind: nothing is written before the inputs are
  checked; the lock is taken before config.json is touched, so a second run on
  a busy workdir changes nothing; a run that fails on a user error puts
  config.json back as it was (removes it if there was none). A run stopped by a
  non-finite loss keeps it: its checkpoints were made with that config.
  """
  pipeline.check_inputs(config, workdir, mode)
  config_path = wd.config_path(workdir)
  try:
    epath.Path(workdir).mkdir(parents=True, exist_ok=True)
    previous = config_path.read_text() if config_path.exists() else None
  except OSError as e:
    raise errors.WorkdirError(f"cannot use --workdir={workdir}: {e}") from None
  with wd.Lock(workdir):
    wd.write_config(config, workdir)
    try:
      entry_point(config, workdir)
    except errors.UserError:
      if parallel.is_main_process():
        if previous is None:
          config_path.unlink(missing_ok=True)
        else:
          wd.write_text(config_path, previous)
      raise


class _LibraryInfoFilter(stdlib_logging.Filter):
  """Drops INFO/DEBUG records of orbax (a dozen lines per save), and the traceback of
  its thread's disk-full error: the run ends on it with exit 3 and one line."""

  def filter(self, record: stdlib_logging.LogRecord) -> bool:
    if "/orbax/" not in record.pathname:
      return True
    if record.exc_info and errors.environment_failure(record.exc_info[1]) is not None:
      record.exc_info, record.exc_text = None, None
    return record.levelno >= stdlib_logging.WARNING


def _fail(message, code: int = 2):
  print("error: " + " ".join(str(message).splitlines()), file=sys.stderr, flush=True)
  if code == 3:  # Orbax's failed save threads would print tracebacks during shutdown.
    os._exit(code)
  sys.exit(code)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.verbosity <= 0:  # --v=1 (or more) shows everything again.
    logging.get_absl_handler().addFilter(_LibraryInfoFilter())
  config, workdir, mode = FLAGS.config, _WORKDIR.value, _MODE.value
  if not workdir.strip():
    _fail("--workdir is empty: name the run directory (a local path or gs://).")
  try:
    config.mesh  # noqa: B018 - ml_collections reports a config file's load error on first use.
  except OSError as e:
    _fail(f"--config: cannot load the config file ({str(e).strip().splitlines()[-1].strip()}).")
  xla_flags.configure_xla_cpu()  # Before JAX starts its CPU backend.
  try:
    parallel.initialize(config)  # jax.distributed (when asked), then the config's values.
  except errors.ConfigError as e:
    _fail(e)
  logging.info(
    f"JAX {jax.__version__}: process {jax.process_index()} of {jax.process_count()}, "
    f"{jax.local_device_count()} local / {jax.device_count()} global {jax.default_backend()} devices"
  )
  try:
    run_in_workdir(config, workdir, mode, pipeline.ENTRY_POINTS[mode])
  except errors.Preempted as e:  # Saved and stopped as asked: success.
    logging.warning("%s", e)
    print(f"[solar_jax] {e}", file=sys.stderr, flush=True)
  except Exception as e:
    code, failure = errors.exit_code(e), errors.environment_failure(e)
    if code is None:
      raise  # A bug: keep the traceback.
    if failure is not None:
      e = (
        f"{failure.strerror or failure} ({failure.filename or f'under {workdir}'}): the "
        "machine, not the command, failed; fix it and run the same command again (training "
        "resumes from its last complete checkpoint)."
      )
    _fail(e, code)


def _override_error(error: Exception, argv: list[str]) -> str:
  """One line naming the --config override that does not fit the config."""
  key = str(error).strip("\"'")
  overrides = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
  culprit = next((o for o in overrides if key and key in o.split(".")), None)
  if culprit:
    return (
      f"{culprit[2:]}: the config has no field {key!r} or the value does not fit it "
      "(every field is declared in configs/default.py)."
    )
  return f"--config: {error}"


def run():
  """Console entry: flag and config-override errors exit with one line."""
  try:
    remaining = FLAGS(sys.argv)
  except flags.Error as e:
    _fail(e)
  except (KeyError, AttributeError, TypeError, ValueError) as e:
    _fail(_override_error(e, sys.argv))
  app.run(main, flags_parser=lambda _: remaining)  # Flags are parsed once, above.


if __name__ == "__main__":
  run()
