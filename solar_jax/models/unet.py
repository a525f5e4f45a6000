"""Class-conditional UNet of the DDPM/ADM family (Ho et al. 2020; Dhariwal & Nichol 2021).

Structure, for ``L = len(channel_mult)`` levels and ``R = num_res_blocks``::

  conv_in 3x3 -> [level 0: R res blocks (+attention) -> downsample] -> ...
              -> [level L-1: R res blocks (+attention)]
  middle: res block -> attention -> res block
  up, levels L-1 .. 0: R+1 res blocks, each on concat(h, skip) (+attention),
              then upsample (not after level 0)
  out: GroupNorm -> SiLU -> conv_out 3x3 (zero initialised)

Every res block adds a projection of the conditioning embedding
``emb = MLP(sinusoid(t)) + Embed(y)``; ``y == num_classes`` is the learned
null class used for classifier-free guidance. With ``conditioning='flux'``, ``y``
is the log10 GOES 1-8 Å flux (float [B], W m^-2) and ``Embed`` is ``FluxEmbedding``
(Fourier features of the normalised log flux and an MLP); NaN is its learned null. Attention is used at the feature
maps whose side is listed in ``attention_resolutions``.

Parameters are always float32; ``dtype='bfloat16'`` only changes the compute
dtype of convolutions, dense layers and attention. The output is float32.
The model knows nothing of data files or meshes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from solar_jax.models import layers
from solar_jax.models.layers import group_count

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# model.conditioning: the GOES class index, or the log10 GOES 1-8 Å flux (FluxEmbedding).
CONDITIONINGS = ("class", "flux")


def timestep_embedding(t, dim: int, max_period: float = 10_000.0):
  """Sinusoidal embedding [B, dim] of integer timesteps (Vaswani et al.; cos then sin)."""
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  args = t.astype(jnp.float32)[:, None] * freqs[None, :]
  emb = jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
  if dim % 2:
    emb = jnp.pad(emb, ((0, 0), (0, 1)))
  return emb


# log10 GOES 1-8 Å flux [W m^-2] mapped linearly onto [-1, 1] (A1 is -8, X10 is -3;
# the 0.5 decade below A1 keeps the quietest backgrounds inside); clipped outside.
LOG_FLUX_RANGE = (-8.5, -3.0)
FLUX_FREQUENCIES = 4  # Fourier features sin/cos(pi 2^k u), k < this: periods down to 0.7 decade.


def normalise_log_flux(log_flux):
  """log10 flux -> [-1, 1] (``LOG_FLUX_RANGE``), clipped; NaN stays NaN (the null)."""
  lo, hi = LOG_FLUX_RANGE
  return jnp.clip(2.0 * (log_flux - lo) / (hi - lo) - 1.0, -1.0, 1.0)


def flux_features(log_flux):
  """Smooth features [B, 1 + 2 FLUX_FREQUENCIES] of log10 fluxes (NaN -> those of 0)."""
  u = normalise_log_flux(jnp.nan_to_num(log_flux.astype(jnp.float32), nan=0.0))[:, None]
  args = jnp.pi * (2.0 ** jnp.arange(FLUX_FREQUENCIES, dtype=jnp.float32)) * u
  return jnp.concatenate([u, jnp.sin(args), jnp.cos(args)], axis=-1)


class FluxEmbedding(nn.Module):
  """``log10 flux [B] -> [B, dim]``: Fourier features and a two-layer MLP; NaN = the
  learned null embedding (classifier-free guidance)."""

  dim: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, log_flux):
    h = nn.Dense(self.dim, dtype=self.dtype, name="dense1")(flux_features(log_flux))
    h = nn.Dense(self.dim, dtype=self.dtype, name="dense2")(nn.silu(h))
    null = self.param("null", nn.initializers.normal(1.0), (self.dim,))
    return jnp.where(jnp.isnan(log_flux)[:, None], null.astype(h.dtype), h)


class ResBlock(nn.Module):
  """GroupNorm-SiLU-conv, + embedding projection, GroupNorm-SiLU-dropout-conv, + skip."""

  out_channels: int
  num_groups: int
  dropout: float
  deterministic: bool
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, emb):
    c_in = x.shape[-1]
    h = layers.GroupNorm(group_count(self.num_groups, c_in), dtype=self.dtype, name="norm1")(x)
    h = nn.silu(h)
    h = nn.Conv(self.out_channels, (3, 3), dtype=self.dtype, name="conv1")(h)
    h = (
      h
      + nn.Dense(self.out_channels, dtype=self.dtype, name="emb_proj")(nn.silu(emb))[
        :, None, None, :
      ]
    )
    h = layers.GroupNorm(
      group_count(self.num_groups, self.out_channels), dtype=self.dtype, name="norm2"
    )(h)
    h = nn.silu(h)
    h = nn.Dropout(self.dropout, deterministic=self.deterministic)(h)
    # Zero init: each block starts as the identity, which keeps deep UNets stable.
    h = nn.Conv(
      self.out_channels,
      (3, 3),
      dtype=self.dtype,
      kernel_init=nn.initializers.zeros,
      name="conv2",
    )(h)
    if c_in != self.out_channels:
      x = nn.Conv(self.out_channels, (1, 1), dtype=self.dtype, name="skip")(x)
    return x + h


class AttentionBlock(nn.Module):
  """Multi-head self-attention over the H*W positions, with a residual connection."""

  num_heads: int
  num_groups: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, hgt, wid, c = x.shape
    if c % self.num_heads:
      raise ValueError(
        f"model.num_heads={self.num_heads} does not divide the {c} channels of an "
        "attention layer; choose a divisor of every attended level's channel count."
      )
    h = layers.GroupNorm(group_count(self.num_groups, c), dtype=self.dtype, name="norm")(x)
    qkv = nn.Dense(3 * c, dtype=self.dtype, name="qkv")(h.reshape(b, hgt * wid, c))
    q, k, v = jnp.split(qkv.reshape(b, hgt * wid, 3, self.num_heads, c // self.num_heads), 3, 2)
    out = jax.nn.dot_product_attention(q[:, :, 0], k[:, :, 0], v[:, :, 0])
    out = nn.Dense(c, dtype=self.dtype, kernel_init=nn.initializers.zeros, name="proj")(
      out.reshape(b, hgt * wid, c)
    )
    return x + out.reshape(b, hgt, wid, c)


class UNet(nn.Module):
  """Noise (or v) predictor ``(x [B,H,W,C], t [B] int, y [B]) -> [B,H,W,C]`` float32;
  ``y`` int class indices, or float log10 fluxes with ``conditioning='flux'``."""

  out_channels: int
  num_classes: int
  base_channels: int = 64
  channel_mult: Sequence[int] = (1, 2, 2, 2)
  num_res_blocks: int = 2
  attention_resolutions: Sequence[int] = (16,)
  num_heads: int = 4
  dropout: float = 0.0
  num_groups: int = 32
  dtype: str = "float32"
  remat: bool = False
  conditioning: str = "class"

  @nn.compact
  def __call__(self, x, t, y, train: bool = False):
    dtype = DTYPES[self.dtype]
    levels = len(self.channel_mult)
    factor = 2 ** (levels - 1)
    if x.shape[1] != x.shape[2] or x.shape[1] % factor:
      raise ValueError(
        f"UNet input {x.shape[1]}x{x.shape[2]}: images must be square with a side divisible "
        f"by {factor} (2**(len(model.channel_mult)-1))."
      )
    block_cls = nn.remat(ResBlock) if self.remat else ResBlock
    res_block = lambda ch, name: block_cls(  # noqa: E731
      ch, self.num_groups, self.dropout, not train, dtype, name=name
    )
    attention = lambda name: AttentionBlock(self.num_heads, self.num_groups, dtype, name=name)  # noqa: E731

    # Conditioning: time MLP plus class embedding (index num_classes = null class) or
    # flux embedding (NaN = null).
    emb_dim = 4 * self.base_channels
    emb = timestep_embedding(t, self.base_channels)
    emb = nn.Dense(emb_dim, dtype=dtype, name="time_dense1")(emb)
    emb = nn.Dense(emb_dim, dtype=dtype, name="time_dense2")(nn.silu(emb))
    if self.conditioning == "flux":
      emb = emb + FluxEmbedding(emb_dim, dtype, name="flux_embed")(y).astype(dtype)
    else:
      emb = emb + nn.Embed(self.num_classes + 1, emb_dim, name="class_embed")(y).astype(dtype)

    h = nn.Conv(self.base_channels, (3, 3), dtype=dtype, name="conv_in")(x.astype(dtype))
    skips = [h]
    for level, mult in enumerate(self.channel_mult):
      for i in range(self.num_res_blocks):
        h = res_block(self.base_channels * mult, f"down{level}_res{i}")(h, emb)
        if h.shape[1] in self.attention_resolutions:
          h = attention(f"down{level}_attn{i}")(h)
        skips.append(h)
      if level != levels - 1:
        h = nn.Conv(
          h.shape[-1], (3, 3), strides=(2, 2), dtype=dtype, name=f"down{level}_downsample"
        )(h)
        skips.append(h)

    h = res_block(h.shape[-1], "mid_res0")(h, emb)
    h = attention("mid_attn")(h)
    h = res_block(h.shape[-1], "mid_res1")(h, emb)

    for level in reversed(range(levels)):
      for i in range(self.num_res_blocks + 1):
        h = jnp.concatenate([h, skips.pop()], axis=-1)
        h = res_block(self.base_channels * self.channel_mult[level], f"up{level}_res{i}")(h, emb)
        if h.shape[1] in self.attention_resolutions:
          h = attention(f"up{level}_attn{i}")(h)
      if level != 0:
        b, side, _, c = h.shape
        h = jax.image.resize(h, (b, 2 * side, 2 * side, c), method="nearest")
        h = nn.Conv(c, (3, 3), dtype=dtype, name=f"up{level}_upsample")(h)
    assert not skips

    h = nn.silu(
      layers.GroupNorm(group_count(self.num_groups, h.shape[-1]), dtype=dtype, name="norm_out")(h)
    )
    h = nn.Conv(
      self.out_channels, (3, 3), dtype=dtype, kernel_init=nn.initializers.zeros, name="conv_out"
    )(h)
    return h.astype(jnp.float32)


def create_model(config: ml_collections.ConfigDict) -> UNet:
  """The UNet described by ``config.model`` for ``config.data`` images and classes."""
  m = config.model
  if m.dtype not in DTYPES:
    raise ValueError(f"model.dtype={m.dtype!r} is not one of {', '.join(map(repr, DTYPES))}.")
  if m.conditioning not in CONDITIONINGS:
    raise ValueError(f"model.conditioning={m.conditioning!r} is not one of {CONDITIONINGS}.")
  return UNet(
    out_channels=config.data.channels,
    num_classes=len(config.data.classes),
    base_channels=m.base_channels,
    channel_mult=tuple(m.channel_mult),
    num_res_blocks=m.num_res_blocks,
    attention_resolutions=tuple(m.attention_resolutions),
    num_heads=m.num_heads,
    dropout=m.dropout,
    num_groups=m.num_groups,
    dtype=m.dtype,
    remat=m.remat,
    conditioning=m.conditioning,
  )


def null_condition(conditioning: str, num_classes: int):
  """The null condition of classifier-free guidance: class ``num_classes`` or NaN flux."""
  return float("nan") if conditioning == "flux" else num_classes


def count_params(params) -> int:
  """Total number of scalars in a parameter pytree (arrays or ShapeDtypeStructs)."""
  return int(sum(np.prod(x.shape, dtype=np.int64) for x in jax.tree.leaves(params)))
