"""The benchmarks that wait for hardware this project has not had yet: they must not rot.

benchmarks/accelerator.py runs at CI sizes on the CPU (a subprocess, with cheaper
XLA:CPU compiles: compiling is nearly all of its cost there). The research
configs' docstrings state benchmarks/memory_plan.py's figures: the parameter
count is checked exactly (shapes only), the rest against RESULTS.md's table
(compiling the 256² model here would take minutes).
"""

import importlib
import json
import math
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from solar_jax.models import unet


@pytest.mark.slow
@pytest.mark.long
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


# ------------------------------------------------------ memory plan ---

_PLAN_LINE = re.compile(
  r"Plan \(benchmarks/memory_plan\.py, XLA:CPU estimate\): ([\d.]+)M parameters, (\d+) train "
  r"GFLOPs/image; batch/device (?:\(plain/remat/FSDP-8/FSDP-8\+remat\) in 16 GiB: ([\d/]+), "
  r"in 80 GiB: ([\d/]+)|: pending \(not compiled yet; the state alone is ([\d.]+) GiB)"
)


def _results_row(repo_root, name: str) -> list[str]:
  text = (repo_root / "benchmarks" / "RESULTS.md").read_text()
  rows = [line for line in text.splitlines() if line.startswith(f"| {name} |")]
  assert len(rows) == 1, f"no single row for {name} in the memory plan table"
  return [cell.strip() for cell in rows[0].strip("|").split("|")]


@pytest.mark.parametrize("name", ["aia171_64", "aia171_128", "aia171_256"])
def test_research_config_states_its_plan(repo_root, name):
  """The docstring's plan line: exact parameter count, and the RESULTS.md table's figures."""
  module = importlib.import_module(f"solar_jax.configs.{name}")
  doc = " ".join(module.__doc__.split())
  match = _PLAN_LINE.search(doc)
  assert match, f"configs/{name}.py: no memory plan line in the docstring"
  config = module.get_config()
  model = unet.create_model(config)
  size, c = config.data.image_size, config.data.channels
  shapes = jax.eval_shape(
    lambda: model.init(
      jax.random.key(0),
      jnp.zeros((1, size, size, c)),
      jnp.zeros((1,), jnp.int32),
      jnp.zeros((1,), jnp.int32),
    )["params"]
  )
  params = unet.count_params(shapes)
  assert f"{params / 1e6:.1f}" == match[1], (params, match[1])
  row = _results_row(repo_root, name)
  assert row[1] == f"{match[1]}M" and row[2] == match[2]
  if match[5]:  # The compiles are pending: the table says so too, with the same state size.
    assert row[3] == f"pending: not compiled yet (state alone {match[5]})"
    assert row[4:] == ["pending: not compiled yet"] * 3
    return
  assert row[5] == ", ".join(match[3].split("/")) and row[6] == ", ".join(match[4].split("/"))
  # More memory never fits a smaller batch, nor does FSDP (it only shrinks the state share).
  small, large = (list(map(int, m.split("/"))) for m in (match[3], match[4]))
  assert all(a <= b for a, b in zip(small, large))
  assert small[2] >= small[0] and small[3] >= small[1] and large[2] >= large[0]
