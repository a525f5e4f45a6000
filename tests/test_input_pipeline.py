"""solar_jax.data.input_pipeline on a small built sdo_aia171 dataset (SIMULATED demo archive)."""

import collections
import csv
import json
import pathlib
import shutil

import numpy as np
import pytest

from solar_jax import errors, provenance
from solar_jax.configs import default
from solar_jax.data import frame_facts, goes, input_pipeline, resolve, scaling
from solar_jax.evaluation import evaluate
from solar_jax.metrics import memorisation


@pytest.fixture(scope="module")
def data_config(demo_tfds):
  # The session's demo dataset (conftest.DEMO_ARCHIVE): six months, 2011-04..09, stored
  # blocks 5..9 and 0, so fold 0 has test = September, validation = April and train =
  # May..August less the 14-day embargo.
  config = default.get_config().data
  config.data_dir = str(demo_tfds)
  config.shuffle_buffer = 8
  return config


def take(iterator, n):
  return [next(iterator) for _ in range(n)]


@pytest.mark.slow
def test_resume_equals_the_uninterrupted_stream(data_config):
  kw = dict(shuffle=True, seed=7, repeat=True, process_index=0, process_count=1)
  full = take(input_pipeline.make_for_train(data_config, "train", 5, **kw), 14)
  n = len(input_pipeline.make_for_inference(data_config, "train", images=False)["label"])
  assert 10 <= n <= 40
  for start in (1, 3, 9):  # within the first epoch, at and across epoch ends
    resumed = take(
      input_pipeline.make_for_train(data_config, "train", 5, start_step=start, **kw), 14 - start
    )
    for a, b in zip(full[start:], resumed):
      np.testing.assert_array_equal(a["source"], b["source"])
      np.testing.assert_array_equal(a["image"], b["image"])
  # Epochs are shuffled differently, and each epoch is a permutation of the split.
  sources = np.concatenate([b["source"] for b in full])
  assert sorted(sources[:n]) == sorted(sources[n : 2 * n])
  assert list(sources[:n]) != list(sources[n : 2 * n])


def test_process_shares_are_disjoint_and_cover_the_split(data_config):
  shares = []
  for index in range(3):
    it = input_pipeline.make_for_train(
      data_config,
      "train",
      1,
      shuffle=False,
      seed=0,
      repeat=False,
      process_index=index,
      process_count=3,
    )
    shares.append({s for b in it for s in b["source"]})
  everything = input_pipeline.make_for_inference(data_config, "train", images=False)
  n = len(everything["source"])
  assert all(len(s) == n // 3 for s in shares)
  assert not (shares[0] & shares[1] or shares[0] & shares[2] or shares[1] & shares[2])
  assert set().union(*shares) <= set(everything["source"])
  assert len(set().union(*shares)) == 3 * (n // 3)


def test_transform_matches_scaling_forward(data_config):
  kw = dict(shuffle=False, seed=0, repeat=False, process_index=0, process_count=1)
  raw = next(input_pipeline.make_for_train(data_config, "test", 4, transform=False, **kw))
  model = next(input_pipeline.make_for_train(data_config, "test", 4, transform=True, **kw))
  assert model["image"].dtype == np.float32 and model["label"].dtype == np.int32
  want = scaling.forward(raw["image"], data_config.clip_min, data_config.clip_max)
  np.testing.assert_allclose(model["image"], want, atol=2e-6)
  assert model["image"].min() >= -1 and model["image"].max() <= 1


def test_class_counts_and_balancing(data_config):
  arrays = input_pipeline.make_for_inference(data_config, "train")
  facts = input_pipeline.make_for_inference(data_config, "train", images=False)
  assert "image" not in facts and set(facts) == set(arrays) - {"image"}
  for key, value in facts.items():  # The facts pass is the image pass less the images.
    np.testing.assert_array_equal(value, arrays[key])
  counts = np.bincount(facts["label"], minlength=5)
  data_config.class_balance = True
  try:
    it = input_pipeline.make_for_train(
      data_config,
      "train",
      4,
      shuffle=True,
      seed=1,
      repeat=False,
      process_index=0,
      process_count=1,
      drop_remainder=False,
    )
    balanced = np.bincount(np.concatenate([b["label"] for b in it]), minlength=5)
  finally:
    data_config.class_balance = False
  reps = np.where(counts > 0, np.maximum(1, np.round(counts.max() / np.maximum(counts, 1))), 0)
  np.testing.assert_array_equal(balanced, counts * reps)


def test_a_stream_without_some_class_warns_naming_it(data_config, caplog):
  # The session's demo archive: fold 0's test split holds no A and no X frame on the
  # default (SWPC) class scale (conftest).
  facts = input_pipeline.make_for_inference(data_config, "test", images=False)
  counts = np.bincount(facts["label"], minlength=5)
  absent = [c for c, n in zip(data_config.classes, counts) if n == 0]
  assert absent  # What this test needs of the archive.
  assert input_pipeline.missing_classes(data_config, facts["label"])[0] == absent
  caplog.set_level("WARNING")
  input_pipeline.make_for_train(data_config, "test", 4, shuffle=False, seed=0, repeat=False)
  (line,) = [r.getMessage() for r in caplog.records if "has no frame of class" in r.getMessage()]
  assert f"has no frame of class {', '.join(absent)} " in line and "'test' of fold 0" in line
  for name, n in zip(data_config.classes, counts):
    assert f"{name} {n}" in line
  caplog.clear()
  input_pipeline.make_for_train(data_config, "all", 4, shuffle=False, seed=0, repeat=False)
  assert not [r for r in caplog.records if "has no frame of class" in r.getMessage()]


def test_wrong_image_size_is_an_error_naming_the_field(data_config):
  data_config.image_size = 48  # Does not divide the stored 64.
  try:
    with pytest.raises(ValueError, match="data.image_size=48"):
      input_pipeline.get_builder(data_config)
  finally:
    data_config.image_size = 64


def test_a_smaller_image_size_reads_block_means_of_the_stored_images(data_config):
  kw = dict(shuffle=False, seed=0, repeat=False, process_index=0, process_count=1)
  full = next(input_pipeline.make_for_train(data_config, "test", 4, transform=False, **kw))
  data_config.image_size = 32
  try:
    half = next(input_pipeline.make_for_train(data_config, "test", 4, transform=False, **kw))
    arrays = input_pipeline.make_for_inference(data_config, "test", transform=False)
  finally:
    data_config.image_size = 64
  # Mean of each 2x2 block, in DN/s: the total flux of the image is kept.
  want = full["image"].reshape(4, 32, 2, 32, 2, 1).mean(axis=(2, 4))
  np.testing.assert_allclose(half["image"], want, rtol=1e-5)
  np.testing.assert_allclose(arrays["image"][:4], want, rtol=1e-5)
  np.testing.assert_allclose(
    half["image"].sum((1, 2, 3)) * 4, full["image"].sum((1, 2, 3)), rtol=1e-5
  )


def test_splits_follow_the_fold_and_the_embargo(data_config):
  """Each split is its months less the embargo; no train frame within 14 days of test."""
  from solar_jax.data import splits

  times = {
    name: splits.as_times(
      input_pipeline.make_for_inference(data_config, name, images=False)["time"]
    )
    for name in splits.SPLITS
  }
  months = {name: set(splits.month_index(t) % 10) for name, t in times.items()}
  assert months == {"test": {0}, "validation": {5}, "train": {6, 7, 8, 9}}
  gap = np.abs(times["train"][:, None] - times["test"][None, :]).min()
  assert gap > np.timedelta64(14, "D")
  data_config.fold = 9  # test = August, validation = April again ((9 + 5) % 10 = 4: absent)
  try:
    with pytest.raises(ValueError, match="validation.*fold 9"):
      input_pipeline.make_for_inference(data_config, "validation", images=False)
    test9 = input_pipeline.make_for_inference(data_config, "test", images=False)
    assert set(splits.month_index(test9["time"]) % 10) == {9}
  finally:
    data_config.fold = 0


def test_changing_data_label_changes_the_labels_without_a_rebuild(data_config):
  """data.label is applied on read: the same records, other labels, through both readers."""
  from solar_jax.data import frame_facts

  kw = dict(shuffle=False, seed=0, repeat=False, process_index=0, process_count=1)
  seen, default = {}, data_config.label
  for policy in frame_facts.LABELS:
    data_config.label = policy
    try:
      arrays = input_pipeline.make_for_inference(data_config, "train", images=False)
      batches = list(
        input_pipeline.make_for_train(data_config, "train", 1, drop_remainder=False, **kw)
      )
    finally:
      data_config.label = default
    streamed = np.concatenate([b["label"] for b in batches])
    np.testing.assert_array_equal(streamed, arrays["label"])
    want, _ = frame_facts.labels(arrays, policy, data_config.cooling_lag_minutes)
    np.testing.assert_array_equal(arrays["label"], want)
    if policy == frame_facts.FORECAST_LABEL:  # Issuance frames only, and the demo has some.
      assert len(arrays["label"]) and frame_facts.issuance_frames(arrays["time"]).all()
    seen[policy] = dict(zip(arrays["source"].tolist(), arrays["label"].tolist()))
  goes_class, flare, background, xrs_class = (
    seen[p] for p in ("goes_class", "flare_class", "background_class", "xrs_class")
  )
  assert flare and background and set(flare).isdisjoint(background)
  assert set(goes_class) == set(flare) | set(background)
  assert all(goes_class[s] == flare[s] for s in flare)
  # xrs_class: every frame; the quiet ones as background_class, a flaring one at most its
  # flare's peak class (the flux then).
  assert set(xrs_class) == set(goes_class)
  assert all(xrs_class[s] == background[s] for s in background)
  assert all(xrs_class[s] <= flare[s] for s in flare)
  assert seen["max_class_next_24h"] != goes_class


def test_class_scale_is_applied_on_read(data_config):
  """data.class_scale: the same records, labels on the SWPC or the true scale.

  The demo is a 2011 archive (GOES-15 era): on the SWPC scale every stored true flux
  counts x 0.7, so a frame's class is the one of 0.7 x its flux, and a flare's is the
  class its (SWPC-scaled) list published.
  """
  from solar_jax.data import frame_facts

  got = {}
  data_config = data_config.copy_and_resolve_references()  # (The fixture's is shared.)
  data_config.label = "goes_class"  # Flaring frames by their flare, the others by the flux.
  for scale in goes.CLASS_SCALES:
    data_config.class_scale = scale
    got[scale] = input_pipeline.make_for_inference(data_config, "all", images=False)
  swpc, true = got["swpc"], got["true"]
  np.testing.assert_array_equal(swpc["source"], true["source"])  # goes_class labels all
  flaring = swpc["flaring"]
  assert flaring.any() and (~flaring).any()
  want = np.where(
    flaring,
    frame_facts.class_index(0.7 * swpc["flare_flux"].astype(np.float64)),
    frame_facts.class_index(0.7 * swpc["goes_flux"].astype(np.float64)),
  )
  np.testing.assert_array_equal(swpc["label"], want)
  want = np.where(flaring, frame_facts.class_index(true["flare_flux"]), true["label"])
  np.testing.assert_array_equal(true["label"], want)
  # A flaring frame's SWPC class is its flare's published class (the demo's list).
  published = [goes.CLASS_LETTERS.index(c.decode()[0]) for c in swpc["flare_class"][flaring]]
  np.testing.assert_array_equal(swpc["label"][flaring], published)
  assert (swpc["label"] < true["label"]).any() and (swpc["label"] <= true["label"]).all()


def test_a_dataset_before_the_forecast_facts_is_refused_for_the_forecast_label(
  data_config, demo_tfds, tmp_path
):
  """Before 2.3.0 next24_flux was the window's XRS maximum (the decay of the flare in progress)."""
  import types

  def built(version):
    return types.SimpleNamespace(info=types.SimpleNamespace(version=version), data_dir="d")

  with pytest.raises(errors.InputMismatchError) as info:
    input_pipeline.check_forecast_facts(built("2.2.0"))
  assert "2.2.0" in str(info.value) and "next24_flux" in str(info.value)
  assert "\n" not in str(info.value)
  input_pipeline.check_forecast_facts(built("2.3.0"))
  input_pipeline.check_forecast_facts(built("10.0.0"))
  # This code reads 2.4.0 and 2.3.0: a data dir holding 2.2.0 only is named so.
  old = tmp_path / "tfds"
  shutil.copytree(demo_tfds, old)
  (version_dir,) = (old / "sdo_aia171" / "64").iterdir()
  version_dir.rename(version_dir.parent / "2.2.0")
  config = data_config.copy_and_resolve_references()
  config.data_dir = str(old)
  with pytest.raises(errors.MissingInputError, match="holds version 2.2.0 only"):
    input_pipeline.get_builder(config)


def test_the_forecast_definition_stands_in_the_model_card_and_the_report(data_config, tmp_path):
  """Label max_class_next_24h: the card counts issuance frames only and says the rule."""
  from solar_jax import report
  from solar_jax.data import frame_facts
  from solar_jax.ddpm import export

  config = default.get_config()
  config.data = data_config.copy_and_resolve_references()
  config.data.label = frame_facts.FORECAST_LABEL
  config.provenance.update(simulated=True, version="sdo_aia171/64")  # resolve_data's, cheaper
  summary = export.dataset_summary(config)
  rule = frame_facts.forecast_rule()
  assert summary["forecast"] == rule
  # Test = September: at most its issuance frames (the manifest's), some of them.
  manual = pathlib.Path(data_config.data_dir).parent / "manual" / "demo_manifest.json"
  frames = json.loads(manual.read_text())["frames"]
  september = sum(f["issuance"] for f in frames if f["time"].startswith("2011-09"))
  assert 0 < sum(summary["counts"]["test"]) <= september
  card = export.model_card(
    config,
    3,
    10,
    summary,
    "a workdir",
    made_by=provenance.record(),
    sampler=export.recommended_sampler(config, None),
  )
  assert f"- forecast definition: {rule}" in card and "00/06/12/18 UT within 6 min" in card
  text = report.render_report(config, tmp_path)
  assert f"Forecast definition (`max_class_next_24h`): {rule}." in text


def test_provenance_says_simulated(data_config):
  assert resolve.dataset_provenance(data_config)["simulated"] is True


@pytest.mark.slow
def test_one_pass_arrays_equal_the_training_stream(data_config):
  """make_for_inference's images are what make_for_train yields for the same frames."""
  kw = dict(shuffle=False, seed=0, repeat=False, process_index=0, process_count=1)
  for image_size in (64, 32):  # Stored side, and block means of 2x2.
    data_config.image_size = image_size
    try:
      for transform in (False, True):
        arrays = input_pipeline.make_for_inference(data_config, "train", transform=transform)
        stream = list(
          input_pipeline.make_for_train(
            data_config, "train", 3, drop_remainder=False, transform=transform, **kw
          )
        )
        for key in ("image", "label", "time", "source"):
          np.testing.assert_array_equal(np.concatenate([b[key] for b in stream]), arrays[key])
        first = input_pipeline.make_for_inference(
          data_config, "train", transform=transform, max_examples=5
        )
        np.testing.assert_array_equal(first["image"], arrays["image"][:5])
        np.testing.assert_array_equal(first["group"], arrays["group"][:5])
    finally:
      data_config.image_size = 64


def test_indices_read_those_frames_and_the_memorisation_search_draws_them(data_config):
  everything = input_pipeline.make_for_inference(data_config, "train", transform=False)
  n = len(everything["label"])
  idx = np.array([0, 3, n // 2, n - 1])
  some = input_pipeline.make_for_inference(data_config, "train", transform=False, indices=idx)
  for key in ("image", "label", "group", "time"):
    np.testing.assert_array_equal(some[key], everything[key][idx])
  with pytest.raises(ValueError, match="sorted, distinct"):
    input_pipeline.make_for_inference(data_config, "train", images=False, indices=[3, 0])
  # The evaluation's memorisation search: every frame of a class with at most the cap,
  # else a seeded random subset of that many (not the first in stored order).
  config = default.get_config()
  config.data = data_config
  config.evaluation.memorisation_train_images = cap = 6
  train, record = evaluate.load_train(config)
  chosen, again = memorisation.training_subset(everything["label"], cap, config.seed, "ABCMX")
  assert record == again and record["searched"] == len(chosen) == len(train["labels"])
  np.testing.assert_array_equal(train["images"], everything["image"][chosen])
  counts = np.bincount(everything["label"], minlength=5)
  assert np.bincount(train["labels"], minlength=5).tolist() == np.minimum(counts, cap).tolist()


def test_clip_level_from_the_train_split(data_config):
  """clip_max_quantile: the quantile of the train frames' on-disk maxima, recomputed here."""
  arrays = input_pipeline.make_for_inference(data_config, "train", transform=False)
  side = arrays["image"].shape[1]
  yy, xx = np.mgrid[:side, :side] - (side - 1) / 2
  disk = np.hypot(yy, xx) <= 0.40 * side
  peaks = arrays["image"][..., 0][:, disk].max(axis=1)
  np.testing.assert_allclose(peaks, arrays["intensity_max"], rtol=1e-6)
  config = default.get_config()
  config.data = data_config
  config.data.clip_max_quantile = 0.9
  try:
    resolve.resolve_data(config)  # The step main runs before config.json is written.
    clip = config.data.clip_max
  finally:
    data_config.clip_max_quantile, data_config.clip_max = 0.0, 3000.0
  assert clip == pytest.approx(np.quantile(peaks, 0.9), rel=1e-6)
  assert np.mean(peaks > clip) == pytest.approx(0.1, abs=1.5 / len(peaks))
  assert config.provenance.simulated is True and "sdo_aia171/64" in config.provenance.version


def test_reports_on_a_simulated_dataset_open_with_the_simulated_line(
  data_config, tmp_path, monkeypatch
):
  from solar_jax import report
  from solar_jax.data import build_report

  config = default.get_config()
  config.data = data_config
  resolve.resolve_data(config)
  stored = input_pipeline.metadata(input_pipeline.get_builder(data_config))["events_per_class"]

  def no_dataset(*args, **kwargs):
    raise AssertionError("the report opened the dataset")

  monkeypatch.setattr(input_pipeline, "get_builder", no_dataset)  # It reads files only.
  text = report.render_report(config, tmp_path)
  assert text.splitlines()[0] == f"**{build_report.SIMULATED_LINE}**"
  assert "label `xrs_class` with class thresholds on the `swpc` scale" in text
  assert "true 1-8 Å flux" in text
  # The list's events per class on both scales, as the build counted them.
  counts = build_report.events_line(stored)
  assert f"Flare list, {counts}." in text and "swpc scale" in counts and "true scale" in counts
  # The SWPC-scale counts are the demo list's published classes, counted from the CSV.
  with open(pathlib.Path(data_config.data_dir).parent / "manual" / "flares.csv") as f:
    published = collections.Counter(row["goes_class"][0] for row in csv.DictReader(f))
  assert stored["swpc"] == {c: published.get(c, 0) for c in goes.CLASS_LETTERS}
  assert sum(stored["true"].values()) == sum(published.values())


# ------------------------------------------------------- damaged shards ---


def _copy(demo_tfds, tmp_path):
  """A copy of the session's dataset to damage; its data config and first shard."""
  data_dir = tmp_path / "tfds"
  shutil.copytree(demo_tfds, data_dir)
  config = default.get_config().data
  config.data_dir = str(data_dir)
  shards = sorted(data_dir.rglob("*-block*.tfrecord-*"))
  return config, shards[0]


def test_intact_shards_pass(demo_tfds, tmp_path):
  config, _ = _copy(demo_tfds, tmp_path)
  input_pipeline.verify_shards(config)


def test_a_flipped_byte_names_the_shard_before_training(demo_tfds, tmp_path):
  config, shard = _copy(demo_tfds, tmp_path)
  data = bytearray(shard.read_bytes())
  data[len(data) // 2] ^= 0xFF
  shard.write_bytes(bytes(data))
  with pytest.raises(errors.DamagedFileError, match=shard.name) as info:
    input_pipeline.verify_shards(config)
  block = shard.name.split("-")[1].split(".")[0]  # sdo_aia171-block7.tfrecord-... -> block7
  assert "\n" not in str(info.value) and f"'{block}'" in str(info.value)


def test_a_truncated_or_missing_shard_is_named(demo_tfds, tmp_path):
  config, shard = _copy(demo_tfds, tmp_path)
  intact = shard.read_bytes()
  shard.write_bytes(intact[:-100])
  with pytest.raises(errors.DamagedFileError, match="truncated"):
    input_pipeline.verify_shards(config)
  shard.write_bytes(intact)
  other = next(p for p in sorted(shard.parent.glob("*-block*.tfrecord-*")) if p != shard)
  other.unlink()
  with pytest.raises(errors.DamagedFileError, match=f"{other.name}.*missing"):
    input_pipeline.verify_shards(config)


def test_withheld_days_leave_the_train_split_and_are_the_memorisation_held_out(data_config):
  """'withheld' is whole days of the training months the DDPM's 'train' never holds; the
  evaluation reads them as its held-out set and train_info.json records them."""
  from solar_jax.data import splits
  from solar_jax.ddpm import train as ddpm_train

  config = default.get_config()
  config.data = data_config
  data_config.withheld_day_fraction = 0.0
  try:
    everything = input_pipeline.make_for_inference(data_config, "train", images=False)
    assert evaluate.load_heldout(config)[0] is None  # Nothing withheld: the eval split.
    data_config.withheld_day_fraction, data_config.withheld_day_seed = 0.5, 1
    train = input_pipeline.make_for_inference(data_config, "train", images=False)
    held = input_pipeline.make_for_inference(data_config, "withheld", images=False)
    images, record = evaluate.load_heldout(config)
    info = ddpm_train.withheld_record(config)
  finally:
    data_config.withheld_day_fraction, data_config.withheld_day_seed = 0.1, 0
  day = {k: splits.as_times(v["time"]).astype("datetime64[D]") for k, v in
         (("all", everything), ("train", train), ("held", held))}  # fmt: skip
  assert len(held["time"]) > 0 and len(train["time"]) > 0
  # Disjoint whole days whose union is the training months' frames, the same labels.
  assert not set(day["train"]) & set(day["held"])
  assert sorted(np.concatenate([train["time"], held["time"]])) == sorted(everything["time"])
  assert set(splits.month_index(held["time"]) % 10) <= {6, 7, 8, 9}
  np.testing.assert_array_equal(
    held["label"], everything["label"][np.isin(everything["time"], held["time"])]
  )
  # The evaluation's held-out set: those frames (every one, under the cap), as read.
  assert record["available"] == len(held["time"]) == len(images["labels"])
  assert record["days"] == len(set(day["held"])) and record["fraction"] == 0.5
  np.testing.assert_array_equal(images["labels"], held["label"])
  # train_info.json's record: the setting and the days, reproducible from them.
  assert info["days"] == sorted(str(d) for d in set(day["held"]))
  assert (info["fraction"], info["seed"], info["frames"]) == (0.5, 1, len(held["time"]))


def test_the_forward_split_reads_every_block_and_names_a_too_short_archive(data_config):
  """data.split='forward' cuts years across the month blocks: every stored block is read;
  the demo archive spans one year, so fold 0 (three years) is refused naming them."""
  from solar_jax.data import splits

  builder = input_pipeline.get_builder(data_config)
  data_config.split = "forward"
  try:
    assert input_pipeline._blocks(builder, data_config, "test") == input_pipeline._blocks(
      builder, data_config, "all"
    )
    with pytest.raises(errors.InputMismatchError, match=r"needs 3 calendar years.*\(2011\)"):
      input_pipeline.make_for_inference(data_config, "train", images=False)
    times = splits.as_times(["2010-12-20", "2011-06-01", "2011-12-25", "2012-03-01"])
    codes = input_pipeline._split_codes(builder, data_config, times)
  finally:
    data_config.split = "month_blocks"
  # Embargo 14 days: the late-2010 train frame and the late-2011 validation frame drop.
  assert codes.tolist() == [splits.EMBARGOED, splits.VALIDATION, splits.EMBARGOED, splits.TEST]


def test_unseen_is_every_labelled_frame_but_the_generators_training_frames(data_config):
  """'unseen' (the rare classes' realism pool) = test, validation, embargoed and withheld
  frames: disjoint from 'train', and with it every labelled frame of the archive."""
  every = input_pipeline.make_for_inference(data_config, "all", images=False)
  train = input_pipeline.make_for_inference(data_config, "train", images=False)
  unseen = input_pipeline.make_for_inference(data_config, "unseen", images=False)
  assert not set(train["time"]) & set(unseen["time"])
  assert sorted(np.concatenate([train["time"], unseen["time"]])) == sorted(every["time"])
  for split in ("test", "validation", "withheld"):
    part = input_pipeline.make_for_inference(data_config, split, images=False)["time"]
    assert set(part) <= set(unseen["time"]), split
  config = default.get_config()
  config.data = data_config
  images, record = evaluate.load_unseen(config)
  assert record["available"] == len(unseen["time"]) == len(images["labels"])  # Under the cap.
  np.testing.assert_array_equal(images["labels"], unseen["label"])


def test_the_training_stream_carries_the_labels_flux(data_config):
  # A flux model's condition: the flux of which the frame's label is the class.
  facts = input_pipeline.make_for_inference(data_config, "train", images=False)
  flux = facts["label_flux"]
  assert np.isfinite(flux).all() and (flux > 0).all()
  np.testing.assert_array_equal(frame_facts.class_index(flux), facts["label"])
  batch = next(
    input_pipeline.make_for_train(data_config, "train", 4, shuffle=False, seed=0, repeat=False)
  )
  np.testing.assert_array_equal(batch["label_flux"], flux[:4])
  np.testing.assert_array_equal(batch["label"], facts["label"][:4])
