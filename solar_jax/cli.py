"""The command line's text: help, one-line errors, a run's config.json as --config.

``solar_jax.main`` owns the flags; this module says what they mean and turns
failures into the one line the user reads. absl's own ``--help`` exits 1 and
runs only inside ``app.run``, after our flag parsing, so help is answered here
(exit 0) before any flag is parsed.
"""

from __future__ import annotations

import difflib
import logging as stdlib_logging
import os
import sys
import textwrap

import ml_collections
from absl import flags
from ml_collections import config_flags

from solar_jax import configuration, errors, pipeline
from solar_jax.data import resolve

HELP_FLAGS = ("-h", "-?", "--help", "--helpshort", "--helpfull", "--helpxml")

MODE_HELP = {
  "train": "train the DDPM (resumes from workdir/checkpoints by itself)",
  "sample": "draw images per GOES class into samples/<step>-<sampler settings>/ "
  "(npz, grid.png, FITS); sampling.checkpoint=PATH samples another run's model",
  "classify": "train the flare classifiers on real, rebalanced and synthetic sets",
  "evaluate": "FID/KID, precision/recall, clusters and physics of the samples",
  "all": "train -> sample -> classify -> evaluate -> report.md",
  "export": "write the EMA weights and a model card (MODEL_CARD.md) to workdir/export/",
  "report": "rebuild report.md from the files of a finished workdir (no model, no sampling)",
  "study": "every fold of the dataset in workdir/fold_<k>/ (one DDPM per training "
  "partition: folds f and f+K/2 share one), then the folds pooled: workdir/folds.md",
}

USAGE = """\
solar_jax: class-conditional diffusion models of SDO/AIA 171 A images.

usage: python -m solar_jax.main --config=CONFIG --workdir=DIR [--mode=MODE]
                                [--config.SECTION.FIELD=VALUE ...]

  --config    a config by name (tiny, quickstart, aia171_64, aia171_128, aia171_256,
              default: solar_jax/configs/), any importable module with a
              get_config() (my_configs.run1), or a run's <workdir>/config.json
              to repeat or continue that run exactly
  --workdir   the run directory (local path or gs://): checkpoints, samples, report
  --mode      one of the modes below (default: train)
  --print_config  print the config the command would run with (JSON) and exit;
              writes nothing, needs no --workdir
  --config.SECTION.FIELD=VALUE overrides one field of the config (every field is
              declared, with its meaning, in solar_jax/configs/default.py); ~ and $VARS
              expand in the path fields:
              {paths}

modes:
{modes}

examples:
  python -m solar_jax.main --config=quickstart --workdir=runs/qs --mode=all
  python -m solar_jax.main --config=runs/qs/config.json --workdir=runs/qs --mode=sample \\
      --config.sampling.num_steps=100
  python -m solar_jax.main --config=quickstart --workdir=runs/mine --mode=sample \\
      --config.sampling.checkpoint=~/shared/qs/checkpoints

Exit codes: 0 done or preempted, 1 non-finite loss, 2 the command cannot run as given,
3 the environment failed (disk full, read-only).
"""


def help_requested(argv: list[str]) -> str | None:
  """'short' or 'full' when ``argv`` asks for help, else None."""
  for arg in argv[1:]:
    name = arg.split("=", 1)[0]
    if name in HELP_FLAGS:
      return "full" if name in ("--helpfull", "--helpxml") else "short"
  return None


def help_text(full: bool, flag_values=flags.FLAGS) -> str:
  """The usage, every mode, and with ``full`` every flag of every module (absl's list)."""
  modes = "\n".join(
    textwrap.fill(f"  {m:9s} {MODE_HELP[m]}", width=88, subsequent_indent=" " * 12)
    for m in pipeline.MODES
  )
  text = USAGE.format(modes=modes, paths=", ".join(configuration.PATH_FIELDS) + ".")
  if full:
    text += "\nall flags:\n" + flag_values.get_help()
  return text


def split_config_argv(argv: list[str]) -> tuple[str | None, list[str]]:
  """``argv`` without its ``--config=VALUE`` (or ``--config VALUE``), and that value."""
  out, value, i = [], None, 0
  while i < len(argv):
    arg = argv[i]
    if arg.startswith("--config="):
      value = arg.split("=", 1)[1]
    elif arg == "--config" and i + 1 < len(argv):
      value, i = argv[i + 1], i + 1
    else:
      out.append(arg)
    i += 1
  return value, out


def load_config(value: str | None):
  """The config ``--config`` names: a shipped config, an importable module or a config.json.

  Configs are Python modules imported by name (``tiny`` is ``solar_jax.configs.tiny``;
  ``my_configs.run1`` is any module on ``sys.path``), never files executed by path.

  Raises:
    errors.ConfigError: the value names nothing loadable (the line says what would).
  """
  if not value:
    raise errors.ConfigError(
      f"--config is required: one of {', '.join(configuration.shipped_configs())}, "
      "a module on PYTHONPATH, or a run's config.json."
    )
  if value.lower().endswith(".json"):
    # The path as given, but ~ (not $VARS: the shell has expanded them once).
    return configuration.from_json(os.path.expanduser(value))
  return configuration.load_module_config(value)


def define_config_flag(flag_values, config, argv) -> None:
  """``--config`` holding ``config``, and its ``--config.SECTION.FIELD=VALUE`` overrides."""
  for name in [n for n in flag_values if n == "config" or n.startswith("config.")]:
    delattr(flag_values, name)  # A second parse in one process (one flag per override).
  config_flags.DEFINE_config_dict(
    "config",
    config,
    "A config by name (solar_jax/configs/), an importable module, or a config.json.",
    flag_values=flag_values,
    lock_config=True,
    sys_argv=argv,
  )


PRINT_CONFIG_HELP = (
  "Print the config the command would run with (overrides, checks and data-dependent values "
  "applied) as JSON and exit; nothing is written and --workdir is not needed."
)


def check_workdir_flag(workdir: str | None, *, needed: bool) -> None:
  """One line, exit 2, when --workdir is missing (and needed) or empty."""
  if workdir is None and needed:
    fail("--workdir is required: name the run directory (a local path or gs://).")
  if workdir is not None and not workdir.strip():
    fail("--workdir is empty: name the run directory (a local path or gs://).")


def print_config(config) -> None:
  """``--print_config``: the config as config.json would record it, after the data-dependent
  values are resolved, on stdout; why one could not be (no dataset here) on stderr."""
  try:
    resolve.resolve_data(config)
  except errors.UserError as e:
    print(f"note: data-dependent values not resolved: {e}", file=sys.stderr, flush=True)
  print(configuration.to_json(config), flush=True)


def fail(message, code: int = 2):
  """Prints ``error: <one line>`` to stderr and exits with ``code``."""
  print("error: " + " ".join(str(message).splitlines()), file=sys.stderr, flush=True)
  if code == 3:  # Orbax's failed save threads would print tracebacks during shutdown.
    os._exit(code)
  sys.exit(code)


def _field_paths(config, prefix: str = "") -> list[str]:
  """Every field of ``config`` as a dotted path (sections too: ``training``, ``training.x``)."""
  out = []
  for key in config.keys():
    path = f"{prefix}{key}"
    out.append(path)
    value = config[key]
    if isinstance(value, ml_collections.ConfigDict):
      out.extend(_field_paths(value, path + "."))
  return out


def check_override_fields(config, argv: list[str]) -> None:
  """Raises ConfigError naming the first ``--config.PATH`` override whose PATH is not a
  field of ``config``, with the closest field's full path, before anything is parsed.

  ml_collections' own message for it is a Python repr of a KeyError without the
  section ('\\'num_step\\'\\nDid you mean "num_steps"...').
  """
  paths = None
  for arg in argv[1:]:
    if not arg.startswith("--config."):
      continue
    path = arg[len("--config.") :].split("=", 1)[0]
    node, known = config, True
    for part in path.split("."):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        known = False
        break
      node = node[part]
    if known:
      continue
    paths = paths if paths is not None else _field_paths(config)
    close = difflib.get_close_matches(path, paths, n=1, cutoff=0.6)
    if not close:  # A misspelt section: match on the field's own name.
      leaf = path.rsplit(".", 1)[-1]
      by_leaf = {q.rsplit(".", 1)[-1]: q for q in paths}
      close = [by_leaf[m] for m in difflib.get_close_matches(leaf, list(by_leaf), n=1)]
    hint = f"; did you mean {close[0]}?" if close else ""
    raise errors.ConfigError(
      f"--config.{path}: the config has no field {path}{hint} (every field is declared in "
      "solar_jax/configs/default.py)."
    )


def override_error(error: Exception, argv: list[str]) -> str:
  """One line naming the --config override that does not fit the config."""
  key = str(error).strip("\"'")
  overrides = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
  culprit = next((o for o in overrides if key and key in o.split(".")), None)
  if culprit:
    return (
      f"{culprit[2:]}: the config has no field {key!r} or the value does not fit it "
      "(every field is declared in solar_jax/configs/default.py)."
    )
  return f"--config: {error}"


def environment_message(failure: OSError, workdir: str) -> str:
  return (
    f"{failure.strerror or failure} ({failure.filename or f'under {workdir}'}): the "
    "machine, not the command, failed; fix it and run the same command again (training "
    "resumes from its last complete checkpoint)."
  )


class LibraryInfoFilter(stdlib_logging.Filter):
  """Drops INFO/DEBUG records of orbax (a dozen lines per save), its warnings about
  read-only restores (three per restore, for a mode that only reads), and the traceback
  of its thread's disk-full error: the run ends on it with exit 3 and one line."""

  def filter(self, record: stdlib_logging.LogRecord) -> bool:
    if "/orbax/" not in record.pathname:
      return True
    if record.exc_info and errors.environment_failure(record.exc_info[1]) is not None:
      record.exc_info, record.exc_text = None, None
    if record.levelno == stdlib_logging.WARNING and "read only" in str(record.msg):
      return False  # 'Given directory is read only=...': we opened it read-only on purpose.
    return record.levelno >= stdlib_logging.WARNING
