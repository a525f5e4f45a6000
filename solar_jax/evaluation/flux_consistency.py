"""Flux consistency of a flux-conditioned generator, in ``--mode=evaluate`` (issue 28).

Does an image made for a GOES 1-8 Å flux show that flux? A real-only regressor
(``classifier/flux_regressor``: the flare classifier's small backbone with a log-flux
head) learns the flux from the real training split's frames and their label fluxes
(``label_flux``: the flux behind the run's label, the same meaning as the condition),
then reads the flux of

* the evaluated sample set (``samples.npz``: the images and the fluxes asked for; draw
  it with ``sampling.flux_draw='training'`` so the fluxes span each class's range);
* the classifier's synthetic pool, where ``--mode=evaluate`` scores one;
* the real frames of ``evaluation.split`` (their own label flux): the **floor**, what
  the regressor itself recovers from real Suns, resampled by their bootstrap units
  (``classifier.real_data.frame_units``: frames of one flare or region move together).

Each figure is Spearman's rho and the mean absolute error in decades between requested
(or true) and recovered flux, with a 95 % bootstrap interval and its N
(``metrics.consistency.flux_consistency``). Along the flux sweep (``sweep/sweep.npz``:
one seed from A1 to X10) the brightest on-disk intensity is ranked against the
requested flux (Spearman rho with its interval, N = the sweep's points).

The regressor trains once, on ``classifier.num_steps`` steps (seed ``config.seed``) and
is kept in ``eval/flux_regressor/`` (``params.msgpack`` and ``record.json``: its
settings and the training frames it learned from); a later evaluation with the same
record reuses it. Written to ``eval/metrics.json`` under ``flux_consistency``, with
``eval/flux_consistency.npz`` (requested and recovered fluxes) and
``eval/flux_consistency.png``; report.md shows them in a section of their own.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
from absl import logging
from etils import epath
from flax import serialization

from solar_jax import viz
from solar_jax import workdir as wd
from solar_jax.classifier import flux_regressor, real_data
from solar_jax.data import input_pipeline, scaling, splits
from solar_jax.metrics import consistency, physics

REGRESSOR_DIR = "flux_regressor"
FIGURE = "flux_consistency.png"
ARRAYS = "flux_consistency.npz"
NUM_BOOTSTRAP = 1000


def record(config, train_fluxes) -> dict:
  """What the regressor is: its settings and the training frames it learned from."""
  c = config.classifier
  digest = hashlib.sha256(np.asarray(train_fluxes, np.float64).tobytes()).hexdigest()[:16]
  return {
    "backbone": {
      "stage_sizes": list(c.stage_sizes),
      "width": int(c.width),
      "stem_stride": int(c.stem_stride),
      "dropout": float(c.dropout),
    },
    "learning_rate": float(c.learning_rate),
    "weight_decay": float(c.weight_decay),
    "batch_size": int(c.batch_size),
    "num_steps": int(c.num_steps),
    "seed": int(config.seed),
    "trained_on": splits.training_record(config.to_dict()),
    "train_frames": int(len(train_fluxes)),
    "train_fluxes_sha256": digest,
    "clip": [float(config.data.clip_min), float(config.data.clip_max)],
  }


def regressor(config, workdir, main: bool = True) -> tuple[dict, dict]:
  """``(params, info)`` of the real-only flux regressor: reused from
  ``eval/flux_regressor/`` when its record matches, else trained on the training split's
  frames with a label flux (and saved there by process 0)."""
  directory = wd.eval_dir(workdir) / REGRESSOR_DIR
  facts = input_pipeline.make_for_inference(config.data, "train", images=False)
  fluxes = np.asarray(facts["label_flux"], np.float64)
  keep = np.isfinite(fluxes) & (fluxes > 0)
  wanted = json.loads(json.dumps(record(config, fluxes[keep])))  # As stored (lists).
  stored, weights = directory / "record.json", directory / "params.msgpack"
  if stored.exists() and weights.exists():
    saved = json.loads(stored.read_text())
    if saved.get("record") == wanted:
      logging.info("Reusing the flux regressor in %s.", directory)
      params = serialization.msgpack_restore(weights.read_bytes())["params"]
      return params, {**saved, "reused": True}
  train = input_pipeline.make_for_inference(config.data, "train", indices=np.flatnonzero(keep))
  params, losses = flux_regressor.train(
    config, train["image"], train["label_flux"], seed=config.seed
  )
  info = {"record": wanted, "final_loss": float(np.mean(losses[-20:]))}
  if main:
    directory.mkdir(parents=True, exist_ok=True)
    wd.write_bytes(weights, serialization.msgpack_serialize({"params": params}))
    wd.write_json(stored, info)
  logging.info(
    "Trained the flux regressor (%d steps, final loss %.4f).", len(losses), info["final_loss"]
  )
  return params, {**info, "reused": False}


def real_floor(config, params) -> tuple[dict, np.ndarray, np.ndarray]:
  """The regressor on the real frames of ``evaluation.split`` with a label flux:
  ``(figures, true fluxes, recovered)``, resampled by the frames' bootstrap units."""
  split = input_pipeline.make_for_inference(config.data, config.evaluation.split)
  true = np.asarray(split["label_flux"], np.float64)
  keep = np.isfinite(true) & (true > 0)
  units = real_data.frame_units(split)[keep]
  recovered = flux_regressor.predict(config, params, np.asarray(split["image"])[keep])
  figures = consistency.flux_consistency(
    true[keep], recovered, num_samples=NUM_BOOTSTRAP, seed=config.seed, groups=units
  )
  return {**figures, "split": config.evaluation.split}, true[keep], recovered


def sample_figures(config, params, generated: dict) -> tuple[dict, np.ndarray, np.ndarray]:
  """The regressor on a flux model's sample set (``samples.npz``: DN/s images, 'fluxes'):
  ``(figures, requested, recovered)``; images are independent draws, resampled singly."""
  requested = np.asarray(generated["fluxes"], np.float64)
  images = scaling.forward(
    np.asarray(generated["images"], np.float32), config.data.clip_min, config.data.clip_max
  )
  recovered = flux_regressor.predict(config, params, images)
  figures = consistency.flux_consistency(
    requested, recovered, num_samples=NUM_BOOTSTRAP, seed=config.seed
  )
  return figures, requested, recovered


def sweep_trend(config, samples_dir) -> dict | None:
  """Spearman rho of the sweep's brightest on-disk intensity (DN/s) against its requested
  flux, with its interval; None without a sweep."""
  path = epath.Path(samples_dir) / "sweep" / "sweep.npz"
  if not path.exists():
    return None
  sweep = wd.read_npz(path)
  peaks = physics.peak_on_disk(np.asarray(sweep["images"], np.float32))
  fluxes = np.asarray(sweep["fluxes"], np.float64)
  rho = consistency.rank_correlation(
    np.log10(fluxes), peaks, num_samples=NUM_BOOTSTRAP, seed=config.seed
  )
  return {
    "brightest_on_disk_rho": rho,
    "fluxes": fluxes.tolist(),
    "brightest_on_disk_dns": peaks.astype(np.float64).tolist(),
    "sample_set": epath.Path(samples_dir).name,  # samples/<set>/sweep/sweep.png
  }


def evaluate(
  config, workdir, samples_dir, generated: dict, out_dir, main: bool = True
) -> tuple[dict, dict]:
  """``(the flux_consistency entry of eval/metrics.json, the regressor's params)`` for
  the evaluated sample set; writes its figure and arrays to ``out_dir`` (process 0)."""
  params, info = regressor(config, workdir, main)
  samples, requested, recovered = sample_figures(config, params, generated)
  floor, true, read = real_floor(config, params)
  entry = {
    "regressor": {
      "what": "classifier backbone with a log10 flux head, trained on real training frames only",
      "train_frames": info["record"]["train_frames"],
      "num_steps": info["record"]["num_steps"],
      "final_loss": info.get("final_loss"),
      "reused": info["reused"],
    },
    "samples": samples,
    "real_test_floor": floor,
    "sweep": sweep_trend(config, samples_dir),
    "interval": f"95 % percentile bootstrap ({NUM_BOOTSTRAP} resamples; samples resampled "
    "singly, real frames by their bootstrap units)",
  }
  if main and out_dir is not None:
    out_dir = epath.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wd.write_npz(
      out_dir / ARRAYS,
      sample_requested=requested,
      sample_recovered=recovered,
      real_true=true,
      real_recovered=read,
    )
    plot(entry, (requested, recovered), (true, read), out_dir / FIGURE)
  return entry, params


def pool_entry(config, params, pool: dict) -> dict | None:
  """The ``flux_consistency`` entry of the classifier pool's metrics.json (None without
  fluxes): the regressor's figures on the pool's images."""
  if "fluxes" not in pool or len(pool["fluxes"]) < 3:
    return None
  return {"samples": sample_figures(config, params, pool)[0]}


def plot(entry: dict, samples, real, path) -> None:
  """Recovered against requested log10 flux: the samples beside the real floor."""
  fig = viz.figure(9, 4)
  panels = (
    (samples, "SYNTHETIC samples", "requested", "samples"),
    (
      real,
      f"real {entry['real_test_floor'].get('split', 'test')} frames (floor)",
      "true",
      "real_test_floor",
    ),
  )
  for i, ((x, y), name, axis, key) in enumerate(panels):
    ax = fig.add_subplot(1, 2, i + 1)
    lx, ly = np.log10(x), np.log10(y)
    ax.scatter(lx, ly, s=8, alpha=0.5)
    lo, hi = min(lx.min(), ly.min()) - 0.2, max(lx.max(), ly.max()) + 0.2
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--", label="recovered = " + axis)
    rho = entry[key]["spearman_rho"]
    ax.set_title(
      f"{name}, N={entry[key]['n']}\nSpearman ρ {rho['value']:.2f} "
      f"[{rho['low']:.2f}, {rho['high']:.2f}] (95 %)",
      fontsize=9,
    )
    ax.set_xlabel(f"{axis} log10 GOES 1-8 Å flux [W m⁻²]")
    ax.set_ylabel("recovered log10 flux [W m⁻²]")
    ax.legend(fontsize=7)
  viz.save_png(fig, path, tight=True)


def _ci(stats: dict, digits: int = 2) -> str:
  return f"{stats['value']:.{digits}f} [{stats['low']:.{digits}f}, {stats['high']:.{digits}f}]"


def _row(name: str, figures: dict) -> str:
  n = f"{figures['n']}" + (f" ({figures['groups']} units)" if figures.get("groups") else "")
  return f"| {name} | {n} | {_ci(figures['spearman_rho'])} | {_ci(figures['mae_decades'])} |"


def _guidance(metrics: dict) -> str:
  """`` (guidance 6, 10 steps)`` of an eval metrics.json's sample set ('' where unrecorded)."""
  drawn = metrics.get("samples") or {}
  if drawn.get("guidance_scale") is None:
    return ""
  steps = f", {drawn['num_steps']} steps" if drawn.get("num_steps") is not None else ""
  return f" (guidance {float(drawn['guidance_scale']):g}{steps})"


def markdown(metrics: dict, workdir, pool: dict | None = None) -> list[str]:
  """report.md's section of ``eval/metrics.json``'s flux consistency (none without it);
  ``pool``: eval/classifier_pool/metrics.json where there is one."""
  entry = metrics.get("flux_consistency")
  if not entry:
    return []
  reg = entry["regressor"]
  lines = [
    "",
    "## Flux consistency: does a sample show the GOES flux it was asked for?",
    "",
    f"A real-only flux regressor ({reg['what']}; {reg['train_frames']} frames, "
    f"{reg['num_steps']} steps) reads the flux of each image; Spearman ρ and the mean "
    f"absolute error in decades between the flux asked for (real frames: their own) and "
    f"the flux read, with {entry['interval']}. The real frames are the floor: what the "
    "regressor recovers from real Suns.",
    "",
    "| images | N | Spearman ρ [95% CI] | MAE [decades, 95% CI] |",
    "| --- | --- | --- | --- |",
    _row(f"SYNTHETIC samples{_guidance(metrics)}", entry["samples"]),
  ]
  in_pool = ((pool or {}).get("flux_consistency") or {}).get("samples")
  if in_pool:
    lines.append(_row(f"SYNTHETIC classifier pool{_guidance(pool)}", in_pool))
  floor = entry["real_test_floor"]
  lines += [_row(f"real {floor.get('split', 'test')} frames (floor)", floor), ""]
  rho = entry["samples"]["spearman_rho"]
  if rho["low"] > 0:
    lines.append(
      "The samples' ρ interval lies above 0: images asked for a higher flux read as a higher flux."
    )
  else:
    where = "lies below 0" if rho["high"] < 0 else "includes 0"
    lines.append(f"The samples' ρ interval {where}: no flux consistency shown for them.")
  sweep = entry.get("sweep")
  if sweep:
    rho = sweep["brightest_on_disk_rho"]
    lines += [
      "",
      f"Flux sweep (one seed, N={rho['n']} fluxes from A1 to X10): Spearman ρ of the "
      f"brightest on-disk intensity against the requested flux {_ci(rho)}.",
      "",
      f"![flux sweep](samples/{sweep['sample_set']}/sweep/sweep.png)",
    ]
  return lines + ["", f"![flux consistency](eval/{FIGURE})", ""]
