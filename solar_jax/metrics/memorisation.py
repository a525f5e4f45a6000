"""Memorisation: are generated images closer to the DDPM's training images than new data is?

For each generated image, the distance to its nearest training image is set
against the same distance for held-out real images (frames the DDPM never
saw). A model that generalises produces images no closer to the training set
than held-out frames are; one that memorises (or a "real + synthetic" pool
that is oversampling with noise) produces near-copies.

Two figures, in any space (features, or pixels after the intensity transform):

* the ratio ``d_train(g) / median_h d_train(h)`` for every generated g; its
  distribution is near that of held-out images (median 1) when nothing is
  copied, and piles up near 0 for copies;
* the share of generated images closer to a training image than *any*
  held-out image is (``d_train(g) < min_h d_train(h)``). If generated and
  held-out images were exchangeable draws, each would fall below the minimum
  of M held-out distances with probability 1 / (M + 1): that is the null, and
  a one-sided binomial test says whether the share exceeds it. ``memorised``
  is True when p < ``alpha``.
"""

from __future__ import annotations

import numpy as np

from solar_jax.metrics import precision_recall, sample_size

ALPHA = 0.01


def _quantiles(values: np.ndarray) -> dict:
  q = np.quantile(values, [0.05, 0.25, 0.5, 0.75]) if len(values) else [None] * 4
  return dict(zip(("q05", "q25", "q50", "q75"), (None if v is None else float(v) for v in q)))


def memorisation(
  generated,
  train,
  heldout,
  *,
  generated_labels=None,
  class_names=(),
  num_pairs: int = 6,
  alpha: float = ALPHA,
) -> tuple[dict, dict]:
  """Nearest-training-image distances of generated vs held-out images ``[N, D]``.

  Returns:
    (summary for metrics.json, per-image arrays for the plots: 'ratio_generated',
    'ratio_heldout', 'nearest_train' [G] indices into ``train``).
  """
  g = precision_recall.as_matrix(generated)
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
  closer = d_gen < d_held.min()
  null = 1.0 / (m + 1)
  count = int(closer.sum())
  import scipy.stats  # ~0.6 s: only when the test runs.

  pvalue = float(scipy.stats.binomtest(count, len(g), null, alternative="greater").pvalue)
  ratio_gen, ratio_held = d_gen / scale, d_held / scale
  out.update(
    share=count / len(g),
    count=count,
    null_share=null,
    binomial_pvalue=pvalue,
    alpha=alpha,
    memorised=bool(pvalue < alpha),
    heldout_median_distance=scale,
    ratio_generated=_quantiles(ratio_gen),
    ratio_heldout=_quantiles(ratio_held),
  )
  order = np.argsort(ratio_gen, kind="stable")[:num_pairs]
  out["closest"] = [
    {"generated": int(i), "train": int(nearest[i]), "ratio": float(ratio_gen[i])} for i in order
  ]
  if generated_labels is not None:
    labels = np.asarray(generated_labels)
    out["per_class"] = {
      str(c): {"n": int((labels == i).sum()), "count": int(closer[labels == i].sum())}
      for i, c in enumerate(class_names)
    }
  arrays = {"ratio_generated": ratio_gen, "ratio_heldout": ratio_held, "nearest_train": nearest}
  return out, arrays
