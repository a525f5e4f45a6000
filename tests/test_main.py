"""The command line: one-line errors, config.json, mode dispatch (in-process: ``cli``)."""

import json
import os
import re
import subprocess
import sys

import pytest

from solar_jax import checks, cli, errors, pipeline
from solar_jax import main as main_module
from solar_jax.configs import tiny


def test_unknown_config_key_is_named(cli, tmp_path):
  result = cli("--config=tiny", f"--workdir={tmp_path}", "--config.nonexistent=1")
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and "nonexistent" in lines[0], result.stderr
  assert not (tmp_path / "config.json").exists()


@pytest.mark.parametrize(
  "override, named, closest",
  [
    ("training.num_step=3", "training.num_step", "training.num_steps"),
    ("trainng.num_steps=3", "trainng.num_steps", "training.num_steps"),
    ("sampling.guidence_scale=2", "sampling.guidence_scale", "sampling.guidance_scale"),
    ("training.num_steps.x=3", "training.num_steps.x", None),
  ],
)
def test_a_misspelt_field_names_its_path_and_the_closest_field(
  cli, tmp_path, override, named, closest
):
  result = cli("--config=tiny", f"--workdir={tmp_path}", f"--config.{override}")
  assert result.returncode == 2, result.stderr
  (line,) = result.stderr.strip().splitlines()
  assert line.startswith(f"error: --config.{named}: the config has no field {named}")
  assert "\\n" not in line and "'" not in line  # No Python repr.
  if closest:
    assert f"did you mean {closest}?" in line
  assert not (tmp_path / "config.json").exists()


def test_print_config_shows_the_config_writes_nothing_and_round_trips(cli, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  flags = ("--print_config", "--config.data.data_dir=/d", "--config.training.num_steps=7")
  result = cli("--config=tiny", *flags)
  assert result.returncode == 0, result.stderr
  printed = json.loads(result.stdout)
  assert printed["training"]["num_steps"] == 7 and printed["data"]["data_dir"] == "/d"
  assert printed["provenance"]["simulated"] is None  # Read from the dataset at run time ...
  assert "provenance.* are read from the dataset when the run starts" in result.stderr  # ... said.
  assert list(tmp_path.iterdir()) == []  # No workdir, nothing written.
  (tmp_path / "printed.json").write_text(result.stdout)
  again = cli(f"--config={tmp_path / 'printed.json'}", "--print_config")
  assert again.returncode == 0 and json.loads(again.stdout) == printed
  # The checks that need no device still run: an impossible value is one line, exit 2.
  bad = cli("--config=tiny", "--print_config", "--config.training.batch_size=0")
  assert bad.returncode == 2 and bad.stderr.strip().startswith("error: training.batch_size=0")


def test_help_typos_and_print_config_answer_without_jax(repo_root):
  """One interpreter runs the command four times in-process: help, a misspelt field, fields
  that disagree and --print_config (with classes by name) load neither JAX nor TensorFlow
  nor TFDS."""
  runs = [
    ["--help"],
    ["--config=tiny", "--workdir=/nowhere", "--config.training.num_step=5"],
    ["--config=tiny", "--workdir=/nowhere", "--config.sampling.per_class=(1,2)"],
    ["--config=tiny", "--print_config", "--config.sampling.per_class=M:30,X:3"],
    ["--config=tiny", "--workdir=/nowhere", "--config.sampling.sampler=ddm"],
    ["--config=tiny", "--workdir=/nowhere", "--config.classifier.regimes=('real','oversampel')"],
  ]
  code = f"""
import contextlib, io, json, sys
from absl import flags
from solar_jax import main
out = []
for argv in {runs!r}:
  sys.argv, o, e, rc = ["solar_jax.main", *argv], io.StringIO(), io.StringIO(), 0
  try:
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
      main.run()
  except SystemExit as x:
    rc = x.code or 0
  flags.FLAGS.unparse_flags()
  out.append([rc, o.getvalue(), e.getvalue()])
heavy = [m for m in ("jax", "tensorflow", "tensorflow_datasets", "flax") if m in sys.modules]
print(json.dumps(dict(runs=out, heavy=heavy)))
"""
  env = dict(os.environ, PYTHONPATH=str(repo_root))
  result = subprocess.run(
    [sys.executable, "-c", code], cwd=repo_root, env=env, capture_output=True, text=True
  )
  assert result.returncode == 0, result.stderr
  report = json.loads(result.stdout)
  assert report["heavy"] == []
  help_run, typo_run, (fields_rc, _, fields_err), (print_rc, printed, _), *choice_runs = report[
    "runs"
  ]
  help_rc, help_out, _ = help_run
  typo_rc, _, typo_err = typo_run
  assert help_rc == 0 and "--print_config" in help_out and "M:30,X:30" in help_out
  assert typo_rc == 2 and typo_err.strip() == (
    "error: --config.training.num_step: the config has no field training.num_step; did you "
    "mean training.num_steps? (every field is declared in solar_jax/configs/default.py)."
  )
  assert fields_rc == 2 and fields_err.startswith("error: sampling.per_class=(1, 2) needs one")
  assert print_rc == 0 and json.loads(printed)["sampling"]["per_class"] == [0, 0, 0, 30, 3]
  # A misspelt choice: refused from solar_jax.choices, before the registries' modules load.
  (sampler_rc, _, sampler_err), (regime_rc, _, regime_err) = choice_runs
  assert sampler_rc == 2 and sampler_err.strip() == (
    "error: sampling.sampler='ddm' is not one of 'ddim', 'ddpm', 'dpmpp_2m'."
  )
  assert regime_rc == 2 and "classifier.regimes='oversampel' is not one of" in regime_err


def test_the_early_choice_names_are_their_registries():
  """solar_jax.choices mirrors each registry exactly (checks.validate keeps the authority)."""
  import importlib

  from solar_jax import choices

  assert choices.NAMES.keys() == choices.SOURCES.keys()
  for field, source in choices.SOURCES.items():
    default, _, source = source.rpartition(" ")
    module, attr = source.split(":")
    names = tuple(getattr(importlib.import_module(module), attr))
    if default == "+default":
      names = (importlib.import_module(module).DEFAULT, *names)
    assert choices.NAMES[field] == names, field


def test_impossible_value_fails_before_compiling(cli, tmp_path):
  result = cli(
    "--config=tiny",
    f"--workdir={tmp_path}",
    "--config.training.batch_size=12",
    "--config.mesh.data=-1",  # All 8 devices: 12 is not divisible by them.
    "--mode=train",
  )
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith("error: training.batch_size=12")
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "config.json").exists()


def test_bad_override_value_is_one_line(cli, tmp_path):
  result = cli(
    "--config=tiny",
    f"--workdir={tmp_path}",
    "--config.training.batch_size=abc",
  )
  assert result.returncode == 2
  assert "batch_size" in result.stderr and "Traceback" not in result.stderr


def test_every_mode_has_an_entry_point():
  # --mode's choices and --help come from cli (no JAX), the entry points from pipeline.
  assert set(cli.MODES) == set(pipeline.MODES) == set(pipeline.ENTRY_POINTS)
  assert all(callable(fn) for fn in pipeline.ENTRY_POINTS.values())


def test_writes_resolved_config(repo_root, tmp_path, monkeypatch):
  # Dispatch to a recording function instead of a real mode, through main().
  from solar_jax import configuration

  calls = []
  for mode in pipeline.MODES:
    monkeypatch.setitem(
      pipeline.ENTRY_POINTS, mode, lambda c, w, mode=mode: calls.append((mode, w))
    )
  monkeypatch.setattr(pipeline, "check_inputs", lambda *a: None)  # No checkpoint here.
  monkeypatch.chdir(repo_root)
  from absl import flags

  main_module.parse_flags(["main", "--config=tiny", f"--workdir={tmp_path}", "--mode=sample"])
  try:
    main_module.main(["main"])
  finally:
    flags.FLAGS.unparse_flags()
  assert calls == [("sample", str(tmp_path))]
  written = json.loads((tmp_path / "config.json").read_text())
  from solar_jax.configs import tiny
  from solar_jax.data import resolve

  expected = tiny.get_config()
  resolve.resolve_data(expected)  # What main resolves before writing (no dataset here).
  assert written == json.loads(configuration.to_json(expected))
  assert written["provenance"]["simulated"] is None
  assert "not built" in written["provenance"]["unreadable"]


@pytest.mark.parametrize("mode", ["bogus"])
def test_unknown_mode(cli, tmp_path, mode):
  result = cli("--config=tiny", f"--workdir={tmp_path}", f"--mode={mode}")
  assert result.returncode == 2 and "--mode" in result.stderr


def test_library_info_filter_keeps_warnings_and_our_info():
  import logging

  def record(path, level):
    return logging.LogRecord("absl", level, path, 1, "msg", None, None)

  keep = cli.LibraryInfoFilter().filter
  orbax_file = "/venv/lib/python3.11/site-packages/orbax/checkpoint/checkpoint_manager.py"
  tfds_file = "/usr/lib/python3/dist-packages/tensorflow_datasets/core/dataset_builder.py"
  assert not keep(record(orbax_file, logging.INFO))
  assert not keep(record(tfds_file, logging.INFO))
  assert keep(record(orbax_file, logging.WARNING))
  assert keep(record(main_module.__file__, logging.INFO))
  shown = cli.LibraryInfoFilter(show_libraries=True).filter  # --log_libraries
  assert shown(record(tfds_file, logging.INFO)) and shown(record(orbax_file, logging.INFO))


def test_per_class_by_name_becomes_one_count_per_class():
  config = tiny.get_config()
  flag = "--config.sampling.per_class"
  argv = ["main", f"{flag}=M:30, X:3", "--config.training.num_steps=2"]
  assert cli.per_class_by_name(config, argv) == ["main", f"{flag}=(0,0,0,30,3,)", argv[2]]
  assert cli.per_class_by_name(config, argv[:1] + [f"{flag}=(1,2,3,4,5)"])[1].endswith("4,5)")
  reordered = ["--config.data.classes=('X','M')", f"{flag}=M:7"]  # The command's classes.
  assert cli.per_class_by_name(config, reordered)[1] == f"{flag}=(0,7,)"
  for value, says in (
    ("Q:3", "'Q' is not one of data.classes (A, B, C, M, X)"),
    ("M:3,M:4", "'M' is named twice"),
    ("M:-1", "'M:-1' needs a count >= 0"),
  ):
    with pytest.raises(errors.ConfigError, match=re.escape(f"sampling.per_class={value}: {says}")):
      cli.per_class_by_name(config, [f"{flag}={value}"])


def test_evaluate_before_classify_is_one_line_exit_2(cli, tmp_path):
  workdir = tmp_path / "run"
  only_classifier = "--config.evaluation.extractors=('classifier',)"  # 'random' needs nothing.
  result = cli(
    "--config=tiny",
    f"--workdir={workdir}",
    "--mode=evaluate",
    only_classifier,
  )
  assert result.returncode == 2, result.stderr
  assert "Traceback" not in result.stderr
  line = result.stderr.strip().splitlines()[-1]
  assert line.startswith("error: no trained flare classifier") and "--mode=classify" in line
  assert not workdir.exists()


@pytest.mark.slow
def test_importing_the_package_leaves_xla_flags_alone(repo_root):
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  code = "import os, solar_jax, solar_jax.main; print(os.environ.get('XLA_FLAGS'))"
  result = subprocess.run(
    [sys.executable, "-c", code], cwd=repo_root, env=env, capture_output=True, text=True
  )
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == "None"


def test_missing_config_file_is_one_line(cli, tmp_path):
  result = cli("--config=no_such_config", f"--workdir={tmp_path / 'run'}")
  assert result.returncode == 2 and "Traceback" not in result.stderr
  line = result.stderr.strip().splitlines()[-1]
  assert line.startswith("error: --config=no_such_config: no such config; use one of")
  assert "tiny" in line  # The line names the configs there are.


def test_a_config_given_as_a_file_path_is_refused_naming_its_module(
  cli, tmp_path, repo_root, monkeypatch
):
  monkeypatch.chdir(repo_root)  # Where the file is: refused all the same.
  result = cli("--config=solar_jax/configs/tiny.py", f"--workdir={tmp_path / 'r'}")
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert "use --config=tiny" in result.stderr.strip().splitlines()[-1]
  assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
  "field,value",
  [
    ("data.shuffle_buffer", 0),
    ("data.prefetch", -5),
    ("evaluation.batch_size", 0),
    ("evaluation.kid_bootstrap", 0),
    ("evaluation.floor_split", "test"),
    ("evaluation.num_clusters", 1),
    ("classifier.learning_rate", 0.0),
  ],
)
def test_values_that_failed_late_are_rejected_up_front(field, value):
  from solar_jax import configuration
  from solar_jax.configs import tiny

  config = tiny.get_config()
  section, key = field.split(".")
  config[section][key] = value
  with pytest.raises(configuration.ConfigError, match=f"{field}={value}"):
    checks.validate(config, num_devices=8)


def test_permission_denied_is_a_user_error():
  from solar_jax import errors

  assert errors.exit_code(PermissionError(13, "Permission denied", "/runs/x/.lock")) == 2
