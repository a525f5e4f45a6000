"""Writes ``workdir/report.md``: what a person reads after a run.

It gathers what the stages wrote (who trained the model and the train split's frames
per class from train_info.json, loss curve, sample grids, evaluation and classifier
metrics, their plots) and links the pictures; nothing is recomputed and the dataset is
not opened: its provenance is the one ``data.resolve`` recorded in the config
(config.json). Under the title, one line says who made the report (``provenance``:
date, version, commit, command). ``--mode=report`` writes it alone, from these files.
"""

from __future__ import annotations

import json
import numbers

from absl import logging
from etils import epath

from solar_jax import errors, provenance
from solar_jax import workdir as wd
from solar_jax.classifier.tables import few_events, headline_table
from solar_jax.data import build_report as dataset_report
from solar_jax.data import frame_facts, resolve
from solar_jax.evaluation import captions, guards, tables
from solar_jax.evaluation import flux_consistency as flux_lib


def _flatten(tree, prefix=""):
  """Yields (dotted key, number) for every numeric leaf of a JSON tree."""
  if isinstance(tree, dict):
    for key, value in tree.items():
      yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
  elif isinstance(tree, numbers.Number) and not isinstance(tree, bool):
    yield prefix, tree


def _format(value) -> str:
  if isinstance(value, numbers.Integral):
    return str(value)
  return f"{value:.4g}"


def metrics_table(tree, *, keys=None, max_rows: int = 80) -> str:
  """A two-column markdown table of the numeric leaves of ``tree``."""
  rows = [(k, v) for k, v in _flatten(tree) if keys is None or any(s in k for s in keys)]
  lines = ["| figure | value |", "| --- | --- |"]
  lines += [f"| {k} | {_format(v)} |" for k, v in rows[:max_rows]]
  if len(rows) > max_rows:
    lines.append(f"| … {len(rows) - max_rows} more in the JSON file | |")
  return "\n".join(lines)


def _pm(stats: dict | None) -> str:
  if not stats or stats.get("mean") is None:
    return "n/a"
  std = stats.get("std")
  return f"{stats['mean']:.3f} ± {std:.3f}" if std is not None else f"{stats['mean']:.3f}"


def _pool_line(synthetic: dict | None) -> list[str]:
  """How the synthetic training images were drawn, as a paragraph (none if unknown)."""
  settings = (synthetic or {}).get("settings") or {}
  if not {"sampler", "num_steps", "eta", "guidance_scale", "seed"} <= settings.keys():
    return []
  if settings["sampler"] == "ddim":
    sampler = f"DDIM {settings['num_steps']} steps, η {settings['eta']:g}"
  elif settings["sampler"] == "dpmpp_2m":
    sampler = f"DPM-Solver++(2M) {settings['num_steps']} steps"
  else:
    sampler = "ancestral DDPM"
  return [
    f"Synthetic images: DDPM step {synthetic.get('ddpm_step')}, {sampler}, guidance "
    f"{settings['guidance_scale']:g}, seed {settings['seed']}.",
    "",
  ]


def classifier_tables(metrics: dict) -> str:
  """Markdown tables of ``classifier/metrics.json``: scores (mean ± std over seeds) and counts."""
  names = metrics["class_names"]
  thresholds = []
  for regime in metrics["regimes"].values():
    thresholds = sorted(regime.get("mean_std", {}).get("thresholds", {}), reverse=True)
    if thresholds:
      break
  head = ["regime", "macro F1", "TSS", "HSS", "balanced acc."]
  head += [f"TSS {t}" for t in thresholds] + [f"HSS {t}" for t in thresholds]
  lines = [
    f"Task `{metrics['task']}` ({', '.join(names)}); test split, mean ± std over runs "
    f"(seeds {metrics['seeds']} × pools); model chosen on validation {metrics['selection_metric']}. "
    "TSS/HSS are the multiclass (Hanssen-Kuipers, Heidke) forms; equal to the 2×2 forms "
    "for binary tasks.",
    "",
    "| " + " | ".join(head) + " |",
    "|" + " --- |" * len(head),
  ]
  for regime, entry in metrics["regimes"].items():
    if "skipped" in entry:
      lines.append(f"| {regime} | {entry['skipped']} |" + " |" * (len(head) - 2))
      continue
    ms = entry["mean_std"]
    cells = [regime] + [_pm(ms.get(k)) for k in ("macro_f1", "tss", "hss", "balanced_accuracy")]
    for score in ("tss", "hss"):
      for t in thresholds:  # '>=M': n/a where the test split has under 2 such events.
        few = few_events(metrics, f"{score}_ge_{t.removeprefix('>=').lower()}")
        cells.append("n/a" if few else _pm(ms.get("thresholds", {}).get(t, {}).get(score)))
    lines.append("| " + " | ".join(cells) + " |")
  lines += [
    "",
    *_pool_line(metrics.get("synthetic")),
    "Training examples per class and epoch (real + synthetic):",
    "",
    "| regime | " + " | ".join(names) + " | total |",
    "|" + " --- |" * (len(names) + 2),
  ]
  for regime, entry in metrics["regimes"].items():
    if "counts" not in entry:
      continue
    counts = entry["counts"]
    cells = [f"{r} + {s}" if s else str(r) for r, s in zip(counts["real"], counts["synthetic"])]
    lines.append(f"| {regime} | " + " | ".join(cells) + f" | {sum(counts['total'])} |")
  return "\n".join(lines)


def classifier_section(workdir: epath.Path) -> list[str]:
  """The report's classifier section: the headline table with intervals, the plot, the details."""
  path = workdir / "classifier" / "metrics.json"
  if not path.exists():
    return []
  parts = ["", "## Flare classifier: do synthetic images help?", ""]
  metrics = json.loads(path.read_text())
  try:
    if "support" in metrics:
      parts += [headline_table(metrics), "", "### Every score, mean ± std over runs", ""]
    parts.append(classifier_tables(metrics))
  except KeyError:  # A metrics.json of another layout: its scores as they are.
    parts.append(metrics_table(metrics, keys=("macro_f1", "tss", "hss")))
  return parts + [""] + captions.figure_lines(workdir / "classifier", workdir, skip=("scores.png",))


def _data_lines(config, data: dict, workdir: epath.Path) -> list[str]:
  """The data paragraph's facts: the forecast label's definition (where the run reads it),
  the GOES scale, the flare list, recurrent regions."""
  lines = []
  if frame_facts.FORECAST_LABEL in (config.data.label, config.classifier.label):
    d = config.data
    rule = frame_facts.forecast_rule(d.issuance_hours, d.issuance_tolerance_minutes)
    lines.append(f"Forecast definition (`{frame_facts.FORECAST_LABEL}`): {rule}.")
  if data.get("goes_scale"):
    lines.append(f"GOES scale: {data['goes_scale']}.")
  if data.get("events_per_class"):
    lines.append(f"Flare list, {data['events_per_class']}.")
  return lines + recurrent_line(workdir) + flaring_table(config, workdir)


def flaring_table(config, workdir: epath.Path) -> list[str]:
  """Frames per class and split as 'all (flaring)': what the label holds of each kind
  (classifier/metrics.json's data; flaring = inside a flare's [start, end + cooling lag])."""
  path = workdir / "classifier" / "metrics.json"
  if not path.exists():
    return []
  data = json.loads(path.read_text()).get("data") or {}
  splits = [k for k in ("train", "validation", "test") if "flaring_counts" in (data.get(k) or {})]
  if not splits:
    return []
  names = list(data[splits[0]]["goes_counts"])
  label = config.classifier.label or config.data.label
  lines = [
    "",
    f"Frames per class of the classifier's label `{label}`, all (of them flaring, inside a "
    "flare's window; the rest quiet):",
    "",
    "| split | " + " | ".join(names) + " |",
    "|" + " --- |" * (len(names) + 1),
  ]
  for split in splits:
    counts, flaring = data[split]["goes_counts"], data[split]["flaring_counts"]
    lines.append(f"| {split} | " + " | ".join(f"{counts[n]} ({flaring[n]})" for n in names) + " |")
  return lines


def recurrent_line(workdir: epath.Path) -> list[str]:
  """The classifier's recurrent-region overlap between test and training months, in words."""
  path = workdir / "classifier" / "metrics.json"
  if not path.exists():
    return []
  got = (json.loads(path.read_text()).get("data") or {}).get("recurrent_regions") or {}
  if got.get("share") is None:
    return []
  return [
    f"Recurrent active regions: {got['share']:.1%} of the test flaring frames "
    f"({got['test_flaring_frames']:g} frames, {got['test_regions']} regions) come from a region "
    f"that also flares in the training split (a region returning a rotation later is one); "
    f"chance level {got['chance']:.1%} (Carrington longitudes turned at random)."
  ]


def _training_lines(workdir: epath.Path) -> list[str]:
  """Who trained the model and the classes it never saw (train_info.json), as lines."""
  path = wd.train_info_path(workdir)
  if not path.exists():
    return []
  try:
    info = json.loads(path.read_text())
  except ValueError:
    return [f"`{path.name}` is damaged: who trained the model is not known."]
  lines = [
    f"Trained from {info.get('date', '?')} by solar_jax {info.get('version', '?')} (commit "
    f"`{info.get('commit', '?')}`) on {info.get('devices', '?')} with "
    f"`{info.get('command', '?')}`; its config: `config_train.json`."
  ]
  counts, flaring = info.get("frames_per_class"), info.get("flaring_per_class") or {}
  if counts:
    label = f" (label `{info['label']}`)" if info.get("label") else ""
    each = (
      f"{k} {v}" + (f" ({flaring[k]} flaring)" if k in flaring else "") for k, v in counts.items()
    )
    lines.append(f"Train split frames per class{label}: " + ", ".join(each) + ".")
  held = info.get("withheld_days")
  if held:
    lines.append(
      f"Withheld from training: {len(held['days'])} whole days of its training months "
      f"({held['frames']} frames; data.withheld_day_fraction={held['fraction']:g}, seed "
      f"{held['seed']}), the memorisation test's held-out set; the days are listed in "
      "train_info.json."
    )
  if info.get("missing"):
    lines += [
      "",
      f"**Warning: no training frame of class {', '.join(info['missing'])}**: the model "
      "never saw it; its samples of that class come from the label embedding alone "
      "(use more data or another data.fold).",
    ]
  return lines


def _samples_section(config, workdir: epath.Path) -> list[str]:
  """The newest sample set of the config's sampler settings: its grid, counts and settings."""
  try:
    samples = wd.latest_samples(workdir, config).parent
  except (errors.MissingInputError, errors.DamagedFileError):  # None, or cut short.
    return []
  step, _, key = samples.name.partition("-")
  parts = ["", f"## Samples (model step {step}{', ' + key if key else ''})", ""]
  parts += captions.captioned(
    f"![samples]({(samples / 'grid.png').relative_to(workdir)})", "grid.png"
  )
  npz = wd.read_npz(samples / "samples.npz")
  labels = npz["labels"]
  names = [str(n) for n in npz["class_names"]]
  counts = {n: int((labels == i).sum()) for i, n in enumerate(names)}
  parts.append(
    f"\n{len(labels)} images ({', '.join(f'{k} {v}' for k, v in counts.items())}), "
    f"sampler {npz['sampler']}, {int(npz['num_steps'])} steps, guidance "
    f"{float(npz['guidance_scale'])}, seed {int(npz['seed'])}. FITS files in "
    f"`{(samples / 'fits').relative_to(workdir)}/`."
  )
  sweep = samples / "sweep" / "sweep.png"  # A flux model's (ddpm/flux_sweep).
  if sweep.exists() and not _flux_section_shows(workdir, sweep):
    parts += ["", *captions.captioned(f"![flux sweep]({sweep.relative_to(workdir)})", "sweep.png")]
  return parts


def _eval_metrics(workdir: epath.Path, pool: bool = False) -> dict | None:
  path = workdir / "eval" / ("classifier_pool" if pool else "") / "metrics.json"
  return json.loads(path.read_text()) if path.exists() else None


def _flux_section_shows(workdir: epath.Path, sweep: epath.Path) -> bool:
  """Whether the flux-consistency section (``flux_section``) shows this sweep."""
  entry = (_eval_metrics(workdir) or {}).get("flux_consistency") or {}
  return (entry.get("sweep") or {}).get("sample_set") == sweep.parent.parent.name


def flux_section(workdir: epath.Path) -> list[str]:
  """A flux model's flux consistency (eval/metrics.json), with the sweep; none otherwise."""
  metrics = _eval_metrics(workdir)
  if not metrics:
    return []
  return flux_lib.markdown(metrics, workdir, _eval_metrics(workdir, pool=True))


def render_report(config, workdir, made_by: dict | None = None) -> str:
  """Returns the report's markdown for ``workdir``.

  ``made_by``: the ``provenance.record()`` the report names as its maker (default: now,
  this process).
  """
  workdir = epath.Path(workdir)
  data = _provenance(config)
  parts = [f"**{dataset_report.SIMULATED_LINE}**", ""] if data.get("simulated") else []
  parts += [
    "# solar_jax run report",
    "",
    provenance.markdown_line(made_by or provenance.record()),
    *guards.guard_lines(workdir),
    "",
    f"Workdir `{workdir.name}`; dataset `{config.data.dataset}/{config.data.builder_config}`, "
    f"{config.data.image_size}² images, classes {', '.join(config.data.classes)}; label "
    f"`{config.data.label}` with class thresholds on the `{config.data.class_scale}` scale "
    f"(data.class_scale), fold {config.data.fold} (month blocks, embargo "
    f"{config.data.embargo_days:g} days).",
  ]
  parts += _data_lines(config, data, workdir)
  training = _training_lines(workdir)
  if (workdir / "loss_curve.png").exists() or training:
    parts += ["", "## Training", ""]
  parts += training
  if (workdir / "loss_curve.png").exists():
    parts += ["", *captions.captioned("![loss curve](loss_curve.png)", "loss_curve.png")]
    history = workdir / "train_metrics.jsonl"
    if history.exists():
      rows = [json.loads(x) for x in history.read_text().splitlines() if x.strip()]
      if rows:
        last = rows[-1]
        parts.append(
          f"\nFinal logged loss {last['loss']:.4f} at step {last['step']} "
          f"({last.get('images_per_sec', float('nan')):.1f} images/s)."
        )
  parts += _samples_section(config, workdir)
  parts += classifier_section(workdir)
  evaluation = workdir / "eval" / "metrics.json"
  if evaluation.exists():
    parts += ["", "## Evaluation: how real are the synthetic Suns?", ""]
    parts.append(tables.evaluation_markdown(json.loads(evaluation.read_text())))
    parts += ["Full figures: `eval/metrics.json`.", ""]
    parts += captions.figure_lines(workdir / "eval", workdir, skip=(flux_lib.FIGURE,))
    pool = workdir / "eval" / "classifier_pool" / "metrics.json"
    if pool.exists():
      metrics = json.loads(pool.read_text())
      drawn = metrics.get("samples", {})
      source = epath.Path(drawn.get("path", ""))
      if source.is_relative_to(workdir):
        source = source.relative_to(workdir)
      parts += [
        "",
        "### The classifier's synthetic training images",
        "",
        f"The images the synthetic regimes trained on (`{source}`, guidance "
        f"{drawn.get('guidance_scale', '?')}), scored like the samples above "
        f"(N={metrics.get('num_images')}; details in "
        f"`{(pool.parent / 'metrics.json').relative_to(workdir)}`):",
        "",
        tables.evaluation_markdown(metrics),
        "",
        *captions.figure_lines(pool.parent, workdir),
      ]
  parts += flux_section(workdir)
  parts += [
    "",
    "---",
    "Every figure above is read from the JSON files next to this report "
    "(`eval/metrics.json`, `classifier/metrics.json`), which also carry the sample counts.",
    "",
  ]
  return captions.add_captions("\n".join(parts))


def _provenance(config) -> dict:
  """The dataset's provenance as config.json records it (``simulated`` None where unread)."""
  data = resolve.record(config)
  if data.get("unreadable"):
    logging.warning("The report cannot read the dataset's provenance: %s", data["unreadable"])
  return data


def write_report(config, workdir) -> epath.Path:
  """Writes ``workdir/report.md`` and returns its path."""
  path = wd.report_path(workdir)
  wd.write_text(path, render_report(config, workdir))
  logging.info("Wrote the report %s", path)
  return path
