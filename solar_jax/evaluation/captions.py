"""What every figure of report.md shows, and the question it answers.

Each PNG a stage writes has a caption here (``CAPTIONS``, matched on its file name);
``figure_lines`` lays a folder's figures out grouped by question, in this order, a
caption under each; ``add_captions`` puts the caption under any figure of a finished
markdown text that has none yet (the headline table's score plot). tests/test_report.py
checks that every ``*.png`` name in the package has a caption.
"""

from __future__ import annotations

import fnmatch
import re

from etils import epath

QUESTIONS = {
  "data": "What went in: the data and the training",
  "realism": "Realism: are the synthetic Suns like real AIA 171 Å frames?",
  "usefulness": "Usefulness: do synthetic images help a flare classifier?",
  "memorisation": "Memorisation: does the model copy its training frames?",
}

# (file-name pattern, question, caption), in the order figures are shown.
CAPTIONS = (
  (
    "loss_curve.png",
    "data",
    "DDPM training loss (noise-prediction error) against step. "
    "A curve still falling at the last step: the model is under-trained.",
  ),
  (
    "grid.png",
    "realism",
    "SYNTHETIC samples of the newest sample set, a row per class "
    "(the class each was asked for above it), on one log colour scale in DN/s "
    "(data.clip_min to data.clip_max).",
  ),
  (
    "sweep.png",
    "realism",
    "SYNTHETIC flux sweep of a flux-conditioned model: one seed (the same starting "
    "noise) at GOES 1-8 Å fluxes from A1 to X10, evenly spaced in log flux (the class asked "
    "for above each), on one log colour scale in DN/s. A model that learnt the flux "
    "brightens its active regions and flare kernels from left to right.",
  ),
  (
    "flux_consistency.png",
    "realism",
    "Flux consistency of a flux-conditioned model: the log10 GOES flux a real-only "
    "regressor reads from each SYNTHETIC sample against the flux it was asked for (left), "
    "and from each real frame against its own flux (right: the floor). Points along the "
    "dashed line: the flux asked for is the flux shown.",
  ),
  (
    "grid_*.png",
    "realism",
    "Real frames of the evaluation split (top row; observation "
    "time and GOES 1-8 Å class where known) and SYNTHETIC samples of the same class "
    "(bottom row) as solar maps: helioprojective arcsec, the limb dotted, one log DN/s "
    "colour bar. A real-looking sample has a limb-brightened disk, active-region loops "
    "and a dark sky.",
  ),
  (
    "limb_profile.png",
    "realism",
    "Mean intensity against distance from the disk centre "
    "(log scale; band ±1 std over images). 171 Å brightens towards the limb and falls by "
    "about an order of magnitude within 0.2 R_sun above it; a flat profile is no Sun.",
  ),
  (
    "power_spectrum.png",
    "realism",
    "Power spectrum of log10 intensity on the disk alone "
    "(inscribed square, Hann window) against spatial frequency in arcsec⁻¹, comparable "
    "across image sizes. Synthetic power above the real at high frequency: noise; below: "
    "too smooth.",
  ),
  (
    "intensity_histogram.png",
    "realism",
    "Distribution of on-disk log10 intensity "
    "(DN/s), real vs SYNTHETIC: a shift is a brightness error, a narrower one missing "
    "contrast.",
  ),
  (
    "flare_physics.png",
    "realism",
    "Per GOES class, the brightest on-disk intensity and "
    "the disk share above the flare-kernel threshold: a dot per image, a box where a "
    "class has 5 images or more, N real / SYNTHETIC under each class.",
  ),
  (
    "class_consistency_*.png",
    "realism",
    "Whether an image shows the class it stands "
    "for: rows the class asked for (samples) or labelled (real test frames), columns what "
    "the real-only classifier recognises; counts, shaded by share of the row.",
  ),
  (
    "cluster_occupancy_*.png",
    "realism",
    "Share of real and SYNTHETIC images in each "
    "k-means cluster of the real features: empty synthetic bars are modes the model "
    "misses, tall ones modes it over-fills.",
  ),
  (
    "scores.png",
    "usefulness",
    "Test scores of every classifier regime with 95 % "
    "bootstrap intervals: the synthetic regimes help only where they lie above the "
    "classical baselines.",
  ),
  (
    "reliability.png",
    "usefulness",
    "Reliability diagram: forecast probability against "
    "observed frequency on the test split (the diagonal is perfect calibration).",
  ),
  (
    "confusion_*.png",
    "usefulness",
    "Confusion matrix of one regime on the test split, "
    "summed over runs: rows the true class, columns the predicted one. One filled column: "
    "the classifier predicts one class for everything.",
  ),
  (
    "memorisation_ratios.png",
    "memorisation",
    "Distance of each SYNTHETIC image to its "
    "nearest training frame over the held-out real frames' median distance, per feature "
    "space, with held-out real frames for reference: a pile-up near 0 is copying.",
  ),
  (
    "memorisation_pairs_*.png",
    "memorisation",
    "The SYNTHETIC images closest to a "
    "training frame (top) and that frame (bottom), with their distance ratio.",
  ),
)
UNKNOWN = "(a figure this report has no caption for)"


def caption(name: str) -> tuple[str, str]:
  """(question, caption) of a figure file name; ('realism', ``UNKNOWN``) if unlisted."""
  for pattern, question, text in CAPTIONS:
    if fnmatch.fnmatchcase(name, pattern):
      return question, text
  return "realism", UNKNOWN


def _rank(name: str) -> int:
  return next(
    (i for i, (p, _, _) in enumerate(CAPTIONS) if fnmatch.fnmatchcase(name, p)), len(CAPTIONS)
  )


def captioned(link: str, name: str) -> list[str]:
  """A figure's markdown: the image, then its caption in italics."""
  return [link, "", f"*{caption(name)[1]}*", ""]


def figure_lines(directory, workdir, *, skip=()) -> list[str]:
  """The PNGs of ``directory`` grouped by question (a bold line each), each captioned."""
  directory, workdir = epath.Path(directory), epath.Path(workdir)
  if not directory.exists():
    return []
  paths = [p for p in directory.glob("*.png") if p.name not in skip]
  paths.sort(key=lambda p: (_rank(p.name), p.name))
  lines, last = [], None
  for path in paths:
    question = caption(path.name)[0]
    if question != last:
      lines += [f"**{QUESTIONS[question]}**", ""]
      last = question
    lines += captioned(f"![{path.stem}]({path.relative_to(workdir)})", path.name)
  return lines


_IMAGE = re.compile(r"^!\[[^\]]*\]\(([^)]+\.png)\)\s*$")


def add_captions(markdown: str) -> str:
  """``markdown`` with a caption under every figure line that has none."""
  lines = markdown.split("\n")
  out = []
  for i, line in enumerate(lines):
    out.append(line)
    match = _IMAGE.match(line)
    if not match:
      continue
    following = next((x for x in lines[i + 1 :] if x.strip()), "")
    if not (following.startswith("*") and not following.startswith("**")):
      out += ["", f"*{caption(epath.Path(match.group(1)).name)[1]}*"]
  return "\n".join(out)


def figure_links(markdown: str) -> list[tuple[str, str]]:
  """(figure path, the next non-empty line) of every figure in ``markdown``."""
  lines = markdown.split("\n")
  found = []
  for i, line in enumerate(lines):
    match = _IMAGE.match(line)
    if match:
      following = next((x for x in lines[i + 1 :] if x.strip()), "")
      found.append((match.group(1), following))
  return found
