"""Memorisation: are generated images closer to the DDPM's training images than new data is?

For each generated image, the distance to its nearest training image is set
against the same distance for held-out real images (frames the DDPM never
saw). A model that generalises produces images no closer to the training set
than held-out frames are; one that memorises (or a "real + synthetic" pool
that is oversampling with noise) produces near-copies.

Figures, in any space (features, or pixels after the intensity transform):

* the ratio ``d_train(g) / median_h d_train(h)`` for every generated g; its
  distribution is near that of held-out images (median 1) when nothing is
  copied, and piles up near 0 for copies;
* the count K of the G generated images closer to a training image than
  *any* of the M held-out images is (``d_train(g) < min_h d_train(h)``), and
  its exact p-value.

The null and its exact distribution. With no copying, generated and held-out
images are exchangeable draws, so given the training set their G + M
distances are exchangeable, and K is the number of generated images ranked
before the first held-out one: ``P(K >= k) = C(G, k) / C(G + M, k)``, the
upper tail of Beta-Binomial(G, 1, M) (all G comparisons share one random
threshold, whose exceedance probability is the minimum of M uniforms,
Beta(1, M)). The p-value is that tail at K (``pvalue``: the closed form,
which ``scipy.stats.betabinom.sf(K - 1, G, 1, M)`` equals to its precision;
``null`` in metrics.json). A binomial(G, 1/(M + 1)) test, used before,
ignores the shared threshold: at M = 50, G = 150 it flagged about 10 % of
copy-free runs at alpha = 0.01. Ties count against memorisation (strict ``<``): conservative.

Class-matched, per class. For class c the generated images of c are compared
with the training images of c, and the held-out images of c set the
threshold; each class gets its own K, p-value and flag. A class whose
held-out, training or generated set is empty or too small
(``sample_size.memorisation_reason``: M < MIN_HELDOUT, or no G and M for
which even K = G could reach alpha) is marked ``not_estimable`` with the
reason. The per-class flags are Holm-adjusted over the tested classes
(family-wise error <= alpha); ``class_matched`` adds up the tested classes'
counts, whose exact null is the convolution of their Beta-Binomials (the
classes' sets are disjoint, so their counts are independent under the null).
The pooled figure (all classes at once) assumes the generated and held-out
class mixes match; the class-matched figures do not.

Power: the test ranks, so one copied image among G generated ones can at
best give p = G / (G + M); a single copy is flagged only where M is large
beside G. What it detects is a generator that returns training images
repeatedly (a rare class collapsing onto its few training images); the
``closest`` pairs and the ratios show isolated near-copies for the eye.
"""

from __future__ import annotations

import math

import numpy as np

from solar_jax.metrics import precision_recall, sample_size

ALPHA = 0.01
NULL = (
  "exact: K ~ Beta-Binomial(G, 1, M) under exchangeable generated and held-out images "
  "(P(K >= k) = C(G, k) / C(G + M, k)); p = upper tail"
)


def _quantiles(values: np.ndarray) -> dict:
  q = np.quantile(values, [0.05, 0.25, 0.5, 0.75]) if len(values) else [None] * 4
  return dict(zip(("q05", "q25", "q50", "q75"), (None if v is None else float(v) for v in q)))


def null_pmf(g: int, m: int) -> np.ndarray:
  """float64 [G + 1]: P(K = k) under the null, Beta-Binomial(G, 1, M).

  ``M C(G, k) Γ(k + 1) Γ(G - k + M) / Γ(G + M + 1)``, in logs (scipy's
  ``betabinom.pmf`` agrees; tests/test_memorisation.py).
  """
  k = np.arange(g + 1)
  log = math.log(m) + math.lgamma(g + 1) - math.lgamma(g + m + 1)
  return np.exp(log - _lgamma(g - k + 1) + _lgamma(g - k + m))


def pvalue(count: int, g: int, m: int) -> float:
  """P(K >= count) = C(G, k) / C(G + M, k) for K ~ Beta-Binomial(G, 1, M): the exact p-value.

  The closed form in logs, accurate to rounding in the far tail, where
  ``scipy.stats.betabinom.sf`` (which it equals) loses digits.
  """
  if count <= 0:
    return 1.0
  if count > g:
    return 0.0
  log = math.lgamma(g + 1) - math.lgamma(g - count + 1)
  log += math.lgamma(g + m - count + 1) - math.lgamma(g + m + 1)
  return float(min(1.0, math.exp(log)))


def _lgamma(x: np.ndarray) -> np.ndarray:
  return np.array([math.lgamma(v) for v in np.asarray(x, np.float64)])


def holm(pvalues) -> np.ndarray:
  """Holm's step-down adjusted p-values (family-wise error control), in the input order."""
  p = np.asarray(pvalues, np.float64)
  order = np.argsort(p, kind="stable")
  scaled = (len(p) - np.arange(len(p))) * p[order]
  adjusted = np.empty_like(p)
  adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
  return adjusted


def _test(d_gen: np.ndarray, d_held: np.ndarray) -> dict:
  """K, the null share and the exact p-value of one (generated, held-out) pair of distance sets."""
  g, m = len(d_gen), len(d_held)
  count = int((d_gen < d_held.min()).sum())
  p = pvalue(count, g, m)
  return {"count": count, "share": count / g, "null_share": 1.0 / (m + 1), "pvalue": p}


def _class_matched(g, train, heldout, labels: dict, class_names, alpha: float) -> dict:
  """Per class c: generated of c against training images of c, held-out of c as the threshold."""
  per_class, tested = {}, []
  for i, name in enumerate(class_names):
    gen_c, train_c, held_c = (labels[k] == i for k in ("generated", "train", "heldout"))
    n = {"n_generated": int(gen_c.sum()), "n_train": int(train_c.sum())}
    n["n_heldout"] = int(held_c.sum())
    row = dict(n)
    reason = sample_size.memorisation_reason(n["n_generated"], n["n_train"], n["n_heldout"], alpha)
    if reason is not None:
      row["not_estimable"] = reason
    else:
      d_gen, _ = precision_recall.nearest_neighbour(g[gen_c], train[train_c])
      d_held, _ = precision_recall.nearest_neighbour(heldout[held_c], train[train_c])
      row.update(_test(d_gen, d_held))
      tested.append(str(name))
    per_class[str(name)] = row
  out = {"per_class": per_class, "tested": tested}
  if not tested:
    return out
  for name, adjusted in zip(tested, holm([per_class[c]["pvalue"] for c in tested])):
    per_class[name].update(pvalue_holm=float(adjusted), memorised=bool(adjusted < alpha))
  pmf = np.ones(1)
  for name in tested:
    pmf = np.convolve(pmf, null_pmf(per_class[name]["n_generated"], per_class[name]["n_heldout"]))
  total = sum(per_class[c]["count"] for c in tested)
  p = float(min(1.0, pmf[total:].sum()))
  out["combined"] = {
    "count": total,
    "n_generated": sum(per_class[c]["n_generated"] for c in tested),
    "pvalue": p,
    "memorised": bool(p < alpha),
    "null": "convolution of the tested classes' Beta-Binomial nulls",
  }
  return out


def memorisation(
  generated,
  train,
  heldout,
  *,
  generated_labels=None,
  train_labels=None,
  heldout_labels=None,
  class_names=(),
  num_pairs: int = 6,
  alpha: float = ALPHA,
) -> tuple[dict, dict]:
  """Nearest-training-image distances of generated vs held-out images ``[N, D]``.

  Args:
    generated, train, heldout: the three sets (features ``[N, D]`` or images); any
      held-out set the DDPM never trained on can be passed.
    generated_labels, train_labels, heldout_labels: class indices [N] of each set;
      with all three (and ``class_names``), the class-matched tests per class.
    alpha: the level of every flag (per class: Holm-adjusted p-values).

  Returns:
    (summary for metrics.json: pooled ``count``, ``share``, ``null_share``, ``pvalue``,
    ``memorised``, ``null``; ``per_class`` {class: N per set, and ``count``, ``pvalue``,
    ``pvalue_holm``, ``memorised`` or ``not_estimable``}; ``class_matched``; per-image
    arrays for the plots: 'ratio_generated', 'ratio_heldout', 'nearest_train' [G]
    indices into ``train``).
  """
  g, train, heldout = (precision_recall.as_matrix(x) for x in (generated, train, heldout))
  d_gen, nearest = precision_recall.nearest_neighbour(g, train)
  d_held, _ = precision_recall.nearest_neighbour(heldout, train)
  m = len(d_held)
  out: dict = {"n_generated": len(g), "n_train": len(train), "n_heldout": m}
  reason = sample_size.heldout_reason(m)
  if reason is not None or len(g) == 0:
    out["not_estimable"] = reason or "no generated images"
    return out, {}
  scale = float(np.median(d_held))
  if scale == 0:
    out["not_estimable"] = "held-out images coincide with training images (the splits overlap)"
    return out, {}
  pooled = _test(d_gen, d_held)
  ratio_gen, ratio_held = d_gen / scale, d_held / scale
  out.update(
    **pooled,
    null=NULL,
    alpha=alpha,
    memorised=bool(pooled["pvalue"] < alpha),
    heldout_median_distance=scale,
    ratio_generated=_quantiles(ratio_gen),
    ratio_heldout=_quantiles(ratio_held),
  )
  order = np.argsort(ratio_gen, kind="stable")[:num_pairs]
  out["closest"] = [
    {"generated": int(i), "train": int(nearest[i]), "ratio": float(ratio_gen[i])} for i in order
  ]
  given = {"generated": generated_labels, "train": train_labels, "heldout": heldout_labels}
  if all(v is not None for v in given.values()) and len(class_names):
    labels = {k: np.asarray(v, np.int64).reshape(-1) for k, v in given.items()}
    matched = _class_matched(g, train, heldout, labels, class_names, alpha)
    out["per_class"] = matched.pop("per_class")
    out["class_matched"] = {
      **matched,
      "multiplicity": f"Holm over the tested classes (family-wise error <= {alpha:g})",
    }
  else:
    out["class_matched"] = {"not_estimable": "class labels of every set are needed"}
  arrays = {"ratio_generated": ratio_gen, "ratio_heldout": ratio_held, "nearest_train": nearest}
  return out, arrays


def training_subset(labels, per_class: int, seed: int, class_names=()) -> tuple[np.ndarray, dict]:
  """Which training frames the search covers: every one of a class, or a seeded random subset.

  A class with at most ``per_class`` frames is searched whole; a larger one
  through a uniform random subset of ``per_class`` of its frames (without
  replacement, ``numpy.random.default_rng([seed, class index])``), never the
  first ones in stored order. Returns (sorted indices into ``labels``, the
  record for metrics.json: rule, cap, seed, per class available and searched).
  """
  labels = np.asarray(labels, np.int64).reshape(-1)
  chosen, counts = [], {}
  for c in np.unique(labels[labels >= 0]):
    members = np.flatnonzero(labels == c)
    if members.size > per_class:
      rng = np.random.default_rng([seed, int(c)])
      members = rng.choice(members, per_class, replace=False)
    chosen.append(members)
    name = str(class_names[c]) if c < len(class_names) else str(int(c))
    counts[name] = {"available": int((labels == c).sum()), "searched": int(members.size)}
  indices = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)
  record = {
    "rule": "every training frame of a class with at most per_class_cap frames, else a "
    "uniform random subset of per_class_cap (seeded)",
    "per_class_cap": int(per_class),
    "seed": int(seed),
    "available": int(labels.size),
    "searched": int(indices.size),
    "per_class": counts,
  }
  return indices, record
