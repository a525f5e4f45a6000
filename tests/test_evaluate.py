"""The --mode=evaluate driver on synthetic Suns with a cheap pixel extractor."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

from solar_jax import report
from solar_jax import workdir as wd
from solar_jax.configs import tiny
from solar_jax.evaluation import evaluate
from solar_jax.metrics import memorisation, physics


def _suns(rng, labels, size=32):
  """Limb-brightened disks whose brightness grows with the class, plus bright blobs."""
  r = physics.radius_map((size, size))
  base = np.where(r <= 1.0, 300.0 * (1.0 + 0.5 * r**2), 30.0 * np.exp(-(r - 1.0) * 5))
  images = []
  for label in labels:
    image = base * (1.0 + 0.3 * label) * rng.uniform(0.9, 1.1)
    y, x = rng.integers(8, size - 8, 2)
    image[y - 2 : y + 2, x - 2 : x + 2] *= 3.0 + label
    images.append(image)
  return np.stack(images)[..., None].astype(np.float32)


def _pixel_features(images_model_space):
  """4x4 average-pooled model-space image: a cheap deterministic 'extractor'."""
  n, h, w, _ = images_model_space.shape
  return (
    images_model_space[..., 0].reshape(n, 4, h // 4, 4, w // 4).mean(axis=(2, 4)).reshape(n, 16)
  )


@pytest.fixture
def config():
  c = tiny.get_config()
  c.evaluation.num_images = 30
  return c


def _data(rng, n, classes=(0, 1, 2)):
  labels = rng.choice(classes, n).astype(np.int32)
  return {"images": _suns(rng, labels), "labels": labels}


def test_identical_sets_score_perfectly(tmp_path, config):
  rng = np.random.default_rng(0)
  real = _data(rng, 40)
  config.evaluation.num_images = 40  # All images, so both subsets are the same images.
  # The samples are the real images as the model gives them back: through the intensity
  # transform and back (what a perfect generator's output would be).
  fake = dict(
    real, images=physics.real_as_model(real["images"], config.data.clip_min, config.data.clip_max)
  )
  metrics = evaluate.evaluate_arrays(config, real, fake, {"pooled": _pixel_features}, tmp_path)
  assert metrics["num_images"] == 40
  overall = metrics["features"]["pooled"]["overall"]
  assert overall["n"] == 40
  assert abs(overall["fid"]) < 1e-6 and overall["fid_method"] == "sqrtm"
  assert overall["precision"] == 1.0 and overall["recall"] == 1.0
  assert overall["clusters"]["js_divergence"] < 1e-9
  assert overall["kid"]["ci_low"] <= 0.0 <= overall["kid"]["ci_high"]
  assert overall["floor"] == {"not_estimable": "no second real split (evaluation.floor_split)"}
  # Per class: same images of that class on both sides; FID only where n > D = 16.
  for name, count in zip(("A", "B", "C"), np.bincount(real["labels"], minlength=3)):
    entry = metrics["features"]["pooled"]["per_class"][name]
    assert entry["n"] == count
    if count > 16:
      assert abs(entry["fid"]) < 1e-6
    else:
      assert "fid" not in entry and entry["fid_not_estimable"] == f"N={count} <= D=16"
  assert (
    metrics["features"]["pooled"]["per_class"]["X"]["not_estimable"] == "N=0 < 2 images per set"
  )
  assert metrics["physics"]["intensity_wasserstein_dex"] == 0.0
  assert metrics["physics"]["brightness_by_class"]["B"]["ratio"] == pytest.approx(1.0)
  assert metrics["physics"]["flare"]["overall"]["peak_dns"]["ks_statistic"] == 0.0
  assert metrics["memorisation"]["pixels"]["not_estimable"].startswith("no DDPM training")
  written = json.loads((tmp_path / "metrics.json").read_text())
  assert written["summary"]["pooled"]["fid"] == pytest.approx(overall["fid"], abs=1e-12)
  for name in ("intensity_histogram", "limb_profile", "power_spectrum", "cluster_occupancy_pooled"):
    assert (tmp_path / f"{name}.png").stat().st_size > 1000
  with np.load(tmp_path / "features_pooled.npz") as f:
    assert f["real"].shape == (40, 16) and len(f["generated_labels"]) == 40


def _brightness_classifier(config, data):
  """A 'real-only classifier' that recognises the class from the median brightness."""

  def median(images_model):
    return np.median(images_model.reshape(len(images_model), -1), axis=1)

  m = median(evaluate._model_space(config, data["images"]))
  levels = np.sort([m[data["labels"] == c].mean() for c in np.unique(data["labels"])])
  edges = (levels[1:] + levels[:-1]) / 2
  info = {"regime": "real", "seed": 0, "step": 1, "task": "multiclass"}
  info["class_names"] = list(config.data.classes)
  return (lambda images_model: np.digitize(median(images_model), edges)), info


@pytest.mark.slow
def test_floors_memorisation_and_consistency_end_to_end(tmp_path, config):
  # Real test, a disjoint real "validation" set and a training set all from one
  # distribution; the samples are copies of training images, labelled right.
  rng = np.random.default_rng(4)
  config.evaluation.num_images = 40
  real, reference, train = _data(rng, 60), _data(rng, 60), _data(rng, 80)
  copies = {"images": train["images"][:45], "labels": train["labels"][:45]}
  metrics = evaluate.evaluate_arrays(
    config, real, copies, {"pooled": _pixel_features}, tmp_path, reference=reference,
    train=train, classify=_brightness_classifier(config, real),
  )  # fmt: skip
  overall = metrics["features"]["pooled"]["overall"]
  assert overall["floor"]["n"] == 40
  assert overall["floor"]["kid"]["ci_low"] <= 0.0 <= overall["floor"]["kid"]["ci_high"]
  counts = metrics["class_counts"]
  assert counts["floor_reference_overall"] == counts["real_overall"]
  for space in ("pooled", "pixels"):
    mem = metrics["memorisation"][space]
    assert mem["share"] == 1.0 and mem["memorised"] and mem["n_train"] == 80
    assert mem["pvalue"] == pytest.approx(1 / math.comb(45 + 60, 45), rel=1e-6)
    # Class-matched: each class's copies against its own training and held-out images.
    for c, name in enumerate(config.data.classes):
      row, g = mem["per_class"][name], int((copies["labels"] == c).sum())
      assert (row["n_generated"], row["n_train"]) == (g, int((train["labels"] == c).sum()))
      assert row["n_heldout"] == int((real["labels"] == c).sum())
      if c < 3:
        assert row["count"] == g and row["memorised"] and row["pvalue_holm"] < 0.01
      else:  # M and X: no images in any set.
        assert row["not_estimable"] == "no training images of the class searched (N_train=0)"
  cc = metrics["class_consistency"]
  assert cc["real_reference"]["balanced_accuracy"] > 0.9
  assert cc["synthetic"]["balanced_accuracy"] > 0.9
  for name in ("memorisation_pairs_pixels", "class_consistency_synthetic", "flare_physics"):
    assert (tmp_path / f"{name}.png").stat().st_size > 1000


def test_a_brighter_model_is_worse_and_the_class_mix_is_matched(tmp_path, config):
  rng = np.random.default_rng(1)
  real = _data(rng, 60)
  good = _data(rng, 90)
  bright = {"images": good["images"] * 3.0, "labels": good["labels"]}
  fx = {"pooled": _pixel_features}
  m_good = evaluate.evaluate_arrays(config, real, good, fx, tmp_path / "g", write_plots=False)
  m_bad = evaluate.evaluate_arrays(config, real, bright, fx, tmp_path / "b", write_plots=False)
  assert (
    m_bad["features"]["pooled"]["overall"]["fid"]
    > 5 * m_good["features"]["pooled"]["overall"]["fid"]
  )
  assert m_bad["physics"]["intensity_wasserstein_dex"] == pytest.approx(np.log10(3.0), abs=0.05)
  assert m_bad["physics"]["brightness_by_class"]["A"]["ratio"] == pytest.approx(3.0, rel=0.1)
  counts = m_good["class_counts"]
  assert counts["generated_overall"] == counts["real_overall"]  # Enough of each class.
  # Every sample is a disk: none noise-like, brighter or not (noise: tests/test_report_guards).
  for m in (m_good, m_bad):
    assert m["physics"]["noise_check"]["num_noise_like"] == 0
    assert m["physics"]["noise_check"]["num_images"] == len(good["labels"])


def _write_samples(workdir, step, data, path=None, guidance=1.0):
  path = path or workdir / "samples" / str(step) / "samples.npz"
  path.parent.mkdir(parents=True, exist_ok=True)
  buffer = io.BytesIO()
  np.savez(
    buffer,
    images=data["images"],
    labels=data["labels"],
    class_names=np.array(("A", "B", "C", "M", "X")),
    seed=np.int64(0),
    step=np.int64(step),
    sampler=np.asarray("ddim"),
    num_steps=np.asarray(5),
    eta=np.asarray(0.0),
    guidance_scale=np.asarray(guidance),
  )
  path.write_bytes(buffer.getvalue())


def _load_train(train: dict):
  """``evaluate.load_train`` on in-memory training images: the same selection rule."""

  def load_train(cfg):
    idx, record = memorisation.training_subset(
      train["labels"], cfg.evaluation.memorisation_train_images, cfg.seed, cfg.data.classes
    )
    return {k: v[idx] for k, v in train.items()}, record

  return load_train


@pytest.mark.slow
def test_run_uses_the_newest_samples(tmp_path, config, monkeypatch):
  rng = np.random.default_rng(2)
  splits = {"test": _data(rng, 50), "validation": _data(rng, 40), "train": _data(rng, 60)}
  _write_samples(tmp_path, 9, _data(rng, 12))
  newest = _data(rng, 20)
  _write_samples(tmp_path, 40, newest)  # Newest: 40 > 9 numerically.
  read = []

  def load_real(cfg, max_examples, split=None):
    read.append((split or cfg.evaluation.split, max_examples))
    return splits[split or cfg.evaluation.split]

  monkeypatch.setattr(evaluate, "load_real", load_real)
  monkeypatch.setattr(evaluate, "load_train", _load_train(splits["train"]))
  withheld = _data(rng, 36)  # The withheld days' frames: the memorisation held-out set.
  record = {"split": "withheld", "fraction": 0.1, "day_seed": 0, "days": 4}
  record.update(memorisation.training_subset(withheld["labels"], 64, 1, "ABCMX")[1])
  monkeypatch.setattr(evaluate, "load_heldout", lambda cfg: (withheld, record))
  unseen = _data(rng, 90)  # Every frame the generator never saw: more per class than test.
  chosen = {"per_class_cap": 30}
  monkeypatch.setattr(evaluate, "load_unseen", lambda cfg: (unseen, chosen))
  monkeypatch.setattr(
    evaluate, "build_extractors", lambda cfg, wd, mesh=None: ({"pooled": _pixel_features}, {})
  )
  metrics = evaluate.run(config, tmp_path)
  assert metrics["samples"]["step"] == 40
  assert metrics["num_images"] == 20  # min(30, 50 real, 20 generated)
  written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
  assert written["samples"]["sampler"] == "ddim"
  assert read == [("test", 150), ("validation", 150)]
  # Every class has at most 64 training frames (the tiny config's cap): all 60 searched.
  assert written["memorisation_train_images_searched"] == 60
  selection = written["memorisation_train_selection"]
  assert (selection["per_class_cap"], selection["seed"], selection["searched"]) == (64, 0, 60)
  assert written["floor_split"] == "validation" and written["sample_size_rules"]["fid"]
  # The held-out images are the withheld days', not the evaluation split's.
  assert written["memorisation"]["pixels"]["n_heldout"] == 36
  assert written["memorisation_heldout_selection"]["days"] == 4
  assert "a held-out set passed in (36 images" in written["memorisation_heldout"]
  # The report: one compact table per feature space, FID marked where N <= D, no key dump.
  text = report.render_report(config, tmp_path)
  section = text[text.index("## Evaluation") :]
  assert "### Feature space `pooled` (D = 16)" in section and "| overall | 20 |" in section
  marked = 0
  for name, entry in written["features"]["pooled"]["per_class"].items():
    n = entry["n"]
    if 2 <= n <= 16:
      assert "fid" not in entry and f"| {name} | {n} | n/a: N={n} <= D=16 |" in section
      marked += 1
  assert marked >= 2
  assert "summary." not in section and "class_counts." not in section
  assert "(eval/memorisation_pairs_pixels.png)" in section
  assert "They are the 36 frames of 4 days withheld from the DDPM's training months" in section
  # Per class against every unseen frame of the class, with the N of each side.
  rows = written["features"]["pooled"]["per_class_unseen"]
  for c, row in rows.items():
    i = "ABCMX".index(c)
    have, made = int(np.sum(unseen["labels"] == i)), int(np.sum(newest["labels"] == i))
    assert (row["n_real_available"], row["n_generated_available"]) == (have, made)
    assert row["n"] == min(have, made, 30)
    assert f"| {c} | {row['n']} | {have} | {made} | " in section
  flare = written["physics"]["flare_unseen"]["per_class"]
  assert sum(e["real_above_clip"]["n"] for e in flare.values()) == 90
  assert "(eval/flare_physics.png)" in section
  # Memorisation per class, class-matched, with N of each set (or why not estimable).
  for name, row in written["memorisation"]["pixels"]["per_class"].items():
    n = f"| pixels | {name} | {row['n_generated']} / {row['n_train']} / {row['n_heldout']} |"
    assert n in section
    if "not_estimable" in row:
      assert f"{n} n/a: {row['not_estimable']} |" in section
    else:
      assert f"{row['pvalue_holm']:.2g}" in section.split(n)[1].splitlines()[0]
  assert sorted(p.name for p in (tmp_path / "eval").glob("grid_*.png")) == [
    "grid_A.png",
    "grid_B.png",
    "grid_C.png",
  ]


@pytest.mark.slow
@pytest.mark.long
def test_run_also_scores_the_classifier_pool_when_drawn_otherwise(tmp_path, config, monkeypatch):
  rng = np.random.default_rng(3)
  splits = {"test": _data(rng, 50), "validation": _data(rng, 40), "train": _data(rng, 60)}
  samples = _data(rng, 30)
  _write_samples(tmp_path, 40, samples)
  pool_path = tmp_path / "samples" / "40-pool" / "samples.npz"  # A sample set.
  (tmp_path / "classifier").mkdir()
  (tmp_path / "classifier" / "metrics.json").write_text(
    json.dumps({"synthetic": {"path": str(pool_path)}})  # The set the classifier trained on.
  )
  # Drawn like the samples: nothing more to score.
  _write_samples(tmp_path, 40, samples, path=pool_path)
  monkeypatch.setattr(
    evaluate, "load_real", lambda cfg, max_examples, split=None: splits[split or "test"]
  )
  monkeypatch.setattr(evaluate, "load_train", _load_train(splits["train"]))
  monkeypatch.setattr(evaluate, "load_heldout", lambda cfg: (None, {}))
  monkeypatch.setattr(evaluate, "load_unseen", lambda cfg: (None, {}))
  monkeypatch.setattr(
    evaluate, "build_extractors", lambda cfg, wd, mesh=None: ({"pooled": _pixel_features}, {})
  )
  assert "classifier_pool" not in evaluate.run(config, tmp_path)
  assert not (tmp_path / "eval" / "classifier_pool").exists()
  # With guidance 10 and three times brighter: scored on its own, and worse.
  bright = {"images": samples["images"] * 3.0, "labels": samples["labels"]}
  _write_samples(tmp_path, 40, bright, path=pool_path, guidance=10.0)
  metrics = evaluate.run(config, tmp_path)
  pool = json.loads((tmp_path / "eval" / "classifier_pool" / "metrics.json").read_text())
  assert pool["samples"]["guidance_scale"] == 10.0 and pool["samples"]["path"] == str(pool_path)
  assert pool == json.loads(json.dumps(evaluate._jsonable(metrics["classifier_pool"])))
  assert pool["summary"]["pooled"]["fid"] > 5 * metrics["summary"]["pooled"]["fid"]
  assert pool["physics"]["intensity_wasserstein_dex"] == pytest.approx(np.log10(3.0), abs=0.05)
  assert (tmp_path / "eval" / "classifier_pool" / "grid_A.png").exists()
  text = report.render_report(config, tmp_path)
  section = text[text.index("### The classifier's synthetic training images") :]
  assert "guidance 10.0" in section and "(eval/classifier_pool/grid_A.png)" in section
  assert "### Feature space `pooled` (D = 16)" in section
  assert f"| overall | 30 | {pool['summary']['pooled']['fid']:.3g} " in section


def test_missing_inputs_are_clear_errors(tmp_path, config):
  with pytest.raises(FileNotFoundError, match="--mode=sample"):
    wd.latest_samples(tmp_path)
  config.evaluation.extractors = ("inception",)
  config.evaluation.inception_weights = ""
  with pytest.raises(FileNotFoundError, match="inception_weights is empty"):
    evaluate.build_extractors(config, tmp_path)
  config.evaluation.extractors = ("classifier",)
  with pytest.raises(RuntimeError, match="no feature extractor is available.*classifier"):
    evaluate.build_extractors(config, tmp_path)
