"""--mode=export: the EMA weights as an inference checkpoint, with a model card.

Writes ``workdir/export/<step>/``: ``params/`` (orbax, the EMA parameters only),
``config.json`` (the config that gives them their meaning), ``export.json`` (with the
recommended sampler: the settings the run's evaluation scored, else the config's) and
``MODEL_CARD.md``: the fields model hubs read (license, intended and out-of-scope use),
who exported it (date, version, commit, command), what the model was trained on (data
span, class counts per split, the split rule, degradation correction) and how (steps,
devices), its evaluation, how to sample it, its known failure modes and what to cite. Someone who did not train samples from it with
``--config=<dir>/config.json --config.sampling.checkpoint=<dir>`` or
``solar_jax.generate(<dir>, ...)``.
"""

from __future__ import annotations

import json

import jax
import ml_collections
import numpy as np
from absl import logging
from etils import epath

from solar_jax import parallel, provenance
from solar_jax import workdir as wd
from solar_jax.data import build_report, frame_facts, input_pipeline, splits
from solar_jax.ddpm import sample
from solar_jax.diffusion import samplers
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


LICENSE = "mit"  # The code's licence (LICENSE); the card proposes it for the weights.
CITATION = (
  "Cite the software (CITATION.cff, solar_jax version and commit above), DDPM (Ho et al. "
  "2020), DDIM (Song et al. 2021), classifier-free guidance (Ho & Salimans 2022), and the "
  "data: SDO (Pesnell et al. 2012), AIA (Lemen et al. 2012), GOES XRS; BibTeX in CITATIONS.bib."
)
INTENDED_USE = (
  "Research on data augmentation for solar-flare classification: synthetic AIA 171 A images "
  "per GOES class to rebalance rare classes, and studies of what a generative model learns "
  "of the corona.",
  "Teaching and software tests of the solar_jax pipeline.",
)
OUT_OF_SCOPE = (
  "Anything that treats a sample as an observation: space-weather forecasts, alerts or "
  "operations, flare statistics, physical measurements of the corona, or data products "
  "mixed with real AIA data without the SYNTHETIC flags.",
  "Classes, wavelengths, resolutions or epochs other than those it was trained on.",
)


def recommended_sampler(config, evaluation: dict | None) -> dict:
  """The sampler settings to use this model with: those its evaluation scored
  (``eval/metrics.json``'s samples), else the config's (then marked not evaluated)."""
  keys = ("sampler", "num_steps", "eta", "guidance_scale")
  drawn = (evaluation or {}).get("samples") or {}
  if all(k in drawn for k in keys):
    return {**{k: drawn[k] for k in keys}, "chosen_by": f"evaluation at step {drawn.get('step')}"}
  settings = samplers.recorded_settings(config)
  return {**{k: settings[k] for k in keys}, "chosen_by": "config (not evaluated)"}


def evaluation_record(workdir) -> dict | None:
  """``{'samples', 'summary'}`` of ``workdir/eval/metrics.json`` (None without one)."""
  path = wd.eval_dir(workdir) / "metrics.json"
  if not path.exists():
    return None
  try:
    metrics = json.loads(path.read_text())
  except ValueError:
    return None
  return {"samples": metrics.get("samples") or {}, "summary": metrics.get("summary") or {}}


def training_record(workdir) -> dict:
  """Who trained the model and at what speed: ``train_info.json`` and the last line of
  ``train_metrics.jsonl`` of ``workdir`` (empty where absent)."""
  out = {}
  info, history = wd.train_info_path(workdir), wd.history_path(workdir)
  try:
    if info.exists():
      out.update(json.loads(info.read_text()))
    if history.exists():
      rows = [line for line in history.read_text().splitlines() if line.strip()]
      if rows:
        out["images_per_sec"] = json.loads(rows[-1]).get("images_per_sec")
  except ValueError:
    pass  # A damaged file: the card says 'not recorded'.
  return out


def usage_command(sampler: dict) -> str:
  """The card's command line: --mode=sample from the export with ``sampler``'s settings."""
  return (
    "python -m solar_jax.main --config=<this dir>/config.json --workdir=<new dir> "
    "--mode=sample --config.sampling.checkpoint=<this dir> "
    f"--config.sampling.sampler={sampler['sampler']} "
    f"--config.sampling.num_steps={sampler['num_steps']} "
    f"--config.sampling.eta={sampler['eta']:g} "
    f"--config.sampling.guidance_scale={sampler['guidance_scale']:g}"
  )


def _front_matter(config, data: dict) -> list[str]:
  """The YAML header model hubs read (license, tags, datasets)."""
  dataset = data.get("dataset") or f"{config.data.dataset}/{config.data.builder_config}"
  return [
    "---",
    f"license: {LICENSE}",
    "library_name: flax",
    "tags: [diffusion, ddpm, solar-physics, sdo, aia, synthetic-data, jax]",
    f"datasets: ['{dataset}']",
    "---",
    "",
  ]


def _evaluation_lines(evaluation: dict | None, step: int) -> list[str]:
  if not evaluation or not evaluation.get("summary"):
    return ["Not evaluated in this workdir when exporting (run --mode=evaluate, then export)."]
  drawn = evaluation["samples"]
  lines = [
    f"Samples of step {drawn.get('step')}"
    + ("" if drawn.get("step") == step else f" (this export: step {step})")
    + f", {drawn.get('sampler')} {drawn.get('num_steps')} steps, eta {drawn.get('eta')}, "
    f"guidance {drawn.get('guidance_scale')}, against real test images (floor: real vs "
    "real at the same N; every figure and its N in the run's eval/metrics.json and report.md):",
    "",
    "| feature space | figure | value |",
    "| --- | --- | ---: |",
  ]
  for space, figures in evaluation["summary"].items():
    for name, value in figures.items():
      if isinstance(value, (int, float)) and not isinstance(value, bool):
        lines.append(f"| {space} | {name} | {value:.4g} |")
  return lines


def _data_lines(classes, data: dict) -> list[str]:
  """The card's training data: label, dataset, span, split rule, counts per split."""
  if "error" in data:
    return [f"Not recorded: the dataset could not be read when exporting ({data['error']})."]
  lines = [
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
  return lines


def _training_details(config, step: int, training: dict) -> list[str]:
  """The card's training details: the optimisation, the compute, who trained it."""
  t = config.training
  speed = training.get("images_per_sec")
  return [
    f"- {step} steps of batch {t.batch_size}, learning rate {t.learning_rate:g} "
    f"({t.warmup_steps} warm-up steps), EMA decay {t.ema_decay:g}, seed {config.seed}",
    f"- compute: {training.get('devices', 'not recorded')}"
    + (f", {speed:.1f} images/s at the last logged step" if speed else ""),
    f"- trained by solar_jax {training.get('version', '?')} (commit "
    f"`{training.get('commit', 'not recorded')}`) from "
    f"{training.get('date', 'an unrecorded date')} with "
    f"`{training.get('command', 'not recorded')}` (its workdir's config_train.json)",
  ]


def _use_lines(sampler: dict) -> list[str]:
  """The card's usage: the recommended sampler and the command that samples with it."""
  return [
    f"Recommended sampler ({sampler['chosen_by']}): {sampler['sampler']}, "
    f"{sampler['num_steps']} steps, eta {sampler['eta']:g}, guidance "
    f"{sampler['guidance_scale']:g}.",
    "",
    "```",
    usage_command(sampler),
    "```",
    "or in Python, with the recommended sampler (export.json) unless told otherwise: "
    "`pipe = solar_jax.DiffusionPipeline.from_pretrained('<this dir>')`, then "
    "`pipe(classes={'M': 4}, seed=0)` as often as needed (it compiles once per sampler "
    "setting), or `solar_jax.generate('<this dir>', classes={'M': 4})` once.",
  ]


def _conditioning_line(config, classes) -> str:
  """What the model card says the weights are conditioned on (model.conditioning)."""
  if config.model.conditioning == "flux":
    return (
      "Conditioning: the log10 GOES 1-8 A flux [W m^-2] of the label "
      f"(data.label={config.data.label!r}, class scale {config.data.class_scale!r}); ask "
      "with flux='M2.5' or flux=2.5e-5 (solar_jax.generate, sampling.fluxes)."
    )
  return "Conditioning: GOES class " + ", ".join(f"{i} = {c}" for i, c in enumerate(classes)) + "."


def model_card(
  config,
  step: int,
  num_params: int,
  data: dict,
  source: str,
  *,
  made_by: dict,
  sampler: dict,
  evaluation: dict | None = None,
  training: dict | None = None,
) -> str:
  """MODEL_CARD.md: what the weights are, what they were trained on, how to use them, where
  they fail, with the fields model hubs read (license, intended and out-of-scope use,
  training data and details, evaluation, citation, limitations).

  Args:
    made_by: ``provenance.record()`` of the export.
    sampler: ``recommended_sampler``; evaluation: ``evaluation_record``; training:
      ``training_record`` (None: the source is an export, not a workdir).
  """
  classes = tuple(config.data.classes)
  simulated = [build_report.SIMULATED_LINE, ""] if data.get("simulated") else []
  sections = (
    ("Intended use", [f"- {m}" for m in INTENDED_USE]),
    ("Out-of-scope use", [f"- {m}" for m in OUT_OF_SCOPE]),
    ("Training data", _data_lines(classes, data)),
    ("Training details", _training_details(config, step, training or {})),
    ("Evaluation results", _evaluation_lines(evaluation, step)),
    ("Use", _use_lines(sampler)),
    ("Known failure modes (limitations)", [f"- {m}" for m in KNOWN_FAILURE_MODES]),
    ("Citation", [CITATION]),
  )
  lines = [
    *_front_matter(config, data),
    *simulated,
    f"# solar_jax DDPM, AIA 171 A at {config.data.image_size}^2, step {step}",
    "",
    provenance.markdown_line(made_by).replace("Made ", "Exported ", 1),
    "",
    f"EMA weights of a {config.model.conditioning}-conditional UNet ({num_params:,} parameters, "
    f"{config.diffusion.schedule} schedule, {config.diffusion.num_timesteps} timesteps, "
    f"{config.diffusion.prediction}-prediction), exported from {source}.",
    _conditioning_line(config, classes),
    f"Output: DN/s in [{config.data.clip_min:g}, {config.data.clip_max:g}] (data.clip_min/max).",
    "Every image it makes is SYNTHETIC: its FITS files say so (DETECTOR, IMG_TYPE) and the "
    "dataset reader refuses them.",
    f"License: {LICENSE.upper()}, the licence of the code that made the weights; the training "
    "images (SDO/AIA, NASA) and GOES fluxes (NOAA) are public-domain data (solar_jax's "
    "DATA_LICENSE.md: the acknowledgements they ask for).",
  ]
  for title, body in sections:
    lines += ["", f"## {title}", "", *body]
  return "\n".join(lines) + "\n"


def run(config: ml_collections.ConfigDict, workdir) -> epath.Path:
  """--mode=export: writes workdir/export/<step>/ from the newest readable checkpoint."""
  mesh = parallel.create_mesh(config.mesh)
  with jax.set_mesh(mesh):
    params, step = sample.load_inference_params(workdir, config, mesh=mesh)
    params = jax.tree.map(np.asarray, jax.device_get(params))
  out = wd.export_dir(workdir, step)
  kind, source = sample.checkpoint_source(config, workdir)
  evaluation = evaluation_record(workdir)
  sampler, made_by = recommended_sampler(config, evaluation), provenance.record()
  sample.export_params(
    out, params, config, step, extra={"recommended_sampler": sampler, "exported_by": made_by}
  )
  if parallel.is_main_process():
    card = model_card(
      config,
      step,
      unet.count_params(params),
      dataset_summary(config),
      str(source),
      made_by=made_by,
      sampler=sampler,
      evaluation=evaluation,
      training=training_record(source) if kind == "workdir" else None,
    )
    wd.write_text(out / "MODEL_CARD.md", card)
  logging.info("Exported the EMA weights of step %d to %s (MODEL_CARD.md).", step, out)
  return out
