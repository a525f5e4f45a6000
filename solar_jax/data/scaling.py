"""The invertible intensity transform between DN/s and the model's [-1, 1].

Images are stored in physical units (DN/s, exposure normalised). The model
sees ``log10`` of the intensity clipped to ``[clip_min, clip_max]``, mapped
linearly to ``[-1, 1]``. ``inverse(forward(x)) == clip(x)`` exactly up to
float rounding, so samples can be written back in DN/s.

Works on NumPy and JAX arrays alike (only ``xp``-agnostic operations).
"""

from __future__ import annotations

import numpy as np


def _bounds(clip_min: float, clip_max: float) -> tuple[float, float]:
  if not 0 < clip_min < clip_max:
    raise ValueError(
      f"data.clip_min={clip_min} and data.clip_max={clip_max} must satisfy "
      "0 < clip_min < clip_max (DN/s)."
    )
  return float(np.log10(clip_min)), float(np.log10(clip_max))


def forward(images_dns, clip_min: float, clip_max: float):
  """Maps DN/s to the model's space: clip, log10, scale to [-1, 1]."""
  lo, hi = _bounds(clip_min, clip_max)
  xp = _namespace(images_dns)
  logs = xp.log10(xp.clip(images_dns, clip_min, clip_max))
  return (2.0 * (logs - lo) / (hi - lo) - 1.0).astype(images_dns.dtype)


def inverse(images_model, clip_min: float, clip_max: float):
  """Maps the model's space back to DN/s (values outside [-1, 1] are clipped)."""
  lo, hi = _bounds(clip_min, clip_max)
  xp = _namespace(images_model)
  y = xp.clip(images_model, -1.0, 1.0)
  return (10.0 ** ((y + 1.0) / 2.0 * (hi - lo) + lo)).astype(images_model.dtype)


def _namespace(x):
  if isinstance(x, np.ndarray) or np.isscalar(x):
    return np
  import jax.numpy as jnp  # Only when handed a JAX array.

  return jnp
