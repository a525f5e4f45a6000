"""Reliability, third round (issue 31), run side: each case failed before its fix.

Config values and stored configs, writes through planted links, half-written sample
sets and exports, non-ASCII workdirs, sizes refused before allocation, SIGINT, and
what a failed first run leaves. The command line runs in-process (``cli``) except
where a real interpreter is the point (signals: ``test_reliability``'s driver).
"""

import json
import math
import os
import signal

import conftest
import ml_collections
import pytest
import test_reliability as rel

from solar_jax import checks, configuration, errors, pipeline
from solar_jax.configs import tiny

env = rel.env  # The subprocess environment fixture of the reliability tests.
TINY = "tiny"


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
  for mode in pipeline.MODES:
    monkeypatch.setitem(
      pipeline.ENTRY_POINTS,
      mode,
      lambda c, w, mode=mode: calls.append((mode, c, w)),
    )
  monkeypatch.setattr(pipeline, "check_inputs", lambda *a: None)
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
    elif numbers and all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
      yield field, value


DEFAULT_NUMERIC = dict(_numeric_leaves(configuration.default_config()))


def test_every_numeric_field_has_a_range():
  assert sorted(DEFAULT_NUMERIC) == sorted(configuration.RANGES)
  assert sorted(f for f, v in DEFAULT_NUMERIC.items() if v is None) == sorted(
    configuration.NULLABLE
  )
  config = tiny.get_config()
  checks.validate(config, num_devices=8)  # Every shipped default lies in its range.


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
def test_nan_and_inf_are_refused_for_every_numeric_field(cli, tmp_path, field):
  for value in (math.nan, math.inf, -math.inf):
    path = write_config(tmp_path / "c.json", edit=lambda s, v=value: _set(s, field, v))
    code, _, stderr = cli(f"--config={path}", f"--workdir={tmp_path / 'run'}")
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
def test_nan_and_inf_overrides_are_one_line(cli, tmp_path, field, value):
  code, _, stderr = cli(
    f"--config={TINY}", f"--workdir={tmp_path / 'run'}", f"--config.{field}={value}"
  )
  assert code == 2
  line = error_line(stderr)
  assert line.startswith(f"error: {field}={value}") and "finite" in line
  assert not (tmp_path / "run").exists()


def test_an_unknown_class_scale_is_one_line_before_anything_runs(cli, tmp_path):
  code, _, stderr = cli(
    f"--config={TINY}", f"--workdir={tmp_path / 'run'}", "--config.data.class_scale=published"
  )
  assert code == 2
  line = error_line(stderr)
  assert line.startswith("error: data.class_scale='published'") and "'swpc'" in line
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
def test_a_hand_edited_config_json_is_one_line_naming_the_field(cli, tmp_path, edit, words):
  path = write_config(tmp_path / "c.json", edit=edit)
  code, _, stderr = cli(f"--config={path}", f"--workdir={tmp_path / 'run'}")
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
  older = configuration.from_json(write_config(tmp_path / "d.json", edit=drop("data.split")))
  assert older.data.split == "month_blocks"  # The only rule before the field.
  with pytest.raises(errors.ConfigError, match="data.withheld_day_fraction is missing"):
    configuration.from_json(
      write_config(tmp_path / "e.json", edit=drop("data.withheld_day_fraction"))
    )
  with pytest.raises(errors.ConfigError, match="model.num_heads is missing"):
    configuration.from_json(write_config(tmp_path / "c.json", edit=drop("model.num_heads")))


# ------------------------------------------- 8. stored configs are data ---


def test_a_stored_config_is_not_expanded_and_the_secret_never_written(
  cli, tmp_path, monkeypatch, recorded
):
  monkeypatch.setenv("SECRET_TOKEN", "hunter2")
  planted = "/data/${SECRET_TOKEN}/tfds"

  def plant(stored):
    stored["data"]["data_dir"] = planted
    stored["sampling"]["checkpoint"] = "~/${SECRET_TOKEN}"

  path = write_config(tmp_path / "other run" / "config.json", edit=plant)
  workdir = tmp_path / "run"
  code, _, stderr = cli(f"--config={path}", f"--workdir={workdir}", "--mode=sample")
  assert code == 0, stderr[-2000:]
  ((mode, config, _),) = recorded
  assert config.data.data_dir == planted and config.sampling.checkpoint == "~/${SECRET_TOKEN}"
  written = (workdir / "config.json").read_text()
  assert "hunter2" not in written and "hunter2" not in stderr
  assert json.loads(written)["data"]["data_dir"] == planted
  # What the command line sets is expanded, as for a config file.
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  code, _, stderr = cli(f"--config={path}", f"--workdir={workdir}", "--config.data.data_dir=~/tfds")
  assert code == 0, stderr[-2000:]
  assert recorded[-1][1].data.data_dir == str(tmp_path / "home" / "tfds")


def test_a_config_path_with_a_dollar_is_read_as_given(cli, tmp_path, monkeypatch, recorded):
  monkeypatch.setenv("SECRET_TOKEN", "hunter2")
  path = write_config(tmp_path / "run$SECRET_TOKEN" / "config.json")  # Quoted in the shell.
  code, _, stderr = cli(f"--config={path}", f"--workdir={tmp_path / 'run'}")
  assert code == 0, stderr[-2000:]
  assert recorded and "hunter2" not in stderr
  assert not (tmp_path / "runhunter2").exists()


def test_tilde_expands_in_workdir(cli, tmp_path, monkeypatch, recorded):
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  monkeypatch.chdir(tmp_path)
  code, _, stderr = cli(
    f"--config={TINY}",
    "--workdir=~/runs/a",
  )
  assert code == 0, stderr[-2000:]
  assert recorded[-1][2] == str(tmp_path / "home" / "runs" / "a")
  assert (tmp_path / "home" / "runs" / "a" / "config.json").exists()
  assert not (tmp_path / "~").exists()


# ------------------- a trained run in a non-ASCII workdir, with planted links ---

OUTSIDE = "the user's own file"


def _planted(outside, name):
  target = outside / name
  target.write_text(OUTSIDE)
  return target


@pytest.fixture(scope="module")
def trained(cli, tmp_path_factory):
  """A run trained to its end in ``.../wörk dir/run`` by the command line (in this process), with links
  planted (before it started) where it writes its history, loss curve, grid and a FITS."""
  root = tmp_path_factory.mktemp("links")
  outside = root / "outside"
  outside.mkdir()
  workdir = root / "wörk dir" / "run"
  key = _sample_key()
  grid_dir = workdir / "samples" / f"{rel.STEPS}-{key}"
  (grid_dir / "fits").mkdir(parents=True)
  links = {
    workdir / "train_metrics.jsonl": _planted(outside, "history"),
    workdir / "loss_curve.png": _planted(outside, "curve"),
    grid_dir / "grid.png": _planted(outside, "grid"),
    grid_dir / "fits" / "synthetic_00000_A.fits": _planted(outside, "fits"),
  }
  for link, target in links.items():
    link.symlink_to(target)
  result = rel._run_here(cli, workdir, "--config.training.num_sample_images=2")
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir, links, grid_dir


def _sample_key(**sampling):
  from solar_jax import workdir as wd

  config = tiny.get_config()
  config.sampling.update(sampling)
  return wd.sample_key(config)


@pytest.mark.slow
def test_writes_replace_planted_links_and_never_write_through(trained):
  workdir, links, grid_dir = trained
  for link, target in links.items():
    assert target.read_text() == OUTSIDE, link  # The target is unchanged,
    assert not link.is_symlink(), link  # and the run's own file stands in its place.
  assert rel._history(workdir) == list(range(1, rel.STEPS + 1))
  assert (grid_dir / "grid.png").read_bytes()[:4] == b"\x89PNG"
  assert (grid_dir / "COMPLETE").exists()


def _ckptsrc(fits_file) -> str:
  from astropy.io import fits

  with fits.open(fits_file) as hdul:
    return hdul[0].header["CKPTSRC"]


@pytest.mark.slow
def test_a_non_ascii_workdir_samples_and_records_its_path(cli, trained):
  import shlex
  import urllib.parse

  import sunpy.map
  from astropy.io import fits

  from solar_jax import provenance

  workdir, _, grid_dir = trained
  at_end = sorted((grid_dir / "fits").glob("*.fits"))
  # End of --mode=train: 2 images asked, every class shown (one each).
  assert [f.stem.rsplit("_", 1)[1] for f in at_end] == list(tiny.get_config().data.classes)
  assert urllib.parse.unquote(_ckptsrc(at_end[0])) == str(workdir)
  result = cli(
    *rel.TRAIN_FLAGS, f"--workdir={workdir}", "--mode=sample", "--config.sampling.seed=3"
  )
  assert result.returncode == 0, result.stderr[-3000:]
  out = workdir / "samples" / f"{rel.STEPS}-{_sample_key(seed=3)}"
  files = sorted((out / "fits").glob("*.fits"))
  assert len(files) == sum(tiny.get_config().sampling.per_class)
  assert json.loads((out / "COMPLETE").read_text())["images"] == len(files)
  header = sunpy.map.Map(files[0]).meta
  assert urllib.parse.unquote(header["ckptsrc"]) == str(workdir)
  assert all(ord(c) < 128 for c in header["ckptsrc"])
  # The command that wrote it, non-ASCII workdir and all, comes back from the HISTORY.
  with fits.open(files[0]) as hdul:
    command = provenance.command_from_history(list(hdul[0].header["HISTORY"]))
  assert shlex.split(command)[1:] == [
    *rel.TRAIN_FLAGS,
    f"--workdir={workdir}",
    "--mode=sample",
    "--config.sampling.seed=3",
  ]


# ------------------------------------------- 6. half-written outputs ---


@pytest.mark.slow
def test_an_incomplete_sample_set_is_refused_by_evaluate(cli, trained, tmp_path):
  import shutil

  from solar_jax import report
  from solar_jax import workdir as wd

  copy = tmp_path / "run"
  shutil.copytree(trained[0], copy, ignore=shutil.ignore_patterns(".lock"))
  config = configuration.from_json(copy / "config.json")  # The last command's settings.
  samples = wd.samples_dir(copy, rel.STEPS, wd.sample_key(config))
  (samples / "COMPLETE").unlink()  # As a sampler killed before its end leaves it.
  code, _, stderr = cli(
    f"--config={copy / 'config.json'}",
    f"--workdir={copy}",
    "--mode=evaluate",
    "--config.evaluation.extractors=('random',)",
  )
  assert code == 2
  line = error_line(stderr)
  assert "is incomplete" in line and samples.name in line and "--mode=sample" in line
  assert "## Samples" not in report.render_report(config, copy)  # Not shown as a result.


@pytest.fixture(scope="module")
def exported(cli, tiny_checkpoint):
  """An export of the session's tiny checkpoint, by --mode=export (copy it to damage it)."""
  result = cli(
    f"--config={tiny_checkpoint / 'config.json'}", f"--workdir={tiny_checkpoint}", "--mode=export"
  )
  assert result.returncode == 0, result.stderr[-3000:]
  export = tiny_checkpoint / "export" / str(conftest.TINY_CHECKPOINT_STEP)
  meta = json.loads((export / "export.json").read_text())
  assert meta["files"] and meta["step"] == conftest.TINY_CHECKPOINT_STEP
  return export


def _cut(path):
  path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _largest_weights(export):
  return max((p for p in (export / "params").rglob("*") if p.is_file()), key=os.path.getsize)


def _other_model(export):
  config = configuration.from_json(export / "config.json")
  config.model.base_channels = 32
  (export / "config.json").write_text(configuration.to_json(config))


@pytest.mark.parametrize(
  "damage, named",
  [
    (lambda e: _cut(e / "export.json"), "export.json is damaged"),
    (lambda e: __import__("shutil").rmtree(e / "params"), "params is missing"),
    (lambda e: _cut(_largest_weights(e)), "is truncated"),
    (lambda e: (e / "config.json").unlink(), "config.json is missing"),
    (_other_model, "config.json is not the config the weights were exported with"),
  ],
)
@pytest.mark.slow
def test_a_damaged_export_is_one_line_and_a_typed_error(cli, exported, tmp_path, damage, named):
  import shutil

  import solar_jax

  export = tmp_path / "export"
  shutil.copytree(exported, export)
  damage(export)
  new = tmp_path / "new"
  code, _, stderr = cli(
    f"--config={exported / 'config.json'}",
    f"--workdir={new}",
    "--mode=sample",
    f"--config.sampling.checkpoint={export}",
  )
  assert code == 2
  line = error_line(stderr)
  assert named in line and str(export) in line, line
  assert not new.exists()
  with pytest.raises(errors.DamagedFileError, match=named):
    solar_jax.generate(export, classes="X", n=1)


def test_weights_that_fail_to_load_leave_no_new_workdir(cli, exported, tmp_path):
  import shutil

  export = tmp_path / "old_export"  # Written before export.json listed the file sizes.
  shutil.copytree(exported, export)
  meta = json.loads((export / "export.json").read_text())
  del meta["files"]
  (export / "export.json").write_text(json.dumps(meta))
  _cut(_largest_weights(export))
  new = tmp_path / "new"
  code, _, stderr = cli(
    f"--config={exported / 'config.json'}",
    f"--workdir={new}",
    "--mode=sample",
    f"--config.sampling.checkpoint={export}",
  )
  assert code == 2
  assert "cannot be read as the weights" in error_line(stderr)
  assert not new.exists()  # No .lock, no samples/ folder, no config.json.


def test_an_export_from_before_a_model_field_loads_with_its_default(
  exported, tmp_path, monkeypatch
):
  import shutil

  import jax

  from solar_jax import api, parallel
  from solar_jax.ddpm import sample

  export = tmp_path / "older"
  shutil.copytree(exported, export)
  stored = json.loads((export / "config.json").read_text())
  del stored["model"]["remat"]  # As if model.remat came after this export (off before).
  (export / "config.json").write_text(json.dumps(stored))
  meta = json.loads((export / "export.json").read_text())
  (export / "export.json").write_text(json.dumps({"step": meta["step"], "format": meta["format"]}))
  with pytest.raises(errors.ConfigError, match="model.remat is missing"):
    api._config_for(export)  # noqa: SLF001 - not (yet) a field that may be absent.
  monkeypatch.setattr(
    configuration, "DEFAULT_WHEN_ABSENT", (*configuration.DEFAULT_WHEN_ABSENT, "model.remat")
  )
  config, _ = api._config_for(export)  # noqa: SLF001
  assert config.model.remat is False
  config.sampling.checkpoint = str(export)
  mesh = parallel.create_mesh(config.mesh)
  with jax.set_mesh(mesh):
    params, step = sample.load_inference_params(export, config, mesh=mesh)
  assert step == conftest.TINY_CHECKPOINT_STEP and jax.tree.leaves(params)


# ------------------------------------------------ 9. bounds and endings ---


def test_sample_counts_beyond_memory_are_refused_before_allocation(cli, tmp_path, exported):
  import solar_jax

  workdir = tmp_path / "run"
  code, _, stderr = cli(
    f"--config={TINY}",
    f"--workdir={workdir}",
    "--mode=sample",
    "--config.sampling.per_class=(100000000,1,1,1,1)",
  )
  assert code == 2
  line = error_line(stderr)
  assert "GiB" in line and "sampling.per_class" in line
  assert not workdir.exists()
  with pytest.raises(errors.ConfigError, match="GiB"):
    solar_jax.generate(exported, classes="X", n=10**9)


@pytest.mark.slow
def test_sigint_saves_the_current_step_and_exits_like_a_preemption(env, tmp_path):
  workdir = tmp_path / "run"
  endless = ("--config.training.num_steps=100000", "--config.training.checkpoint_every=100000")
  log = tmp_path / "run.log"
  proc = rel._start(env, workdir, log, *endless)
  rel._wait_for(lambda: len(rel._history(workdir)) >= 2, proc, log)
  proc.send_signal(signal.SIGINT)
  assert proc.wait(timeout=rel.TIMEOUT_S) == 0, log.read_text()[-3000:]
  text = log.read_text()
  assert "Traceback" not in text and "KeyboardInterrupt" not in text
  last = rel._history(workdir)[-1]
  assert rel._steps(workdir) == [last]
  assert f"stopped at step {last} on an interrupt (SIGINT)" in text.strip().splitlines()[-1]


@pytest.mark.slow
def test_a_non_finite_loss_on_a_fresh_run_names_no_step_none(cli, tmp_path):
  workdir = tmp_path / "run"
  result = rel._run_here(
    cli,
    workdir,
    "--config.training.learning_rate=1e30",
    "--config.training.warmup_steps=0",
    "--config.training.checkpoint_every=100",
  )
  assert result.returncode == 1
  line = rel._error_line(result)
  assert "non-finite loss or gradient at step" in line
  assert "None" not in line and "no checkpoint had been saved yet" in line
