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
* ``COMPLETE``: written last (JSON: step, images per class, FITS files, a digest of
  the request); a set without it was cut short, and the readers
  (``workdir.latest_samples``) refuse it.
* ``batches/``: while the set is drawn, the finished batches (``sample_set``): FITS,
  grid and per-batch npz are written as each batch finishes, and the same command
  continues a killed run from its last finished batch, to the same bytes.
* ``sweep/``: a flux model's flux sweep, one seed from A1 to X10 (``flux_sweep``).

The model comes from ``workdir/checkpoints`` or, with ``sampling.checkpoint=PATH``,
from another run's workdir, its ``checkpoints/`` directory, or an inference
checkpoint written by ``--mode=export`` (``export_params``).

FITS headers: ``synthetic_fits`` (geometry, the SYNTHETIC keywords, provenance).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from solar_jax import checkpointing, configuration, errors, parallel
from solar_jax import workdir as wd
from solar_jax.data import input_pipeline, scaling, splits
from solar_jax.ddpm import flux_sampling, flux_sweep, sample_set, train_state
from solar_jax.ddpm.synthetic_fits import (  # noqa: F401 - the FITS writer, re-exported
  SYNTHETIC_DATE,
  fits_header,
  observer,
  write_fits,
)
from solar_jax.diffusion import samplers, schedules
from solar_jax.models import unet

# How --mode=sample decides its counts: sampling.per_class, or top the training
# counts up to the largest class (capped by sampling.max_images).
SAMPLE_COUNTS = ("fixed", "balance")
COMPLETE = sample_set.COMPLETE  # Written last into a sample set (sample_set.Writer).
# Host copies of the images a sample run holds at once (model space, DN/s, the npz
# buffer), each float32 [N, H, W, C]: what the memory check multiplies by.
_HOST_COPIES = 4


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


def _sampler_args(config, params, labels, mesh, progress) -> dict:
  """The arguments of ``samplers.sample_images`` / ``sample_batches`` for ``config``."""
  s = config.sampling
  return dict(
    model_fn=samplers.LinenModelFn(unet.create_model(config)),
    params=params,
    schedule=schedules.get_schedule(config.diffusion),
    key=jax.random.key(s.seed),
    labels=labels,
    spec=samplers.SamplerSpec.from_config(config),
    num_classes=len(config.data.classes),
    image_shape=(config.data.image_size, config.data.image_size, config.data.channels),
    batch_size=s.batch_size,
    guidance_scale=s.guidance_scale,
    eta=s.eta,
    sharding=None if mesh is None else parallel.data_sharding(mesh),
    progress=progress,
  )


def request(config, counts=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
  """``(per_class, labels [N], fluxes [N] W m^-2 or None)`` a sample set draws.

  A class model: ``sample_counts`` and no fluxes. A flux model: ``sampling.fluxes`` in
  their order (unless ``counts`` are given), else ``sample_counts`` with one flux per image
  by ``sampling.flux_draw`` (``flux_sampling``).
  """
  if flux_sampling.is_flux_model(config) and config.sampling.fluxes and counts is None:
    labels, fluxes = flux_sampling.requested(config, None)
    per_class = flux_sampling.counts_of(config, labels)
    check_memory(config, per_class)
    return per_class, labels, fluxes
  per_class = sample_counts(config, counts)
  labels = np.repeat(np.arange(len(config.data.classes), dtype=np.int32), per_class)
  if not flux_sampling.is_flux_model(config):
    return per_class, labels, None
  return per_class, labels, flux_sampling.per_class_fluxes(config, per_class)


def conditions(labels, fluxes) -> np.ndarray:
  """What the sampler conditions on: class labels, or a flux model's log10 fluxes."""
  return labels if fluxes is None else np.log10(np.asarray(fluxes, np.float64)).astype(np.float32)


def generate(
  config, params, labels, *, mesh=None, progress: bool = False, skip=(), on_batch=None
) -> np.ndarray:
  """Samples images in the model's [-1, 1] space for ``labels`` (float32 [N,H,W,C]):
  class indices, or a flux model's log10 fluxes (``conditions``).

  The batches (``samplers.batch_layout``) in ``skip`` are not drawn (left 0);
  ``on_batch(g, start, images)`` is called as batch ``g`` (images ``start ...``) arrives.
  """
  args = _sampler_args(config, params, labels, mesh, progress)
  out = np.zeros((len(labels), *args["image_shape"]), np.float32)
  for g, start, images in samplers.sample_batches(**args, skip=skip):
    out[start : start + len(images)] = images
    if on_batch is not None:
      on_batch(g, start, images)
  return out


def sample_and_write(config, workdir, params, step, *, mesh=None, counts=None) -> epath.Path:
  """``draw_and_write``'s output directory."""
  return draw_and_write(config, workdir, params, step, mesh=mesh, counts=counts)[0]


def draw_and_write(config, workdir, params, step, *, mesh=None, counts=None, key=None):
  """Samples per-class images with ``params``; writes them under workdir/samples/<step>-<key>.

  The one way a sample set is made: ``--mode=sample``, the end of training and the
  classifier's synthetic pools (``sampling.write_fits=False``) all come through here.
  Files are written batch by batch (``sample_set``): the same request again (step,
  counts, batch size, settings) continues a set that was cut short, drawing only its
  missing batches, and ends with the bytes of an uninterrupted run; a complete set of
  the same request is reused.

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
    writes; every process samples (and reads what a cut run left) and returns the images.
    A flux model's set also records each image's flux (``request``).
  """
  per_class, labels, fluxes = request(config, counts)
  mesh = mesh or parallel.create_mesh(config.mesh)
  main = parallel.is_main_process()
  out_dir = wd.samples_dir(workdir, step, key or wd.sample_key(config))
  sharding = parallel.data_sharding(mesh)
  batch, num_batches = samplers.batch_layout(len(labels), config.sampling.batch_size, sharding)
  plan = sample_set.plan(config, step, per_class, batch)
  reused = sample_set.reusable(out_dir, plan) if main else None
  if sample_set.agree(np.array([reused is not None]))[0]:
    logging.info("Reusing the complete sample set %s.", out_dir)
    data = reused or wd.read_npz(out_dir / "samples.npz")
    return out_dir, np.asarray(data["images"], np.float32), labels
  source = os.fspath(checkpoint_source(config, workdir)[1])
  writer = sample_set.Writer(config, out_dir, labels, step, plan, source, fluxes=fluxes)
  skip = _read_finished_batches(writer, main, num_batches, batch)
  before = f" ({writer.have.sum()} drawn before)" if len(skip) else ""
  logging.info("Sampling %d images %s at step %d%s.", len(labels), per_class.tolist(), step, before)
  written = set(skip.tolist())

  def keep(g, start, images):  # Each batch as it arrives: DN/s, and process 0 writes it.
    stop = start + len(images)
    writer.images[start:stop] = scaling.inverse(images, config.data.clip_min, config.data.clip_max)
    writer.have[start:stop] = True
    if main:
      writer.write(g, start, stop)
    written.add(g)

  progress = main and config.logging.progress
  drawn = generate(
    config,
    params,
    conditions(labels, fluxes),
    mesh=mesh,
    progress=progress,
    skip=skip,
    on_batch=keep,
  )
  for g in sorted(set(range(num_batches)) - written):  # Returned, not streamed (a stand-in).
    keep(g, g * batch, drawn[g * batch : (g + 1) * batch])
  if main:
    writer.finish(per_class)
    logging.info("Wrote %d samples to %s.", len(labels), out_dir)
  return out_dir, writer.images, labels


def _read_finished_batches(writer, main: bool, num_batches: int, batch: int) -> np.ndarray:
  """The batches a cut run of the same request finished (process 0 decides), read into
  ``writer`` by every process; returns their indices."""
  done = writer.done_batches(num_batches) if main else {}
  skip = np.flatnonzero(sample_set.agree(np.isin(np.arange(num_batches), list(done))))
  for g in skip:
    images = done[g] if main else sample_set.read_batch(writer.out_dir, g)
    writer.images[g * batch : g * batch + len(images)] = images
    writer.have[g * batch : g * batch + len(images)] = True
  if jax.process_count() > 1:  # Read before process 0 may remove them.
    multihost_utils.sync_global_devices("solar_jax: sample batches read")
  return skip


def run(config: ml_collections.ConfigDict, workdir) -> epath.Path:
  """--mode=sample: loads the newest EMA parameters from ``workdir`` and writes samples."""
  request(config)  # Fails on bad counts or fluxes before loading anything.
  mesh = parallel.create_mesh(config.mesh)
  with jax.set_mesh(mesh):
    params, step = load_inference_params(workdir, config, mesh=mesh)
    out_dir = sample_and_write(config, workdir, params, step, mesh=mesh)
    if flux_sampling.is_flux_model(config):  # One seed from A1 to X10 (flux_sweep).
      source = os.fspath(checkpoint_source(config, workdir)[1])
      logging.info(
        "Wrote the flux sweep to %s.", flux_sweep.write(config, out_dir, params, step, source)
      )
    return out_dir
