"""--mode=evaluate: how close are the generated Suns to real ones, and can a reader trust it?

Reads the newest ``workdir/samples/<step>/samples.npz`` (generated, DN/s),
real images of ``config.evaluation.split`` (DN/s), of a second disjoint real
split for the floors (``evaluation.floor_split``) and of the DDPM's training
split (for memorisation), and writes to ``workdir/eval/``:

* ``metrics.json``: per feature space (``evaluation.extractors``), overall
  and per GOES class, FID (only where N > D), KID with a bootstrap interval,
  precision/recall, density/coverage and cluster occupancy, each with its
  real-vs-real floor at the same N (``distribution``); memorisation per
  space and in pixels (``memorisation``); class consistency under the
  real-only classifier (``consistency``); physical statistics, with the flare
  quantities per class (``physics``); the sample-size rules
  (``sample_size.RULES``). Every figure carries its N; a figure below its
  minimum N is marked ``*_not_estimable`` with the reason;
* ``features_<extractor>.npz``: the features and labels of the real and
  generated images;
* PNGs: real vs synthetic grids per class, intensity histogram, limb profile,
  power spectrum, cluster occupancy, flare physics per class, memorisation
  ratios and closest pairs, class-consistency confusion matrices;
* ``flux_consistency`` (a flux-conditioned model): the flux a real-only regressor reads
  from the samples (and the classifier's pool) against the flux asked for, beside the
  real frames' floor, and the flux sweep's brightness trend (``flux_consistency``);
  ``flux_regressor/``, ``flux_consistency.npz`` and ``.png``;
* ``classifier_pool/``: the same for the synthetic images the flare classifier
  trained on (the sample set ``classifier/metrics.json`` names: pools are sample sets
  like any other), when they were drawn with other sampling settings than the
  samples (for example ``classifier.guidance_scale``).

Which images: see ``solar_jax.evaluation.distribution``. Up to
``num_images × num_classes`` images of the evaluation and floor splits are
read (so rarer classes have images for the per-class figures). The
memorisation search covers the training split per class: every frame of a
class with at most ``memorisation_train_images`` frames, else a uniform random
subset of that many (seeded by ``config.seed``; ``memorisation.training_subset``),
recorded under ``memorisation_train_selection``. The held-out images of the
memorisation test are the frames of the days withheld from the DDPM's training
months (``load_heldout``; exchangeable with the training frames, never trained
on), per class all of them or a uniform random subset of the same cap, recorded
under ``memorisation_heldout_selection``; with no withheld day
(``data.withheld_day_fraction = 0``) the evaluation split's, marked as not
exchangeable. Per class the samples are also compared with every real frame of
the class the generator did not train on (split 'unseen', ``real_sets.load_unseen``;
``per_class_unseen`` of each space, ``physics.flare_unseen``): the rare classes'
figures at the N the archive allows.

Extractors. 'inception' needs ``config.evaluation.inception_weights`` (see
solar_jax/models/inception.py; a missing file is an error). 'classifier' uses
the trained flare classifier's penultimate features; when no trained
classifier exists this is an error too, unless another requested extractor is
available, in which case the classifier is skipped and the reason recorded
under ``skipped_extractors``. 'random' always works.
"""

from __future__ import annotations

import json
import math

import numpy as np
from absl import logging
from etils import epath

from solar_jax import errors, parallel
from solar_jax import workdir as wd
from solar_jax.data import resolve, scaling
from solar_jax.ddpm import flux_sampling
from solar_jax.evaluation import distribution, plots
from solar_jax.evaluation import features as features_lib
from solar_jax.evaluation import flux_consistency as flux_lib
from solar_jax.evaluation.features import Extractor, build_extractors
from solar_jax.evaluation.real_sets import load_heldout, load_real, load_train, load_unseen
from solar_jax.metrics import consistency, memorisation, physics, sample_size, sanity
from solar_jax.models import classifier as classifier_lib

# ------------------------------------------------------------- inputs ---


def load_samples(path) -> dict:
  """Generated images (DN/s), labels and the sampler settings from a samples.npz."""
  out = wd.read_npz(path)
  for key in ("images", "labels", "class_names"):
    if key not in out:
      raise errors.InputMismatchError(f"{path} has no {key!r} array (keys: {sorted(out)}).")
  return out


# ---------------------------------------------------------- metrics ---


def _model_space(config, images) -> np.ndarray | None:
  """Images after the intensity transform (what the DDPM and the extractors see)."""
  if images is None:
    return None
  return scaling.forward(np.asarray(images, np.float32), config.data.clip_min, config.data.clip_max)


def _counts(labels, class_names) -> dict:
  counts = np.bincount(np.asarray(labels, np.int64), minlength=len(class_names))
  return dict(zip(class_names, counts.tolist()))


def _header(config, sel, labels: dict, extra) -> dict:
  """The figures' provenance: N, splits, class counts, the sample-size rules."""
  ev = config.evaluation
  names = tuple(config.data.classes)
  real_idx, fake_idx, _, ref_idx = sel["overall"]
  counts = {
    "real_overall": _counts(labels["real"][real_idx], names),
    "generated_overall": _counts(labels["fake"][fake_idx], names),
    "real_available": _counts(labels["real"], names),
    "generated_available": _counts(labels["fake"], names),
  }
  if labels["reference"] is not None:
    counts["floor_reference_overall"] = _counts(labels["reference"][ref_idx], names)
    counts["floor_reference_available"] = _counts(labels["reference"], names)
  return {
    "num_images": sel["n"],
    "num_images_note": (
      f"N = min(evaluation.num_images={ev.num_images}, real available={len(labels['real'])}, "
      f"generated available={len(labels['fake'])}); per-class n = min(real, generated, "
      "num_images) for that class"
    ),
    "split": ev.split,
    "floor_split": ev.floor_split if labels["reference"] is not None else None,
    "sample_size_rules": dict(sample_size.RULES),
    "summary": {},
    "class_counts": counts,
    **(extra or {}),
    "features": {},
    "memorisation": {},
  }


def _memorisation(config, spaces: dict, labels: dict) -> tuple[dict, dict]:
  """Memorisation of the generated images in one space (features or transformed pixels)."""
  if spaces["train"] is None or len(spaces["train"]) == 0:
    reason = "no DDPM training images read (evaluation.memorisation_train_images=0 or empty)"
    return {"not_estimable": reason}, {}
  held = "heldout" if spaces.get("heldout") is not None else "real"
  return memorisation.memorisation(
    spaces["fake"],
    spaces["train"],
    spaces[held],
    generated_labels=labels["fake"],
    train_labels=labels["train"],
    heldout_labels=labels[held],
    class_names=tuple(config.data.classes),
  )


def _consistency(config, classify, model: dict, labels: dict) -> dict:
  """Class consistency of the samples, and of real images as the reference."""
  if classify is None:
    return {"not_available": "no real-only classifier (run --mode=classify with regime 'real')"}
  predict, info = classify
  names = tuple(config.data.classes)
  task_of_class = classifier_lib.task_labels(np.arange(len(names)), info["task"], names)
  out = {"classifier": info}
  for key, side in (("synthetic", "fake"), ("real_reference", "real")):
    out[key] = consistency.class_consistency(
      labels[side], predict(model[side]), names, info["class_names"], task_of_class
    )
  return out


def _physics(config, real, generated, sel, labels) -> tuple[dict, dict]:
  """Physical statistics: overall comparison at N, and flare quantities per class."""
  data, names = config.data, tuple(config.data.classes)
  real_idx, fake_idx = sel["overall"][:2]
  # Real images as the model sees them (clipped to its range, as every sample is).
  clipped = physics.real_as_model(real["images"], data.clip_min, data.clip_max)
  stats = physics.physics_statistics(
    clipped[real_idx], generated["images"][fake_idx], floor=data.clip_min, seed=config.seed
  )
  out = {k: v for k, v in stats.items() if not isinstance(v, dict)}
  out["brightness_by_class"] = physics.compare_brightness_by_class(
    clipped, labels["real"], generated["images"], labels["fake"], names
  )
  out["flare"] = physics.flare_physics_by_class(
    real["images"], labels["real"], generated["images"], labels["fake"], names,
    threshold=config.evaluation.flare_kernel_dns, clip_min=data.clip_min, clip_max=data.clip_max,
  )  # fmt: skip
  # Is every sample a Sun at all? Against the real frames the figures compare it with.
  out["noise_check"] = sanity.noise_check(
    clipped[real_idx], generated["images"], floor=data.clip_min
  )
  return out, stats


def _summary(entry: dict, memorised: dict) -> dict:
  """The headline figures of one feature space (overall, with floors)."""
  overall, floor = entry["overall"], entry["overall"].get("floor", {})
  found = {
    "fid": overall.get("fid"),
    "kid": overall.get("kid", {}).get("mean"),
    "precision": overall.get("precision"),
    "recall": overall.get("recall"),
    "density": overall.get("density"),
    "coverage": overall.get("coverage"),
    "cluster_js": overall.get("clusters", {}).get("js_divergence"),
    "floor_fid": floor.get("fid"),
    "floor_kid": floor.get("kid", {}).get("mean"),
    "memorised_share": memorised.get("share"),
  }
  return {k: v for k, v in found.items() if v is not None}


def _features(name, extract, model: dict, cache: dict | None) -> dict:
  """Features of every image set; the real sets' are kept in ``cache`` for a second call."""
  sizes = {k: len(v) for k, v in model.items() if v is not None}
  logging.info("Extracting %s features: %s.", name, sizes)
  feats = {}
  for key, images in model.items():
    if images is None:
      feats[key] = None
    elif cache is not None and key != "fake" and (name, key) in cache:
      feats[key] = cache[(name, key)]
    else:
      feats[key] = np.asarray(extract(images), np.float32)
      if cache is not None and key != "fake":
        cache[(name, key)] = feats[key]
  return feats


def _space(config, name, feats: dict, sel, labels, out_dir) -> tuple[dict, dict, dict]:
  """Features of every image set in one space; its distribution metrics and memorisation."""
  entry = distribution.space_metrics(config, feats, sel, feats["real"].shape[1])
  entry["description"] = features_lib.DESCRIPTIONS.get(name, name)
  mem, arrays = _memorisation(config, feats, labels)
  if out_dir is not None:
    wd.write_npz(
      out_dir / f"features_{name}.npz",
      real=feats["real"],
      generated=feats["fake"],
      real_labels=labels["real"],
      generated_labels=labels["fake"],
    )
  return entry, mem, arrays


def evaluate_arrays(
  config,
  real: dict,
  generated: dict,
  extractors: dict[str, Extractor],
  out_dir,
  *,
  reference: dict | None = None,
  train: dict | None = None,
  heldout: dict | None = None,
  unseen: dict | None = None,
  classify=None,
  feature_cache: dict | None = None,
  write_plots: bool = True,
  extra: dict | None = None,
) -> dict:
  """Every evaluation figure for real and generated image sets (DN/s); writes out_dir.

  Args:
    config: the run config (evaluation, data sections).
    real, generated: {'images': [N, H, W, C] DN/s, 'labels': [N] class indices}.
    extractors: name -> callable(model-space images) -> features [N, D].
    out_dir: directory for metrics.json, features_*.npz and the plots; None
      writes nothing (processes other than 0).
    reference: a second, disjoint real set (same layout) for the floors; None: no floors.
    train: the DDPM's training images (same layout) for memorisation; None: none.
    heldout: real images the DDPM never trained on (same layout) for the
      memorisation threshold; None: ``real``.
    unseen: every real image the DDPM never trained on (same layout), for the
      per-class figures against all of a class's unseen frames; None: not computed.
    classify: (predict(model-space images) -> task labels, info) of the
      real-only classifier, for class consistency; None: not scored.
    feature_cache: features of the real sets by (extractor, set), filled and
      reused across calls with the same real sets (the samples and the pool).
    write_plots: whether to draw the PNGs.
    extra: entries added to metrics.json as they are (e.g. the samples' settings).

  Returns:
    The metrics dict written to ``out_dir/metrics.json``.
  """
  if out_dir is not None:
    out_dir = epath.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
  sets = {"real": real, "fake": generated, "reference": reference, "train": train}
  sets["heldout"], sets["unseen"] = heldout, unseen
  labels = {k: None if v is None else np.asarray(v["labels"], np.int64) for k, v in sets.items()}
  if min(len(labels["real"]), len(labels["fake"])) < 2:
    raise errors.InputMismatchError(
      f"need at least 2 real and 2 generated images, have {len(labels['real'])} real "
      f"({config.evaluation.split} split) and {len(labels['fake'])} generated."
    )
  rng = np.random.default_rng(config.seed)
  sel = distribution.select(config, labels["real"], labels["fake"], labels["reference"], rng)
  metrics = _header(config, sel, labels, extra)
  metrics["memorisation_heldout"] = (
    f"the evaluation split ({config.evaluation.split}; other months than the training "
    "frames, not exchangeable with them)"
    if heldout is None
    else f"a held-out set passed in ({len(labels['heldout'])} images; "
    "memorisation_heldout_selection says which)"
  )
  model = {k: None if v is None else _model_space(config, v["images"]) for k, v in sets.items()}
  mem_arrays = {}
  for name, extract in extractors.items():
    feats = _features(name, extract, model, feature_cache)
    entry, mem, mem_arrays[name] = _space(config, name, feats, sel, labels, out_dir)
    if unseen is not None:
      entry["per_class_unseen"] = distribution.unseen_per_class(
        config, feats, labels, entry["dim"], np.random.default_rng(config.seed + 2)
      )
    metrics["features"][name], metrics["memorisation"][name] = entry, mem
    metrics["summary"][name] = _summary(entry, mem)
  metrics["memorisation"]["pixels"], mem_arrays["pixels"] = _memorisation(config, model, labels)
  metrics["class_consistency"] = _consistency(config, classify, model, labels)
  metrics["physics"], stats = _physics(config, real, generated, sel, labels)
  if unseen is not None:  # Flare physics per class against every unseen frame.
    metrics["physics"]["flare_unseen"] = physics.flare_physics_by_class(
      unseen["images"], labels["unseen"], generated["images"], labels["fake"],
      tuple(config.data.classes), threshold=config.evaluation.flare_kernel_dns,
      clip_min=config.data.clip_min, clip_max=config.data.clip_max,
    )  # fmt: skip
  metrics["summary"]["physics"] = {
    key: stats[key]
    for key in (
      "intensity_wasserstein_dex",
      "limb_profile_mean_abs_log_ratio",
      "power_spectrum_mean_abs_log_ratio",
    )
  }
  if write_plots and out_dir is not None:
    _plot_all(config, metrics, stats, sets, sel, mem_arrays, out_dir)
  if out_dir is not None:
    wd.write_json(out_dir / "metrics.json", _jsonable(metrics))
  return metrics


def _plot_all(config, metrics, stats, sets, sel, mem_arrays, out_dir) -> None:
  names = tuple(config.data.classes)
  plots.physics(stats, sel["n"], out_dir)
  noisy = metrics["physics"]["noise_check"].get("noise_like", ())
  plots.grids(config, sets["real"], sets["fake"], sel["per_class"], out_dir, noise_like=noisy)
  for name, entry in metrics["features"].items():
    if "clusters" in entry["overall"]:
      plots.clusters(entry["overall"]["clusters"], name, out_dir / f"cluster_occupancy_{name}.png")
  for space, mem in metrics["memorisation"].items():
    if sets["train"] is not None:
      path = out_dir / f"memorisation_pairs_{space}.png"
      plots.closest_pairs(config, mem, sets["fake"], sets["train"], space, path)
  plots.ratio_histograms(mem_arrays, out_dir / "memorisation_ratios.png")
  values = {}
  for key, fn in (
    ("peak_dns", physics.peak_on_disk),
    ("kernel_area", lambda x: physics.kernel_area(x, config.evaluation.flare_kernel_dns)),
  ):
    per_side = {}
    for side in ("real", "fake"):
      images = sets[side]["images"]
      if side == "real":  # As compared in metrics.json: clipped to the model's range.
        images = physics.real_as_model(images, config.data.clip_min, config.data.clip_max)
      v, lab = fn(images), np.asarray(sets[side]["labels"])
      per_side[side] = [v[lab == i] for i in range(len(names))]
    values[key] = per_side
  plots.flare_physics(
    values, names, config.evaluation.flare_kernel_dns, out_dir / "flare_physics.png"
  )
  cc = metrics["class_consistency"]
  for key, what in (("synthetic", "samples"), ("real_reference", "real test images")):
    if key in cc:
      title = f"{what} (N={cc[key]['n']}): asked for vs recognised as"
      plots.consistency(cc[key], names, title, out_dir / f"class_consistency_{key}.png")


def _jsonable(tree):
  if isinstance(tree, dict):
    return {str(k): _jsonable(v) for k, v in tree.items()}
  if isinstance(tree, list | tuple):
    return [_jsonable(v) for v in tree]
  if isinstance(tree, np.ndarray):
    return _jsonable(tree.tolist())
  if isinstance(tree, np.generic):
    return _jsonable(tree.item())
  if isinstance(tree, float) and not math.isfinite(tree):
    return None  # JSON has no NaN/inf.
  return tree


# --------------------------------------------------------------- run ---


def _log_summary(what: str, metrics: dict, out_dir) -> None:
  logging.info(
    "Evaluation of %s (N=%d): %s; wrote %s/metrics.json",
    what,
    metrics["num_images"],
    json.dumps(_jsonable(metrics["summary"])),
    out_dir,
  )


def _to_tensorboard(config, workdir, summary: dict, step: int) -> None:
  """The summary's numbers as TensorBoard scalars ``eval/...`` beside the training curves."""
  if not config.logging.tensorboard:
    return
  from clu import metric_writers  # Imports TensorFlow (~4 s): only when writing.

  scalars, stack = {}, [("eval", summary)]
  while stack:
    name, tree = stack.pop()
    if isinstance(tree, dict):
      stack += [(f"{name}/{k}", v) for k, v in tree.items()]
    elif isinstance(tree, int | float) and not isinstance(tree, bool) and math.isfinite(tree):
      scalars[name] = float(tree)
  writer = metric_writers.SummaryWriter(str(workdir))
  writer.write_scalars(int(step), scalars)
  writer.close()


def _classifier_pool(workdir) -> epath.Path | None:
  """The sample set the classifier's synthetic regimes trained on (classifier/metrics.json)."""
  path = wd.classifier_dir(workdir) / "metrics.json"
  try:
    synthetic = json.loads(path.read_text()).get("synthetic") or {}
  except (OSError, ValueError):
    return None
  return epath.Path(synthetic["path"]) if synthetic.get("path") else None


def _evaluate_pool(config, workdir, inputs: dict, samples_info, main) -> dict | None:
  """Scores the classifier's synthetic images when they were drawn otherwise than the samples."""
  pool_path = _classifier_pool(workdir)
  if pool_path is None or not pool_path.exists():
    return None
  pool = load_samples(pool_path)
  pool_info = _samples_info(pool_path, pool)
  # Compared on what samples.npz records (samplers.recorded_settings).
  differs = [
    k for k in samples_info if k not in ("path", "step") and pool_info.get(k) != samples_info[k]
  ]
  if not differs or tuple(str(x) for x in pool["class_names"]) != tuple(config.data.classes):
    return None
  pool_dir = wd.eval_dir(workdir) / "classifier_pool"
  extra = {"samples": pool_info, **inputs["extra"]}
  if inputs.get("flux_params") is not None:  # A flux model's pool: its fluxes read back.
    extra["flux_consistency"] = flux_lib.pool_entry(config, inputs["flux_params"], pool)
  metrics = evaluate_arrays(
    config, inputs["real"], pool, inputs["extractors"], pool_dir if main else None,
    reference=inputs["reference"], train=inputs["train"], heldout=inputs["heldout"],
    unseen=inputs["unseen"],
    classify=inputs["classify"],
    feature_cache=inputs["feature_cache"], extra=extra,
  )  # fmt: skip
  if main:
    _log_summary(
      f"the classifier's synthetic images (other {', '.join(differs)})", metrics, pool_dir
    )
  return metrics


def _load_inputs(config, workdir, mesh, names, generated_shape, samples_path) -> dict:
  """Extractors, the real-only classifier and every real image set the evaluation reads."""
  ev = config.evaluation
  extractors, skipped = build_extractors(config, workdir, mesh)
  try:
    classify = features_lib.load_classifier_predictor(config, workdir)
  except errors.MissingInputError as e:
    logging.warning("No class consistency: %s", e)
    classify = None
  cap = ev.num_images * len(names)
  real = load_real(config, max_examples=cap)
  if real["images"].shape[1:] != generated_shape:
    raise errors.InputMismatchError(
      f"real images {real['images'].shape[1:]} and generated {generated_shape} "
      f"({samples_path}) differ in shape; evaluate with the config the samples were made with."
    )
  reference = load_real(config, cap, ev.floor_split) if ev.floor_split else None
  train, selection = load_train(config)
  heldout, held_selection = load_heldout(config) if train is not None else (None, {})
  unseen, unseen_selection = load_unseen(config)
  searched = 0 if train is None else len(train["labels"])
  return {
    "extractors": extractors,
    "classify": classify,
    "real": real,
    "reference": reference,
    "train": train,
    "heldout": heldout,
    "unseen": unseen,
    "feature_cache": {},
    "extra": {
      "skipped_extractors": skipped,
      "memorisation_train_images_searched": searched,
      "memorisation_train_selection": selection,
      "memorisation_heldout_selection": held_selection,
      "unseen_selection": unseen_selection,
    },
  }


def run(config, workdir, mesh=None) -> dict:
  """--mode=evaluate: newest samples vs the real split; writes ``workdir/eval/``."""
  workdir = epath.Path(workdir)
  samples_path = wd.latest_samples(workdir, config)  # Drawn with config's sampler settings.
  generated = load_samples(samples_path)
  names = tuple(str(x) for x in generated["class_names"])
  if names != tuple(config.data.classes):
    raise errors.InputMismatchError(
      f"{samples_path}: class_names {names} differ from config.data.classes "
      f"{tuple(config.data.classes)}."
    )
  if mesh is None and "inception" in config.evaluation.extractors:
    mesh = parallel.create_mesh(config.mesh)
  shape = generated["images"].shape[1:]
  inputs = _load_inputs(config, workdir, mesh, names, shape, samples_path)
  out_dir = wd.eval_dir(workdir)
  main = parallel.is_main_process()
  samples_info = _samples_info(samples_path, generated)
  flux = {}
  if flux_sampling.is_flux_model(config):  # Requested against recovered flux.
    flux["flux_consistency"], inputs["flux_params"] = flux_lib.evaluate(
      config, workdir, samples_path.parent, generated, out_dir, main
    )
  metrics = evaluate_arrays(
    config, inputs["real"], generated, inputs["extractors"], out_dir if main else None,
    reference=inputs["reference"], train=inputs["train"], heldout=inputs["heldout"],
    unseen=inputs["unseen"],
    classify=inputs["classify"],
    feature_cache=inputs["feature_cache"],
    extra={"samples": samples_info, "data": resolve.record(config), **inputs["extra"], **flux},
  )  # fmt: skip
  if main:
    _log_summary("the samples", metrics, out_dir)
    _to_tensorboard(config, workdir, _jsonable(metrics["summary"]), samples_info["step"])
  pool_metrics = _evaluate_pool(config, workdir, inputs, samples_info, main)
  if pool_metrics is not None:
    metrics["classifier_pool"] = pool_metrics
  return metrics


_IMAGE_KEYS = ("images", "labels", "class_names", "step")


def _samples_info(path, generated: dict) -> dict:
  """Where a generated set comes from: path, DDPM step and the settings its npz records."""
  step = generated["step"] if "step" in generated else path.parent.name
  return {
    "path": str(path),
    "step": int(step),
    **{k: _jsonable(v) for k, v in generated.items() if k not in _IMAGE_KEYS},
  }
