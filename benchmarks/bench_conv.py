"""One 3x3 convolution's forward, input gradient and weight gradient: XLA against oneDNN.

  JAX_PLATFORMS=cpu python benchmarks/bench_conv.py
  JAX_PLATFORMS=cpu python benchmarks/bench_conv.py --shapes=16x64x16,16x16x32 --repeats=20

Where the train step's gap to the PyTorch peer (bench_train.py) sits, shape by
shape: for each (batch x side x channels) 'same' 3x3 convolution, the median time
of our jitted forward, input gradient (dx) and weight gradient (dW), of the
three in one jitted fwd+bwd, of the same fwd+bwd written as im2col + one matmul
(the usual alternative on CPUs), and of torch.nn.Conv2d's forward + backward
(oneDNN, same thread count) when torch is installed (the `bench` extra). The
three variants are interleaved, repeat by repeat, so that they share the
machine's state.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from solar_jax import xla_flags

xla_flags.configure_xla_cpu()  # As training does: the same XLA:CPU kernels.

DN = ("NHWC", "HWIO", "NHWC")
# The quickstart UNet's convolution shapes (batch 16): base 16, multipliers 1,2,2,2.
DEFAULT_SHAPES = "16x64x16,16x64x32,16x32x32,16x16x32,16x8x32,16x64x64,16x32x128"


def conv(x, w):
  return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=DN)


def conv_im2col(x, w):
  """The same convolution as one [B*H*W, 9*Cin] x [9*Cin, Cout] matmul."""
  b, h, wd, c = x.shape
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  cols = jnp.concatenate([xp[:, i : i + h, j : j + wd, :] for i in range(3) for j in range(3)], -1)
  out = cols.reshape(b * h * wd, 9 * c) @ w.reshape(9 * c, -1)
  return out.reshape(b, h, wd, -1)


def _median_ms(fn, args, repeats):
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return float(np.median(times) * 1e3)


def _torch_ms(b, h, c, repeats):
  try:
    import torch
  except ImportError:
    return None
  torch.set_num_threads(os.cpu_count() or 1)
  layer = torch.nn.Conv2d(c, c, 3, padding=1, bias=False)
  x = torch.randn(b, c, h, h, requires_grad=True)
  dy = torch.randn(b, c, h, h)

  def step():
    torch.autograd.grad(layer(x), (x, layer.weight), dy)

  step()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
  return float(np.median(times) * 1e3)


def bench_shape(b, h, c, repeats):
  key_x, key_w, key_y = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(key_x, (b, h, h, c))
  w = jax.random.normal(key_w, (3, 3, c, c)) * 0.1
  dy = jax.random.normal(key_y, (b, h, h, c))

  def fwd_bwd(f):
    return jax.jit(lambda x, w, dy: jax.vjp(f, x, w)[1](dy))

  fns = {
    "fwd": (jax.jit(conv), (x, w)),
    "dx": (jax.jit(lambda dy: jax.vjp(lambda x: conv(x, w), x)[1](dy)), (dy,)),
    "dW": (jax.jit(lambda dy: jax.vjp(lambda w: conv(x, w), w)[1](dy)), (dy,)),
    "fwd_bwd": (fwd_bwd(conv), (x, w, dy)),
    "im2col_fwd_bwd": (fwd_bwd(conv_im2col), (x, w, dy)),
  }
  ref, alt = fns["fwd_bwd"][0](x, w, dy), fns["im2col_fwd_bwd"][0](x, w, dy)
  for a, r in zip(alt, ref):  # The alternative computes the same gradients.
    np.testing.assert_allclose(a, r, rtol=1e-3, atol=1e-3 * float(jnp.max(jnp.abs(r))))
  rounds = {name: [] for name in fns}
  for _ in range(3):
    for name, (fn, args) in fns.items():
      rounds[name].append(_median_ms(fn, args, max(1, repeats // 3)))
  result = {name: float(np.median(v)) for name, v in rounds.items()}
  result["torch_fwd_bwd"] = _torch_ms(b, h, c, repeats)
  return result


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--shapes", default=DEFAULT_SHAPES, help="batch x side x channels, ...")
  parser.add_argument("--repeats", type=int, default=12)
  parser.add_argument("--out", default="", help="write the results as JSON here")
  args = parser.parse_args()
  print(
    f"jax {jax.__version__} on {jax.devices()[0].device_kind}, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')}"
  )
  header = "shape (BxHxC)     fwd     dx     dW  fwd+bwd  im2col  torch   ours/torch"
  print(header)
  results = {}
  for spec in args.shapes.split(","):
    b, h, c = (int(v) for v in spec.lower().split("x"))
    r = bench_shape(b, h, c, args.repeats)
    results[spec] = r
    torch_ms = r["torch_fwd_bwd"]
    ratio = f"{r['fwd_bwd'] / torch_ms:.2f}x" if torch_ms else "-"
    torch_cell = f"{torch_ms:6.2f}" if torch_ms else "     -"
    print(
      f"{spec:15s} {r['fwd']:6.2f} {r['dx']:6.2f} {r['dW']:6.2f} {r['fwd_bwd']:8.2f} "
      f"{r['im2col_fwd_bwd']:7.2f} {torch_cell}   {ratio}  (ms)",
      flush=True,
    )
  if args.out:
    with open(args.out, "w") as f:
      json.dump(results, f, indent=2)


if __name__ == "__main__":
  main()
