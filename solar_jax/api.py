"""``solar_jax.generate``: synthetic AIA 171 Å images from a trained model, in Python.

For people who did not train: point it at a workdir (or its ``checkpoints/``) or at
an inference checkpoint from ``--mode=export``; it reads the ``config.json`` there,
samples, and returns the images in DN/s with their labels, and sunpy maps on demand::

  import solar_jax
  out = solar_jax.generate("runs/quickstart", classes="X", n=4, sampler="ddim", num_steps=25)
  out.images.shape        # (4, 64, 64) float32, DN/s
  m = out.maps()[0]       # a sunpy map titled "SYNTHETIC 171.0 Angstrom ..."

Nothing is written; ``--mode=sample`` is the way to write npz, PNG and FITS files.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

import jax
import numpy as np

from solar_jax import checks, configuration, errors, parallel
from solar_jax import workdir as wd
from solar_jax.data import scaling
from solar_jax.ddpm import sample
from solar_jax.diffusion import samplers


@dataclasses.dataclass(frozen=True)
class Samples:
  """What ``generate`` returns.

  Attributes:
    images: float32 [N, H, W], DN/s (the inverse of the data transform).
    labels: int32 [N], indices into ``class_names``.
    class_names: the GOES classes of the model, in label order.
    step: the training step of the weights.
    settings: sampler, num_steps, eta, guidance_scale, seed (as recorded in samples.npz).
    source: the directory the weights came from.
    clip: data.clip_min/max, the range of ``images`` in DN/s.
  """

  images: np.ndarray
  labels: np.ndarray
  class_names: tuple[str, ...]
  step: int
  settings: dict
  source: str
  clip: tuple[float, float]

  def maps(self) -> list:
    """One ``sunpy.map.Map`` (a GenericMap, DETECTOR = 'SYNTHETIC') per image.

    The header is the one ``--mode=sample`` writes into its FITS files; the plot settings
    are those sunpy gives an AIA 171 Å map (the sdoaia171 colour map, an asinh stretch),
    which it cannot give a file that is not an AIA observation (``sample.fits_header``).
    """
    import sunpy.map  # About 2 s to import: only when maps are asked for.
    from astropy.visualization import AsinhStretch, ImageNormalize

    obs = sample.observer()
    out = []
    for i, (image, label) in enumerate(zip(self.images, self.labels)):
      header = sample.fits_header(
        image.shape[0],
        step=self.step,
        seed=self.settings["seed"],
        class_name=self.class_names[label],
        index=i,
        sampler_info=self.settings,
        obs=obs,
        clip=self.clip,
        source=self.source,
      )
      m = sunpy.map.Map(np.asarray(image, np.float32), header)
      m.plot_settings["cmap"] = "sdoaia171"
      m.plot_settings["norm"] = ImageNormalize(stretch=AsinhStretch(0.01), clip=False)
      out.append(m)
    return out


def _counts(classes, n: int, class_names: Sequence[str]) -> dict:
  """{class: count} from a class name, a list of names, or a mapping of counts."""
  if classes is None:
    return {c: n for c in class_names}
  if isinstance(classes, str):
    return {classes: n}
  if isinstance(classes, Mapping):
    return dict(classes)
  return {c: n for c in classes}


def _config_for(path):
  """The config.json beside the weights: in the directory, or in its parent (checkpoints/).

  An export (``--mode=export``) is checked whole first (``sample.check_export``).
  """
  if (path / sample.EXPORT_META).exists():
    return sample.check_export(path)[1]
  for candidate in (path / "config.json", path.parent / "config.json"):
    if candidate.exists():
      return configuration.from_json(candidate)
  raise errors.MissingInputError(
    f"{path}: no config.json there or in its parent; give a workdir, its checkpoints/ "
    "or an export directory (--mode=export)."
  )


def generate(
  workdir_or_checkpoint,
  classes: str | Sequence[str] | Mapping[str, int] | None = None,
  n: int = 4,
  *,
  sampler: str | None = None,
  num_steps: int | None = None,
  eta: float | None = None,
  guidance_scale: float | None = None,
  seed: int = 0,
  batch_size: int | None = None,
  progress: bool = False,
) -> Samples:
  """Samples ``n`` images of each class in ``classes`` from a trained model.

  Args:
    workdir_or_checkpoint: a run's workdir, its ``checkpoints/``, or an inference
      checkpoint written by ``--mode=export`` (``~`` and ``$VARS`` expand).
    classes: one GOES class ('X'), several (['M', 'X']), counts ({'M': 2, 'X': 8}),
      or None for every class of the model.
    n: images per class when ``classes`` gives no counts.
    sampler, num_steps, eta, guidance_scale, batch_size: override the run's
      ``sampling.*`` settings (see configs/default.py); None keeps them.
    seed: sampling seed; with the same settings the same seed gives the same images.
    progress: show a progress bar over the sampler steps.

  Returns:
    ``Samples`` (arrays, plus ``.maps()`` for sunpy maps).

  Raises:
    errors.MissingInputError: no config.json or no checkpoint at the path.
    errors.DamagedFileError: an export that is incomplete or damaged (names the file).
    errors.ConfigError: an unknown class, an impossible sampler setting, or a config.json
      that does not describe a config (names the field).
  """
  path = wd.absolute(os.path.expandvars(os.path.expanduser(os.fspath(workdir_or_checkpoint))))
  config = _config_for(path)
  s = config.sampling
  s.checkpoint, s.seed = os.fspath(path), int(seed)
  for field, value in (
    ("sampler", sampler),
    ("num_steps", num_steps),
    ("eta", eta),
    ("guidance_scale", guidance_scale),
    ("batch_size", batch_size),
  ):
    if value is not None:
      s[field] = value
  checks.validate(config, num_devices=jax.device_count(), num_processes=jax.process_count())
  per_class = sample.sample_counts(config, _counts(classes, n, config.data.classes))
  labels = np.repeat(np.arange(len(per_class), dtype=np.int32), per_class)
  mesh = parallel.create_mesh(config.mesh)
  with jax.set_mesh(mesh):
    params, step = sample.load_inference_params(path, config, mesh=mesh)
    images = sample.generate(config, params, labels, mesh=mesh, progress=progress)
  clip = (float(config.data.clip_min), float(config.data.clip_max))
  images_dns = scaling.inverse(np.asarray(images), *clip)[..., 0].astype(np.float32)
  return Samples(
    images=images_dns,
    labels=labels,
    class_names=tuple(config.data.classes),
    step=step,
    settings=samplers.recorded_settings(config),
    source=os.fspath(path),
    clip=clip,
  )
