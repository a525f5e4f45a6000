"""Two generators compared where the experiment compares regimes: the class- against the
flux-conditioned DDPM (issue 28), at equal training budget, on the same test frames.

    python -m solar_jax.evaluation.generators --out=runs/compare runs/class runs/flux

Each workdir is a run of ``--mode=classify`` (and ``--mode=evaluate`` for realism) on
the same data, fold and classifier settings, with one generator each (``model.
conditioning``). Per regime that trains on synthetic images (``real_synthetic``,
``synthetic_only``), the table gives each generator's macro F1, TSS and AUC of the
headline event (>=M) with 95 % intervals, and the paired difference second minus first
(flux - class), by the classifier experiment's own bootstrap (``metrics/bootstrap``,
as ``classifier/folds`` pools folds): the test active regions (blocks of quiet days),
classifier seeds and synthetic pools are resampled together, the same resamples for
both generators, so the difference is paired. Every run is read at its own validation
operating point (the threshold on P(>=M) maximising its validation TSS: the
experiment's ``decisions``), and each generator's guidance was chosen on validation
by the same grid (``classifier.guidance_grid``): matched operating points. The
classical ``oversample`` runs of the first workdir are the reference row (each
generator's difference to it beside), and the two workdirs' classical runs are
compared frame by frame (identical when the classifier training is deterministic).

Realism: each generator's KID per feature space with its 95 % interval, N and the
real-vs-real floor, for its evaluated samples and for the classifier's pool
(``eval/metrics.json``, ``eval/classifier_pool/metrics.json``); the 'classifier'
space is each workdir's own real-only classifier, so only 'random' (a fixed seeded
projection) and 'inception' compare across workdirs exactly. A flux model's flux
consistency (Spearman rho) is copied beside.

Writes ``<out>/generators.json`` and ``<out>/generators.md``; refuses, in one line,
workdirs of other data, classifier settings or test frames.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from etils import epath

from solar_jax import errors
from solar_jax import workdir as wd
from solar_jax.classifier import folds, tables
from solar_jax.classifier.training_sets import SYNTHETIC_REGIMES
from solar_jax.data import splits
from solar_jax.metrics import classification

REFERENCE = "oversample"
# Classifier settings two workdirs must share for their runs to be paired.
SHARED = ("task", "class_names", "seeds", "num_pools", "num_steps", "class_scale", "label")
BUDGET = ("training.num_steps", "training.batch_size", "model.base_channels")


def _read(workdir) -> dict:
  workdir = epath.Path(workdir)
  config_path = wd.config_path(workdir)
  if not config_path.exists():
    raise errors.MissingInputError(f"{config_path} is missing: run --mode=classify there first.")
  metrics, rows = folds.read_fold(workdir)

  def optional(path):
    return json.loads(path.read_text()) if path.exists() else None

  return {
    "workdir": workdir,
    "config": json.loads(config_path.read_text()),
    "metrics": metrics,
    "rows": rows,
    "eval": optional(wd.eval_dir(workdir) / "metrics.json"),
    "pool_eval": optional(wd.eval_dir(workdir) / "classifier_pool" / "metrics.json"),
  }


def _field(config: dict, dotted: str):
  section, key = dotted.split(".")
  return (config.get(section) or {}).get(key)


def check_pair(a: dict, b: dict) -> None:
  """Refuses two workdirs whose classifier runs cannot be paired.

  Raises:
    errors.InputMismatchError: one line naming the workdirs and what differs.
  """
  where = f"{a['workdir']} and {b['workdir']}"
  changed = splits.record_changes(
    splits.training_record(a["config"]), splits.training_record(b["config"])
  )
  if changed:
    raise errors.InputMismatchError(
      f"{where} read other data ({'; '.join(changed)}): compare generators on one dataset and fold."
    )
  for key in SHARED:
    if a["metrics"].get(key) != b["metrics"].get(key):
      raise errors.InputMismatchError(
        f"{where}: classifier {key} {a['metrics'].get(key)!r} against "
        f"{b['metrics'].get(key)!r}; run both with the same classifier settings."
      )


def _labels(a: dict, b: dict) -> tuple[str, str]:
  """Each generator's name: its conditioning, or its workdir's name where both agree."""
  kinds = [_field(s["config"], "model.conditioning") or "class" for s in (a, b)]
  if kinds[0] != kinds[1]:
    return kinds[0], kinds[1]
  names = a["workdir"].name, b["workdir"].name
  return names if names[0] != names[1] else ("first", "second")


def _test_ids(rows: list[dict]) -> list[str]:
  """The test frames of a workdir's first run, in order (every run predicts them all)."""
  first = (rows[0]["regime"], rows[0]["seed"], rows[0]["pool"]) if rows else None
  return [r["id"] for r in rows if (r["regime"], r["seed"], r["pool"]) == first]


def _same_frames(gathered, a: dict, b: dict) -> None:
  (truth_a, groups_a, *_), (truth_b, groups_b, *_) = gathered
  if truth_a != truth_b or groups_a != groups_b or _test_ids(a["rows"]) != _test_ids(b["rows"]):
    raise errors.InputMismatchError(
      f"{a['workdir']} and {b['workdir']} were tested on other frames "
      f"({len(truth_a)} and {len(truth_b)}): compare generators on one test split."
    )


def _classical_identical(runs_a: dict, runs_b: dict) -> bool | None:
  """Whether the two workdirs' reference runs predict the same on every test frame."""
  if REFERENCE not in runs_a or REFERENCE not in runs_b:
    return None
  ra, rb = runs_a[REFERENCE], runs_b[REFERENCE]
  return ra.keys() == rb.keys() and all(np.array_equal(ra[k]["pred"], rb[k]["pred"]) for k in ra)


def compare(workdirs, *, num_samples: int = 1000, seed: int = 0) -> dict:
  """The comparison of the two generators of ``workdirs`` (first, second) as a dict."""
  a, b = (_read(w) for w in workdirs)
  check_pair(a, b)
  names = a["metrics"]["class_names"]
  gathered = [folds.gather([(s["metrics"], s["rows"])], names) for s in (a, b)]
  _same_frames(gathered, a, b)
  truth, groups, reference, event_reference, _, facts = gathered[0]
  labels = _labels(a, b)
  runs, compared = {}, []
  for regime in SYNTHETIC_REGIMES:
    if all(regime in g[4] for g in gathered):
      compared.append(regime)
      for label, g in zip(labels, gathered):
        runs[f"{regime} ({label})"] = g[4][regime]
  if not compared:
    raise errors.MissingInputError(
      f"{a['workdir']} and {b['workdir']} share no synthetic regime that ran: run "
      f"--mode=classify with one of {SYNTHETIC_REGIMES} in classifier.regimes in both."
    )
  identical = _classical_identical(gathered[0][4], gathered[1][4])
  if REFERENCE in gathered[0][4]:
    runs[REFERENCE] = gathered[0][4][REFERENCE]
  summary = folds.summarize_pooled(
    truth,
    groups,
    facts,
    runs,
    names,
    reference,
    event_reference,
    classes=("M",),
    num_samples=num_samples,
    seed=seed,
    baselines=[f"{r} ({labels[0]})" for r in compared] + [REFERENCE],
  )
  return {
    "workdirs": [str(s["workdir"]) for s in (a, b)],
    "generators": list(labels),
    "task": a["metrics"]["task"],
    "class_names": names,
    "fold": _field(a["config"], "data.fold"),
    "seeds": a["metrics"]["seeds"],
    "num_pools": a["metrics"].get("num_pools"),
    "support": summary["support"],
    "bootstrap": {
      "num_samples": num_samples,
      "seed": seed,
      "unit": "test groups"
      if folds.pooled_units(groups, facts) is None
      else "test active regions (blocks of quiet days)",
    },
    "regimes": compared,
    "scores": summary["regimes"],
    "chosen": {label: _chosen(s["metrics"], compared) for label, s in zip(labels, (a, b))},
    "budget": {
      label: {k: _field(s["config"], k) for k in BUDGET} for label, s in zip(labels, (a, b))
    },
    "classical_runs_identical": identical,
    "realism": {label: _realism(s) for label, s in zip(labels, (a, b))},
  }


def _chosen(metrics: dict, regimes) -> dict:
  """Each regime's validation choice (guidance, ratio) in one workdir."""
  out = {}
  for regime in regimes:
    sel = (metrics.get("selection") or {}).get(regime) or {}
    out[regime] = {k: v for k, v in (sel.get("chosen") or {}).items() if k != "selection_score"}
  return out


def _kid_rows(metrics: dict | None) -> dict:
  """{space: {'n', 'kid': {mean, ci_low, ci_high}, 'floor_kid'}} of an eval metrics.json."""
  out = {}
  for space, entry in ((metrics or {}).get("features") or {}).items():
    overall = entry.get("overall") or {}
    kid = overall.get("kid") or {}
    if kid.get("mean") is None:
      continue
    floor = (overall.get("floor") or {}).get("kid") or {}
    out[space] = {
      "n": overall.get("n", metrics.get("num_images")),
      "kid": {k: kid.get(k) for k in ("mean", "ci_low", "ci_high")},
      "floor_kid": floor.get("mean"),
    }
  return out


def _realism(side: dict) -> dict:
  flux = (side["eval"] or {}).get("flux_consistency") or {}
  return {
    "samples": _kid_rows(side["eval"]),
    "classifier_pool": _kid_rows(side["pool_eval"]),
    "flux_consistency": {k: flux[k] for k in ("samples", "real_test_floor") if k in flux},
  }


# ------------------------------------------------------------ markdown ---


def _keys(result: dict) -> dict:
  if len(result["class_names"]) > 2:
    return {"macro_f1": "macro F1", "tss_ge_m": "TSS ≥M", "auc_ge_m": "AUC ≥M"}
  positive = result["class_names"][1]
  return {"macro_f1": "macro F1", "tss": f"TSS {positive}", "auc": f"AUC {positive}"}


def _cells(result: dict, stats: dict, keys, signed: bool = False) -> list[str]:
  meta = {"class_names": result["class_names"], "support": result["support"]}
  return [
    "n/a" if tables.few_events(meta, k) else tables.interval_text(stats.get(k), signed=signed)
    for k in keys
  ]


def _point(chosen: dict) -> str:
  return ", ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in chosen.items() if v is not None)


def score_table(result: dict) -> list[str]:
  """Per synthetic regime: each generator's scores, and the paired difference."""
  keys = _keys(result)
  first, second = result["generators"]
  head = ["regime", "generator", "chosen on validation", *(f"{v} [95% CI]" for v in keys.values())]
  lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
  scores = result["scores"]
  for regime in result["regimes"]:
    for label in (first, second):
      entry = scores[f"{regime} ({label})"]
      point = _point(result["chosen"][label].get(regime) or {})
      cells = [regime, label, point, *_cells(result, entry["scores"], keys)]
      lines.append("| " + " | ".join(cells) + " |")
    delta = scores[f"{regime} ({second})"].get(f"delta_vs_{regime} ({first})") or {}
    cells = [regime, f"**{second} − {first}** (paired)", "", *_cells(result, delta, keys, True)]
    lines.append("| " + " | ".join(cells) + " |")
    for label in (first, second):
      delta = scores[f"{regime} ({label})"].get(f"delta_vs_{REFERENCE}")
      if delta:
        cells = [regime, f"{label} − {REFERENCE}", "", *_cells(result, delta, keys, True)]
        lines.append("| " + " | ".join(cells) + " |")
  if REFERENCE in scores:
    cells = [REFERENCE, f"classical reference ({first} workdir)", ""]
    lines.append(
      "| " + " | ".join(cells + _cells(result, scores[REFERENCE]["scores"], keys)) + " |"
    )
  return lines


def realism_table(result: dict) -> list[str]:
  lines = [
    "| generator | images | feature space | N | KID [95% CI] | real-vs-real floor |",
    "| --- | --- | --- | --- | --- | --- |",
  ]
  for label, realism in result["realism"].items():
    for which in ("samples", "classifier_pool"):
      for space, row in realism[which].items():
        kid, floor = row["kid"], row["floor_kid"]
        interval = f"{kid['mean']:.4f} [{kid['ci_low']:.4f}, {kid['ci_high']:.4f}]"
        floor_text = "n/a" if floor is None else f"{floor:.4f}"
        cells = [label, which.replace("_", " "), space, str(row["n"]), interval, floor_text]
        lines.append("| " + " | ".join(cells) + " |")
    if not realism["samples"] and not realism["classifier_pool"]:
      lines.append(f"| {label} | n/a: no KID in eval/ (run --mode=evaluate there) | | | | |")
  return lines


def markdown(result: dict) -> str:
  """generators.md: the tables, what they rest on, in words."""
  first, second = result["generators"]
  support = result["support"]
  identical = {True: "identical", False: "not identical", None: "not compared"}
  lines = [
    f"# Generators compared: {first} against {second}",
    "",
    f"Workdirs: `{result['workdirs'][0]}` ({first}), `{result['workdirs'][1]}` ({second}). "
    f"Task `{result['task']}`, fold {result['fold']}, test split: {support['frames']} frames, "
    f"{support['events']} events"
    + (
      f", {support['units']} resampling units ({support['regions']} active regions, the rest "
      "blocks of quiet days)"
      if support.get("regions") is not None
      else ""
    )
    + f"; classifier seeds {result['seeds']} × {result['num_pools']} synthetic pools. 95 % "
    f"intervals of a paired bootstrap over {result['bootstrap']['unit']}, seeds and pools "
    f"({result['bootstrap']['num_samples']} resamples; the same for every row, so "
    "differences are paired). TSS ≥M of every run at its own validation operating point "
    "(the P(≥M) threshold maximising its validation TSS; macro F1: the argmax; AUC: "
    "threshold-free); guidance chosen on validation per generator.",
    "",
    "Training budget: "
    + "; ".join(
      f"{label}: " + ", ".join(f"{k} {v}" for k, v in budget.items())
      for label, budget in result["budget"].items()
    )
    + f". The two workdirs' `{REFERENCE}` runs are {identical[result['classical_runs_identical']]} "
    "on every test frame.",
    "",
    *score_table(result),
    "",
    "Realism of each generator's images (KID, 95 % bootstrap interval; the 'classifier' "
    "space is each workdir's own classifier, so compare across generators in 'random'):",
    "",
    *realism_table(result),
    "",
  ]
  for label, realism in result["realism"].items():
    flux = realism["flux_consistency"]
    if flux.get("samples"):
      rho, floor = flux["samples"]["spearman_rho"], flux["real_test_floor"]["spearman_rho"]
      lines.append(
        f"Flux consistency of {label} (Spearman ρ requested vs recovered, "
        f"N={flux['samples']['n']}): {rho['value']:.2f} [{rho['low']:.2f}, {rho['high']:.2f}]; "
        f"real floor (N={flux['real_test_floor']['n']}) {floor['value']:.2f} "
        f"[{floor['low']:.2f}, {floor['high']:.2f}]."
      )
  return "\n".join(lines) + "\n"


def write(workdirs, out, *, num_samples: int = 1000) -> str:
  """Compares ``workdirs`` into ``out``/generators.json and generators.md; returns the text."""
  result = compare(workdirs, num_samples=num_samples)
  out = epath.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  wd.write_json(out / "generators.json", classification.to_jsonable(result))
  text = markdown(result)
  wd.write_text(out / "generators.md", text)
  return text


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("workdirs", nargs=2, help="the class and the flux generator's workdirs")
  parser.add_argument("--out", required=True, help="directory for generators.json and .md")
  parser.add_argument("--num_samples", type=int, default=1000, help="bootstrap resamples")
  args = parser.parse_args(argv)
  try:
    print(write(args.workdirs, args.out, num_samples=args.num_samples))
  except errors.UserError as e:  # One line, exit 2, as the CLI's.
    print(f"error: {e}", file=sys.stderr)
    sys.exit(errors.exit_code(e))


if __name__ == "__main__":
  main()
