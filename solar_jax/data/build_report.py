"""The build report of the sdo_aia171 dataset: what was kept, what was skipped and why.

The TFDS builder (``tfds_builders/sdo_aia171``) decides per file; this module
only counts and writes, so it imports no TensorFlow. A build writes partial
reports into ``PARTS_DIR`` under the dataset's (temporary) version directory:
``_driver.json`` from the planning step (inputs read, files skipped before
reading) and ``<block>.json`` per stored split (the facts of each example,
files skipped while reading), written by whichever process or Beam worker
generated that split. The merged report gives, for every fold of the read-time
split rule (``splits``; label ``xrs_class`` on the SWPC class scale, the default
cooling lag and embargo), frames and distinct events per split and class, the
embargo drops and the share of test events whose active region also flared in
train; the forecast label's frames (``forecast_table``: issuance frames of the
default grid, and fold 0's labelled ones per split); and the flare list's events per
class on both class scales (``flare_list.events_per_class``).
``merge`` joins them into one report, ``write`` stores it as ``REPORT_NAME``
beside ``dataset_info.json`` and ``format_report`` gives the console summary.

A record of a skipped file is ``{'kind': 'skip', 'file', 'reason', 'detail'}``
with ``file`` relative to the manual directory and ``reason`` one of
``aia.REASONS`` or a builder reason (``duplicate_time``, ``time_mismatch``, ...).
Inputs read only in part are listed too: ``flare_list.skipped`` (each row
left out, with ``row``, ``reason`` from ``flare_list.ROW_REASONS`` and
``detail``), ``goes_skipped`` (GOES files without a usable sample) and
``not_followed`` (directory entries under ``aia/`` not followed: symlink
loops, dangling links).
"""

from __future__ import annotations

import collections
import datetime
import json

import numpy as np
from etils import epath

from solar_jax import errors
from solar_jax.data import frame_facts, goes, regions, splits

REPORT_NAME = "build_report.json"
# The first line of everything built on a simulated archive (build report, report.md,
# metrics.json files, model cards): no figure there is a statement about the Sun.
SIMULATED_LINE = (
  "SIMULATED DATA: built from a simulated archive (the demo), not observations; "
  "no figure here is a statement about the Sun."
)
PARTS_DIR = "_build_report_parts"  # per-split partial reports, merged at the end
# What the report's fold tables assume (configs/default.py has the same defaults).
REPORT_LABEL = "xrs_class"
REPORT_CLASS_SCALE = "swpc"
REPORT_COOLING_LAG_MINUTES = 30.0
REPORT_EMBARGO_DAYS = 14.0
# Facts an example's light record keeps for the fold tables.
_LIGHT_FACTS = (
  "goes_flux",
  "flare_event_id",
  "flare_flux",
  "flare_peak",
  "minutes_after_flare_start",
  "minutes_after_flare_end",
  "noaa_ar",
  "next24_flux",
  "next24_event_id",
  "next24_complete",
  "intensity_max",
  "flare_hgs_lat",  # The flare's position: the recurrent-region merge (data.regions).
  "flare_hgs_lon",
)
# Files listed by name in the console summary; the rest are only in the report.
MAX_LISTED = 20


class NoFramesError(errors.InputMismatchError):
  """A build in which no file became an example; the message names the main reason."""


def check_frames_kept(kept: int, skipped: list[dict], files_found: int, where: str) -> None:
  """Raises ``NoFramesError`` when ``kept`` is 0, naming why the files were skipped.

  An empty dataset is never a successful build: every later stage would fail on it
  far from the cause.
  """
  if kept:
    return
  counts = collections.Counter(s["reason"] for s in skipped)
  if not counts:
    raise NoFramesError(f"{where}: no frame kept from {files_found} files; nothing was built")
  reason, _ = counts.most_common(1)[0]
  first = next(s for s in sorted(skipped, key=lambda s: s["file"]) if s["reason"] == reason)
  reasons = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
  raise NoFramesError(
    f"{where}: no frame kept, all {files_found} files were skipped ({reasons}); "
    f"e.g. {first['file']}: {reason} ({first['detail']}); fix or replace these files"
  )


def skip(file: str, reason: str, detail: str) -> dict:
  """The record of a file that did not become an example."""
  return dict(kind="skip", file=file, reason=reason, detail=detail)


def light(result: dict) -> dict:
  """A per-file result without its image: what a partial report needs."""
  if result["kind"] == "example":
    ex = result["example"]
    facts = {k: ex[k].item() if hasattr(ex[k], "item") else ex[k] for k in _LIGHT_FACTS}
    return dict(kind="example", file=result["file"], time=result["time"], **facts)
  return result


def write_json(path, value) -> None:
  """Writes ``value`` as sorted, indented JSON (local or gs:// path), making parents."""
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(value, indent=1, sort_keys=True))


def events_per_class(flares, since=goes.TRUE_FLUX_LISTS_SINCE) -> dict:
  """{class scale: {letter: flares}} of ``flares`` on each of ``goes.CLASS_SCALES``.

  'swpc' counts an SWPC or HEK flare by its published class, 'true' by its true
  flux (``flare_list.Flare.flux_on``).
  """
  return {
    scale: {
      letter: n
      for letter, n in zip(
        goes.CLASS_LETTERS,
        np.bincount(
          frame_facts.class_index([f.flux_on(scale, since) for f in flares]),
          minlength=len(goes.CLASS_LETTERS),
        ).tolist(),
      )
    }
    for scale in goes.CLASS_SCALES
  }


def events_line(counts: dict) -> str:
  """One line of ``events_per_class``: 'events per class: swpc A 0 B 0 C 7809 ...; true ...'."""
  return "events per class: " + "; ".join(
    f"{scale} scale " + " ".join(f"{c} {n}" for c, n in per.items())
    for scale, per in counts.items()
  )


def flare_list_entry(path, flares, since=goes.TRUE_FLUX_LISTS_SINCE) -> dict:
  """The report's ``flare_list``: file, rows, flares read, their provenance and events per
  class on both class scales (``events_per_class``), each row left out with why, and
  each row repaired (a midnight wrap: peak or end moved to the next day)."""
  rows = [dict(row=s.row, reason=s.reason, detail=s.detail) for s in flares.skipped]
  repaired = [dict(row=r.row, detail=r.detail) for r in getattr(flares, "repaired", ())]
  provenance = collections.Counter(getattr(f, "provenance", "swpc") for f in flares)
  return dict(
    file=str(path),
    rows=flares.rows,
    flares=len(flares),
    provenance=dict(sorted(provenance.items())),
    events_per_class=events_per_class(flares, since),
    skipped_rows=len(rows),
    skipped_by_reason=dict(sorted(collections.Counter(r["reason"] for r in rows).items())),
    skipped=rows,
    repaired_rows=len(repaired),
    repaired=repaired,
  )


def flare_list_lines(driver: dict) -> list[str]:
  """Console lines of the flare list: its provenance and events per class on both scales."""
  flare_list = driver["flare_list"]
  if "events_per_class" not in flare_list:
    return []
  where = ", ".join(f"{k} {v}" for k, v in flare_list.get("provenance", {}).items())
  return [
    f"flare list {flare_list['file']}: {flare_list['flares']} flares (classes from: {where}); "
    + events_line(flare_list["events_per_class"])
  ]


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
  if flare_list.get("repaired_rows"):
    lines.append(
      f"flare list {flare_list['file']}: {flare_list['repaired_rows']} rows repaired "
      "(midnight wrap: peak or end on the next day)"
    )
    lines += [f"  row {r['row']}: {r['detail']}" for r in flare_list["repaired"][:MAX_LISTED]]
  lines += [
    f"GOES file {g['file']} left out: {g['detail']}" for g in driver.get("goes_skipped", [])
  ]
  lines += [f"not followed: {n['entry']}: {n['detail']}" for n in driver.get("not_followed", [])]
  return lines


def write_driver_part(parts_dir, driver: dict) -> None:
  """Stores the planning step's part: inputs read and ``skipped`` records."""
  write_json(epath.Path(parts_dir) / "_driver.json", driver)


def write_split_part(parts_dir, split: str, results) -> None:
  """Stores one stored split's part from its ``light`` results (facts and skips)."""
  examples, skipped = [], []
  for r in results:
    if r["kind"] == "example":
      examples.append({k: v for k, v in r.items() if k != "kind"})
    else:
      skipped.append({k: r[k] for k in ("file", "reason", "detail")})
  part = dict(
    split=split,
    examples=sorted(examples, key=lambda e: e["file"]),
    skipped=sorted(skipped, key=lambda s: s["file"]),
  )
  write_json(epath.Path(parts_dir) / f"{split}.json", _finite(part))


def _finite(value):
  """NaN -> None, recursively (JSON has no NaN)."""
  if isinstance(value, float) and value != value:
    return None
  if isinstance(value, dict):
    return {k: _finite(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_finite(v) for v in value]
  return value


def _fact_arrays(examples: list[dict]) -> dict:
  """The light records as the arrays ``frame_facts.labels`` and ``splits`` take."""
  arrays = {}
  for key in ("time", *_LIGHT_FACTS):
    values = [e[key] for e in examples]
    if key in (
      "goes_flux",
      "flare_flux",
      "minutes_after_flare_start",
      "minutes_after_flare_end",
      "next24_flux",
      "intensity_max",
      "flare_hgs_lat",
      "flare_hgs_lon",
    ):
      arrays[key] = np.array([np.nan if v is None else v for v in values], np.float64)
    else:
      arrays[key] = np.array(values, dtype=object if key != "noaa_ar" else np.int64)
  arrays["next24_complete"] = arrays["next24_complete"].astype(bool)
  return arrays


def fold_tables(facts: dict, labels, groups, num_folds: int) -> dict:
  """{fold: ``splits.summary`` and ``region_overlap``} of every fold (labels of
  ``REPORT_LABEL`` on ``REPORT_CLASS_SCALE``, default lag/embargo)."""
  if not len(labels):
    return {}
  in_flare = frame_facts.in_flare(facts, REPORT_COOLING_LAG_MINUTES)
  flare_ids = np.where(in_flare, facts["flare_event_id"], "")
  tables = {}
  for fold in range(num_folds):
    codes = splits.assign(
      facts["time"], fold=fold, num_folds=num_folds, embargo_days=REPORT_EMBARGO_DAYS
    )
    tables[str(fold)] = splits.summary(
      codes, labels, groups, facts["noaa_ar"], flare_ids, goes.CLASS_LETTERS
    )
    tables[str(fold)]["region_overlap"] = region_overlap(facts, in_flare, codes, seed=fold)
  return tables


def region_overlap(facts: dict, in_flare, codes, *, seed: int) -> dict:
  """Recurrent regions by position, for test and validation against train.

  ``regions.recurrent_overlap`` of the flaring frames (a NOAA region returning a rotation
  later at the same Carrington position is one region), beside its chance level (every
  region's longitude turned at random); the NOAA-number overlap (``ar_overlap``) misses
  them, since NOAA renumbers a returning region.
  """
  ar = np.where(in_flare, np.asarray(facts["noaa_ar"], np.int64), 0)
  lat, lon = facts["flare_hgs_lat"], facts["flare_hgs_lon"]  # float64, NaN: not listed
  train = codes == splits.TRAIN
  out = {}
  for split in ("test", "validation"):
    mine = codes == splits.SPLITS.index(split)
    got = regions.recurrent_overlap(ar, facts["flare_peak"], lat, lon, mine, train, seed=seed)
    out[split] = {k: got[k] for k in ("share", "chance", "test_flaring_frames", "test_regions")}
  return out


def forecast_table(facts: dict, num_folds: int, since: datetime.datetime) -> dict:
  """The forecast label's frames: issuance frames (default grid) and fold 0's labelled ones.

  Under ``frame_facts.FORECAST_LABEL`` only issuance frames are labelled (on read, on
  ``data.issuance_hours``); this counts them with the defaults the report assumes.
  """
  labels, _ = frame_facts.labels(
    facts,
    frame_facts.FORECAST_LABEL,
    REPORT_COOLING_LAG_MINUTES,
    class_scale=REPORT_CLASS_SCALE,
    true_flux_since=since,
  )
  codes = splits.assign(
    facts["time"], fold=0, num_folds=num_folds, embargo_days=REPORT_EMBARGO_DAYS
  )
  return dict(
    rule=frame_facts.forecast_rule(),
    frames=int(len(labels)),
    issuance_frames=int(frame_facts.issuance_frames(facts["time"]).sum()),
    fold0={s: int(np.sum((codes == i) & (labels >= 0))) for i, s in enumerate(splits.SPLITS)},
  )


def intensity_table(facts: dict, labels, clip: float) -> dict:
  """Per class (``REPORT_LABEL``): frames, the share whose disk exceeds ``clip``, median max."""
  if not len(labels):
    return {}
  peak = facts["intensity_max"]
  table = {}
  for i, c in enumerate(goes.CLASS_LETTERS):
    mine = peak[labels == i]
    table[c] = dict(
      frames=int(mine.size),
      share_above_clip=float(np.mean(mine > clip)) if mine.size else None,
      median_max_dn_s=float(np.nanmedian(mine)) if mine.size else None,
    )
  return dict(clip_dn_s=clip, per_class=table)


def merge(parts_dir, settings: dict, *, clip: float) -> dict:
  """Joins the partial reports into one and removes ``parts_dir``.

  Args:
    parts_dir: the directory the parts were written to.
    settings: what the build was asked for (dataset, config, version, image
      size, fact and split rules, beam), copied into the report.
    clip: the DN/s level whose exceedance the intensity table counts.

  Returns:
    The report: ``settings``, ``blocks`` (examples per stored split),
    ``folds`` (``fold_tables``), ``examples`` (fold 0's frames per split and
    class, for a quick look), ``intensity``, ``skipped`` (``count``,
    ``by_reason`` and every ``file`` with its split when it had one) and the
    driver's entries (manual dir, files found, simulated, flare list, GOES).
  """
  parts_dir = epath.Path(parts_dir)
  driver = json.loads((parts_dir / "_driver.json").read_text())
  examples, skipped, blocks = [], list(driver.pop("skipped")), {}
  for part_path in sorted(parts_dir.glob("block*.json")):
    part = json.loads(part_path.read_text())
    blocks[part["split"]] = len(part["examples"])
    examples += part["examples"]
    skipped += [dict(s, split=part["split"]) for s in part["skipped"]]
  parts_dir.rmtree()
  by_reason = collections.Counter(s["reason"] for s in skipped)
  facts = _fact_arrays(examples) if examples else {}
  since = datetime.datetime.fromisoformat(
    settings.get("true_flux_lists_since", goes.TRUE_FLUX_LISTS_SINCE.isoformat())
  )
  labels, groups = (
    frame_facts.labels(
      facts,
      REPORT_LABEL,
      REPORT_COOLING_LAG_MINUTES,
      class_scale=REPORT_CLASS_SCALE,
      true_flux_since=since,
    )
    if examples
    else ([], [])
  )
  folds = fold_tables(facts, labels, groups, settings["num_folds"])
  return dict(
    **settings,
    report_rules=dict(
      label=REPORT_LABEL,
      class_scale=REPORT_CLASS_SCALE,
      cooling_lag_minutes=REPORT_COOLING_LAG_MINUTES,
      embargo_days=REPORT_EMBARGO_DAYS,
    ),
    blocks=blocks,
    folds=folds,
    examples=folds["0"]["frames"] if folds else {},
    intensity=intensity_table(facts, labels, clip),
    forecast=forecast_table(facts, settings["num_folds"], since) if examples else {},
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


def _region_lines(overlap: dict) -> list[str]:
  """The recurrent-region overlap by position, test and validation, with chance."""
  parts = []
  for split, got in overlap.items():
    if got.get("share") is None:
      parts.append(f"{split} n/a (no numbered flaring frame)")
    else:
      parts.append(f"{split} {got['share']:.0%} (chance {got['chance']:.0%})")
  if not parts:
    return []
  return [
    "  flaring frames whose region (NOAA numbers merged by Carrington position across "
    f"rotations) also flared in train: {'; '.join(parts)}"
  ]


def format_report(report: dict) -> str:
  """A few console lines summarising a build report."""
  lines = [SIMULATED_LINE] if report.get("simulated") else []
  lines.append(
    f"sdo_aia171/{report['config']}:{report['version']} build report ({report['split_rule']})"
  )
  fold = report.get("folds", {}).get("0")
  if fold:
    lines.append(
      f"  fold 0 (label {REPORT_LABEL} on the {REPORT_CLASS_SCALE} scale, embargo "
      f"{REPORT_EMBARGO_DAYS:g} d): "
      f"{fold['embargoed']} frames embargoed, {fold['unlabelled']} without a label"
    )
    for split, counts in fold["frames"].items():
      per_class = " ".join(
        f"{c}={counts[c]}/{fold['events'][split][c]}" for c in goes.CLASS_LETTERS
      )
      lines.append(f"  {split:<10} {counts['total']:6d} frames  (frames/events) {per_class}")
    overlap = fold["ar_overlap"]
    share = "n/a" if overlap["share"] is None else f"{overlap['share']:.0%}"
    lines.append(
      f"  test events whose AR also flared in train: {overlap['in_train']} of "
      f"{overlap['test_events_with_ar']} with an AR ({share}, by NOAA number)"
    )
    lines += _region_lines(fold.get("region_overlap") or {})
  forecast = report.get("forecast")
  if forecast:
    per_split = ", ".join(f"{s} {n}" for s, n in forecast["fold0"].items())
    lines.append(
      f"  label {frame_facts.FORECAST_LABEL}: {forecast['issuance_frames']} of "
      f"{forecast['frames']} frames are issuance frames; fold 0 labelled: {per_split} "
      f"({forecast['rule']})"
    )
  skipped = report["skipped"]
  reasons = ", ".join(f"{k}={v}" for k, v in skipped["by_reason"].items()) or "none"
  lines.append(f"  skipped {skipped['count']} of {report['files_found']} files: {reasons}")
  for s in skipped["files"][:MAX_LISTED]:
    lines.append(f"    {s['file']}: {s['reason']} ({s['detail']})")
  if skipped["count"] > MAX_LISTED:
    lines.append(f"    ... {skipped['count'] - MAX_LISTED} more in {REPORT_NAME}")
  lines += [f"  {line}" for line in flare_list_lines(report) + input_problems(report)]
  return "\n".join(lines)
