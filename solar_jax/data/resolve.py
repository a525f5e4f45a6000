"""Config values that depend on the data, resolved once before a run writes config.json.

A value that depends on the dataset is resolved in this step, named for it, and not
inside a check (STYLE.md, 'Second lesson'). Two kinds:

* ``data.clip_max`` from ``data.clip_max_quantile`` (when > 0): a quantile of the
  train split's on-disk frame maxima (``train_clip_max``);
* ``config.provenance``: what the dataset says about itself (simulated or observed,
  the GOES scale, the split rule, the degradation correction, its version), or why
  it could not be read.

``main`` calls ``resolve_data`` after the input checks and before config.json is
written, so config.json records both and every stage's output carries the
provenance from the config (``record``): the classifier's and the evaluation's
metrics.json, the export's model card and report.md, none of which opens the
dataset for it.
"""

from __future__ import annotations

import numpy as np
from absl import logging

from solar_jax import errors
from solar_jax.data import build_report, input_pipeline

_NOT_RESOLVED = "not resolved (data.resolve.resolve_data did not run for this config)"


def train_clip_max(data_config, train_facts: dict) -> float:
  """``data.clip_max`` chosen from the train split: a quantile of its frames' on-disk maxima.

  With ``data.clip_max_quantile`` = q, a share 1 - q of the training frames have a
  brightest on-disk pixel above the clip (flare kernels of the largest flares), the
  rest none: the transform stops saturating most flare kernels, and nothing of the
  validation or test split enters the choice.

  Args:
    data_config: the ``config.data`` section.
    train_facts: ``input_pipeline.make_for_inference(data_config, 'train', images=False)``.
  """
  peaks = np.asarray(train_facts["intensity_max"], np.float64)
  peaks = peaks[np.isfinite(peaks)]
  if not peaks.size:
    raise errors.InputMismatchError(
      f"data.clip_max_quantile={data_config.clip_max_quantile}: the train split of fold "
      f"{data_config.fold} has no frame to choose the clip level from."
    )
  value = float(np.quantile(peaks, data_config.clip_max_quantile))
  return max(value, data_config.clip_min * 10.0)


def dataset_provenance(data_config) -> dict:
  """The fields of ``config.provenance`` read from the dataset's metadata.

  Where the dataset cannot be read (a machine without it), ``simulated`` is None and
  ``unreadable`` says why.
  """
  try:
    builder = input_pipeline.get_builder(data_config)
    meta = input_pipeline.metadata(builder)
  except errors.UserError as e:
    return dict(
      simulated=None,
      goes_scale="",
      split_rule="",
      degradation="",
      version="",
      num_folds=0,
      events_per_class="",
      unreadable=str(e),
    )
  counts = meta.get("events_per_class")
  return dict(
    simulated=bool(meta.get("simulated", False)),
    goes_scale=str(meta.get("goes_scale_note") or ""),
    events_per_class=build_report.events_line(counts) if counts else "",
    split_rule=str(meta.get("split_rule") or ""),
    degradation=str(meta.get("degradation", "")),
    version=f"{data_config.dataset}/{data_config.builder_config} {builder.info.version}",
    num_folds=int(meta["num_folds"]),
    unreadable="",
  )


def resolve_data(config) -> None:
  """Sets the data-dependent values of ``config`` in place: ``data.clip_max``, ``provenance``.

  Raises:
    errors.UserError: ``data.clip_max_quantile`` > 0 and the train split cannot be read.
  """
  if config.data.clip_max_quantile > 0:
    facts = input_pipeline.make_for_inference(config.data, "train", images=False)
    config.data.clip_max = train_clip_max(config.data, facts)
    logging.info(
      "data.clip_max = %.1f DN/s: quantile %g of the train frames' on-disk maxima (fold %d).",
      config.data.clip_max,
      config.data.clip_max_quantile,
      config.data.fold,
    )
  for key, value in dataset_provenance(config.data).items():
    config.provenance[key] = value
  if config.provenance.unreadable:
    logging.warning("The dataset's provenance is not recorded: %s", config.provenance.unreadable)


def record(config) -> dict:
  """The provenance an output records (metrics.json ``data``): from the config, no dataset read.

  Returns:
    {'simulated', 'goes_scale', 'label', 'class_scale', 'fold', 'embargo_days',
    'split_rule', 'events_per_class'} and 'note' (the simulated line) for a simulated
    archive; {'simulated': None, 'unreadable': why, 'label', 'class_scale', 'fold'}
    where the provenance was not read.
  """
  p, d = config.provenance, config.data
  if p.simulated is None:
    return dict(
      simulated=None,
      unreadable=p.unreadable or _NOT_RESOLVED,
      label=d.label,
      class_scale=d.class_scale,
      fold=d.fold,
    )
  out = dict(
    simulated=bool(p.simulated),
    goes_scale=p.goes_scale,
    events_per_class=p.events_per_class,
    label=d.label,
    class_scale=d.class_scale,
    fold=d.fold,
    embargo_days=d.embargo_days,
    split_rule=p.split_rule,
  )
  if out["simulated"]:
    out["note"] = build_report.SIMULATED_LINE
  return out
