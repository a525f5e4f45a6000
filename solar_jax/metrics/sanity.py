"""Is a generated image a Sun at all? A per-image check against real frames.

Feature-space scores rank any two image sets; they do not say that one of them is pure
noise. Two per-image statistics of AIA 171 Å frames do, with no network:

* **limb contrast**: log10 of the median on-disk intensity (r < 0.9 R_sun) over the
  median off-limb intensity (1.05 < r < 1.2 R_sun), in dex. The corona falls by about
  an order of magnitude within 0.2 R_sun of the limb; noise has no limb (0 dex).
* **spectral slope**: the log-log slope of the on-disk power spectrum of log10
  intensity (``physics.disk_power_spectrum``) between 2 cycles per window and the
  window's Nyquist. Loops and network give a steep red spectrum (about -2 to -3);
  white noise is flat (0).

An image is *noise-like* when either statistic is below ``THRESHOLD`` (one half) of the
real frames' median: a real frame at a quarter of the median contrast is still twice the
noise floor, and noise sits near zero on both. The check is relative, so it follows the
data's clip range and resolution; tests/test_sanity.py calibrates it on sunpy's real
AIA 171 frame (passes, shifted, rescaled in brightness or resolution) and pure noise
(fails).
"""

from __future__ import annotations

import numpy as np

from solar_jax.metrics import physics

THRESHOLD = 0.5  # Of the real frames' median statistic.
DISK_R, SKY_R = (0.0, 0.9), (1.05, 1.2)
NOTE = (
  "noise-like: limb contrast (log10 median intensity at r < 0.9 over 1.05 < r < 1.2 R_sun) "
  f"or on-disk spectral slope below {THRESHOLD:g} of the real frames' median"
)


def limb_contrast(images, radius_px=None, floor: float = 1.0) -> np.ndarray:
  """Per image: log10(median on disk / median just off the limb), in dex."""
  x = np.maximum(physics._as_stack(images), floor)
  r = physics.radius_map(x.shape[1:], radius_px)
  disk = (r >= DISK_R[0]) & (r < DISK_R[1])
  sky = (r > SKY_R[0]) & (r < SKY_R[1])
  if not sky.any():
    raise ValueError(f"{x.shape[1:]} images have no pixel between {SKY_R} R_sun.")
  return np.log10(np.median(x[:, disk], axis=1) / np.median(x[:, sky], axis=1))


def spectral_slopes(images, radius_px=None, floor: float = 1.0) -> np.ndarray:
  """Per image: slope of log10 P against log10 f of the on-disk spectrum of log10 intensity."""
  x = np.log10(np.maximum(physics._as_stack(images), floor))
  out = []
  for image in x:
    spec = physics.disk_power_spectrum(image[None], radius_px)
    k = np.arange(1, len(spec["power"]) + 1, dtype=np.float64)
    power = spec["power"]
    if not (power[1:] > 0).sum() >= 2:  # A constant image: no structure at all.
      out.append(0.0)
      continue
    out.append(physics.spectral_slope(k, power, 2, len(k)))
  return np.asarray(out)


def noise_check(real_images, fake_images, radius_px=None, floor: float = 1.0) -> dict:
  """Which generated images are noise-like, judged against the real frames (``NOTE``).

  Returns:
    {'num_images', 'num_noise_like', 'share_noise_like', 'noise_like': [indices],
    'real_median': {'limb_contrast_dex', 'spectral_slope'}, 'fake_median': {...},
    'threshold', 'note'}; 'not_estimable' instead when the real frames show no limb
    or no red spectrum themselves (then the check has nothing to measure against).
  """
  real_c = limb_contrast(real_images, radius_px, floor)
  real_s = spectral_slopes(real_images, radius_px, floor)
  fake_c = limb_contrast(fake_images, radius_px, floor)
  fake_s = spectral_slopes(fake_images, radius_px, floor)
  ref_c, ref_s = float(np.median(real_c)), float(np.median(real_s))
  out = {
    "num_images": len(fake_c),
    "threshold": THRESHOLD,
    "note": NOTE,
    "real_median": {"limb_contrast_dex": ref_c, "spectral_slope": ref_s},
    "fake_median": {
      "limb_contrast_dex": float(np.median(fake_c)),
      "spectral_slope": float(np.median(fake_s)),
    },
  }
  if not (ref_c > 0 and ref_s < 0):
    out["not_estimable"] = (
      f"the real frames' median limb contrast ({ref_c:.2f} dex) or spectral slope "
      f"({ref_s:.2f}) is not that of a Sun"
    )
    return out
  noisy = (fake_c < THRESHOLD * ref_c) | (fake_s > THRESHOLD * ref_s)
  out["noise_like"] = np.flatnonzero(noisy).tolist()
  out["num_noise_like"] = int(noisy.sum())
  out["share_noise_like"] = float(noisy.mean()) if len(noisy) else None
  return out
