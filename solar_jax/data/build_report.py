"""The build report of the sdo_aia171 dataset: what was kept, what was skipped and why.

The TFDS builder (``tfds_builders/sdo_aia171``) decides per file; this module
only counts and writes, so it imports no TensorFlow. A build writes partial
reports into ``PARTS_DIR`` under the dataset's (temporary) version directory:
``_driver.json`` from the planning step (inputs read, files skipped before
reading) and ``<split>.json`` per split (class counts, files skipped while
reading), written by whichever process or Beam worker generated that split.
``merge`` joins them into one report, ``write`` stores it as ``REPORT_NAME``
beside ``dataset_info.json`` and ``format_report`` gives the console summary.

A record of a skipped file is ``{'kind': 'skip', 'file', 'reason', 'detail'}``
with ``file`` relative to the manual directory and ``reason`` one of
``aia.REASONS`` or a builder reason (``no_label``, ``duplicate_time``, ...).
Inputs read only in part are listed too: ``flare_list.skipped`` (each row
left out, with ``row``, ``reason`` from ``flare_labels.ROW_REASONS`` and
``detail``), ``goes_skipped`` (GOES files without a usable sample) and
``not_followed`` (directory entries under ``aia/`` not followed: symlink
loops, dangling links).
"""

from __future__ import annotations

import collections
import json

from etils import epath

from solar_jax.data import flare_labels

REPORT_NAME = "build_report.json"
PARTS_DIR = "_build_report_parts"  # per-split partial reports, merged at the end
SPLITS = ("train", "validation", "test")
# Files listed by name in the console summary; the rest are only in the report.
MAX_LISTED = 20


def skip(file: str, reason: str, detail: str) -> dict:
  """The record of a file that did not become an example."""
  return dict(kind="skip", file=file, reason=reason, detail=detail)


def light(result: dict) -> dict:
  """A per-file result without its image: what a partial report needs."""
  if result["kind"] == "example":
    return dict(kind="example", file=result["file"], label=result["example"]["label"])
  return result


def write_json(path, value) -> None:
  """Writes ``value`` as sorted, indented JSON (local or gs:// path), making parents."""
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(value, indent=1, sort_keys=True))


def flare_list_entry(path, flares) -> dict:
  """The report's ``flare_list``: file, rows, flares read, and each row left out with why."""
  rows = [dict(row=s.row, reason=s.reason, detail=s.detail) for s in flares.skipped]
  return dict(
    file=str(path),
    rows=flares.rows,
    flares=len(flares),
    skipped_rows=len(rows),
    skipped_by_reason=dict(sorted(collections.Counter(r["reason"] for r in rows).items())),
    skipped=rows,
  )


def input_problems(driver: dict) -> list[str]:
  """Console lines for inputs partly left out: flare-list rows, GOES files, unfollowed entries."""
  flare_list = driver["flare_list"]
  lines = []
  if flare_list.get("skipped_rows"):
    reasons = ", ".join(f"{k}={v}" for k, v in flare_list["skipped_by_reason"].items())
    lines.append(
      f"flare list {flare_list['file']}: {flare_list['skipped_rows']} of {flare_list['rows']} "
      f"rows left out ({reasons})"
    )
    lines += [f"  row {r['row']}: {r['detail']}" for r in flare_list["skipped"][:MAX_LISTED]]
  lines += [
    f"GOES file {g['file']} left out: {g['detail']}" for g in driver.get("goes_skipped", [])
  ]
  lines += [f"not followed: {n['entry']}: {n['detail']}" for n in driver.get("not_followed", [])]
  return lines


def write_driver_part(parts_dir, driver: dict) -> None:
  """Stores the planning step's part: inputs read and ``skipped`` records."""
  write_json(epath.Path(parts_dir) / "_driver.json", driver)


def write_split_part(parts_dir, split: str, results) -> None:
  """Stores one split's part from its ``light`` results (class counts and skips)."""
  counts = collections.Counter()
  skipped = []
  for r in results:
    if r["kind"] == "example":
      counts[r["label"]] += 1
    else:
      skipped.append({k: r[k] for k in ("file", "reason", "detail")})
  part = dict(
    split=split, class_counts=dict(counts), skipped=sorted(skipped, key=lambda s: s["file"])
  )
  write_json(epath.Path(parts_dir) / f"{split}.json", part)


def merge(parts_dir, settings: dict) -> dict:
  """Joins the partial reports into one and removes ``parts_dir``.

  Args:
    parts_dir: the directory the parts were written to.
    settings: what the build was asked for (dataset, config, version, image
      size, labelling and split rules, beam), copied into the report.

  Returns:
    The report: ``settings``, ``examples`` (per split, per class and
    ``total``; a split without a part counts zero), ``skipped`` (``count``,
    ``by_reason`` and every ``file`` with its split when it had one) and the
    driver's entries (manual dir, files found, flare list, GOES files).
  """
  parts_dir = epath.Path(parts_dir)
  driver = json.loads((parts_dir / "_driver.json").read_text())
  examples, skipped = {}, list(driver.pop("skipped"))
  for split in SPLITS:
    part_path = parts_dir / f"{split}.json"
    counts = {c: 0 for c in flare_labels.CLASS_LETTERS}
    if part_path.exists():
      part = json.loads(part_path.read_text())
      counts.update(part["class_counts"])
      skipped += [dict(s, split=split) for s in part["skipped"]]
    counts["total"] = sum(counts[c] for c in flare_labels.CLASS_LETTERS)
    examples[split] = counts
  parts_dir.rmtree()
  by_reason = collections.Counter(s["reason"] for s in skipped)
  return dict(
    **settings,
    examples=examples,
    skipped=dict(
      count=len(skipped),
      by_reason=dict(sorted(by_reason.items())),
      files=sorted(skipped, key=lambda s: s["file"]),
    ),
    **driver,
  )


def write(version_dir, report: dict) -> None:
  """Stores ``report`` as ``REPORT_NAME`` in the dataset's version directory."""
  write_json(epath.Path(version_dir) / REPORT_NAME, report)


def format_report(report: dict) -> str:
  """A few console lines summarising a build report."""
  lines = [
    f"sdo_aia171/{report['config']}:{report['version']} build report ({report['split_rule']})"
  ]
  for split, counts in report["examples"].items():
    per_class = " ".join(f"{c}={counts[c]}" for c in flare_labels.CLASS_LETTERS)
    lines.append(f"  {split:<10} {counts['total']:6d} examples  {per_class}")
  skipped = report["skipped"]
  reasons = ", ".join(f"{k}={v}" for k, v in skipped["by_reason"].items()) or "none"
  lines.append(f"  skipped {skipped['count']} of {report['files_found']} files: {reasons}")
  for s in skipped["files"][:MAX_LISTED]:
    lines.append(f"    {s['file']}: {s['reason']} ({s['detail']})")
  if skipped["count"] > MAX_LISTED:
    lines.append(f"    ... {skipped['count'] - MAX_LISTED} more in {REPORT_NAME}")
  lines += [f"  {line}" for line in input_problems(report)]
  return "\n".join(lines)
