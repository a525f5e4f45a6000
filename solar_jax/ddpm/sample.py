"""--mode=sample: synthetic AIA 171 Å images per GOES class, written as npz, PNG and FITS.

Output, under ``workdir/samples/<step>-<key>/`` (``workdir.sample_key``: the sampler,
its steps, eta, guidance and seed, and the checkpoint's source when it is not this
workdir's, so runs with other settings never overwrite each other):

* ``samples.npz``: images (float32 [N,H,W,C], DN/s), labels (int32 [N]),
  class_names, seed, guidance_scale, num_steps, eta, sampler, step.
* ``grid.png``: up to 8 images per class in the sdoaia171 colour map.
* ``fits/synthetic_<index>_<class>.fits``: one file per image that plain sunpy reads
  and plots with no arguments (``sunpy.map.Map(f).peek()``), titled
  "SYNTHETIC 171.0 Angstrom ...".
* ``COMPLETE``: written last (JSON: step, images per class, FITS files); a set
  without it was cut short, and the readers (``workdir.latest_samples``) refuse it.

The model comes from ``workdir/checkpoints`` or, with ``sampling.checkpoint=PATH``,
from another run's workdir, its ``checkpoints/`` directory, or an inference
checkpoint written by ``--mode=export`` (``export_params``).

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
import json
import math
import os
import urllib.parse
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from astropy.io import fits
from etils import epath

from solar_jax import checkpointing, configuration, errors, parallel, provenance, viz
from solar_jax import workdir as wd
from solar_jax.data import aia, input_pipeline, scaling, splits
from solar_jax.ddpm import train_state
from solar_jax.diffusion import samplers, schedules
from solar_jax.models import unet

# How --mode=sample decides its counts: sampling.per_class, or top the training
# counts up to the largest class (capped by sampling.max_images).
SAMPLE_COUNTS = ("fixed", "balance")
SYNTHETIC_DATE = "2014-01-01T00:00:00.000"
COMPLETE = wd.SAMPLES_COMPLETE  # Written last into a sample set (sample_and_write).
# Host copies of the images a sample run holds at once (model space, DN/s, the npz
# buffer), each float32 [N, H, W, C]: what the memory check multiplies by.
_HOST_COPIES = 4
RSUN_REF_M = 696_000_000.0  # Photospheric radius used in AIA headers (m).
GRID_PER_CLASS = 8


# ------------------------------------------------------------ counts ---


def _largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
  """Integer counts summing to ``total`` proportional to ``weights`` (Hamilton's method)."""
  exact = weights / weights.sum() * total
  counts = np.floor(exact).astype(np.int64)
  order = np.argsort(-(exact - counts), kind="stable")
  counts[order[: total - counts.sum()]] += 1
  return counts


def sample_counts(config: ml_collections.ConfigDict, counts=None) -> np.ndarray:
  """Images to sample per class (int64 [num_classes]).

  Args:
    config: reads ``data.classes`` and ``sampling.{counts, per_class, max_images}``.
    counts: overrides the config: a sequence with one count per class, or a
      mapping ``{class name: count}`` (missing classes get 0).

  With ``sampling.counts = 'balance'`` the training split's class counts are
  topped up to the largest class; when that needs more than
  ``sampling.max_images`` images, the top-ups are scaled down proportionally.
  """
  classes = tuple(config.data.classes)
  if counts is None and config.sampling.counts == "balance":
    labels = input_pipeline.make_for_inference(config.data, "train", images=False)["label"]
    train = np.bincount(labels, minlength=len(classes))[: len(classes)].astype(np.int64)
    need = train.max() - train
    cap = int(config.sampling.max_images)
    if need.sum() > cap:
      need = _largest_remainder(need.astype(np.float64), cap)
    logging.info("Training class counts %s; sampling %s to balance them.", train, need)
    result = need
  elif counts is None:
    result = np.asarray(config.sampling.per_class, dtype=np.int64)
  elif isinstance(counts, Mapping):
    unknown = sorted(set(counts) - set(classes))
    if unknown:
      raise errors.ConfigError(
        f"unknown class {unknown[0]!r}: data.classes are {', '.join(classes)}."
      )
    result = np.array([counts.get(c, 0) for c in classes], dtype=np.int64)
  else:
    result = np.asarray(counts, dtype=np.int64).reshape(-1)
  if result.shape != (len(classes),) or np.any(result < 0):
    raise errors.ConfigError(
      f"sample counts {result.tolist()} need one count >= 0 for each of data.classes="
      f"{classes} (sampling.per_class)."
    )
  if result.sum() == 0:
    raise errors.ConfigError(
      "nothing to sample: every class count is 0 (sampling.per_class, or the training "
      "split is already balanced under sampling.counts='balance')."
    )
  check_memory(config, result)
  return result


def host_memory_bytes() -> int:
  """This machine's physical memory in bytes."""
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(config, counts) -> None:
  """Refuses, before anything is allocated, counts whose images do not fit in host memory.

  Raises:
    errors.ConfigError: naming the counts, the estimate and the memory there is.
  """
  n = int(np.sum(counts))
  side, channels = config.data.image_size, config.data.channels
  need = n * side * side * channels * 4 * _HOST_COPIES
  have = host_memory_bytes()
  if need > have // 2:
    raise errors.ConfigError(
      f"sampling {n} images ({', '.join(map(str, np.asarray(counts).tolist()))} per class, "
      f"{side}x{side}x{channels}) needs about {need / 2**30:.1f} GiB of host memory, more "
      f"than half of this machine's {have / 2**30:.1f} GiB: lower sampling.per_class (or "
      "sampling.max_images); several runs with other sampling.seed values add up."
    )


# -------------------------------------------------------------- FITS ---


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
):
  """An AIA 171 Å level-1.5-like header for a synthetic ``image_size``² image in DN/s.

  ``clip`` is data.clip_min/max (the range the model's output maps to), ``source`` the
  checkpoint the model came from, ``made_by`` the ``provenance.record()`` of the process
  writing the file (default: now): ``DATE`` (UTC), ``SJ_VER``, ``SJCOMMIT`` and the
  command in ``HISTORY`` cards (percent-encoded where not printable ASCII).
  """
  obs = obs or observer()
  radius_px = aia.default_disk_radius(image_size)
  cdelt = obs["rsun_arcsec"] / radius_px
  centre = (image_size + 1) / 2.0  # FITS pixels are 1-based.
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
    ("CRPIX1", centre, ""),
    ("CRPIX2", centre, ""),
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
    f"seed {seed}, image {index}), conditioned on GOES class {class_name}. Not an observation.",
    "CKPTSRC: the checkpoint the model was read from (percent-encoded). CLIPMIN/CLIPMAX: "
    "DN/s range.",
    "sunpy.map.Map reads this file as a GenericMap titled SYNTHETIC (grey); for the AIA "
    "171 A colours plot with cmap='sdoaia171'.",
  ):
    h.add_comment(comment)
  _add_provenance(h, made_by or provenance.record())
  return h


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


# ---------------------------------------------------------- sampling ---


EXPORT_META = "export.json"  # Marks an inference checkpoint (export_params).


def checkpoint_source(config, workdir) -> tuple[str, epath.Path]:
  """Where the model comes from: ``('export', dir)`` or ``('workdir', dir)``.

  ``sampling.checkpoint`` may name an inference checkpoint (``--mode=export``), a
  workdir, or a workdir's ``checkpoints/``; empty means ``workdir``.

  Raises:
    errors.MissingInputError: the path is none of these (names what it looked for).
  """
  given = config.sampling.checkpoint
  path = wd.absolute(given or workdir)
  if (path / EXPORT_META).exists():
    return "export", path
  if path.name == "checkpoints" and wd.steps(path):
    return "workdir", path.parent
  if given and not wd.steps(wd.checkpoints_dir(path)):
    raise errors.MissingInputError(
      f"sampling.checkpoint={given}: found no {EXPORT_META} (an inference checkpoint of "
      "--mode=export), no checkpoints/<step>/ (a workdir) and no <step>/ in a directory "
      "named checkpoints."
    )
  return "workdir", path


def load_inference_params(workdir, config, mesh=None) -> tuple[Any, int]:
  """Returns ``(ema_params, step)`` from the newest readable checkpoint of the model.

  The model is ``checkpoint_source``'s: this workdir's, or ``sampling.checkpoint``'s.

  Raises:
    errors.MissingInputError: no (readable) checkpoint there.
    errors.InputMismatchError: it was trained with another model, schedule or data.
  """
  kind, source = checkpoint_source(config, workdir)
  mesh = mesh or parallel.create_mesh(config.mesh)
  abstract_state, _ = train_state.abstract_train_state(config, mesh)
  if kind == "export":
    return _load_exported(source, config, abstract_state.ema_params)
  directory = wd.require_checkpoint(source)
  checkpointer = checkpointing.Checkpointer(
    source, keep=config.training.keep_checkpoints, read_only=True
  )
  try:
    checkpointer.check_config(config)
    restored = checkpointer.restore(abstract_state)
  finally:
    checkpointer.close()
  if restored is None:
    raise errors.MissingInputError(f"no readable checkpoint in {directory}.")
  state, meta = restored
  return state.ema_params, int(meta["step"])


def export_params(directory, params, config, step: int, extra: dict | None = None) -> epath.Path:
  """Writes an inference checkpoint: ``params/`` (orbax), ``config.json``, ``export.json``.

  ``export.json`` comes last and marks the export complete: it holds the step, the size
  of every file under ``params/`` and the config fields that give the weights their
  meaning (``check_export`` compares them), and ``extra`` (the recommended sampler, who
  exported). ``sampling.checkpoint=<directory>`` (and ``solar_jax.generate``) sample from it.
  """
  directory = wd.absolute(directory)
  target = directory / "params"
  directory.mkdir(parents=True, exist_ok=True)
  (directory / EXPORT_META).unlink(missing_ok=True)  # Incomplete until written again, last.
  if wd.is_link(target):
    target.unlink()  # A planted link: replaced, its target left alone.
  elif target.exists():
    target.rmtree()  # A re-export of the same step replaces the old one.
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(target, params)
    checkpointer.wait_until_finished()
  wd.write_text(directory / "config.json", config.to_json())
  files = {os.fspath(p.relative_to(directory)): p.stat().length for p in wd.files(target)}
  meta = {
    "step": int(step),
    "format": "orbax StandardSave",
    "files": files,
    "meaning": checkpointing.parameter_meaning(config.to_dict()),
    "trained_on": splits.training_record(config.to_dict()),  # The generator's data.
    **(extra or {}),
  }
  wd.write_json(directory / EXPORT_META, meta)
  return directory


def check_export(directory) -> tuple[dict, ml_collections.ConfigDict]:
  """``(export.json, config)`` of a whole inference checkpoint, read without the weights.

  Raises:
    errors.DamagedFileError: export.json cut, config.json or params/ missing, a weights
      file missing or truncated, or a config.json that is not the one exported with the
      weights (one line naming the file; export again).
    errors.ConfigError: config.json is not a config (names the field).
  """
  directory = epath.Path(directory)
  again = "export again (--mode=export in the run's workdir)"
  meta_path = directory / EXPORT_META
  try:
    meta = json.loads(meta_path.read_text())
    int(meta["step"])
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise errors.DamagedFileError(
      f"{meta_path} is damaged ({type(e).__name__}: {e}); {again}."
    ) from None
  config_path = directory / "config.json"
  if not config_path.exists():
    raise errors.DamagedFileError(f"{config_path} is missing: the export is incomplete; {again}.")
  params_dir = directory / "params"
  if not params_dir.is_dir():
    raise errors.DamagedFileError(f"{params_dir} is missing: the export is incomplete; {again}.")
  for name, size in dict(meta.get("files") or {}).items():  # Exports before sizes: none.
    path = directory / name
    have = path.stat().length if path.exists() else None
    if have != size:
      state = "missing" if have is None else f"truncated ({have} of {size} bytes)"
      raise errors.DamagedFileError(f"{path} is {state}: the weights are damaged; {again}.")
  config = configuration.from_json(config_path)
  if "meaning" in meta:
    have = checkpointing.parameter_meaning(config.to_dict())
    changed = sorted(k for k in have if have[k] != meta["meaning"].get(k, have[k]))
    if changed:
      details = "; ".join(f"{k}={have[k]!r}, exported {meta['meaning'][k]!r}" for k in changed)
      raise errors.DamagedFileError(
        f"{config_path} is not the config the weights were exported with ({details}); "
        f"restore it or {again}."
      )
  return meta, config


def check_export_data(directory, config) -> dict:
  """``export.json`` of an inference checkpoint whose config and data agree with ``config``.

  Raises:
    errors.InputMismatchError: the weights were trained with another model, schedule
      or data (``checkpointing.parameter_meaning``, ``data.splits.training_record``);
      one line naming the fields.
  """
  meta, stored = check_export(directory)
  have, want = (checkpointing.parameter_meaning(c.to_dict()) for c in (stored, config))
  changed = [f"{k}={have.get(k)!r} there, {want[k]!r} here" for k in want if have.get(k) != want[k]]
  changed += splits.record_changes(
    meta.get("trained_on") or splits.training_record(stored.to_dict()),
    splits.training_record(config.to_dict()),
  )
  if changed:
    raise errors.InputMismatchError(
      f"the inference checkpoint {directory} was made with another config or other data "
      f"({'; '.join(changed)}); run with its config.json (--config={directory / 'config.json'})."
    )
  return meta


def _load_exported(directory, config, abstract_params) -> tuple[Any, int]:
  meta = check_export_data(directory, config)
  try:
    with ocp.StandardCheckpointer() as checkpointer:
      params = checkpointer.restore(directory / "params", abstract_params)
  except Exception as e:  # noqa: BLE001 - orbax/TensorStore: any failure is a damaged file.
    if errors.environment_failure(e) is not None:
      raise
    first = (str(e).strip().splitlines() or [""])[0][:200]
    raise errors.DamagedFileError(
      f"{directory / 'params'} cannot be read as the weights of its config.json "
      f"({type(e).__name__}: {first}); export again (--mode=export in the run's workdir)."
    ) from None
  return params, int(meta["step"])


def generate(config, params, labels, *, mesh=None, progress: bool = False) -> np.ndarray:
  """Samples images in the model's [-1, 1] space for ``labels`` (float32 [N,H,W,C])."""
  s = config.sampling
  spec = samplers.SamplerSpec.from_config(config)
  return samplers.sample_images(
    samplers.LinenModelFn(unet.create_model(config)),
    params,
    schedules.get_schedule(config.diffusion),
    jax.random.key(s.seed),
    labels,
    spec=spec,
    num_classes=len(config.data.classes),
    image_shape=(config.data.image_size, config.data.image_size, config.data.channels),
    batch_size=s.batch_size,
    guidance_scale=s.guidance_scale,
    eta=s.eta,
    sharding=None if mesh is None else parallel.data_sharding(mesh),
    progress=progress,
  )


def _grid_subset(labels: np.ndarray, per_class: int) -> np.ndarray:
  return np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)])


def _write_fits_files(config, fits_dir, images_dns, labels, step, info, source) -> None:
  """One FITS file per image; files of an earlier run of these settings are removed first."""
  class_names = tuple(config.data.classes)
  fits_dir.mkdir(parents=True, exist_ok=True)
  for stale in fits_dir.glob("synthetic_*.fits"):
    stale.unlink()
  obs, made_by = observer(), provenance.record()
  for i, (image, label) in enumerate(zip(images_dns, labels)):
    name = class_names[label]
    header = fits_header(
      config.data.image_size,
      step=step,
      seed=config.sampling.seed,
      class_name=name,
      index=i,
      sampler_info=info,
      obs=obs,
      clip=(config.data.clip_min, config.data.clip_max),
      source=source,
      made_by=made_by,
    )
    write_fits(fits_dir / f"synthetic_{i:05d}_{name}.fits", image[..., 0], header)


def sample_and_write(config, workdir, params, step, *, mesh=None, counts=None) -> epath.Path:
  """``draw_and_write``'s output directory."""
  return draw_and_write(config, workdir, params, step, mesh=mesh, counts=counts)[0]


def draw_and_write(config, workdir, params, step, *, mesh=None, counts=None, key=None):
  """Samples per-class images with ``params``; writes them under workdir/samples/<step>-<key>.

  The one way a sample set is made: ``--mode=sample``, the end of training and the
  classifier's synthetic pools (``sampling.write_fits=False``) all come through here.

  Args:
    config: the resolved config (reads data, diffusion, model, sampling, mesh).
    workdir: the run directory (local or gs://).
    params: model (EMA) parameters.
    step: the model's training step (names the directory, goes in the headers).
    mesh: a mesh from ``parallel.create_mesh``; default all devices per config.mesh.
    counts: per-class counts overriding the config (see ``sample_counts``).
    key: the set's folder key; default ``wd.sample_key(config)``.

  Returns:
    (the output directory, images in DN/s [N,H,W,C], labels [N]). Only process 0
    writes; every process samples and returns the images.
  """
  class_names = tuple(config.data.classes)
  per_class = sample_counts(config, counts)
  labels = np.repeat(np.arange(len(class_names), dtype=np.int32), per_class)
  mesh = mesh or parallel.create_mesh(config.mesh)
  main = parallel.is_main_process()
  out_dir = wd.samples_dir(workdir, step, key or wd.sample_key(config))
  logging.info("Sampling %d images %s at step %d.", len(labels), per_class.tolist(), step)
  images = generate(config, params, labels, mesh=mesh, progress=main and config.logging.progress)
  images_dns = scaling.inverse(images, config.data.clip_min, config.data.clip_max)
  if not main:
    return out_dir, images_dns, labels

  s = config.sampling
  info = samplers.recorded_settings(config)
  out_dir.mkdir(parents=True, exist_ok=True)
  (out_dir / COMPLETE).unlink(missing_ok=True)  # Incomplete until every file is rewritten.
  wd.write_npz(
    out_dir / "samples.npz",
    images=images_dns.astype(np.float32),
    labels=labels,
    class_names=np.array(class_names),
    step=np.int64(step),
    **{k: np.asarray(v) for k, v in info.items()},
  )
  subset = _grid_subset(labels, GRID_PER_CLASS)
  viz.save_image_grid(
    images_dns[subset],
    labels[subset],
    class_names,
    out_dir / "grid.png",
    title=f"SYNTHETIC samples, step {step}: {s.sampler}, {info['num_steps']} steps, "
    f"guidance {s.guidance_scale:g}",
    vmin=config.data.clip_min,
    vmax=config.data.clip_max,
    ncols=GRID_PER_CLASS,
  )
  if s.write_fits:
    source = os.fspath(checkpoint_source(config, workdir)[1])
    _write_fits_files(config, out_dir / "fits", images_dns, labels, step, info, source)
  wd.write_json(
    out_dir / COMPLETE,
    {
      "step": int(step),
      "images": int(len(labels)),
      "per_class": dict(zip(class_names, map(int, per_class))),
      "fits_files": int(len(labels)) if s.write_fits else 0,
    },
  )
  logging.info("Wrote %d samples to %s.", len(labels), out_dir)
  return out_dir, images_dns, labels


def run(config: ml_collections.ConfigDict, workdir) -> epath.Path:
  """--mode=sample: loads the newest EMA parameters from ``workdir`` and writes samples."""
  counts = sample_counts(config)  # Fails on bad counts before loading anything.
  mesh = parallel.create_mesh(config.mesh)
  with jax.set_mesh(mesh):
    params, step = load_inference_params(workdir, config, mesh=mesh)
    return sample_and_write(config, workdir, params, step, mesh=mesh, counts=counts)
