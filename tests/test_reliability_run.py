"""Reliability, third round (issue 31), run side: each case failed before its fix.

Config values and stored configs, writes through planted links, half-written sample
sets and exports, non-ASCII workdirs, sizes refused before allocation, SIGINT, and
what a failed first run leaves. The command line runs in-process (``cli``) except
where a real interpreter is the point (signals: ``test_reliability``'s driver).
"""

import contextlib
import io
import json
import math
import os
import signal
import sys

import ml_collections
import pytest
import test_reliability as rel
from absl import flags

from configs import tiny
from solar_jax import configuration, errors
from solar_jax import main as main_module

env = rel.env  # The subprocess environment fixture of the reliability tests.
TINY = rel.REPO / "configs" / "tiny.py"


def cli(*args):
  """``python -m solar_jax.main ARGS`` in this process: ``(exit code, stderr)``."""
  argv, sys.argv = sys.argv, ["solar_jax.main", *map(str, args)]
  err = io.StringIO()
  try:
    with contextlib.redirect_stderr(err):
      main_module.run()
    code = 0
  except SystemExit as e:
    code = 0 if e.code is None else e.code
  finally:
    sys.argv = argv
    flags.FLAGS.unparse_flags()
    for name in [n for n in flags.FLAGS if n.startswith("config.")]:
      delattr(flags.FLAGS, name)  # The config flag defines one per override, per parse.
  return code, err.getvalue()


def error_line(stderr: str) -> str:
  """The one ``error:`` line, last, with no traceback."""
  assert "Traceback" not in stderr, stderr[-3000:]
  lines = [line for line in stderr.splitlines() if line.startswith("error:")]
  assert len(lines) == 1, stderr[-3000:]
  assert stderr.strip().splitlines()[-1] == lines[0]
  return lines[0]


def write_config(path, config=None, edit=None):
  """A run's config.json (tiny's unless ``config``), as a dict after ``edit(dict)``."""
  stored = json.loads(configuration.to_json(config or tiny.get_config()))
  if edit is not None:
    stored = edit(stored) or stored
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(stored))  # NaN and Infinity as Python's json writes them.
  return path


@pytest.fixture
def recorded(monkeypatch):
  """Every mode records ``(mode, config, workdir)`` instead of running; inputs not checked."""
  calls = []
  for mode in configuration.MODES:
    monkeypatch.setitem(
      main_module.pipeline.ENTRY_POINTS,
      mode,
      lambda c, w, mode=mode: calls.append((mode, c, w)),
    )
  monkeypatch.setattr(main_module.pipeline, "check_inputs", lambda *a: None)
  return calls


# ------------------------------------------------- 3. numeric ranges ---


def _numeric_leaves(config: ml_collections.ConfigDict, prefix=""):
  """``(field, default)`` of every int/float leaf (tuples of them, typed placeholders)."""
  for key in config:
    value, field = config[key], prefix + key
    if isinstance(value, ml_collections.ConfigDict):
      yield from _numeric_leaves(value, field + ".")
      continue
    kind = config.get_ref(key).get_type()
    numbers = value if isinstance(value, tuple) else (value,)
    if value is None and kind in (int, float):
      yield field, value
    elif numbers and all(
      isinstance(v, int | float) and not isinstance(v, bool) for v in numbers
    ):
      yield field, value


DEFAULT_NUMERIC = dict(_numeric_leaves(configuration.default_config()))


def test_every_numeric_field_has_a_range():
  assert sorted(DEFAULT_NUMERIC) == sorted(configuration.RANGES)
  assert sorted(f for f, v in DEFAULT_NUMERIC.items() if v is None) == sorted(
    configuration.NULLABLE
  )
  config = tiny.get_config()
  configuration.validate(config, num_devices=8)  # Every shipped default lies in its range.


def _set(stored, field, value):
  *sections, key = field.split(".")
  node = stored
  for s in sections:
    node = node[s]
  default = node[key]
  element = isinstance(default, list) and default and not isinstance(value, str)
  node[key] = [value, *default[1:]] if element else value
  return stored


@pytest.mark.parametrize("field", sorted(configuration.RANGES))
def test_nan_and_inf_are_refused_for_every_numeric_field(tmp_path, field):
  for value in (math.nan, math.inf, -math.inf):
    path = write_config(tmp_path / "c.json", edit=lambda s: _set(s, field, value))
    code, stderr = cli(f"--config={path}", f"--workdir={tmp_path / 'run'}")
    assert code == 2, (field, value, stderr[-2000:])
    assert field in error_line(stderr), (field, value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
  "field",
  [
    "data.clip_max",
    "data.cooling_lag_minutes",
    "data.embargo_days",
    "training.grad_clip",
    "training.learning_rate",
    "classifier.synthetic_ratio",
  ],
)
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_nan_and_inf_overrides_are_one_line(tmp_path, field, value):
  code, stderr = cli(
    f"--config={TINY}", f"--workdir={tmp_path / 'run'}", f"--config.{field}={value}"
  )
  assert code == 2
  line = error_line(stderr)
  assert line.startswith(f"error: {field}={value}") and "finite" in line
  assert not (tmp_path / "run").exists()


# ----------------------------------------- 4. a hand-edited config.json ---


def _without(section):
  def edit(stored):
    del stored[section]

  return edit


@pytest.mark.parametrize(
  "edit, words",
  [
    (lambda s: _set(s, "training.batch_size", "64"), ["training.batch_size", "an integer"]),
    (lambda s: _set(s, "training.num_steps", True), ["training.num_steps", "an integer"]),
    (lambda s: _set(s, "data.clip_max", None), ["data.clip_max", "a number", "null"]),
    (lambda s: _set(s, "model", 3), ["section model", "JSON object"]),
    (lambda s: [s], ["the file", "JSON object", "a list"]),
    (lambda s: _set(s, "sampling.write_fits", 1), ["sampling.write_fits", "true or false"]),
    (lambda s: _set(s, "data.classes", "ABCMX"), ["data.classes", "a list"]),
    (lambda s: _set(s, "model.channel_mult", 1.5), ["model.channel_mult[0]", "an integer"]),
    (_without("model"), ["section model is missing"]),
  ],
)
def test_a_hand_edited_config_json_is_one_line_naming_the_field(tmp_path, edit, words):
  path = write_config(tmp_path / "c.json", edit=edit)
  code, stderr = cli(f"--config={path}", f"--workdir={tmp_path / 'run'}")
  assert code == 2
  line = error_line(stderr)
  for word in words:
    assert word in line, line
  assert str(path) in line
  assert not (tmp_path / "run").exists()


def test_a_config_json_round_trips_and_fields_added_since_load_with_their_default(tmp_path):
  config = tiny.get_config()
  assert configuration.to_json(configuration.from_json(write_config(tmp_path / "a.json"))) == (
    configuration.to_json(config)
  )
  added = "diffusion.loss_weighting"  # Added later; 'none' is what configs before it did.
  assert added in configuration.DEFAULT_WHEN_ABSENT

  def drop(field):
    def edit(stored):
      section, key = field.split(".")
      del stored[section][key]

    return edit

  older = configuration.from_json(write_config(tmp_path / "b.json", edit=drop(added)))
  assert older.diffusion.loss_weighting == "none"
  with pytest.raises(errors.ConfigError, match="model.num_heads is missing"):
    configuration.from_json(write_config(tmp_path / "c.json", edit=drop("model.num_heads")))


# ------------------------------------------- 8. stored configs are data ---


def test_a_stored_config_is_not_expanded_and_the_secret_never_written(
  tmp_path, monkeypatch, recorded
):
  monkeypatch.setenv("SECRET_TOKEN", "hunter2")
  planted = "/data/${SECRET_TOKEN}/tfds"

  def plant(stored):
    stored["data"]["data_dir"] = planted
    stored["sampling"]["checkpoint"] = "~/${SECRET_TOKEN}"

  path = write_config(tmp_path / "other run" / "config.json", edit=plant)
  workdir = tmp_path / "run"
  code, stderr = cli(f"--config={path}", f"--workdir={workdir}", "--mode=sample")
  assert code == 0, stderr[-2000:]
  (mode, config, _), = recorded
  assert config.data.data_dir == planted and config.sampling.checkpoint == "~/${SECRET_TOKEN}"
  written = (workdir / "config.json").read_text()
  assert "hunter2" not in written and "hunter2" not in stderr
  assert json.loads(written)["data"]["data_dir"] == planted
  # What the command line sets is expanded, as for a config file.
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  code, stderr = cli(
    f"--config={path}", f"--workdir={workdir}", "--config.data.data_dir=~/tfds"
  )
  assert code == 0, stderr[-2000:]
  assert recorded[-1][1].data.data_dir == str(tmp_path / "home" / "tfds")


def test_a_config_path_with_a_dollar_is_read_as_given(tmp_path, monkeypatch, recorded):
  monkeypatch.setenv("SECRET_TOKEN", "hunter2")
  path = write_config(tmp_path / "run$SECRET_TOKEN" / "config.json")  # Quoted in the shell.
  code, stderr = cli(f"--config={path}", f"--workdir={tmp_path / 'run'}")
  assert code == 0, stderr[-2000:]
  assert recorded and "hunter2" not in stderr
  assert not (tmp_path / "runhunter2").exists()


def test_tilde_expands_in_workdir(tmp_path, monkeypatch, recorded):
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  monkeypatch.chdir(tmp_path)
  code, stderr = cli(
    f"--config={TINY}",
    "--workdir=~/runs/a",
  )
  assert code == 0, stderr[-2000:]
  assert recorded[-1][2] == str(tmp_path / "home" / "runs" / "a")
  assert (tmp_path / "home" / "runs" / "a" / "config.json").exists()
  assert not (tmp_path / "~").exists()
