"""Memory and compute plan of the research configs, without a GPU or TPU.

  PYTHONPATH=. python benchmarks/memory_plan.py --out=runs/memory_plan.json

For configs/aia171_{64,128,256}.py this lowers and compiles the real sharded
train step (``solar_jax.ddpm.train.make_train_step``; the configs' bfloat16 compute,
float32 parameters, AdamW, EMA) on 8 fake CPU devices and reports:

* parameters (from ``jax.eval_shape``, nothing allocated);
* training FLOPs per image, from XLA's cost analysis of the lowered step;
* XLA's per-device memory estimate of the compiled step
  (``compiled.memory_analysis()``: arguments + outputs - donated aliases +
  temporaries), from four compiles: per-device batch 1 and 2 (memory is linear
  in the batch: the state is fixed, activations grow), batch 1 with
  ``model.remat``, batch 1 with ``mesh.fsdp = 8``;
* from them, the largest per-device batch that fits in 75 % of a 16 GiB and an
  80 GiB device (JAX's default GPU preallocation), with and without FSDP
  (which shrinks the fixed part: each device holds 1/8 of the state) and remat
  (which shrinks the part per image).

These are XLA:CPU's buffer assignments: a GPU or TPU compiler fuses and
schedules differently, so the figures plan which batch to try first, they do
not replace a measurement (benchmarks/accelerator.py).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_FLAGS = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _FLAGS:
  # Cheaper XLA:CPU code generation: the memory plan is decided before it.
  os.environ["XLA_FLAGS"] = (
    f"{_FLAGS} --xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0 "
    "--xla_llvm_disable_expensive_passes=true"
  ).strip()

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from solar_jax import parallel  # noqa: E402
from solar_jax.ddpm import train, train_state  # noqa: E402
from solar_jax.models import unet  # noqa: E402

CONFIGS = ("aia171_64", "aia171_128", "aia171_256")
DEVICES = 8
USABLE = 0.75  # Of a device's memory: JAX's default GPU preallocation.
CAPACITIES_GIB = (16, 80)


def load_config(name: str, *, fsdp: int = 1, remat: bool = False, batch_per_device: int = 1):
  config = importlib.import_module(f"solar_jax.configs.{name}").get_config()
  config.mesh.fsdp, config.mesh.data = fsdp, DEVICES // fsdp
  config.mesh.distributed = "no"
  config.model.remat = remat
  config.training.batch_size = batch_per_device * DEVICES
  return config


def lowered_step(config):
  """The train step of ``config`` lowered for the fake devices (FLOPs: lowered cost analysis)."""
  mesh = parallel.create_mesh(config.mesh, jax.devices()[:DEVICES])
  with jax.set_mesh(mesh):
    abstract, _ = train_state.abstract_train_state(config, mesh)
    b, size = config.training.batch_size, config.data.image_size
    sharding = parallel.data_sharding(mesh)
    batch = {
      "image": jax.ShapeDtypeStruct(
        (b, size, size, config.data.channels), np.float32, sharding=sharding
      ),
      "label": jax.ShapeDtypeStruct((b,), np.int32, sharding=sharding),
    }
    return train.make_train_step(config, mesh, abstract).lower(abstract, batch)


def compiled_step(config):
  """(lowered, compiled) train step of ``config`` on the fake devices."""
  lowered = lowered_step(config)
  return lowered, lowered.compile()


def _gib(memory) -> float:
  m = memory
  total = m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
  return (total + m.temp_size_in_bytes) / 2**30


def _flops(analysis) -> float:
  if isinstance(analysis, list | tuple):
    analysis = analysis[0]
  return float(analysis["flops"])


def fitting_batch(fixed_gib: float, per_image_gib: float, capacity_gib: float) -> int:
  """Largest per-device batch with fixed + batch * per_image <= USABLE * capacity (0: none)."""
  return max(0, int((USABLE * capacity_gib - fixed_gib) // per_image_gib))


def _measure(name, log, **kw) -> float:
  t0 = time.perf_counter()
  _, compiled = compiled_step(load_config(name, **kw))
  gib = _gib(compiled.memory_analysis())
  log(f"{name} {kw}: {gib:.3f} GiB per device ({time.perf_counter() - t0:.0f} s to compile)")
  return gib


def shapes_only(name: str) -> dict:
  """What needs no compile: parameters, train FLOPs per image (lowered step), state GiB.

  The state (params, EMA, AdamW moments, all float32) per device without FSDP.
  """
  config = load_config(name)
  mesh = parallel.create_mesh(config.mesh, jax.devices()[:DEVICES])
  with jax.set_mesh(mesh):
    abstract, _ = train_state.abstract_train_state(config, mesh)
  state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(abstract))
  return {
    "config": name,
    "params": unet.count_params(abstract.params),
    "train_flops_per_image": _flops(lowered_step(config).cost_analysis()) / DEVICES,
    "state_gib": state_bytes / 2**30,
  }


def plan(name: str, log) -> dict:
  """Four compiles: batch/device 1 and 2 (the slope), with remat, with FSDP over 8 devices.

  The fixed part (the state and what does not grow with the batch) is the same
  with and without remat; FSDP changes only it. So remat's slope is its batch-1
  figure less the fixed part, and FSDP's fixed part its batch-1 figure less the slope.
  """
  row = shapes_only(name)
  at_1 = _measure(name, log, batch_per_device=1)
  at_2 = _measure(name, log, batch_per_device=2)
  remat_1 = _measure(name, log, remat=True)
  fsdp_1 = _measure(name, log, fsdp=DEVICES)
  plain = at_2 - at_1
  fixed = at_1 - plain
  fixed_fsdp = fsdp_1 - plain
  remat = remat_1 - fixed
  row.update(
    fixed_gib=fixed,
    fsdp_fixed_gib=fixed_fsdp,
    plain_gib_at_batch_1=at_1,
    remat_gib_at_batch_1=remat_1,
    plain_gib_per_image=plain,
    remat_gib_per_image=remat,
  )
  for fsdp, base in ((1, fixed), (DEVICES, fixed_fsdp)):
    for key, per_image in (("plain", plain), ("remat", remat)):
      for capacity in CAPACITIES_GIB:
        row[f"batch_{capacity}gib_fsdp{fsdp}_{key}"] = fitting_batch(base, per_image, capacity)
  return row


def table(rows) -> str:
  head = (
    "| config | params | train GFLOPs/image | GiB/device at batch 1 (remat) | GiB per image "
    "(remat) | batch/device in 16 GiB: plain, remat, FSDP-8, FSDP-8 + remat | in 80 GiB: same |"
  )
  lines = [head, "| --- " * 7 + "|"]
  for r in rows:
    if "fixed_gib" not in r:  # Shapes only: the compiles are still to be run.
      pending = "pending: not compiled yet"
      lines.append(
        f"| {r['config']} | {r['params'] / 1e6:.1f}M | {r['train_flops_per_image'] / 1e9:.0f} | "
        f"{pending} (state alone {r['state_gib']:.2f}) | {pending} | {pending} | {pending} |"
      )
      continue
    fits = {
      c: ", ".join(
        str(r[f"batch_{c}gib_fsdp{f}_{k}"]) for f in (1, DEVICES) for k in ("plain", "remat")
      )
      for c in CAPACITIES_GIB
    }
    lines.append(
      f"| {r['config']} | {r['params'] / 1e6:.1f}M | {r['train_flops_per_image'] / 1e9:.0f} | "
      f"{r['plain_gib_at_batch_1']:.2f} ({r['remat_gib_at_batch_1']:.2f}) | "
      f"{r['plain_gib_per_image']:.2f} ({r['remat_gib_per_image']:.2f}) | {fits[16]} | {fits[80]} |"
    )
  return "\n".join(lines)


def docstring_line(r) -> str:
  """The plan line each research config's docstring carries (checked by tests/test_benchmarks.py)."""
  if "fixed_gib" not in r:
    return (
      f"Plan (benchmarks/memory_plan.py, XLA:CPU estimate): {r['params'] / 1e6:.1f}M parameters, "
      f"{r['train_flops_per_image'] / 1e9:.0f} train GFLOPs/image; batch/device: pending "
      f"(not compiled yet; the state alone is {r['state_gib']:.2f} GiB per device)."
    )
  fits = {
    c: "/".join(
      str(r[f"batch_{c}gib_fsdp{f}_{k}"]) for f in (1, DEVICES) for k in ("plain", "remat")
    )
    for c in CAPACITIES_GIB
  }
  return (
    f"Plan (benchmarks/memory_plan.py, XLA:CPU estimate): {r['params'] / 1e6:.1f}M parameters, "
    f"{r['train_flops_per_image'] / 1e9:.0f} train GFLOPs/image; batch/device "
    f"(plain/remat/FSDP-8/FSDP-8+remat) in 16 GiB: {fits[16]}, in 80 GiB: {fits[80]}."
  )


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--configs", default=",".join(CONFIGS))
  parser.add_argument("--out", default=None)
  parser.add_argument("--shapes_only", action="store_true", help="parameters and FLOPs only")
  args = parser.parse_args(argv)

  def log(message):
    print(message, file=sys.stderr, flush=True)

  rows = []
  for name in args.configs.split(","):
    rows.append(shapes_only(name) if args.shapes_only else plan(name, log))
    if args.out:
      Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
  print(table(rows))
  for row in rows:
    print(f"{row['config']}: {docstring_line(row)}")
  return rows


if __name__ == "__main__":
  main()
