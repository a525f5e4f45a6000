"""Physical statistics on synthetic Suns and fields with analytic answers."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from solar_jax.data import scaling
from solar_jax.metrics import physics


def _limb_disk(size, radius, u):
  """Disk with the linear limb law I = I0 (1 - u (1 - mu)), mu = sqrt(1 - r²); 0 outside."""
  r = physics.radius_map((size, size), radius)
  mu = np.sqrt(np.clip(1.0 - r**2, 0.0, None))
  return np.where(r <= 1.0, 100.0 * (1.0 - u * (1.0 - mu)), 0.0)


@pytest.mark.parametrize("u", [0.6, -0.8])  # Darkening and brightening towards the limb.
def test_limb_profile_recovers_the_analytic_law(u):
  size = 256
  image = _limb_disk(size, physics.default_radius(size), u)
  profile = physics.limb_profile(np.stack([image, image])[..., None], num_bins=40, r_max=1.2)
  r = profile["r"]
  expected = 100.0 * (1.0 - u * (1.0 - np.sqrt(np.clip(1.0 - r**2, 0.0, None))))
  # Bins well inside the disk (the law is steep only right at the limb).
  inner = (r > 0.1) & (r < 0.9)
  np.testing.assert_allclose(profile["mean"][inner], expected[inner], rtol=5e-3)
  assert np.all(profile["mean"][r > 1.03] == 0.0)
  assert np.all(profile["std"][inner] == 0.0)  # Two identical images.
  assert profile["num_images"] == 2


def test_radius_parameter_and_default_geometry():
  size = 200
  assert physics.default_radius(size) == pytest.approx(0.4 * size)
  mask = physics.disk_mask((size, size))
  assert mask.sum() == pytest.approx(np.pi * (0.4 * size) ** 2, rel=0.01)
  # Centre of the array is r = 0 between the four central pixels.
  r = physics.radius_map((size, size), radius_px=10.0)
  assert r[99, 99] == pytest.approx(np.hypot(0.5, 0.5) / 10.0)
  assert physics.disk_mask((size, size), radius_px=30.0).sum() < mask.sum()


def test_power_spectrum_of_a_sinusoid_peaks_at_its_wavenumber():
  n = 64
  y, x = np.mgrid[0:n, 0:n]
  field = np.cos(2 * np.pi * (3 * x + 4 * y) / n)  # |k| = 5 cycles per image.
  spec = physics.power_spectrum(field[None])
  peak = spec["k"][np.argmax(spec["power"])]
  assert peak == 5.0
  # All the variance sits in that ring: P summed over the ring's modes = variance * N².
  assert spec["power"].max() / spec["power"].sum() > 0.999


def test_power_spectrum_slope_of_a_power_law_field():
  n, beta = 128, 2.5
  rng = np.random.default_rng(0)
  f = np.fft.fftfreq(n) * n
  k = np.hypot(f[:, None], f[None, :])
  amplitude = np.where(k > 0, np.maximum(k, 1.0) ** (-beta / 2), 0.0)
  noise = rng.normal(size=(8, n, n)) + 1j * rng.normal(size=(8, n, n))
  fields = np.fft.ifft2(noise * amplitude).real
  spec = physics.power_spectrum(fields)
  slope = physics.spectral_slope(spec["k"], spec["power"], 4, n // 4)
  assert slope == pytest.approx(-beta, abs=0.1)


def test_wasserstein_of_shifted_log_intensities_equals_the_shift():
  rng = np.random.default_rng(1)
  real = 10 ** rng.uniform(1.0, 3.0, (4, 64, 64, 1))
  fake = real * 10**0.25
  exact = physics.intensity_wasserstein(real, fake, floor=1.0, max_pixels=None)
  assert exact == pytest.approx(0.25, abs=1e-9)
  subsampled = physics.intensity_wasserstein(real, fake, floor=1.0, max_pixels=2000, seed=0)
  assert subsampled == pytest.approx(0.25, abs=0.05)
  # Off-disk pixels are ignored: changing them changes nothing.
  off_disk = ~physics.disk_mask((64, 64))
  changed = fake.copy()
  changed[:, off_disk] = 1e6
  assert physics.intensity_wasserstein(real, changed, max_pixels=None) == pytest.approx(exact)


def test_brightness_by_class_means_ratio_and_ks():
  rng = np.random.default_rng(2)
  base = np.ones((40, 32, 32))
  scale = rng.uniform(1.0, 1.2, (40, 1, 1))
  real = base * scale
  labels = np.repeat([0, 1], 20)
  real[labels == 1] *= 3.0
  fake = real.copy()
  fake[labels == 1] *= 2.0  # Class B twice too bright.
  out = physics.compare_brightness_by_class(real, labels, fake, labels, ["A", "B", "C"])
  assert out["A"]["ratio"] == pytest.approx(1.0)
  assert out["A"]["ks_statistic"] == 0.0
  assert out["B"]["ratio"] == pytest.approx(2.0)
  assert out["B"]["ks_statistic"] == 1.0 and out["B"]["ks_pvalue"] < 1e-6
  assert out["C"] == {**out["C"], "num_real": 0, "num_fake": 0, "ratio": None}
  disk_pixels = physics.disk_mask((32, 32)).sum()
  assert out["A"]["mean_real"] == pytest.approx(disk_pixels * scale[:20].mean())


def test_physics_statistics_of_identical_sets():
  rng = np.random.default_rng(3)
  images = 10 ** rng.uniform(0.5, 3.0, (3, 32, 32, 1))
  stats = physics.physics_statistics(images, images)
  assert stats["intensity_wasserstein_dex"] == 0.0
  assert stats["limb_profile_mean_abs_log_ratio"] == 0.0
  assert stats["power_spectrum_mean_abs_log_ratio"] == 0.0
  np.testing.assert_array_equal(stats["histogram"]["real"], stats["histogram"]["fake"])


def test_flare_physics_on_constructed_disks():
  size, clip_min, clip_max = 32, 1.0, 3000.0
  disk = physics.disk_mask((size, size))
  quiet = np.where(disk, 100.0, 2.0)
  flaring = quiet.copy()
  flaring[15:17, 15:17] = 5000.0  # A 2x2 kernel, clipped by the transform.
  images = np.stack([quiet] * 6 + [flaring] * 6)[..., None].astype(np.float32)  # As stored.
  labels = np.array([0] * 6 + [1] * 6)
  assert physics.peak_on_disk(images).tolist() == [100.0] * 6 + [5000.0] * 6
  area = physics.kernel_area(images, 1500.0)
  assert area[-1] == pytest.approx(4 / disk.sum()) and area[0] == 0.0
  # A round trip through the intensity transform clips the kernel at clip_max.
  round_trip = scaling.inverse(scaling.forward(images, clip_min, clip_max), clip_min, clip_max)
  clipped = physics.clipped_fraction(round_trip[6:], clip_min, clip_max)
  assert clipped["high"] == pytest.approx(4 / size**2)
  out = physics.flare_physics_by_class(
    images, labels, round_trip, labels, ("quiet", "flare"),
    threshold=1500.0, clip_min=clip_min, clip_max=clip_max,
  )  # fmt: skip
  flare = out["per_class"]["flare"]
  # Both sides as the model sees them: the 5000 DN/s kernel reads at the clip on each.
  assert flare["peak_dns"]["median_real"] == pytest.approx(3000.0, rel=1e-4)
  assert flare["peak_dns"]["median_fake"] == flare["peak_dns"]["median_real"]
  assert flare["peak_dns"]["ks_statistic"] == 0.0
  assert flare["kernel_area"]["ks_statistic"] == 0.0
  # What the clip hides: every flaring real frame, no quiet one.
  assert flare["real_above_clip"] == {"share": 1.0, "n": 6}
  assert out["per_class"]["quiet"]["real_above_clip"] == {"share": 0.0, "n": 6}
  assert out["overall"]["real_above_clip"] == {"share": 0.5, "n": 12}
  # Real pixels above clip_max count as clipped too (the transform clips them).
  assert out["overall"]["clipped_real"]["high"] == pytest.approx(6 * 4 / (12 * size**2))
  assert out["per_class"]["quiet"]["clipped_fake"]["high"] == 0.0


def test_real_frames_through_the_transform_show_no_peak_difference():
  """sunpy's real AIA 171 frame (and shifted copies) against the same frames through the
  model's transform and back: no difference in peak or kernel area, whatever the clip
  cuts (at clip_max = 1000 DN the brightest on-disk pixels are above it)."""
  import sunpy.data.test
  from astropy.io import fits

  path = pathlib.Path(sunpy.data.test.rootdir) / "aia_171_level1.fits"
  frame = np.nan_to_num(fits.getdata(path).astype(np.float32))
  frames = np.stack([np.roll(frame, (3 * k, -2 * k), axis=(0, 1)) for k in range(12)])[..., None]
  labels = np.array([0] * 6 + [1] * 6)
  clip_min, clip_max = 1.0, 1000.0
  assert (physics.peak_on_disk(frames) > clip_max).all()
  round_trip = scaling.inverse(scaling.forward(frames, clip_min, clip_max), clip_min, clip_max)
  out = physics.flare_physics_by_class(
    frames, labels, round_trip, labels, ("B", "C"),
    threshold=800.0, clip_min=clip_min, clip_max=clip_max,
  )  # fmt: skip
  for entry in (out["overall"], *out["per_class"].values()):
    for key in ("peak_dns", "kernel_area"):
      assert entry[key]["ks_statistic"] == 0.0
      assert entry[key]["median_real"] == entry[key]["median_fake"]
    assert entry["real_above_clip"]["share"] == 1.0
