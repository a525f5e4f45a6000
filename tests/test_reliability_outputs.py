"""Reliability of what a run reads and writes (issue 20): each case failed before the fix.

Damaged caches and outputs, links planted in the workdir, a checkpoint made with
another config, damaged dataset shards, and the exit code of a full disk.
"""

import errno
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import test_reliability as rel

from solar_jax import errors
from solar_jax import workdir as wd
from solar_jax.classifier import training_sets as cd
from solar_jax.data import input_pipeline
from solar_jax.ddpm import sample

env = rel.env  # The subprocess environment fixture of the reliability tests.


# ------------------------------------------------------------ outputs ---


def test_truncated_pool_npz_is_a_cache_miss(tmp_path, monkeypatch):
  from solar_jax.configs import tiny

  config = tiny.get_config()
  (tmp_path / "checkpoints" / "5").mkdir(parents=True)
  path = cd.pool_set(config, tmp_path, 5, [1, 1, 0, 0, 0]) / "samples.npz"
  path.parent.mkdir(parents=True)
  good = tmp_path / "good.npz"
  wd.write_npz(good, images=np.zeros((2, 32, 32, 1), np.float32), labels=np.array([0, 1]))
  path.write_bytes(good.read_bytes()[:100])  # Damaged after it was complete (bit rot).
  wd.write_json(path.parent / "COMPLETE", {"images": 2})
  sampled = []

  def generate(config, params, labels, **kwargs):
    sampled.append(labels.tolist())
    return np.full((len(labels), 32, 32, 1), -1.0, np.float32)

  monkeypatch.setattr(sample, "generate", generate)
  monkeypatch.setattr(cd.sample, "load_inference_params", lambda workdir, config, mesh: ({}, 5))
  pool = cd.synthetic_pool(config, tmp_path, [1, 1, 0, 0, 0])
  assert sampled == [[0, 1]] and pool["label"].tolist() == [0, 1]
  assert wd.read_npz(path)["labels"].tolist() == [0, 1]  # Rewritten whole.
  assert not [p for p in path.parent.iterdir() if ".tmp" in p.name]


def test_truncated_samples_npz_is_an_error_naming_the_file(tmp_path):
  path = wd.samples_dir(tmp_path, 7) / "samples.npz"
  path.parent.mkdir(parents=True)
  wd.write_npz(path, images=np.zeros((3, 8, 8, 1), np.float32))
  path.write_bytes(path.read_bytes()[:-40])
  with pytest.raises(errors.DamagedFileError, match=str(path)) as info:
    wd.read_npz(path)
  assert errors.exit_code(info.value) == 2


def test_planted_links_are_never_written_through(tmp_path):
  target = tmp_path / "precious.txt"
  target.write_text("keep me")
  run = tmp_path / "run"
  run.mkdir()
  (run / ".lock").symlink_to(target)
  with pytest.raises(errors.WorkdirError, match="symbolic link"):
    with wd.Lock(run):
      pass
  (run / ".lock").unlink()
  (run / "config.json").symlink_to(target)
  wd.write_text(wd.config_path(run), '{"seed": 0}')
  assert target.read_text() == "keep me"
  assert not (run / "config.json").is_symlink()
  assert json.loads((run / "config.json").read_text()) == {"seed": 0}
  # A planted temporary name is removed, not followed.
  tmp_link = run / f"out.json.tmp{os.getpid()}"
  tmp_link.symlink_to(target)
  wd.write_json(run / "out.json", [1])
  assert target.read_text() == "keep me"


def test_environment_failures_exit_3_through_wrapped_causes():
  full = OSError(errno.ENOSPC, "No space left on device", "/w/checkpoints/4")
  try:
    try:
      raise full
    except OSError as e:
      raise RuntimeError("orbax: save failed") from e
  except RuntimeError as wrapped:
    assert errors.environment_failure(wrapped) is full
    assert errors.exit_code(wrapped) == 3
  assert errors.exit_code(OSError(errno.ENOENT, "no such file")) is None  # Not the machine.
  # TensorStore (orbax's writer) reports it as text.
  text = ValueError(
    'RESOURCE_EXHAUSTED: Error writing local file "/w/checkpoints/4/x": Failed to write 118 '
    "bytes to file 8: No space left on device [os_error_code='28']"
  )
  failure = errors.environment_failure(text)
  assert failure.errno == errno.ENOSPC and failure.filename == "/w/checkpoints/4/x"


# ------------------------------------------------------- checkpoints ---


def test_a_changed_model_config_leaves_the_checkpoints_intact(env, tmp_path):
  workdir = tmp_path / "run"
  assert rel._run(env, workdir).returncode == 0
  before = sorted(p.name for p in (workdir / "checkpoints").iterdir())
  history = (workdir / "train_metrics.jsonl").read_text()
  config_json = (workdir / "config.json").read_text()
  result = rel._run(env, workdir, "--config.model.base_channels=32")
  assert result.returncode == 2
  line = rel._error_line(result)
  assert "model.base_channels=16 there, 32 here" in line
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == before  # Nothing renamed.
  assert (workdir / "train_metrics.jsonl").read_text() == history
  assert (workdir / "config.json").read_text() == config_json
  # Sampling with the classes in another order would relabel every image.
  reordered = rel._run(env, workdir, "--mode=sample", "--config.data.classes=('X','M','C','B','A')")
  assert reordered.returncode == 2
  assert "data.classes" in rel._error_line(reordered)
  assert not (workdir / "samples").exists()


# ------------------------------------------------------------ shards ---


@pytest.fixture(scope="module")
def built(demo_tfds):
  return demo_tfds  # The session's demo dataset: copied before it is damaged.


def _copy(built, tmp_path):
  from solar_jax.configs import default

  data_dir = tmp_path / "tfds"
  shutil.copytree(built, data_dir)
  config = default.get_config().data
  config.data_dir = str(data_dir)
  shards = sorted(data_dir.rglob("*-block*.tfrecord-*"))
  return config, shards[0]


def test_intact_shards_pass(built, tmp_path):
  config, _ = _copy(built, tmp_path)
  input_pipeline.verify_shards(config)


def test_a_flipped_byte_names_the_shard_before_training(built, tmp_path):
  config, shard = _copy(built, tmp_path)
  data = bytearray(shard.read_bytes())
  data[len(data) // 2] ^= 0xFF
  shard.write_bytes(bytes(data))
  with pytest.raises(errors.DamagedFileError, match=shard.name) as info:
    input_pipeline.verify_shards(config)
  block = shard.name.split("-")[1].split(".")[0]  # sdo_aia171-block7.tfrecord-... -> block7
  assert "\n" not in str(info.value) and f"'{block}'" in str(info.value)


def test_a_truncated_or_missing_shard_is_named(built, tmp_path):
  config, shard = _copy(built, tmp_path)
  intact = shard.read_bytes()
  shard.write_bytes(intact[:-100])
  with pytest.raises(errors.DamagedFileError, match="truncated"):
    input_pipeline.verify_shards(config)
  shard.write_bytes(intact)
  other = next(p for p in sorted(shard.parent.glob("*-block*.tfrecord-*")) if p != shard)
  other.unlink()
  with pytest.raises(errors.DamagedFileError, match=f"{other.name}.*missing"):
    input_pipeline.verify_shards(config)


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


def test_a_full_disk_during_a_save_is_exit_3_and_the_rerun_resumes(env, small_tmpfs):
  workdir = small_tmpfs / "run"
  result = rel._run(env, workdir)
  assert result.returncode == 3, result.stderr[-3000:]
  # One error line, the last: orbax's and asyncio's save threads may still log the
  # ENOSPC with their own tracebacks before it (library threads, not ours).
  lines = result.stderr.strip().splitlines()
  assert [x for x in lines if x.startswith("error:")] == [lines[-1]]
  line = lines[-1]
  assert "No space left on device" in line and "run the same command again" in line
  kept = rel._steps(workdir)  # The complete checkpoints before the disk filled.
  assert kept and kept[-1] < rel.STEPS
  subprocess.run(["mount", "-o", "remount,size=16m", str(small_tmpfs)], check=True)
  again = rel._run(env, workdir)
  assert again.returncode == 0, again.stderr[-3000:]
  assert rel._steps(workdir) == [4, 6]
  assert f"Resumed from checkpoint at step {kept[-1]}" in again.stderr
