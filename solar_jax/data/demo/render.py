"""Images of the SIMULATED demo archive, drawn from sunpy's real AIA 171 Å frame.

The real level-1 frame that ships with sunpy (``sunpy.data.test``,
2011-02-15, 128×128) is turned by solar differential rotation
(``sunpy.sun.models.differential_rotation``, Howard model) to each planned
frame's time; a flare adds a bright loop arc at an active region, scaled
with the GOES flux above background; then photon-like noise, AIA's
automatic exposure control and its 14-bit saturation. ``render_frame``
returns counts; writing them as FITS is ``demo_files``' job.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import warnings

import astropy.units as u
import numpy as np
import sunpy.data.test
from astropy.io import fits
from scipy import ndimage
from sunpy.sun.models import differential_rotation

import solar_jax.data.demo.plan as demo_plan

REAL_FRAME = "aia_171_level1.fits"
AIA_SATURATION_DN = 16383  # 14-bit camera
# Flare brightening peak in DN/s for 1e-6 W m^-2 of flare (above background)
# flux and its power-law index: an X1 flare reaches ~ 4000 DN/s.
FLARE_DNS_AT_C1 = 250.0
FLARE_DNS_INDEX = 0.6
# Image rotation is wrapped to this many days so the real active regions
# stay on the disk.
ROTATION_WRAP_DAYS = 6.0


@dataclasses.dataclass(frozen=True)
class Disk:
  """The real frame and its per-pixel heliographic coordinates."""

  rate: np.ndarray  # [H, W] DN/s of the real frame
  header: object  # astropy Header (BLANK removed)
  center: np.ndarray  # (x, y) 0-based pixel of disk centre
  radius: float  # disk radius in pixels
  b0: float  # observer latitude (rad)
  on_disk: np.ndarray  # bool [H, W]
  lat: np.ndarray  # [n_on_disk] rad
  lon: np.ndarray  # [n_on_disk] rad (Stonyhurst)
  omega: np.ndarray  # [n_on_disk] rad/day (sidereal, Howard)
  radial_profile: np.ndarray  # [H, W] azimuthal median at each radius (DN/s)
  active_regions: np.ndarray  # [k, 2] (lat, lon) rad at the real frame's time

  @property
  def time(self) -> datetime.datetime:
    """T_OBS of the real frame (naive UTC)."""
    return datetime.datetime.fromisoformat(self.header["T_OBS"].rstrip("Z"))


def load_real_frame():
  """(data DN, header) of sunpy's real AIA 171 Å level-1 test frame."""
  path = sunpy.data.test.get_test_filepath(REAL_FRAME)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # BLANK on float data
    with fits.open(path) as hdul:
      header = hdul[0].header.copy()
      data = np.asarray(hdul[0].data, dtype=np.float64)
  header.remove("BLANK", ignore_missing=True)
  return data, header


def disk_coordinates(header, shape):
  """Disk centre (x, y) px, radius px, B0 and Stonyhurst lat/lon of every pixel.

  Orthographic projection from the header's linear WCS (the Sun subtends
  0.27°, so this is within ~0.3° of sunpy's exact transform on the disk).

  Returns:
    (center_xy, radius_px, b0_rad, lat [H, W], lon [H, W], on_disk [H, W]);
    lat/lon are NaN off the disk.
  """
  cdelt = np.array([header["CDELT1"], header["CDELT2"]], dtype=np.float64)
  crpix = np.array([header["CRPIX1"], header["CRPIX2"]], dtype=np.float64)
  crval = np.array([header.get("CRVAL1", 0.0), header.get("CRVAL2", 0.0)], dtype=np.float64)
  center = crpix - 1.0 - crval / cdelt
  radius = float(header["RSUN_OBS"]) / abs(cdelt[0])
  b0 = math.radians(float(header.get("HGLT_OBS", header.get("CRLT_OBS", 0.0))))
  yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
  # x grows westwards, y northwards (CDELT > 0 for AIA, CROTA2 ~ 0.02°).
  x = (xx - center[0]) * np.sign(cdelt[0]) / radius
  y = (yy - center[1]) * np.sign(cdelt[1]) / radius
  rho2 = x**2 + y**2
  on_disk = rho2 < 1.0
  z = np.sqrt(np.clip(1.0 - rho2, 0.0, None))
  lat = np.arcsin(np.clip(y * math.cos(b0) + z * math.sin(b0), -1, 1))
  lon = np.arctan2(x, z * math.cos(b0) - y * math.sin(b0))
  lat[~on_disk] = np.nan
  lon[~on_disk] = np.nan
  return center, radius, b0, lat, lon, on_disk


def project(lat, lon, b0):
  """Heliographic (lat, lon) -> disk-plane (x, y) in radii and depth z (>0 visible)."""
  x = np.cos(lat) * np.sin(lon)
  y = np.sin(lat) * math.cos(b0) - np.cos(lat) * np.cos(lon) * math.sin(b0)
  z = np.sin(lat) * math.sin(b0) + np.cos(lat) * np.cos(lon) * math.cos(b0)
  return x, y, z


def prepare_disk() -> Disk:
  """The real frame with the coordinates, rotation rates and active regions it needs."""
  data, header = load_real_frame()
  rate = data / float(header["EXPTIME"])
  center, radius, b0, lat, lon, on_disk = disk_coordinates(header, data.shape)
  omega = differential_rotation(1 * u.day, lat[on_disk] * u.rad, model="howard")
  omega = omega.to_value(u.rad)
  # Azimuthal median of the real frame per radius: fills the disk that
  # rotates in from behind the east limb (limb brightening included).
  yy, xx = np.mgrid[0 : data.shape[0], 0 : data.shape[1]]
  r_bin = np.round(np.hypot(xx - center[0], yy - center[1])).astype(int)
  medians = np.array(
    [np.median(rate[r_bin == r]) if np.any(r_bin == r) else 0.0 for r in range(r_bin.max() + 1)]
  )
  radial_profile = medians[r_bin]
  # Active regions: bright local maxima of the smoothed disk, away from the limb.
  smooth = ndimage.gaussian_filter(rate, 2.0)
  peaks = (smooth == ndimage.maximum_filter(smooth, size=9)) & on_disk
  peaks &= np.hypot(xx - center[0], yy - center[1]) < 0.85 * radius
  peaks &= smooth > 2.0 * np.median(rate[on_disk])
  rows, cols = np.nonzero(peaks)
  order = np.argsort(-smooth[rows, cols])[:4]
  active = np.stack([lat[rows[order], cols[order]], lon[rows[order], cols[order]]], axis=-1)
  if len(active) == 0:  # not expected for the real frame; keep a plausible site
    active = np.array([[math.radians(-20.0), 0.0]])
  return Disk(
    rate=rate,
    header=header,
    center=center,
    radius=radius,
    b0=b0,
    on_disk=on_disk,
    lat=lat[on_disk],
    lon=lon[on_disk],
    omega=omega,
    radial_profile=radial_profile,
    active_regions=active,
  )


def rotate_disk(disk: Disk, days: float) -> np.ndarray:
  """The real frame (DN/s) with its disk differentially rotated by ``days``.

  Each on-disk output pixel takes the value of the point that rotated onto it
  (bilinear); points that were behind the limb take the radial median.
  Off-disk corona is kept as observed.
  """
  lon_src = disk.lon - disk.omega * days
  x, y, z = project(disk.lat, lon_src, disk.b0)
  cols = disk.center[0] + x * disk.radius
  rows = disk.center[1] + y * disk.radius
  values = ndimage.map_coordinates(disk.rate, [rows, cols], order=1, mode="nearest")
  values = np.where(z > 0, values, disk.radial_profile[disk.on_disk])
  out = disk.rate.copy()
  out[disk.on_disk] = values
  return out


def _loop_kernel(shape, center_xy, scale_px, seed) -> np.ndarray:
  """A bright post-flare loop arc (max 1) centred at ``center_xy``."""
  rng = np.random.default_rng(seed)
  radius = rng.uniform(2.0, 4.5) * scale_px
  angle = rng.uniform(0, 2 * math.pi)
  incline = rng.uniform(0.3, 1.0)  # projected loop height / footpoint half-distance
  s = np.linspace(0.0, math.pi, 24)
  u, v = radius * np.cos(s), incline * radius * np.sin(s)
  px = center_xy[0] + u * math.cos(angle) - v * math.sin(angle)
  py = center_xy[1] + u * math.sin(angle) + v * math.cos(angle)
  weights = 0.6 + 0.4 * (np.abs(np.cos(s)) ** 4)  # brighter footpoints
  yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
  sigma = 0.9 * scale_px
  kernel = np.zeros(shape)
  for x, y, w in zip(px, py, weights):
    kernel += w * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
  return kernel / kernel.max()


def region_xy(disk: Disk, flare: demo_plan.SimFlare, days: float):
  """The flare's site after ``days`` of rotation: (x px, y px, lat, lon rad), or None.

  The flare's own active region when it is well on the disk, else the first
  other one that is; None when none is.
  """
  order = [flare.region] + [i for i in range(len(disk.active_regions)) if i != flare.region]
  for i in order:
    lat, lon = disk.active_regions[i]
    omega = differential_rotation(1 * u.day, lat * u.rad, model="howard").to_value(u.rad)
    x, y, z = project(lat, lon + omega * days, disk.b0)
    if z > 0.3:
      return (
        disk.center[0] + x * disk.radius,
        disk.center[1] + y * disk.radius,
        lat,
        lon + omega * days,
      )
  return None


def wrapped_days(t: datetime.datetime, t_real: datetime.datetime) -> float:
  """Days from the real frame to ``t``, wrapped into +-ROTATION_WRAP_DAYS / 2."""
  days = (t - t_real).total_seconds() / 86400.0
  return (days + ROTATION_WRAP_DAYS / 2) % ROTATION_WRAP_DAYS - ROTATION_WRAP_DAYS / 2


def render_frame(disk: Disk, frame: demo_plan.PlannedFrame, flares_by_id: dict, rng):
  """(counts int16 [H, W], exposure s, rotation days) of one planned frame.

  ``flares_by_id`` maps event ids to ``SimFlare`` (only a flaring frame's
  event is looked up); ``rng`` draws the exposure jitter and the noise.
  """
  days = wrapped_days(frame.time, disk.time)
  rate = rotate_disk(disk, days)
  on = disk.on_disk
  median = float(np.median(rate[on]))
  # Brighter active regions when the background flux is high.
  activity = float(
    np.clip((frame.flux if not frame.flaring else 2.0e-7) / 2.0e-7, 0.3, 4.0) ** 0.15
  )
  rate = np.where(on & (rate > median), median + (rate - median) * activity, rate)
  if frame.flaring:
    flare = flares_by_id[frame.event_id]
    excess = float(demo_plan.flare_excess(flare, np.array([np.datetime64(frame.time, "s")]))[0])
    site = region_xy(disk, flare, days)
    if site is not None:
      kernel = _loop_kernel(rate.shape, site[:2], disk.radius / 50.0, flare.loop_seed)
      rate = rate + FLARE_DNS_AT_C1 * (excess / 1e-6) ** FLARE_DNS_INDEX * kernel
  # Automatic exposure control: AIA shortens exposures in bright flares.
  exptime = 2.0 + 0.0002 * rng.standard_normal()
  peak = float(rate.max())
  if peak * exptime > 0.8 * AIA_SATURATION_DN:
    exptime = max(0.05, round(0.8 * AIA_SATURATION_DN / peak, 3))
  counts = rate * exptime
  counts = counts + np.sqrt(np.clip(counts, 0, None) * 0.5 + 1.0) * rng.standard_normal(
    counts.shape
  )
  counts = np.clip(np.round(counts), -32, AIA_SATURATION_DN).astype(np.int16)
  return counts, exptime, days
