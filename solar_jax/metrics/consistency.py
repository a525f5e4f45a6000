"""Class consistency: does a sample drawn for class X look like an X to a real-only classifier?

A flare classifier trained on real images only (no synthetic image has
touched it) labels every generated image; the figure is the share of the
images asked for each conditioning class that it recognises as that class
(per-class recall, with a Wilson 95 % interval), and the confusion matrix of
"asked for" against "recognised as". The same on real test images gives the
reference: the classifier's own recall, which is all a generator can hope to
reach.

The classifier's classes may be coarser than the conditioning classes (a
binary ">= M" task): ``task_of_class`` maps each conditioning class to the
classifier label that counts as recognised.

Chance level is the balanced accuracy of labels independent of the images,
given how often the classifier outputs each label:
``mean_c P(recognised = task(c))``; shuffled labels score near it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
  """Wilson score interval of a binomial proportion (sensible at small n and 0 or n)."""
  if n == 0:
    return (float("nan"), float("nan"))
  p = successes / n
  denom = 1.0 + z * z / n
  centre = (p + z * z / (2 * n)) / denom
  half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
  return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


def class_consistency(
  asked,
  recognised,
  class_names: Sequence[str],
  recognised_names: Sequence[str] | None = None,
  task_of_class=None,
) -> dict:
  """Per-class recall and confusion of conditioning labels vs a classifier's labels.

  Args:
    asked: int [N], the conditioning class of each image (index into class_names).
    recognised: int [N], the classifier's label (index into recognised_names).
    class_names: conditioning classes, e.g. ('A', 'B', 'C', 'M', 'X').
    recognised_names: the classifier's classes (default: class_names).
    task_of_class: int [len(class_names)], the classifier label that counts as
      recognised for each conditioning class (default: the identity).

  Returns:
    {'per_class': {name: {'n', 'recognised', 'recall', 'ci_low', 'ci_high'}},
    'confusion' [K, K'] (rows asked, columns recognised), 'balanced_accuracy'
    (mean recall of the classes present), 'chance', 'n', 'recognised_names'}.
  """
  asked, recognised = np.asarray(asked, np.int64), np.asarray(recognised, np.int64)
  recognised_names = tuple(recognised_names or class_names)
  k, k_task = len(class_names), len(recognised_names)
  target = np.arange(k) if task_of_class is None else np.asarray(task_of_class, np.int64)
  confusion = np.zeros((k, k_task), np.int64)
  np.add.at(confusion, (asked, recognised), 1)
  per_class, recalls, chance = {}, [], []
  share = np.bincount(recognised, minlength=k_task) / max(len(recognised), 1)
  for i, name in enumerate(class_names):
    n = int(confusion[i].sum())
    hits = int(confusion[i, target[i]])
    low, high = wilson_interval(hits, n)
    per_class[str(name)] = {
      "n": n,
      "recognised": hits,
      "recall": hits / n if n else None,
      "ci_low": low if n else None,
      "ci_high": high if n else None,
    }
    if n:
      recalls.append(hits / n)
      chance.append(share[target[i]])
  return {
    "n": int(len(asked)),
    "per_class": per_class,
    "confusion": confusion.tolist(),
    "recognised_names": list(recognised_names),
    "balanced_accuracy": float(np.mean(recalls)) if recalls else None,
    "chance": float(np.mean(chance)) if chance else None,
  }


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Spearman's rho of each row pair of ``x``, ``y`` [B, N] (average ranks for ties)."""
  from scipy.stats import rankdata

  rx, ry = rankdata(x, axis=1), rankdata(y, axis=1)
  rx, ry = rx - rx.mean(1, keepdims=True), ry - ry.mean(1, keepdims=True)
  with np.errstate(invalid="ignore", divide="ignore"):
    return (rx * ry).sum(1) / np.sqrt((rx**2).sum(1) * (ry**2).sum(1))


def resample_indices(n: int, num_samples: int, seed: int, groups=None) -> list[np.ndarray]:
  """``num_samples`` bootstrap resamples of ``n`` items (seeded), each an int64 index array.

  Without ``groups`` the ``n`` items are drawn with replacement. With ``groups`` [N]
  (e.g. the real frames' bootstrap units: frames of one flare or one block of quiet
  days are not independent) as many whole groups as there are are drawn with
  replacement and every item of a drawn group enters, so a resample's length varies.
  """
  rng = np.random.default_rng(seed)
  if groups is None:
    return list(rng.integers(0, n, (num_samples, n)))
  _, codes = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
  if len(codes) != n:
    raise ValueError(f"{len(codes)} groups for {n} items.")
  members = [np.flatnonzero(codes == g) for g in range(codes.max() + 1)]
  return [
    np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
    for _ in range(num_samples)
  ]


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
  return float(_spearman_rows(x[None], y[None])[0])


def _summary(point, samples, level: float) -> dict:
  tail = 100 * (1 - level) / 2
  samples = np.asarray(samples, np.float64)
  finite = samples[np.isfinite(samples)]
  low, high = np.percentile(finite, [tail, 100 - tail]) if finite.size else (np.nan, np.nan)
  return {"value": float(point), "low": float(low), "high": float(high)}


def rank_correlation(
  x, y, *, num_samples: int = 1000, seed: int = 0, level: float = 0.95, groups=None
) -> dict:
  """Spearman's rho of ``x`` and ``y`` [N] with a percentile interval of ``level`` over
  ``num_samples`` bootstrap resamples (``resample_indices``; resamples where rho is
  undefined, e.g. all ties, are left out): ``{'n', 'value', 'low', 'high'}``."""
  x, y = np.asarray(x, np.float64).reshape(-1), np.asarray(y, np.float64).reshape(-1)
  if x.shape != y.shape or len(x) < 3:
    raise ValueError(f"a rank correlation needs >= 3 pairs, got {len(x)} and {len(y)}.")
  draws = resample_indices(len(x), num_samples, seed, groups)
  rhos = [_spearman(x[d], y[d]) for d in draws]
  return {"n": len(x), **_summary(_spearman(x, y), rhos, level)}


def flux_consistency(
  requested,
  recovered,
  *,
  num_samples: int = 1000,
  seed: int = 0,
  level: float = 0.95,
  groups=None,
) -> dict:
  """Does a flux generator make the flux it is asked for? Agreement of the ``requested``
  GOES fluxes with those a real-only regressor ``recovered`` from the images (W m^-2).

  Returns Spearman's rho and the mean absolute error in decades (|log10 ratio|) with
  percentile intervals of ``level`` over ``num_samples`` bootstrap resamples of the
  images (seeded; with ``groups``, of whole groups: ``resample_indices``), and the
  number of images: ``{'n', 'spearman_rho': {'value', 'low', 'high'}, 'mae_decades':
  {...}}`` (and ``'groups'``, their number, where given). The same on real test frames
  (their GOES flux against the regressor's, resampled by their bootstrap units) is the
  floor a generator can reach.
  """
  req = np.log10(np.asarray(requested, np.float64).reshape(-1))
  rec = np.log10(np.asarray(recovered, np.float64).reshape(-1))
  if req.shape != rec.shape or len(req) < 3 or not np.isfinite(req).all():
    raise ValueError(
      f"flux_consistency needs >= 3 paired positive fluxes, got {len(req)} and {len(rec)}."
    )
  draws = resample_indices(len(req), num_samples, seed, groups)
  if groups is None:  # Equal lengths: one vectorised pass.
    stacked = np.stack(draws)
    rhos = _spearman_rows(req[stacked], rec[stacked])
    maes = np.abs(req[stacked] - rec[stacked]).mean(1)
  else:
    rhos = [_spearman(req[d], rec[d]) for d in draws]
    maes = [np.abs(req[d] - rec[d]).mean() for d in draws]
  out = {
    "n": len(req),
    "spearman_rho": _summary(_spearman(req, rec), rhos, level),
    "mae_decades": _summary(np.abs(req - rec).mean(), maes, level),
  }
  if groups is not None:
    out["groups"] = int(len({str(g) for g in groups}))
  return out
