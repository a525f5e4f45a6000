"""The report's evaluation section: compact tables from ``eval/metrics.json``, nothing recomputed.

One table per feature space, rows overall and each class, columns N, FID,
KID [95 % CI], precision, recall (each with its real-vs-real floor in
brackets), memorisation share and class consistency; then memorisation in
pixels, class consistency and the flare physics per class. A figure that is
not estimable at its N shows "n/a" and the reason.
"""

from __future__ import annotations

NA = "n/a"


def _g(value, digits: int = 3) -> str:
  return NA if value is None else f"{value:.{digits}g}"


def _floor(entry: dict, key: str, n: int) -> str:
  floor = entry.get("floor", {})
  value = floor.get(key)
  if isinstance(value, dict):
    value = value.get("mean")
  if "n" not in floor:
    return ""
  at = "" if floor["n"] == n else f" @n={floor['n']}"
  return f" ({NA if value is None else _g(value)}{at})"


def _fid(entry: dict) -> str:
  if "fid" in entry:
    method = " eigh" if entry.get("fid_method") == "eigh" else ""
    return _g(entry["fid"]) + method + _floor(entry, "fid", entry["n"])
  return f"{NA}: {entry.get('fid_not_estimable') or entry.get('not_estimable', '')}"


def _kid(entry: dict) -> str:
  kid = entry.get("kid")
  if kid is None:
    return f"{NA}: {entry.get('kid_not_estimable') or entry.get('not_estimable', '')}"
  text = f"{_g(kid['mean'])} [{_g(kid['ci_low'])}, {_g(kid['ci_high'])}]"
  return text + _floor(entry, "kid", entry["n"])


def _pr(entry: dict, key: str) -> str:
  if key not in entry:
    return NA
  return f"{entry[key]:.2f}" + _floor(entry, key, entry["n"])


def _memorised(mem: dict, name: str | None) -> str:
  """Overall: K/G (null share), exact p; per class: the class-matched K/G and Holm p."""
  if "share" not in mem:
    return NA
  if name is None:
    flag = " **memorised**" if mem["memorised"] else ""
    p = mem.get("pvalue")
    return f"{mem['count']}/{mem['n_generated']} (null {mem['null_share']:.2g}), p {_g(p, 2)}{flag}"
  row = mem.get("per_class", {}).get(name, {})
  if "not_estimable" in row:
    return f"{NA}: {row['not_estimable']}"
  if "pvalue_holm" not in row:
    return NA
  flag = " **memorised**" if row["memorised"] else ""
  return f"{row['count']}/{row['n_generated']}, p Holm {_g(row['pvalue_holm'], 2)}{flag}"


def _consistency(cc: dict, name: str | None) -> str:
  if "synthetic" not in cc:
    return NA
  if name is None:
    synth, real = cc["synthetic"]["balanced_accuracy"], cc["real_reference"]["balanced_accuracy"]
    return f"{_g(synth, 2)} ({_g(real, 2)})"
  synth = cc["synthetic"]["per_class"].get(name, {})
  real = cc["real_reference"]["per_class"].get(name, {})
  if not synth.get("n"):
    return NA
  return f"{synth['recall']:.2f} ({_g(real.get('recall'), 2)})"


def space_table(name: str, space: dict, metrics: dict) -> list[str]:
  """The compact table of one feature space."""
  mem = metrics.get("memorisation", {}).get(name, {})
  cc = metrics.get("class_consistency", {})
  lines = [
    f"### Feature space `{name}` (D = {space['dim']})",
    "",
    f"Features: {space.get('description', name)}.",
    "",
    "| class | N | FID (floor) | KID [95 % CI] (floor) | precision (floor) | recall (floor) "
    "| closer to train than any held-out (null) | class consistency (real) |",
    "|" + " --- |" * 8,
  ]
  rows = [("overall", space["overall"], None)]
  rows += [(c, e, c) for c, e in space["per_class"].items()]
  for label, entry, cls in rows:
    cells = [label, str(entry["n"]), _fid(entry), _kid(entry)]
    cells += [_pr(entry, "precision"), _pr(entry, "recall")]
    cells += [_memorised(mem, cls), _consistency(cc, cls)]
    lines.append("| " + " | ".join(cells) + " |")
  return lines


def _legend(metrics: dict) -> list[str]:
  floor = metrics.get("floor_split")
  floor_text = (
    f"real `{metrics.get('split')}` vs real `{floor}` images at the same N and class mix "
    "(what a perfect generator scores; `@n=` where the floor split had fewer)"
    if floor
    else "none (no second real split)"
  )
  rules = metrics.get("sample_size_rules", {})
  return [
    f"Evaluation split `{metrics.get('split')}`; N = {metrics.get('num_images')} images per set "
    "overall. In brackets: the real-vs-real floor, " + floor_text + ". KID: unbiased MMD² of "
    "the whole sets, 95 % bootstrap interval over images. Memorisation: generated images "
    "closer to a DDPM training image than any held-out real image is (null share 1/(M+1) "
    "if they were new draws; exact Beta-Binomial p-value); per class against that class's "
    "training and held-out images, Holm-adjusted over the tested classes. Class "
    "consistency: recall of the asked-for "
    "class under the real-only classifier (overall: balanced accuracy), real test images "
    "in brackets.",
    "",
    "Sample-size rules: " + "; ".join(f"{k}: {v}" for k, v in rules.items()) + ".",
    "",
  ]


def _memorisation_lines(metrics: dict) -> list[str]:
  lines = ["### Memorisation", "", "| space | generated | train searched | held-out "]
  lines[-1] += "| share closer (null) | p (exact) | median ratio gen. (held-out) |"
  lines.append("|" + " --- |" * 7)
  per_class = []
  for space, mem in metrics.get("memorisation", {}).items():
    if "share" not in mem:
      lines.append(f"| {space} | {mem.get('not_estimable', NA)} |" + " |" * 5)
      continue
    p = mem.get("pvalue")
    lines.append(
      f"| {space} | {mem['n_generated']} | {mem['n_train']} | {mem['n_heldout']} | "
      f"{mem['share']:.3f} ({mem['null_share']:.3f}) | {_g(p, 2)} | "
      f"{_g(mem['ratio_generated']['q50'], 2)} ({_g(mem['ratio_heldout']['q50'], 2)}) |"
    )
    per_class += _memorisation_class_rows(space, mem)
  selection = metrics.get("memorisation_train_selection") or {}
  searched = "; ".join(
    f"{c} {v['searched']}/{v['available']}" for c, v in (selection.get("per_class") or {}).items()
  )
  lines += [
    "",
    "`pixels`: the images after the intensity transform. Ratio: distance to the nearest "
    "training image over the held-out images' median of that distance. p: exact upper "
    "tail of Beta-Binomial(G, 1, M), the count's null when generated and held-out images "
    "are exchangeable (the pooled row assumes their class mixes match).",
  ]
  if searched:
    lines.append(
      f"Training frames searched per class (searched/available; {selection.get('rule')}, "
      f"seed {selection.get('seed')}): {searched}."
    )
  lines += _heldout_lines(metrics)
  if per_class:
    lines += [
      "",
      "Per class, class-matched (generated images of a class against the training and "
      "held-out images of that class; flags at α after Holm over the tested classes):",
      "",
      "| space | class | N generated / train / held-out | closer than any held-out "
      "| p | p Holm | verdict |",
      "|" + " --- |" * 7,
      *per_class,
    ]
  return lines + [""]


def _heldout_lines(metrics: dict) -> list[str]:
  """Where the memorisation test's held-out images come from (withheld days or not)."""
  held = metrics.get("memorisation_heldout")
  if not held:
    return []
  line = f"Held-out images: {held}."
  chosen = metrics.get("memorisation_heldout_selection") or {}
  if chosen.get("per_class"):
    used = "; ".join(
      f"{c} {v['searched']}/{v['available']}" for c, v in chosen["per_class"].items()
    )
    line += (
      f" They are the {chosen['available']} frames of {chosen.get('days')} days withheld from "
      f"the DDPM's training months (data.withheld_day_fraction={chosen['fraction']:g}, "
      f"seed {chosen['day_seed']}; never trained on); used per class: {used}."
    )
  return [line]


def _memorisation_class_rows(space: str, mem: dict) -> list[str]:
  rows = []
  for name, row in (mem.get("per_class") or {}).items():
    if "n_train" not in row:
      continue  # metrics.json of an earlier version: no class-matched test.
    n = f"{row['n_generated']} / {row['n_train']} / {row['n_heldout']}"
    if "not_estimable" in row:
      rows.append(f"| {space} | {name} | {n} | {NA}: {row['not_estimable']} | | | |")
      continue
    verdict = "**memorised**" if row["memorised"] else "not shown"
    rows.append(
      f"| {space} | {name} | {n} | {row['count']} ({row['share']:.3f}; null "
      f"{row['null_share']:.3f}) | {_g(row['pvalue'], 2)} | {_g(row['pvalue_holm'], 2)} "
      f"| {verdict} |"
    )
  combined = (mem.get("class_matched") or {}).get("combined")
  if combined:
    verdict = "**memorised**" if combined["memorised"] else "not shown"
    rows.append(
      f"| {space} | tested classes together | {combined['n_generated']} generated | "
      f"{combined['count']} | {_g(combined['pvalue'], 2)} | | {verdict} |"
    )
  return rows


def _physics_lines(metrics: dict) -> list[str]:
  flare = metrics.get("physics", {}).get("flare")
  if not flare:
    return []
  lines = ["### Flare physics per class (real evaluation split vs all samples)", ""]
  lines += _flare_table(flare)
  unseen = metrics["physics"].get("flare_unseen")
  if unseen:
    lines += [
      "",
      "The same against every real frame the generator did not train on (test, "
      "validation, embargoed and withheld days; the rare classes' N):",
      "",
      *_flare_table(unseen)[2:],
    ]
  summary = metrics.get("summary", {}).get("physics", {})
  if summary:
    lines += [
      "",
      "Overall (N each): on-disk log-intensity Wasserstein "
      f"{_g(summary.get('intensity_wasserstein_dex'))} dex, limb profile mean |log10 ratio| "
      f"{_g(summary.get('limb_profile_mean_abs_log_ratio'))}, on-disk power spectrum mean "
      f"|log10 ratio| {_g(summary.get('power_spectrum_mean_abs_log_ratio'))}.",
    ]
  return lines + [""]


def _flare_table(flare: dict) -> list[str]:
  """Legend (two lines), header and one row per class of a flare-physics entry."""
  lines = [
    f"Kernel area: share of the disk at or above {flare['threshold_dns']:g} DN/s. "
    "Medians real / synthetic; KS: two-sample Kolmogorov-Smirnov p-value. Real images are "
    "compared clipped to the model's range (data.clip_min/max), as every sample is; the "
    "last column is the share of real frames whose on-disk peak the clip cuts.",
    "",
    "| class | N real / syn. | peak DN/s | KS p | kernel area | KS p | clipped at max real / syn. "
    "| real frames above the clip |",
    "|" + " --- |" * 8,
  ]
  for label, e in (("overall", flare["overall"]), *flare["per_class"].items()):
    peak, area = e["peak_dns"], e["kernel_area"]
    cells = [label, f"{peak['n_real']} / {peak['n_fake']}"]
    for d in (peak, area):
      cells.append(f"{_g(d['median_real'])} / {_g(d['median_fake'])}")
      cells.append(_g(d["ks_pvalue"], 2) if "ks_pvalue" in d else f"{NA}: {d['ks_not_estimable']}")
    cells.append(f"{_g(e['clipped_real']['high'], 2)} / {_g(e['clipped_fake']['high'], 2)}")
    above = e.get("real_above_clip")  # Evaluations before it: not recorded.
    cells.append(f"{_g(above['share'], 2)} of {above['n']}" if above else NA)
    lines.append("| " + " | ".join(cells) + " |")
  return lines


def unseen_table(name: str, space: dict, selection: dict) -> list[str]:
  """Per class against every real frame the generator never saw, with the N of each side."""
  rows = space.get("per_class_unseen")
  if not rows:
    return []
  lines = [
    f"Per class in `{name}` against every real frame of the class the generator did not "
    "train on (test, validation, embargoed and withheld days; per class all of them, or a "
    f"seeded subset of {selection.get('per_class_cap', 'the cap')}): N = min(real, "
    "generated, num_images) of that class, no floor.",
    "",
    "| class | N | real unseen available | generated available | KID [95 % CI] "
    "| precision | recall |",
    "|" + " --- |" * 7,
  ]
  for c, e in rows.items():
    cells = [c, str(e["n"]), str(e["n_real_available"]), str(e["n_generated_available"])]
    cells += [_kid(e), _pr(e, "precision"), _pr(e, "recall")]
    lines.append("| " + " | ".join(cells) + " |")
  return lines + [""]


def evaluation_markdown(metrics: dict) -> str:
  """The evaluation section's text (tables only; the caller links the pictures)."""
  lines = _legend(metrics)
  for name, space in metrics.get("features", {}).items():
    lines += space_table(name, space, metrics) + [""]
    lines += unseen_table(name, space, metrics.get("unseen_selection") or {})
  skipped = metrics.get("skipped_extractors") or {}
  for name, reason in skipped.items():
    lines += [f"Feature space `{name}` skipped: {reason}.", ""]
  lines += _memorisation_lines(metrics)
  cc = metrics.get("class_consistency", {})
  if "classifier" in cc:
    info = cc["classifier"]
    lines += [
      f"Class consistency classifier: regime `{info['regime']}`, seed {info['seed']}, step "
      f"{info['step']}, task `{info['task']}`; chance (labels independent of the images) "
      f"{_g(cc['synthetic']['chance'], 2)} for the samples.",
      "",
    ]
  elif cc:
    lines += [f"Class consistency: {cc.get('not_available', NA)}.", ""]
  lines += _physics_lines(metrics)
  return "\n".join(lines)


def study_unseen_markdown(metrics_by_partition: dict) -> str:
  """The study's rare-class realism: per feature space and class, each generator's KID
  against every frame it did not train on (one fold per training partition, so no
  generator counts twice), and the folds pooled: the N-weighted mean KID, summed N."""
  lines = [
    "## Rare-class realism over the study's generators",
    "",
    "Per class, the samples of each generator (one per training partition) against every "
    "real frame of the class it did not train on (`per_class_unseen` of its "
    "eval/metrics.json); pooled: KID weighted by N, N summed over the generators.",
  ]
  spaces = sorted({s for m in metrics_by_partition.values() for s in m.get("features", {})})
  for space in spaces:
    rows = {f: (m["features"].get(space) or {}).get("per_class_unseen") or {}
            for f, m in metrics_by_partition.items()}  # fmt: skip
    classes = list(dict.fromkeys(c for r in rows.values() for c in r))
    if not classes:
      continue
    folds = sorted(rows)
    lines += ["", f"### `{space}`", ""]
    lines.append("| class | " + " | ".join(f"fold {f}: N, KID" for f in folds) + " | pooled |")
    lines.append("|" + " --- |" * (len(folds) + 2))
    for c in classes:
      cells, n_sum, weighted = [c], 0, 0.0
      for f in folds:
        e = rows[f].get(c)
        if not e:
          cells.append(NA)
          continue
        kid = (e.get("kid") or {}).get("mean")
        cells.append(f"{e['n']}, {_g(kid) if kid is not None else NA}")
        if kid is not None:
          n_sum, weighted = n_sum + e["n"], weighted + e["n"] * kid
      cells.append(f"N={n_sum}, KID {_g(weighted / n_sum)}" if n_sum else NA)
      lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"
