"""What the training prior does to the scores of one classifier evidence, and what the
operating point and the prior correction undo (``metrics/operating_point.py``).

  PYTHONPATH=. python benchmarks/bench_operating_point.py [--seed 0]

Two Gaussians (d' = 1.5), validation and test at a 5 % base rate; a logistic regression
trained at 5 % (the ``real`` regime's prior) and at 50 % (``oversample``'s). Prints per
training prior: TSS of the argmax, TSS at the validation operating point, ROC AUC, Brier
skill against climatology (BSS) and after moving the probabilities to the test prior (BSS').
"""

import argparse

import numpy as np
from sklearn.linear_model import LogisticRegression

from solar_jax.metrics import bootstrap
from solar_jax.metrics import operating_point as op

D_PRIME, BASE, N = 1.5, 0.05, 20000


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--seed", type=int, default=0)
  rng = np.random.default_rng(parser.parse_args().seed)

  def sample(n, prior):
    y = (rng.random(n) < prior).astype(int)
    return (rng.standard_normal(n) + D_PRIME * y)[:, None], y

  (xv, yv), (xt, yt) = sample(N, BASE), sample(N, BASE)
  ones = np.ones((1, N))

  def tss(decision, y):
    return decision[y == 1].mean() - decision[y == 0].mean()

  for prior in (BASE, 0.5):
    x, y = sample(N, prior)
    model = LogisticRegression().fit(x, y)
    pv, pt = model.predict_proba(xv)[:, 1], model.predict_proba(xt)
    threshold = op.tss_threshold(pv, yv == 1)["threshold"]
    moved = op.prior_shift(pt, op.class_prior(y, 2), [1 - BASE, BASE])[:, 1]
    print(
      f"train prior {prior:.2f}: argmax TSS {tss(pt[:, 1] >= 0.5, yt):.3f}, operating-point "
      f"TSS {tss(pt[:, 1] >= threshold, yt):.3f} (threshold {threshold:.3f}), "
      f"AUC {bootstrap.roc_auc(pt[:, 1], yt == 1, ones)[0]:.3f}, "
      f"BSS {bootstrap.brier_skill(pt[:, 1], yt, BASE, ones)[0]:.3f}, "
      f"BSS' {bootstrap.brier_skill(moved, yt, BASE, ones)[0]:.3f}"
    )


if __name__ == "__main__":
  main()
