"""The evaluation's pictures: grids, physics, clusters, memorisation pairs, class consistency.

Each function takes what ``evaluate`` computed and writes one PNG under
``workdir/eval/``; titles carry the N behind the figure and the feature space.
"""

from __future__ import annotations

import numpy as np
from etils import epath

from solar_jax import viz

GRID_PER_CLASS = 6  # Real and synthetic images shown per class.


def physics(stats: dict, n: int, out_dir: epath.Path) -> None:
  """On-disk intensity histogram, radial profile and power spectrum, real vs synthetic."""
  hist = stats["histogram"]
  fig = viz.figure(5, 3.5)
  ax = fig.add_subplot()
  for key, label in (("real", "real"), ("fake", "synthetic")):
    ax.stairs(hist[key], hist["edges"], label=label)
  ax.set_xlabel("log10 intensity on disk [DN/s]")
  ax.set_ylabel("density")
  ax.set_title(f"on-disk intensity (N={n} each)")
  ax.legend()
  viz.save_png(fig, out_dir / "intensity_histogram.png", tight=True)

  fig = viz.figure(5, 3.5)
  ax = fig.add_subplot()
  for key, label in (("real", "real"), ("fake", "synthetic")):
    prof = stats["limb"][key]
    ax.plot(prof["r"], prof["mean"], label=label)
    ax.fill_between(prof["r"], prof["mean"] - prof["std"], prof["mean"] + prof["std"], alpha=0.2)
  ax.axvline(1.0, color="grey", lw=0.8, ls="--")
  ax.set_xlabel("r / R_sun")
  ax.set_ylabel("mean intensity [DN/s]")
  ax.set_title(f"radial profile (N={n} each, ±1 std)")
  ax.legend()
  viz.save_png(fig, out_dir / "limb_profile.png", tight=True)

  fig = viz.figure(5, 3.5)
  ax = fig.add_subplot()
  for key, label in (("real", "real"), ("fake", "synthetic")):
    spec = stats["spectrum"][key]
    ax.loglog(spec["k"], spec["power"], label=label)
  ax.set_xlabel("k [cycles per image]")
  ax.set_ylabel("power of log10 intensity")
  ax.set_title(f"azimuthally averaged power spectrum (N={n} each)")
  ax.legend()
  viz.save_png(fig, out_dir / "power_spectrum.png", tight=True)


def flare_physics(values: dict, class_names, threshold: float, path) -> None:
  """Per class: brightest on-disk intensity and kernel area, real vs synthetic (box plots).

  Args:
    values: {'peak_dns' | 'kernel_area': {'real' | 'fake': [per class arrays]}}.
  """
  fig = viz.figure(9, 3.5)
  for panel, (key, label, log) in enumerate(
    (
      ("peak_dns", "brightest on-disk intensity [DN/s]", True),
      ("kernel_area", f"share of disk >= {threshold:g} DN/s", False),
    )
  ):
    ax = fig.add_subplot(1, 2, panel + 1)
    x = np.arange(len(class_names))
    for offset, side, colour in ((-0.2, "real", "tab:blue"), (0.2, "fake", "tab:orange")):
      data = [np.asarray(v, float) for v in values[key][side]]
      keep = [i for i, d in enumerate(data) if len(d)]
      if keep:
        parts = ax.boxplot(
          [data[i] for i in keep], positions=x[keep] + offset, widths=0.35, patch_artist=True
        )
        for box in parts["boxes"]:
          box.set_facecolor(colour)
      ax.plot([], [], color=colour, lw=6, label="real" if side == "real" else "synthetic")
    ax.set_xticks(x, [str(c) for c in class_names])
    ax.set_xlabel("conditioning / GOES class")
    ax.set_ylabel(label)
    if log:
      ax.set_yscale("log")
    ax.legend(fontsize=7)
  fig.suptitle("flare physics per class (real: evaluation split; synthetic: samples)")
  viz.save_png(fig, path, tight=True)


def clusters(result: dict, name: str, path) -> None:
  """Occupancy of the real k-means clusters by real and synthetic features."""
  real = np.asarray(result["real_counts"], float)
  fake = np.asarray(result["fake_counts"], float)
  order = np.argsort(-real)
  x = np.arange(len(real))
  fig = viz.figure(max(5, 0.3 * len(real)), 3.5)
  ax = fig.add_subplot()
  ax.bar(x - 0.2, real[order] / real.sum(), 0.4, label=f"real (N={result['num_real']})")
  ax.bar(x + 0.2, fake[order] / fake.sum(), 0.4, label=f"synthetic (N={result['num_fake']})")
  ax.set_xticks(x, [str(i) for i in order], fontsize=7)
  ax.set_xlabel("k-means cluster of real features (sorted by real share)")
  ax.set_ylabel("share")
  ax.set_title(
    f"{name} feature clusters: JS={result['js_divergence']:.3f}, "
    f"missed {len(result['missed'])}, over-filled {len(result['overfilled'])}"
  )
  ax.legend()
  viz.save_png(fig, path, tight=True)


def grids(config, real, generated, per_class_idx, out_dir) -> None:
  """Real (top) vs synthetic (bottom) images of each class, AIA 171 colour map."""
  for c, (r, f, *_) in per_class_idx.items():
    k = min(len(r), len(f), GRID_PER_CLASS)
    if k == 0:
      continue
    images = np.concatenate([real["images"][r[:k]], generated["images"][f[:k]]])
    labels = np.repeat([0, 1], k)
    viz.save_image_grid(
      images,
      labels,
      (f"real {c}", f"synthetic {c}"),
      out_dir / f"grid_{c}.png",
      title=f"class {c}: real (top) vs synthetic (bottom)",
      vmin=config.data.clip_min,
      vmax=config.data.clip_max,
      ncols=k,
    )


def closest_pairs(config, summary: dict, generated, train, space: str, path) -> None:
  """The generated images nearest to a training image (top) and that image (bottom)."""
  pairs = summary.get("closest", [])
  if not pairs:
    return
  k = len(pairs)
  images = np.concatenate(
    [
      generated["images"][[p["generated"] for p in pairs]],
      train["images"][[p["train"] for p in pairs]],
    ]
  )
  names = [f"gen., ratio {p['ratio']:.2f}" for p in pairs] + ["nearest train"] * k
  viz.save_image_grid(
    images,
    np.arange(2 * k),
    names,
    path,
    title=f"closest pairs in {space} space: generated (top) vs nearest DDPM training image",
    vmin=config.data.clip_min,
    vmax=config.data.clip_max,
    ncols=k,
  )


def ratio_histograms(arrays: dict, path) -> None:
  """Distance to the nearest training image / held-out median, generated vs held-out, per space."""
  spaces = [s for s, a in arrays.items() if a]
  if not spaces:
    return
  fig = viz.figure(3.2 * len(spaces), 3.0)
  for i, space in enumerate(spaces):
    ax = fig.add_subplot(1, len(spaces), i + 1)
    a = arrays[space]
    gen, held = (a[k][np.isfinite(a[k])] for k in ("ratio_generated", "ratio_heldout"))
    both = np.concatenate([gen, held])
    top = max(2.0, float(np.quantile(both, 0.98))) if len(both) else 2.0
    bins = np.linspace(0.0, top, 25)
    ax.hist(held, bins, alpha=0.5, label=f"held-out real (M={len(held)})")
    ax.hist(gen, bins, alpha=0.5, label=f"generated (N={len(gen)})")
    ax.set_title(space, fontsize=9)
    ax.set_xlabel("d(nearest train) / held-out median")
    ax.legend(fontsize=7)
  fig.suptitle("memorisation: nearest-training-image distance ratios")
  viz.save_png(fig, path, tight=True)


def consistency(result: dict, class_names, title: str, path) -> None:
  """Confusion of 'asked for' (rows) vs 'recognised as' (columns), shares of each row."""
  cm = np.asarray(result["confusion"], float)
  rows = cm.sum(axis=1, keepdims=True)
  share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
  names = result["recognised_names"]
  fig = viz.figure(1.5 + 0.7 * len(names), 1.2 + 0.6 * len(class_names))
  ax = fig.add_subplot()
  ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
  for i in range(cm.shape[0]):
    for j in range(cm.shape[1]):
      colour = "white" if share[i, j] > 0.5 else "black"
      ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", color=colour, fontsize=8)
  ax.set_xticks(range(len(names)), names)
  ax.set_yticks(range(len(class_names)), [str(c) for c in class_names])
  ax.set_xlabel("recognised as (real-only classifier)")
  ax.set_ylabel("asked for")
  ax.set_title(title, fontsize=9)
  viz.save_png(fig, path, tight=True)
