"""The decision rule every regime is scored at, and its probabilities at the test prior.

One rule for every regime (``metrics/operating_point``): the event (the
positive class of a binary task; >=M and >=C of a multiclass one, on
``P(M) + P(X)`` and ``P(C) + P(M) + P(X)``) is forecast where its probability
reaches the threshold that maximises the TSS on the validation split. An
argmax would decide at a threshold set by the prior the regime trained on.
The multiclass macro F1 and 5-way confusion stay those of the argmax.

Each run's probabilities are also moved from the class prior its loss saw
(``counts['prior']``: oversampled and synthetic images and class weights
included) to the real training split's (``prior_shift``): the Brier skill and
the reliability diagram compare those.
"""

from __future__ import annotations

import numpy as np

from solar_jax.classifier.trainer import is_multiclass, score, thresholds
from solar_jax.metrics import classification, operating_point
from solar_jax.models import classifier as classifier_lib

RULE = "threshold on the event probability maximising the validation TSS (same for every regime)"


def events(config) -> dict[str, int]:
  """{event name: first class index of the event}: binary {'positive': 1}; multiclass
  {'ge_m': index of M, 'ge_c': index of C} (those of ``data.classes``)."""
  task = classifier_lib.task_of(config.classifier, config.data.label)
  if not is_multiclass(task):
    return {"positive": 1}
  return {f"ge_{k[2:].lower()}": v for k, v in thresholds(config).items()}


def event_climatology(config, prior_test) -> dict[str, float]:
  """{event: its base rate in the real training split} (the Brier skill's reference)."""
  prior = np.asarray(prior_test, np.float64)
  return {name: float(prior[index:].sum()) for name, index in events(config).items()}


def decide(config, val_prob, val_labels, test_prob, test_labels, prior_train, prior_test) -> dict:
  """A run's test result at the validation operating point.

  Args:
    config: the resolved config (task, classes).
    val_prob, test_prob: float [N, K] softmax of the run's selected parameters.
    val_labels, test_labels: int [N] task labels.
    prior_train: [K] the class prior the run's loss saw; prior_test: [K] the real training
      split's.

  Returns:
    {'test' (scores), 'predictions' (binary: the thresholded decision; multiclass: argmax),
    'operating_point' {event: {'threshold', 'validation_tss', 'positives', 'negatives',
    'note'}}, 'prior' {'train', 'test'}, and the test event probabilities: binary
    'probabilities' / 'probabilities_corrected' of the positive class; multiclass
    'events' {event: {'prob', 'prob_corrected'}}}.
  """
  test_prob = np.asarray(test_prob, np.float64)
  corrected = operating_point.prior_shift(test_prob, prior_train, prior_test)
  test_labels = np.asarray(test_labels, np.int64)
  out = {
    "operating_point": {},
    "prior": {"train": list(map(float, prior_train)), "test": list(map(float, prior_test))},
  }
  chosen = {}
  for name, index in events(config).items():
    point = operating_point.tss_threshold(
      operating_point.event_probability(val_prob, index), np.asarray(val_labels) >= index
    )
    point["validation_tss"] = point.pop("tss")
    out["operating_point"][name] = point
    chosen[name] = point["threshold"]
  if "positive" in chosen:
    p = operating_point.event_probability(test_prob, 1)
    pred = (p >= chosen["positive"]).astype(np.int32)
    out["test"] = score(config, test_labels, pred)
    out["predictions"] = pred.tolist()
    out["probabilities"] = p.tolist()
    out["probabilities_corrected"] = operating_point.event_probability(corrected, 1).tolist()
    return out
  pred = np.argmax(test_prob, -1).astype(np.int32)
  test = score(config, test_labels, pred)
  test["thresholds_argmax"] = test.pop("thresholds", {})
  test["thresholds"], out["events"] = {}, {}
  for name, index in events(config).items():
    p = operating_point.event_probability(test_prob, index)
    decision = (p >= chosen[name]).astype(np.int64)
    truth = (test_labels >= index).astype(np.int64)
    test["thresholds"][f">={name[3:].upper()}"] = classification.threshold_skill(truth, decision, 1)
    out["events"][name] = {
      "prob": p.tolist(),
      "prob_corrected": operating_point.event_probability(corrected, index).tolist(),
    }
  out["test"], out["predictions"] = test, pred.tolist()
  return out


def bootstrap_run(result: dict) -> dict:
  """The bootstrap's view of one finished run (``bootstrap.summarize``'s ``runs`` values)."""
  prob = result.get("probabilities")
  corrected = result.get("probabilities_corrected")
  run = {
    "pred": np.asarray(result["predictions"]),
    "prob": None if prob is None else np.asarray(prob, np.float64),
    "prob_corrected": None if corrected is None else np.asarray(corrected, np.float64),
  }
  if result.get("events"):
    run["events"] = {
      name: {
        "decision": np.asarray(e["prob"]) >= result["operating_point"][name]["threshold"],
        "prob": np.asarray(e["prob"], np.float64),
        "prob_corrected": np.asarray(e["prob_corrected"], np.float64),
      }
      for name, e in result["events"].items()
    }
  return run


def headline_event(result: dict, n: int) -> tuple[list, list, list]:
  """Per test frame: the headline event's probability, at the test prior, and the forecast at
  the operating point (binary: the positive class; multiclass: >=M); None where absent."""
  if "probabilities" in result:
    return result["probabilities"], result["probabilities_corrected"], result["predictions"]
  event = (result.get("events") or {}).get("ge_m")
  if event is None:
    return [None] * n, [None] * n, [None] * n
  threshold = result["operating_point"]["ge_m"]["threshold"]
  forecast = [int(p >= threshold) for p in event["prob"]]
  return event["prob"], event["prob_corrected"], forecast


def reliability_probabilities(result: dict, event: str | None) -> np.ndarray | None:
  """The prior-corrected event probabilities a reliability diagram shows (None: absent)."""
  if event is None:
    values = result.get("probabilities_corrected")
  else:
    values = ((result.get("events") or {}).get(event) or {}).get("prob_corrected")
  return None if values is None else np.asarray(values, np.float64)
