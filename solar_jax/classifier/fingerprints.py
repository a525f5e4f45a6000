"""What a finished classifier run depends on: it is reused only when all of it matches.

``fingerprint`` is the one key of a run (its config, training set, synthetic pool and
the frames it read, ``records_digest``); ``experiment`` stores it beside each result.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

# Fields whose value a run does not depend on (or that enter through its pool and counts).
_NOT_FINGERPRINTED = (
  "seeds",
  "regimes",
  "guidance_scale",
  "guidance_grid",
  "ratio_grid",
  "synthetic_ratio",
  "sampling_steps",
  "num_pools",
  "focal_grid",
  "oversample_grid",
  "weight_power_grid",
  "augment_rotation_grid",
  "bootstrap_samples",
  "primary_endpoint",
  "stacked_runs",  # How runs are grouped and computed: the results do not depend on it.
  "vectorized_runs",
  # Enter through the training set (its settings), for the regimes that use them:
  "focal_gamma",
  "oversample_share",
  "class_weight_power",
  "augment_flips",
  "augment_rotation_deg",
  "augment_intensity",
)
_AUGMENT_FIELDS = ("augment_flips", "augment_intensity")  # Rotation: the set's settings.


def text_values(values, n: int) -> list[str]:
  if values is None:
    return [""] * n
  return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values).tolist()]


def records_digest(splits: dict) -> str:
  """A digest of the frames the experiment reads: every split's images, labels, times and
  groups. A dataset rebuilt in place (other frames, other labels) gives another digest."""
  digest = hashlib.sha256()
  for name in sorted(splits):
    split = splits[name]
    for field in ("image", "label", "time", "group"):
      if split.get(field) is not None:
        values = np.asarray(split[field])
        if values.dtype == object:
          values = np.asarray(text_values(values, len(values)), dtype=str)
        digest.update(f"{name}/{field}/{values.dtype}/{values.shape}".encode())
        digest.update(np.ascontiguousarray(values).tobytes())
  return digest.hexdigest()[:16]


def fingerprint(config, ts, synthetic_pool, records: str) -> str:
  """What a finished run depends on: reused only when all of it matches, the data it read
  (the dataset's version and ``records_digest`` of its splits) included."""
  c = config.classifier
  return json.dumps(
    {
      "dataset_version": config.provenance.version,
      "records": records,
      "focal_gamma": ts.focal_gamma,
      "settings": ts.settings,
      "augment": {k: c[k] for k in _AUGMENT_FIELDS} if ts.augment else None,
      "classifier": {
        k: v for k, v in config.classifier.to_dict().items() if k not in _NOT_FINGERPRINTED
      },
      "data": config.data.to_dict(),
      "seed": config.seed,
      "counts": ts.counts,
      "synthetic_pool": synthetic_pool,
    },
    sort_keys=True,
    default=str,
  )
