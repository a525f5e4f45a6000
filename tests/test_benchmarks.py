"""The benchmarks that wait for hardware this project has not had yet: they must not rot.

benchmarks/accelerator.py runs at CI sizes on the CPU (a subprocess, with cheaper
XLA:CPU compiles: compiling is nearly all of its cost there).
"""

import json
import math
import os
import subprocess
import sys


def test_accelerator_benchmark_runs_at_ci_sizes(repo_root, tmp_path):
  out = tmp_path / "accelerator.json"
  env = dict(
    os.environ,
    PYTHONPATH=str(repo_root),
    JAX_PLATFORMS="cpu",
    XLA_FLAGS="--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true",
  )
  result = subprocess.run(
    [sys.executable, "benchmarks/accelerator.py", "--tiny", f"--out={out}"],
    cwd=repo_root,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  figures = json.loads(out.read_text())
  assert figures == json.loads(result.stdout)
  train = figures["train"]
  assert train["batch_per_device"] == 4  # The CPU gives no memory figure: the probe's batch.
  assert train["images_per_s"] > 0 and train["train_flops_per_image"] > 0
  assert math.isclose(
    figures["mfu"], train["achieved_flops_per_s"] / figures["peak"]["flops_per_s"]
  )
  assert figures["sample"]["images"] == 8 and figures["sample"]["finite"]
  agreement = figures["agreement"]
  assert agreement["agree"] and math.isfinite(agreement["loss_cpu"]), agreement
  assert set(figures["seconds"]) == {"peak", "train", "sample", "agreement", "total"}
