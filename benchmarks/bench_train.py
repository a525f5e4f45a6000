"""Train-step images/s and MFU: our jitted step against diffusers' UNet2DModel on PyTorch.

  JAX_PLATFORMS=cpu python benchmarks/bench_train.py --out=runs/bench_train_cpu.json
  python benchmarks/bench_train.py --dtype=bfloat16 --image_size=256 --out=runs/bench_train_gpu.json

For each model in ``--models`` (``quickstart`` = configs/quickstart.py,
``mid`` = configs/default.py at 64², any other name = configs/<name>.py) this
measures, side by side in one process, interleaved (peak, ours, peer, peak,
ours, peer, ...), the median of ``--repeats`` runs of ``--steps`` steps each,
after compilation and warm-up:

* ours: the real train step of solar_jax.ddpm.train (``make_train_step`` on a
  1-device mesh; noise, timesteps, label dropout, UNet forward and backward,
  global-norm clip, AdamW, EMA, non-finite guard) on synthetic batches in
  [-1, 1] that already live on the device;
* the model FLOPs of that step per image, from XLA's cost analysis of the
  lowered (not yet optimised) step, so fusion does not change the count; the
  compiled module's count is kept in the JSON as a cross-check;
* the machine's matmul peak, a jitted chain of n x n ``jnp.dot`` in the
  compute dtype (2 n^3 FLOPs each), and the achieved fraction of it (MFU);
* the peer: diffusers' UNet2DModel with the same architecture (block channels
  base * mult, res blocks per level, attention at the same sides, GroupNorm
  groups, class embedding with a null class) doing the same work per step
  (noise, timesteps, label dropout, forward, MSE on the noise, backward,
  clip_grad_norm_, AdamW, EMA) with ``torch.set_num_threads`` = the cores this
  process may use. It runs on CUDA when torch sees a GPU and JAX runs on one,
  else on the CPU; bfloat16 uses ``torch.autocast``.

The peer needs the ``bench`` extra (``pip install -e .[bench]``). Without
internet access beyond the package index, install PyTorch's CPU build first:
on the development machine ``pip install torch==2.13.0`` resolves to a local
CPU wheel, then ``pip install diffusers``. Use ``--no-peer`` without them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solar_jax import parallel, xla_flags
from solar_jax.ddpm import train, train_state
from solar_jax.diffusion import schedules  # noqa: E402
from solar_jax.models import unet  # noqa: E402

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
_ALIASES = {"mid": "default"}  # configs/default.py: base 64, (1,2,2,2), 2 blocks, attention at 16.
_NUM_BATCHES = 4  # Distinct synthetic batches cycled through.


def _cores() -> int:
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # Not Linux.
    return os.cpu_count() or 1


def _config(name: str, args):
  config = importlib.import_module(f"solar_jax.configs.{_ALIASES.get(name, name)}").get_config()
  if args.image_size:
    config.data.image_size = args.image_size
  config.training.batch_size = args.batch
  config.model.dtype = args.dtype
  config.mesh.distributed = "no"
  return config


def _flops(analysis) -> float:
  """The 'flops' entry of a cost analysis (a dict, or a list of one dict in older JAX)."""
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  return float(analysis["flops"])


def _synthetic_batches(config, seed: int):
  """Host batches ``{'image': [B,H,W,C] in [-1, 1], 'label': [B]}``."""
  rng = np.random.default_rng(seed)
  b, size, c = config.training.batch_size, config.data.image_size, config.data.channels
  return [
    {
      "image": rng.uniform(-1.0, 1.0, (b, size, size, c)).astype(np.float32),
      "label": rng.integers(0, len(config.data.classes), b).astype(np.int32),
    }
    for _ in range(_NUM_BATCHES)
  ]


# ----------------------------------------------------------------- ours ---


class Ours:
  """solar_jax.ddpm.train's jitted step on a 1-device mesh, compiled once."""

  def __init__(self, config, host_batches):
    self.mesh = parallel.create_mesh(config.mesh, jax.devices()[:1])
    with jax.set_mesh(self.mesh):
      abstract, _ = train_state.abstract_train_state(config, self.mesh)
      self.state = train_state.init_train_state(config, self.mesh)
      self.batches = [parallel.make_global_batch(self.mesh, b) for b in host_batches]
      lowered = train.make_train_step(config, self.mesh, abstract).lower(
        self.state, self.batches[0]
      )
      start = time.perf_counter()
      self.step = lowered.compile()
      self.compile_s = time.perf_counter() - start
    b = config.training.batch_size
    self.params = unet.count_params(self.state.params)
    self.flops_per_step = _flops(lowered.cost_analysis())
    self.compiled_flops_per_step = _flops(self.step.cost_analysis())
    model = unet.create_model(config)
    size, c = config.data.image_size, config.data.channels
    x = jax.ShapeDtypeStruct((b, size, size, c), jnp.float32)
    i = jax.ShapeDtypeStruct((b,), jnp.int32)
    forward = jax.jit(lambda p, x, t, y: model.apply({"params": p}, x, t, y))
    self.forward_flops_per_step = _flops(forward.lower(self.state.params, x, i, i).cost_analysis())
    self.count = 0

  def run(self, steps: int) -> float:
    """Seconds for ``steps`` steps, waiting for the device at the end."""
    with jax.set_mesh(self.mesh):
      metrics = None
      start = time.perf_counter()
      for _ in range(steps):
        self.state, metrics = self.step(self.state, self.batches[self.count % _NUM_BATCHES])
        self.count += 1
      jax.block_until_ready((self.state, metrics))
      return time.perf_counter() - start

  def loss(self) -> float:
    """The loss of one more step (a sanity check, outside the timing)."""
    with jax.set_mesh(self.mesh):
      self.state, metrics = self.step(self.state, self.batches[0])
      self.count += 1
      return float(jax.device_get(metrics["loss"]))


# ----------------------------------------------------------------- peer ---


def diffusers_unet(config):
  """diffusers.UNet2DModel with the architecture of ``unet.create_model(config)``."""
  from diffusers import UNet2DModel

  m, size = config.model, config.data.image_size
  channels = tuple(m.base_channels * k for k in m.channel_mult)
  for c in {*channels, *(a + b for a in channels for b in channels)}:
    if c % m.num_groups:
      raise ValueError(
        f"model.num_groups={m.num_groups} does not divide {c} channels: ours clips the "
        "groups to a divisor, diffusers cannot, so the peer would not match."
      )
  attended = [size // 2**level in m.attention_resolutions for level in range(len(channels))]
  return UNet2DModel(
    sample_size=size,
    in_channels=config.data.channels,
    out_channels=config.data.channels,
    flip_sin_to_cos=True,  # Ours: cos then sin, no frequency shift.
    freq_shift=0,
    down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attended),
    up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attended)),
    block_out_channels=channels,
    layers_per_block=m.num_res_blocks,
    dropout=m.dropout,
    norm_num_groups=m.num_groups,
    # diffusers fixes the head width, ours the head count; they agree on the
    # deepest level (and the middle block) and the FLOPs do not depend on it.
    attention_head_dim=channels[-1] // m.num_heads,
    num_class_embeds=len(config.data.classes) + 1,  # The last one is the null class.
  )


class Peer:
  """The same training step in PyTorch around diffusers' UNet2DModel."""

  def __init__(self, config, host_batches, device: str, channels_last: bool):
    import torch

    self.torch = torch
    self.device = torch.device(device)
    torch.manual_seed(config.seed)
    self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
    memory_format = self.memory_format
    self.model = diffusers_unet(config).to(self.device, memory_format=memory_format).train()
    self.params = sum(p.numel() for p in self.model.parameters())
    self.trainable = [p for p in self.model.parameters() if p.requires_grad]
    self.ema = [p.detach().clone() for p in self.trainable]
    training = config.training
    self.optimizer = torch.optim.AdamW(
      self.trainable,
      lr=training.learning_rate,
      betas=(0.9, 0.999),
      weight_decay=training.weight_decay,
      foreach=True,
    )
    self.grad_clip, self.ema_decay = training.grad_clip, training.ema_decay
    schedule = schedules.get_schedule(config.diffusion)
    self.sqrt_abar = torch.tensor(np.asarray(schedule.sqrt_alphas_cumprod), device=self.device)
    self.sqrt_1m_abar = torch.tensor(
      np.asarray(schedule.sqrt_one_minus_alphas_cumprod), device=self.device
    )
    self.num_timesteps = schedule.num_timesteps
    self.num_classes = len(config.data.classes)
    self.label_dropout = config.diffusion.label_dropout
    self.autocast = config.model.dtype == "bfloat16"
    self.batches = [
      (
        torch.from_numpy(b["image"].transpose(0, 3, 1, 2).copy())
        .to(self.device)
        .contiguous(memory_format=memory_format),
        torch.from_numpy(b["label"].astype(np.int64)).to(self.device),
      )
      for b in host_batches
    ]
    self.generator = torch.Generator(self.device).manual_seed(config.seed)
    self.count = 0
    self.last_loss = None

  def _step(self, x0, labels):
    torch, g, n = self.torch, self.generator, x0.shape[0]
    t = torch.randint(0, self.num_timesteps, (n,), generator=g, device=self.device)
    noise = torch.randn(x0.shape, generator=g, device=self.device)
    noise = noise.contiguous(memory_format=self.memory_format)
    x_t = self.sqrt_abar[t].view(-1, 1, 1, 1) * x0 + self.sqrt_1m_abar[t].view(-1, 1, 1, 1) * noise
    drop = torch.rand(n, generator=g, device=self.device) < self.label_dropout
    labels = torch.where(drop, self.num_classes, labels)
    with torch.autocast(self.device.type, torch.bfloat16, enabled=self.autocast):
      output = self.model(x_t, t, class_labels=labels).sample
    loss = torch.nn.functional.mse_loss(output.float(), noise)
    self.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if self.grad_clip > 0:
      torch.nn.utils.clip_grad_norm_(self.trainable, self.grad_clip, foreach=True)
    self.optimizer.step()
    with torch.no_grad():
      torch._foreach_lerp_(self.ema, self.trainable, 1.0 - self.ema_decay)
    return loss

  def count_flops(self) -> float:
    """FLOPs of one step by torch's FlopCounterMode (matmuls, convolutions, attention only)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
      self._step(*self.batches[0])
    self.count += 1
    return float(counter.get_total_flops())

  def run(self, steps: int) -> float:
    loss = None
    start = time.perf_counter()
    for _ in range(steps):
      loss = self._step(*self.batches[self.count % _NUM_BATCHES])
      self.count += 1
    if self.device.type == "cuda":
      self.torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    if loss is not None:  # After the clock: not a per-step sync.
      self.last_loss = float(loss.detach())
    return elapsed


# ----------------------------------------------------------------- peak ---


class MatmulPeak:
  """A jitted chain of ``iters`` n x n matmuls; FLOP/s = 2 n^3 iters / seconds."""

  def __init__(self, n: int, dtype, target_s: float = 0.2):
    self.n = n
    keys = jax.random.split(jax.random.key(1))
    # Scaled so that the chained products neither vanish nor overflow.
    self.a = jax.random.normal(keys[0], (n, n), jnp.float32).astype(dtype)
    self.b = (jax.random.normal(keys[1], (n, n), jnp.float32) / math.sqrt(n)).astype(dtype)

    @jax.jit
    def chain(a, b, iters):
      return jax.lax.fori_loop(0, iters, lambda _, x: jnp.dot(x, b), a)

    self.chain = chain
    self.iters = 1
    self._timed()  # Compile.
    self.iters = max(1, min(10_000, round(target_s / self._timed())))

  def _timed(self) -> float:
    start = time.perf_counter()
    jax.block_until_ready(self.chain(self.a, self.b, self.iters))
    return time.perf_counter() - start

  def run(self) -> float:
    """Achieved FLOP/s of one measurement."""
    return 2.0 * self.n**3 * self.iters / self._timed()


# ----------------------------------------------------------------- main ---


def bench_model(name: str, args, peer_device: str | None) -> dict:
  config = _config(name, args)
  host_batches = _synthetic_batches(config, config.seed)
  b, size = config.training.batch_size, config.data.image_size
  ours = Ours(config, host_batches)
  peer = Peer(config, host_batches, peer_device, args.peer_channels_last) if peer_device else None
  peak_n = args.peak_n or (2048 if jax.default_backend() == "cpu" else 8192)
  peak = MatmulPeak(peak_n, _DTYPES[args.dtype])
  contestants = {"ours": ours.run}
  if peer is not None:
    contestants["peer"] = peer.run
  for run in contestants.values():
    run(args.warmup)
  peer_flops = peer.count_flops() if peer is not None else None
  seconds = {k: [] for k in contestants}
  peaks = []
  for _ in range(args.repeats):
    peaks.append(peak.run())
    for key, run in contestants.items():
      seconds[key].append(run(args.steps))
  per_step = {k: statistics.median(v) / args.steps for k, v in seconds.items()}
  peak_flops = statistics.median(peaks)
  achieved = ours.flops_per_step / per_step["ours"]
  result = {
    "model": name,
    "config": f"configs/{_ALIASES.get(name, name)}.py",
    "image_size": size,
    "batch": b,
    "dtype": args.dtype,
    "architecture": {
      "base_channels": config.model.base_channels,
      "channel_mult": list(config.model.channel_mult),
      "num_res_blocks": config.model.num_res_blocks,
      "attention_resolutions": list(config.model.attention_resolutions),
      "num_heads": config.model.num_heads,
      "num_groups": config.model.num_groups,
      "dropout": config.model.dropout,
    },
    "params_ours": ours.params,
    "compile_s": ours.compile_s,
    "train_flops_per_image": ours.flops_per_step / b,
    "train_flops_per_image_compiled": ours.compiled_flops_per_step / b,
    "forward_flops_per_image": ours.forward_flops_per_step / b,
    "ours_images_per_s": b / per_step["ours"],
    "ours_step_s": seconds["ours"],
    "achieved_flops_per_s": achieved,
    "matmul_peak_flops_per_s": peak_flops,
    "matmul_peak_n": peak_n,
    "matmul_peak_all": peaks,
    "mfu": achieved / peak_flops,
    "ours_final_loss": ours.loss(),
  }
  if peer is not None:
    result.update(
      params_peer=peer.params,
      peer_device=peer_device,
      peer_train_flops_per_image=peer_flops / b,
      peer_images_per_s=b / per_step["peer"],
      peer_step_s=seconds["peer"],
      peer_final_loss=peer.last_loss,
      speedup=per_step["peer"] / per_step["ours"],
    )
  return result


def _table(results: list[dict]) -> str:
  head = (
    "| model | side | batch | dtype | params ours / peer | train GFLOP/img (fwd) "
    "| ours img/s | peer img/s | ours / peer | achieved GFLOP/s | matmul peak GFLOP/s | MFU |"
  )
  rows = [head, "|" + "---|" * head.count(" | ") + "---|"]
  for r in results:
    peer = "peer_images_per_s" in r
    rows.append(
      f"| {r['model']} | {r['image_size']} | {r['batch']} | {r['dtype']} "
      f"| {r['params_ours'] / 1e6:.2f}M / "
      + (f"{r['params_peer'] / 1e6:.2f}M" if peer else "-")
      + f" | {r['train_flops_per_image'] / 1e9:.2f} ({r['forward_flops_per_image'] / 1e9:.2f}) "
      f"| {r['ours_images_per_s']:.2f} | "
      + (f"{r['peer_images_per_s']:.2f} | {r['speedup']:.2f}x" if peer else "- | -")
      + f" | {r['achieved_flops_per_s'] / 1e9:.1f} | {r['matmul_peak_flops_per_s'] / 1e9:.1f} "
      f"| {100 * r['mfu']:.1f} % |"
    )
  return "\n".join(rows)


def main():
  xla_flags.configure_xla_cpu()  # Before JAX starts its CPU backend, as training does.
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--models", default="quickstart,mid", help="comma-separated configs/<name>.py; mid = default"
  )
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--image_size", type=int, default=0, help="override data.image_size")
  parser.add_argument("--dtype", choices=tuple(_DTYPES), default="float32")
  parser.add_argument("--steps", type=int, default=5, help="steps per timed run")
  parser.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported")
  parser.add_argument("--warmup", type=int, default=2, help="untimed steps after compiling")
  parser.add_argument(
    "--peer",
    action=argparse.BooleanOptionalAction,
    default=True,
    help="time diffusers' UNet2DModel on PyTorch alongside",
  )
  parser.add_argument(
    "--peer_channels_last", action="store_true", help="run the peer in channels_last memory format"
  )
  parser.add_argument("--peak_n", type=int, default=0, help="matmul side (0: 2048 CPU, 8192 else)")
  parser.add_argument("--out", default="", help="write the results as JSON here")
  args = parser.parse_args()

  peer_device = None
  torch_version = None
  if args.peer:
    import diffusers
    import torch

    torch.set_num_threads(_cores())
    torch_version = f"torch {torch.__version__}, diffusers {diffusers.__version__}"
    if jax.default_backend() == "cpu":
      peer_device = "cpu"
    elif torch.cuda.is_available():
      peer_device = "cuda"
    else:
      print(f"JAX runs on {jax.default_backend()} but {torch_version} sees no GPU: no peer.")
      args.peer = False

  device = jax.devices()[0]
  header = (
    f"jax {jax.__version__} on {jax.default_backend()} ({device.device_kind}), "
    f"{_cores()} cores"
    + (
      f"; peer: {torch_version} on {peer_device}, {torch.get_num_threads()} threads"
      if args.peer
      else ""
    )
    + f"; median of {args.repeats} x {args.steps} steps"
  )
  print(header, flush=True)
  load = os.getloadavg()[0]
  if load > 0.5 * _cores():
    # PyTorch's OpenMP threads wait at barriers for descheduled partners: on a
    # shared CPU the peer slows down many times more than XLA does.
    print(f"WARNING: load average {load:.1f} on {_cores()} cores; timings are unreliable.")
  results = []
  for name in args.models.split(","):
    result = bench_model(name.strip(), args, peer_device)
    print(
      f"  {name}: ours {result['ours_images_per_s']:.2f} img/s"
      + (f", peer {result['peer_images_per_s']:.2f} img/s" if args.peer else "")
      + f" (compile {result['compile_s']:.1f} s); train GFLOP/img: XLA "
      f"{result['train_flops_per_image'] / 1e9:.3f} lowered, "
      f"{result['train_flops_per_image_compiled'] / 1e9:.3f} compiled"
      + (
        f", torch FlopCounter {result['peer_train_flops_per_image'] / 1e9:.3f} (no elementwise)"
        if args.peer
        else ""
      ),
      flush=True,
    )
    results.append(result)
  print()
  print(_table(results))
  if args.out:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
      "header": header,
      "jax_backend": jax.default_backend(),
      "device_kind": device.device_kind,
      "cores": _cores(),
      "load_average_start": load,
      "load_average_end": os.getloadavg()[0],
      "peer": torch_version,
      "args": vars(args),
    }
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
  main()
