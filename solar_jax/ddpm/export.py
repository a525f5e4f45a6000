"""--mode=export: the EMA weights as an inference checkpoint, with a model card.

Writes ``workdir/export/<step>/``: ``params/`` (orbax, the EMA parameters only),
``config.json`` (the config that gives them their meaning), ``export.json`` and
``MODEL_CARD.md``: what the model was trained on (data span, class counts per
split, the split rule, degradation correction), how it samples, and its known
failure modes. Someone who did not train samples from it with
``--config=<dir>/config.json --config.sampling.checkpoint=<dir>`` or
``solar_jax.generate(<dir>, ...)``.
"""

from __future__ import annotations

import jax
import ml_collections
import numpy as np
from absl import logging
from etils import epath

from solar_jax import parallel
from solar_jax import workdir as wd
from solar_jax.data import build_report, frame_facts, input_pipeline, splits
from solar_jax.ddpm import sample
from solar_jax.models import unet

# What the samples of these models get wrong, measured on the quickstart model
# (README.md and benchmarks/RESULTS.md name the measurements).
KNOWN_FAILURE_MODES = (
  "Intensities are clipped to [data.clip_min, data.clip_max] DN/s before training: the "
  "model cannot produce values outside it (saturated flare kernels, faint off-limb corona).",
  "Every sample has the same observer geometry (Earth on 2014-01-01, disk radius "
  "0.40 x image side, north up): positions and dates in the FITS headers are not observed.",
  "Deterministic samplers (DDIM eta = 0, dpmpp_2m) left pixel noise on a small model trained "
  "for 1000 steps; DDIM eta = 1 and DDPM did not (benchmarks/RESULTS.md, 'Quality per model').",
  "At guidance 1 the flare brightenings of the M and X classes are faint; stronger guidance "
  "sharpens them at a cost in FID (README, 'Guidance of the synthetic training images').",
  "Classes with few training examples (see the counts above) are learnt least well: check "
  "their per-class FID/KID in the run's report before using them.",
)


def dataset_summary(config: ml_collections.ConfigDict) -> dict:
  """Data span, class counts per split and the build settings of the training dataset.

  The build settings are ``config.provenance`` (``data.resolve``); the counts and the
  span come from one pass over each split's facts (``make_for_inference``, no images).
  Returns ``{'error': ...}`` instead when the dataset cannot be read here (an export
  from a machine without the data still gets a card that says so).
  """
  provenance = config.provenance
  if provenance.simulated is None:
    return {"error": provenance.unreadable or "the dataset's provenance was not resolved"}
  counts, times = {}, []
  try:
    for split in splits.SPLITS:
      facts = input_pipeline.make_for_inference(config.data, split, images=False)
      counts[split] = np.bincount(facts["label"], minlength=len(config.data.classes)).tolist()
      times += [t.decode() if isinstance(t, bytes) else str(t) for t in facts["time"]]
  except Exception as e:  # noqa: BLE001 - any failure: the card says the data were absent.
    return {"error": f"{type(e).__name__}: {e}"}
  settings = dict(
    split_rule=provenance.split_rule,
    degradation=provenance.degradation,
    simulated=bool(provenance.simulated),
    label=config.data.label,
    class_scale=config.data.class_scale,
    fold=config.data.fold,
    embargo_days=config.data.embargo_days,
    goes_scale=provenance.goes_scale,
  )
  if config.data.label == frame_facts.FORECAST_LABEL:
    settings["forecast"] = frame_facts.forecast_rule(
      config.data.issuance_hours, config.data.issuance_tolerance_minutes
    )
  return {
    "dataset": provenance.version,
    "first": min(times) if times else None,
    "last": max(times) if times else None,
    "counts": counts,
    **settings,
  }


def model_card(config, step: int, num_params: int, data: dict, source: str) -> str:
  """MODEL_CARD.md: what the weights are, what they were trained on, where they fail."""
  classes = tuple(config.data.classes)
  lines = [
    f"# solar_jax DDPM, AIA 171 A at {config.data.image_size}^2, step {step}",
    "",
    f"EMA weights of a class-conditional UNet ({num_params:,} parameters, "
    f"{config.diffusion.schedule} schedule, {config.diffusion.num_timesteps} timesteps, "
    f"{config.diffusion.prediction}-prediction), exported from {source}.",
    "Conditioning: GOES class " + ", ".join(f"{i} = {c}" for i, c in enumerate(classes)) + ".",
    f"Output: DN/s in [{config.data.clip_min:g}, {config.data.clip_max:g}] (data.clip_min/max).",
    "Every image it makes is SYNTHETIC: its FITS files say so (DETECTOR, IMG_TYPE) and the "
    "dataset reader refuses them.",
    "",
    "## Training data",
    "",
  ]
  if data.get("simulated"):
    lines[:0] = [build_report.SIMULATED_LINE, ""]
  if "error" in data:
    lines.append(f"Not recorded: the dataset could not be read when exporting ({data['error']}).")
  else:
    lines += [
      f"- label: {data['label']} (data.label) on the {data.get('class_scale', 'true')} "
      f"class scale (data.class_scale), fold {data['fold']}, embargo "
      f"{data['embargo_days']:g} days; GOES scale: {data.get('goes_scale') or 'not recorded'}",
      *([f"- forecast definition: {data['forecast']}"] if data.get("forecast") else []),
      f"- dataset: {data['dataset']}"
      + (" (the SIMULATED demo archive, not observations)" if data.get("simulated") else ""),
      f"- data span: {data['first']} to {data['last']} (UTC frame times, all splits)",
      f"- split rule: {data.get('split_rule') or 'not recorded'}",
      f"- degradation correction: {data.get('degradation', 'not recorded')}",
      "",
      "| split | " + " | ".join(classes) + " | total |",
      "| --- | " + " | ".join("---:" for _ in classes) + " | ---: |",
    ]
    for split, counts in data["counts"].items():
      lines.append(f"| {split} | " + " | ".join(map(str, counts)) + f" | {sum(counts)} |")
  lines += [
    "",
    "## Use",
    "",
    "```",
    "python -m solar_jax.main --config=<this dir>/config.json --workdir=<new dir> "
    "--mode=sample --config.sampling.checkpoint=<this dir>",
    "```",
    "or in Python: `solar_jax.generate('<this dir>', classes={'M': 4})`.",
    "",
    "## Known failure modes",
    "",
    *(f"- {m}" for m in KNOWN_FAILURE_MODES),
    "",
  ]
  return "\n".join(lines)


def run(config: ml_collections.ConfigDict, workdir) -> epath.Path:
  """--mode=export: writes workdir/export/<step>/ from the newest readable checkpoint."""
  mesh = parallel.create_mesh(config.mesh)
  with jax.set_mesh(mesh):
    params, step = sample.load_inference_params(workdir, config, mesh=mesh)
    params = jax.tree.map(np.asarray, jax.device_get(params))
  out = wd.export_dir(workdir, step)
  source = str(sample.checkpoint_source(config, workdir)[1])
  sample.export_params(out, params, config, step)
  if parallel.is_main_process():
    card = model_card(config, step, unet.count_params(params), dataset_summary(config), source)
    wd.write_text(out / "MODEL_CARD.md", card)
  logging.info("Exported the EMA weights of step %d to %s (MODEL_CARD.md).", step, out)
  return out
