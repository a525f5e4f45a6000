"""Writes a small SIMULATED AIA 171 Å archive built from a real AIA frame.

The quickstart and the tests need a manual directory for the ``sdo_aia171``
builder without internet. This module makes one from the real level-1 AIA
171 Å frame that ships with sunpy (``sunpy.data.test``, 2011-02-15, 128×128):

* ``DIR/aia/YYYY/MM/DD/*.fits``: the real disk turned by solar differential
  rotation (``sunpy.sun.models.differential_rotation``, Howard model) to each
  frame's time, with a flare brightening (a bright loop arc at an active
  region) whose strength follows the GOES flux at that time, photon-like
  noise, AIA's 14-bit saturation and automatic exposure control. Headers are
  the real AIA level-1 header with the times, exposure and statistics updated
  and ``SIMULATE = T``. Some files are RICE-compressed, some gzipped.
* ``DIR/goes/*.fits``: one GOES XRS file per month (1-minute cadence) in the
  SDAC FITS layout that ``sunpy.timeseries`` reads as XRS, with a slowly
  varying background and a flare profile (Gaussian rise, exponential decay)
  at each listed flare; fluxes on the SWPC scale, like SDAC files.
* ``DIR/flares.csv``: the flare list with the columns of
  ``final_flare_list_sc24.csv`` plus a ``simulated`` column.
* ``DIR/demo_manifest.json``: every frame with the class it was made for.

Frames are either near a flare's peak (flaring, the flare's class) or at
least several decay times away from any flare (quiet, the class of the
background flux), so the builder's labels can be checked against the
manifest. Classes follow a realistic imbalance (many A/B/C, few M, fewer X)
but every month has at least one X and one M flare, so each time-block split
holds every class. Everything is deterministic for a seed.

  python -m solar_jax.data.demo --out runs/aia_demo --num_frames 480
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gzip
import io
import json
import math
import pathlib
import time as time_lib
import warnings

import numpy as np

SIMULATED_NOTE = "SIMULATED by solar_jax.data.demo from sunpy's real AIA 171 test frame"
REAL_FRAME = "aia_171_level1.fits"
AIA_SATURATION_DN = 16383  # 14-bit camera
CADENCE_S = 12  # AIA 171 cadence; planned times lie on this grid.
XRS_CADENCE_S = 60
CLASSES = ("A", "B", "C", "M", "X")
# Flare brightening peak in DN/s for 1e-6 W m^-2 of flare (above background)
# flux and its power-law index: an X1 flare reaches ~ 4000 DN/s.
FLARE_DNS_AT_C1 = 250.0
FLARE_DNS_INDEX = 0.6
# Frames are at most this far from a flare peak (minutes): inside any builder
# window >= 15 min.
FLARING_OFFSET_MIN = 12.0
# Image rotation is wrapped to this many days so the real active regions
# stay on the disk.
ROTATION_WRAP_DAYS = 6.0


# ------------------------------------------------------- real frame ---


@dataclasses.dataclass(frozen=True)
class _Disk:
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


def load_real_frame():
  """(data DN, header) of sunpy's real AIA 171 Å level-1 test frame."""
  import sunpy.data.test
  from astropy.io import fits

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


def _project(lat, lon, b0):
  """Heliographic (lat, lon) -> disk-plane (x, y) in radii and depth z (>0 visible)."""
  x = np.cos(lat) * np.sin(lon)
  y = np.sin(lat) * math.cos(b0) - np.cos(lat) * np.cos(lon) * math.sin(b0)
  z = np.sin(lat) * math.sin(b0) + np.cos(lat) * np.cos(lon) * math.cos(b0)
  return x, y, z


def _prepare_disk() -> _Disk:
  import astropy.units as u
  from scipy import ndimage
  from sunpy.sun.models import differential_rotation

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
  return _Disk(
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


def rotate_disk(disk: _Disk, days: float) -> np.ndarray:
  """The real frame (DN/s) with its disk differentially rotated by ``days``.

  Each on-disk output pixel takes the value of the point that rotated onto it
  (bilinear); points that were behind the limb take the radial median.
  Off-disk corona is kept as observed.
  """
  from scipy import ndimage

  lon_src = disk.lon - disk.omega * days
  x, y, z = _project(disk.lat, lon_src, disk.b0)
  cols = disk.center[0] + x * disk.radius
  rows = disk.center[1] + y * disk.radius
  values = ndimage.map_coordinates(disk.rate, [rows, cols], order=1, mode="nearest")
  values = np.where(z > 0, values, disk.radial_profile[disk.on_disk])
  out = disk.rate.copy()
  out[disk.on_disk] = values
  return out


# ------------------------------------------------------------ schedule ---


@dataclasses.dataclass
class SimFlare:
  event_id: str
  start: datetime.datetime
  peak: datetime.datetime
  end: datetime.datetime
  goes_class: str
  peak_flux: float
  rise_min: float
  decay_min: float
  background: float
  region: int  # index into the active regions
  loop_seed: int


@dataclasses.dataclass
class PlannedFrame:
  time: datetime.datetime  # T_OBS (mid exposure)
  letter: str  # intended class
  flaring: bool
  event_id: str
  flux: float  # intended label flux (flare peak or background)


def _month_starts(start: datetime.datetime, months: int) -> list[datetime.datetime]:
  out = []
  y, m = start.year, start.month
  for _ in range(months + 1):
    out.append(datetime.datetime(y, m, 1))
    y, m = (y + 1, 1) if m == 12 else (y, m + 1)
  return out


def _class_string(letter: str, rng) -> tuple[str, float]:
  base = {"A": 1e-8, "B": 1e-7, "C": 1e-6, "M": 1e-5, "X": 1e-4}[letter]
  # One decimal in [1.0, 9.5] (X up to 5): away from the next class boundary.
  top = 5.0 if letter == "X" else 9.5
  value = round(float(math.exp(rng.uniform(0.0, math.log(top)))), 1)
  value = min(max(value, 1.0), top)
  return f"{letter}{value:.1f}", value * base


def _letter(flux: float) -> str:
  for letter, edge in zip(CLASSES[::-1], (1e-4, 1e-5, 1e-6, 1e-7)):
    if flux >= edge:
      return letter
  return "A"


def _background(rng, month_starts) -> tuple[np.ndarray, np.ndarray]:
  """Daily log10 background flux (times in days since the first month)."""
  days = (month_starts[-1] - month_starts[0]).days + 1
  level = np.empty(days)
  monthly = {}
  value = 0.0
  for d in range(days):
    month = (month_starts[0] + datetime.timedelta(days=d)).strftime("%Y-%m")
    if month not in monthly:
      monthly[month] = rng.normal(-6.85, 0.2)
    value = 0.7 * value + rng.normal(0.0, 0.25)
    level[d] = np.clip(monthly[month] + value, -7.7, -5.8)
  return np.arange(days, dtype=np.float64), level


def _background_at(bkg, t0: datetime.datetime, t) -> float:
  days = (t - t0).total_seconds() / 86400.0
  return float(10.0 ** np.interp(days, bkg[0], bkg[1]))


def _quiet_after(flare: SimFlare) -> datetime.datetime:
  """When the flare's excess flux has dropped below 3 % of the background."""
  decay = flare.decay_min * math.log(max(flare.peak_flux / (0.03 * flare.background), 2.0))
  return flare.peak + datetime.timedelta(minutes=decay)


def plan_archive(
  num_frames: int, start: datetime.datetime, months: int, seed: int, num_regions: int
):
  """Flares, background and frame times: (flares, frames, background)."""
  rng = np.random.default_rng(seed)
  starts = _month_starts(start, months)
  bkg = _background(rng, starts)
  per_month = np.full(months, num_frames // months)
  per_month[: num_frames % months] += 1
  flares: list[SimFlare] = []
  frames: list[PlannedFrame] = []
  for m in range(months):
    lo, hi = starts[m], starts[m + 1]
    budget = int(per_month[m])
    per_event = 2 if budget >= 16 else 1
    counts = {
      "X": 1,
      "M": max(1, round(0.10 * budget / per_event)),
      "C": max(1, round(0.16 * budget / per_event)),
      "B": round(0.04 * budget / per_event),
    }
    month_flares = []
    for letter in ("X", "M", "C", "B"):
      for _ in range(counts[letter]):
        if budget - per_event * (len(month_flares) + 1) < 0:
          break
        flare = _place_flare(rng, letter, lo, hi, month_flares, bkg, starts[0], num_regions)
        if flare is not None:
          month_flares.append(flare)
    month_flares.sort(key=lambda f: f.peak)
    for flare in month_flares:
      offsets = rng.uniform(-FLARING_OFFSET_MIN, FLARING_OFFSET_MIN, size=per_event)
      for off in np.sort(offsets):
        t = _on_grid(flare.peak + datetime.timedelta(minutes=float(off)))
        frames.append(
          PlannedFrame(t, _letter(flare.peak_flux), True, flare.event_id, flare.peak_flux)
        )
    quiet = budget - per_event * len(month_flares)
    span = (hi - lo).total_seconds()
    placed = 0
    while placed < quiet:
      t = _on_grid(lo + datetime.timedelta(seconds=float(rng.uniform(3600.0, span - 3600.0))))
      if any(f.start - datetime.timedelta(hours=2) <= t <= _quiet_after(f) for f in month_flares):
        continue
      if any(abs((t - f.time).total_seconds()) < CADENCE_S for f in frames):
        continue
      flux = _background_at(bkg, starts[0], t)
      if min(abs(math.log10(flux) - e) for e in (-7.0, -6.0, -5.0)) < 0.03:
        continue  # too near a class boundary: XRS noise could flip the label
      frames.append(PlannedFrame(t, _letter(flux), False, "", flux))
      placed += 1
    flares.extend(month_flares)
  frames.sort(key=lambda f: f.time)
  return flares, frames, bkg, starts


def _on_grid(t: datetime.datetime) -> datetime.datetime:
  seconds = round(t.timestamp() / CADENCE_S) * CADENCE_S
  return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).replace(tzinfo=None)


def _place_flare(rng, letter, lo, hi, others, bkg, t0, num_regions) -> SimFlare | None:
  for _ in range(200):
    peak = lo + datetime.timedelta(
      minutes=int(rng.integers(24 * 60, (hi - lo).days * 1440 - 24 * 60))
    )
    background = _background_at(bkg, t0, peak)
    goes_class, flux = _class_string(letter, rng)
    if flux < 3.0 * background:
      continue  # a flare must stand out of the background to be listed
    rise = float(rng.uniform(4.0, 15.0)) * (1.5 if letter in "MX" else 1.0)
    decay = float(rng.uniform(8.0, 25.0)) * (1.5 if letter in "MX" else 1.0)
    flare = SimFlare(
      event_id=f"SIM{peak:%Y%m%dT%H%M}",
      start=peak - datetime.timedelta(minutes=round(2.0 * rise)),
      peak=peak,
      end=peak + datetime.timedelta(minutes=round(decay * math.log(2.0))),
      goes_class=goes_class,
      peak_flux=flux,
      rise_min=rise,
      decay_min=decay,
      background=background,
      region=int(rng.integers(num_regions)),
      loop_seed=int(rng.integers(2**31)),
    )
    busy = any(
      flare.start - datetime.timedelta(hours=3)
      <= o.peak
      <= _quiet_after(flare) + datetime.timedelta(hours=1)
      or o.start - datetime.timedelta(hours=3)
      <= flare.peak
      <= _quiet_after(o) + datetime.timedelta(hours=1)
      for o in others
    )
    if not busy:
      return flare
  return None


def flare_excess(flare: SimFlare, t) -> np.ndarray:
  """Flux above background (W m^-2) of a flare at times ``t`` (datetime64 array)."""
  minutes = (np.asarray(t, dtype="datetime64[s]") - np.datetime64(flare.peak, "s")).astype(
    np.float64
  ) / 60.0
  # Far from the peak the profile is 0 (clipped exponent: no overflow).
  minutes = np.clip(minutes, -60.0 * flare.rise_min, 60.0 * flare.decay_min)
  shape = np.where(
    minutes < 0, np.exp(-0.5 * (minutes / flare.rise_min) ** 2), np.exp(-minutes / flare.decay_min)
  )
  return (flare.peak_flux - flare.background) * shape


# ------------------------------------------------------------- writing ---


def _xrs_hdul(month_start, month_end, flares, bkg, t0, rng, cadence_s=XRS_CADENCE_S):
  """A GOES XRS file in the SDAC FITS layout that sunpy.timeseries reads."""
  from astropy.io import fits

  n = int((month_end - month_start).total_seconds() // cadence_s)
  seconds = np.arange(n, dtype=np.float64) * cadence_s
  times = np.datetime64(month_start, "s") + seconds.astype("timedelta64[s]")
  days = (times - np.datetime64(t0, "s")).astype(np.float64) / 86400.0
  background = 10.0 ** np.interp(days, bkg[0], bkg[1])
  xrsb = background * (1.0 + 0.01 * rng.standard_normal(n))
  xrsa = 0.02 * background * (1.0 + 0.02 * rng.standard_normal(n))
  for flare in flares:
    if (
      flare.start - datetime.timedelta(days=1) < month_end
      and flare.end + datetime.timedelta(days=1) > month_start
    ):
      excess = flare_excess(flare, times)
      xrsb += excess
      xrsa += 0.15 * excess
  primary = fits.PrimaryHDU()
  h = primary.header
  h["DATE"] = (month_start.strftime("%d/%m/%Y"), "file creation date (simulated)")
  h["NUMEXT"] = 3
  h["TELESCOP"] = ("GOES 15", "spacecraft (SIMULATED series)")
  h["INSTRUME"] = "X-ray Detector"
  h["OBJECT"] = "Sun"
  # read_xrs decides the SWPC scaling from ORIGIN: SDAC layout, SWPC scale.
  h["ORIGIN"] = ("SDAC/GSFC layout, SIMULATED by solar_jax", "not real GOES data")
  h["DATE-OBS"] = (month_start.strftime("%d/%m/%Y"), "date of first obs.(DD/MM/YYYY)")
  h["TIME-OBS"] = "00:00:00.000"
  h["DATE-END"] = (month_end - datetime.timedelta(seconds=1)).strftime("%d/%m/%Y")
  h["TIME-END"] = "23:59:00.000"
  h["SIMULATE"] = (True, "SIMULATED: not a real GOES observation")
  h.add_comment(SIMULATED_NOTE.replace("AIA 171 test frame", "flare schedule") + ".")
  h.add_comment("Fluxes are on the SWPC (operational) scale, like SDAC files.")
  edges = fits.BinTableHDU.from_columns(
    [
      fits.Column(
        name="EDGES",
        format="4E",
        dim="(2,2)",
        unit="angstrom",
        array=np.array([[[1.0, 8.0], [0.5, 4.0]]], dtype=np.float32),
      )
    ],
    name="EDGES",
  )
  flux = np.stack([xrsb, xrsa], axis=-1).astype(np.float32)[None]
  fluxes = fits.BinTableHDU.from_columns(
    [
      fits.Column(name="TIME", format=f"{n}D", unit="s", array=seconds[None]),
      fits.Column(name="FLUX", format=f"{2 * n}E", dim=f"(2,{n})", unit="W /m**2", array=flux),
    ],
    name="FLUXES",
  )
  fluxes.header["SIMULATE"] = True
  status = fits.BinTableHDU.from_columns(
    [
      fits.Column(name="TIME", format="1E", unit="s", array=np.zeros((1, 1), np.float32)),
      fits.Column(name="STATUS", format="2E", array=np.zeros((1, 2), np.float32)),
    ],
    name="STATUS",
  )
  return fits.HDUList([primary, edges, fluxes, status])


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


def _region_xy(disk: _Disk, flare: SimFlare, days: float):
  """Pixel (x, y) of the flare's active region after ``days`` of rotation, or None."""
  import astropy.units as u
  from sunpy.sun.models import differential_rotation

  order = [flare.region] + [i for i in range(len(disk.active_regions)) if i != flare.region]
  for i in order:
    lat, lon = disk.active_regions[i]
    omega = differential_rotation(1 * u.day, lat * u.rad, model="howard").to_value(u.rad)
    x, y, z = _project(lat, lon + omega * days, disk.b0)
    if z > 0.3:
      return (
        disk.center[0] + x * disk.radius,
        disk.center[1] + y * disk.radius,
        lat,
        lon + omega * days,
      )
  return None


def _wrapped_days(t: datetime.datetime, t_real: datetime.datetime) -> float:
  days = (t - t_real).total_seconds() / 86400.0
  return (days + ROTATION_WRAP_DAYS / 2) % ROTATION_WRAP_DAYS - ROTATION_WRAP_DAYS / 2


def _aia_header(disk: _Disk, t_obs, exptime, counts, days, event_id):
  header = disk.header.copy()
  start = t_obs - datetime.timedelta(seconds=exptime / 2)
  header["DATE-OBS"] = start.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-4]
  header["T_OBS"] = t_obs.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-4] + "Z"
  header["T_REC"] = t_obs.strftime("%Y-%m-%dT%H:%M:%SZ")
  header["DATE"] = t_obs.strftime("%Y-%m-%dT%H:%M:%S")
  header["EXPTIME"] = round(float(exptime), 6)
  header["QUALITY"] = 0
  for key in (
    "DATAP01",
    "DATAP10",
    "DATAP25",
    "DATAP75",
    "DATAP90",
    "DATAP95",
    "DATAP98",
    "DATAP99",
    "DATASKEW",
    "DATAKURT",
    "DATACENT",
  ):
    header.remove(key, ignore_missing=True)
  header["DATAMIN"] = int(counts.min())
  header["DATAMAX"] = int(counts.max())
  header["DATAMEAN"] = round(float(counts.mean()), 2)
  header["DATAMEDN"] = round(float(np.median(counts)), 2)
  header["DATARMS"] = round(float(counts.std()), 2)
  header["SIMULATE"] = (True, "SIMULATED frame, not an AIA observation")
  header["SIMSRC"] = (REAL_FRAME, "real frame used (sunpy.data.test)")
  header["SIMROT"] = (round(days, 5), "differential rotation applied, days")
  header["SIMEVENT"] = (event_id, "simulated flare shown ('' = quiet)")
  header.add_history(SIMULATED_NOTE + ".")
  return header


def render_frame(disk: _Disk, frame: PlannedFrame, flares_by_id, t_real, rng):
  """(counts int16 [H, W], exposure s, rotation days) of one planned frame."""
  days = _wrapped_days(frame.time, t_real)
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
    excess = float(flare_excess(flare, np.array([np.datetime64(frame.time, "s")]))[0])
    site = _region_xy(disk, flare, days)
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


def _frame_name(t_obs: datetime.datetime) -> str:
  stamp = t_obs.strftime("%Y-%m-%dT%H_%M_%S.%f")[:-4]
  return f"aia.lev1.171A_{stamp}Z.image_lev1.sim"


def _fits_bytes(counts, header, style: str) -> bytes:
  from astropy.io import fits

  buffer = io.BytesIO()
  if style == "rice":
    hdul = fits.HDUList(
      [fits.PrimaryHDU(), fits.CompImageHDU(counts, header, compression_type="RICE_1")]
    )
  else:
    hdul = fits.HDUList([fits.PrimaryHDU(counts, header)])
  hdul.writeto(buffer)
  raw = buffer.getvalue()
  return gzip.compress(raw, mtime=0) if style == "gzip" else raw


def write_demo_archive(
  out_dir,
  *,
  num_frames: int = 480,
  months: int = 12,
  start: str = "2011-01-01",
  seed: int = 0,
  with_bad: bool = False,
  xrs_cadence_s: int = XRS_CADENCE_S,
) -> dict:
  """Writes the simulated manual directory (layout in the module docstring).

  Args:
    out_dir: directory to write (created; existing demo files are overwritten).
    num_frames: number of good AIA frames.
    months: calendar months covered, from ``start``.
    start: first month (ISO date; the day is ignored).
    seed: seed of everything random.
    with_bad: also write one deliberately bad file of each kind under
      ``aia/bad/`` (see ``write_bad_files``).
    xrs_cadence_s: GOES sample spacing (s); <= 240 keeps every window covered.

  Returns:
    A summary dict (also in ``demo_manifest.json``): counts per class, the
    frames and the bad files with the reason the reader should give.
  """
  if num_frames < months:
    raise ValueError(
      f"num_frames={num_frames} must be >= months={months} (one frame a month at least)."
    )
  from astropy.io import fits

  out = pathlib.Path(out_dir)
  t_start = datetime.datetime.fromisoformat(start).replace(
    day=1, hour=0, minute=0, second=0, microsecond=0
  )
  disk = _prepare_disk()
  flares, frames, bkg, starts = plan_archive(
    num_frames, t_start, months, seed, len(disk.active_regions)
  )
  flares_by_id = {f.event_id: f for f in flares}
  t_real = datetime.datetime.fromisoformat(disk.header["T_OBS"].rstrip("Z"))
  rng = np.random.default_rng([seed, 1])

  (out / "goes").mkdir(parents=True, exist_ok=True)
  for m in range(months):
    hdul = _xrs_hdul(starts[m], starts[m + 1], flares, bkg, starts[0], rng, xrs_cadence_s)
    hdul.writeto(out / "goes" / f"go15_{starts[m]:%Y%m}_simulated.fits", overwrite=True)
  _write_flare_csv(out / "flares.csv", flares, disk)

  records = []
  for i, frame in enumerate(frames):
    counts, exptime, days = render_frame(disk, frame, flares_by_id, t_real, rng)
    header = _aia_header(disk, frame.time, exptime, counts, days, frame.event_id)
    style = "rice" if i % 5 == 3 else "gzip" if i % 7 == 5 else "plain"
    name = _frame_name(frame.time) + (".fits.gz" if style == "gzip" else ".fits")
    path = out / "aia" / f"{frame.time:%Y/%m/%d}" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_fits_bytes(counts, header, style))
    records.append(
      dict(
        file=str(path.relative_to(out)),
        time=frame.time.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
        letter=frame.letter,
        flaring=frame.flaring,
        event_id=frame.event_id,
        flux=frame.flux,
        exposure=exptime,
        style=style,
      )
    )
  bad = write_bad_files(out, disk, frames, starts, rng) if with_bad else []
  counts = {c: sum(r["letter"] == c for r in records) for c in CLASSES}
  summary = dict(
    note=SIMULATED_NOTE,
    seed=seed,
    num_frames=len(records),
    months=[f"{s:%Y-%m}" for s in starts[:-1]],
    class_counts=counts,
    num_flares=len(flares),
    frames=records,
    bad_files=bad,
  )
  (out / "demo_manifest.json").write_text(json.dumps(summary, indent=1))
  del fits
  return summary


def _write_flare_csv(path: pathlib.Path, flares, disk: _Disk) -> None:
  """Flare list with the columns of final_flare_list_sc24.csv (+ 'simulated')."""
  import csv

  columns = [
    "",
    "event_starttime",
    "event_peaktime",
    "event_endtime",
    "goes_class_ind",
    "goes_class",
    "goes_class_val",
    "integrated_flux",
    "noaa_ar",
    "position_hgs",
    "hgs_lat",
    "hgs_lon",
    "hpc_x",
    "hpc_y",
    "simulated",
  ]
  t_real = datetime.datetime.fromisoformat(disk.header["T_OBS"].rstrip("Z"))
  rsun = float(disk.header["RSUN_OBS"])
  with path.open("w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(columns)
    for i, flare in enumerate(sorted(flares, key=lambda f: f.peak)):
      site = _region_xy(disk, flare, _wrapped_days(flare.peak, t_real))
      lat, lon = (site[2], site[3]) if site else (math.radians(-20.0), 0.0)
      x, y, _ = _project(lat, lon, disk.b0)
      fmt = "%Y-%m-%d %H:%M:%S"
      minutes = np.arange(-3 * flare.rise_min, 5 * flare.decay_min, 1.0)
      shape = np.where(
        minutes < 0,
        np.exp(-0.5 * (minutes / flare.rise_min) ** 2),
        np.exp(-minutes / flare.decay_min),
      )
      integrated = float((flare.peak_flux - flare.background) * shape.sum() * 60.0)
      lat_d, lon_d = math.degrees(lat), math.degrees(lon)
      writer.writerow(
        [
          i,
          flare.start.strftime(fmt),
          flare.peak.strftime(fmt),
          flare.end.strftime(fmt),
          flare.goes_class[0],
          flare.goes_class,
          repr(flare.peak_flux),
          f"{integrated:.1E}",
          11100 + flare.region,
          f"{'N' if lat_d >= 0 else 'S'}{abs(round(lat_d)):02d}{'W' if lon_d >= 0 else 'E'}{abs(round(lon_d)):02d}",
          round(lat_d, 1),
          round(lon_d, 1),
          x * rsun,
          y * rsun,
          "SIMULATED",
        ]
      )


def write_bad_files(out: pathlib.Path, disk: _Disk, frames, starts, rng) -> list[dict]:
  """One deliberately bad AIA file per kind under ``out/aia/bad/``.

  Returns:
    [{'file', 'reason'}]: the reason the dataset builder should report
    (aia.BadFrameError reasons, plus 'duplicate_time' and 'no_label').
  """
  from astropy.io import fits

  bad_dir = out / "aia" / "bad"
  bad_dir.mkdir(parents=True, exist_ok=True)
  t_real = datetime.datetime.fromisoformat(disk.header["T_OBS"].rstrip("Z"))
  quiet = [f for f in frames if not f.flaring]
  entries = []

  def make(name, reason, t_obs, edit=None, data_fn=None, raw_fn=None):
    frame = PlannedFrame(t_obs, "B", False, "", 2e-7)
    counts, exptime, days = render_frame(disk, frame, {}, t_real, rng)
    header = _aia_header(disk, t_obs, exptime, counts, days, "")
    data = counts if data_fn is None else data_fn(counts)
    if edit is not None:
      edit(header)
    raw = _fits_bytes(data, header, "plain")
    if raw_fn is not None:
      raw = raw_fn(raw)
    (bad_dir / name).write_bytes(raw)
    entries.append(dict(file=str((bad_dir / name).relative_to(out)), reason=reason))

  base = (quiet or frames)[len(quiet or frames) // 2].time
  hour = datetime.timedelta(hours=1)
  make("truncated.fits", "corrupt", base + hour, raw_fn=lambda r: r[: len(r) * 3 // 5])
  make(
    "not_fits.fits",
    "corrupt",
    base + hour,
    raw_fn=lambda r: b"SIMULATED bad file: this is not FITS\n" * 20,
  )
  make(
    "wavelength_193.fits",
    "wavelength",
    base + 2 * hour,
    edit=lambda h: h.update(WAVELNTH=193, WAVE_STR="193_THIN"),
  )
  make("quality_flag.fits", "quality", base + 3 * hour, edit=lambda h: h.update(QUALITY=131072))
  make("zero_exposure.fits", "exposure", base + 4 * hour, edit=lambda h: h.update(EXPTIME=0.0))
  make(
    "missing_wavelnth.fits", "missing_keyword", base + 5 * hour, edit=lambda h: h.remove("WAVELNTH")
  )

  def nan_disk(counts):
    data = counts.astype(np.float32)
    c = disk.center.astype(int)
    data[c[1] - 5 : c[1] + 5, c[0] - 5 : c[0] + 5] = np.nan
    return data

  make("nan_on_disk.fits", "non_finite", base + 6 * hour, data_fn=nan_disk)
  make("duplicate_time.fits", "duplicate_time", base)  # same T_OBS as a good frame
  # Before the GOES coverage and far from any flare: no label can be given.
  make("no_goes_coverage.fits", "no_label", starts[0] - datetime.timedelta(days=3))
  del fits
  return entries


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", required=True, help="manual directory to write")
  parser.add_argument("--num_frames", type=int, default=480)
  parser.add_argument("--months", type=int, default=12)
  parser.add_argument("--start", default="2011-01-01", help="first month (ISO date)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--with_bad", action="store_true", help="also write bad files under aia/bad/")
  parser.add_argument(
    "--xrs_cadence_s", type=int, default=XRS_CADENCE_S, help="GOES sample spacing"
  )
  args = parser.parse_args(argv)
  t0 = time_lib.time()
  summary = write_demo_archive(
    args.out,
    num_frames=args.num_frames,
    months=args.months,
    start=args.start,
    seed=args.seed,
    with_bad=args.with_bad,
    xrs_cadence_s=args.xrs_cadence_s,
  )
  print(
    f"Wrote a SIMULATED demo archive to {args.out} in {time_lib.time() - t0:.1f} s: "
    f"{summary['num_frames']} frames over {len(summary['months'])} months "
    f"({summary['months'][0]}..{summary['months'][-1]}), {summary['num_flares']} flares, "
    f"intended classes {summary['class_counts']}, {len(summary['bad_files'])} bad files."
  )


if __name__ == "__main__":
  main()
