"""Where a stored frame lies on the sky, and the sunpy Map it makes again (``to_map``).

A record of ``sdo_aia171`` 2.4.0 or later keeps, beside its image, what places that
image on the sky (``FIELDS``): the observer of the file it came from (HGLN_OBS,
HGLT_OBS, DSUN_OBS, and HAEX/HAEY/HAEZ_OBS, which sunpy's ``AIAMap`` prefers), the
solar radius (RSUN_OBS, RSUN_REF), the file's DATE-OBS, and the stored grid's CDELT
and CRPIX. The grid itself is fixed by the reader (``aia``, 'Geometry'): the disk
centre, helioprojective (0, 0), at the array centre, solar north up, square pixels of
``cdelt = RSUN_OBS / disk radius`` arcsec. As a FITS WCS: CTYPE HPLN-TAN / HPLT-TAN,
CRVAL 0, CRPIX ``(S + 1) / 2`` on both axes, CDELT ``cdelt``, PC the identity. Its
obstime is the frame time (``time``: T_OBS, the reference date of ``AIAMap``), and the
observer is placed as ``AIAMap`` places it for the file (heliocentric mean ecliptic
when the header has it, else Stonyhurst), so the Map's WCS and observer are those of
``sunpy.map.Map(file)`` resampled onto the grid.

An image made coarser by block means (``data.image_size`` below the stored side,
``solar_jax.data.load(..., image_size=)``) keeps the centre and the orientation;
``to_map`` scales CDELT by the block factor and puts CRPIX at the new centre.

Datasets before 2.4.0 store none of this: ``to_map`` says so in one line and
everything else reads them as before.
"""

from __future__ import annotations

import math

import numpy as np

# The first dataset version whose records keep the geometry.
SINCE = "2.4.0"

FIELDS = {
  "rsun_obs": "solar radius seen by the observer, arcsec (RSUN_OBS; the grid's scale)",
  "rsun_ref": "solar radius, m (RSUN_REF)",
  "dsun_obs": "observer to Sun centre, m (DSUN_OBS)",
  "hgln_obs": "observer's Stonyhurst longitude, degrees (HGLN_OBS; NaN: not in the file)",
  "hglt_obs": "observer's Stonyhurst latitude, degrees (HGLT_OBS; NaN: not in the file)",
  "haex_obs": "observer's heliocentric mean ecliptic x, m (HAEX_OBS; NaN: not in the file)",
  "haey_obs": "observer's heliocentric mean ecliptic y, m (HAEY_OBS; NaN: not in the file)",
  "haez_obs": "observer's heliocentric mean ecliptic z, m (HAEZ_OBS; NaN: not in the file)",
  "cdelt": "arcsec per stored pixel along both axes (CDELT1 = CDELT2 = RSUN_OBS / disk radius)",
  "crpix": "FITS (1-based) pixel of the disk centre on both axes (CRPIX1 = CRPIX2 = (S + 1) / 2)",
  "date_obs": "DATE-OBS of the file (exposure start), ISO UTC",
}
TEXT_FIELDS = ("date_obs",)


def record_fields(observer: dict, image_size: int, disk_radius_px: float) -> dict:
  """The ``FIELDS`` values of one frame (``aia.Frame.observer`` on a grid of that size)."""
  values = {k: np.float64(observer[k]) for k in FIELDS if k in observer and k not in TEXT_FIELDS}
  values.update(
    cdelt=np.float64(observer["rsun_obs"] / disk_radius_px),
    crpix=np.float64((image_size + 1) / 2.0),
    date_obs=str(observer["date_obs"]),
  )
  return values


def stored(features) -> tuple[str, ...]:
  """``FIELDS`` if records with these keys (a dataset's features) keep them, else ()."""
  return tuple(FIELDS) if all(k in features for k in FIELDS) else ()


def _text(value) -> str:
  value = value.item() if isinstance(value, np.ndarray) else value
  return value.decode() if isinstance(value, bytes) else str(value)


def _grid(record, image: np.ndarray) -> tuple[float, float]:
  """(CDELT, 0-based reference pixel) of ``image``: the stored grid, or its block means."""
  side = image.shape[0] if image.ndim == 2 else 0
  stored_side = 2.0 * float(record["crpix"]) - 1.0
  factor = stored_side / max(side, 1)
  if not side or image.shape[1] != side or abs(factor - round(factor)) > 1e-9:
    raise ValueError(
      f"image of shape {image.shape}: to_map needs a square image whose side divides the "
      f"stored side {stored_side:g} (record field crpix={float(record['crpix'])!r})."
    )
  return float(record["cdelt"]) * round(factor), (side - 1) / 2.0


def to_map(record, *, image=None):
  """A sunpy Map of one record, its WCS the frame's grid (``sunpy.map.sources.AIAMap``).

  Args:
    record: one frame as a dict: an ``sdo_aia171`` example in NumPy (``tfds.as_numpy``),
      one row of ``solar_jax.data.load(..., as_numpy=True)`` (``{k: v[i] for k, v in
      arrays.items()}``) or one element of its tf.data form made NumPy. It needs
      ``time``, ``exposure``, ``image`` (unless given) and the ``FIELDS``.
    image: the pixels, [S, S] or [S, S, 1] in DN/s (default ``record['image']``); a side
      below the stored one is read as block means of the stored pixels.

  Raises:
    ValueError: in one line, for a record of a dataset before 2.4.0 (no geometry), an
      observer the file did not give, or an image that is not the stored grid.
  """
  missing = [k for k in FIELDS if k not in record]
  if missing:
    raise ValueError(
      f"record has no frame geometry (no {', '.join(missing)}): sdo_aia171 datasets before "
      f"{SINCE} do not store it; rebuild the dataset (tfds build sdo_aia171 "
      "--imports=tfds_builders) to make sunpy Maps of its frames."
    )
  pixels = np.asarray(record["image"] if image is None else image, dtype=np.float32)
  pixels = pixels[..., 0] if pixels.ndim == 3 and pixels.shape[-1] == 1 else pixels
  cdelt, centre = _grid(record, pixels)

  import astropy.units as u
  import sunpy.map
  from astropy.coordinates import SkyCoord

  obstime = _text(record["time"])
  rsun = float(record["rsun_ref"]) * u.m
  disk_centre = SkyCoord(
    0 * u.arcsec,
    0 * u.arcsec,
    frame="helioprojective",
    observer=_observer(record, obstime),
    obstime=obstime,
    rsun=rsun,
  )
  header = sunpy.map.make_fitswcs_header(
    pixels,
    disk_centre,
    reference_pixel=[centre, centre] * u.pix,
    scale=[cdelt, cdelt] * u.arcsec / u.pix,
    telescope="SDO/AIA",
    observatory="SDO",
    instrument="AIA_3",
    detector="AIA",
    wavelength=171 * u.AA,
    exposure=float(record["exposure"]) * u.s,
    unit=u.DN / u.s,
  )
  header.update(
    {"rsun_obs": float(record["rsun_obs"]), "date-obs": _text(record["date_obs"]), "t_obs": obstime}
  )
  return sunpy.map.Map(pixels, header)


def _observer(record, obstime: str):
  """The observer as sunpy's AIAMap places it: HAEX/HAEY/HAEZ_OBS first, else Stonyhurst."""
  import astropy.units as u
  from astropy.coordinates import CartesianRepresentation, HeliocentricMeanEcliptic, SkyCoord

  hae = [float(record[k]) for k in ("haex_obs", "haey_obs", "haez_obs")]
  lon, lat = float(record["hgln_obs"]), float(record["hglt_obs"])
  if all(math.isfinite(v) for v in hae):
    where = SkyCoord(
      *hae,
      unit=u.m,
      representation_type=CartesianRepresentation,
      frame=HeliocentricMeanEcliptic,
      obstime=obstime,
    )
    return where.heliographic_stonyhurst
  if math.isnan(lon) or math.isnan(lat):
    raise ValueError(
      f"record {_text(record.get('source', b'?'))} has no observer (hgln_obs={lon}, "
      f"hglt_obs={lat}, no HAE position: its FITS header gave none); no sunpy Map is made."
    )
  radius = float(record["dsun_obs"]) * u.m
  return SkyCoord(
    lon * u.deg, lat * u.deg, radius, frame="heliographic_stonyhurst", obstime=obstime
  )
