"""UNet: shapes, parameter counts against a hand-derived formula, bf16, remat, classes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from solar_jax.configs import aia171_256, tiny
from solar_jax.models import unet


def expected_param_count(config) -> int:
  """Parameters of the ADM UNet, counted layer by layer from its description.

  conv k x k: k^2 c_in c_out + c_out; dense: c_in c_out + c_out; GroupNorm: 2c.
  Res block: GN(c_in), conv3(c_in, c_out), dense(emb, c_out), GN(c_out),
  conv3(c_out, c_out), and a 1x1 skip conv when c_in != c_out. Attention:
  GN(c), dense(c, 3c), dense(c, c).
  """
  m = config.model
  base, mults, r = m.base_channels, tuple(m.channel_mult), m.num_res_blocks
  channels, classes = config.data.channels, len(config.data.classes)
  emb = 4 * base

  def conv(k, cin, cout):
    return k * k * cin * cout + cout

  def dense(cin, cout):
    return cin * cout + cout

  def res(cin, cout):
    skip = conv(1, cin, cout) if cin != cout else 0
    return 2 * cin + conv(3, cin, cout) + dense(emb, cout) + 2 * cout + conv(3, cout, cout) + skip

  def attn(c):
    return 2 * c + dense(c, 3 * c) + dense(c, c)

  total = dense(base, emb) + dense(emb, emb) + (classes + 1) * emb + conv(3, channels, base)
  side, ch = config.data.image_size, base
  skips = [ch]
  for level, mult in enumerate(mults):
    for _ in range(r):
      total += res(ch, base * mult)
      ch = base * mult
      total += attn(ch) if side in m.attention_resolutions else 0
      skips.append(ch)
    if level != len(mults) - 1:
      total += conv(3, ch, ch)
      skips.append(ch)
      side //= 2
  total += 2 * res(ch, ch) + attn(ch)
  for level in reversed(range(len(mults))):
    for _ in range(r + 1):
      total += res(ch + skips.pop(), base * mults[level])
      ch = base * mults[level]
      total += attn(ch) if side in m.attention_resolutions else 0
    if level != 0:
      total += conv(3, ch, ch)
      side *= 2
  return total + 2 * ch + conv(3, ch, channels)


def _jit(model):
  return jax.jit(model.apply, static_argnames=("train",))


def _inputs(size, b=2, seed=0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(b, size, size, 1)), jnp.float32)
  t = jnp.asarray(rng.integers(0, 100, b), jnp.int32)
  y = jnp.asarray(rng.integers(0, 5, b), jnp.int32)
  return x, t, y


def _init(config, size=None, seed=1):
  """The model and random parameters of the right shapes (jit-compiling Flax's
  initialisers takes ~20 s on a CPU; the tests need a function, not a good one)."""
  model = unet.create_model(config)
  x, t, y = _inputs(size or config.data.image_size)
  shapes = jax.eval_shape(model.init, jax.random.key(0), x, t, y)["params"]
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = path[-1].key
    noise = rng.normal(size=leaf.shape).astype(np.float32)
    if name == "scale":
      return jnp.asarray(1.0 + 0.1 * noise)
    if name == "kernel":
      return jnp.asarray(noise / np.sqrt(np.prod(leaf.shape[:-1])))
    return jnp.asarray(0.1 * noise)

  return model, shapes, jax.tree_util.tree_map_with_path(draw, shapes)


@pytest.fixture(scope="module")
def tiny_model():
  return _init(tiny.get_config())


def test_tiny_shape_and_count(tiny_model):
  model, shapes, params = tiny_model
  config = tiny.get_config()
  x, t, y = _inputs(32)
  assert unet.count_params(shapes) == expected_param_count(config)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(shapes))
  assert shapes["class_embed"]["embedding"].shape == (6, 4 * config.model.base_channels)
  out = _jit(model)({"params": params}, x, t, y)
  assert out.shape == (2, 32, 32, 1) and out.dtype == jnp.float32
  assert float(jnp.std(out)) > 1e-3 and bool(jnp.all(jnp.isfinite(out)))


def test_research_config_count_without_allocation():
  config = aia171_256.get_config()
  model = unet.create_model(config)
  x = jax.ShapeDtypeStruct((2, 256, 256, 1), jnp.float32)
  t = y = jax.ShapeDtypeStruct((2,), jnp.int32)
  params = jax.eval_shape(model.init, jax.random.key(0), x, t, y)["params"]
  out = jax.eval_shape(lambda p, *a: model.apply({"params": p}, *a), params, x, t, y)
  assert out.shape == (2, 256, 256, 1) and out.dtype == jnp.float32
  count = unet.count_params(params)
  assert count == expected_param_count(config)
  assert 80e6 < count < 150e6


def test_other_square_sizes():
  config = tiny.get_config()
  model = unet.create_model(config)
  for size in (16, 48, 64):  # Any side divisible by 2 ** (levels - 1) = 2.
    x, t, y = (jax.ShapeDtypeStruct(a.shape, a.dtype) for a in _inputs(size))
    params = jax.eval_shape(model.init, jax.random.key(0), x, t, y)["params"]
    out = jax.eval_shape(lambda p, *a: model.apply({"params": p}, *a), params, x, t, y)
    assert out.shape == (2, size, size, 1)
  x, t, y = _inputs(15)
  with pytest.raises(ValueError, match="divisible by 2"):
    jax.eval_shape(model.init, jax.random.key(0), x, t, y)


def test_bfloat16_compute_float32_output(tiny_model):
  config = tiny.get_config()
  config.model.dtype = "bfloat16"
  model16 = unet.create_model(config)
  model32, _, perturbed = tiny_model
  x, t, y = _inputs(32)
  out16 = _jit(model16)({"params": perturbed}, x, t, y)
  out32 = _jit(model32)({"params": perturbed}, x, t, y)
  assert out16.dtype == jnp.float32
  params16 = jax.eval_shape(model16.init, jax.random.key(0), x, t, y)["params"]
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params16))  # Params stay f32.
  rel = float(jnp.linalg.norm(out16 - out32) / jnp.linalg.norm(out32))
  assert 0 < rel < 0.05  # bf16 rounding, but the same function.


@pytest.mark.slow
@pytest.mark.long
def test_remat_same_output_and_gradients():
  # One level, five res blocks: gradient programs are slow to compile on CPU.
  config = tiny.get_config()
  config.data.image_size = 8
  config.model.update(
    base_channels=8, num_groups=4, channel_mult=(1,), attention_resolutions=(8,), dropout=0.2
  )
  plain, _, params = _init(config)
  config.model.remat = True
  remat = unet.create_model(config)
  x, t, y = _inputs(8)
  rngs = {"dropout": jax.random.key(3)}

  def loss(model):
    def f(p):
      return jnp.mean(model.apply({"params": p}, x, t, y, train=True, rngs=rngs) ** 2)

    return jax.jit(jax.value_and_grad(f))(params)

  (l1, g1), (l2, g2) = loss(plain), loss(remat)
  np.testing.assert_allclose(l1, l2, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
  # Dropout is active in training (the loss differs from inference).
  eval_loss = jnp.mean(_jit(plain)({"params": params}, x, t, y, train=False) ** 2)
  assert abs(float(eval_loss) - float(l1)) > 1e-6


def test_conditioning_on_class_null_class_and_time(tiny_model):
  model, _, perturbed = tiny_model
  x, t, _ = _inputs(32)
  x = jnp.concatenate([x[:1]] * 6)
  t = jnp.full((6,), 10, jnp.int32)
  y = jnp.arange(6, dtype=jnp.int32)  # Classes A..X and the null class 5.
  out = np.asarray(_jit(model)({"params": perturbed}, x, t, y))
  for i in range(6):
    for j in range(i):
      assert np.abs(out[i] - out[j]).max() > 1e-4  # Each class, null included, differs.
  out_t = _jit(model)({"params": perturbed}, x, jnp.full((6,), 90, jnp.int32), y)
  assert np.abs(np.asarray(out_t) - out).max() > 1e-4


def test_num_heads_must_divide_channels():
  config = tiny.get_config()
  config.model.num_heads = 3
  model = unet.create_model(config)
  x, t, y = _inputs(32)
  with pytest.raises(ValueError, match="model.num_heads=3"):
    jax.eval_shape(model.init, jax.random.key(0), x, t, y)


def test_group_count_divides_channels():
  assert unet.group_count(32, 16) == 16
  assert unet.group_count(32, 48) == 24
  assert unet.group_count(8, 8) == 8
  for groups, ch in ((32, 40), (32, 96), (7, 64)):
    g = unet.group_count(groups, ch)
    assert ch % g == 0 and g <= min(groups, ch)
