"""Flare classifier: task labels, regime counts, learning a toy task, 1 vs 8 devices, run().

Every training test uses one config (``_config``) so the compiled programs are shared.
"""

import csv
import io
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from etils import epath

from solar_jax import checkpointing, parallel, report
from solar_jax import workdir as wd
from solar_jax.classifier import experiment as tc
from solar_jax.classifier import real_data, stacked
from solar_jax.classifier import trainer as ct
from solar_jax.classifier import training_sets as cd
from solar_jax.configs import tiny
from solar_jax.data import frame_facts
from solar_jax.ddpm import sample
from solar_jax.diffusion import samplers
from solar_jax.evaluation import features
from solar_jax.metrics import operating_point as op
from solar_jax.models import classifier as classifier_lib

SIZE = 16
GOES = ("A", "B", "C", "M", "X")


def _config(**classifier):
  """One classifier config for every training test, so the compiled programs are shared."""
  config = tiny.get_config()
  config.data.image_size = SIZE
  c = config.classifier
  c.stage_sizes = (1, 1)
  c.width = 8
  c.dropout = 0.0
  c.batch_size = 16
  c.learning_rate = 1e-2
  c.num_steps = 80
  c.eval_every = 20
  task = classifier.pop("task", None)  # 'forecast_ge_m' -> label + grouping.
  if task is not None:
    c.label = "max_class_next_24h" if task.startswith("forecast_") else ""
    c.grouping = task.removeprefix("forecast_")
  for key, value in classifier.items():
    assert key in c, key  # A field the config has (tiny's is not locked).
    c[key] = value
  return config


def toy_images(counts, rng):
  """Model-space images whose bright disk's radius encodes the class (separable by size).

  Size, not brightness: GroupNorm removes each image's mean and scale.
  """
  yy, xx = np.mgrid[:SIZE, :SIZE]
  images, labels = [], []
  for c, n in enumerate(counts):
    for _ in range(n):
      r = 1.5 + 1.3 * c
      cy, cx = rng.uniform(r, SIZE - r, 2)
      disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
      images.append(np.where(disk, 0.8, -0.8) + 0.05 * rng.standard_normal((SIZE, SIZE)))
      labels.append(c)
  return np.asarray(images, np.float32)[..., None], np.asarray(labels, np.int32)


def _split(counts, seed):
  image, label = toy_images(counts, np.random.default_rng(seed))
  times = np.array(
    [f"2014-01-01T00:{i // 60:02d}:{i % 60:02d}.000".encode() for i in range(len(label))]
  )
  # Resampling groups as the input pipeline gives them: one 'event' per 3 frames.
  groups = np.array([f"E{i // 3}".encode() for i in range(len(label))])
  return {"image": image, "label": label, "time": times, "group": groups}


@pytest.fixture(scope="module")
def one_device_mesh():
  return parallel.create_mesh(_config().mesh, devices=jax.devices()[:1])


# ------------------------------------------------------------ tasks ---


def test_task_labels_and_names():
  goes = np.arange(5)
  np.testing.assert_array_equal(classifier_lib.task_labels(goes, "multiclass", GOES), goes)
  np.testing.assert_array_equal(classifier_lib.task_labels(goes, "ge_m", GOES), [0, 0, 0, 1, 1])
  np.testing.assert_array_equal(classifier_lib.task_labels(goes, "ge_c", GOES), [0, 0, 1, 1, 1])
  assert classifier_lib.task_class_names("ge_m", GOES) == ("<M", ">=M")
  assert classifier_lib.task_class_names("multiclass", GOES) == GOES
  with pytest.raises(ValueError, match="classifier task 'ge_x'"):
    classifier_lib.task_class_names("ge_x", GOES)
  with pytest.raises(ValueError, match=r"\[0, 4\]"):
    classifier_lib.task_labels([5], "ge_m", GOES)


def test_logits_and_features_shapes(one_device_mesh):
  config = _config()
  with jax.set_mesh(one_device_mesh):
    programs = ct.make_programs(config, one_device_mesh)
    params = ct.init_state(programs, config, seed=0).params
    x = np.zeros((5, SIZE, SIZE, 1), np.float32)
    feats = ct.apply_batched(programs.features, params, x, 16, one_device_mesh)
  d = classifier_lib.feature_dim(config.classifier)
  assert d == 16  # width 8, doubled once.
  assert feats.shape == (5, d)
  assert params["head"]["kernel"].shape == (d, 5)  # Five GOES classes.


# ----------------------------------------------------------- counts ---

TRAIN_COUNTS = (8, 4, 2, 1, 1)  # A, B, C, M, X in the toy training split.


def _pool(counts, seed=9):
  image, label = toy_images(counts, np.random.default_rng(seed))
  return {"image": image + 10.0, "label": label, "step": 7}  # +10 marks synthetic images.


def test_synthetic_counts():
  np.testing.assert_array_equal(cd.synthetic_topup_counts(TRAIN_COUNTS, 1.0), [0, 4, 6, 7, 7])
  # 0.5 * (0, 4, 6, 7, 7) = (0, 2, 3, 3.5, 3.5): halves round up.
  np.testing.assert_array_equal(cd.synthetic_topup_counts(TRAIN_COUNTS, 0.5), [0, 2, 3, 4, 4])
  np.testing.assert_array_equal(
    cd.synthetic_pool_counts(TRAIN_COUNTS, ("real_synthetic", "synthetic_only"), 1.0),
    [8, 4, 6, 7, 7],
  )
  np.testing.assert_array_equal(
    cd.synthetic_pool_counts(TRAIN_COUNTS, ("real_synthetic",), 1.0), [0, 4, 6, 7, 7]
  )


@pytest.mark.parametrize(
  "regime, real, synthetic",
  [
    ("real", TRAIN_COUNTS, (0,) * 5),
    ("weighted", TRAIN_COUNTS, (0,) * 5),
    ("oversample", (8,) * 5, (0,) * 5),
    ("real_synthetic", TRAIN_COUNTS, (0, 4, 6, 7, 7)),
    ("synthetic_only", (0,) * 5, TRAIN_COUNTS),
  ],
)
def test_regimes_use_the_counts_they_claim(regime, real, synthetic):
  config = _config()
  train = _split(TRAIN_COUNTS, 0)
  ts = cd.build_training_set(regime, train, _pool((8, 4, 6, 7, 7)), config, seed=3)
  epoch_labels = ts.labels[ts.indices]
  epoch_synthetic = ts.images[ts.indices].max(axis=(1, 2, 3)) > 5.0
  np.testing.assert_array_equal(np.bincount(epoch_labels[~epoch_synthetic], minlength=5), real)
  np.testing.assert_array_equal(np.bincount(epoch_labels[epoch_synthetic], minlength=5), synthetic)
  assert ts.counts["real"] == list(real) and ts.counts["synthetic"] == list(synthetic)
  assert ts.counts["total"] == list(np.add(real, synthetic))
  if regime == "oversample":
    # Every real example is used at least once; the extra draws are repeats.
    assert set(ts.indices) == set(range(sum(TRAIN_COUNTS)))
  if regime == "weighted":
    # w_c = N / (K n_c): each class carries the same total weight N / K.
    per_class = np.bincount(ts.labels, weights=ts.weights, minlength=5)
    np.testing.assert_allclose(per_class, sum(TRAIN_COUNTS) / 5)
  else:
    np.testing.assert_array_equal(ts.weights, 1.0)


def test_classical_knobs_and_the_prior_the_loss_sees():
  train = _split(TRAIN_COUNTS, 0)  # 8, 4, 2, 1, 1.
  config = _config()
  # Oversample share s: each class lifted to s / (1 - s) x the largest (0.25: 8 / 3 -> 3).
  ts = cd.build_training_set(
    "oversample", train, None, config, 0, setting={"oversample_share": 0.25}
  )
  assert ts.counts["total"] == [8, 4, 3, 3, 3] and ts.settings == {"oversample_share": 0.25}
  ts = cd.build_training_set("oversample", train, None, config, 0)  # 0.5: balanced.
  np.testing.assert_allclose(ts.counts["prior"], 0.2)
  # Class-weight power q: w_c = (N / (K n_c))^q; q = 1 gives every class one share.
  ts = cd.build_training_set(
    "weighted", train, None, config, 0, setting={"class_weight_power": 0.5}
  )
  np.testing.assert_allclose(ts.counts["class_weight"], np.sqrt(16 / (5 * np.array(TRAIN_COUNTS))))
  ts = cd.build_training_set("weighted", train, None, config, 0)
  np.testing.assert_allclose(ts.counts["prior"], 0.2)
  # 'reweighted': the real split weighted to a given prior.
  prior = [0.1, 0.2, 0.3, 0.2, 0.2]
  ts = cd.build_training_set("reweighted", train, None, config, 0, setting={"class_prior": prior})
  np.testing.assert_allclose(ts.counts["prior"], prior)
  assert ts.counts["total"] == list(TRAIN_COUNTS)
  # Focal gamma and the augment rotation come from the point, else the config.
  ts = cd.build_training_set("focal", train, None, config, 0, setting={"focal_gamma": 1.0})
  assert ts.focal_gamma == 1.0
  assert cd.build_training_set("augment", train, None, config, 0).settings == {
    "augment_rotation_deg": config.classifier.augment_rotation_deg
  }
  config.classifier.focal_grid = (1.0, 2.0)
  assert cd.grid_points(config, "focal") == [{"focal_gamma": 1.0}, {"focal_gamma": 2.0}]
  assert cd.grid_points(config, "oversample") == [{"oversample_share": 0.5}]


def test_binary_task_counts_are_in_task_classes():
  config = _config(task="ge_m")
  ts = cd.build_training_set(
    "real_synthetic", _split(TRAIN_COUNTS, 0), _pool((0, 4, 6, 7, 7)), config, 0
  )
  assert ts.counts["class_names"] == ["<M", ">=M"]
  assert ts.counts["real"] == [14, 2]
  assert ts.counts["synthetic"] == [10, 14]  # GOES top-ups (0, 4, 6 | 7, 7).
  ts = cd.build_training_set("oversample", _split(TRAIN_COUNTS, 0), None, config, 0)
  assert ts.counts["total"] == [14, 14]


def test_epoch_sampler_visits_every_index_once_per_epoch():
  sampler = cd.EpochSampler(np.arange(12), 4, np.random.default_rng(0))
  epoch = np.concatenate([sampler.next() for _ in range(3)])
  np.testing.assert_array_equal(np.sort(epoch), np.arange(12))
  small = cd.EpochSampler(np.arange(3), 8, np.random.default_rng(0))
  assert len(small.next()) == 8


# --------------------------------------------------------- training ---


def test_learns_a_separable_toy_task(one_device_mesh):
  config = _config()
  mesh = one_device_mesh
  train, val, test = _split((30,) * 5, 0), _split((6,) * 5, 1), _split((20,) * 5, 2)
  with jax.set_mesh(mesh):
    programs = ct.make_programs(config, mesh)
    ts = cd.build_training_set("real", train, None, config, 0)
    params, info = ct.train_one(config, programs, ts, val, seed=0)
    pred, prob = ct.predict_labels(programs, params, test["image"], 16, mesh)
  np.testing.assert_allclose(prob.sum(-1), 1.0, rtol=1e-5)
  accuracy = np.mean(pred == test["label"])
  assert accuracy >= 0.9, (accuracy, info["history"])
  assert info["history"][-1]["train_loss"] < info["history"][0]["train_loss"]


def _two_steps(config, devices):
  mesh = parallel.create_mesh(config.mesh, devices=devices)
  train = _split((4, 4, 4, 2, 2), 0)
  w = np.linspace(0.5, 2.0, 16).astype(np.float32)  # Unequal weights: tests the weighting.
  gamma = np.full(16, 2.0, np.float32)  # Focal: the factor must agree too.
  batch = {"image": train["image"], "label": train["label"], "weight": w, "gamma": gamma}
  with jax.set_mesh(mesh):
    programs = ct.make_programs(config, mesh)
    state = ct.init_state(programs, config, seed=0)
    metrics = []
    for _ in range(2):
      state, m = programs.step(state, ct._global(mesh, batch))
      metrics.append(jax.device_get(m))
    return checkpointing.host_copy(state.params), metrics


def test_two_steps_same_on_1_and_8_devices():
  config = _config()
  params1, m1 = _two_steps(config, jax.devices()[:1])
  params8, m8 = _two_steps(config, jax.devices()[:8])
  for a, b in zip(m1, m8):
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
    np.testing.assert_allclose(a["grad_norm"], b["grad_norm"], rtol=1e-4)
  # Not every parameter: biases ahead of a GroupNorm have zero gradient up to rounding
  # (~1e-9), which Adam's first steps blow up to +-lr. The head has real gradients.
  for a, b in zip(jax.tree.leaves(params1["head"]), jax.tree.leaves(params8["head"])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------- stacked ---

# Conv biases that only feed a GroupNorm of one channel per group (width 8, 8 groups: the
# whole of stage 0): the norm removes them, their gradient is rounding noise that Adam
# scales to +-lr, so they differ between any two code paths without changing an output.
_UNSEEN = ("['conv_in']['bias']", "['stage0_block0']['conv1']['bias']")
_UNSEEN += ("['stage0_block0']['conv2']['bias']",)
STACKED_RUNS = (("real", 0), ("weighted", 1), ("focal", 0), ("augment", 2))


def _assert_same_run(a, b, test_images, programs, mesh):
  """Two (params, info) of one run agree: parameters, history, selection, predictions."""
  (params_a, info_a), (params_b, info_b) = a, b
  flat_b = dict(jax.tree_util.tree_leaves_with_path(params_b))
  for path, leaf in jax.tree_util.tree_leaves_with_path(params_a):
    if jax.tree_util.keystr(path) not in _UNSEEN:
      np.testing.assert_allclose(leaf, flat_b[path], rtol=1e-4, atol=2e-6, err_msg=str(path))
  assert info_a["best_step"] == info_b["best_step"]
  np.testing.assert_equal(info_a["validation"], info_b["validation"])
  for ra, rb in zip(info_a["history"], info_b["history"], strict=True):
    np.testing.assert_allclose(ra["train_loss"], rb["train_loss"], rtol=1e-5)
    np.testing.assert_allclose(ra["train_accuracy"], rb["train_accuracy"], atol=1e-6)
    rest = [{k: v for k, v in r.items() if not k.startswith("train_")} for r in (ra, rb)]
    np.testing.assert_equal(*rest)  # Step and validation scores.
  pred_a, prob_a = ct.predict_labels(programs, params_a, test_images, 16, mesh)
  pred_b, prob_b = ct.predict_labels(programs, params_b, test_images, 16, mesh)
  np.testing.assert_array_equal(pred_a, pred_b)
  np.testing.assert_allclose(prob_a, prob_b, atol=1e-5)


def _short(**classifier):
  """The shared config but 20 steps: its compiled programs (an 80-step schedule), a shorter loop."""
  return _config(num_steps=20, eval_every=5, **classifier)


@pytest.mark.slow
def test_stacked_runs_equal_runs_alone_however_grouped(one_device_mesh):
  config = _config()
  mesh = one_device_mesh
  # 20 steps: cheap, and the selection picks an earlier step than the last in some runs.
  short = _short()
  train, val, test = _split((8, 6, 4, 3, 3), 0), _split((3,) * 5, 1), _split((4,) * 5, 2)
  with jax.set_mesh(mesh):
    programs = ct.make_programs(config, mesh)
    runs = []
    for regime, seed in STACKED_RUNS:
      ts = cd.build_training_set(regime, train, None, config, seed)
      runs.append(stacked.Run(ts, seed, f"{regime}/{seed}"))
    alone = [
      ct.train_one(short, programs, r.training_set, val, seed=r.seed, name=r.name) for r in runs
    ]
    many = stacked.make_stacked_programs(config, mesh)
    # All four side by side (one vmapped state), as on an accelerator.
    together = stacked.train_many(_short(vectorized_runs=4), many, runs, val)
    # Grouped otherwise: one run alone (CPU's default: train_one), then lanes of 2 and 1.
    assert stacked.vectorized_runs(config, mesh) == 1
    regrouped = stacked.train_many(short, many, [runs[2]], val)
    regrouped += stacked.train_many(
      _short(vectorized_runs=2), many, [runs[i] for i in (0, 1, 3)], val
    )
    regrouped = [regrouped[i] for i in (1, 2, 0, 3)]
    for one, a, b in zip(alone, together, regrouped, strict=True):
      _assert_same_run(one, a, test["image"], programs, mesh)
      _assert_same_run(one, b, test["image"], programs, mesh)
  assert any(info["best_step"] < 20 for _, info in alone)  # Selection had something to do.
  # The runs differ from each other (seeds, weights, focal loss, augmentation).
  losses = {info["history"][-1]["train_loss"] for _, info in alone}
  assert len(losses) == len(runs)


def test_stacked_two_steps_same_on_1_and_8_devices():
  config = _config()
  train = _split((4, 4, 4, 2, 2), 0)
  batch = {
    "image": np.stack([train["image"], train["image"][::-1]]),
    "label": np.stack([train["label"], train["label"][::-1]]),
    "weight": np.stack([np.linspace(0.5, 2.0, 16), np.ones(16)]).astype(np.float32),
    "gamma": np.stack([np.full(16, 2.0), np.zeros(16)]).astype(np.float32),
  }
  heads = []
  for devices in (jax.devices()[:1], jax.devices()[:8]):
    mesh = parallel.create_mesh(config.mesh, devices=devices)
    with jax.set_mesh(mesh):
      programs = stacked.make_stacked_programs(config, mesh)
      state = programs.init(jnp.stack([ct.seed_key(config, s) for s in (0, 1)]))
      for _ in range(2):
        state, metrics = programs.step(state, stacked._global(mesh, batch))
      heads.append((checkpointing.host_copy(state.params["head"]), jax.device_get(metrics)))
  (head1, m1), (head8, m8) = heads
  np.testing.assert_allclose(m1["loss"], m8["loss"], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(head1), jax.tree.leaves(head8)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_group_runs_keeps_order_and_bounds_the_size():
  assert stacked.group_runs(list(range(10)), 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
  assert stacked.group_runs(list(range(9)), 4) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
  assert stacked.group_runs([0, 1], 16) == [[0, 1]] and stacked.group_runs([], 3) == []


# ------------------------------------------------------------- run ---


REGIMES5 = ("real", "weighted", "oversample", "real_synthetic", "synthetic_only")


def _record_trained(monkeypatch) -> list:
  """The names of the runs the experiment trains from now on (it still trains them)."""
  trained, train_many = [], stacked.train_many

  def record(c, p, runs, *a, **k):
    trained.extend(r.name for r in runs)
    return train_many(c, p, runs, *a, **k)

  monkeypatch.setattr(tc, "train_many", record)
  return trained


@pytest.mark.slow
def test_run_writes_every_output_and_reuses_finished_runs(tmp_path, one_device_mesh, monkeypatch):
  config = _config(seeds=(0, 1), regimes=REGIMES5)
  splits = {
    "train": _split(TRAIN_COUNTS, 0),
    "validation": _split((2, 2, 2, 1, 1), 1),
    "test": _split((3, 3, 2, 1, 1), 2),
  }
  pool = _pool((8, 4, 6, 7, 7))
  metrics = tc.run(config, tmp_path, splits=splits, synthetic=pool, mesh=one_device_mesh)
  out = tmp_path / "classifier"
  on_disk = json.loads((out / "metrics.json").read_text())
  assert on_disk["regimes"].keys() == set(config.classifier.regimes)
  assert on_disk["regimes"]["real_synthetic"]["counts"]["synthetic"] == [0, 4, 6, 7, 7]
  assert on_disk["regimes"]["oversample"]["counts"]["total"] == [8] * 5
  for regime in config.classifier.regimes:
    entry = on_disk["regimes"][regime]
    assert set(entry["seeds"]) == {"0", "1"}
    assert entry["mean_std"]["macro_f1"]["n"] == 2
    seed_f1 = [entry["seeds"][s]["test"]["macro_f1"] for s in ("0", "1")]
    assert entry["mean_std"]["macro_f1"]["mean"] == pytest.approx(np.mean(seed_f1))
    assert np.sum(entry["confusion_summed"]) == 2 * 10
    assert (out / f"confusion_{regime}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  rows = list(csv.DictReader(io.StringIO((out / "predictions.csv").read_text())))
  assert len(rows) == 10 * 5 * 2  # Test examples x regimes x seeds.
  real0 = [r for r in rows if r["regime"] == "real" and r["seed"] == "0"]
  truth = [GOES[y] for y in splits["test"]["label"]]
  assert [r["true_class"] for r in real0] == truth
  assert real0[0]["time"] == "2014-01-01T00:00:00.000"
  # The per-seed confusion matrix agrees with the predictions file.
  predicted = np.array([GOES.index(r["predicted_class"]) for r in real0])
  cm = np.asarray(on_disk["regimes"]["real"]["seeds"]["0"]["test"]["confusion"])
  np.testing.assert_array_equal(cm.sum(axis=0), np.bincount(predicted, minlength=5))
  # Multiclass: >=M is decided on P(M) + P(X) at the threshold its validation TSS chose.
  stored = np.load(tc.run_dir(tmp_path, "real", 0, 0) / tc.VAL_PROBS)
  point = op.tss_threshold(op.event_probability(stored["prob"], 3), stored["labels"] >= 3)
  result = on_disk["regimes"]["real"]["seeds"]["0"]
  assert result["operating_point"]["ge_m"]["threshold"] == point["threshold"]
  forecast = np.array([int(r["forecast_positive"]) for r in real0])
  prob_m = np.array([float(r["prob_positive"]) for r in real0])
  np.testing.assert_array_equal(forecast, prob_m >= point["threshold"])
  assert {"tss_ge_m", "auc_ge_m", "bss_corrected_ge_m"} <= set(on_disk["regimes"]["real"]["scores"])
  assert (out / "reliability.png").exists()
  table = report.classifier_tables(on_disk)
  assert table.count("\n| synthetic_only |") == 2  # Scores and counts tables.
  assert "± " in table
  # The evaluation's class-consistency predictor (the stored real/seed-0 classifier)
  # gives the same labels as the predictions file.
  from solar_jax.evaluation import features

  predict, info = features.load_classifier_predictor(config, tmp_path)
  labels = predict(splits["test"]["image"])
  assert labels.shape == (10,) and labels.dtype == np.int32 and info["regime"] == "real"
  np.testing.assert_array_equal(labels, predicted)

  # A second run finds every (regime, seed) finished and reuses it, however runs are stacked.
  trained = _record_trained(monkeypatch)
  config.classifier.stacked_runs = 3
  again = tc.run(config, tmp_path, splits=splits, synthetic=pool, mesh=one_device_mesh)
  assert again["regimes"]["real"]["seeds"]["1"] == metrics["regimes"]["real"]["seeds"]["1"]
  assert trained == []
  # A pool drawn with other sampling settings retrains the synthetic regimes, only those.
  # Same images, so the same best steps: the old checkpoints are replaced, not kept.
  third = tc.run(
    config,
    tmp_path,
    splits=splits,
    synthetic={**pool, "settings": {**cd.pool_settings(config), "eta": 0.5}},
    mesh=one_device_mesh,
  )
  assert sorted(trained) == [
    f"{r}/seed{s}" for r in ("real_synthetic", "synthetic_only") for s in (0, 1)
  ]
  assert "η 0.5, guidance 1, seed 0." in report.classifier_tables(third)
  run_dir = out / "runs" / "real_synthetic" / "seed_0" / "checkpoints"
  best = third["regimes"]["real_synthetic"]["seeds"]["0"]["best_step"]
  assert [p.name for p in run_dir.iterdir() if p.name.isdigit()] == [str(best)]

  # The 'real' seed-0 classifier is the evaluation's feature extractor.
  config.evaluation.batch_size = 4
  extract = features.load_classifier_extractor(config, tmp_path)
  feats = extract(splits["test"]["image"])
  assert feats.shape == (10, classifier_lib.feature_dim(config.classifier))
  np.testing.assert_allclose(extract(splits["test"]["image"][:3]), feats[:3], rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="was trained with"):
    features.load_classifier_extractor(_config(seeds=(0, 1), width=4), tmp_path)


@pytest.mark.slow
def test_a_rebuilt_dataset_retrains_the_finished_runs(tmp_path, one_device_mesh, monkeypatch):
  """Finished runs are reused only on the frames they read: a dataset rebuilt in place
  (one frame's time, one label, one pixel) retrains them, and the same frames reuse them."""
  config = _config(seeds=(0,), regimes=("real",))
  splits = {
    "train": _split(TRAIN_COUNTS, 0),
    "validation": _split((2, 2, 2, 1, 1), 1),
    "test": _split((3, 3, 2, 1, 1), 2),
  }
  trained = _record_trained(monkeypatch)
  tc.run(config, tmp_path, splits=splits, mesh=one_device_mesh)
  assert trained == ["real/seed0"]
  tc.run(config, tmp_path, splits=splits, mesh=one_device_mesh)
  assert trained == ["real/seed0"]  # The same frames: reused.

  def rebuilt(split, field, change):
    changed = {k: {**v} for k, v in splits.items()}
    values = np.array(changed[split][field], copy=True)
    values[0] = change(values[0])
    changed[split][field] = values
    return changed

  for changed in (
    rebuilt("test", "time", lambda t: b"2014-02-01T00:00:00.000"),
    rebuilt("train", "image", lambda x: x + 1e-3),
    rebuilt("test", "label", lambda y: (y + 1) % 5),
  ):
    del trained[:]
    metrics = tc.run(config, tmp_path, splits=changed, mesh=one_device_mesh)
    assert trained == ["real/seed0"]
  # The confusion matrix is of the new labels, not a finished run's old one.
  cm = np.asarray(metrics["regimes"]["real"]["seeds"]["0"]["test"]["confusion"])
  np.testing.assert_array_equal(cm.sum(axis=1), np.bincount(changed["test"]["label"], minlength=5))
  assert not np.array_equal(changed["test"]["label"], splits["test"]["label"])


def test_synthetic_regimes_skipped_without_ddpm_checkpoint(tmp_path, one_device_mesh):
  config = _config(seeds=(0,), regimes=("real", "real_synthetic"))
  splits = {
    "train": _split(TRAIN_COUNTS, 0),
    "validation": _split((1,) * 5, 1),
    "test": _split((1,) * 5, 2),
  }
  tc.run(config, tmp_path, splits=splits, mesh=one_device_mesh)
  on_disk = json.loads((tmp_path / "classifier" / "metrics.json").read_text())
  assert on_disk["regimes"]["real_synthetic"]["skipped"].startswith("skipped: no DDPM checkpoint")
  assert "macro_f1" in on_disk["regimes"]["real"]["mean_std"]
  assert "skipped: no DDPM checkpoint" in report.classifier_tables(on_disk)


def test_feature_extractor_without_classifier_names_the_fix(tmp_path):
  with pytest.raises(FileNotFoundError, match="--mode=classify"):
    features.load_classifier_extractor(_config(), tmp_path)


def _write_set(directory, images, labels, complete=True):
  directory.mkdir(parents=True, exist_ok=True)
  wd.write_npz(directory / "samples.npz", images=images, labels=labels, class_names=np.array(GOES))
  if complete:
    wd.write_json(directory / "COMPLETE", {"images": len(labels)})


def test_synthetic_pool_reads_its_sample_set_and_maps_dns_to_model_space(tmp_path):
  config = _config()
  with pytest.raises(cd.NoDDPMCheckpointError, match="--mode=train"):
    cd.synthetic_pool(config, tmp_path, [1, 0, 0, 0, 0])
  (tmp_path / "checkpoints" / "5").mkdir(parents=True)  # The newest DDPM step.
  counts = [1, 0, 2, 0, 0]
  directory = cd.pool_set(config, tmp_path, 5, counts)
  assert directory.parent == tmp_path / "samples" and directory.name.startswith("5-")
  lo, hi = config.data.clip_min, config.data.clip_max
  images = np.full((3, SIZE, SIZE, 1), lo, np.float32)
  images[1], images[2] = hi, np.sqrt(lo * hi)  # Geometric midpoint -> 0 in model space.
  labels = np.array([0, 2, 2], np.int32)
  _write_set(directory, images, labels)
  pool = cd.synthetic_pool(config, tmp_path, counts)  # Served from the set, no DDPM loaded.
  assert pool["step"] == 5 and pool["path"] == str(directory / "samples.npz")
  assert pool["settings"] == cd.pool_settings(config)
  np.testing.assert_array_equal(pool["label"], labels)
  np.testing.assert_allclose(pool["image"][:, 0, 0, 0], [-1.0, 1.0, 0.0], atol=1e-6)


def test_pools_are_sample_sets_keyed_by_their_settings(tmp_path, monkeypatch):
  from solar_jax.ddpm import sample

  config = _config()
  (tmp_path / "checkpoints" / "5").mkdir(parents=True)
  sampled = []

  def generate(config, params, labels, **kwargs):
    s = config.sampling
    sampled.append((s.guidance_scale, s.seed, s.num_steps, labels.tolist()))
    return np.full((len(labels), SIZE, SIZE, 1), -1.0, np.float32)

  monkeypatch.setattr(sample, "generate", generate)
  monkeypatch.setattr(cd.sample, "load_inference_params", lambda workdir, config, mesh: ({}, 5))
  # A set drawn with guidance 1 (sampling's) is not the guidance-3 pool.
  stale = np.full((2, SIZE, SIZE, 1), config.data.clip_max, np.float32)
  _write_set(cd.pool_set(config, tmp_path, 5, [1, 1, 0, 0, 0]), stale, np.array([0, 1]))
  config.classifier.guidance_scale = 3.0  # The pool's own guidance; sampling's stays 1.
  pool = cd.synthetic_pool(config, tmp_path, [1, 1, 0, 0, 0])
  steps = config.sampling.num_steps
  assert sampled == [(3.0, 0, steps, [0, 1])] and config.sampling.guidance_scale == 1.0
  np.testing.assert_allclose(pool["image"], -1.0)  # The new images, not the stale ones.
  assert pool["settings"]["guidance_scale"] == 3.0
  drawn = wd.read_npz(pool["path"])  # Written as --mode=sample writes a set, with its marker.
  assert float(drawn["guidance_scale"]) == 3.0 and str(drawn["sampler"]) == config.sampling.sampler
  assert (epath.Path(pool["path"]).parent / "COMPLETE").exists()
  assert not list(epath.Path(pool["path"]).parent.glob("fits"))  # Pools have no FITS.
  assert len(list((tmp_path / "samples").iterdir())) == 2  # The guidance-1 set is kept.
  # Same settings again (here through sampling.guidance_scale): served, nothing sampled.
  config.classifier.guidance_scale, config.sampling.guidance_scale = None, 3.0
  assert cd.synthetic_pool(config, tmp_path, [1, 1, 0, 0, 0])["path"] == pool["path"]
  assert len(sampled) == 1
  # Pool 1 is another draw (seed + 1, its own set); the grid's guidance and the pools'
  # own step count override the config's.
  config.classifier.sampling_steps = 2
  other = cd.synthetic_pool(config, tmp_path, [1, 1, 0, 0, 0], guidance=6.0, pool=1)
  assert sampled[-1] == (6.0, 1, 2, [0, 1])
  assert other["path"] != pool["path"] and other["settings"]["seed"] == 1
  # A set without its COMPLETE marker (a killed draw) is drawn again.
  (epath.Path(pool["path"]).parent / "COMPLETE").unlink()
  config.classifier.sampling_steps = None
  cd.synthetic_pool(config, tmp_path, [1, 1, 0, 0, 0])
  assert len(sampled) == 3


def test_pool_settings_record_what_samples_npz_records():
  # The pool's settings extend those of samples.npz, with the same effective values:
  # DDPM runs all T steps with eta 1, whatever sampling.num_steps and eta say.
  config = _config()
  config.sampling.sampler = "ddpm"
  settings = cd.pool_settings(config)
  assert settings["num_steps"] == config.diffusion.num_timesteps and settings["eta"] == 1.0
  config.sampling.num_steps, config.sampling.eta = 7, 0.0
  assert cd.pool_settings(config) == settings
  recorded = samplers.recorded_settings(config)
  assert {k: settings[k] for k in recorded} == recorded


# ------------------------------------------------------ experiment ---


def test_focal_factor_is_analytic_and_one_at_gamma_zero():
  logits = jnp.array([[2.0, 0.0], [0.0, 1.0]])
  labels = jnp.array([0, 0])
  p = jax.nn.softmax(logits)[:, 0]
  np.testing.assert_allclose(ct.focal_factor(logits, labels, 0.0), 1.0)
  np.testing.assert_allclose(ct.focal_factor(logits, labels, 2.0), (1 - p) ** 2, rtol=1e-6)
  # gamma = 0 gives plain cross-entropy gradients, finite even for a certain prediction.
  grad = jax.grad(lambda x: ct.focal_factor(x, labels, jnp.zeros(2)).sum())(logits * 100)
  np.testing.assert_array_equal(grad, 0.0)


def test_augment_batch_flips_rotates_and_scales_as_documented():
  config = _config(augment_flips="ns", augment_rotation_deg=0.0, augment_intensity=0.0)
  images = np.random.default_rng(0).uniform(-1, 1, (64, SIZE, SIZE, 1)).astype(np.float32)
  out = cd.augment_batch(images, config, np.random.default_rng(1))
  flipped = np.array([np.array_equal(o, i[::-1]) for o, i in zip(out, images)])
  kept = np.array([np.array_equal(o, i) for o, i in zip(out, images)])
  assert (flipped | kept).all() and 16 < flipped.sum() < 48  # North-south only, about half.
  # A gain g in DN/s shifts model space by 2 log10(g) / log10(clip_max / clip_min).
  config = _config(augment_flips="none", augment_rotation_deg=0.0, augment_intensity=0.1)
  flat = np.zeros((200, SIZE, SIZE, 1), np.float32)
  shift = cd.augment_batch(flat, config, np.random.default_rng(2))[:, 0, 0, 0]
  log_gain = shift * np.log10(config.data.clip_max / config.data.clip_min) / 2 * np.log(10)
  assert np.std(log_gain) == pytest.approx(0.1, rel=0.15)
  # A disk centred in the frame is unchanged by a rotation about the centre.
  config = _config(augment_flips="none", augment_rotation_deg=10.0, augment_intensity=0.0)
  yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
  disk = np.where(yy**2 + xx**2 <= 25, 0.8, -0.8).astype(np.float32)[None, ..., None]
  rotated = cd.augment_batch(np.repeat(disk, 8, 0), config, np.random.default_rng(3))
  assert np.abs(rotated - disk).mean() < 0.05


def test_frame_groups_are_the_dataset_groups():
  split = {"label": np.zeros(3), "group": np.array([b"E1", b"day:2014-01-02", b"E1"])}
  assert list(real_data.frame_groups(split)) == ["E1", "day:2014-01-02", "E1"]
  with pytest.raises(KeyError, match="group"):
    real_data.frame_groups({"label": np.zeros(1)})


def test_forecast_tasks_read_the_next_24h_label(monkeypatch):
  calls = []

  def load(data_config, split, transform=True, **kwargs):
    calls.append((split, kwargs))
    return {}

  monkeypatch.setattr(real_data.input_pipeline, "make_for_inference", load)
  real_data.load_real_splits(_config(task="forecast_ge_m"))
  assert calls[0] == ("train", {"label": "max_class_next_24h"}) and len(calls) == 3
  calls.clear()
  real_data.load_real_splits(_config(task="ge_m"))  # Concurrent: the dataset's data.label.
  assert calls[0] == ("train", {})


@pytest.mark.slow
def test_experiment_chooses_on_validation_and_reads_test_once(
  tmp_path, one_device_mesh, monkeypatch
):
  regimes = ("real", "oversample", "focal", "augment", "real_synthetic", "reweighted")
  config = _config(
    task="forecast_ge_m",
    seeds=(0, 1),
    regimes=regimes,
    num_pools=2,
    guidance_grid=(1.0, 10.0),
    focal_grid=(1.0, 2.0),
  )
  test = _split((3, 3, 2, 2, 2), 2)
  test["group"] = np.array([f"E{i // 2}".encode() for i in range(12)])  # Two frames per event.
  # Events E0-E5 are flares of three NOAA regions (no position: not merged): the units.
  test.update(
    flare_event_id=test["group"],
    noaa_ar=np.array([100 + i // 4 for i in range(12)]),
    flare_peak=np.array([f"2014-10-{10 + i // 2:02d}T12:00:00.000".encode() for i in range(12)]),
  )
  splits = {
    "train": _split(TRAIN_COUNTS, 0),
    "validation": _split((2, 2, 2, 1, 1), 1),
    "test": test,
  }

  def pools(guidance, k):
    image, label = toy_images((8, 4, 6, 7, 7), np.random.default_rng(10 + k))
    if guidance == 1.0:  # A useless pool: labels scrambled.
      label = np.random.default_rng(k).permutation(label)
    marker = 10.0 + guidance + 2 * k  # Tells which pool a training image came from.
    return {"image": image + marker, "label": label, "step": 7, "settings": {"g": guidance}}

  test_reads, trained = [], []
  predict = tc.predict_labels
  monkeypatch.setattr(
    tc,
    "predict_labels",
    lambda p, params, images, *a: (
      test_reads.append(images is test["image"]) or predict(p, params, images, *a)
    ),
  )
  train_many = stacked.train_many

  def spy(config, programs, runs, *a, **k):
    for run in runs:
      synthetic = np.unique(np.round(run.training_set.images.max(axis=(1, 2, 3)) - 0.8))
      trained.append((run.name, sorted(float(v) for v in synthetic if v > 5)))
    return train_many(config, programs, runs, *a, **k)

  monkeypatch.setattr(tc, "train_many", spy)
  metrics = tc.run(config, tmp_path, splits=splits, synthetic=pools, mesh=one_device_mesh)
  on_disk = json.loads((tmp_path / "classifier" / "metrics.json").read_text())

  # The choice and the validation scores it was made from.
  sel = on_disk["selection"]["real_synthetic"]
  assert sel["split"] == "validation" and sel["metric"] == "tss" and sel["seed"] == 0
  scores = [p["selection_score"] for p in sel["grid"]]
  assert [p["guidance_scale"] for p in sel["grid"]] == [1.0, 10.0]
  assert all(set(p["validation"]) >= {"macro_f1", "tss"} for p in sel["grid"])
  best = sel["grid"][int(np.nanargmax(scores))]["guidance_scale"]
  assert sel["chosen"]["guidance_scale"] == best
  # A classical regime's knob is chosen on validation the same way (its own grid).
  focal = on_disk["selection"]["focal"]
  assert [p["focal_gamma"] for p in focal["grid"]] == [1.0, 2.0]
  gammas = [p["focal_gamma"] for p in focal["grid"]]
  chosen_gamma = gammas[int(np.argmax([p["selection_score"] for p in focal["grid"]]))]
  assert focal["chosen"] == {"focal_gamma": chosen_gamma}
  assert on_disk["regimes"]["focal"]["seeds"]["1"]["operating_point"]
  # 'reweighted' trains the real split at the class prior real_synthetic trained on.
  prior = on_disk["regimes"]["real_synthetic"]["counts"]["prior"]
  assert on_disk["selection"]["reweighted"]["chosen"]["class_prior"] == prior
  assert on_disk["regimes"]["reweighted"]["counts"]["prior"] == pytest.approx(prior)
  assert on_disk["regimes"]["reweighted"]["counts"]["synthetic"] == [0, 0]
  # Grid runs saw validation only; every final run read the test split exactly once.
  runs = 2 * 5 + 2 * 2  # Real-data regimes x seeds + seeds x pools.
  assert sum(test_reads) == runs and len(on_disk["test_reads"]) == runs
  assert set(on_disk["test_reads"].values()) == {1}
  grid = [t for t in trained if t[0].startswith("real_synthetic/grid")]
  assert [t[1] for t in grid] == [[11.0], [20.0]]  # Pool 0 at guidance 1 and 10.
  # The chosen grid run is the (seed 0, pool 0) run: not trained again (focal's likewise).
  final = {n: m for n, m in trained if n.startswith("real_synthetic/seed")}
  assert len(trained) == len(grid) + 2 + runs - 2
  # What the study's cost plan counts (benchmarks/study_cost.py) is what was trained.
  assert len(trained) == sum(cd.planned_runs(config).values())
  assert set(final) == {
    "real_synthetic/seed0/pool1",
    "real_synthetic/seed1",
    "real_synthetic/seed1/pool1",
  }
  assert final["real_synthetic/seed1/pool1"] == [10.0 + best + 2]

  # Uncertainty and support beside every score; BSS against the training base rate.
  assert on_disk["support"]["events"] == 6 and on_disk["support"]["frames"] == 12
  assert on_disk["climatology"] == pytest.approx(2 / 16)
  assert on_disk["bootstrap"]["unit"].startswith("test active regions")
  for regime in regimes:
    entry = on_disk["regimes"][regime]
    assert set(entry["ci95"]) == {"macro_f1", "tss", "bss", "auc", "bss_corrected"}
    # The operating point is recomputed from the run's stored validation probabilities,
    # and the test decision and TSS are those of that threshold.
    for key, result in entry["runs"].items():
      seed, k = (int(x) for x in key.split("/"))
      stored = np.load(tc.run_dir(tmp_path, regime, seed, k) / tc.VAL_PROBS)
      np.testing.assert_array_equal(stored["labels"], splits["validation"]["label"] >= 3)
      point = op.tss_threshold(stored["prob"][:, 1], stored["labels"] == 1)
      assert result["operating_point"]["positive"]["threshold"] == point["threshold"]
      prob = np.asarray(result["probabilities"])
      decision = (prob >= point["threshold"]).astype(int)
      assert result["predictions"] == decision.tolist()
      truth = test["label"] >= 3
      tss = decision[truth].mean() - decision[~truth].mean()
      assert result["test"]["tss"] == pytest.approx(tss)
      assert entry["scores"]["auc"]["mean"] is not None
    assert entry["support"] == {"events": 6, "regions": 3, "units": 3, "frames": 12}
    d = entry["delta_vs_oversample"]["macro_f1"]
    if regime == "oversample":
      assert d["mean"] == 0 and d["ci95"] == [0, 0]
    lo, hi = entry["ci95"]["macro_f1"]
    assert lo <= entry["scores"]["macro_f1"]["mean"] <= hi
  assert len(on_disk["regimes"]["real_synthetic"]["runs"]) == 4
  rows = list(csv.DictReader(io.StringIO((tmp_path / "classifier/predictions.csv").read_text())))
  assert len(rows) == runs * 12 and rows[0]["group"] == "E0" and rows[0]["prob_positive"]
  assert rows[0]["unit"] == "region:100" and rows[-1]["noaa_ar"] == "102"
  for name in ("scores.png", "reliability.png"):
    assert (tmp_path / "classifier" / name).read_bytes()[:4] == b"\x89PNG"
  # The primary endpoint: the best synthetic regime minus the best baseline on TSS (the
  # >=M task's), the best of each taken in every resample; the rest Holm-adjusted.
  end = on_disk["primary_endpoint"]
  assert end["name"] == "delta_tss_ge_m" and end["score"] == "tss"
  assert end["candidates"] == ["real_synthetic"] and end["best_candidate"] == "real_synthetic"
  assert end["baselines"] == ["real", "focal", "oversample", "augment"]
  tss = {r: on_disk["regimes"][r]["scores"]["tss"]["mean"] for r in regimes}
  assert end["mean"] == pytest.approx(tss["real_synthetic"] - max(tss[r] for r in end["baselines"]))
  family = on_disk["comparisons"]["rows"]
  # Every pair of the baselines in the run (the classical ones and the reweighted control)
  # once, and real_synthetic against each, x 3 scores.
  bases = [r for r in regimes if r in cd.BASELINES]
  assert "reweighted" in bases and len(bases) == len(end["baselines"]) + 1
  assert len(family) == (len(bases) * (len(bases) - 1) // 2 + len(bases)) * 3
  assert {(r["regime"], r["baseline"]) for r in family} >= {
    ("oversample", "real"),
    ("augment", "focal"),
  }
  tested = [r for r in family if r["p_value"] is not None]
  assert all(r["p_holm"] >= r["p_value"] for r in tested) and len(tested) >= 20
  text = report.render_report(config, tmp_path)
  assert "| regime | macro F1 [95% CI] | TSS >=M [95% CI] | AUC >=M [95% CI] | BSS [95% CI]" in text
  assert "Operating point: " in text and "- focal: focal γ " in text
  assert "- reweighted: class prior " in text
  # The forecast's definition and issuance grid stand in metrics.json and the report.
  rule = frame_facts.forecast_rule(
    config.data.issuance_hours, config.data.issuance_tolerance_minutes
  )
  assert on_disk["forecast"] == rule and f"Forecast definition: {rule}." in text
  assert f"Forecast definition (`max_class_next_24h`): {rule}." in text
  assert "6 events / 3 regions / 12 frames" in text and "chosen on validation tss" in text
  assert "**Primary endpoint** (`delta_tss_ge_m`" in text and "| p (Holm) |" in text
  # Every difference to oversample is a table row, where its interval lies in a column
  # (not a sentence per comparison), once.
  verdicts = ("includes 0", "above 0", "below 0", "identical predictions")
  for regime in ("real", "focal", "augment", "real_synthetic"):
    lines = [x for x in text.splitlines() if x.startswith(f"| {regime} − oversample | macro F1 |")]
    assert len(lines) == 1 and any(f"| {v} |" in lines[0] for v in verdicts), lines
  assert metrics["regimes"]["real"]["scores"]["macro_f1"]["ci95"] is not None


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
