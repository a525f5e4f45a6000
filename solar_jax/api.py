"""The Python API: ``solar_jax.DiffusionPipeline`` and ``solar_jax.generate``.

For people who did not train. A pipeline loads a model once (an export of
``--mode=export``, a directory ``save_pretrained`` wrote, a workdir or its
``checkpoints/``, or the name of a model shipped with the package, ``"demo"``), and
samples from it as often as asked; each sampler setting and batch shape compiles once
per process (``samplers.sample_batch`` is jitted on them), so a second call with the
same settings runs at once, whatever its seed, classes or guidance value::

  import solar_jax
  pipe = solar_jax.DiffusionPipeline.from_pretrained("demo")  # shipped, SIMULATED data
  out = pipe(classes="X", num_images=4, seed=1)  # the recommended sampler
  out.images.shape        # (4, 32, 32) float32, DN/s
  m = out.maps()[0]       # a sunpy map titled "SYNTHETIC 171.0 Angstrom ..."
  pipe.save_pretrained("my_model")  # weights, config, recommended sampler, card

``solar_jax.generate(path, ...)`` is one load and one call. Nothing is written but by
``save_pretrained``; ``--mode=sample`` is the way to write npz, PNG and FITS files.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
from collections.abc import Mapping, Sequence

import jax
import numpy as np
from etils import epath

from solar_jax import checks, configuration, errors, parallel, provenance
from solar_jax import files as sj_files
from solar_jax import workdir as wd
from solar_jax.data import scaling
from solar_jax.ddpm import export, flux_sampling, sample
from solar_jax.diffusion import samplers
from solar_jax.models import unet

# Models shipped with the package (package data under solar_jax/pretrained/), by name.
# How they were made: their MODEL_CARD.md and scripts/demo_model.sh.
PRETRAINED = {"demo": "pretrained/demo"}
SAMPLER_KEYS = ("sampler", "num_steps", "eta", "guidance_scale")


def _sampler_text(settings: Mapping) -> str:
  """'ddim, 25 steps, eta 1, guidance 1' from sampler settings."""
  return (
    f"{settings['sampler']}, {settings['num_steps']} steps, eta {float(settings['eta']):g}, "
    f"guidance {float(settings['guidance_scale']):g}"
  )


@dataclasses.dataclass(frozen=True, repr=False)
class Samples:
  """What a pipeline call (and ``generate``) returns.

  Attributes:
    images: float32 [N, H, W], DN/s (the inverse of the data transform).
    labels: int32 [N], indices into ``class_names``.
    class_names: the GOES classes of the model, in label order.
    step: the training step of the weights.
    settings: sampler, num_steps, eta, guidance_scale, seed (as recorded in samples.npz).
    source: the directory the weights came from.
    clip: data.clip_min/max, the range of ``images`` in DN/s.
    simulated: the model was trained on the SIMULATED demo archive, not observations.
    fluxes: float64 [N], the GOES 1-8 Å flux [W m^-2] each image of a flux model was
      conditioned on (None for a class model).
  """

  images: np.ndarray
  labels: np.ndarray
  class_names: tuple[str, ...]
  step: int
  settings: dict
  source: str
  clip: tuple[float, float]
  simulated: bool = False
  fluxes: np.ndarray | None = None

  def counts(self) -> dict:
    """{class: number of images}, in label order (classes with none left out)."""
    found = np.bincount(self.labels, minlength=len(self.class_names))
    return {c: int(k) for c, k in zip(self.class_names, found) if k}

  def __repr__(self) -> str:
    n, h, w = self.images.shape
    return (
      f"Samples({n} SYNTHETIC images {h}x{w} DN/s, classes {self.counts()}, step "
      f"{self.step}, {_sampler_text(self.settings)}, seed {self.settings['seed']}"
      + (", SIMULATED training data" if self.simulated else "")
      + ")"
    )

  def fits_headers(self) -> list:
    """One FITS header per image: the one ``--mode=sample`` writes into its files (with
    ``SIMULATE = T`` when the model learnt from the simulated demo archive)."""
    obs = sample.observer()
    headers = []
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
        flux=None if self.fluxes is None else float(self.fluxes[i]),
      )
      if self.simulated:
        header["SIMULATE"] = (True, "model trained on the SIMULATED demo archive")
      headers.append(header)
    return headers

  def maps(self) -> list:
    """One ``sunpy.map.Map`` (a GenericMap, DETECTOR = 'SYNTHETIC') per image.

    The header is ``fits_headers()``'s; the plot settings are those sunpy gives an AIA
    171 Å map (the sdoaia171 colour map, an asinh stretch), which it cannot give a file
    that is not an AIA observation (``sample.fits_header``).
    """
    import sunpy.map  # About 2 s to import: only when maps are asked for.
    from astropy.visualization import AsinhStretch, ImageNormalize

    out = []
    for image, header in zip(self.images, self.fits_headers()):
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
  """``(config, export.json or None)`` of the weights: an export's (checked whole,
  ``sample.check_export``), or the config.json of a workdir or of the parent of its
  checkpoints/."""
  if (path / sample.EXPORT_META).exists():
    meta, config = sample.check_export(path)
    return config, meta
  for candidate in (path / "config.json", path.parent / "config.json"):
    if candidate.exists():
      return configuration.from_json(candidate), None
  raise errors.MissingInputError(
    f"{path}: no config.json there or in its parent; give a workdir, its checkpoints/, "
    "an export directory (--mode=export, save_pretrained) or the name of a shipped model "
    f"({', '.join(map(repr, PRETRAINED))})."
  )


def resolve(path_or_name) -> epath.Path:
  """The directory of ``path_or_name``: an existing path (``~`` and ``$VARS`` expand),
  else the package data of a shipped model (``PRETRAINED``).

  Raises:
    errors.MissingInputError: neither (names the path and the shipped models).
  """
  text = os.fspath(path_or_name)
  path = wd.absolute(os.path.expandvars(os.path.expanduser(text)))
  if path.exists() or text not in PRETRAINED:
    if not path.exists():
      raise errors.MissingInputError(
        f"{text}: no such directory, and not the name of a model shipped with solar_jax "
        f"({', '.join(map(repr, PRETRAINED))})."
      )
    return path
  packaged = importlib.resources.files("solar_jax").joinpath(PRETRAINED[text])
  if not packaged.is_dir():
    raise errors.MissingInputError(
      f"the shipped model {text!r} is missing from this installation ({packaged}): "
      "reinstall solar_jax, or rebuild it with scripts/demo_model.sh."
    )
  return epath.Path(os.fspath(packaged))


class DiffusionPipeline:
  """A class-conditional DDPM of AIA 171 Å images, loaded once, sampled many times.

  ``from_pretrained(path)`` loads it; calling it samples (``__call__``);
  ``save_pretrained(dir)`` writes a self-describing directory that ``from_pretrained``
  reads back to the same samples.

  Attributes:
    config: the model's config (its ``sampling`` fields are the defaults of a call
      where no recommended sampler was recorded).
    params: the EMA weights (on the pipeline's mesh).
    step: the training step of the weights.
    source: the directory they came from.
    recommended_sampler: sampler, num_steps, eta, guidance_scale (and chosen_by): a
      call's defaults; recorded with the weights (export.json), else the config's.
    model_card: MODEL_CARD.md of the source ('' for a workdir: ``save_pretrained``
      writes one).
    exported: the source's export.json (None for a workdir).
  """

  def __init__(self, config, params, step: int, *, source, recommended_sampler=None,
               model_card: str = "", exported: dict | None = None, mesh=None):  # fmt: skip
    self.config = config
    self.params = params
    self.step = int(step)
    self.source = os.fspath(source)
    self.recommended_sampler = dict(recommended_sampler or export.recommended_sampler(config, None))
    self.model_card = model_card
    self.exported = exported
    self.mesh = mesh or parallel.create_mesh(config.mesh)

  @classmethod
  def from_pretrained(cls, path_or_name) -> DiffusionPipeline:
    """Loads a model: an export (``--mode=export``, ``save_pretrained``), a workdir or
    its ``checkpoints/`` (the newest readable checkpoint), or a shipped model's name
    (``PRETRAINED``: ``"demo"``).

    Raises:
      errors.MissingInputError: no config.json or no checkpoint at the path.
      errors.DamagedFileError: an export that is incomplete or damaged (names the file).
      errors.InputMismatchError: a checkpoint trained with another model or data.
    """
    path = resolve(path_or_name)
    config, meta = _config_for(path)
    config.sampling.checkpoint = ""  # The weights are the path's, wherever it moves.
    mesh = parallel.create_mesh(config.mesh)
    with jax.set_mesh(mesh):
      params, step = sample.load_inference_params(path, config, mesh=mesh)
    recommended = (meta or {}).get("recommended_sampler")
    if recommended is None and meta is None:  # A workdir: its evaluation's, if any.
      source = path.parent if path.name == "checkpoints" else path
      recommended = export.recommended_sampler(config, export.evaluation_record(source))
    card = path / "MODEL_CARD.md"
    return cls(
      config,
      params,
      step,
      source=path,
      recommended_sampler=recommended,
      model_card=card.read_text() if card.exists() else "",
      exported=meta,
      mesh=mesh,
    )

  @property
  def class_names(self) -> tuple[str, ...]:
    return tuple(self.config.data.classes)

  @property
  def simulated(self) -> bool:
    """Trained on the SIMULATED demo archive (``config.provenance.simulated``)."""
    return bool(self.config.provenance.get("simulated"))

  def __repr__(self) -> str:
    size = self.config.data.image_size
    return (
      f"DiffusionPipeline({size}x{size} AIA 171 A, classes {' '.join(self.class_names)}, "
      f"step {self.step}, {unet.count_params(self.params):,} parameters, sampler "
      f"{_sampler_text(self.recommended_sampler)}"
      + (", SIMULATED training data" if self.simulated else "")
      + f", from {self.source})"
    )

  def sampling_config(self, **overrides):
    """The config of one call: the recommended sampler, then ``overrides`` (None: kept),
    checked (``checks.validate``: one line naming an impossible field)."""
    config = self.config.copy_and_resolve_references()
    s = config.sampling
    for key in SAMPLER_KEYS:
      s[key] = self.recommended_sampler.get(key, s[key])
    for key, value in overrides.items():
      if value is not None:
        s[key] = value
    checks.validate(config, num_devices=jax.device_count(), num_processes=jax.process_count())
    return config

  def __call__(
    self,
    classes: str | Sequence[str] | Mapping[str, int] | None = None,
    num_images: int = 4,
    *,
    seed: int = 0,
    sampler: str | None = None,
    num_steps: int | None = None,
    eta: float | None = None,
    guidance_scale: float | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    flux=None,
  ) -> Samples:
    """Samples ``num_images`` images of each class in ``classes`` (or of each ``flux``).

    Args:
      classes: one GOES class ('X'), several (['M', 'X']), counts ({'M': 2, 'X': 8}),
        or None for every class of the model.
      num_images: images per class when ``classes`` gives no counts.
      seed: sampling seed; with the same settings the same seed gives the same images
        (image i depends on the seed, i and its class only).
      sampler, num_steps, eta, guidance_scale: the recommended sampler's where None
        (``recommended_sampler``); batch_size: the config's ``sampling.batch_size``.
      progress: show a progress bar over the images.
      flux: a flux model only: one GOES 1-8 Å flux or several, in W m^-2 or as class
        strings ('M2.5'); ``num_images`` images of each. Without it a flux model draws
        each class's images at fluxes by the config's ``sampling.flux_draw``.

    Raises:
      errors.ConfigError: an unknown class or an impossible sampler setting (one line);
        ``flux`` asked of a class model, or with ``classes``.
    """
    config = self.sampling_config(
      seed=int(seed),
      sampler=sampler,
      num_steps=num_steps,
      eta=eta,
      guidance_scale=guidance_scale,
      batch_size=batch_size,
    )
    labels, fluxes = self._request(config, classes, num_images, flux)
    with jax.set_mesh(self.mesh):
      images = sample.generate(
        config, self.params, sample.conditions(labels, fluxes), mesh=self.mesh, progress=progress
      )
    clip = (float(config.data.clip_min), float(config.data.clip_max))
    return Samples(
      images=scaling.inverse(np.asarray(images), *clip)[..., 0].astype(np.float32),
      labels=labels,
      class_names=self.class_names,
      step=self.step,
      settings=samplers.recorded_settings(config),
      source=self.source,
      clip=clip,
      simulated=self.simulated,
      fluxes=fluxes,
    )

  def _request(self, config, classes, num_images: int, flux):
    """(labels, fluxes or None) of one call (``sample.request``)."""
    flux_sampling.check_model_kind(config, flux is not None, f"the model in {self.source}")
    if flux is None:
      return sample.request(config, _counts(classes, num_images, self.class_names))[1:]
    if classes is not None:
      raise errors.ConfigError("give classes or flux, not both: a flux names its class.")
    listed = [flux] if isinstance(flux, str | int | float) else list(flux)
    config.sampling.fluxes = tuple(v for v in listed for _ in range(int(num_images)))
    return sample.request(config)[1:]

  def save_pretrained(self, directory) -> epath.Path:
    """Writes the model as an export (``--mode=export``'s layout) that ``from_pretrained``
    reads back to the same samples: ``params/`` (orbax), ``config.json``, ``export.json``
    (step, file sizes, what the weights mean, the recommended sampler, who exported and
    who saved them) and ``MODEL_CARD.md`` (the source's; else written from the config).
    """
    directory = wd.absolute(os.path.expandvars(os.path.expanduser(os.fspath(directory))))
    params = jax.tree.map(np.asarray, jax.device_get(self.params))
    extra = {
      k: v
      for k, v in (self.exported or {}).items()
      if k not in ("step", "format", "files", "meaning", "trained_on")
    }
    extra.update(recommended_sampler=self.recommended_sampler, saved_by=provenance.record())
    extra.setdefault("exported_by", extra["saved_by"])
    sample.export_params(directory, params, self.config, self.step, extra=extra)
    card = self.model_card or self._new_card(params, extra["exported_by"])
    sj_files.write_text(directory / "MODEL_CARD.md", card)
    return directory

  def _new_card(self, params, made_by: dict) -> str:
    source = epath.Path(self.source)
    workdir = source.parent if source.name == "checkpoints" else source
    return export.model_card(
      self.config,
      self.step,
      unet.count_params(params),
      export.dataset_summary(self.config),
      self.source,
      made_by=made_by,
      sampler=self.recommended_sampler,
      evaluation=export.evaluation_record(workdir),
      training=export.training_record(workdir),
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
  flux=None,
) -> Samples:
  """Samples ``n`` images of each class in ``classes`` (or of each ``flux``, a flux
  model's: W m^-2 or class strings such as 'M2.5'): ``DiffusionPipeline`` loaded
  from ``workdir_or_checkpoint`` and called once (hold a pipeline to sample again
  without loading again).

  Args:
    workdir_or_checkpoint: a run's workdir, its ``checkpoints/``, an export
      (``--mode=export``, ``save_pretrained``) or a shipped model's name ("demo").
    classes, n: as ``DiffusionPipeline.__call__``'s ``classes`` and ``num_images``.
    sampler, num_steps, eta, guidance_scale, batch_size, seed, progress: as
      ``DiffusionPipeline.__call__``'s (None: the recommended sampler's).

  Returns:
    ``Samples`` (arrays, plus ``.maps()`` for sunpy maps).

  Raises:
    errors.MissingInputError: no config.json or no checkpoint at the path.
    errors.DamagedFileError: an export that is incomplete or damaged (names the file).
    errors.ConfigError: an unknown class, an impossible sampler setting, or a config.json
      that does not describe a config (names the field).
  """
  pipe = DiffusionPipeline.from_pretrained(workdir_or_checkpoint)
  return pipe(
    classes,
    n,
    seed=seed,
    sampler=sampler,
    num_steps=num_steps,
    eta=eta,
    guidance_scale=guidance_scale,
    batch_size=batch_size,
    progress=progress,
    flux=flux,
  )
