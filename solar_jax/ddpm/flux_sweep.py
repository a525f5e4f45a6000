"""The flux sweep of a flux-conditioned generator: one seed across GOES fluxes A1 to X10.

Every image of the sweep starts from the same noise (image index 0 of the run's key,
``sampling.seed``) and follows the same sampler noise; only the requested flux
changes (``flux_sampling.sweep_fluxes``: evenly spaced in log10), so what changes along
the strip is what the model ties to the X-ray flux. ``--mode=sample`` writes it beside
a flux model's sample set, in ``<set>/sweep/``:

* ``sweep.png``: the strip in the sdoaia171 colour map, each image captioned with its
  requested class, on one log colour scale (data.clip_min to data.clip_max);
* ``sweep.npz``: images (DN/s [N,H,W,C]), fluxes (W m^-2), seed, the sampler settings;
* ``fits/sweep_<i>_<class>.fits``: the images with the sample set's headers
  (``GOESFLUX``, ``GOESCLS``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

from solar_jax import parallel, provenance, viz
from solar_jax import workdir as wd
from solar_jax.data import scaling
from solar_jax.ddpm import flux_sampling, synthetic_fits
from solar_jax.diffusion import samplers, schedules
from solar_jax.models import unet

SWEEP_DIR = "sweep"


def draw(config, params, fluxes) -> np.ndarray:
  """Images (model space, float32 [N,H,W,C]) of one seed at each flux (W m^-2)."""
  fluxes = np.asarray(fluxes, np.float64)
  side, channels = config.data.image_size, config.data.channels
  s = config.sampling
  images = samplers.sample_batch(
    samplers.LinenModelFn(unet.create_model(config)),
    params,
    schedules.get_schedule(config.diffusion),
    jax.random.key(s.seed),
    jnp.zeros(len(fluxes), jnp.int32),  # One image index: the same noise throughout.
    jnp.asarray(np.log10(fluxes), jnp.float32),
    jnp.asarray(s.guidance_scale, jnp.float32),
    jnp.asarray(s.eta, jnp.float32),
    spec=samplers.SamplerSpec.from_config(config),
    num_classes=len(config.data.classes),
    image_shape=(side, side, channels),
  )
  return np.asarray(jax.device_get(images), np.float32)


def write(config, out_dir, params, step: int, source: str = "", fluxes=None) -> epath.Path:
  """Draws the sweep and writes it under ``out_dir/sweep`` (process 0); returns that folder."""
  fluxes = flux_sampling.sweep_fluxes() if fluxes is None else np.asarray(fluxes, np.float64)
  lo, hi = config.data.clip_min, config.data.clip_max
  images = scaling.inverse(draw(config, params, fluxes), lo, hi)
  directory = epath.Path(out_dir) / SWEEP_DIR
  if not parallel.is_main_process():
    return directory
  (directory / "fits").mkdir(parents=True, exist_ok=True)
  info = samplers.recorded_settings(config)
  names = [flux_sampling.class_string(f) for f in fluxes]
  wd.write_npz(directory / "sweep.npz", images=images, fluxes=fluxes, step=np.int64(step), **info)
  viz.save_image_grid(
    images,
    np.arange(len(fluxes)),
    names,
    directory / "sweep.png",
    title=f"SYNTHETIC flux sweep, step {step}, seed {info['seed']}: GOES {names[0]} to {names[-1]}",
    vmin=lo,
    vmax=hi,
    ncols=len(fluxes),
  )
  if config.sampling.write_fits:
    obs, made_by = synthetic_fits.observer(), provenance.record()
    for i, (flux, name) in enumerate(zip(fluxes, names)):
      header = synthetic_fits.fits_header(
        config.data.image_size,
        step=step,
        seed=config.sampling.seed,
        class_name=name[0],
        index=i,
        sampler_info=info,
        obs=obs,
        clip=(lo, hi),
        source=source,
        made_by=made_by,
        flux=float(flux),
      )
      path = directory / "fits" / f"sweep_{i:02d}_{name}.fits"
      synthetic_fits.write_fits(path, images[i, ..., 0], header)
  return directory
