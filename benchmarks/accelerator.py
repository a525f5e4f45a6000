"""Accelerator figures for the 256² research UNet, in one run of under 8 minutes.

  # on a GPU or TPU host (one device is used):
  python benchmarks/accelerator.py --out=runs/accelerator.json
  # the same code at CI sizes on CPU (tests/test_benchmarks.py runs it):
  JAX_PLATFORMS=cpu python benchmarks/accelerator.py --tiny --out=runs/accelerator_cpu.json

What it measures, in this order, each phase timed:

1. peak: the device's matmul rate in the compute dtype (bfloat16), a jitted
   chain of ``--matmul_n``² ``jnp.dot`` (2 n³ FLOPs each), median of 5;
2. batch: the largest per-device batch that fits. The train step is compiled
   at ``--probe_batch``; XLA's memory analysis of it (arguments = the train
   state, temporaries = activations, linear in the batch) and the device's
   ``bytes_limit`` give the largest multiple of 8 under ``--memory_fraction``
   of the device; a step that still runs out of memory backs off by 3/4;
3. train: ``--steps`` steps of the real train step (``solar_jax.ddpm.train``; bf16
   compute, float32 parameters, AdamW, EMA) on synthetic random batches in
   [-1, 1] already on the device: images/s, FLOPs per image from the cost
   analysis of the lowered step, MFU = achieved FLOP/s / peak;
4. sample: ``--sample_images`` images at the config's size with its sampler
   (DDIM, ``sampling.num_steps``) from the random-weight model: images/s;
5. agreement: one step's loss on the accelerator against the same step (same
   parameters, batch and keys) on the host CPU, which must agree within
   ``--loss_rtol`` (2 % by default: bfloat16 keeps 8 significant bits, about
   0.4 % per rounding, and the two backends fuse and accumulate differently).

Random weights and inputs: the cost does not depend on them, and no dataset is
needed. Prints one JSON object (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solar_jax import xla_flags  # noqa: E402

xla_flags.configure_xla_cpu()  # Before JAX starts its CPU backend.

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from solar_jax import parallel  # noqa: E402
from solar_jax.configs import aia171_256, tiny  # noqa: E402
from solar_jax.ddpm import sample, train, train_state  # noqa: E402

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def _flops(analysis) -> float:
  if isinstance(analysis, list | tuple):
    analysis = analysis[0]
  return float(analysis["flops"])


def matmul_peak(n: int, dtype, device, repeats: int = 5, chain: int = 8) -> float:
  """FLOP/s of a chain of ``chain`` n x n matmuls in ``dtype`` on ``device`` (median)."""
  key = jax.random.key(0)
  a = jax.device_put(jax.random.normal(key, (n, n), dtype) / math.sqrt(n), device)

  @jax.jit
  def run(x):
    for _ in range(chain):
      x = jnp.dot(x, a, preferred_element_type=dtype)
    return x

  run(a).block_until_ready()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    run(a).block_until_ready()
    times.append(time.perf_counter() - start)
  return 2 * n**3 * chain / statistics.median(times)


def _batch(config, b: int, seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  size, c = config.data.image_size, config.data.channels
  return {
    "image": rng.uniform(-1, 1, (b, size, size, c)).astype(np.float32),
    "label": rng.integers(0, len(config.data.classes), b).astype(np.int32),
  }


class Step:
  """The real train step of ``config`` on a 1-device mesh, compiled at one batch size."""

  def __init__(self, config, device, batch_size: int):
    config = config.copy_and_resolve_references()
    config.training.batch_size = batch_size
    self.config, self.batch_size = config, batch_size
    self.mesh = parallel.create_mesh(config.mesh, [device])
    with jax.set_mesh(self.mesh):
      self.abstract, _ = train_state.abstract_train_state(config, self.mesh)
      host = _batch(config, batch_size)
      self.batch = parallel.make_global_batch(self.mesh, host)
      self.lowered = train.make_train_step(config, self.mesh, self.abstract).lower(
        self.abstract, self.batch
      )
      start = time.perf_counter()
      self.compiled = self.lowered.compile()
      self.compile_s = time.perf_counter() - start
    self.flops_per_image = _flops(self.lowered.cost_analysis()) / batch_size
    memory = self.compiled.memory_analysis()
    self.state_bytes = getattr(memory, "argument_size_in_bytes", 0) if memory else 0
    self.temp_bytes = getattr(memory, "temp_size_in_bytes", 0) if memory else 0

  def init(self):
    with jax.set_mesh(self.mesh):
      return train_state.init_train_state(self.config, self.mesh)

  def put(self, state):
    """``state`` (from another device) placed as this step expects it."""
    host = jax.device_get(state)  # A copy: the step donates its input.
    return jax.device_put(host, jax.tree.map(lambda a: a.sharding, self.abstract))

  def run(self, state, steps: int):
    """(state, seconds for ``steps`` steps, metrics of the last)."""
    with jax.set_mesh(self.mesh):
      metrics = None
      start = time.perf_counter()
      for _ in range(steps):
        state, metrics = self.compiled(state, self.batch)
      jax.block_until_ready((state, metrics))
      return state, time.perf_counter() - start, metrics


def fitting_batch(probe: Step, device, fraction: float, cap: int) -> int:
  """The largest multiple of 8 (<= cap) whose estimated step memory fits the device."""
  stats = device.memory_stats() or {}
  limit = stats.get("bytes_limit")
  if not limit or not probe.temp_bytes:
    return probe.batch_size  # No memory figure (CPU): keep the probe's batch.
  per_image = probe.temp_bytes / probe.batch_size
  fits = (fraction * limit - probe.state_bytes) / per_image
  return int(max(8, min(cap, 8 * math.floor(fits / 8))))


def _is_oom(error: Exception) -> bool:
  text = str(error)
  return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def train_phase(config, device, args, log) -> tuple[Step, dict]:
  probe = Step(config, device, args.probe_batch)
  batch = fitting_batch(probe, device, args.memory_fraction, args.max_batch)
  log(
    f"probe batch {args.probe_batch}: state {probe.state_bytes / 2**30:.2f} GiB, temporaries "
    f"{probe.temp_bytes / 2**30:.2f} GiB -> batch {batch}"
  )
  while True:
    try:
      step = probe if batch == probe.batch_size else Step(config, device, batch)
      state = step.init()
      state, _, _ = step.run(state, 2)  # Warm-up (and the first out-of-memory point).
      state, seconds, metrics = step.run(state, args.steps)
      break
    except Exception as e:  # noqa: BLE001 - only an out-of-memory error backs off.
      if not _is_oom(e) or batch <= 8:
        raise
      batch = max(8, 8 * (batch * 3 // 4 // 8))
      log(f"out of memory: retrying at batch {batch}")
  images_per_s = args.steps * batch / seconds
  return step, {
    "batch_per_device": batch,
    "steps": args.steps,
    "compile_s": step.compile_s,
    "images_per_s": images_per_s,
    "train_flops_per_image": step.flops_per_image,
    "achieved_flops_per_s": images_per_s * step.flops_per_image,
    "state_gib": step.state_bytes / 2**30,
    "temporaries_gib": step.temp_bytes / 2**30,
    "final_loss": float(jax.device_get(metrics["loss"])),
  }


def sample_phase(config, device, n: int) -> dict:
  mesh = parallel.create_mesh(config.mesh, [device])
  with jax.set_mesh(mesh):
    params = train_state.init_train_state(config, mesh).ema_params
    labels = np.arange(n, dtype=np.int32) % len(config.data.classes)
    sample.generate(config, params, labels[: config.sampling.batch_size], mesh=mesh)  # Compiles.
    start = time.perf_counter()
    images = sample.generate(config, params, labels, mesh=mesh)
    seconds = time.perf_counter() - start
  return {
    "images": n,
    "sampler": config.sampling.sampler,
    "sampler_steps": config.sampling.num_steps,
    "batch": config.sampling.batch_size,
    "images_per_s": n / seconds,
    "finite": bool(np.isfinite(images).all()),
  }


def agreement_phase(config, device, batch: int, rtol: float, compiled=None) -> dict:
  """One step's loss on ``device`` and on the host CPU, from the same state and batch.

  ``compiled``: a CPU ``Step`` at ``batch`` to reuse when the device is the CPU.
  """
  cpu = jax.devices("cpu")[0]
  reuse = compiled is not None and compiled.batch_size == batch and device == cpu
  on_cpu = compiled if reuse else Step(config, cpu, batch)
  on_device = on_cpu if device.platform == "cpu" else Step(config, device, batch)
  state = on_cpu.init()
  device_state = on_device.put(state)  # Before the CPU step donates ``state``.
  _, _, cpu_metrics = on_cpu.run(state, 1)
  _, _, device_metrics = on_device.run(device_state, 1)
  cpu_loss = float(jax.device_get(cpu_metrics["loss"]))
  device_loss = float(jax.device_get(device_metrics["loss"]))
  relative = abs(device_loss - cpu_loss) / abs(cpu_loss)
  return {
    "batch": batch,
    "loss_device": device_loss,
    "loss_cpu": cpu_loss,
    "relative_difference": relative,
    "rtol": rtol,
    "agree": relative <= rtol,
  }


def _config(args):
  config = (tiny if args.tiny else aia171_256).get_config()
  config.model.dtype = args.dtype
  config.model.remat = args.remat
  config.mesh.distributed = "no"
  config.logging.progress = False
  if args.tiny:  # CI sizes: compiling is most of the cost on CPU.
    config.data.image_size = 16
    config.model.base_channels = 8
    config.model.channel_mult, config.model.attention_resolutions = (1,), ()
    config.model.num_groups = 4
    config.sampling.num_steps = 2
  return config


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--tiny", action="store_true", help="configs/tiny.py at CI sizes")
  parser.add_argument("--dtype", default="bfloat16", choices=sorted(_DTYPES))
  parser.add_argument("--remat", action="store_true", help="gradient checkpointing")
  parser.add_argument("--steps", type=int, default=None, help="timed train steps (30; tiny 3)")
  parser.add_argument("--probe_batch", type=int, default=None, help="(16; tiny 4)")
  parser.add_argument("--max_batch", type=int, default=1024)
  parser.add_argument("--memory_fraction", type=float, default=0.85)
  parser.add_argument("--matmul_n", type=int, default=None, help="(8192; tiny 128)")
  parser.add_argument("--sample_images", type=int, default=None, help="(256; tiny 8)")
  parser.add_argument("--loss_batch", type=int, default=None, help="(2; tiny 4)")
  parser.add_argument("--loss_rtol", type=float, default=0.02)
  parser.add_argument("--out", default=None)
  args = parser.parse_args(argv)
  sizes = dict(
    steps=(30, 3),
    probe_batch=(16, 4),
    matmul_n=(8192, 128),
    sample_images=(256, 8),
    loss_batch=(2, 4),
  )
  for name, (full, small) in sizes.items():
    if getattr(args, name) is None:
      setattr(args, name, small if args.tiny else full)

  start = time.perf_counter()
  timings = {}

  def log(message):
    print(f"[{time.perf_counter() - start:6.1f} s] {message}", file=sys.stderr, flush=True)

  config = _config(args)
  device = jax.devices()[0]
  log(f"device: {device.device_kind} ({jax.default_backend()}), JAX {jax.__version__}")
  result = {"device": device.device_kind, "backend": jax.default_backend(), "dtype": args.dtype}
  result["config"] = "configs/tiny.py" if args.tiny else "configs/aia171_256.py"
  result["remat"] = args.remat

  phases = (
    (
      "peak",
      lambda: {
        "matmul_n": args.matmul_n,
        "flops_per_s": matmul_peak(args.matmul_n, _DTYPES[args.dtype], device),
      },
    ),
    ("train", lambda: train_phase(config, device, args, log)),
    ("sample", lambda: sample_phase(config, device, args.sample_images)),
    ("agreement", lambda: agreement_phase(config, device, args.loss_batch, args.loss_rtol, step)),
  )
  step = None
  for name, phase in phases:
    t0 = time.perf_counter()
    result[name] = phase()
    if name == "train":
      step, result[name] = result[name]
    timings[name] = time.perf_counter() - t0
    log(f"{name}: {json.dumps(result[name])}")
  result["mfu"] = result["train"]["achieved_flops_per_s"] / result["peak"]["flops_per_s"]
  result["seconds"] = {**timings, "total": time.perf_counter() - start}
  text = json.dumps(result, indent=2)
  print(text)
  if args.out:
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
  return result


if __name__ == "__main__":
  main()
