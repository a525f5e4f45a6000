"""Reliability end to end: SIGKILL, SIGTERM, corrupt checkpoints, two runs, a changed config,
NaN, input errors.

Runs that are killed, stopped or interrupted are subprocesses of the real command line
(``tests/reliability_driver.py`` is ``solar_jax.main`` with a deterministic synthetic
stream in place of the TFDS dataset) on one CPU device (tiny's mesh); they share the
session's persistent compilation cache so that a restart does not compile again. The
uninterrupted reference and the runs that end on their own (errors, NaN) run the same
command in-process (``cli``, with the driver's substitutions), on one device as well.
"""

import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import reliability_driver
from absl import logging as absl_logging

from solar_jax import checkpointing, errors, parallel, pipeline
from solar_jax.configs import tiny
from solar_jax.data import input_pipeline, resolve
from solar_jax.ddpm import train, train_state

REPO = pathlib.Path(__file__).resolve().parents[1]
DRIVER = REPO / "tests" / "reliability_driver.py"
STEPS = 6
# Smaller than tiny: one resolution level, no attention but the middle block's, on 16²
# images (synthetic: any side will do), so a compile takes seconds and a step ~50 ms (at
# 32² the middle block attends over 1024 positions: ~0.6 s a step).
MODEL = {"channel_mult": (1,), "attention_resolutions": ()}
IMAGE_SIZE = 16
# The same command for every run of a workdir: checkpoints at 2, 4, 6; the last 2 kept.
TRAIN_FLAGS = (
  "--config=tiny",
  f"--config.data.image_size={IMAGE_SIZE}",
  *(f"--config.model.{k}={v}" for k, v in MODEL.items()),
  f"--config.training.num_steps={STEPS}",
  "--config.training.checkpoint_every=2",
  "--config.training.keep_checkpoints=2",
  "--config.training.log_every=1",
  "--config.training.num_sample_images=0",
  "--config.logging.tensorboard=False",
)
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def env():
  """The runs' environment: the session's XLA flags (its fake device count too: tiny's mesh
  takes the first device) and compilation cache (conftest), every program cached. JAX's
  cache key holds the process's device topology, so with the same device count no run
  compiles what an earlier one, or this process, did."""
  env = dict(os.environ)
  env.pop("SOLAR_JAX_TEST_HANG_IN_SAVE", None)
  env.update(
    PYTHONPATH=str(REPO),
    JAX_PLATFORMS="cpu",
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    TF_CPP_MIN_LOG_LEVEL="2",
  )
  return env


def _command(workdir, flags, module: bool):
  entry = ["-m", "solar_jax.main"] if module else [str(DRIVER)]
  return [sys.executable, *entry, *flags, *([f"--workdir={workdir}"] if workdir else [])]


def _run(env, workdir, *flags, base=TRAIN_FLAGS, module=False):
  """Runs to the end; returns the CompletedProcess (stderr holds the logs)."""
  return subprocess.run(
    _command(workdir, (*base, *flags), module),
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=TIMEOUT_S,
  )


def _start(env, workdir, log, *flags, **extra_env):
  """Starts a training run in the background, its output going to ``log``."""
  with open(log, "w") as out:  # The child keeps its own copy of the descriptor.
    return subprocess.Popen(
      _command(workdir, (*TRAIN_FLAGS, *flags), module=False),
      cwd=REPO,
      env=dict(env, **extra_env),
      stdout=out,
      stderr=subprocess.STDOUT,
    )


def _wait_for(condition, proc, log):
  deadline = time.monotonic() + TIMEOUT_S
  while not condition():
    if proc.poll() is not None or time.monotonic() > deadline:
      proc.kill()
      pytest.fail(f"run ended (rc {proc.poll()}) before it got there:\n{log.read_text()[-3000:]}")
    time.sleep(0.02)


def _steps(workdir) -> list[int]:
  """Complete checkpoints (orbax renames a step's directory to its number when done)."""
  directory = workdir / "checkpoints"
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def _history(workdir) -> list[int]:
  path = workdir / "train_metrics.jsonl"
  if not path.exists():
    return []
  lines = [line for line in path.read_text().splitlines() if line.endswith("}")]
  return [int(re.search(r'"step": (\d+)', line).group(1)) for line in lines]


def _error_line(result) -> str:
  """The one ``error:`` line of a failed run; no traceback."""
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1, result.stderr[-3000:]
  assert result.stderr.strip().splitlines()[-1] == errors[0]
  return errors[0]


def _state(workdir, **training):
  """``(meta step, host copy of the train state)`` of the newest readable checkpoint."""
  config = tiny.get_config()
  config.data.image_size = IMAGE_SIZE
  config.model.update(MODEL)
  config.training.update(training)
  config.mesh.data = 1
  mesh = parallel.create_mesh(config.mesh, devices=jax.devices()[:1])
  abstract, _ = train_state.abstract_train_state(config, mesh)
  ckpt = checkpointing.Checkpointer(workdir, keep=2, read_only=True)
  try:
    state, meta = ckpt.restore(abstract)
  finally:
    ckpt.close()
  return meta["step"], checkpointing.host_copy(state)


def _assert_same_state(a, b):
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(leaves_a) == len(leaves_b)
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)


def _run_here(cli, workdir, *flags):
  """The driver's command run in this process (``cli``), with the driver's substitutions:
  the same program on one device (tiny's mesh), without a new interpreter. As in a
  subprocess's, ``stderr`` holds the run's absl log lines (info and up) before what the
  command printed."""
  logged = []

  def recorder(level):
    real = getattr(absl_logging, level)

    def log(msg, *args, **kwargs):
      logged.append(str(msg) % args if args else str(msg))
      real(msg, *args, **kwargs)

    return log

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(train, "_train_iterator", reliability_driver.synthetic_batches)
    patch.setattr(train, "train_frames_per_class", lambda config: None)
    patch.setattr(input_pipeline, "get_builder", lambda data_config: None)
    patch.setattr(input_pipeline, "verify_shards", lambda *args, **kwargs: None)
    patch.setattr(resolve, "resolve_data", lambda config: None)
    for level in ("info", "warning", "error"):  # absl's level is the command's own flag.
      patch.setattr(absl_logging, level, recorder(level))
    result = cli(*TRAIN_FLAGS, *flags, f"--workdir={workdir}")
  return result._replace(stderr="".join(f"{line}\n" for line in logged) + result.stderr)


@pytest.fixture(scope="module")
def trained_run(cli, tmp_path_factory):
  """The workdir of one run of the command from start to end (copy it to change it); run
  in this process: the runs it is compared with are interrupted subprocesses."""
  workdir = tmp_path_factory.mktemp("uninterrupted") / "run"
  result = _run_here(cli, workdir)
  assert result.returncode == 0, result.stderr[-3000:]
  assert _steps(workdir) == [4, 6]
  return workdir


@pytest.fixture(scope="module")
def uninterrupted(trained_run):
  """Final train state of one run of the command from start to end."""
  step, state = _state(trained_run)
  assert step == STEPS
  return state


@pytest.mark.slow
@pytest.mark.long
def test_killed_anywhere_or_corrupted_the_same_command_ends_as_uninterrupted(
  env, uninterrupted, cli, tmp_path
):
  workdir = tmp_path / "run"
  # 1. SIGKILL inside the save of checkpoint 6: its files are written, the commit is not.
  log = tmp_path / "killed_in_save.log"
  proc = _start(env, workdir, log, SOLAR_JAX_TEST_HANG_IN_SAVE="6")
  _wait_for((workdir / "hanging_in_save").exists, proc, log)
  assert list((workdir / "checkpoints").glob("6.orbax-checkpoint-tmp*"))
  proc.send_signal(signal.SIGKILL)
  assert proc.wait() == -signal.SIGKILL
  assert _steps(workdir) == [2, 4]
  # The dead run's lock file stays behind, naming it; it must not block the next run.
  assert f"pid {proc.pid} " in (workdir / ".lock").read_text()

  # 2. The latest complete checkpoint is then truncated.
  for path in (workdir / "checkpoints" / "4" / "state").rglob("*"):
    if path.is_file() and path.stat().st_size > 0 and "metadata" not in path.name:
      path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])

  # 3. The same command warns, falls back to checkpoint 2 and trains; SIGKILL at a
  # random moment once it is training again.
  log = tmp_path / "killed_at_random.log"
  assert _history(workdir) == [1, 2, 3, 4, 5, 6]  # Logged before the kill in save 6.
  proc = _start(env, workdir, log)
  # On resuming from 2 the rows after it go; then step 3 is done again.
  _wait_for(lambda: 3 <= len(_history(workdir)) < STEPS, proc, log)
  time.sleep(random.Random(0).uniform(0.0, 0.3))  # Steps take ~50 ms, a save ~1 s.
  proc.send_signal(signal.SIGKILL)
  assert proc.wait() == -signal.SIGKILL, log.read_text()[-3000:]  # Killed before its end.
  text = log.read_text()
  assert re.search(r"checkpoint \S+/checkpoints/4 is unreadable", text), text[-3000:]
  assert "Resumed from checkpoint at step 2." in text
  assert (workdir / "checkpoints" / "4.unreadable").is_dir()  # Kept for inspection.
  resume_from = _steps(workdir)[-1]

  # 4. Once more (a run that ends on its own: in this process): it resumes from the last
  # complete checkpoint and finishes.
  result = _run_here(cli, workdir)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"Resumed from checkpoint at step {resume_from}." in result.stderr
  assert _steps(workdir) == [4, 6]
  assert not list((workdir / "checkpoints").glob("*tmp*"))  # Partial saves cleaned up.
  assert _history(workdir) == list(range(1, STEPS + 1))  # Each step once, as uninterrupted.
  step, state = _state(workdir)
  assert step == STEPS
  _assert_same_state(state, uninterrupted)


@pytest.mark.slow
@pytest.mark.long
def test_second_run_refuses_and_sigterm_saves_the_current_step(env, cli, tmp_path):
  workdir = tmp_path / "run"
  endless = ("--config.training.num_steps=100000", "--config.training.checkpoint_every=100000")
  log = tmp_path / "first.log"
  first = _start(env, workdir, log, *endless)
  _wait_for(lambda: len(_history(workdir)) >= 2, first, log)
  config_json = (workdir / "config.json").read_text()

  first.send_signal(signal.SIGSTOP)  # Still alive and holding the lock, but not using the CPU.
  try:
    second = _run_here(cli, workdir, *endless, "--config.seed=1")  # Refused: in this process.
  finally:
    first.send_signal(signal.SIGCONT)
  assert second.returncode == 2
  line = _error_line(second)
  assert f"in use by pid {first.pid} on " in line and str(workdir) in line
  assert (workdir / "config.json").read_text() == config_json  # Untouched by the refused run.

  first.send_signal(signal.SIGTERM)
  assert first.wait(timeout=TIMEOUT_S) == 0, log.read_text()[-3000:]
  last = _history(workdir)[-1]
  assert 2 <= last < 100000
  assert _steps(workdir) == [last]  # Saved at the step it had reached.
  text = log.read_text()
  assert f"Preemption signal: saved step {last}, exiting." in text
  assert f"stopped at step {last} on a preemption signal" in text.strip().splitlines()[-1]
  assert _state(workdir)[0] == last


@pytest.mark.slow
@pytest.mark.long
def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good(cli, tmp_path):
  workdir = tmp_path / "run"
  result = _run_here(
    cli,
    workdir,
    "--config.training.learning_rate=1e30",
    "--config.training.warmup_steps=0",
    "--config.training.checkpoint_every=1",
  )
  assert result.returncode == 1
  line = _error_line(result)
  bad = int(re.search(r"non-finite loss or gradient at step (\d+)", line).group(1))
  assert bad >= 2
  assert f"the last good checkpoint (step {bad - 1}) is intact" in line
  assert _steps(workdir)[-1] == bad - 1
  step, state = _state(workdir)
  assert step == bad - 1 and checkpointing.all_finite(state)


@pytest.mark.slow
def test_a_changed_model_or_data_config_leaves_the_checkpoints_intact(cli, trained_run, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(trained_run, workdir, ignore=shutil.ignore_patterns(".lock"))
  before = sorted(p.name for p in (workdir / "checkpoints").iterdir())
  history = (workdir / "train_metrics.jsonl").read_text()
  config_json = (workdir / "config.json").read_text()
  # The command of the run in this process (the synthetic stream is never reached: the
  # config is refused before the first step).
  for flag, named in (
    ("--config.model.base_channels=32", "model.base_channels=16 there, 32 here"),
    # Resuming on another fold would train on the first fold's test months.
    ("--config.data.fold=1", "data.fold=0 there (its training months), 1 here"),
  ):
    result = _run_here(cli, workdir, flag)
    assert result.returncode == 2
    line = _error_line(result)
    assert named in line
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == before  # None renamed.
    assert (workdir / "train_metrics.jsonl").read_text() == history
    assert (workdir / "config.json").read_text() == config_json
  # Sampling with the classes in another order would relabel every image.
  reordered = cli(
    *TRAIN_FLAGS,
    f"--workdir={workdir}",
    "--mode=sample",
    "--config.data.classes=('X','M','C','B','A')",
  )
  assert reordered.returncode == 2
  assert "data.classes" in _error_line(reordered)
  assert not (workdir / "samples").exists()


def _missing_dataset(tmp_path):
  empty = tmp_path / "tfds"
  empty.mkdir()
  flags = (
    "--mode=train",
    f"--config.data.data_dir={empty}",
    "--config.data.image_size=64",  # The stored side of builder config '64'.
    "--config.model.attention_resolutions=(32,)",
  )
  return flags, "is not built in"


def _missing_checkpoint(tmp_path):
  return ("--mode=sample",), "no checkpoint in"


def _missing_weights(tmp_path):
  flags = (
    "--mode=evaluate",
    "--config.evaluation.extractors=('inception',)",
    f"--config.evaluation.inception_weights={tmp_path / 'inception_fid.npz'}",
  )
  return flags, "config.evaluation.inception_weights="


def _bad_config_value(tmp_path):
  return ("--config.diffusion.schedule=cubic",), "diffusion.schedule='cubic'"


@pytest.mark.parametrize(
  "case", [_missing_dataset, _missing_checkpoint, _missing_weights, _bad_config_value]
)
def test_input_errors_are_one_line_and_leave_no_workdir(cli, tmp_path, case):
  flags, expected = case(tmp_path)
  workdir = tmp_path / "run"
  result = cli("--config=tiny", *flags, f"--workdir={workdir}")
  assert result.returncode == 2
  assert expected in _error_line(result)
  assert not workdir.exists()  # Nothing a later run could mistake for a real run.


def test_missing_or_unusable_workdir_is_one_line(cli, tmp_path, monkeypatch):
  result = cli(*TRAIN_FLAGS)
  assert result.returncode == 2 and "--workdir" in _error_line(result)
  blocker = tmp_path / "a_file"
  blocker.write_text("")
  monkeypatch.setattr(pipeline, "check_inputs", lambda *a: None)
  with pytest.raises(errors.WorkdirError, match="cannot use --workdir=") as info:
    pipeline.run_in_workdir(tiny.get_config(), str(blocker / "run"), "train", None)
  assert errors.exit_code(info.value) == 2


@pytest.mark.parametrize("previous", [None, '{"seed": 7}'])
def test_run_failing_on_an_input_error_puts_config_json_back(tmp_path, monkeypatch, previous):
  config_path = tmp_path / "config.json"
  if previous is not None:
    config_path.write_text(previous)
  monkeypatch.setattr(pipeline, "check_inputs", lambda *a: None)
  seen = []

  def missing_input(config, workdir):
    seen.append(config_path.read_text())  # The run's own config was in place while it ran.
    raise errors.MissingInputError("no readable checkpoint")

  with pytest.raises(FileNotFoundError):
    pipeline.run_in_workdir(tiny.get_config(), str(tmp_path), "sample", missing_input)
  assert seen and seen[0] != previous
  assert (config_path.read_text() if config_path.exists() else None) == previous

  def non_finite(config, workdir):
    raise errors.NonFiniteError("non-finite loss or gradient at step 3")

  with pytest.raises(errors.NonFiniteError):  # A real run: its config.json stays.
    pipeline.run_in_workdir(tiny.get_config(), str(tmp_path), "sample", non_finite)
  assert config_path.read_text() == seen[0]


def test_unexpected_errors_keep_their_traceback(tmp_path, monkeypatch):
  monkeypatch.setattr(pipeline, "check_inputs", lambda *a: None)

  def bug(config, workdir):
    return np.zeros(2) + np.zeros(3)  # A ValueError from inside NumPy: a bug, not input.

  with pytest.raises(ValueError) as info:
    pipeline.run_in_workdir(tiny.get_config(), str(tmp_path), "train", bug)
  assert errors.exit_code(info.value) is None
  assert errors.exit_code(ValueError("x")) is None


# ------------------------------------------------------- a full disk ---


@pytest.fixture
def small_tmpfs(tmp_path):
  """A 1.6 MB tmpfs: room for two checkpoints of the reliability model, not three."""
  mount = tmp_path / "fs"
  mount.mkdir()
  if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1600k", "tmpfs", str(mount)]).returncode:
    pytest.skip("cannot mount a tmpfs here (needs root)")
  try:
    yield mount
  finally:
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
@pytest.mark.long
def test_a_full_disk_during_a_save_is_exit_3_and_the_rerun_resumes(env, cli, small_tmpfs):
  workdir = small_tmpfs / "run"
  result = _run(env, workdir)
  assert result.returncode == 3, result.stderr[-3000:]
  # One error line, the last: orbax's and asyncio's save threads may still log the
  # ENOSPC with their own tracebacks before it (library threads, not ours).
  lines = result.stderr.strip().splitlines()
  assert [x for x in lines if x.startswith("error:")] == [lines[-1]]
  line = lines[-1]
  assert "No space left on device" in line and "run the same command again" in line
  kept = _steps(workdir)  # The complete checkpoints before the disk filled.
  assert kept and kept[-1] < STEPS
  subprocess.run(["mount", "-o", "remount,size=16m", str(small_tmpfs)], check=True)
  again = _run_here(cli, workdir)  # Ends on its own: in this process.
  assert again.returncode == 0, again.stderr[-3000:]
  assert _steps(workdir) == [4, 6]
  assert f"Resumed from checkpoint at step {kept[-1]}" in again.stderr
