"""The evaluation's pictures: grids, physics, clusters, memorisation pairs, class consistency.

Each function takes what ``evaluate`` computed and writes one PNG under
``workdir/eval/``; titles carry the N behind the figure and the feature space.
"""

from __future__ import annotations

import textwrap

import numpy as np
from etils import epath

from solar_jax import viz
from solar_jax.data import goes
from solar_jax.metrics import physics as physics_lib

GRID_PER_CLASS = 6  # Real and synthetic images shown per class.
MIN_BOX = 5  # Fewer images than this: dots only (a box of one image is a line).


def physics(stats: dict, n: int, out_dir: epath.Path) -> None:
  """On-disk intensity histogram, radial profile (log) and on-disk power spectrum (arcsec⁻¹)."""
  hist = stats["histogram"]
  fig = viz.figure(5, 3.5)
  ax = fig.add_subplot()
  for key, label in (("real", "real"), ("fake", "SYNTHETIC")):
    ax.stairs(hist[key], hist["edges"], label=label)
  ax.set_xlabel("log10 intensity on disk [DN/s]")
  ax.set_ylabel("density")
  ax.set_title(f"on-disk intensity, real vs SYNTHETIC (N={n} each)")
  ax.legend()
  viz.save_png(fig, out_dir / "intensity_histogram.png", tight=True)

  fig = viz.figure(5, 3.5)
  ax = fig.add_subplot()
  for key, label in (("real", "real"), ("fake", "SYNTHETIC")):
    prof = stats["limb"][key]
    mean, std = np.asarray(prof["mean"]), np.asarray(prof["std"])
    ax.plot(prof["r"], mean, label=label)
    # ±1 std in log space would cross zero: the band is clipped at a tenth of the mean.
    ax.fill_between(prof["r"], np.maximum(mean - std, 0.1 * mean), mean + std, alpha=0.2)
  ax.axvline(1.0, color="grey", lw=0.8, ls="--", label="limb (r = R_sun)")
  ax.set_yscale("log")
  ax.set_xlabel("r / R_sun (distance from disk centre)")
  ax.set_ylabel("mean intensity [DN/s]")
  ax.set_title(f"radial profile, real vs SYNTHETIC (N={n} each, ±1 std)")
  ax.legend(fontsize=8)
  viz.save_png(fig, out_dir / "limb_profile.png", tight=True)

  fig = viz.figure(5.5, 3.8)
  ax = fig.add_subplot()
  for key, label in (("real", "real"), ("fake", "SYNTHETIC")):
    spec = stats["spectrum"][key]
    ax.loglog(spec["freq_arcsec"], spec["power"], label=label)
  top = ax.secondary_xaxis("top", functions=(_inverse, _inverse))
  top.set_xlabel("period [arcsec]", fontsize=8)
  ax.set_xlabel("spatial frequency [arcsec⁻¹]")
  ax.set_ylabel("power of log10 intensity [dex² per mode]")
  ax.set_title(f"on-disk power spectrum, real vs SYNTHETIC (N={n} each)", fontsize=10)
  ax.legend()
  window = stats["spectrum"]["real"].get("window", "")
  fig.text(0.01, -0.02, "\n".join(textwrap.wrap(f"Window: {window}.", 95)), fontsize=7, va="top")
  viz.save_png(fig, out_dir / "power_spectrum.png", tight=True)


def _inverse(x):
  with np.errstate(divide="ignore"):
    return 1.0 / np.asarray(x, float)


def flare_physics(values: dict, class_names, threshold: float, path) -> None:
  """Per class: brightest on-disk intensity and kernel area, real vs synthetic.

  Every image is a dot (jittered); a box (quartiles, whiskers at 1.5 IQR) is drawn only
  where a class has ``MIN_BOX`` images or more, and the N of each side is under its class.

  Args:
    values: {'peak_dns' | 'kernel_area': {'real' | 'fake': [per class arrays]}}.
  """
  from matplotlib.lines import Line2D

  fig = viz.figure(10, 4.2)
  fig.subplots_adjust(wspace=0.25, top=0.88)
  rng = np.random.default_rng(0)
  sides = (("real", -0.2, "tab:blue", "real (evaluation split)"),
           ("fake", 0.2, "tab:orange", "SYNTHETIC (samples)"))  # fmt: skip
  for panel, (key, label, log) in enumerate(
    (
      ("peak_dns", "brightest on-disk intensity [DN/s]", True),
      ("kernel_area", f"share of disk >= {threshold:g} DN/s", False),
    )
  ):
    ax = fig.add_subplot(1, 2, panel + 1)
    x = np.arange(len(class_names))
    ticks = []
    for side, offset, colour, _ in sides:
      data = [np.asarray(v, float) for v in values[key][side]]
      boxed = [i for i, d in enumerate(data) if len(d) >= MIN_BOX]
      if boxed:
        parts = ax.boxplot(
          [data[i] for i in boxed], positions=x[boxed] + offset, widths=0.32,
          patch_artist=True, showfliers=False, medianprops={"color": "k"},
        )  # fmt: skip
        for box in parts["boxes"]:
          box.set_facecolor(colour)
          box.set_alpha(0.35)
      for i, d in enumerate(data):
        jitter = rng.uniform(-0.08, 0.08, len(d))
        ax.plot(x[i] + offset + jitter, d, ".", color=colour, ms=3, alpha=0.8)
      ticks.append([len(d) for d in data])
    names = [f"{c}\nN={r} / {f}" for c, r, f in zip(class_names, *ticks)]
    ax.set_xticks(x, names, fontsize=8)
    ax.set_xlabel("conditioning / GOES class (N real / SYNTHETIC)")
    ax.set_ylabel(label)
    if log:
      ax.set_yscale("log")
  handles = [Line2D([], [], color=c, marker=".", ls="", label=lbl) for _, _, c, lbl in sides]
  fig.legend(handles=handles, loc="upper right", fontsize=8, ncols=2, bbox_to_anchor=(0.98, 0.995))
  fig.suptitle(
    f"flare physics per class: one dot per image; boxes where N >= {MIN_BOX}",
    fontsize=10, x=0.02, ha="left",
  )  # fmt: skip
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


def goes_text(flux) -> str:
  """'GOES C3.1' for a 1-8 Å flux in W m⁻² ('' where unknown: NaN, None, <= 0)."""
  try:
    flux = float(flux)
  except (TypeError, ValueError):
    return ""
  if not (np.isfinite(flux) and flux > 0):
    return ""
  letter = goes.class_letter(flux)
  return f"GOES {letter}{flux / goes.CLASS_BASE_FLUX[letter]:.1f}"


def time_text(time) -> str:
  """'2011-02-15 00:00 UT' from a stored time (bytes or str, ISO), '' where unknown."""
  text = time.decode() if isinstance(time, bytes) else str(time or "")
  text = text.replace("T", " ")
  return f"{text[:16]} UT" if len(text) >= 16 else text


def real_title(real: dict, index: int, class_name: str) -> str:
  """A real frame's panel title: class, observation time and GOES flux where known."""
  parts = [f"real {class_name}"]
  for key, fmt in (("time", time_text), ("goes_flux", goes_text)):
    if key in real and real[key] is not None:
      parts.append(fmt(real[key][index]))
  return "\n".join([parts[0], " · ".join(p for p in parts[1:] if p)]).strip()


def geometry_note(image_size: int) -> str:
  """How the figure's arcsec axes follow from the stored frame geometry."""
  scale = physics_lib.arcsec_per_pixel(image_size)
  return (
    f"Helioprojective axes: R_sun = {physics_lib.RSUN_1AU_ARCSEC:g}″ (1 AU; ±1.7 % over the "
    f"year) on a {physics_lib.default_radius(image_size):g} px disk radius, {scale:.2f}″/px (AIA's 0.6″/px "
    "rescaled to the image); dotted circle: the limb."
  )


def grids(config, real, generated, per_class_idx, out_dir, noise_like=()) -> None:
  """Per class: real frames (top row) and SYNTHETIC samples (bottom row) as solar maps;
  samples whose index is in ``noise_like`` (``metrics.sanity``) say so in their title."""
  noise_like = set(int(i) for i in noise_like)
  for c, (r, f, *_) in per_class_idx.items():
    kr, kf = min(len(r), GRID_PER_CLASS), min(len(f), GRID_PER_CLASS)
    if kr + kf == 0:
      continue
    ncols = max(kr, kf)
    size = real["images"].shape[1]
    blank = np.zeros((size, size), np.float32)
    images = [real["images"][r[i]] if i < kr else blank for i in range(ncols)]
    images += [generated["images"][f[i]] if i < kf else blank for i in range(ncols)]
    titles = [real_title(real, r[i], c) if i < kr else None for i in range(ncols)]
    titles += [
      f"SYNTHETIC {c} #{i + 1}" + ("\nNOISE-LIKE (sanity check)" if f[i] in noise_like else "")
      if i < kf
      else None
      for i in range(ncols)
    ]
    images = np.stack([np.asarray(x, np.float32).reshape(size, size) for x in images])
    viz.save_map_grid(
      images,
      titles,
      out_dir / f"grid_{c}.png",
      suptitle=f"class {c}: real frames (top, {config.evaluation.split} split, {len(r)} "
      f"available) vs SYNTHETIC samples (bottom, {len(f)} available)",
      vmin=config.data.clip_min,
      vmax=config.data.clip_max,
      ncols=ncols,
      arcsec_per_px=physics_lib.arcsec_per_pixel(size),
      radius_px=physics_lib.default_radius(size),
      note=geometry_note(size),
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
  names = [f"SYNTHETIC, ratio {p['ratio']:.2f}" for p in pairs] + ["nearest train (real)"] * k
  viz.save_image_grid(
    images,
    np.arange(2 * k),
    names,
    path,
    title=f"closest pairs in {space} space: SYNTHETIC (top) vs nearest real DDPM training image",
    vmin=config.data.clip_min,
    vmax=config.data.clip_max,
    ncols=k,
  )


def ratio_histograms(arrays: dict, path) -> None:
  """Distance to the nearest training image / held-out median, generated vs held-out, per space."""
  spaces = [s for s, a in arrays.items() if a]
  if not spaces:
    return
  fig = viz.figure(3.4 * len(spaces), 3.4)
  fig.subplots_adjust(top=0.8, wspace=0.3)
  for i, space in enumerate(spaces):
    ax = fig.add_subplot(1, len(spaces), i + 1)
    a = arrays[space]
    gen, held = (a[k][np.isfinite(a[k])] for k in ("ratio_generated", "ratio_heldout"))
    both = np.concatenate([gen, held])
    top = max(2.0, float(np.quantile(both, 0.98))) if len(both) else 2.0
    bins = np.linspace(0.0, top, 25)
    ax.hist(held, bins, alpha=0.5, label=f"held-out real (M={len(held)})")
    ax.hist(gen, bins, alpha=0.5, label=f"SYNTHETIC (N={len(gen)})")
    ax.set_title(f"{space} features", fontsize=9)
    ax.set_xlabel("d(nearest train) / held-out median", fontsize=8)
    if i == 0:
      ax.set_ylabel("images")
    ax.legend(fontsize=7)
  fig.suptitle(
    "memorisation: distance to the nearest training image (ratio << 1: a near copy)", fontsize=10
  )
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
