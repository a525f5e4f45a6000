"""Random-projection features: a second feature space that needs no training and no download.

Each model-space image (after the intensity transform) is block-averaged to
at most ``POOLED_SIDE``² pixels and multiplied by a fixed Gaussian matrix
(seeded, entries N(0, 1/P) for P pooled pixels), giving ``dim`` features. By
the Johnson-Lindenstrauss property distances between these features follow
pixel distances of the pooled images: the space knows nothing of what makes a
Sun look real, so it is a sanity floor. A generator that is far from the real
set here differs in gross brightness or layout; one that is close here but far
in the classifier's features differs in the details the classifier learnt.
"""

from __future__ import annotations

import numpy as np

POOLED_SIDE = 16


def pool(images: np.ndarray, side: int = POOLED_SIDE) -> np.ndarray:
  """Block means of ``[N, H, W, C]`` down to at most ``side`` pixels a side, flattened."""
  x = np.asarray(images, np.float32)
  n, h, w, c = x.shape
  fh, fw = max(1, h // side), max(1, w // side)
  x = x[:, : h // fh * fh, : w // fw * fw]
  x = x.reshape(n, h // fh, fh, w // fw, fw, c).mean(axis=(2, 4))
  return x.reshape(n, -1)


def make_extractor(dim: int, seed: int):
  """``fn(model-space images [N, H, W, C]) -> float32 [N, dim]``; one matrix per input size."""
  matrices: dict[int, np.ndarray] = {}

  def extract(images) -> np.ndarray:
    pooled = pool(images)
    p = pooled.shape[1]
    if p not in matrices:
      rng = np.random.default_rng([seed, p, dim])
      matrices[p] = rng.normal(0.0, 1.0 / np.sqrt(p), size=(p, dim)).astype(np.float32)
    return pooled @ matrices[p]

  return extract
