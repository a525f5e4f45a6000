"""Entry point, the only module with flags: check inputs, lock the workdir, run a mode.

Exit codes (``solar_jax.errors``): 0 done or preempted, 1 non-finite loss,
2 the command cannot run as given, 3 the environment failed (disk full, read-only);
1-3 print one line ``error: ...`` and no traceback.

JAX, TensorFlow and TFDS load only once the command can run: help, the flags, the
config's fields and types, the checks that need no registry or device
(``configuration.check_fields``) and ``--print_config`` are answered first (in about a second), then ``pipeline`` (every mode, ``checks``) is
imported, the one project import that is not at the top of this file.
"""

from __future__ import annotations

import importlib
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from solar_jax import choices, cli, configuration, errors, xla_flags

FLAGS = flags.FLAGS
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, samples, reports.")
_MODE = flags.DEFINE_enum("mode", "train", cli.MODES, "What to run.")
_PRINT_CONFIG = flags.DEFINE_bool("print_config", False, cli.PRINT_CONFIG_HELP)
_LOG_LIBRARIES = flags.DEFINE_bool("log_libraries", False, cli.LOG_LIBRARIES_HELP)
_CONFIG_SOURCE = [None]  # What --config named: a config.json is data (see main()).
PIPELINE = "solar_jax.pipeline"  # The modes; imported by main() after the flags (JAX, TF).


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.verbosity <= 0:  # --v=1 (or more) shows everything again.
    logging.get_absl_handler().addFilter(cli.LibraryInfoFilter(_LOG_LIBRARIES.value))
  config, workdir, mode = FLAGS.config, _WORKDIR.value, _MODE.value
  cli.check_workdir_flag(workdir, needed=not _PRINT_CONFIG.value)
  # ~ and $VARS in the path fields (the shell does not expand ~ after '='); a stored
  # config.json is data: only the fields set on the command line are expanded.
  stored = (_CONFIG_SOURCE[0] or "").lower().endswith(".json")
  overrides = config_flags.get_override_values(FLAGS["config"])
  configuration.expand_paths(
    config, [f for f in configuration.PATH_FIELDS if not stored or f in overrides]
  )
  if workdir is not None and "://" not in workdir:
    workdir = os.path.expanduser(workdir)  # As the path fields; $VARS were the shell's.
  try:
    configuration.check_fields(config)  # checks.validate adds the registries and the devices.
    choices.check(config)  # The registries' names, before their modules (and JAX) load.
  except errors.ConfigError as e:
    cli.fail(e)
  if _PRINT_CONFIG.value:
    return cli.print_config(config)
  xla_flags.configure_malloc()  # Before XLA's threads allocate.
  xla_flags.configure_xla_cpu()  # Before JAX starts its CPU backend.
  xla_flags.configure_compilation_cache()  # Before JAX reads its settings from the environment.
  try:
    importlib.import_module(PIPELINE).start(config, workdir, mode)
  except errors.Preempted as e:  # Saved and stopped as asked: success.
    logging.warning("%s", e)
    print(f"[solar_jax] {e}", file=sys.stderr, flush=True)
  except KeyboardInterrupt:  # Ctrl-C outside training (there it stops like SIGTERM).
    cli.fail("interrupted (SIGINT); rerun the same command: finished stages are reused.", 130)
  except Exception as e:
    code, failure = errors.exit_code(e), errors.environment_failure(e)
    if code is None:
      raise  # A bug: keep the traceback.
    if failure is not None:
      e = cli.environment_message(failure, workdir)
    cli.fail(e, code)


def parse_flags(argv: list[str]) -> list[str]:
  """Loads the config ``--config`` names, defines ``--config`` with it and parses ``argv``.

  Returns what absl leaves of ``argv``; a bad config, flag or override is one line
  and exit 2 (``cli.fail``). Callable again in one process (tests run the CLI in-process).
  """
  value, argv = cli.split_config_argv(argv)
  _CONFIG_SOURCE[0] = value
  FLAGS.unparse_flags()
  try:
    config = cli.load_config(value)
    cli.check_override_fields(config, argv)
    argv = cli.per_class_by_name(config, argv)
    cli.define_config_flag(FLAGS, config, argv)
    return FLAGS(argv)
  except errors.ConfigError as e:
    cli.fail(e)
  except flags.Error as e:
    cli.fail(e)
  except (KeyError, AttributeError, TypeError, ValueError) as e:
    cli.fail(cli.override_error(e, argv))


def run(argv: list[str] | None = None):
  """Console entry: help exits 0; flag and config-override errors exit with one line."""
  argv = list(sys.argv if argv is None else argv)
  wanted = cli.help_requested(argv)
  if wanted:
    print(cli.help_text(full=wanted == "full"))
    sys.exit(0)
  remaining = parse_flags(argv)
  app.run(main, argv=argv, flags_parser=lambda _: remaining)  # Flags are parsed once, above.


if __name__ == "__main__":
  run()
