"""pipeline: a generator is bound to the data it learned from (check_generator).

A workdir's DDPM records its data (``data.splits.training_record``: dataset version,
training months, embargo, label policy) with every checkpoint; a stage that uses it
on other data is refused before anything is written.
"""

import json
import shutil

import numpy as np
import pytest
from conftest import TINY_CHECKPOINT_STEP, save_tiny_checkpoint, tiny_checkpoint_config
from etils import epath

from solar_jax import checkpointing, configuration, errors, pipeline, provenance, report, viz
from solar_jax import workdir as wd
from solar_jax.classifier import folds, training_sets
from solar_jax.data import input_pipeline, resolve, splits
from solar_jax.ddpm import sample, train, train_state
from solar_jax.diffusion import samplers


@pytest.fixture(scope="module")
def fold0_run(tmp_path_factory, demo_tfds):
  """A workdir whose DDPM (a fresh tiny init) learned from fold 0 of the demo dataset: its
  config resolved against the dataset as a run's is (version, 10 folds)."""
  path = tmp_path_factory.mktemp("fold0") / "run"
  config = tiny_checkpoint_config()
  config.data.data_dir = str(demo_tfds)
  resolve.resolve_data(config)
  assert config.provenance.num_folds == 10 and config.provenance.version
  save_tiny_checkpoint(path, config)
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


# Each stage that uses the generator, each with another field of its data (the check is one
# function for every stage and field: data.splits.record_changes, tested in test_splits).
@pytest.mark.slow
@pytest.mark.parametrize(
  "mode, flag, named",
  [
    ("sample", "--config.data.fold=3", "data.fold=0 there (months mod 10 not in {0, 5}), 3 here"),
    ("export", "--config.data.label=flare_class", "data.label='xrs_class' there, 'flare_class'"),
    ("classify", "--config.data.embargo_days=30", "data.embargo_days=14.0 there, 30.0 here"),
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


@pytest.mark.slow
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


# ------------------------------------------------------------ the study ---


@pytest.mark.parametrize("num_folds", [3, 4, 5, 10])
def test_the_study_trains_one_generator_per_training_partition(num_folds):
  plan = pipeline.study_plan(num_folds)
  assert sorted(f for f, _ in plan) == list(range(num_folds))
  leaders = [f for f, leader in plan if leader is None]
  assert plan[: len(leaders)] == [(f, None) for f in leaders]  # Generators first.
  partition = {f: splits.training_partition(f, num_folds) for f in range(num_folds)}
  assert len(leaders) == len(set(partition.values()))  # One DDPM per partition.
  for fold, leader in plan:
    if leader is not None:
      assert partition[fold] == partition[leader] and leader in leaders
  assert len(leaders) == (num_folds // 2 if num_folds % 2 == 0 else num_folds)


def test_the_study_runs_month_block_folds_only(tmp_path):
  config = tiny_checkpoint_config()
  config.provenance.num_folds, config.data.split = 4, "forward"
  with pytest.raises(errors.ConfigError, match="data.split='forward' is run fold by fold"):
    pipeline.run_study(config, tmp_path, lambda *a: pytest.fail("nothing runs"))
  assert not list(tmp_path.iterdir())


def test_the_study_pools_each_generators_rare_class_realism_once(tmp_path):
  """realism.md: per class each generator's KID against its unseen frames, with N, and the
  N-weighted pool over the generators (leader folds only: a partner shares the frames)."""

  def metrics(rows):
    per_class = {c: {"n": n, "kid": {"mean": k}} for c, (n, k) in rows.items()}
    return {"features": {"random": {"per_class_unseen": per_class}}}

  got = {0: metrics({"M": (30, 0.01), "X": (4, 0.05)}), 1: metrics({"M": (10, 0.03)})}
  got[1]["features"]["random"]["per_class_unseen"]["X"] = {"n": 1, "not_estimable": "N=1"}
  for fold, m in got.items():
    wd.eval_dir(tmp_path / f"fold_{fold}").mkdir(parents=True)
    wd.write_json(wd.eval_dir(tmp_path / f"fold_{fold}") / "metrics.json", m)
  workdirs = {f: tmp_path / f"fold_{f}" for f in (0, 1, 2)}  # Fold 2 not evaluated.
  text = pipeline.write_study_realism(workdirs, tmp_path)
  assert text == (tmp_path / "realism.md").read_text()
  assert "| M | 30, 0.01 | 10, 0.03 | N=40, KID 0.015 |" in text  # (30*.01+10*.03)/40
  assert "| X | 4, 0.05 | 1, n/a | N=4, KID 0.05 |" in text and "fold 2" not in text
  assert pipeline.write_study_realism({3: tmp_path / "none"}, tmp_path / "x") is None


def test_the_study_runs_each_fold_on_its_generator_and_pools_them(tmp_path, monkeypatch):
  """The stages each fold runs (through run_in_workdir), which generator a partner
  fold samples from, the pooled folds; a second call finds the exports and reuses them."""
  config = tiny_checkpoint_config()
  config.provenance.num_folds = 4
  calls, pooled = [], []

  def run_in_workdir(c, workdir, mode, entry):
    calls.append((c.data.fold, mode, c.sampling.checkpoint))
    if mode == "train":
      (epath.Path(workdir) / "checkpoints" / "7").mkdir(parents=True, exist_ok=True)
    if mode == "export":
      export = wd.export_dir(workdir, 7)
      export.mkdir(parents=True)
      (export / sample.EXPORT_META).write_text("{}")

  monkeypatch.setattr(folds, "write_pooled", lambda w, out: pooled.append((w, out)) or "")
  pipeline.run_study(config, tmp_path, run_in_workdir)
  export = {f: str(wd.export_dir(tmp_path / f"fold_{f}", 7)) for f in (0, 1)}
  assert calls == [
    *((f, stage, "") for f in (0, 1) for stage in pipeline.LEADER_STAGES),
    *((f, stage, export[f - 2]) for f in (2, 3) for stage in pipeline.PARTNER_STAGES),
  ]
  assert pooled == [([tmp_path / f"fold_{f}" for f in range(4)], tmp_path)]
  assert not (tmp_path / "realism.md").exists()  # No fold evaluated: nothing to pool.
  del calls[:]
  pipeline.run_study(config, tmp_path, run_in_workdir)  # Resumed: nothing exported again.
  assert [c for c in calls if c[1] == "export"] == []
  config.provenance.num_folds, config.provenance.unreadable = 0, "no dataset here"
  with pytest.raises(errors.MissingInputError, match="no dataset here"):
    pipeline.run_study(config, tmp_path / "x", run_in_workdir)


def _finished(workdir, config) -> None:
  """What a finished run leaves for its report (beside fold0_run's checkpoint): the training
  record, its history, a whole sample set of config's settings."""
  train._write_training_record(config, workdir, reads_dataset=True)
  wd.write_text(wd.history_path(workdir), '{"step": 3, "loss": 0.5, "images_per_sec": 9.0}\n')
  viz.save_loss_curve([3], [0.5], workdir / "loss_curve.png")
  out = wd.samples_dir(workdir, TINY_CHECKPOINT_STEP, wd.sample_key(config))
  out.mkdir(parents=True)
  labels = np.arange(len(config.data.classes), dtype=np.int32)
  wd.write_npz(
    out / "samples.npz",
    images=np.ones((len(labels), 32, 32, 1), np.float32),
    labels=labels,
    class_names=np.array(config.data.classes),
    step=np.int64(TINY_CHECKPOINT_STEP),
    **{k: np.asarray(v) for k, v in samplers.recorded_settings(config).items()},
  )
  wd.write_json(out / sample.COMPLETE, {"images": len(labels)})


def test_mode_report_rebuilds_the_report_from_the_files_alone(
  cli, fold0_run, tmp_path, monkeypatch
):
  """--mode=report writes the report --mode=all's last stage writes, but for the line that
  names who made it (date, command), and reads no model, no sample and no dataset."""
  workdir = tmp_path / "run"
  shutil.copytree(fold0_run, workdir)
  config = configuration.from_json(workdir / "config.json")
  _finished(workdir, config)
  counts, withheld = _train_counts(config), train.withheld_record(config)
  trained_with = wd.train_config_path(workdir).read_bytes()
  pipeline.write_report(config, workdir)  # --mode=all's report stage.
  by_all = wd.report_path(workdir).read_text().splitlines()

  def forbidden(*args, **kwargs):
    raise AssertionError("--mode=report loaded a model, drew samples or read the dataset")

  for module, name in (
    (sample, "load_inference_params"),
    (train_state, "init_train_state"),
    (checkpointing.Checkpointer, "restore"),
    (samplers, "sample_images"),
    (input_pipeline, "get_builder"),
  ):
    monkeypatch.setattr(module, name, forbidden)
  result = cli(f"--config={workdir / 'config.json'}", f"--workdir={workdir}", "--mode=report")
  assert result.returncode == 0, result.stderr[-2000:]
  by_mode = wd.report_path(workdir).read_text().splitlines()
  made = [i for i, line in enumerate(by_mode) if line.startswith("Made ")]
  assert len(made) == 1 and made == [i for i, line in enumerate(by_all) if line.startswith("Made ")]
  assert made[0] < 5  # At the top, under the title.
  (i,) = made
  assert by_mode[:i] + by_mode[i + 1 :] == by_all[:i] + by_all[i + 1 :]
  assert f"(commit `{provenance.git_commit()}`)" in by_mode[i] and "--mode=report" in by_mode[i]
  # The training's own record: who trained, the train split's frames, a missing class named.
  info = json.loads(wd.train_info_path(workdir).read_text())
  assert info["frames_per_class"] == counts
  # The days withheld from its training months, with the setting that reproduces them.
  assert info["withheld_days"] == withheld
  assert info["withheld_days"]["fraction"] == config.data.withheld_day_fraction
  assert (
    f"Withheld from training: {len(withheld['days'])} whole days of its training months "
    f"({withheld['frames']} frames; data.withheld_day_fraction=" in "\n".join(by_mode)
  )
  text = "\n".join(by_mode)
  flaring = info["flaring_per_class"]
  assert info["label"] == "xrs_class" and all(0 <= flaring[k] <= v for k, v in counts.items())
  each = ", ".join(f"{k} {v} ({flaring[k]} flaring)" for k, v in counts.items())
  assert f"Train split frames per class (label `xrs_class`): {each}." in text
  missing = [k for k, v in counts.items() if v == 0]
  assert ("**Warning: no training frame of class" in text) == bool(missing)
  assert all(name in text for name in missing)
  assert f"`{info['command']}`" in text and "## Samples (model step 3" in text
  assert wd.train_config_path(workdir).read_bytes() == trained_with  # Never rewritten.


def _train_counts(config) -> dict:
  """Frames per class of the train split, counted from the training stream itself."""
  data = config.data.copy_and_resolve_references()
  data.class_balance = False  # Each frame once.
  batches = input_pipeline.make_for_train(
    data, "train", 4, shuffle=False, seed=0, repeat=False, drop_remainder=False
  )
  labels = np.concatenate([b["label"] for b in batches])
  return dict(zip(config.data.classes, np.bincount(labels, minlength=5).tolist()))


def test_the_report_names_a_class_the_model_never_saw(tmp_path):
  counts = {"A": 3, "B": 0, "C": 2, "M": 0, "X": 1}
  wd.write_json(
    wd.train_info_path(tmp_path),
    {**provenance.record(), "devices": "1 cpu", "frames_per_class": counts, "missing": ["B", "M"]},
  )
  text = "\n".join(report._training_lines(epath.Path(tmp_path)))
  assert "Train split frames per class: A 3, B 0, C 2, M 0, X 1." in text
  assert "**Warning: no training frame of class B, M**" in text
  assert f"(commit `{provenance.git_commit()}`) on 1 cpu" in text
  wd.train_info_path(tmp_path).write_text('{"date": ')  # Cut short: said, not raised.
  assert "is damaged" in report._training_lines(epath.Path(tmp_path))[0]
