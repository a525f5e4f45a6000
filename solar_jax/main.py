"""Entry point: the only module with flags.

  python -m solar_jax.main --config=configs/quickstart.py --workdir=runs/qs --mode=all
  python -m solar_jax.main --config=configs/tiny.py --workdir=runs/t \
      --config.training.batch_size=16
"""

from __future__ import annotations

import importlib
import logging as stdlib_logging
import pathlib
import sys

from absl import app, flags, logging
from etils import epath
from ml_collections import config_flags

from solar_jax import configuration

FLAGS = flags.FLAGS
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, samples, reports.")
_MODE = flags.DEFINE_enum("mode", "train", configuration.MODES, "What to run.")
config_flags.DEFINE_config_file(
  "config", None, "Path to a config file (configs/*.py).", lock_config=True
)
flags.mark_flags_as_required(["config", "workdir"])

# Where a ValueError counts as input validation rather than a bug (see _raised_by_project).
_REPO = pathlib.Path(__file__).resolve().parents[1]
_PROJECT_DIRS = (_REPO / "solar_jax", _REPO / "configs", _REPO / "tfds_builders")

# mode -> (module, function(config, workdir)). Each is imported only when run.
_ENTRY_POINTS = {
  "train": ("solar_jax.train", "train_and_evaluate"),
  "sample": ("solar_jax.sample", "run"),
  "evaluate": ("solar_jax.evaluation.evaluate", "run"),
  "classify": ("solar_jax.train_classifier", "run"),
  "all": ("solar_jax.pipeline", "run_all"),
}


def resolve_entry_point(mode: str):
  """Returns the callable for ``mode``, or raises a one-line error if it is missing."""
  module_name, function_name = _ENTRY_POINTS[mode]
  try:
    module = importlib.import_module(module_name)
  except ModuleNotFoundError as e:
    if e.name != module_name:
      raise
    raise NotImplementedError(
      f"--mode={mode} is not available yet ({module_name} is missing)."
    ) from None
  return getattr(module, function_name)


class WorkdirError(Exception):
  """The workdir cannot be created or read (permissions, a file in the way)."""


def _check_dataset(config) -> None:
  """Raises FileNotFoundError/ValueError when config.data names no usable built dataset."""
  from solar_jax.data import input_pipeline  # TensorFlow: only for modes that read data.

  input_pipeline.get_builder(config.data)


def check_inputs(config, workdir: str, mode: str) -> None:
  """Fails fast, before anything is written, on an input that ``mode`` cannot run without.

  Raises:
    FileNotFoundError: the dataset is not built, the workdir has no checkpoint
      (sample) or no samples (evaluate), or the Inception weights are missing.
    ValueError: the built dataset does not match config.data.
  """
  if mode in ("evaluate", "all") and "inception" in config.evaluation.extractors:
    weights = config.evaluation.inception_weights
    if not weights or not epath.Path(weights).exists():
      from solar_jax.models import inception

      inception.load_variables(weights)  # Raises the error that says how to get them.
  if mode in ("train", "evaluate", "classify", "all"):
    _check_dataset(config)
  if mode == "sample":
    from solar_jax import checkpointing

    checkpointing.require_checkpoint(workdir)
  if mode == "evaluate":
    from solar_jax.evaluation import evaluate

    evaluate.latest_samples(workdir)


def _exit_code(error: Exception) -> int | None:
  """Exit code of an error the user can act on (reported in one line); None for a bug.

  2: the run cannot go on as given (config, missing dataset, checkpoint,
  weights or samples, a workdir in use). 1: training stopped on a non-finite loss.
  """
  from solar_jax import checkpointing

  non_finite = (checkpointing.NonFiniteStateError, *_loaded("NonFiniteLossError"))
  if isinstance(error, non_finite):
    return 1
  if isinstance(error, (FileNotFoundError, WorkdirError, checkpointing.WorkdirBusyError)):
    return 2
  if isinstance(error, ValueError) and _raised_by_project(error):
    return 2  # Validation in our code; a ValueError from inside a library is a bug.
  return None


def _loaded(name: str) -> tuple[type, ...]:
  """Exception class ``name`` of the trainers that are imported (only they can raise it)."""
  modules = (sys.modules.get(m) for m in ("solar_jax.train", "solar_jax.train_classifier"))
  return tuple(getattr(m, name) for m in modules if m is not None and hasattr(m, name))


def _raised_by_project(error: BaseException) -> bool:
  """Whether the innermost frame of ``error``'s traceback lies in this project's code."""
  tb, filename = error.__traceback__, ""
  while tb is not None:
    filename, tb = tb.tb_frame.f_code.co_filename, tb.tb_next
  path = pathlib.Path(filename).resolve()
  return any(path.is_relative_to(root) for root in _PROJECT_DIRS)


def _print_error(message) -> None:
  print("error: " + " ".join(str(message).splitlines()), file=sys.stderr)


def run_in_workdir(config, workdir: str, mode: str, entry_point) -> None:
  """Checks the inputs, locks the workdir, records config.json and runs ``entry_point``.

  What a failed run leaves behind: nothing is written before the inputs are
  checked; the lock is taken before config.json is touched, so a second run on
  a busy workdir changes nothing; a run that fails on an input error puts
  config.json back as it was (removes it if there was none). A run stopped by a
  non-finite loss keeps it: its checkpoints were made with that config.
  """
  from solar_jax import checkpointing, parallel

  check_inputs(config, workdir, mode)
  config_path = epath.Path(workdir) / "config.json"
  try:
    epath.Path(workdir).mkdir(parents=True, exist_ok=True)
    previous = config_path.read_text() if config_path.exists() else None
  except OSError as e:
    raise WorkdirError(f"cannot use --workdir={workdir}: {e}") from None
  with checkpointing.WorkdirLock(workdir):
    parallel.write_config(config, workdir)
    try:
      entry_point(config, workdir)
    except Exception as e:
      if _exit_code(e) == 2 and parallel.is_main_process():
        if previous is None:
          config_path.unlink(missing_ok=True)
        else:
          config_path.write_text(previous)
      raise


_QUIET_BELOW_WARNING = ("/orbax/",)  # Libraries whose INFO lines drown the progress output.


class _LibraryInfoFilter(stdlib_logging.Filter):
  """Drops INFO/DEBUG records of chatty libraries (orbax logs a dozen lines per save)."""

  def filter(self, record: stdlib_logging.LogRecord) -> bool:
    if record.levelno >= stdlib_logging.WARNING:
      return True
    path = record.pathname.replace("\\", "/")
    return not any(part in path for part in _QUIET_BELOW_WARNING)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.verbosity <= 0:  # --v=1 (or more) shows everything again.
    logging.get_absl_handler().addFilter(_LibraryInfoFilter())
  config = FLAGS.config
  workdir = _WORKDIR.value
  if not workdir.strip():
    _print_error("--workdir is empty: name the run directory (a local path or gs://).")
    sys.exit(2)
  from solar_jax import parallel  # Imports JAX; after flag parsing keeps --help fast.

  parallel.maybe_initialize_distributed(config.mesh)
  import jax

  try:
    configuration.validate(config, num_devices=jax.device_count())
    entry_point = resolve_entry_point(_MODE.value)
  except (configuration.ConfigError, NotImplementedError) as e:
    _print_error(e)
    sys.exit(2)

  logging.info(
    "JAX %s: process %d of %d, %d local / %d global devices (%s)",
    jax.__version__,
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
    jax.devices()[0].platform,
  )
  try:
    run_in_workdir(config, workdir, _MODE.value, entry_point)
  except _loaded("Preempted") as e:  # Saved and stopped as asked: success.
    print(f"[solar_jax] {e}", file=sys.stderr, flush=True)
  except Exception as e:
    code = _exit_code(e)
    if code is None:
      raise  # A bug: keep the traceback.
    _print_error(e)
    sys.exit(code)


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
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except (KeyError, AttributeError, TypeError, ValueError) as e:
    print(f"error: {_override_error(e, sys.argv)}", file=sys.stderr)
    sys.exit(2)
  app.run(main, flags_parser=lambda _: remaining)  # Flags are parsed once, above.


if __name__ == "__main__":
  run()
