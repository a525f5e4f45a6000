"""The guard rails at the top of report.md: what makes the figures below it unreliable.

Read from the files the stages wrote, nothing recomputed:

* a degenerate classifier: a regime that predicts one class for every test frame, or
  regimes with identical predictions (their differences are zero by construction);
* scores with fewer than two positive test events (not estimable: ``classifier.tables``);
* noise-like samples (``metrics.sanity``: limb contrast or on-disk spectral slope below
  half the real frames'): their figures compare noise with Suns;
* feature spaces and classifier regimes that were skipped, and why.
"""

from __future__ import annotations

import json

from etils import epath

from solar_jax.classifier import tables as classifier_tables


def _read(path: epath.Path) -> dict | None:
  if not path.exists():
    return None
  try:
    return json.loads(path.read_text())
  except ValueError:
    return None


def classifier_flags(metrics: dict) -> list[str]:
  """Degenerate regimes, scores on too few events, skipped regimes."""
  flags = []
  bad = classifier_tables.degenerate(metrics)
  trained = [r for r, e in metrics.get("regimes", {}).items() if "scores" in e]
  by_class = {}
  for regime, name in bad["one_class"].items():
    by_class.setdefault(name, []).append(regime)
  for name, regimes in by_class.items():
    flags.append(
      f"**Degenerate classifier**: {len(regimes)} of {len(trained)} regimes "
      f"({', '.join(regimes)}) predict class {name} for every test frame; their skill "
      "scores are those of a constant forecast."
    )
  for group in bad["identical"]:
    flags.append(
      f"**Identical regimes**: {', '.join(group)} give the same test predictions (summed "
      "confusion matrices); their differences are zero by construction, not evidence."
    )
  per_class = (metrics.get("support") or {}).get("per_class") or {}
  few = {n: s.get("events") for n, s in per_class.items() if (s.get("events") or 0) <= 1}
  if few:
    flags.append(
      "**Too few test events**: "
      + ", ".join(f"class {n} has {e} test event{'s' * (e != 1)}" for n, e in few.items())
      + "; scores resting on them are marked not estimable."
    )
  for key in ("tss_ge_m", "tss"):
    why = classifier_tables.few_events(metrics, key)
    if why:
      flags.append(f"**{key.upper().replace('_GE_M', ' ≥M')} {why}** (no interval shown).")
      break
  for regime, entry in metrics.get("regimes", {}).items():
    if "skipped" in entry:
      flags.append(f"Classifier regime `{regime}` skipped: {entry['skipped']}.")
  return flags


def evaluation_flags(metrics: dict, what: str = "samples") -> list[str]:
  """Noise-like samples and skipped feature spaces of one evaluation's metrics.json."""
  flags = []
  check = (metrics.get("physics") or {}).get("noise_check") or {}
  if check.get("not_estimable"):
    flags.append(f"Noise check of the {what} not estimable: {check['not_estimable']}.")
  elif check.get("num_noise_like"):
    n, total = check["num_noise_like"], check["num_images"]
    real, fake = check["real_median"], check["fake_median"]
    most = "**Most of the {w} are noise**" if 2 * n > total else "**Noise-like {w}**"
    flags.append(
      most.format(w=what) + f": {n} of {total} ({n / total:.0%}) fail the sanity check "
      f"({check['note']}). Median limb contrast real {real['limb_contrast_dex']:.2f} / "
      f"synthetic {fake['limb_contrast_dex']:.2f} dex, spectral slope real "
      f"{real['spectral_slope']:.2f} / synthetic {fake['spectral_slope']:.2f}; the "
      "figures below compare them with Suns as they are."
    )
  for name, reason in (metrics.get("skipped_extractors") or {}).items():
    flags.append(f"**Feature space `{name}` skipped** ({what}): {reason}.")
  return flags


def _passed(classifier: dict | None, evaluation: dict | None) -> str:
  checked = []
  if classifier is not None:
    checked.append("classifier not degenerate, every score on 2+ test events")
  if evaluation is not None:
    check = (evaluation.get("physics") or {}).get("noise_check") or {}
    if "num_noise_like" in check:
      checked.append(f"no noise-like sample ({check['num_images']} checked: {check['note']})")
    checked.append("no feature space skipped")
  return "No guard rail tripped: " + "; ".join(checked) + "." if checked else ""


def guard_lines(workdir) -> list[str]:
  """The report's guard-rail section (empty when there is nothing to check yet)."""
  workdir = epath.Path(workdir)
  classifier = _read(workdir / "classifier" / "metrics.json")
  evaluation = _read(workdir / "eval" / "metrics.json")
  pool = _read(workdir / "eval" / "classifier_pool" / "metrics.json")
  if classifier is not None and "regimes" not in classifier:
    classifier = None
  if classifier is None and evaluation is None:
    return []
  flags = classifier_flags(classifier) if classifier else []
  flags += evaluation_flags(evaluation) if evaluation else []
  flags += evaluation_flags(pool, "classifier's synthetic training images") if pool else []
  lines = ["", "## Guard rails", ""]
  if not flags:
    return lines + [_passed(classifier, evaluation)]
  return lines + [f"- ⚠ {flag}" for flag in flags]
