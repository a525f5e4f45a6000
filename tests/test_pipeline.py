"""pipeline: a generator is bound to the data it learned from (check_generator).

A workdir's DDPM records its data (``data.splits.training_record``: dataset version,
training months, embargo, label policy) with every checkpoint; a stage that uses it
on other data is refused before anything is written.
"""

import shutil

import jax
import numpy as np
import pytest
from conftest import TINY_CHECKPOINT_STEP, tiny_checkpoint_config

from solar_jax import checkpointing, parallel
from solar_jax import workdir as wd
from solar_jax.classifier import training_sets
from solar_jax.data import resolve
from solar_jax.ddpm import sample, train_state


@pytest.fixture(scope="module")
def fold0_run(tmp_path_factory, demo_tfds):
  """A workdir whose DDPM (a fresh tiny init) learned from fold 0 of the demo dataset: its
  config resolved against the dataset as a run's is (version, 10 folds)."""
  path = tmp_path_factory.mktemp("fold0") / "run"
  config = tiny_checkpoint_config()
  config.data.data_dir = str(demo_tfds)
  resolve.resolve_data(config)
  assert config.provenance.num_folds == 10 and config.provenance.version
  mesh = parallel.create_mesh(config.mesh)
  with jax.set_mesh(mesh):
    state = train_state.init_train_state(config, mesh)
  checkpointer = checkpointing.Checkpointer(path, keep=1)
  checkpointer.save(TINY_CHECKPOINT_STEP, state, {"config": config.to_json()})
  checkpointer.close()
  wd.write_config(config, path)
  return path


def _files(root):
  return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _run(cli, workdir, demo_tfds, mode, *flags):
  return cli(
    "--config=tiny",
    f"--config.data.data_dir={demo_tfds}",
    "--config.sampling.num_steps=2",
    "--config.classifier.regimes=('real','real_synthetic')",
    f"--mode={mode}",
    *flags,
    f"--workdir={workdir}",
  )


@pytest.mark.parametrize("mode", ["sample", "export", "classify"])
@pytest.mark.parametrize(
  "flag, named",
  [
    ("--config.data.fold=3", "data.fold=0 there (months mod 10 not in {0, 5}), 3 here"),
    ("--config.data.label=flare_class", "data.label='goes_class' there, 'flare_class' here"),
    ("--config.data.embargo_days=30", "data.embargo_days=14.0 there, 30.0 here"),
  ],
)
def test_a_generator_of_other_data_is_one_line_exit_2_and_nothing_written(
  cli, fold0_run, demo_tfds, tmp_path, mode, flag, named
):
  workdir = tmp_path / "run"
  shutil.copytree(fold0_run, workdir)
  before = {p.relative_to(workdir): b for p, b in _files(workdir).items()}
  result = _run(cli, workdir, demo_tfds, mode, flag)
  assert result.returncode == 2, result.stderr[-2000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
  assert named in lines[0] and str(wd.checkpoints_dir(workdir)) in lines[0]
  assert {p.relative_to(workdir): b for p, b in _files(workdir).items()} == before


def test_the_fold_sharing_its_training_months_uses_the_same_generator(
  cli, fold0_run, demo_tfds, tmp_path, monkeypatch
):
  # Fold 5 swaps fold 0's test and validation months: the same training months.
  workdir = tmp_path / "run"
  shutil.copytree(fold0_run, workdir)
  result = _run(cli, workdir, demo_tfds, "export", "--config.data.fold=5")
  assert result.returncode == 0, result.stderr[-2000:]
  export = wd.export_dir(workdir, TINY_CHECKPOINT_STEP)
  # The export records the data; sampling from it on another fold's data is refused too.
  result = _run(
    cli, tmp_path / "other", demo_tfds, "sample", "--config.data.fold=1",
    f"--config.sampling.checkpoint={export}",
  )  # fmt: skip
  assert result.returncode == 2
  assert "data.fold=5 there (months mod 10 not in {0, 5}), 1 here" in result.stderr
  assert str(export) in result.stderr and not (tmp_path / "other").exists()

  # The partner fold's classifier draws its synthetic pools from that export, in its own
  # workdir (which has no DDPM checkpoint of its own).
  config = tiny_checkpoint_config()
  config.data.fold, config.sampling.checkpoint = 5, str(export)
  drawn = []

  def generate(config, params, labels, **kwargs):
    drawn.append(sorted(params))
    return np.zeros((len(labels), config.data.image_size, config.data.image_size, 1), np.float32)

  monkeypatch.setattr(sample, "generate", generate)
  partner = tmp_path / "fold5"
  pool = training_sets.synthetic_pool(config, partner, [1, 0, 2, 0, 0])
  assert pool["step"] == TINY_CHECKPOINT_STEP and pool["label"].tolist() == [0, 2, 2]
  assert pool["path"].startswith(str(partner / "samples")) and drawn
