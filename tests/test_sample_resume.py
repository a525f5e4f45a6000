"""Sample sets written batch by batch: a killed run resumes to the bytes of an uninterrupted one."""

import pathlib

import jax
import numpy as np
import pytest
from conftest import tiny_checkpoint_config

from solar_jax import configuration, errors, provenance
from solar_jax import workdir as wd
from solar_jax.ddpm import sample, sample_set

# 6 images in batches of 4 (the shape test_sample_outputs compiles): 4, then 2 + padding.
PER_CLASS = (2, 1, 1, 0, 2)
FIXED_RECORD = {"date": "2026-01-01T00:00:00Z", "version": "0", "commit": "c", "command": "x"}


class Killed(Exception):
  """Stands for a SIGKILL after a batch's files are written."""


def _config(workdir):
  config = configuration.from_json(workdir / "config.json")
  config.sampling.per_class = PER_CLASS
  config.sampling.batch_size = 4
  return config


def _tree(root) -> dict:
  root = pathlib.Path(root)
  return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _count_writes(monkeypatch, kill_after=None) -> list:
  written, write = [], sample_set.Writer.write

  def counted(self, g, start, stop):
    write(self, g, start, stop)
    written.append(g)
    if kill_after is not None and len(written) == kill_after:
      raise Killed

  monkeypatch.setattr(sample_set.Writer, "write", counted)
  return written


def test_a_killed_sampling_run_resumes_to_the_bytes_of_an_uninterrupted_one(
  tiny_checkpoint, monkeypatch
):
  # The files' DATE card is the one thing that names when they were written.
  monkeypatch.setattr(provenance, "record", lambda argv=None: FIXED_RECORD)
  config = _config(tiny_checkpoint)
  params, step = sample.load_inference_params(tiny_checkpoint, config)  # As --mode=sample.
  params = jax.device_get(params)  # On the host, as test_sample_outputs': one compile for both.

  def draw():
    return sample.sample_and_write(config, tiny_checkpoint, params, step)

  whole = draw()  # Uninterrupted.
  reference = _tree(whole)
  assert "COMPLETE" in reference and not any(k.startswith("batches/") for k in reference)
  fits_files = sorted(k for k in reference if k.startswith("fits/"))
  assert len(fits_files) == sum(PER_CLASS)
  with np.load(whole / "samples.npz") as data:  # 0 where nothing was drawn: not a check.
    assert data["images"].shape[0] == sum(PER_CLASS) and np.all(data["images"] > 0)
  whole.rename(whole.parent / "reference")  # The same folder again: CKPTSRC the same.

  with monkeypatch.context() as m:  # Killed once its first batch is written.
    written = _count_writes(m, kill_after=1)
    with pytest.raises(Killed):
      draw()
  assert written == [0]
  cut = _tree(whole)
  assert "COMPLETE" not in cut and "samples.npz" not in cut
  assert {"batches/plan.json", "batches/00000.npz", "grid.png"} <= set(cut)
  assert sorted(k for k in cut if k.startswith("fits/")) == fits_files[:4]
  with pytest.raises((errors.MissingInputError, errors.DamagedFileError)):
    wd.latest_samples(tiny_checkpoint, config)  # Not readable as a set yet.

  written = _count_writes(monkeypatch)
  assert draw() == whole
  assert written == [1]  # Only the missing batch was drawn.
  assert _tree(whole) == reference
  draw()  # The same request again: reused, nothing drawn.
  assert written == [1] and _tree(whole) == reference


def test_a_set_of_another_request_is_cleared_and_damaged_batches_are_drawn_again(tmp_path):
  config = tiny_checkpoint_config()
  labels = np.repeat(np.arange(5, dtype=np.int32), PER_CLASS)
  plan = sample_set.plan(config, 3, PER_CLASS, 4)
  out = tmp_path / "samples" / "3-key"
  writer = sample_set.Writer(config, out, labels, 3, plan, "src")
  assert writer.done_batches(3) == {}  # A new set: its plan written, nothing done.
  for g in (0, 1):
    wd.write_npz(sample_set.batch_path(out, g), images=np.full((4, 32, 32, 1), g, np.float32))
  (out / "fits").mkdir()
  (out / "fits" / "synthetic_00000_A.fits").write_bytes(b"old")
  (out / "batches" / "00001.npz").write_bytes(b"PK\x03\x04 cut short")  # Damaged.
  done = sample_set.Writer(config, out, labels, 3, plan, "src").done_batches(3)
  assert list(done) == [0] and np.all(done[0] == 0)
  # Other counts: another request, whose indices mean other images; nothing is kept.
  other = sample_set.plan(config, 3, (2, 2, 2, 2, 2), 4)
  assert sample_set.Writer(config, out, labels, 3, other, "src").done_batches(3) == {}
  assert sorted(p.name for p in (out / "batches").iterdir()) == ["plan.json"]
  assert not list((out / "fits").iterdir())
  # A complete set is reused only for its own request.
  wd.write_npz(out / "samples.npz", images=np.zeros((1, 32, 32, 1), np.float32))
  wd.write_json(out / "COMPLETE", {"plan": configuration.digest(other)})
  assert sample_set.reusable(out, other) is not None and sample_set.reusable(out, plan) is None
