"""Entry point: the only module with flags.

  python -m solar_jax.main --config=configs/quickstart.py --workdir=runs/qs --mode=all
  python -m solar_jax.main --config=configs/tiny.py --workdir=/tmp/t \
      --config.training.batch_size=16
"""

from __future__ import annotations

import importlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from solar_jax import configuration

FLAGS = flags.FLAGS
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, samples, reports.")
_MODE = flags.DEFINE_enum("mode", "train", configuration.MODES, "What to run.")
config_flags.DEFINE_config_file(
  "config", None, "Path to a config file (configs/*.py).", lock_config=True
)
flags.mark_flags_as_required(["config", "workdir"])

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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  config = FLAGS.config
  workdir = _WORKDIR.value
  from solar_jax import parallel  # Imports JAX; after flag parsing keeps --help fast.

  parallel.maybe_initialize_distributed(config.mesh)
  import jax

  try:
    configuration.validate(config, num_devices=jax.device_count())
    entry_point = resolve_entry_point(_MODE.value)
  except (configuration.ConfigError, NotImplementedError) as e:
    print(f"error: {e}", file=sys.stderr)
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
  parallel.write_config(config, workdir)
  entry_point(config, workdir)


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
