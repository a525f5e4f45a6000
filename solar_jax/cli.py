"""The command line's text: help, one-line errors, a run's config.json as --config.

``solar_jax.main`` owns the flags; this module says what they mean and turns
failures into the one line the user reads. absl's own ``--help`` exits 1 and
runs only inside ``app.run``, after our flag parsing, so help is answered here
(exit 0) before any flag is parsed. This module imports no JAX, TensorFlow or TFDS, so
help, a misspelt flag or field, a bad value and ``--print_config`` answer in about a
second (``main`` imports ``pipeline`` only once the command can run).
"""

from __future__ import annotations

import ast
import difflib
import logging as stdlib_logging
import os
import re
import sys
import textwrap

import ml_collections
from absl import flags
from ml_collections import config_flags

from solar_jax import configuration, errors

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
MODES = tuple(MODE_HELP)  # pipeline.ENTRY_POINTS has one entry each (tests/test_main.py).

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
  --log_libraries  show the INFO lines of the libraries (TFDS, orbax, absl, JAX);
              hidden by default (--v=1 shows them too, with DEBUG lines)
  --config.SECTION.FIELD=VALUE overrides one field of the config (every field is
              declared, with its meaning, in solar_jax/configs/default.py); ~ and $VARS
              expand in the path fields:
              {paths}
  --config.sampling.per_class=M:30,X:30  images per class by name: the classes
              not named get 0 (the plain form is one count per data.classes entry,
              in order: (0,0,0,30,30))

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
    textwrap.fill(f"  {m:9s} {MODE_HELP[m]}", width=88, subsequent_indent=" " * 12) for m in MODES
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
  "Print the config the command would run with (overrides and the checks that need no "
  "device applied) as JSON and exit; nothing is written and --workdir is not needed."
)
LOG_LIBRARIES_HELP = (
  "Show the INFO lines of the libraries (TFDS, orbax, absl, JAX); hidden by default, "
  "their warnings always show."
)
UNRESOLVED_NOTE = (
  "note: data.clip_max (when data.clip_max_quantile > 0) and provenance.* are read from "
  "the dataset when the run starts (config.json records them); the batch sizes are "
  "checked against the devices then too."
)


def check_workdir_flag(workdir: str | None, *, needed: bool) -> None:
  """One line, exit 2, when --workdir is missing (and needed) or empty."""
  if workdir is None and needed:
    fail("--workdir is required: name the run directory (a local path or gs://).")
  if workdir is not None and not workdir.strip():
    fail("--workdir is empty: name the run directory (a local path or gs://).")


def print_config(config) -> None:
  """``--print_config``: the config as config.json would record it on stdout, without JAX
  or the dataset: the values read from the dataset are left as declared (a note on
  stderr says so; ``data.resolve`` fills them when the run starts)."""
  print(UNRESOLVED_NOTE, file=sys.stderr, flush=True)
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


PER_CLASS_FLAG = "--config.sampling.per_class"


def per_class_by_name(config, argv: list[str]) -> list[str]:
  """``argv`` with ``--config.sampling.per_class=M:30,X:30`` (images per class by name)
  written as the tuple the field holds: one count per ``data.classes`` entry, in order,
  0 for the classes not named (``--config.data.classes`` in ``argv`` counts).

  Raises:
    errors.ConfigError: a name not in data.classes, a name given twice, or a count that
      is not an integer >= 0 (one line naming the value).
  """
  out = []
  for arg in argv:
    name, _, value = arg.partition("=")
    if name != PER_CLASS_FLAG or ":" not in value:
      out.append(arg)
      continue
    classes = _classes(config, argv)
    counts, named = dict.fromkeys(classes, 0), set()
    for item in value.split(","):
      label, _, count = (part.strip() for part in item.partition(":"))
      if label not in counts:
        raise errors.ConfigError(
          f"sampling.per_class={value}: {label!r} is not one of data.classes "
          f"({', '.join(classes)}); write CLASS:COUNT pairs, e.g. M:30,X:30."
        )
      if label in named or not count.isdigit():
        why = (
          f"{label!r} is named twice" if label in named else f"{item.strip()!r} needs a count >= 0"
        )
        raise errors.ConfigError(f"sampling.per_class={value}: {why} (e.g. M:30,X:30).")
      counts[label], named = int(count), named | {label}
    out.append(f"{PER_CLASS_FLAG}=({','.join(map(str, counts.values()))},)")
  return out


def _classes(config, argv: list[str]) -> tuple[str, ...]:
  """``data.classes`` as the command sets it (its override in ``argv``, else the config's)."""
  for arg in argv:
    name, _, value = arg.partition("=")
    if name == "--config.data.classes":
      try:
        return tuple(str(c) for c in ast.literal_eval(value))
      except (ValueError, SyntaxError, TypeError):
        break  # The flag's own parser names the bad value.
  return tuple(config.data.classes)


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
  """Drops the INFO/DEBUG records of the libraries (modules under site-packages: TFDS,
  orbax's dozen lines per save, absl, JAX, TensorFlow) unless ``show_libraries``; and
  always orbax's warnings about read-only restores (three per restore, for a mode that
  only reads) and the traceback of its thread's disk-full error: the run ends on it with
  exit 3 and one line. Our own INFO lines (solar_jax, tfds_builders) stay."""

  def __init__(self, show_libraries: bool = False):
    super().__init__()
    self.show_libraries = show_libraries

  def filter(self, record: stdlib_logging.LogRecord) -> bool:
    path = record.pathname.replace(os.sep, "/")
    if "/orbax/" in path:
      if record.exc_info and errors.environment_failure(record.exc_info[1]) is not None:
        record.exc_info, record.exc_text = None, None
      if record.levelno == stdlib_logging.WARNING and re.search(r"read.only", str(record.msg)):
        return False  # 'Given directory is read only=...': we opened it read-only on purpose.
    library = "/site-packages/" in path or "/dist-packages/" in path
    return self.show_libraries or not library or record.levelno >= stdlib_logging.WARNING
