"""Distribution metrics of one feature space, with the sample-size rules and real-vs-real floors.

Which images. The overall figures compare N real images of the evaluation
split with N generated ones: N = min(num_images, real available, generated
available); the real images are a seeded random subset and the generated ones
are drawn class by class to match the real subset's class mix as far as the
generated set allows (the rest at random), so that the overall figures do not
mostly measure a difference in class proportions. Per class, n = min(real of
that class, generated of that class, num_images).

Floors. Each figure comes with its real-vs-real value: the same real images
against as many images of a second, disjoint real split (``evaluation.
floor_split``, by default validation), class mix matched the same way. At the
same N and features this is what a perfect generator would score (FID's bias
at N included); when the floor split has fewer images the floor is computed at
its own, smaller n, which is recorded (and shown in the report).

A figure below its minimum N (``sample_size``) is left out and marked with the
reason (``<figure>_not_estimable``), never replaced by a surrogate.
"""

from __future__ import annotations

import numpy as np
from absl import logging

from solar_jax.metrics import clusters, fid, precision_recall, sample_size


def match_class_mix(wanted_labels, pool_labels, n, num_classes, rng) -> np.ndarray:
  """``n`` indices of ``pool_labels`` whose class counts follow ``wanted_labels`` (rest random)."""
  wanted = np.bincount(np.asarray(wanted_labels, np.int64), minlength=num_classes)
  chosen: list[int] = []
  for c in range(num_classes):
    pool = np.flatnonzero(pool_labels == c)
    chosen.extend(rng.choice(pool, min(wanted[c], len(pool), n - len(chosen)), replace=False))
  rest = np.setdiff1d(np.arange(len(pool_labels)), chosen)
  chosen.extend(rng.choice(rest, n - len(chosen), replace=False))
  return np.sort(np.asarray(chosen, np.int64))


def select(config, real_labels, fake_labels, ref_labels, rng) -> dict:
  """Index sets of every comparison; see the module doc.

  Returns:
    {'n': N, 'overall': (real, fake, real_for_floor, reference), 'per_class':
    {name: (real, fake, real_for_floor, reference)}}; reference parts are empty
    without a reference split.
  """
  ev = config.evaluation
  names = tuple(config.data.classes)
  n = int(min(ev.num_images, len(real_labels), len(fake_labels)))
  real_idx = np.sort(rng.choice(len(real_labels), n, replace=False))
  fake_idx = match_class_mix(real_labels[real_idx], fake_labels, n, len(names), rng)
  out = {"n": n, "overall": (real_idx, fake_idx, *_floor(real_idx, real_labels, ref_labels, rng))}
  out["per_class"] = {}
  for i, name in enumerate(names):
    real_pool, fake_pool = np.flatnonzero(real_labels == i), np.flatnonzero(fake_labels == i)
    m = min(len(real_pool), len(fake_pool), ev.num_images)
    r = np.sort(rng.choice(real_pool, m, replace=False))
    f = np.sort(rng.choice(fake_pool, m, replace=False))
    out["per_class"][name] = (r, f, *_floor(r, real_labels, ref_labels, rng))
  return out


def _floor(real_idx, real_labels, ref_labels, rng) -> tuple[np.ndarray, np.ndarray]:
  """(real subset, reference images) for the floor of the comparison on ``real_idx``."""
  empty = np.zeros(0, np.int64)
  if ref_labels is None or len(ref_labels) == 0 or len(real_idx) == 0:
    return empty, empty
  classes = np.unique(real_labels[real_idx])
  # One class: its own reference images only; several: the mix matched, the rest any class.
  pool = np.arange(len(ref_labels))
  if len(classes) == 1:
    pool = np.flatnonzero(ref_labels == classes[0])
  m = min(len(real_idx), len(pool))
  real_sub = np.sort(rng.choice(real_idx, m, replace=False))
  num_classes = int(max(real_labels.max(), ref_labels.max())) + 1
  ref_idx = pool[match_class_mix(real_labels[real_sub], ref_labels[pool], m, num_classes, rng)]
  return real_sub, np.sort(ref_idx)


def pair_metrics(a, b, *, dim: int, config, num_clusters: int | None = None) -> dict:
  """FID, KID [CI], precision/recall, density/coverage (and clusters) of two feature sets."""
  ev = config.evaluation
  n = int(min(len(a), len(b)))
  out: dict = {"n": n}
  if n < 2:
    out["not_estimable"] = f"N={n} < 2 images per set"
    return out
  reason = sample_size.fid_reason(n, dim)
  if reason is None:
    out.update(_fid(a, b))
  else:
    out["fid_not_estimable"] = reason
  reason = sample_size.kid_reason(n)
  if reason is None:
    out["kid"] = fid.kernel_inception_distance(
      a, b, num_bootstrap=ev.kid_bootstrap, seed=config.seed
    )
  else:
    out["kid_not_estimable"] = reason
  reason = sample_size.neighbours_reason(n, ev.nearest_k)
  if reason is None:
    out.update(precision_recall.prdc(a, b, k=ev.nearest_k))
  else:
    out["precision_recall_not_estimable"] = reason
  if num_clusters is not None:
    reason = sample_size.clusters_reason(n, num_clusters)
    if reason is None:
      out["clusters"] = clusters.cluster_metrics(a, b, num_clusters, seed=config.seed)
    else:
      out["clusters_not_estimable"] = reason
  return out


def unseen_per_class(config, feats: dict, labels: dict, dim: int, rng) -> dict:
  """Per class, the samples against every real frame of the class the generator never saw.

  ``feats['unseen']``/``labels['unseen']``: the frames of every split but the
  generator's training frames (``evaluate.load_unseen``), so a rare class is compared
  with all its unseen frames, not with the few of the evaluation split. Per class
  n = min(unseen of the class, generated of the class, ``evaluation.num_images``),
  each side a seeded uniform subset of n; ``n_real_available``/``n_generated_available``
  say how many there were. No floor: every unseen frame may be in use.
  """
  out = {}
  for i, name in enumerate(config.data.classes):
    real_pool = np.flatnonzero(labels["unseen"] == i)
    fake_pool = np.flatnonzero(labels["fake"] == i)
    m = min(len(real_pool), len(fake_pool), config.evaluation.num_images)
    r = np.sort(rng.choice(real_pool, m, replace=False))
    f = np.sort(rng.choice(fake_pool, m, replace=False))
    entry = pair_metrics(feats["unseen"][r], feats["fake"][f], dim=dim, config=config)
    entry.update(n_real_available=int(real_pool.size), n_generated_available=int(fake_pool.size))
    out[str(name)] = entry
  return out


def _fid(a, b) -> dict:
  try:
    return {"fid": fid.fid_from_features(a, b), "fid_method": "sqrtm"}
  except ValueError as e:  # N > D, yet sqrtm failed: said so, in the JSON and the log.
    logging.warning("FID by sqrtm failed (%s); using the eigenvalue route.", e)
    return {
      "fid": fid.fid_from_features(a, b, method="eigh"),
      "fid_method": "eigh",
      "fid_method_reason": str(e),
    }


def space_metrics(config, feats: dict, selection: dict, dim: int) -> dict:
  """Every comparison of one feature space: overall (with clusters) and per class, with floors.

  Args:
    feats: {'real', 'fake', 'reference'} feature arrays [N, D] (reference may be None).
    selection: from :func:`select`.
  """

  def entry(parts, num_clusters=None):
    real_idx, fake_idx, floor_real, ref_idx = parts
    out = pair_metrics(
      feats["real"][real_idx], feats["fake"][fake_idx], dim=dim, config=config,
      num_clusters=num_clusters,
    )  # fmt: skip
    if feats.get("reference") is None:
      out["floor"] = {"not_estimable": "no second real split (evaluation.floor_split)"}
    else:
      out["floor"] = pair_metrics(
        feats["real"][floor_real], feats["reference"][ref_idx], dim=dim, config=config
      )
    return out

  return {
    "dim": int(dim),
    "overall": entry(selection["overall"], config.evaluation.num_clusters),
    "per_class": {c: entry(parts) for c, parts in selection["per_class"].items()},
  }
