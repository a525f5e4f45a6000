"""The command line: one-line errors, config.json, mode dispatch (in-process: ``cli``)."""

import json
import os
import subprocess
import sys

import pytest

from solar_jax import checks, pipeline
from solar_jax import main as main_module


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


def test_print_config_shows_the_resolved_config_writes_nothing_and_round_trips(
  cli, tmp_path, monkeypatch, demo_tfds
):
  monkeypatch.chdir(tmp_path)
  flags = ("--print_config", f"--config.data.data_dir={demo_tfds}", "--config.training.num_steps=7")
  result = cli("--config=tiny", *flags)
  assert result.returncode == 0, result.stderr
  printed = json.loads(result.stdout)
  assert printed["training"]["num_steps"] == 7 and printed["data"]["data_dir"] == str(demo_tfds)
  assert printed["provenance"]["simulated"] is True  # Read from the dataset: resolved.
  assert list(tmp_path.iterdir()) == []  # No workdir, nothing written.
  (tmp_path / "printed.json").write_text(result.stdout)
  again = cli(f"--config={tmp_path / 'printed.json'}", "--print_config")
  assert again.returncode == 0 and json.loads(again.stdout) == printed
  # The checks still run: an impossible value is the usual one line, exit 2.
  bad = cli(
    "--config=tiny", "--print_config", "--config.training.batch_size=12", "--config.mesh.data=-1"
  )
  assert bad.returncode == 2 and bad.stderr.strip().startswith("error: training.batch_size=12")


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

  assert set(main_module.pipeline.ENTRY_POINTS) == set(pipeline.MODES)
  assert all(callable(fn) for fn in main_module.pipeline.ENTRY_POINTS.values())


def test_writes_resolved_config(repo_root, tmp_path, monkeypatch):
  # Dispatch to a recording function instead of a real mode, through main().
  from solar_jax import configuration

  calls = []
  for mode in pipeline.MODES:
    monkeypatch.setitem(
      main_module.pipeline.ENTRY_POINTS, mode, lambda c, w, mode=mode: calls.append((mode, w))
    )
  monkeypatch.setattr(main_module.pipeline, "check_inputs", lambda *a: None)  # No checkpoint here.
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

  keep = main_module.cli.LibraryInfoFilter().filter
  orbax_file = "/venv/lib/python3.11/site-packages/orbax/checkpoint/checkpoint_manager.py"
  assert not keep(record(orbax_file, logging.INFO))
  assert keep(record(orbax_file, logging.WARNING))
  assert keep(record(main_module.__file__, logging.INFO))


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
