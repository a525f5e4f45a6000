"""The command line as a new user meets it: help, configs from anywhere, config.json, ~.

In-process (``cli``) but for a config module found in the working directory, which is
what a new interpreter started there does.
"""

import importlib
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from absl import flags

from solar_jax import cli, configuration, pipeline
from solar_jax import main as main_module


def _run(cwd, *args, repo_root):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(repo_root))
  return subprocess.run(
    [sys.executable, "-m", "solar_jax.main", *args],
    cwd=cwd,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )


@pytest.mark.parametrize("flag", ["--help", "-h", "--helpfull"])
def test_help_exits_0_and_lists_the_flags_and_modes(cli, flag):
  result = cli(flag)
  assert result.returncode == 0, result.stderr
  for word in ("--config", "--workdir", "--mode", *pipeline.MODES):
    assert word in result.stdout, word
  # --helpfull adds absl's list of every flag (e.g. its logging flags).
  assert ("--verbosity" in result.stdout) == (flag == "--helpfull")


@pytest.mark.slow
@pytest.mark.long
def test_a_config_copied_outside_the_repo_runs_from_another_directory(repo_root, tmp_path):
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  shutil.copy(repo_root / "solar_jax" / "configs" / "tiny.py", elsewhere / "my_config.py")
  result = _run(
    elsewhere,  # A module of the working directory, imported by name.
    "--config=my_config",
    f"--workdir={tmp_path / 'run'}",
    "--mode=sample",
    "--config.sampling.num_steps=3",
    repo_root=repo_root,
  )
  # The config loaded, was validated and read: the run stops only for want of a model.
  assert result.returncode == 2, result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith("error: no checkpoint in")
  assert "No module named" not in result.stderr


def _main_records(monkeypatch, argv, fields=None):
  """Runs main() in-process with every mode replaced by a recorder; returns the config.

  ``fields`` are set on the parsed config the way ``--config.X=V`` would (the ``cli``
  tests give the overrides on the command line).
  """
  calls = []
  for mode in pipeline.MODES:
    monkeypatch.setitem(pipeline.ENTRY_POINTS, mode, lambda c, w: calls.append(c))
  monkeypatch.setattr(pipeline, "check_inputs", lambda *a: None)
  main_module.parse_flags(["main", *argv])
  for field, value in (fields or {}).items():
    section, key = field.split(".")
    flags.FLAGS.config[section][key] = value
  try:
    main_module.main(["main"])
  finally:
    flags.FLAGS.unparse_flags()
  assert len(calls) == 1
  return calls[0]


def test_config_json_reproduces_the_run_config_exactly(repo_root, tmp_path, monkeypatch):
  monkeypatch.chdir(repo_root)
  first = tmp_path / "first"
  original = _main_records(
    monkeypatch,
    ["--config=quickstart", f"--workdir={first}", "--mode=sample"],
    {
      "classifier.guidance_scale": 3.5,
      "model.channel_mult": (1, 2, 4, 4),
      "sampling.per_class": (1, 2, 3, 4, 5),
    },
  )
  written = (first / "config.json").read_text()
  again = _main_records(
    monkeypatch,
    [f"--config={first / 'config.json'}", f"--workdir={tmp_path / 'second'}", "--mode=sample"],
  )
  assert again.to_dict() == original.to_dict()  # Tuples stay tuples, floats floats.
  assert (tmp_path / "second" / "config.json").read_text() == written
  assert type(again.model.channel_mult) is tuple and again.classifier.guidance_scale == 3.5
  again_spaced = _main_records(
    monkeypatch, ["--config", str(first / "config.json"), f"--workdir={tmp_path / 'third'}"]
  )
  assert again_spaced.to_dict() == original.to_dict()


def test_overrides_apply_on_top_of_a_config_json(cli, tmp_path):
  path = tmp_path / "config.json"
  path.write_text(
    configuration.to_json(importlib.import_module("solar_jax.configs.tiny").get_config())
  )
  result = cli(
    f"--config={path}",
    f"--workdir={tmp_path / 'run'}",
    "--config.sampling.num_steps=100000",  # Impossible for tiny's 100 timesteps.
  )
  assert result.returncode == 2
  assert "error: sampling.num_steps=100000 must lie in [1, 100]" in result.stderr


def test_a_config_json_with_an_unknown_field_is_one_line(cli, tmp_path):
  path = tmp_path / "config.json"
  stored = json.loads(configuration.to_json(configuration.default_config()))
  stored["data"]["colour"] = "red"
  path.write_text(json.dumps(stored))
  result = cli(f"--config={path}", f"--workdir={tmp_path / 'run'}")
  assert result.returncode == 2 and "data.colour" in result.stderr
  assert "Traceback" not in result.stderr


def test_tilde_and_variables_expand_in_every_path_field(repo_root, tmp_path, monkeypatch):
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  monkeypatch.setenv("WEIGHTS", "/opt/w")
  monkeypatch.chdir(repo_root)
  config = _main_records(
    monkeypatch,
    ["--config=tiny", f"--workdir={tmp_path / 'run'}"],
    {
      "data.data_dir": "~/tensorflow_datasets",
      "evaluation.inception_weights": "$WEIGHTS/inception.npz",
      "sampling.checkpoint": "~/runs/qs",
    },
  )
  assert config.data.data_dir == str(tmp_path / "home" / "tensorflow_datasets")
  assert config.evaluation.inception_weights == "/opt/w/inception.npz"
  assert config.sampling.checkpoint == str(tmp_path / "home" / "runs" / "qs")
  assert set(configuration.PATH_FIELDS) == {
    "data.data_dir",
    "evaluation.inception_weights",
    "sampling.checkpoint",
  }
  unchanged = configuration.default_config()
  unchanged.data.data_dir = "gs://bucket/tfds"
  configuration.expand_paths(unchanged)
  assert unchanged.data.data_dir == "gs://bucket/tfds"


def test_tilde_expands_on_the_command_line(cli, tmp_path, monkeypatch):
  # The shell leaves ~ after '=' alone; the run must not look for a './~' directory.
  env_home = tmp_path / "home"
  monkeypatch.setenv("HOME", str(env_home))
  result = cli(
    "--config=tiny",
    f"--workdir={tmp_path / 'run'}",
    "--mode=train",
    "--config.data.data_dir=~/tensorflow_datasets",
  )
  assert result.returncode == 2
  assert f"{env_home}/tensorflow_datasets" in result.stderr and "~" not in result.stderr


@pytest.mark.parametrize("name", ["aia171_64", "aia171_128", "aia171_256"])
def test_research_configs_state_their_measured_parameter_count(name):
  module = importlib.import_module(f"solar_jax.configs.{name}")
  config = module.get_config()
  doc = " ".join(module.__doc__.split())
  # The count the docstring states is the memory plan's, which test_benchmarks.py checks
  # exactly against the model's shapes (jax.eval_shape of the UNet's init).
  stated = re.search(r"\(([\d.]+)M parameters", doc).group(1)
  assert (
    re.search(r"Plan \(benchmarks/memory_plan\.py, XLA:CPU estimate\): ([\d.]+)M", doc)[1] == stated
  )
  # Scores published from these configs rest on N >= 1000 generated images per class.
  assert min(config.sampling.per_class) >= 1000
  assert config.evaluation.num_images >= 1000 * len(config.data.classes)


def test_orbax_read_only_warnings_are_quiet_and_others_kept():
  import logging

  def record(message):
    return logging.LogRecord(
      "absl", logging.WARNING, "/x/orbax/checkpoint_manager.py", 1, message, (), None
    )

  keep = cli.LibraryInfoFilter().filter
  assert not keep(record("Given directory is read only=%s"))
  assert not keep(record("%s is read only, save will be skipped"))
  assert keep(record("checkpoint 7 is unreadable"))


def test_evaluation_figures_reach_tensorboard(tmp_path):
  import tensorflow as tf
  from tensorboard.backend.event_processing import event_accumulator

  from solar_jax.evaluation import evaluate

  config = configuration.default_config()
  summary = {"classifier": {"fid": 2.5, "kid": {"mean": 0.125, "std": None}}, "flag": True}
  evaluate._to_tensorboard(config, tmp_path, summary, 40)
  events = event_accumulator.EventAccumulator(str(tmp_path))
  events.Reload()
  values = {
    tag: (e[0].step, float(tf.make_ndarray(e[0].tensor_proto)))
    for tag in events.Tags()["tensors"]
    for e in [events.Tensors(tag)]
  }
  assert values == {"eval/classifier/fid": (40, 2.5), "eval/classifier/kid/mean": (40, 0.125)}
