"""Writes ``workdir/report.md``: what a person reads after a run.

It gathers what the stages wrote (loss curve, sample grids, evaluation and
classifier metrics, their plots) and links the pictures; nothing is recomputed.
"""

from __future__ import annotations

import json
import numbers

from etils import epath


def _latest_samples(workdir: epath.Path) -> epath.Path | None:
  root = workdir / "samples"
  if not root.exists():
    return None
  steps = sorted((p for p in root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
  return steps[-1] if steps else None


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


def _images(directory: epath.Path, workdir: epath.Path) -> list[str]:
  if not directory.exists():
    return []
  return [f"![{p.stem}]({p.relative_to(workdir)})" for p in sorted(directory.glob("*.png"))]


def build_report(config, workdir) -> str:
  """Returns the report's markdown for ``workdir``."""
  workdir = epath.Path(workdir)
  parts = [
    "# solar_jax run report",
    "",
    f"Workdir `{workdir.name}`; dataset `{config.data.dataset}/{config.data.builder_config}`, "
    f"{config.data.image_size}² images, classes {', '.join(config.data.classes)}.",
  ]
  if (workdir / "loss_curve.png").exists():
    parts += ["", "## Training", "", "![loss curve](loss_curve.png)"]
    history = workdir / "train_metrics.jsonl"
    if history.exists():
      rows = [json.loads(x) for x in history.read_text().splitlines() if x.strip()]
      if rows:
        last = rows[-1]
        parts.append(
          f"\nFinal logged loss {last['loss']:.4f} at step {last['step']} "
          f"({last.get('images_per_sec', float('nan')):.1f} images/s)."
        )
  samples = _latest_samples(workdir)
  if samples is not None:
    parts += ["", f"## Samples (model step {samples.name})", ""]
    parts.append(f"![samples]({(samples / 'grid.png').relative_to(workdir)})")
    info = samples / "samples.npz"
    if info.exists():
      import numpy as np

      with info.open("rb") as f:
        npz = np.load(f)
        labels = npz["labels"]
        names = [str(n) for n in npz["class_names"]]
        counts = {n: int((labels == i).sum()) for i, n in enumerate(names)}
        parts.append(
          f"\n{len(labels)} images ({', '.join(f'{k} {v}' for k, v in counts.items())}), "
          f"sampler {npz['sampler']}, {int(npz['num_steps'])} steps, guidance "
          f"{float(npz['guidance_scale'])}, seed {int(npz['seed'])}. FITS files in "
          f"`{(samples / 'fits').relative_to(workdir)}/`."
        )
  classifier = workdir / "classifier" / "metrics.json"
  if classifier.exists():
    parts += ["", "## Flare classifier: real only vs real + synthetic", ""]
    metrics = json.loads(classifier.read_text())
    try:
      from solar_jax import train_classifier

      parts.append(train_classifier.results_table_markdown(metrics))
    except (ImportError, AttributeError, KeyError):
      parts.append(metrics_table(metrics, keys=("macro_f1", "tss", "hss")))
    parts += [""] + _images(workdir / "classifier", workdir)
  evaluation = workdir / "eval" / "metrics.json"
  if evaluation.exists():
    parts += ["", "## Evaluation: how real are the synthetic Suns?", ""]
    parts.append(metrics_table(json.loads(evaluation.read_text())))
    parts += [""] + _images(workdir / "eval", workdir)
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
        metrics_table(metrics.get("summary", {})),
        "",
        *_images(pool.parent, workdir),
      ]
  parts += [
    "",
    "---",
    "Every figure above is read from the JSON files next to this report "
    "(`eval/metrics.json`, `classifier/metrics.json`), which also carry the sample counts.",
    "",
  ]
  return "\n".join(parts)


def write_report(config, workdir) -> epath.Path:
  """Writes ``workdir/report.md`` and returns its path."""
  path = epath.Path(workdir) / "report.md"
  path.write_text(build_report(config, workdir))
  print(f"[solar_jax] report: {path}", flush=True)
  return path
