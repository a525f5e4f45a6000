"""benchmarks/study_cost.py: its arithmetic against a hand computation (no compile)."""

import importlib.util
import math

import pytest

from solar_jax.configs import aia171_64, default, quickstart


@pytest.fixture(scope="module")
def study_cost(repo_root):
  spec = importlib.util.spec_from_file_location(
    "study_cost", repo_root / "benchmarks" / "study_cost.py"
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_run_counts_by_hand(study_cost):
  """Default: 5 seeds x 2 pools, two-point knob grids, guidance 1/3/10 x ratio 0.5/1."""
  assert study_cost.run_counts(default.get_config()) == {
    "real": 5,  # No grid: one run per seed.
    "weighted": 2 + 5 - 1,  # Two grid points on seed 0, then 5 seeds, the chosen one reused.
    "focal": 6,
    "oversample": 6,
    "augment": 6,
    "real_synthetic": 3 * 2 + 5 * 2 - 1,  # Guidance x ratio points, then seeds x pools.
    "synthetic_only": 3 + 5 * 2 - 1,
    "reweighted": 5,  # real_synthetic's prior: no grid.
  }
  # The quickstart: 2 seeds x 2 pools, every knob fixed a priori (guidance 10, ratio 1):
  # 8 + 4 runs, nothing to choose.
  counts = study_cost.run_counts(quickstart.get_config())
  assert counts == {"real": 2, "oversample": 2, "augment": 2, "focal": 2, "real_synthetic": 4}


def test_study_cost_by_hand(study_cost, repo_root):
  """aia171_64 at its memory-plan row (37.1M, 136 GFLOPs/image, 257 per 80 GiB device)."""
  args = study_cost.parse_args([])
  r = study_cost.study_cost("aia171_64", args, classifier_flops=38.2e9)
  row = study_cost.results_row("aia171_64")
  assert row == {
    "params": 37.1e6,
    "train_flops_per_image": 136e9,
    "batch_per_device_16gib": 48,
    "batch_per_device_80gib": 257,
  }
  c = aia171_64.get_config()
  assert (c.training.batch_size, c.training.num_steps) == (128, 150_000)
  assert r["ddpm_trainings"] == 5  # 10 folds: f and f + 5 share their training months.
  train = 5 * 136e9 * 128 * 150_000
  assert r["train_flops"] == pytest.approx(train)
  assert r["train_hours"]["H100 SXM"] == pytest.approx(train / (989e12 * 0.35) / 3600)
  assert r["train_hours"]["TPU v5e"] == pytest.approx(train / (197e12 * 0.35) / 3600)
  assert r["min_devices"] == {"80 GiB": 1, "16 GiB": 3}  # 128 images: 257 and 48 per device.
  # Pool per class A..X: max(top-up to the largest class at ratio 1, the class itself).
  n = (4600, 18400, 20200, 2530, 230)
  pool = sum(max(20200 - k, k) for k in n)
  assert r["pool_images"] == pool == 91_840
  # DDIM 50 steps; guidance 1 unguided (1 forward), 3 and 10 guided (2); 5 pools: three grid
  # points' pool 0, then pool 1 of two chosen guidances (priced guided).
  evals = 10 * (5000 * 50 + pool * (50 + 100 + 100 + 2 * 100)) + 5 * 15 * 16 * 50
  assert r["sample_flops"] == pytest.approx(evals * 136e9 / 3)
  assert r["classifier_flops"] == pytest.approx(10 * 61 * 5000 * 38.2e9)
  assert r["classifier_hours"]["H100 SXM"] == pytest.approx(
    10 * 61 * 5000 * 38.2e9 / (495e12 * 0.1) / 3600
  )
  clf_h100 = 10 * 61 * 5000 * 38.2e9 / (495e12 * 0.1) / 3600
  assert r["total_hours"]["H100 SXM"] == pytest.approx(
    (train + evals * 136e9 / 3) / (989e12 * 0.35) / 3600 + clf_h100
  )
  image = 64 * 64 * 4
  fits = 4 * 2880 + math.ceil(image / 2880) * 2880
  assert r["storage_bytes"] == {
    "dataset": pytest.approx(74_592 * (image + 1024)),
    "checkpoints": pytest.approx(5 * 37.1e6 * 4 * (4 * 3 + 1)),
    "samples": pytest.approx(10 * (5000 + 5 * pool) * image + 10 * 5000 * fits),
  }


def test_pending_or_missing_row_is_refused(study_cost, tmp_path):
  results = tmp_path / "RESULTS.md"
  results.write_text("| aia171_64 | 37.1M | 136 | x | x | x | pending: not compiled yet |\n")
  with pytest.raises(ValueError, match="pending"):
    study_cost.results_row("aia171_64", results)
  with pytest.raises(ValueError, match="0 rows for aia171_128"):
    study_cost.results_row("aia171_128", results)
  with pytest.raises(SystemExit):
    study_cost.parse_args(["--mfu=1.5"])
