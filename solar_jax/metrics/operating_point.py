"""Operating points and training priors of probabilistic classifiers (pure NumPy).

Why: an argmax decides at a threshold that moves with the class prior a
regime trained on (oversampling trains at 50 % >=M, the synthetic regime at
its ratio, ``real`` at the base rate), so its TSS mixes the classifier's
evidence with its prior. Every regime is therefore scored at one rule: the
threshold on the event probability (the positive class; ``P(M) + P(X)`` for
>=M from a multiclass softmax) that maximises the TSS on the validation split
(``tss_threshold``). Probabilities are compared after removing each regime's
training prior (``prior_shift``, Bayes' rule; e.g. Saerens et al. 2002): a
classifier trained at prior ``pi_train`` whose posterior is ``p`` gives, under
the test prior ``pi_test``, ``p'_c ∝ p_c pi_test_c / pi_train_c``.
"""

from __future__ import annotations

import numpy as np

from solar_jax import errors


def tss_threshold(prob, truth) -> dict:
  """The threshold on ``prob`` whose decision ``prob >= threshold`` maximises the TSS.

  Candidate cuts lie between consecutive distinct probabilities; the chosen
  threshold is the midpoint of the cut (the lowest probability called positive
  and the next lower one; the lowest itself where none is lower). Ties between
  cuts go to the higher threshold.

  Args:
    prob: float [N] event probability of the validation frames.
    truth: bool [N] whether the event happened.

  Returns:
    {'threshold', 'tss' (at the threshold on these frames), 'positives', 'negatives',
    'note'}: where the frames hold no positive or no negative the TSS is
    undefined and the threshold is 0.5 (said in 'note').
  """
  prob = np.asarray(prob, np.float64).reshape(-1)
  truth = np.asarray(truth, bool).reshape(-1)
  if prob.shape != truth.shape:
    raise errors.InputMismatchError(
      f"tss_threshold: {prob.size} probabilities but {truth.size} labels."
    )
  pos, neg = int(truth.sum()), int((~truth).sum())
  out = {"positives": pos, "negatives": neg}
  if pos == 0 or neg == 0:
    return {**out, "threshold": 0.5, "tss": None, "note": "TSS undefined (one class only): 0.5"}
  values, inverse = np.unique(prob, return_inverse=True)  # Ascending.
  pos_at = np.bincount(inverse, truth, values.size)[::-1].astype(np.int64)  # Descending.
  neg_at = np.bincount(inverse, ~truth, values.size)[::-1].astype(np.int64)
  # Cut j calls positive every frame >= the j-th largest value; TSS * pos * neg in integers,
  # so equal TSS compare equal (the tie rule).
  scaled = np.cumsum(pos_at) * neg - np.cumsum(neg_at) * pos
  j = int(np.argmax(scaled))
  desc = values[::-1]
  threshold = desc[j] if j + 1 == desc.size else 0.5 * (desc[j] + desc[j + 1])
  return {**out, "threshold": float(threshold), "tss": float(scaled[j] / (pos * neg)), "note": ""}


def class_prior(labels, num_classes: int, weights=None) -> np.ndarray:
  """float64 [K]: the class shares of ``labels``, each example counted with its loss weight."""
  labels = np.asarray(labels, np.int64)
  w = None if weights is None else np.asarray(weights, np.float64)
  counts = np.bincount(labels, w, minlength=num_classes)[:num_classes].astype(np.float64)
  total = counts.sum()
  if total <= 0:
    raise errors.InputMismatchError("class_prior: no examples (or all weights 0).")
  return counts / total


def prior_shift(prob, prior_train, prior_test) -> np.ndarray:
  """float64 [N, K]: probabilities ``prob`` [N, K] moved from ``prior_train`` to ``prior_test``.

  ``p'_c = p_c w_c / sum_k p_k w_k`` with ``w_c = prior_test_c / prior_train_c``
  (0 for a class the training never saw). A row whose weighted sum is 0 keeps
  its probabilities.
  """
  prob = np.asarray(prob, np.float64)
  prior_train = np.asarray(prior_train, np.float64)
  prior_test = np.asarray(prior_test, np.float64)
  if prob.ndim != 2 or prob.shape[1] != prior_train.size or prior_test.size != prior_train.size:
    raise errors.InputMismatchError(
      f"prior_shift: probabilities of shape {prob.shape} with priors of {prior_train.size} "
      f"and {prior_test.size} classes."
    )
  w = np.where(prior_train > 0, prior_test / np.where(prior_train > 0, prior_train, 1.0), 0.0)
  shifted = prob * w
  total = shifted.sum(-1, keepdims=True)
  return np.where(total > 0, shifted / np.where(total > 0, total, 1.0), prob)


def event_probability(prob, index: int) -> np.ndarray:
  """float64 [N]: ``P(class >= index)``, the sum of the softmax over classes ``index..K-1``."""
  return np.asarray(prob, np.float64)[:, index:].sum(-1)
