"""--mode=evaluate: how close are the generated Suns to real ones?

Reads the newest ``workdir/samples/<step>/samples.npz`` (generated, DN/s) and
real images of ``config.evaluation.split`` (DN/s), computes features with
every extractor in ``config.evaluation.extractors`` and writes to
``workdir/eval/``:

* ``metrics.json``: FID, KID, precision/recall, density/coverage and cluster
  occupancy per extractor, overall and per GOES class, and the physical
  statistics; every figure carries the number of images behind it;
* ``features_<extractor>.npz``: the features, labels and image indices used;
* PNGs: real vs synthetic grids per class, on-disk intensity histograms, limb
  profiles, power spectra and cluster occupancy bars;
* ``classifier_pool/``: the same for the synthetic images the flare classifier
  trained on (``workdir/classifier/synthetic/step_<step>.npz`` of the samples'
  step), when they were drawn with other sampling settings than the samples
  (for example ``classifier.guidance_scale``), so that the realism of the
  images behind the classifier's figures is on record too.

Which images. Up to ``num_images × num_classes`` real images are read, so
rarer classes have real images for the per-class figures. The overall figures
use the same N for both sets: N = min(num_images, real available, generated
available). The N real images are a seeded random subset; the N generated
ones are drawn class by class to match the real subset's class mix as far as
the generated set allows (the rest at random), so that the overall FID does
not mostly measure a difference in class proportions. Per class, n = min(real
of that class, generated of that class, num_images). Both sets' class counts
are in metrics.json.

Extractors. 'inception' needs ``config.evaluation.inception_weights`` (see
solar_jax/models/inception.py; a missing file is an error). 'classifier' uses
the trained flare classifier's penultimate features from
``solar_jax.evaluation.features.load_classifier_extractor(config, workdir)``; when
no trained classifier exists this is an error too, unless another requested
extractor is available, in which case the classifier is skipped and the
reason recorded under ``skipped_extractors``.
"""

from __future__ import annotations

import json
import math

import numpy as np
from absl import logging
from etils import epath

from solar_jax import errors, parallel, viz
from solar_jax import workdir as wd
from solar_jax.data import input_pipeline, scaling
from solar_jax.evaluation import clusters, fid, physics, precision_recall
from solar_jax.evaluation.features import Extractor, build_extractors

GRID_PER_CLASS = 6  # Real and synthetic images shown per class.


# ------------------------------------------------------------- inputs ---


def load_samples(path) -> dict:
  """Generated images (DN/s), labels and the sampler settings from a samples.npz."""
  out = wd.read_npz(path)
  for key in ("images", "labels", "class_names"):
    if key not in out:
      raise errors.InputMismatchError(f"{path} has no {key!r} array (keys: {sorted(out)}).")
  return out


def load_real(config, max_examples: int) -> dict:
  """Real images of ``config.evaluation.split`` in DN/s, with labels."""
  arrays = input_pipeline.load_split_arrays(
    config.data, config.evaluation.split, max_examples=max_examples, transform=False
  )
  return {"images": np.asarray(arrays["image"], np.float32), "labels": np.asarray(arrays["label"])}


# -------------------------------------------------------- selection ---


def _select_overall(real_labels, fake_labels, n, num_classes, rng):
  """Indices of N real (random) and N generated images (class mix matched to the real)."""
  real_idx = np.sort(rng.choice(len(real_labels), n, replace=False))
  wanted = np.bincount(real_labels[real_idx], minlength=num_classes)
  fake_idx = []
  for c in range(num_classes):
    pool = np.flatnonzero(fake_labels == c)
    fake_idx.extend(rng.choice(pool, min(wanted[c], len(pool)), replace=False))
  rest = np.setdiff1d(np.arange(len(fake_labels)), fake_idx)
  fake_idx.extend(rng.choice(rest, n - len(fake_idx), replace=False))
  return real_idx, np.sort(np.asarray(fake_idx, np.int64))


def _select_class(real_labels, fake_labels, c, cap, rng):
  real_pool, fake_pool = np.flatnonzero(real_labels == c), np.flatnonzero(fake_labels == c)
  n = min(len(real_pool), len(fake_pool), cap)
  return (
    np.sort(rng.choice(real_pool, n, replace=False)),
    np.sort(rng.choice(fake_pool, n, replace=False)),
  )


# ---------------------------------------------------------- metrics ---


def _fid(real_f, fake_f) -> dict:
  try:
    return {"fid": fid.fid_from_features(real_f, fake_f), "fid_method": "sqrtm"}
  except ValueError:  # Rank-deficient covariances (n < D): the eigenvalue route is stable.
    return {"fid": fid.fid_from_features(real_f, fake_f, method="eigh"), "fid_method": "eigh"}


def feature_metrics(real_f, fake_f, config, *, with_clusters: bool) -> dict:
  """FID, KID, P/R, D/C (and clusters) of two equal-size feature sets."""
  ev = config.evaluation
  n = len(real_f)
  out: dict = {"n": n}
  if n < 2:
    out["note"] = "fewer than 2 images per set: no figures"
    return out
  out.update(_fid(real_f, fake_f))
  out["kid"] = fid.kernel_inception_distance(
    real_f, fake_f, num_subsets=ev.kid_subsets, subset_size=ev.kid_subset_size, seed=config.seed
  )
  if n > ev.nearest_k:
    out.update(precision_recall.prdc(real_f, fake_f, k=ev.nearest_k))
  else:
    out["note"] = f"n={n} <= nearest_k={ev.nearest_k}: no precision/recall"
  if with_clusters:
    out["clusters"] = clusters.cluster_metrics(real_f, fake_f, ev.num_clusters, seed=config.seed)
  return out


def _summary(overall: dict) -> dict:
  """The headline figures of one extractor's overall metrics."""
  found = {
    "fid": overall.get("fid"),
    "kid": overall.get("kid", {}).get("mean"),
    "precision": overall.get("precision"),
    "recall": overall.get("recall"),
    "density": overall.get("density"),
    "coverage": overall.get("coverage"),
    "cluster_js": overall.get("clusters", {}).get("js_divergence"),
  }
  return {k: v for k, v in found.items() if v is not None}


def _select(config, real_labels, fake_labels, rng) -> tuple[int, tuple, dict]:
  """(N, the overall (real, generated) indices, per-class index pairs); see the module doc."""
  ev = config.evaluation
  class_names = tuple(config.data.classes)
  n = int(min(ev.num_images, len(real_labels), len(fake_labels)))
  if n < 2:
    raise errors.InputMismatchError(
      f"need at least 2 real and 2 generated images, have {len(real_labels)} real "
      f"({ev.split} split) and {len(fake_labels)} generated."
    )
  overall = _select_overall(real_labels, fake_labels, n, len(class_names), rng)
  per_class = {
    c: _select_class(real_labels, fake_labels, i, ev.num_images, rng)
    for i, c in enumerate(class_names)
  }
  return n, overall, per_class


def _feature_entry(config, extract, real, generated, overall_idx, per_class_idx, out_dir, name):
  """Every feature-space figure of one extractor; writes its features (and cluster plot)."""
  data = config.data
  real_idx, fake_idx = overall_idx
  # Features once per image that any figure uses.
  real_used = np.unique(np.concatenate([real_idx, *(r for r, _ in per_class_idx.values())]))
  fake_used = np.unique(np.concatenate([fake_idx, *(f for _, f in per_class_idx.values())]))

  def features(images_dns, used):
    model = scaling.forward(np.asarray(images_dns[used], np.float32), data.clip_min, data.clip_max)
    return _scatter(extract(model), used)

  logging.info(
    "Extracting %s features: %d real, %d generated.", name, len(real_used), len(fake_used)
  )
  real_f = features(real["images"], real_used)
  fake_f = features(generated["images"], fake_used)
  entry = {"dim": int(real_f[real_used[0]].shape[0])}
  entry["overall"] = feature_metrics(
    _gather(real_f, real_idx), _gather(fake_f, fake_idx), config, with_clusters=True
  )
  entry["per_class"] = {
    c: feature_metrics(_gather(real_f, r), _gather(fake_f, f), config, with_clusters=False)
    for c, (r, f) in per_class_idx.items()
  }
  if out_dir is not None:
    _save_features(
      out_dir / f"features_{name}.npz", real_f, fake_f, real_used, fake_used, real, generated
    )
  return entry


def evaluate_arrays(
  config,
  real: dict,
  generated: dict,
  extractors: dict[str, Extractor],
  out_dir,
  *,
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
    write_plots: whether to draw the PNGs.
    extra: entries added to metrics.json as they are (e.g. the samples' settings).

  Returns:
    The metrics dict written to ``out_dir/metrics.json``.
  """
  if out_dir is not None:
    out_dir = epath.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
  write_plots = write_plots and out_dir is not None
  ev, data = config.evaluation, config.data
  class_names = tuple(data.classes)
  real_labels = np.asarray(real["labels"], np.int64)
  fake_labels = np.asarray(generated["labels"], np.int64)
  rng = np.random.default_rng(config.seed)
  n, (real_idx, fake_idx), per_class_idx = _select(config, real_labels, fake_labels, rng)

  def counts(labels):
    return dict(zip(class_names, np.bincount(labels, minlength=len(class_names)).tolist()))

  metrics: dict = {
    "num_images": n,
    "num_images_note": (
      f"N = min(evaluation.num_images={ev.num_images}, real available={len(real_labels)}, "
      f"generated available={len(fake_labels)}); per-class n = min(real, generated, "
      "num_images) for that class"
    ),
    "summary": {},
    "split": ev.split,
    "class_counts": {
      "real_overall": counts(real_labels[real_idx]),
      "generated_overall": counts(fake_labels[fake_idx]),
      "real_available": counts(real_labels),
      "generated_available": counts(fake_labels),
    },
    **(extra or {}),
    "features": {},
  }
  for name, extract in extractors.items():
    entry = _feature_entry(
      config, extract, real, generated, (real_idx, fake_idx), per_class_idx, out_dir, name
    )
    metrics["features"][name] = entry
    metrics["summary"][name] = _summary(entry["overall"])
    if write_plots and "clusters" in entry["overall"]:
      _plot_clusters(entry["overall"]["clusters"], name, out_dir / f"cluster_occupancy_{name}.png")

  stats = physics.physics_statistics(
    real["images"][real_idx], generated["images"][fake_idx], floor=data.clip_min, seed=config.seed
  )
  metrics["physics"] = {k: v for k, v in stats.items() if not isinstance(v, dict)}
  metrics["physics"]["brightness_by_class"] = physics.compare_brightness_by_class(
    real["images"], real_labels, generated["images"], fake_labels, class_names
  )
  metrics["summary"]["physics"] = {
    key: stats[key]
    for key in (
      "intensity_wasserstein_dex",
      "limb_profile_mean_abs_log_ratio",
      "power_spectrum_mean_abs_log_ratio",
    )
  }
  if write_plots:
    _plot_physics(stats, n, out_dir)
    _plot_grids(config, real, generated, per_class_idx, out_dir)
  if out_dir is not None:
    wd.write_json(out_dir / "metrics.json", _jsonable(metrics))
  return metrics


def _scatter(features: np.ndarray, indices: np.ndarray) -> dict:
  return {int(i): f for i, f in zip(indices, np.asarray(features, np.float32))}


def _gather(table: dict, indices: np.ndarray) -> np.ndarray:
  return np.stack([table[int(i)] for i in indices]) if len(indices) else np.zeros((0, 1))


def _save_features(path, real_f, fake_f, real_used, fake_used, real, generated) -> None:
  wd.write_npz(
    path,
    real=_gather(real_f, real_used),
    generated=_gather(fake_f, fake_used),
    real_index=real_used,
    generated_index=fake_used,
    real_labels=np.asarray(real["labels"])[real_used],
    generated_labels=np.asarray(generated["labels"])[fake_used],
  )


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


# ------------------------------------------------------------- plots ---


def _plot_physics(stats: dict, n: int, out_dir: epath.Path) -> None:
  hist = stats["histogram"]
  fig = viz.figure(5, 3.5)
  ax = fig.add_subplot()
  for key, label in (("real", "real"), ("fake", "synthetic")):
    ax.stairs(hist[key], hist["edges"], label=label)
  ax.set_xlabel("log10 intensity on disk [DN/s]")
  ax.set_ylabel("density")
  ax.set_title(f"on-disk intensity (N={n} each)")
  ax.legend()
  viz.save_png(fig, out_dir / "intensity_histogram.png", tight=True)

  fig = viz.figure(5, 3.5)
  ax = fig.add_subplot()
  for key, label in (("real", "real"), ("fake", "synthetic")):
    prof = stats["limb"][key]
    ax.plot(prof["r"], prof["mean"], label=label)
    ax.fill_between(prof["r"], prof["mean"] - prof["std"], prof["mean"] + prof["std"], alpha=0.2)
  ax.axvline(1.0, color="grey", lw=0.8, ls="--")
  ax.set_xlabel("r / R_sun")
  ax.set_ylabel("mean intensity [DN/s]")
  ax.set_title(f"radial profile (N={n} each, ±1 std)")
  ax.legend()
  viz.save_png(fig, out_dir / "limb_profile.png", tight=True)

  fig = viz.figure(5, 3.5)
  ax = fig.add_subplot()
  for key, label in (("real", "real"), ("fake", "synthetic")):
    spec = stats["spectrum"][key]
    ax.loglog(spec["k"], spec["power"], label=label)
  ax.set_xlabel("k [cycles per image]")
  ax.set_ylabel("power of log10 intensity")
  ax.set_title(f"azimuthally averaged power spectrum (N={n} each)")
  ax.legend()
  viz.save_png(fig, out_dir / "power_spectrum.png", tight=True)


def _plot_clusters(result: dict, name: str, path) -> None:
  real = np.asarray(result["real_counts"], float)
  fake = np.asarray(result["fake_counts"], float)
  order = np.argsort(-real)
  x = np.arange(len(real))
  fig = viz.figure(max(5, 0.3 * len(real)), 3.5)
  ax = fig.add_subplot()
  ax.bar(x - 0.2, real[order] / real.sum(), 0.4, label=f"real (N={result['num_real']})")
  ax.bar(x + 0.2, fake[order] / fake.sum(), 0.4, label=f"synthetic (N={result['num_fake']})")
  ax.set_xticks(x, [str(i) for i in order], fontsize=7)
  ax.set_xlabel("k-means cluster of real features (sorted by real share)")
  ax.set_ylabel("share")
  ax.set_title(
    f"{name} feature clusters: JS={result['js_divergence']:.3f}, "
    f"missed {len(result['missed'])}, over-filled {len(result['overfilled'])}"
  )
  ax.legend()
  viz.save_png(fig, path, tight=True)


def _plot_grids(config, real, generated, per_class_idx, out_dir) -> None:
  for c, (r, f) in per_class_idx.items():
    k = min(len(r), len(f), GRID_PER_CLASS)
    if k == 0:
      continue
    images = np.concatenate([real["images"][r[:k]], generated["images"][f[:k]]])
    labels = np.repeat([0, 1], k)
    viz.save_image_grid(
      images,
      labels,
      (f"real {c}", f"synthetic {c}"),
      out_dir / f"grid_{c}.png",
      title=f"class {c}: real (top) vs synthetic (bottom)",
      vmin=config.data.clip_min,
      vmax=config.data.clip_max,
      ncols=k,
    )


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


def _evaluate_pool(config, workdir, real, samples_info, extractors, skipped, main) -> dict | None:
  """Scores the classifier's synthetic images when they were drawn otherwise than the samples."""
  pool_path = wd.pool_path(workdir, samples_info["step"])
  if not pool_path.exists():
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
  metrics = evaluate_arrays(
    config,
    real,
    pool,
    extractors,
    pool_dir if main else None,
    extra={"samples": pool_info, "skipped_extractors": skipped},
  )
  if main:
    _log_summary(
      f"the classifier's synthetic images (other {', '.join(differs)})", metrics, pool_dir
    )
  return metrics


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
  extractors, skipped = build_extractors(config, workdir, mesh)
  real = load_real(config, max_examples=config.evaluation.num_images * len(names))
  if real["images"].shape[1:] != generated["images"].shape[1:]:
    raise errors.InputMismatchError(
      f"real images {real['images'].shape[1:]} and generated {generated['images'].shape[1:]} "
      f"({samples_path}) differ in shape; evaluate with the config the samples were made with."
    )
  out_dir = wd.eval_dir(workdir)
  main = parallel.is_main_process()
  samples_info = _samples_info(samples_path, generated)
  extra = {"samples": samples_info, "skipped_extractors": skipped}
  metrics = evaluate_arrays(
    config, real, generated, extractors, out_dir if main else None, extra=extra
  )
  if main:
    _log_summary("the samples", metrics, out_dir)
    _to_tensorboard(config, workdir, _jsonable(metrics["summary"]), samples_info["step"])
  pool_metrics = _evaluate_pool(config, workdir, real, samples_info, extractors, skipped, main)
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
