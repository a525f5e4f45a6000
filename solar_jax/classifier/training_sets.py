"""Training sets of the classifier regimes: counts, resampling, weights, synthetic images.

Pure NumPy on the host (the datasets are held in memory, see
``solar_jax.classifier.experiment``), except ``synthetic_pool``, which samples the
workdir's DDPM once per (checkpoint, guidance, pool seed) and caches the
images. Counts of synthetic images are per GOES class, the DDPM's
conditioning; oversampling and class weights work on the classifier task's
classes.

The ``augment`` regime's transforms, and why each keeps a plausible AIA 171 Å
frame (frames are centred on the disk, solar north up, ``data/aia.py``):

* north-south flip: the hemispheres are statistically alike (flare rates,
  differential rotation), and the mirror of a northern active region obeys
  Joy's law as a southern one (leading polarity nearer the equator); rotation
  still runs east to west. On by default.
* east-west flip: NOT by default. It reverses the direction of rotation (a
  region about to set on the west limb becomes one rising on the east limb,
  which matters for the 24-hour forecast) and breaks Joy's law. Allowed with
  ``classifier.augment_flips='ns_ew'`` for the concurrent tasks.
* rotation about the disk centre by at most ``augment_rotation_deg``: an error
  in the roll (P) angle; only the off-limb corners move in from outside the
  field of view (filled with the nearest edge value).
* intensity gain ``exp(N(0, augment_intensity))`` in DN/s (a shift of the log
  scale of model space): exposure and degradation-calibration errors of a few %.
"""

from __future__ import annotations

import dataclasses
import os

import ml_collections
import numpy as np
from absl import logging

from solar_jax import errors
from solar_jax import workdir as wd
from solar_jax.data import scaling
from solar_jax.ddpm import sample
from solar_jax.diffusion import samplers
from solar_jax.metrics import operating_point
from solar_jax.models import classifier as classifier_lib

SYNTHETIC_REGIMES = ("real_synthetic", "synthetic_only")
# The training regimes build_training_set implements (the experiment's arms). 'reweighted':
# the real split with class weights that give the class prior real_synthetic chose (a control:
# whether the synthetic images help, or only the prior they bring).
REGIMES = ("real", "weighted", "focal", "oversample", "augment", *SYNTHETIC_REGIMES, "reweighted")
# Each classical regime's knob and the config field of its validation grid ('' = its value
# in the config; () = no grid). real_synthetic's guidance and ratio are chosen likewise.
KNOBS = {
  "oversample": ("oversample_share", "oversample_grid"),
  "focal": ("focal_gamma", "focal_grid"),
  "weighted": ("class_weight_power", "weight_power_grid"),
  "augment": ("augment_rotation_deg", "augment_rotation_grid"),
}
# The classical baselines (the fixes for imbalance the field already has): the primary
# endpoint's "best baseline" is the best of these.
CLASSICAL = ("real", "weighted", "focal", "oversample", "augment")
# Every regime is compared with each of these (paired deltas, Holm-adjusted): the classical
# baselines and the 'reweighted' control.
BASELINES = (*CLASSICAL, "reweighted")
# classifier.primary_endpoint: the one comparison named before the run, the best synthetic
# regime minus the best classical baseline on a score ('delta_<score>'); the rest are
# Holm-adjusted.
PRIMARY_ENDPOINTS = ("delta_tss_ge_m", "delta_tss", "delta_macro_f1")
AUGMENT_FLIPS = ("none", "ns", "ns_ew")  # 'ns_ew' reverses solar rotation (see above).
FORECAST_LABEL = classifier_lib.FORECAST_LABEL


def is_forecast(task: str) -> bool:
  """Forecasting tasks read the largest GOES class of the next 24 h, not the frame's class."""
  return task.startswith("forecast_")


# ------------------------------------------------------ training sets ---


@dataclasses.dataclass
class TrainingSet:
  """What one regime trains on.

  ``images``/``labels`` hold each distinct example once; ``indices`` lists the
  examples of one epoch (with repeats when oversampling).
  """

  images: np.ndarray  # float32 [M, H, W, C], model space.
  labels: np.ndarray  # int32 [M], task labels.
  weights: np.ndarray  # float32 [M], per-example loss weight.
  indices: np.ndarray  # int64 [E], one epoch.
  counts: dict  # Per task class: real, synthetic, total (per epoch), unique_real.
  focal_gamma: float = 0.0  # Focal-loss exponent (0: cross-entropy).
  augment: bool = False  # Random flips, rotations and gains per batch (augment_batch).
  # The regime's knobs this set was built with (KNOBS; reweighted: its class prior).
  settings: dict = dataclasses.field(default_factory=dict)


def per_class_counts(labels, num_classes: int) -> np.ndarray:
  return np.bincount(np.asarray(labels, np.int64), minlength=num_classes)[:num_classes]


def synthetic_topup_counts(train_counts, ratio: float) -> np.ndarray:
  """``ratio * (max_c n_c - n_c)`` per class, rounded half up: images that balance the classes."""
  train_counts = np.asarray(train_counts, np.int64)
  if ratio < 0:
    raise errors.ConfigError(f"classifier.synthetic_ratio={ratio} must be >= 0.")
  return np.floor(ratio * (train_counts.max() - train_counts) + 0.5).astype(np.int64)


def synthetic_pool_counts(train_counts, regimes, ratio: float) -> np.ndarray:
  """Synthetic images per GOES class that serve every requested synthetic regime."""
  train_counts = np.asarray(train_counts, np.int64)
  need = np.zeros_like(train_counts)
  if "real_synthetic" in regimes:
    need = np.maximum(need, synthetic_topup_counts(train_counts, ratio))
  if "synthetic_only" in regimes:
    need = np.maximum(need, train_counts)
  return need


def oversample_indices(
  labels, num_classes: int, rng: np.random.Generator, share: float = 0.5
) -> np.ndarray:
  """All indices, plus draws with replacement that lift each class ``c`` to
  ``max(n_c, round(max_k n_k * share / (1 - share)))``.

  ``share`` 0.5: every class up to the largest (a balanced epoch); in a binary
  task the minority class then makes ``share`` of the epoch.
  """
  if not 0.0 <= share < 1.0:
    raise errors.ConfigError(f"classifier.oversample_share={share} must be in [0, 1).")
  labels = np.asarray(labels)
  counts = per_class_counts(labels, num_classes)
  target = int(np.floor(counts.max() * share / (1.0 - share) + 0.5))
  parts = [np.arange(len(labels))]
  for c in range(num_classes):
    members = np.flatnonzero(labels == c)
    if len(members) and target > len(members):
      parts.append(rng.choice(members, target - len(members), replace=True))
  return np.concatenate(parts).astype(np.int64)


def inverse_frequency_weights(labels, num_classes: int, power: float = 1.0) -> np.ndarray:
  """Per-class weights ``(N / (K' n_c))^power`` over the K' classes present (absent: 0).

  ``power`` 1: the class-balanced loss; 0: plain cross-entropy.
  """
  counts = per_class_counts(labels, num_classes).astype(np.float64)
  present = counts > 0
  weights = np.zeros(num_classes)
  weights[present] = (counts.sum() / (present.sum() * counts[present])) ** power
  return weights


def prior_weights(labels, num_classes: int, prior) -> np.ndarray:
  """Per-class weights ``prior_c / share_c`` that give ``labels`` the class prior ``prior``
  (the 'reweighted' regime); 0 for classes absent from ``labels``."""
  counts = per_class_counts(labels, num_classes).astype(np.float64)
  prior = np.asarray(prior, np.float64)
  if prior.shape != (num_classes,) or np.any(prior < 0) or prior.sum() <= 0:
    raise errors.ConfigError(
      f"the reweighted regime's class prior {prior.tolist()} needs {num_classes} shares >= 0."
    )
  share = counts / counts.sum()
  return np.where(counts > 0, prior / prior.sum() / np.where(counts > 0, share, 1.0), 0.0)


def knob(config, regime: str, setting: dict | None = None):
  """The value of ``regime``'s knob (KNOBS): ``setting`` where it names it, else the config's."""
  field = KNOBS[regime][0]
  return float((setting or {}).get(field, config.classifier[field]))


def grid_points(config, regime: str) -> list[dict]:
  """The settings ``regime`` chooses from on validation (one point: nothing to choose).

  real_synthetic: guidance x ratio; synthetic_only: guidance; the classical regimes
  their KNOBS grid (empty: the config's value).
  """
  c = config.classifier
  if regime in SYNTHETIC_REGIMES:
    ratios = pool_ratios(config) if regime == "real_synthetic" else (None,)
    return [
      {"guidance_scale": g, "synthetic_ratio": r} for g in pool_guidances(config) for r in ratios
    ]
  if regime in KNOBS:
    field = KNOBS[regime][0]
    return [{field: float(v)} for v in (knob_grids(c)[regime] or (c[field],))]
  return [{}]


def planned_runs(config) -> dict[str, int]:
  """Classifier runs ``experiment`` trains per fold, by regime (none reused from disk).

  As ``Experiment.train_all``: a regime with more than one ``grid_points`` trains each
  point (first seed, pool 0), then every (seed, pool) at the chosen point, whose (first
  seed, pool 0) run is the grid's and is not trained again; 'reweighted' has no grid.
  """
  c, counts = config.classifier, {}
  for regime in c.regimes:
    final = len(c.seeds) * (c.num_pools if regime in SYNTHETIC_REGIMES else 1)
    points = 1 if regime == "reweighted" else len(grid_points(config, regime))
    counts[regime] = final if points == 1 else points + final - 1
  return counts


def knob_grids(c: ml_collections.ConfigDict) -> dict[str, tuple]:
  """Each classical regime's validation grid (``KNOBS``) from the classifier config."""
  return {
    "oversample": tuple(c.oversample_grid),
    "focal": tuple(c.focal_grid),
    "weighted": tuple(c.weight_power_grid),
    "augment": tuple(c.augment_rotation_grid),
  }


def _take_per_class(labels, counts) -> np.ndarray:
  """Indices of the first ``counts[c]`` examples of each class ``c``."""
  picked = []
  for c, n in enumerate(np.asarray(counts)):
    members = np.flatnonzero(labels == c)
    if len(members) < n:
      raise ValueError(f"the synthetic pool has {len(members)} images of class {c}, {n} needed.")
    picked.append(members[:n])
  return np.concatenate(picked) if picked else np.zeros(0, np.int64)


def build_training_set(
  regime: str,
  real: dict,
  synthetic: dict | None,
  config: ml_collections.ConfigDict,
  seed: int,
  *,
  ratio: float | None = None,
  setting: dict | None = None,
) -> TrainingSet:
  """The training set of ``regime``.

  Args:
    regime: one of ``REGIMES``.
    real: the real training split: 'image' (model space), 'label' (GOES index).
    synthetic: the synthetic pool, 'image' (model space) and 'label' (GOES
      index), at least ``synthetic_pool_counts`` per class; None if absent.
    config: reads data.classes and classifier.{task, synthetic_ratio}.
    seed: the run's seed (oversampling draws).
    ratio: synthetic images per missing real image (real_synthetic); default
      classifier.synthetic_ratio (the validation grid passes its own).
    setting: the regime's knob (KNOBS field -> value; a validation-grid point), else the
      config's; 'reweighted' needs {'class_prior': [K shares]}.
  """
  c = config.classifier
  goes = tuple(config.data.classes)
  names = classifier_lib.task_class_names(classifier_lib.task_of(c, config.data.label), goes)
  k = len(names)
  real_goes = np.asarray(real["label"], np.int64)
  real_images = np.asarray(real["image"], np.float32)
  if regime in SYNTHETIC_REGIMES:
    if synthetic is None:
      raise ValueError(f"regime {regime!r} needs synthetic images; none were given.")
    goes_counts = per_class_counts(real_goes, len(goes))
    if regime == "real_synthetic":
      want = synthetic_topup_counts(goes_counts, c.synthetic_ratio if ratio is None else ratio)
    else:
      want = goes_counts
    pick = _take_per_class(np.asarray(synthetic["label"]), want)
    syn_images = np.asarray(synthetic["image"], np.float32)[pick]
    syn_goes = np.asarray(synthetic["label"], np.int64)[pick]
  else:
    syn_images = np.zeros((0, *real_images.shape[1:]), np.float32)
    syn_goes = np.zeros(0, np.int64)
  if regime == "synthetic_only":
    real_images, real_goes = real_images[:0], real_goes[:0]

  images = np.concatenate([real_images, syn_images])
  is_real = np.concatenate([np.ones(len(real_goes), bool), np.zeros(len(syn_goes), bool)])
  labels = classifier_lib.task_labels(
    np.concatenate([real_goes, syn_goes]), classifier_lib.task_of(c, config.data.label), goes
  )
  weights = np.ones(len(labels), np.float32)
  indices = np.arange(len(labels), dtype=np.int64)
  settings = {KNOBS[regime][0]: knob(config, regime, setting)} if regime in KNOBS else {}
  class_weight = None
  if regime == "weighted":
    class_weight = inverse_frequency_weights(labels, k, settings["class_weight_power"])
  elif regime == "reweighted":
    if not (setting or {}).get("class_prior"):
      raise ValueError("regime 'reweighted' needs the class prior real_synthetic chose.")
    settings = {"class_prior": [float(v) for v in setting["class_prior"]]}
    class_weight = prior_weights(labels, k, settings["class_prior"])
  elif regime == "oversample":
    rng = np.random.default_rng([seed, 7])
    indices = oversample_indices(labels, k, rng, settings["oversample_share"])
  if class_weight is not None:
    weights = class_weight[labels].astype(np.float32)
  if len(indices) == 0:
    raise ValueError(f"regime {regime!r} has no training examples.")

  epoch_labels, epoch_real = labels[indices], is_real[indices]
  counts = {
    "class_names": list(names),
    "real": per_class_counts(epoch_labels[epoch_real], k).tolist(),
    "synthetic": per_class_counts(epoch_labels[~epoch_real], k).tolist(),
    "total": per_class_counts(epoch_labels, k).tolist(),
    "unique_real": per_class_counts(labels[is_real], k).tolist(),
  }
  if regime in SYNTHETIC_REGIMES:
    counts["synthetic_goes"] = dict(zip(goes, per_class_counts(syn_goes, len(goes)).tolist()))
  if class_weight is not None:
    counts["class_weight"] = class_weight.tolist()
  # The class prior the loss sees (epoch shares, each example with its weight): what
  # operating_point.prior_shift removes from the run's probabilities.
  counts["prior"] = operating_point.class_prior(epoch_labels, k, weights[indices]).tolist()
  gamma = settings["focal_gamma"] if regime == "focal" else 0.0
  return TrainingSet(images, labels, weights, indices, counts, gamma, regime == "augment", settings)


def augment_batch(
  images: np.ndarray, config, rng: np.random.Generator, rotation_deg: float | None = None
) -> np.ndarray:
  """Random flips, rotations about the disk centre and intensity gains of model-space images.

  See the module docstring for why each keeps a plausible AIA frame. ``rotation_deg``:
  the largest rotation (default ``classifier.augment_rotation_deg``). The gain
  ``g`` multiplies DN/s, i.e. adds ``2 log10(g) / log10(clip_max / clip_min)``
  in model space (then clipped to [-1, 1], as the transform clips).
  """
  from scipy import ndimage  # Only the augment regime needs it.

  c, d = config.classifier, config.data
  out = np.array(images, np.float32, copy=True)
  n = len(out)
  if c.augment_flips in ("ns", "ns_ew"):
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, ::-1]  # Rows run north-south.
  if c.augment_flips == "ns_ew":
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
  rotation = c.augment_rotation_deg if rotation_deg is None else rotation_deg
  if rotation > 0:
    angles = rng.uniform(-rotation, rotation, n)
    for i, angle in enumerate(angles):
      out[i] = ndimage.rotate(out[i], angle, axes=(0, 1), reshape=False, order=1, mode="nearest")
  if c.augment_intensity > 0:
    log_gain = rng.normal(0.0, c.augment_intensity, n) / np.log(10.0)
    shift = 2.0 * log_gain / np.log10(d.clip_max / d.clip_min)
    out = np.clip(out + shift[:, None, None, None].astype(np.float32), -1.0, 1.0)
  return out


class EpochSampler:
  """Global batches of indices: a fresh permutation of ``indices`` every epoch.

  The last partial batch of an epoch is dropped; a set smaller than one batch
  is repeated to fill it. Every process draws the same global batch.
  """

  def __init__(self, indices: np.ndarray, batch_size: int, rng: np.random.Generator):
    self._indices = np.asarray(indices)
    if len(self._indices) < batch_size:
      reps = -(-batch_size // len(self._indices))
      self._indices = np.tile(self._indices, reps)
    self._batch_size = batch_size
    self._rng = rng
    self._order = np.zeros(0, np.int64)

  def next(self) -> np.ndarray:
    if len(self._order) < self._batch_size:
      self._order = self._rng.permutation(self._indices)
    batch, self._order = self._order[: self._batch_size], self._order[self._batch_size :]
    return batch


# --------------------------------------------------------- synthetic ---


class NoDDPMCheckpointError(errors.MissingInputError):
  """The workdir has no diffusion checkpoint to sample synthetic images from."""


def pool_guidances(config) -> tuple[float, ...]:
  """The guidance scales the synthetic regimes choose from on validation (one: no choice)."""
  c = config.classifier
  if c.guidance_grid:
    return tuple(float(g) for g in c.guidance_grid)
  scale = c.get("guidance_scale")
  return (float(config.sampling.guidance_scale if scale is None else scale),)


def pool_ratios(config) -> tuple[float, ...]:
  """The synthetic ratios real_synthetic chooses from on validation."""
  c = config.classifier
  return tuple(float(r) for r in (c.ratio_grid or (c.synthetic_ratio,)))


def pool_config(config, guidance: float | None = None, pool: int = 0) -> ml_collections.ConfigDict:
  """The sampling config of one synthetic pool.

  Guidance ``guidance`` (default: ``classifier.guidance_scale`` when set, else
  sampling's), DDIM steps ``classifier.sampling_steps`` when set, and sampling
  seed ``sampling.seed + pool``: pool 0 is drawn like ``--mode=sample``'s images. A flux
  generator's pool for class c draws its fluxes from the training split's class-c fluxes
  (``sampling.flux_draw = 'training'``, no listed ``sampling.fluxes``): the synthetic
  frames span each class's range as the real ones do.
  """
  c = config.classifier
  scale = c.get("guidance_scale") if guidance is None else guidance
  s = config.sampling
  want = {
    "guidance_scale": float(s.guidance_scale if scale is None else scale),
    "num_steps": int(s.num_steps if c.get("sampling_steps") is None else c.sampling_steps),
    "seed": int(s.seed + pool),
  }
  if config.model.conditioning == "flux":
    want.update(flux_draw="training", fluxes=())
  if all(s[k] == v for k, v in want.items()):
    return config
  config = config.copy_and_resolve_references()
  for key, value in want.items():
    config.sampling[key] = value
  return config


def pool_settings(config, guidance: float | None = None, pool: int = 0) -> dict:
  """The settings that decide a synthetic pool's images, besides the DDPM step (JSON-friendly):
  ``samplers.image_settings`` of the pool's config, as for any sample set."""
  return samplers.image_settings(pool_config(config, guidance, pool))


def _pool_sampling_config(config, guidance, pool) -> ml_collections.ConfigDict:
  config = pool_config(config, guidance, pool).copy_and_resolve_references()
  config.sampling.write_fits = False  # Changes no image (samplers.NOT_IMAGE_FIELDS).
  return config


def pool_set(config, workdir, step: int, counts, guidance=None, pool: int = 0):
  """The sample set (``samples/<step>-<key>/``) that holds pool ``pool`` of ``counts``."""
  config = _pool_sampling_config(config, guidance, pool)
  return wd.samples_dir(workdir, step, wd.sample_key(config, per_class=counts))


def synthetic_pool(
  config, workdir, counts, *, mesh=None, guidance: float | None = None, pool: int = 0
) -> dict:
  """Synthetic images per GOES class from the newest DDPM checkpoint of the workdir, or of
  the inference checkpoint or workdir ``sampling.checkpoint`` names.

  A pool is a sample set like any other: ``samples/<step>-<key>/`` (``wd.sample_key`` of
  ``pool_config``: guidance, steps and seed ``sampling.seed + k`` of pool ``k``), drawn
  by ``sample.sample_and_write`` without FITS. A complete set (``COMPLETE``) of these
  classes holding at least ``counts`` images of each is reused; else it is drawn (and
  rewritten). The folder's key covers every setting that changes the images, so a set
  drawn otherwise is never mistaken for this one. The guidance is ``guidance``, else
  ``classifier.guidance_scale`` when set, else ``sampling.guidance_scale``.

  Returns:
    {'image': float32 [N,H,W,C] model space, 'label': int32 GOES index,
     'step': DDPM step, 'settings': pool_settings(config), 'path': the samples.npz
     relative to the workdir, 'guidance', 'pool'}.

  Raises:
    NoDDPMCheckpointError: the workdir holds no DDPM checkpoint.
  """
  counts = np.asarray(counts, np.int64)
  settings = pool_settings(config, guidance, pool)
  config = _pool_sampling_config(config, guidance, pool)
  guidance = float(config.sampling.guidance_scale)
  classes = tuple(config.data.classes)
  try:  # The model sampling.checkpoint names (an export, another workdir), else this one.
    kind, source = sample.checkpoint_source(config, workdir)
  except errors.MissingInputError as e:
    raise NoDDPMCheckpointError(str(e)) from None
  if kind == "export":
    steps = [int(sample.check_export_data(source, config)["step"])]
  else:
    steps = wd.steps(wd.checkpoints_dir(source))
  if not steps:
    raise NoDDPMCheckpointError(
      f"no checkpoint in {wd.checkpoints_dir(source)}: train the DDPM first (--mode=train) "
      "with this workdir, or name one with sampling.checkpoint."
    )

  def cached(step):
    directory = wd.samples_dir(workdir, step, wd.sample_key(config, per_class=counts))
    path = directory / "samples.npz"
    if not (directory / sample.COMPLETE).exists():
      return path, None
    try:
      data = wd.read_npz(path)
    except errors.DamagedFileError as e:  # Drawn again and rewritten whole.
      logging.warning("Resampling the synthetic pool: %s", e)
      return path, None
    have = per_class_counts(data["labels"], len(classes))
    if tuple(str(c) for c in data["class_names"]) != classes or np.any(have < counts):
      return path, None
    return path, data

  step = max(steps)
  path, data = cached(step)  # Found without loading the DDPM.
  if data is None:
    try:
      params, step = sample.load_inference_params(workdir, config, mesh=mesh)
    except errors.MissingInputError as e:
      raise NoDDPMCheckpointError(str(e)) from None
    path, data = cached(step)  # An unreadable newest checkpoint falls back to an older step.
  if data is None:
    logging.info(
      "Sampling the synthetic pool %d (guidance %g) at DDPM step %d.", pool, guidance, step
    )
    directory, images_dns, labels = sample.draw_and_write(
      config, workdir, params, step, mesh=mesh, counts=counts,
      key=wd.sample_key(config, per_class=counts),
    )  # fmt: skip
    path = directory / "samples.npz"
    data = {"images": images_dns.astype(np.float32), "labels": labels}
  images = np.asarray(data["images"], np.float32)
  return {
    "image": scaling.forward(images, config.data.clip_min, config.data.clip_max),
    "label": np.asarray(data["labels"], np.int32),
    "step": int(step),
    "settings": settings,
    "path": os.fspath(path),
    "guidance": guidance,
    "pool": pool,
  }
