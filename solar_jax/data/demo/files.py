"""Files of the SIMULATED demo archive: AIA FITS, GOES XRS FITS, the flare list, bad files.

Every file says it is simulated: AIA headers carry ``SIMULATE = T`` (and
the real frame, rotation and event they were made from), GOES files
``SIMULATE = T`` and an ``ORIGIN`` that names the SDAC layout and the
simulation, and the flare list a ``simulated`` column. The images come from
``demo_render``, the schedule from ``demo_plan``.
"""

from __future__ import annotations

import csv
import datetime
import gzip
import io
import math
import pathlib

import numpy as np
from astropy.io import fits

import solar_jax.data.demo.plan as demo_plan
import solar_jax.data.demo.render as demo_render
from solar_jax.data import goes

SIMULATED_NOTE = "SIMULATED by solar_jax.data.demo from sunpy's real AIA 171 test frame"
XRS_CADENCE_S = 60

# ---------------------------------------------------------------- AIA ---


def frame_header(disk: demo_render.Disk, t_obs, exptime, counts, days, event_id):
  """The real frame's level-1 header with this frame's times, exposure and statistics."""
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
  header["SIMSRC"] = (demo_render.REAL_FRAME, "real frame used (sunpy.data.test)")
  header["SIMROT"] = (round(days, 5), "differential rotation applied, days")
  header["SIMEVENT"] = (event_id, "simulated flare shown ('' = quiet)")
  header.add_history(SIMULATED_NOTE + ".")
  return header


def frame_name(t_obs: datetime.datetime) -> str:
  """JSOC-style file name (without suffix) of a frame observed at ``t_obs``."""
  stamp = t_obs.strftime("%Y-%m-%dT%H_%M_%S.%f")[:-4]
  return f"aia.lev1.171A_{stamp}Z.image_lev1.sim"


def fits_bytes(counts, header, style: str) -> bytes:
  """The FITS file of one image: 'plain', 'gzip' (whole file) or 'rice' (tile-compressed HDU)."""
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


def write_frames(out: pathlib.Path, disk: demo_render.Disk, frames, flares, rng) -> list[dict]:
  """Renders and writes every planned frame under ``out/aia/YYYY/MM/DD/``.

  Some files are RICE-compressed, some gzipped, the rest plain, so the
  reader meets every kind. Returns one manifest record per frame.
  """
  flares_by_id = {f.event_id: f for f in flares}
  records = []
  for i, frame in enumerate(frames):
    counts, exptime, days = demo_render.render_frame(disk, frame, flares_by_id, rng)
    header = frame_header(disk, frame.time, exptime, counts, days, frame.event_id)
    style = "rice" if i % 5 == 3 else "gzip" if i % 7 == 5 else "plain"
    name = frame_name(frame.time) + (".fits.gz" if style == "gzip" else ".fits")
    path = out / "aia" / f"{frame.time:%Y/%m/%d}" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(fits_bytes(counts, header, style))
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
  return records


# --------------------------------------------------------------- GOES ---


def write_goes_files(goes_dir: pathlib.Path, starts, flares, bkg, rng, cadence_s: int) -> None:
  """One GOES XRS file per month (``starts`` has one entry more than months)."""
  goes_dir.mkdir(parents=True, exist_ok=True)
  for m in range(len(starts) - 1):
    hdul = xrs_hdul(starts[m], starts[m + 1], flares, bkg, starts[0], rng, cadence_s)
    hdul.writeto(goes_dir / f"go15_{starts[m]:%Y%m}_simulated.fits", overwrite=True)


def xrs_hdul(month_start, month_end, flares, bkg, t0, rng, cadence_s: int) -> fits.HDUList:
  """A GOES XRS file in the SDAC FITS layout that sunpy.timeseries reads."""
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
      excess = demo_plan.flare_excess(flare, times)
      xrsb += excess
      xrsa += 0.15 * excess
  primary = fits.PrimaryHDU()
  h = primary.header
  h["DATE"] = (month_start.strftime("%d/%m/%Y"), "file creation date (simulated)")
  h["NUMEXT"] = 3
  h["TELESCOP"] = ("GOES 15", "spacecraft (SIMULATED series)")
  h["INSTRUME"] = "X-ray Detector"
  h["OBJECT"] = "Sun"
  # read_xrs decides the scaling from ORIGIN: SDAC layout, SWPC scale (0.7 x true).
  h["ORIGIN"] = ("SDAC/GSFC layout, SIMULATED by solar_jax", "not real GOES data")
  h["DATE-OBS"] = (month_start.strftime("%d/%m/%Y"), "date of first obs.(DD/MM/YYYY)")
  h["TIME-OBS"] = "00:00:00.000"
  h["DATE-END"] = (month_end - datetime.timedelta(seconds=1)).strftime("%d/%m/%Y")
  h["TIME-END"] = "23:59:00.000"
  h["SIMULATE"] = (True, "SIMULATED: not a real GOES observation")
  h.add_comment(SIMULATED_NOTE.replace("AIA 171 test frame", "flare schedule") + ".")
  h.add_comment("Fluxes are on the SWPC (operational) scale, 0.7 x true, like SDAC files.")
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
  # The plan's fluxes are true; SDAC files of GOES 8-15 publish 0.7 of XRS-B.
  flux = np.stack([goes.SWPC_XRSB_SCALE * xrsb, xrsa], axis=-1).astype(np.float32)[None]
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


# --------------------------------------------------------- flare list ---


def write_flare_csv(path: pathlib.Path, flares, disk: demo_render.Disk) -> None:
  """Flare list with the columns of final_flare_list_sc24.csv (+ 'simulated')."""
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
  rsun = float(disk.header["RSUN_OBS"])
  with path.open("w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(columns)
    for i, flare in enumerate(sorted(flares, key=lambda f: f.peak)):
      site = demo_render.region_xy(disk, flare, demo_render.wrapped_days(flare.peak, disk.time))
      lat, lon = (site[2], site[3]) if site else (math.radians(-20.0), 0.0)
      x, y, _ = demo_render.project(lat, lon, disk.b0)
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
          repr(goes.class_to_flux(flare.goes_class)),  # as published
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


# ---------------------------------------------------------- bad files ---


def write_bad_files(out: pathlib.Path, disk: demo_render.Disk, frames, starts, rng) -> list[dict]:
  """One deliberately bad AIA file per kind under ``out/aia/bad/``.

  Returns:
    [{'file', 'reason'}]: the reason the dataset builder should report
    (aia.BadFrameError reasons, plus 'duplicate_time').
  """
  bad_dir = out / "aia" / "bad"
  bad_dir.mkdir(parents=True, exist_ok=True)
  quiet = [f for f in frames if not f.flaring]
  entries = []

  def make(name, reason, t_obs, edit=None, data_fn=None, raw_fn=None):
    frame = demo_plan.PlannedFrame(t_obs, "B", False, "", 2e-7)
    counts, exptime, days = demo_render.render_frame(disk, frame, {}, rng)
    header = frame_header(disk, t_obs, exptime, counts, days, "")
    data = counts if data_fn is None else data_fn(counts)
    if edit is not None:
      edit(header)
    raw = fits_bytes(data, header, "plain")
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
  # (A frame outside the GOES coverage is no longer bad: it is stored with NaN GOES
  # facts and gets no label from policies that need them.)
  return entries
