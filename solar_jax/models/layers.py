"""Layers shared by the UNet and the classifier."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def group_count(num_groups: int, channels: int) -> int:
  """GroupNorm groups: ``num_groups`` clipped to ``channels`` and lowered to a divisor."""
  groups = max(1, min(num_groups, channels))
  while channels % groups:
    groups -= 1
  return groups


class GroupNorm(nn.Module):
  """Group normalisation (Wu & He 2018) over ``[B, ..., C]``, a drop-in for ``nn.GroupNorm``.

  Same parameters (``scale`` and ``bias``, float32, shape [C]), epsilon and
  statistics as ``flax.linen.GroupNorm`` with its defaults (float32 reductions,
  variance as E[x^2] - E[x]^2), so checkpoints and results carry over. It is
  computed differently: per-channel sums over the spatial axes first (a
  reduction with the channels minor, which vectorises), then the few channels of
  each group are summed in the small [B, C] array, and the normalisation is one
  multiply-add with per-(image, channel) factors. On XLA:CPU this is about 6x
  faster than ``nn.GroupNorm`` on 64x64x16 maps with 2 channels a group, whose
  reduction over a [B, H, W, G, C/G] view has a minor dimension of 2.
  """

  num_groups: int
  epsilon: float = 1e-6
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x):
    c, g = x.shape[-1], self.num_groups
    if c % g:
      raise ValueError(f"GroupNorm: {g} groups do not divide {c} channels.")
    scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
    b, per_group = x.shape[0], c // g
    axes = tuple(range(1, x.ndim - 1))
    count = float(np.prod([x.shape[a] for a in axes], dtype=np.float64) * per_group)
    xf = x.astype(jnp.float32)

    def group_mean(values):  # [B, ..., C] -> [B, G]
      return jnp.sum(values, axes).reshape(b, g, per_group).sum(-1) / count

    mean = group_mean(xf)
    var = jnp.maximum(group_mean(xf * xf) - mean * mean, 0.0)
    inv = jnp.repeat(jax.lax.rsqrt(var + self.epsilon), per_group, axis=1) * scale  # [B, C]
    shift = bias - jnp.repeat(mean, per_group, axis=1) * inv
    shape = (b,) + (1,) * len(axes) + (c,)
    y = xf * inv.reshape(shape) + shift.reshape(shape)
    return y.astype(self.dtype or jnp.result_type(x.dtype, jnp.float32))
