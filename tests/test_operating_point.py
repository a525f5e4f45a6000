"""Operating points, prior correction and threshold-free skill: analytic answers and scikit-learn."""

import numpy as np
import pytest
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from solar_jax.classifier import decisions
from solar_jax.configs import tiny
from solar_jax.metrics import bootstrap
from solar_jax.metrics import operating_point as op


def test_tss_threshold_of_a_constructed_example_is_the_analytic_one():
  # Positives 0.3, 0.6, 0.9; negatives 0.1, 0.2, 0.4. Calling >= 0.6 positive gives
  # TSS 2/3 - 0 and >= 0.3 gives 1 - 1/3: equal, so the higher cut wins, at the midpoint
  # of 0.6 and the next lower probability 0.4.
  point = op.tss_threshold([0.1, 0.2, 0.4, 0.3, 0.6, 0.9], [0, 0, 0, 1, 1, 1])
  assert point["threshold"] == pytest.approx(0.5) and point["tss"] == pytest.approx(2 / 3)
  # Separable: the cut between the classes, TSS 1.
  point = op.tss_threshold([0.1, 0.2, 0.7, 0.8], [0, 0, 1, 1])
  assert point["threshold"] == pytest.approx(0.45) and point["tss"] == 1.0
  # One class only: TSS undefined, 0.5, said so.
  point = op.tss_threshold([0.1, 0.2], [0, 0])
  assert point["threshold"] == 0.5 and point["tss"] is None and point["note"]


def test_tss_threshold_on_the_bayes_posterior_is_the_base_rate():
  # TSS = TPR - FPR is largest where the likelihood ratio is 1, i.e. where the posterior
  # equals the prior: two Gaussians d' = 1.5, prior 0.2.
  rng = np.random.default_rng(0)
  d, prior, n = 1.5, 0.2, 40000
  y = rng.random(n) < prior
  x = rng.standard_normal(n) + d * y
  posterior = expit(d * x - d * d / 2 + logit(prior))
  point = op.tss_threshold(posterior, y)
  assert point["threshold"] == pytest.approx(prior, abs=0.03)
  # The analytic TSS at that cut: Phi(d/2) - Phi(-d/2).
  from scipy.stats import norm

  assert point["tss"] == pytest.approx(norm.cdf(d / 2) - norm.cdf(-d / 2), abs=0.02)


def test_prior_shift_is_bayes_rule_and_round_trips():
  rng = np.random.default_rng(1)
  prob = rng.dirichlet(np.ones(3), 50)
  a, b = np.array([0.2, 0.3, 0.5]), np.array([0.6, 0.3, 0.1])
  there = op.prior_shift(prob, a, b)
  np.testing.assert_allclose(there.sum(-1), 1.0)
  np.testing.assert_allclose(op.prior_shift(there, b, a), prob, atol=1e-12)
  # Binary: the logit moves by logit(pi_test) - logit(pi_train).
  p = rng.random(20)
  shifted = op.prior_shift(np.stack([1 - p, p], -1), [0.5, 0.5], [0.95, 0.05])[:, 1]
  np.testing.assert_allclose(logit(shifted), logit(p) + logit(0.05), atol=1e-9)


def test_prior_corrected_brier_skill_removes_the_training_prior():
  """Logistic regressions trained at priors 5 % and 50 % on one Gaussian problem (d' = 1.5):
  their Brier skill on a 5 % test set differs; corrected to the test prior it agrees."""
  rng = np.random.default_rng(2)
  d, base = 1.5, 0.05

  def sample(n, prior):
    y = rng.random(n) < prior
    return (rng.standard_normal(n) + d * y)[:, None], y.astype(int)

  x_test, y_test = sample(20000, base)
  ones = np.ones((1, len(y_test)))
  raw, corrected = [], []
  for prior in (base, 0.5):
    x, y = sample(10000, prior)
    p = LogisticRegression().fit(x, y).predict_proba(x_test)
    trained = op.class_prior(y, 2)
    q = op.prior_shift(p, trained, [1 - base, base])[:, 1]
    raw.append(bootstrap.brier_skill(p[:, 1], y_test, base, ones)[0])
    corrected.append(bootstrap.brier_skill(q, y_test, base, ones)[0])
  assert abs(raw[0] - raw[1]) > 0.5  # 50 % training: far too many alarms.
  assert corrected[0] == pytest.approx(corrected[1], abs=0.01)
  assert corrected[0] > 0


def test_roc_auc_agrees_with_sklearn_on_the_unresampled_draw():
  rng = np.random.default_rng(3)
  n = 60
  y = rng.integers(0, 5, n)
  y[:5] = np.arange(5)
  prob = rng.dirichlet(np.ones(5), n)
  prob[:, 3] += 0.3 * (y >= 3)  # Some skill on >=M.
  prob = np.round(prob / prob.sum(-1, keepdims=True), 2)  # Ties.
  groups = [f"E{i // 2}" for i in range(n)]
  event = prob[:, 3:].sum(-1)
  runs = {
    "real": {
      (0, 0): {
        "pred": prob.argmax(-1),
        "events": {"ge_m": {"decision": event >= 0.4, "prob": event, "prob_corrected": event}},
      }
    }
  }
  summary = bootstrap.summarize(
    y, groups, runs, list("ABCMX"), thresholds={"ge_m": 3}, reference={"ge_m": 0.2},
    num_samples=100,
  )  # fmt: skip
  scores = summary["regimes"]["real"]["scores"]
  assert scores["auc_ge_m"]["mean"] == pytest.approx(roc_auc_score(y >= 3, event))
  truth, decision = y >= 3, event >= 0.4
  tss = decision[truth].mean() - decision[~truth].mean()
  assert scores["tss_ge_m"]["mean"] == pytest.approx(tss)
  ones = np.ones((1, n))
  bss = bootstrap.brier_skill(event, truth, 0.2, ones)[0]
  assert scores["bss_corrected_ge_m"]["mean"] == pytest.approx(bss)
  # A resample (frame multiplicities) is scikit-learn's sample_weight.
  w = rng.integers(0, 3, (4, n)).astype(float)
  np.testing.assert_allclose(
    bootstrap.roc_auc(event, truth, w),
    [roc_auc_score(truth, event, sample_weight=row) for row in w],
  )


def test_multiclass_decision_is_made_on_the_event_probability():
  config = tiny.get_config()  # Multiclass A..X.
  rng = np.random.default_rng(4)
  val_prob, test_prob = rng.dirichlet(np.ones(5), 40), rng.dirichlet(np.ones(5), 30)
  val_y, test_y = rng.integers(0, 5, 40), rng.integers(0, 5, 30)
  prior = np.full(5, 0.2)
  out = decisions.decide(config, val_prob, val_y, test_prob, test_y, prior, prior)
  point = op.tss_threshold(val_prob[:, 3:].sum(-1), val_y >= 3)
  assert out["operating_point"]["ge_m"]["threshold"] == point["threshold"]
  decision = test_prob[:, 3:].sum(-1) >= point["threshold"]
  truth = test_y >= 3
  tss = decision[truth].mean() - decision[~truth].mean()
  assert out["test"]["thresholds"][">=M"]["tss"] == pytest.approx(tss)
  # Macro F1 and the 5-way confusion stay the argmax's.
  assert out["predictions"] == test_prob.argmax(-1).tolist()
  # Equal priors: the corrected probabilities are the raw ones.
  np.testing.assert_allclose(out["events"]["ge_m"]["prob_corrected"], out["events"]["ge_m"]["prob"])
