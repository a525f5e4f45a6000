"""Physical statistics of real and generated AIA 171 Å images (DN/s).

Feature-space metrics say whether images look alike to a network; these say
whether they look alike to a solar physicist:

* the distribution of log10 intensity on the disk (histograms, and the
  1-D Wasserstein distance between the real and generated distributions, in
  dex: a uniform brightness error of a factor 10^w gives a distance of w);
* the radial profile of mean intensity against r / R_sun (171 Å is
  limb-brightened: the optically thin corona piles up along the line of sight);
* the azimuthally averaged spatial power spectrum (is the fine structure of
  loops and network there, or is the image too smooth?): ``power_spectrum`` in
  cycles per image, ``disk_power_spectrum`` on the disk alone (inscribed square, Hann
  window) in arcsec⁻¹, the one the evaluation compares;
* the disk-integrated brightness per GOES class (brighter active regions go
  with bigger flares), compared with means, ratios and a KS test;
* per class, what matters for flares: the distribution of the brightest
  on-disk intensity of each image and of the area above a flare-kernel
  threshold (share of the disk), real vs synthetic with a two-sample KS
  test, and the share of clipped pixels (at the intensity transform's bounds:
  a generator that saturates shows many at clip_max).

Geometry follows the stored images (solar_jax/data/aia.py): the disk centre
is the array centre ``((S - 1) / 2, (S - 1) / 2)`` and the radius is
``aia.DEFAULT_DISK_FRACTION * S`` pixels unless ``radius_px`` is given.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from solar_jax.data import aia, scaling
from solar_jax.metrics import sample_size


def _as_stack(images) -> np.ndarray:
  """``[N, H, W]`` float64 from ``[N, H, W]`` or ``[N, H, W, 1]``."""
  x = np.asarray(images, dtype=np.float64)
  if x.ndim == 4 and x.shape[-1] == 1:
    x = x[..., 0]
  if x.ndim != 3:
    raise ValueError(f"images must have shape [N, H, W] or [N, H, W, 1], got {x.shape}.")
  return x


def default_radius(image_size: int) -> float:
  """Disk radius in pixels of the stored images (solar_jax.data.aia)."""
  return aia.default_disk_radius(image_size)


def radius_map(shape: tuple[int, int], radius_px: float | None = None) -> np.ndarray:
  """r / R_sun at every pixel, disk centred on the array centre."""
  h, w = shape
  radius = default_radius(min(h, w)) if radius_px is None else float(radius_px)
  if radius <= 0:
    raise ValueError(f"radius_px={radius} must be positive.")
  rows = np.arange(h) - (h - 1) / 2.0
  cols = np.arange(w) - (w - 1) / 2.0
  return np.hypot(rows[:, None], cols[None, :]) / radius


def disk_mask(shape: tuple[int, int], radius_px: float | None = None) -> np.ndarray:
  """Boolean mask of the pixels on the solar disk (r <= R_sun)."""
  return radius_map(shape, radius_px) <= 1.0


def log_intensity_on_disk(images, radius_px=None, floor: float = 1.0) -> np.ndarray:
  """log10 of the on-disk intensities of all images, flattened (values < floor -> floor)."""
  x = _as_stack(images)
  mask = disk_mask(x.shape[1:], radius_px)
  return np.log10(np.maximum(x[:, mask], floor)).ravel()


def intensity_histogram(images, bins, radius_px=None, floor: float = 1.0) -> np.ndarray:
  """Normalised histogram (density) of on-disk log10 intensity over ``bins`` edges."""
  values = log_intensity_on_disk(images, radius_px, floor)
  density, _ = np.histogram(values, bins=bins, density=True)
  return density


def _subsample(values: np.ndarray, max_values: int | None, rng) -> np.ndarray:
  if max_values is None or len(values) <= max_values:
    return values
  return rng.choice(values, max_values, replace=False)


def intensity_wasserstein(
  real_images,
  fake_images,
  radius_px=None,
  floor: float = 1.0,
  max_pixels: int | None = 2_000_000,
  seed: int = 0,
) -> float:
  """Wasserstein-1 distance (dex) between on-disk log10 intensity distributions.

  At most ``max_pixels`` pixels of each set are used (a seeded random subset),
  which bounds the sort for large images; the estimate's error is far below
  the differences this figure is used to show.
  """
  rng = np.random.default_rng(seed)
  real = _subsample(log_intensity_on_disk(real_images, radius_px, floor), max_pixels, rng)
  fake = _subsample(log_intensity_on_disk(fake_images, radius_px, floor), max_pixels, rng)
  import scipy.stats  # ~1 s to import: only where it is used, not by every command.

  return float(scipy.stats.wasserstein_distance(real, fake))


def limb_profile(
  images,
  radius_px=None,
  num_bins: int | None = None,
  r_max: float = 1.2,
) -> dict:
  """Mean intensity against r / R_sun, averaged over images.

  Each image's profile is the mean intensity in ``num_bins`` equal bins of
  r / R_sun over ``[0, r_max]``; the result is the mean and standard deviation
  of those profiles across images. Bins with no pixel are NaN. By default
  bins are about one pixel wide (at most 50), so small images have no empty bins.

  Returns:
    {'r': bin centres, 'mean': [num_bins], 'std': [num_bins], 'num_images'}.
  """
  x = _as_stack(images)
  r = radius_map(x.shape[1:], radius_px)
  if num_bins is None:
    radius = default_radius(min(x.shape[1:])) if radius_px is None else float(radius_px)
    num_bins = int(np.clip(np.floor(r_max * radius), 1, 50))
  edges = np.linspace(0.0, r_max, num_bins + 1)
  index = np.digitize(r.ravel(), edges) - 1
  valid = (index >= 0) & (index < num_bins)
  counts = np.bincount(index[valid], minlength=num_bins).astype(np.float64)
  flat = x.reshape(len(x), -1)[:, valid]
  # One sparse product sums every image's pixels per bin.
  num_valid = int(valid.sum())
  onehot = scipy.sparse.csr_matrix(
    (np.ones(num_valid), (np.arange(num_valid), index[valid])), shape=(num_valid, num_bins)
  )
  with np.errstate(invalid="ignore", divide="ignore"):
    profiles = np.asarray((onehot.T @ flat.T).T) / counts[None, :]
  return {
    "r": (edges[:-1] + edges[1:]) / 2.0,
    "mean": profiles.mean(axis=0),
    "std": profiles.std(axis=0),
    "num_images": len(x),
  }


def power_spectrum(images) -> dict:
  """Azimuthally averaged spatial power spectrum, averaged over images.

  Each image has its mean removed, then ``P(k) = |FFT|² / (H W)`` is averaged
  in rings of integer radial wavenumber ``k`` (cycles per image side, square
  images; k = 1 .. S/2). Pass log10 intensities to weigh structure at all
  brightness levels alike.

  Returns:
    {'k': [S/2] wavenumbers, 'power': [S/2], 'num_images'}.
  """
  x = _as_stack(images)
  n, h, w = x.shape
  if h != w:
    raise ValueError(f"power_spectrum needs square images, got {h}x{w}.")
  x = x - x.mean(axis=(1, 2), keepdims=True)
  power2d = (np.abs(np.fft.fft2(x)) ** 2).mean(axis=0) / (h * w)
  freq = np.fft.fftfreq(h) * h
  k = np.hypot(freq[:, None], freq[None, :])
  ring = np.rint(k).astype(np.int64).ravel()
  sums = np.bincount(ring, weights=power2d.ravel())
  counts = np.bincount(ring)
  kmax = h // 2
  ks = np.arange(1, kmax + 1)
  return {"k": ks.astype(np.float64), "power": sums[ks] / counts[ks], "num_images": n}


# The solar radius seen from 1 AU with AIA's RSUN_REF (696,000 km): the stored frames are
# rescaled so the disk has ``default_radius`` pixels, so a pixel spans
# RSUN_OBS / radius arcsec; RSUN_OBS varies by ±1.7 % over the year (Earth's orbit).
RSUN_1AU_ARCSEC = 959.63

DISK_WINDOW = (
  "on-disk: the central square inscribed in the disk (|x|, |y| <= R_sun / sqrt 2), "
  "mean removed, Hann-apodised; off-limb pixels and the limb are left out"
)


def arcsec_per_pixel(image_size: int, rsun_arcsec: float = RSUN_1AU_ARCSEC) -> float:
  """Plate scale of a stored ``image_size``² frame: RSUN_OBS / disk radius in pixels
  (AIA's 0.6"/px at 4096 px, rescaled to the image)."""
  if image_size <= 0 or not rsun_arcsec > 0:
    raise ValueError(f"image_size={image_size} and rsun_arcsec={rsun_arcsec} must be positive.")
  return float(rsun_arcsec) / default_radius(image_size)


def disk_power_spectrum(images, radius_px=None, rsun_arcsec: float = RSUN_1AU_ARCSEC) -> dict:
  """Azimuthally averaged power spectrum of the disk alone, in arcsec^-1 (``DISK_WINDOW``).

  The window is the central ``L``² square inscribed in the disk (``L = floor(sqrt 2 R)``
  pixels), so neither the limb's step nor the dark sky enters; each image has its mean
  removed and is apodised with a 2-D Hann window. Ring ``k`` (cycles per window side,
  1 .. L/2) is the spatial frequency ``k / (L * arcsec_per_pixel)``, so images of any
  size with the disk at ``default_radius`` share one frequency axis.

  Returns:
    {'freq_arcsec': [L/2] in arcsec^-1, 'power': [L/2], 'num_images', 'window'}.
  """
  x = _as_stack(images)
  n, h, w = x.shape
  if h != w:
    raise ValueError(f"disk_power_spectrum needs square images, got {h}x{w}.")
  radius = default_radius(h) if radius_px is None else float(radius_px)
  side = int(np.floor(np.sqrt(2.0) * radius))
  if side < 8:
    raise ValueError(f"the disk of {h}² images ({radius:g} px radius) is too small for a spectrum.")
  start = (h - side) // 2
  x = x[:, start : start + side, start : start + side]
  x = x - x.mean(axis=(1, 2), keepdims=True)
  hann = np.hanning(side + 2)[1:-1]
  window = hann[:, None] * hann[None, :]
  spec = power_spectrum(x * window / np.sqrt((window**2).mean()))
  scale = float(rsun_arcsec) / radius
  return {
    "freq_arcsec": spec["k"] / (side * scale),
    "power": spec["power"],
    "num_images": n,
    "window": DISK_WINDOW,
  }


def spectral_slope(k: np.ndarray, power: np.ndarray, k_min: float, k_max: float) -> float:
  """Least-squares slope of log10 P against log10 k over ``[k_min, k_max]``."""
  sel = (k >= k_min) & (k <= k_max) & (power > 0)
  if sel.sum() < 2:
    raise ValueError(f"fewer than 2 wavenumbers in [{k_min}, {k_max}] with positive power.")
  slope, _ = np.polyfit(np.log10(k[sel]), np.log10(power[sel]), 1)
  return float(slope)


def disk_integrated_brightness(images, radius_px=None) -> np.ndarray:
  """Sum of the on-disk intensities of each image, ``[N]`` (DN/s per image)."""
  x = _as_stack(images)
  mask = disk_mask(x.shape[1:], radius_px)
  return x[:, mask].sum(axis=1)


def compare_brightness_by_class(
  real_images,
  real_labels,
  fake_images,
  fake_labels,
  class_names,
  radius_px=None,
) -> dict:
  """Disk-integrated brightness of real vs generated images, per class.

  Returns:
    {class name: {'num_real', 'num_fake', 'mean_real', 'mean_fake', 'std_real',
    'std_fake', 'ratio' (fake / real mean), 'ks_statistic', 'ks_pvalue'}};
    figures that need at least one image of each set are None otherwise.
  """
  real_b = disk_integrated_brightness(real_images, radius_px)
  fake_b = disk_integrated_brightness(fake_images, radius_px)
  real_labels, fake_labels = np.asarray(real_labels), np.asarray(fake_labels)
  out = {}
  for index, name in enumerate(class_names):
    r, f = real_b[real_labels == index], fake_b[fake_labels == index]
    entry = {"num_real": len(r), "num_fake": len(f)}
    entry["mean_real"] = float(r.mean()) if len(r) else None
    entry["mean_fake"] = float(f.mean()) if len(f) else None
    entry["std_real"] = float(r.std()) if len(r) else None
    entry["std_fake"] = float(f.std()) if len(f) else None
    if len(r) and len(f):
      entry["ratio"] = float(f.mean() / r.mean()) if r.mean() else None
      import scipy.stats

      ks = scipy.stats.ks_2samp(r, f)
      entry["ks_statistic"], entry["ks_pvalue"] = float(ks.statistic), float(ks.pvalue)
    else:
      entry["ratio"] = entry["ks_statistic"] = entry["ks_pvalue"] = None
    out[str(name)] = entry
  return out


def physics_statistics(
  real_images,
  fake_images,
  radius_px=None,
  floor: float = 1.0,
  num_hist_bins: int = 60,
  seed: int = 0,
) -> dict:
  """Every physical comparison of two image sets in DN/s (no per-class part).

  Returns a dict whose scalar entries go to metrics.json and whose arrays
  ('histogram', 'limb', 'spectrum') feed the plots.
  """
  real, fake = _as_stack(real_images), _as_stack(fake_images)
  log_real = log_intensity_on_disk(real, radius_px, floor)
  log_fake = log_intensity_on_disk(fake, radius_px, floor)
  lo = min(log_real.min(), log_fake.min())
  hi = max(log_real.max(), log_fake.max())
  edges = np.linspace(lo, hi if hi > lo else lo + 1.0, num_hist_bins + 1)
  limb_real, limb_fake = limb_profile(real, radius_px), limb_profile(fake, radius_px)
  spec_real = disk_power_spectrum(np.log10(np.maximum(real, floor)), radius_px)
  spec_fake = disk_power_spectrum(np.log10(np.maximum(fake, floor)), radius_px)
  on_disk = limb_real["r"] <= 1.0
  with np.errstate(invalid="ignore", divide="ignore"):
    limb_log_ratio = np.log10(limb_fake["mean"] / limb_real["mean"])
    spectrum_log_ratio = np.log10(spec_fake["power"] / spec_real["power"])
  return {
    "num_real": len(real),
    "num_fake": len(fake),
    "intensity_wasserstein_dex": intensity_wasserstein(real, fake, radius_px, floor, seed=seed),
    "mean_log_intensity_real": float(log_real.mean()),
    "mean_log_intensity_fake": float(log_fake.mean()),
    # Mean |log10 ratio| of the limb profiles on the disk, and of the spectra.
    "limb_profile_mean_abs_log_ratio": float(np.nanmean(np.abs(limb_log_ratio[on_disk]))),
    "power_spectrum_mean_abs_log_ratio": float(np.nanmean(np.abs(spectrum_log_ratio))),
    "power_spectrum_window": DISK_WINDOW,
    "histogram": {
      "edges": edges,
      "real": np.histogram(log_real, edges, density=True)[0],
      "fake": np.histogram(log_fake, edges, density=True)[0],
    },
    "limb": {"real": limb_real, "fake": limb_fake},
    "spectrum": {"real": spec_real, "fake": spec_fake},
  }


def peak_on_disk(images, radius_px=None) -> np.ndarray:
  """Brightest on-disk intensity of each image, ``[N]`` (DN/s)."""
  x = _as_stack(images)
  return x[:, disk_mask(x.shape[1:], radius_px)].max(axis=1)


def kernel_area(images, threshold: float, radius_px=None) -> np.ndarray:
  """Share of each image's disk at or above ``threshold`` DN/s, ``[N]`` in [0, 1]."""
  x = _as_stack(images)
  return (x[:, disk_mask(x.shape[1:], radius_px)] >= threshold).mean(axis=1)


def clipped_fraction(images, clip_min: float, clip_max: float) -> dict:
  """Share of all pixels at or beyond the transform's bounds: {'high', 'low'}."""
  x = _as_stack(images)
  if x.size == 0:
    return {"high": None, "low": None}
  # float32 round trips through the transform land within 1e-4 of the bound.
  return {
    "high": float((x >= clip_max * (1 - 1e-4)).mean()),
    "low": float((x <= clip_min * (1 + 1e-4)).mean()),
  }


def compare_distributions(real, fake) -> dict:
  """Medians, quartiles and a two-sample KS test of one quantity, real vs synthetic."""
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  out = {"n_real": len(real), "n_fake": len(fake)}
  for name, values in (("real", real), ("fake", fake)):
    q = np.quantile(values, [0.25, 0.5, 0.75]) if len(values) else [None] * 3
    out[f"q25_{name}"], out[f"median_{name}"], out[f"q75_{name}"] = (
      None if v is None else float(v) for v in q
    )
  reason = sample_size.ks_reason(len(real), len(fake))
  if reason is None:
    import scipy.stats

    ks = scipy.stats.ks_2samp(real, fake)
    out["ks_statistic"], out["ks_pvalue"] = float(ks.statistic), float(ks.pvalue)
  else:
    out["ks_not_estimable"] = reason
  return out


def real_as_model(images, clip_min: float, clip_max: float) -> np.ndarray:
  """Real images (DN/s) as the model sees them: through ``data.scaling``'s transform and
  back, so clipped to ``[clip_min, clip_max]`` and rounded as every sample is."""
  images = np.asarray(images, np.float32)
  return scaling.inverse(scaling.forward(images, clip_min, clip_max), clip_min, clip_max)


def flare_physics_by_class(
  real_images,
  real_labels,
  fake_images,
  fake_labels,
  class_names,
  *,
  threshold: float,
  clip_min: float,
  clip_max: float,
  radius_px=None,
) -> dict:
  """Peak intensity, kernel area and clipped share, real vs synthetic, overall and per class.

  The real images are compared as the model sees them: through the intensity transform
  and back (``real_as_model``: clipped to ``[clip_min, clip_max]``), since no sample can
  leave that range; unclipped, the brightest flares' peaks would differ by the clip
  alone. ``real_above_clip`` says what the clip hides: the share of real frames whose
  on-disk peak exceeds ``clip_max``, with its N.

  Returns:
    {'threshold_dns', 'overall': entry, 'per_class': {name: entry}} where an
    entry is {'peak_dns': compare_distributions, 'kernel_area':
    compare_distributions, 'clipped_real': {...}, 'clipped_fake': {...},
    'real_above_clip': {'share', 'n'}}.
  """
  real, fake = _as_stack(real_images), _as_stack(fake_images)
  real_labels, fake_labels = np.asarray(real_labels), np.asarray(fake_labels)
  raw_peaks = peak_on_disk(real, radius_px)
  real = real_as_model(real, clip_min, clip_max)
  peaks = (peak_on_disk(real, radius_px), peak_on_disk(fake, radius_px))
  areas = (kernel_area(real, threshold, radius_px), kernel_area(fake, threshold, radius_px))

  def entry(r_sel, f_sel):
    n = int(np.sum(r_sel))
    return {
      "peak_dns": compare_distributions(peaks[0][r_sel], peaks[1][f_sel]),
      "kernel_area": compare_distributions(areas[0][r_sel], areas[1][f_sel]),
      "clipped_real": clipped_fraction(real[r_sel], clip_min, clip_max),
      "clipped_fake": clipped_fraction(fake[f_sel], clip_min, clip_max),
      "real_above_clip": {
        "share": float(np.mean(raw_peaks[r_sel] > clip_max)) if n else None,
        "n": n,
      },
    }

  return {
    "threshold_dns": float(threshold),
    "overall": entry(np.ones(len(real), bool), np.ones(len(fake), bool)),
    "per_class": {
      str(c): entry(real_labels == i, fake_labels == i) for i, c in enumerate(class_names)
    },
  }
