"""One sample set on disk, written batch by batch so that a cut run resumes.

``samples/<step>-<key>/`` (``sample.draw_and_write``) while it is drawn::

  batches/plan.json        what is drawn: step, images per class, batch size, the
                           settings that change the images, clip range, FITS or not
  batches/<g>.npz          batch g's images (DN/s) and labels, each written whole under
                           a temporary name and renamed, after the batch's FITS files
  fits/synthetic_*.fits    written as their batch finishes
  grid.png                 redrawn after each batch holding one of its images

and at the end ``samples.npz``, the final ``grid.png`` and ``COMPLETE`` (with a digest of
the plan), after which ``batches/`` is removed. Rerunning the same request finds the plan
and its finished batches and draws only the others: a batch's images depend on the seed,
their indices and the batch size alone (``samplers.sample_batches``), so the set ends
with the bytes an uninterrupted run writes. Another plan in the folder (other counts or
batch size) is cleared first; a complete set of the same plan is reused as it is.
"""

from __future__ import annotations

import json

import jax
import numpy as np
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from solar_jax import configuration, errors, provenance, viz
from solar_jax import workdir as wd
from solar_jax.ddpm import synthetic_fits
from solar_jax.diffusion import samplers

BATCHES = "batches"  # The per-batch files of a set being drawn; removed once COMPLETE.
COMPLETE = wd.SAMPLES_COMPLETE  # Written last into a sample set.
GRID_PER_CLASS = 8


def grid_subset(labels: np.ndarray, per_class: int = GRID_PER_CLASS) -> np.ndarray:
  """Indices of the first ``per_class`` images of each class present."""
  return np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)])


def plan(config, step: int, per_class, batch: int) -> dict:
  """What a set draws, as ``batches/plan.json`` holds it (JSON types)."""
  value = {
    "step": int(step),
    "per_class": [int(n) for n in per_class],
    "batch": int(batch),
    "settings": samplers.image_settings(config),
    "clip": [float(config.data.clip_min), float(config.data.clip_max)],
    "image_size": int(config.data.image_size),
    "channels": int(config.data.channels),
    "write_fits": bool(config.sampling.write_fits),
  }
  return json.loads(json.dumps(value, sort_keys=True, default=str))


def batch_path(out_dir, g: int) -> epath.Path:
  return epath.Path(out_dir) / BATCHES / f"{g:05d}.npz"


def read_batch(out_dir, g: int) -> np.ndarray | None:
  """Batch ``g``'s images (DN/s), or None when missing or damaged (it is drawn again)."""
  path = batch_path(out_dir, g)
  if not path.exists():
    return None
  try:
    return wd.read_npz(path)["images"]
  except (errors.DamagedFileError, KeyError) as e:
    logging.warning("Drawing batch %d again: %s", g, e)
    return None


def agree(values: np.ndarray) -> np.ndarray:
  """Process 0's ``values`` on every process (unchanged with one process)."""
  if jax.process_count() == 1:
    return values
  return np.asarray(multihost_utils.broadcast_one_to_all(values))


def reusable(out_dir, the_plan: dict) -> dict | None:
  """``samples.npz``'s arrays of a complete set drawn to ``the_plan``, else None."""
  out_dir = epath.Path(out_dir)
  try:
    complete = json.loads((out_dir / COMPLETE).read_text())
    if complete.get("plan") != configuration.digest(the_plan):
      return None
    return wd.read_npz(out_dir / "samples.npz")
  except (OSError, ValueError, AttributeError, errors.DamagedFileError):
    return None


class Writer:
  """One sample set being drawn (see the module's docstring).

  ``images`` [N,H,W,C] and ``have`` [N] are the whole set's images in DN/s and which of
  them are drawn, kept by every process; the caller fills them in. Only process 0
  calls ``done_batches``, ``write`` (after each batch) and ``finish``.
  """

  def __init__(self, config, out_dir, labels, step: int, the_plan: dict, source: str, fluxes=None):
    self.config, self.out_dir, self.labels, self.step = config, epath.Path(out_dir), labels, step
    self.plan, self.source, self.fluxes = the_plan, source, fluxes  # fluxes: a flux model's
    self.info = samplers.recorded_settings(config)
    self.grid = grid_subset(labels)
    size, channels = config.data.image_size, config.data.channels
    self.images = np.zeros((len(labels), size, size, channels), np.float32)
    self.have = np.zeros(len(labels), bool)
    self._fits_context = None

  def done_batches(self, num_batches: int) -> dict[int, np.ndarray]:
    """The finished batches of this plan ``{g: images}``; a set of another plan is cleared."""
    batches = self.out_dir / BATCHES
    try:
      same = json.loads((batches / "plan.json").read_text()) == self.plan
    except (OSError, ValueError):  # Missing or cut: nothing here to continue.
      same = False
    if same:
      found = {g: read_batch(self.out_dir, g) for g in range(num_batches)}
      return {g: images for g, images in found.items() if images is not None}
    (self.out_dir / COMPLETE).unlink(missing_ok=True)  # Incomplete until rewritten.
    batches.rmtree(missing_ok=True)
    fits_dir = self.out_dir / "fits"
    for stale in fits_dir.glob("synthetic_*.fits") if fits_dir.exists() else ():
      stale.unlink()  # Of another request: the same index may be another image.
    batches.mkdir(parents=True, exist_ok=True)
    wd.write_json(batches / "plan.json", self.plan)
    return {}

  def write(self, g: int, start: int, stop: int) -> None:
    """Batch ``g`` (images ``start:stop``): its FITS files, then its npz; the grid when
    the batch holds one of the grid's images and the grid is not yet whole."""
    if self.config.sampling.write_fits:
      for i in range(start, stop):
        self._write_fits(i)
    wd.write_npz(
      batch_path(self.out_dir, g), images=self.images[start:stop], labels=self.labels[start:stop]
    )
    shown = self.grid[self.have[self.grid]]
    if np.any((self.grid >= start) & (self.grid < stop)) and len(shown) < len(self.grid):
      self._write_grid(shown)

  def finish(self, per_class) -> None:
    """``samples.npz``, ``grid.png``, ``COMPLETE``; then ``batches/`` is removed."""
    class_names = tuple(self.config.data.classes)
    wd.write_npz(
      self.out_dir / "samples.npz",
      images=self.images,
      labels=self.labels,
      class_names=np.array(class_names),
      step=np.int64(self.step),
      **{k: np.asarray(v) for k, v in self.info.items()},
      **({} if self.fluxes is None else {"fluxes": np.asarray(self.fluxes, np.float64)}),
    )
    self._write_grid(self.grid)
    n = int(len(self.labels))
    complete = {
      "step": int(self.step),
      "images": n,
      "per_class": dict(zip(class_names, map(int, per_class))),
      "fits_files": n if self.config.sampling.write_fits else 0,
      "plan": configuration.digest(self.plan),
    }
    wd.write_json(self.out_dir / COMPLETE, complete)
    (self.out_dir / BATCHES).rmtree(missing_ok=True)

  def _write_fits(self, i: int) -> None:
    config = self.config
    if self._fits_context is None:  # sunpy's ephemeris (2 s to import): once, if needed.
      self._fits_context = synthetic_fits.observer(), provenance.record()
      (self.out_dir / "fits").mkdir(parents=True, exist_ok=True)
    obs, made_by = self._fits_context
    name = config.data.classes[int(self.labels[i])]
    header = synthetic_fits.fits_header(
      config.data.image_size,
      step=self.step,
      seed=config.sampling.seed,
      class_name=name,
      index=i,
      sampler_info=self.info,
      obs=obs,
      clip=(config.data.clip_min, config.data.clip_max),
      source=self.source,
      made_by=made_by,
      flux=None if self.fluxes is None else float(self.fluxes[i]),
    )
    path = self.out_dir / "fits" / f"synthetic_{i:05d}_{name}.fits"
    synthetic_fits.write_fits(path, self.images[i, ..., 0], header)

  def _write_grid(self, indices: np.ndarray) -> None:
    s, info = self.config.sampling, self.info
    viz.save_image_grid(
      self.images[indices],
      self.labels[indices],
      tuple(self.config.data.classes),
      self.out_dir / "grid.png",
      title=f"SYNTHETIC samples, step {self.step}: {s.sampler}, {info['num_steps']} steps, "
      f"guidance {s.guidance_scale:g}",
      vmin=self.config.data.clip_min,
      vmax=self.config.data.clip_max,
      ncols=GRID_PER_CLASS,
    )
