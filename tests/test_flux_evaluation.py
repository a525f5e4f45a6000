"""Flux consistency in --mode=evaluate and report.md, and the class-vs-flux generators'
comparison (issue 28): real properties on synthetic problems."""

import json

import numpy as np
import pytest

from solar_jax import errors, report
from solar_jax.classifier import experiment
from solar_jax.configs import tiny
from solar_jax.data import scaling
from solar_jax.evaluation import flux_consistency as flux_lib
from solar_jax.evaluation import generators

SIDE = 16


def _config():
  config = tiny.get_config()
  config.model.conditioning = "flux"
  config.data.image_size = SIDE
  c = config.classifier
  c.stage_sizes, c.width, c.dropout, c.batch_size, c.learning_rate = (1,), 8, 0.0, 32, 3e-3
  c.num_steps = 300
  return config


def _frames(rng, fluxes):
  """Model-space frames whose brightness rises with log flux, as the demo's flare kernels."""
  level = np.clip((np.log10(fluxes) + 5.5) / 3.0, -1, 1)
  images = level[:, None, None, None] + 0.1 * rng.normal(size=(len(fluxes), SIDE, SIDE, 1))
  return np.clip(images, -1, 1).astype(np.float32)


@pytest.fixture
def fake_splits(monkeypatch):
  """input_pipeline.make_for_inference of a train and a test split of such frames; the test
  frames come in pairs of one flare (one group, one flux)."""
  rng = np.random.default_rng(0)
  train_flux = 10 ** rng.uniform(-8, -3, 256)
  test_flux = np.repeat(10 ** rng.uniform(-8, -3, 30), 2)
  data = {
    "train": {"label_flux": train_flux, "image": _frames(rng, train_flux)},
    "test": {"label_flux": test_flux, "image": _frames(rng, test_flux)},
  }
  data["train"]["group"] = np.array([f"t{i}".encode() for i in range(256)])
  data["test"]["group"] = np.array([f"flare{i // 2}".encode() for i in range(60)])
  reads = []

  def make_for_inference(data_config, split, images=True, indices=None, **_):
    reads.append((split, images))
    arrays = {k: v if indices is None else v[indices] for k, v in data[split].items()}
    return arrays if images else {k: v for k, v in arrays.items() if k != "image"}

  monkeypatch.setattr(flux_lib.input_pipeline, "make_for_inference", make_for_inference)
  return reads


def _sample_set(workdir, config, rng, follows_flux: bool):
  """A sample set (DN/s) asked for fluxes; its images follow them, or ignore them."""
  requested = 10 ** rng.uniform(-8, -3, 80)
  shown = requested if follows_flux else 10 ** rng.uniform(-8, -3, 80)
  images = scaling.inverse(_frames(rng, shown), config.data.clip_min, config.data.clip_max)
  directory = workdir / "samples" / "300-flux"
  (directory / "sweep").mkdir(parents=True, exist_ok=True)
  sweep_flux = 10 ** np.linspace(-8, -3, 11)
  sweep = scaling.inverse(_frames(rng, sweep_flux), config.data.clip_min, config.data.clip_max)
  np.savez(directory / "sweep" / "sweep.npz", images=sweep, fluxes=sweep_flux)
  return directory, {"images": images, "fluxes": requested}


@pytest.mark.slow  # Trains the small regressor once (~5 s on the 2-core machine).
def test_flux_section_shows_a_flux_following_model_and_not_one_that_ignores_flux(
  tmp_path, fake_splits
):
  config, rng = _config(), np.random.default_rng(1)
  out = tmp_path / "eval"
  directory, good = _sample_set(tmp_path, config, rng, follows_flux=True)
  entry, _ = flux_lib.evaluate(config, tmp_path, directory, good, out)
  rho = entry["samples"]["spearman_rho"]
  assert rho["low"] > 0 and entry["samples"]["n"] == 80
  floor = entry["real_test_floor"]
  assert floor["spearman_rho"]["low"] > 0 and floor["n"] == 60 and floor["groups"] == 30
  assert entry["sweep"]["brightest_on_disk_rho"]["low"] > 0
  assert not entry["regressor"]["reused"] and (out / flux_lib.FIGURE).exists()
  saved = np.load(out / flux_lib.ARRAYS)
  np.testing.assert_allclose(saved["sample_requested"], good["fluxes"])

  # A model whose images ignore the flux asked for: the same regressor, reused from disk.
  _, bad = _sample_set(tmp_path, config, rng, follows_flux=False)
  reused, _ = flux_lib.evaluate(config, tmp_path, directory, bad, out)
  assert reused["regressor"]["reused"]
  assert not any(split == "train" and images for split, images in fake_splits[-3:])
  bad_rho = reused["samples"]["spearman_rho"]
  assert bad_rho["low"] < 0 < bad_rho["high"]
  # The floor is the same regressor on the same frames: equal after the round trip.
  for key in ("spearman_rho", "mae_decades"):
    assert reused["real_test_floor"][key] == pytest.approx(floor[key], abs=1e-6)

  # report.md: the section with N, the intervals, the floor and the sweep picture.
  drawn = {"guidance_scale": 3.0, "num_steps": 25}
  (out / "metrics.json").write_text(json.dumps({"flux_consistency": entry, "samples": drawn}))
  text = "\n".join(report.flux_section(tmp_path))
  assert (
    "| SYNTHETIC samples (guidance 3, 25 steps) | 80 |" in text
    and "(floor) | 60 (30 units) |" in text
  )
  assert f"{rho['value']:.2f} [{rho['low']:.2f}, {rho['high']:.2f}]" in text
  assert "![flux sweep](samples/300-flux/sweep/sweep.png)" in text
  assert "interval lies above 0" in text
  assert report._flux_section_shows(tmp_path, directory / "sweep" / "sweep.png")


def test_grouped_resampling_widens_the_interval_of_repeated_frames():
  from solar_jax.metrics import consistency

  rng = np.random.default_rng(0)
  flux = 10 ** rng.uniform(-8, -3, 20)
  read = flux * 10 ** rng.normal(0, 0.7, 20)
  # Each frame ten times (ten frames of one flare): not ten times the evidence.
  copies = consistency.flux_consistency(np.repeat(flux, 10), np.repeat(read, 10), num_samples=400)
  grouped = consistency.flux_consistency(
    np.repeat(flux, 10), np.repeat(read, 10), num_samples=400, groups=np.repeat(np.arange(20), 10)
  )
  single = consistency.flux_consistency(flux, read, num_samples=400)
  width = {k: v["spearman_rho"]["high"] - v["spearman_rho"]["low"] for k, v in
           {"copies": copies, "grouped": grouped, "single": single}.items()}  # fmt: skip
  assert width["copies"] < 0.6 * width["single"]
  assert width["grouped"] == pytest.approx(width["single"], rel=0.35)
  assert grouped["groups"] == 20 and grouped["n"] == 200


# ------------------------------------------------- generators compared ---

NAMES = ["A", "B", "C", "M", "X"]


def _write_workdir(workdir, conditioning, y, groups, preds, ids=None):
  """A workdir's config.json and classifier outputs as --mode=classify writes them."""
  out = workdir / "classifier"
  out.mkdir(parents=True)
  config = tiny.get_config()
  config.model.conditioning = conditioning
  config.provenance.num_folds, config.provenance.version = 10, "sdo_aia171/64 2.4.0"
  (workdir / "config.json").write_text(config.to_json())
  metrics = {"task": "multiclass", "class_names": NAMES, "seeds": [0, 1], "num_pools": 2}
  metrics["selection"] = {"real_synthetic": {"chosen": {"guidance_scale": 6.0}}}
  metrics["event_climatology"] = {"ge_m": 0.2}
  (out / "metrics.json").write_text(json.dumps(metrics))
  lines = [",".join(experiment.PREDICTION_COLUMNS)]
  ids = range(len(y)) if ids is None else ids
  for (regime, seed, pool), pred in preds.items():
    for i, frame in enumerate(ids):
      p = 0.9 if pred[i] >= 3 else 0.1
      row = [frame, "t", groups[i], NAMES[y[i]], NAMES[pred[i]], p, regime, seed, pool, "s"]
      lines.append(",".join(map(str, row + [p, int(pred[i] >= 3)])))
  (out / "predictions.csv").write_text("\n".join(lines) + "\n")


def _predictions(rng, y, accuracy):
  keys = [("oversample", s, 0) for s in (0, 1)]
  keys += [("real_synthetic", s, k) for s in (0, 1) for k in (0, 1)]
  out = {}
  for key in keys:
    right = rng.random(len(y)) < accuracy
    out[key] = np.where(right, y, rng.integers(0, 5, len(y)))
  return out


def _pair(tmp_path, flux_accuracy=None, **flux_kwargs):
  rng = np.random.default_rng(0)
  y = np.repeat(np.arange(5), 12)
  groups = [f"E{i // 3}" for i in range(len(y))]
  class_preds = _predictions(rng, y, 0.5)
  flux_preds = dict(class_preds)
  if flux_accuracy is not None:  # Other synthetic runs; the classical runs the same.
    better = _predictions(np.random.default_rng(1), y, flux_accuracy)
    flux_preds.update({k: v for k, v in better.items() if k[0] == "real_synthetic"})
  _write_workdir(tmp_path / "class", "class", y, groups, class_preds)
  _write_workdir(tmp_path / "flux", "flux", y, groups, flux_preds, **flux_kwargs)
  return [tmp_path / "class", tmp_path / "flux"]


def test_generators_with_the_same_predictions_differ_by_exactly_zero(tmp_path):
  result = generators.compare(_pair(tmp_path), num_samples=200)
  assert result["generators"] == ["class", "flux"] and result["classical_runs_identical"]
  flux = result["scores"]["real_synthetic (flux)"]
  delta = flux["delta_vs_real_synthetic (class)"]
  for key in ("macro_f1", "tss_ge_m", "auc_ge_m"):
    assert delta[key]["mean"] == 0 and delta[key]["ci95"] == [0.0, 0.0]
    assert flux["scores"][key] == result["scores"]["real_synthetic (class)"]["scores"][key]


def test_a_better_flux_generator_shows_a_positive_paired_difference(tmp_path):
  workdirs = _pair(tmp_path, flux_accuracy=0.95)
  text = generators.write(workdirs, tmp_path / "out", num_samples=300)
  result = json.loads((tmp_path / "out" / "generators.json").read_text())
  delta = result["scores"]["real_synthetic (flux)"]["delta_vs_real_synthetic (class)"]
  assert delta["macro_f1"]["ci95"][0] > 0 and delta["tss_ge_m"]["ci95"][0] > 0
  # The point estimate is the mean over runs of each run's whole-test score.
  from sklearn.metrics import f1_score

  rows = [
    r.split(",") for r in (workdirs[1] / "classifier" / "predictions.csv").read_text().split()
  ]
  runs = {}
  for r in rows[1:]:
    if r[6] == "real_synthetic":
      runs.setdefault((r[7], r[8]), ([], []))[0].append(r[3])
      runs[(r[7], r[8])][1].append(r[4])
  direct = np.mean([f1_score(t, p, average="macro") for t, p in runs.values()])
  flux_f1 = result["scores"]["real_synthetic (flux)"]["scores"]["macro_f1"]["mean"]
  assert flux_f1 == pytest.approx(direct)
  assert "**flux − class** (paired)" in text and "guidance scale 6" in text
  assert "60 frames, 20 events" in text


def test_generators_tested_on_other_frames_or_data_are_refused_in_one_line(tmp_path):
  workdirs = _pair(tmp_path, ids=[f"other{i}" for i in range(60)])
  with pytest.raises(errors.InputMismatchError, match="tested on other frames") as info:
    generators.compare(workdirs, num_samples=10)
  assert "\n" not in str(info.value)
  config = json.loads((workdirs[1] / "config.json").read_text())
  config["data"]["fold"] = 3
  (workdirs[1] / "config.json").write_text(json.dumps(config))
  with pytest.raises(errors.InputMismatchError, match="read other data"):
    generators.compare(workdirs, num_samples=10)
