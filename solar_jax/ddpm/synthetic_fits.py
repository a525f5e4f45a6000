"""Synthetic AIA 171 Å FITS files: the header of a sampled image, and its writer.

FITS geometry follows the dataset's convention (``solar_jax.data.aia``): the
disk is centred in the image with radius ``0.40 * image_size`` pixels
(``aia.default_disk_radius``), solar north towards increasing rows. The
header places a synthetic observer at Earth on a fixed date,
``SYNTHETIC_DATE`` (2014-01-01, solar cycle 24 maximum): ``DSUN_OBS`` and
``HGLT_OBS`` are Earth's at that date, ``RSUN_OBS`` follows from them, and
``CDELT = RSUN_OBS / disk_radius_px`` makes the disk radius in pixels match
the data. No reader can take the file for an observation: ``DETECTOR =
'SYNTHETIC'`` (sunpy's map name and plot title start with it), ``INSTRUME =
'SYNTHETIC AIA_3'``, ``IMG_TYPE = 'SYNTHETIC'``, ``SYNTHETIC = T``. sunpy reads an
INSTRUME that starts with "AIA" as an ``AIAMap``, whose colour map is named from
TELESCOP + DETECTOR + WAVELNTH ('sdosynthetic171', which does not exist: ``peek()``,
``plot()`` and ``.cmap`` would raise); with this INSTRUME it is a ``GenericMap``, which
plots with no arguments (grey, linear) under the SYNTHETIC title. No keyword gives both
that title and the AIA colours by default, so the COMMENT says to pass
``cmap='sdoaia171'``, and ``solar_jax.generate(...).maps()`` sets it. The reader of the dataset
(``data.aia.read_frame``) refuses such files. ``CLIPMIN``/``CLIPMAX`` give the
intensity range the model can produce (DN/s), ``MODELSTP``, ``CKPTSRC``,
``SAMPLER`` ... ``GUIDANCE``, ``SEED`` and ``GOESCLS`` how the image was made. Everything is a function of the config, the seed and
the parameters, so a fixed seed writes the same images. What wrote a file is in its header
(``provenance.record``): ``DATE`` (UTC), ``SJ_VER``, ``SJCOMMIT`` (git, '+dirty' with local
changes, 'unknown' outside a checkout) and the command line in ``HISTORY``. FITS headers hold ASCII only:
``CKPTSRC`` is the checkpoint's path percent-encoded (``urllib.parse.unquote`` gives it
back), so a workdir such as ``wörk dir`` works.
"""

from __future__ import annotations

import io
import math
import urllib.parse
from collections.abc import Mapping

import numpy as np
from astropy.io import fits

from solar_jax import provenance
from solar_jax import workdir as wd
from solar_jax.data import aia
from solar_jax.ddpm.flux_sampling import class_string

SYNTHETIC_DATE = "2014-01-01T00:00:00.000"
RSUN_REF_M = 696_000_000.0  # Photospheric radius used in AIA headers (m).


def observer(date: str = SYNTHETIC_DATE) -> dict:
  """Earth's distance (m), heliographic latitude (deg) and solar radius (arcsec) at ``date``."""
  from sunpy.coordinates import get_earth  # About 2 s to import: only when writing FITS.

  earth = get_earth(date)
  dsun = float(earth.radius.to_value("m"))
  return {
    "dsun_m": dsun,
    "hglt_deg": float(earth.lat.to_value("deg")),
    "rsun_arcsec": math.degrees(math.asin(RSUN_REF_M / dsun)) * 3600.0,
  }


def fits_header(
  image_size: int,
  *,
  step: int,
  seed: int,
  class_name: str,
  index: int,
  sampler_info: Mapping,
  obs: Mapping | None = None,
  clip: tuple[float, float] = (1.0, 3000.0),
  source: str = "",
  made_by: Mapping | None = None,
  flux: float | None = None,
):
  """An AIA 171 Å level-1.5-like header for a synthetic ``image_size``² image in DN/s.

  ``clip`` is data.clip_min/max (the range the model's output maps to), ``source`` the
  checkpoint the model came from, ``made_by`` the ``provenance.record()`` of the process
  writing the file (default: now): ``DATE`` (UTC), ``SJ_VER``, ``SJCOMMIT`` and the
  command in ``HISTORY`` cards (percent-encoded where not printable ASCII). ``flux``: a flux
  model's condition [W m^-2] (``GOESFLUX``; ``GOESCLS`` is then its class, e.g. 'M2.5').
  """
  class_name, conditioned, flux_cards = _condition(class_name, flux)
  obs = obs or observer()
  radius_px = aia.default_disk_radius(image_size)
  cdelt = obs["rsun_arcsec"] / radius_px
  h = fits.Header()
  cards = [
    ("TELESCOP", "SDO/AIA", "synthetic: see SYNTHETIC"),
    ("INSTRUME", "SYNTHETIC AIA_3", "not AIA_3: sunpy reads a GenericMap"),
    ("DETECTOR", "SYNTHETIC", "not an AIA detector: shown in every sunpy title"),
    ("IMG_TYPE", "SYNTHETIC", "diffusion-model sample (AIA: LIGHT/DARK)"),
    ("WAVELNTH", 171, "[angstrom]"),
    ("WAVEUNIT", "angstrom", ""),
    ("WAVE_STR", "171_THIN", ""),
    ("EXPTIME", 1.0, "[s] data are DN/s (exposure normalised)"),
    ("BUNIT", "DN/s", ""),
    ("LVL_NUM", 1.5, "centred, north up, as the training data"),
    ("DATE-OBS", SYNTHETIC_DATE, "fixed synthetic date, not observed"),
    ("T_OBS", SYNTHETIC_DATE, ""),
    ("CTYPE1", "HPLN-TAN", ""),
    ("CTYPE2", "HPLT-TAN", ""),
    ("CUNIT1", "arcsec", ""),
    ("CUNIT2", "arcsec", ""),
    ("CRPIX1", (image_size + 1) / 2.0, ""),  # FITS pixels are 1-based.
    ("CRPIX2", (image_size + 1) / 2.0, ""),
    ("CRVAL1", 0.0, ""),
    ("CRVAL2", 0.0, ""),
    ("CDELT1", cdelt, "[arcsec/pixel] RSUN_OBS / R_SUN"),
    ("CDELT2", cdelt, ""),
    ("CROTA2", 0.0, ""),
    ("RSUN_REF", RSUN_REF_M, "[m]"),
    ("RSUN_OBS", obs["rsun_arcsec"], "[arcsec]"),
    ("R_SUN", radius_px, "[pixel] disk radius"),
    ("DSUN_OBS", obs["dsun_m"], "[m] Earth at DATE-OBS"),
    ("HGLN_OBS", 0.0, "[deg]"),
    ("HGLT_OBS", obs["hglt_deg"], "[deg]"),
    ("QUALITY", 0, ""),
    # 9 letters: written as a HIERARCH card (sunpy reads it as meta["synthetic"]).
    ("HIERARCH SYNTHETIC", True, "made by a diffusion model, not observed"),
    ("MODELSTP", int(step), "training step of the model"),
    # Percent-encoded: FITS cards are ASCII. No comment: a long path continues on CONTINUE.
    ("CKPTSRC", urllib.parse.quote(str(source), safe="/:@~+=,"), ""),
    ("CLIPMIN", float(clip[0]), "[DN/s] lowest value the model can produce"),
    ("CLIPMAX", float(clip[1]), "[DN/s] highest value the model can produce"),
    ("SEED", int(seed), "sampling seed"),
    ("IMGINDEX", int(index), "image index in the sample run"),
    ("GOESCLS", class_name, "GOES class the image was conditioned on"),
    *flux_cards,
    ("SAMPLER", str(sampler_info["sampler"]), ""),
    ("NSTEPS", int(sampler_info["num_steps"]), "sampler steps"),
    ("ETA", float(sampler_info["eta"]), "DDIM eta"),
    ("GUIDANCE", float(sampler_info["guidance_scale"]), "classifier-free guidance"),
    ("ORIGIN", "solar_jax", ""),
  ]
  for key, value, comment in cards:
    h[key] = (value, comment)
  for comment in (
    f"Synthetic SDO/AIA 171 A image generated by the solar_jax diffusion model (step {step}, "
    f"seed {seed}, image {index}), conditioned on {conditioned}. Not an observation.",
    "CKPTSRC: the checkpoint the model was read from (percent-encoded). CLIPMIN/CLIPMAX: "
    "DN/s range.",
    "sunpy.map.Map reads this file as a GenericMap titled SYNTHETIC (grey); for the AIA "
    "171 A colours plot with cmap='sdoaia171'.",
  ):
    h.add_comment(comment)
  _add_provenance(h, made_by or provenance.record())
  return h


def _condition(class_name: str, flux: float | None):
  """(GOESCLS, the phrase of the comment, the GOESFLUX card) of a class or a flux."""
  if flux is None:
    return class_name, f"GOES class {class_name}", ()
  name = class_string(flux)
  card = ("GOESFLUX", float(flux), "[W m^-2] 1-8 A flux conditioned on")
  return name, f"GOES 1-8 A flux {flux:.3g} W m^-2 ({name})", (card,)


def _add_provenance(h, made_by: Mapping) -> None:
  """What wrote the file: DATE (UTC), SJ_VER, SJCOMMIT, and the command in HISTORY cards."""
  h["DATE"] = (made_by["date"].removesuffix("Z"), "[UTC] file written")
  h["SJ_VER"] = (made_by["version"], "solar_jax version")
  h["SJCOMMIT"] = (made_by["commit"], "git commit")
  for line in provenance.history_lines(made_by["command"]):
    h.add_history(line)


def write_fits(path, image_dns: np.ndarray, header) -> None:
  """Writes one 2-d image with ``header`` (through epath, so gs:// works)."""
  buffer = io.BytesIO()
  fits.PrimaryHDU(np.asarray(image_dns, np.float32), header=header).writeto(buffer)
  wd.write_bytes(path, buffer.getvalue())
