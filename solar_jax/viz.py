"""Figures: image grids in the AIA 171 Å colour map, and loss curves.

Figures are drawn with Matplotlib's object API on an Agg canvas (no pyplot,
no global backend switch) and written through ``etils.epath``, so the same
call works for local and gs:// paths; every PNG goes to a temporary name and is
renamed (``files.write_bytes``), so a link planted at the name is replaced,
never written through.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence

import numpy as np
from etils import epath

from solar_jax import files

CMAP = "sdoaia171"


# Matplotlib is imported inside the functions that draw: it costs about a second,
# and importing this module should not (the trainer imports it).


def figure(width: float, height: float):
  """A Matplotlib figure on its own Agg canvas (no pyplot state)."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  fig = Figure(figsize=(width, height), dpi=100)
  FigureCanvasAgg(fig)
  return fig


def save_png(fig, path, *, tight: bool = False) -> epath.Path:
  """Writes ``fig`` as a PNG through epath (creating the directory), whole or not at all."""
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", **({"bbox_inches": "tight"} if tight else {}))
  files.write_bytes(path, buffer.getvalue())
  return path


def read_png(path) -> np.ndarray:
  """A PNG as float RGBA [H, W, 4] in [0, 1] (e.g. a sample grid for TensorBoard)."""
  import matplotlib.image

  with epath.Path(path).open("rb") as f:
    return matplotlib.image.imread(f, format="png")


def aia171_cmap():
  """The sunpy 'sdoaia171' colour map (registering sunpy's maps with Matplotlib)."""
  import matplotlib
  import sunpy.visualization.colormaps  # noqa: F401 - registers the sdoaia* maps.

  return matplotlib.colormaps[CMAP]


def tile_mosaic(rgba: np.ndarray, ncols: int, *, captions: bool) -> tuple[np.ndarray, list]:
  """Tiles [N, H, W, 4] (row 0 at the bottom) laid out row by row on white.

  Returns the mosaic [rows, cols, 4] (row 0 at the top, as imshow draws it) and the
  (x, y) pixel centre of each tile's caption band above it.
  """
  n, h, w = rgba.shape[:3]
  nrows = math.ceil(n / ncols)
  gap = max(2, w // 16)
  band = max(gap, round(0.2 * h)) if captions else gap  # Caption space above a tile.
  mosaic = np.ones((nrows * (h + band) + gap, ncols * (w + gap) + gap, 4))
  centres = []
  for i in range(n):
    r, c = divmod(i, ncols)
    top, left = r * (h + band) + band, c * (w + gap) + gap
    mosaic[top : top + h, left : left + w] = rgba[i, ::-1]  # Solar north up.
    centres.append((left + w / 2 - 0.5, top - band / 2 - 0.5))
  return mosaic, centres


def save_image_grid(
  images_dns,
  labels,
  class_names: Sequence[str],
  path,
  title: str | None = None,
  *,
  vmin: float | None = None,
  vmax: float | None = None,
  ncols: int | None = None,
) -> epath.Path:
  """Writes a PNG grid of AIA 171 Å images in DN/s, log-scaled, one caption per image.

  Args:
    images_dns: [N, H, W] or [N, H, W, 1] intensities in DN/s; row 0 is drawn
      at the bottom (solar north up, as sunpy plots maps).
    labels: [N] class indices into ``class_names`` (or None for no captions).
    class_names: e.g. ('A', 'B', 'C', 'M', 'X').
    path: output .png (local or gs://).
    title: optional figure title.
    vmin, vmax: the log colour range in DN/s; default the 1st and 99.9th
      percentiles of the positive pixels of all images (one range for the grid,
      so brightness is comparable between images).
    ncols: columns (default about sqrt(N), at most 8).

  Returns:
    The path written.
  """
  from matplotlib.colors import LogNorm

  images = np.asarray(images_dns, dtype=np.float32)
  if images.ndim == 4:
    images = images[..., 0]
  if images.ndim != 3 or images.shape[0] == 0:
    raise ValueError(f"images_dns must be [N, H, W(, 1)] with N > 0, got {images.shape}.")
  n = images.shape[0]
  positive = images[images > 0]
  if vmin is None:
    vmin = float(np.percentile(positive, 1.0)) if positive.size else 1.0
  if vmax is None:
    vmax = float(np.percentile(positive, 99.9)) if positive.size else 10.0 * vmin
  vmin = max(vmin, 1e-3)
  vmax = max(vmax, vmin * 1.01)
  norm = LogNorm(vmin=vmin, vmax=vmax, clip=True)
  cmap = aia171_cmap()

  ncols = ncols or min(8, math.ceil(math.sqrt(n)))
  nrows = math.ceil(n / ncols)
  # One picture of all tiles (one imshow, one resampling) rather than an axes per image:
  # a 40-image grid drew in a fifth of the time, and looks the same.
  scaled = np.asarray(norm(np.maximum(images, vmin).ravel())).reshape(images.shape)
  mosaic, centres = tile_mosaic(cmap(scaled), ncols, captions=labels is not None)
  cell, bar = 1.6, 1.1  # Inches: a tile, and the colour bar with its label.
  title_in = 0.4 if title else 0.0
  # Wide enough for the title (~0.08 in a character at 10 pt): a one-column grid cut it.
  width = max(ncols * cell, 0.08 * len(title or "") + 0.3) + bar
  height = nrows * cell + title_in
  fig = figure(width, height)
  top_frac = 1.0 - title_in / height
  ax = fig.add_axes((0.01, 0.01, 1.0 - (bar + 0.1) / width, top_frac - 0.01))
  ax.imshow(mosaic, interpolation="antialiased")
  ax.set_axis_off()
  colour_bar(fig, fig.add_axes((1.0 - bar / width, 0.08, 0.12 / width, top_frac - 0.16)), norm)
  if labels is not None:
    for i, (x, y) in enumerate(centres):
      ax.text(x, y, f"{class_names[int(labels[i])]}", fontsize=8, ha="center", va="center")
  if title:
    fig.suptitle(title, fontsize=10, y=1.0 - 0.08 / (nrows * cell + title_in), va="top")
  return save_png(fig, path)


INTENSITY_LABEL = "AIA 171 Å intensity [DN/s]"


def colour_bar(fig, cax, norm, **kwargs):
  """A DN/s colour bar of the sdoaia171 map at ``norm``: in the axes ``cax``, or (None)
  beside those ``kwargs`` name (``ax=``)."""
  from matplotlib.cm import ScalarMappable

  bar = fig.colorbar(ScalarMappable(norm=norm, cmap=aia171_cmap()), cax=cax, **kwargs)
  bar.set_label(INTENSITY_LABEL, fontsize=8)
  bar.ax.tick_params(labelsize=7)
  return bar


def save_map_grid(
  images_dns,
  titles: Sequence[str],
  path,
  *,
  suptitle: str,
  vmin: float,
  vmax: float,
  ncols: int,
  arcsec_per_px: float,
  radius_px: float,
  note: str = "",
) -> epath.Path:
  """Writes images as solar maps: helioprojective axes, the limb, one DN/s colour bar.

  Each image is drawn as sunpy draws a map (row 0 at the bottom, solar north up) on
  axes in arcsec from the disk centre (the array centre), ``arcsec_per_px`` per pixel,
  with the limb (``radius_px``) as a dotted circle; one log colour bar in DN/s for all.

  Args:
    images_dns: [N, H, W(, 1)] in DN/s.
    titles: one per image (e.g. "real B · 2011-02-15 00:00 UT · GOES B3.1").
    suptitle: the figure's title; say SYNTHETIC where any image is.
    vmin, vmax: the log colour range in DN/s.
    ncols: panels per row.
    note: a line under the panels (e.g. how the axes were scaled).
  """
  from matplotlib.colors import LogNorm
  from matplotlib.patches import Circle

  images = np.asarray(images_dns, dtype=np.float32)
  if images.ndim == 4:
    images = images[..., 0]
  if images.ndim != 3 or len(images) == 0 or len(titles) != len(images):
    raise ValueError(f"images_dns {images.shape} must be [N, H, W] with one title each.")
  n, size = len(images), images.shape[1]
  nrows = math.ceil(n / ncols)
  vmin = max(vmin, 1e-3)
  norm = LogNorm(vmin=vmin, vmax=max(vmax, vmin * 1.01), clip=True)
  half = size / 2 * arcsec_per_px
  # Fixed margins in inches (no layout engine: constrained layout took most of the time).
  panel, gap, title_h, left, right, top, bottom = 1.6, 0.12, 0.42, 0.6, 1.2, 0.3, 0.75
  content = left + ncols * panel + (ncols - 1) * gap + right
  # At least as wide as the title (~0.072 in a character at 9 pt): one column cut it.
  width = max(content, 0.072 * len(suptitle) + 0.4)
  left += (width - content) / 2  # The panels centred under a wider title.
  note_lines = textwrap.wrap(note, max(40, int(width / 0.056))) if note else []
  bottom += 0.11 * max(0, len(note_lines) - 1)
  height = top + nrows * (panel + title_h) + bottom
  fig = figure(width, height)
  for i in range(n):
    r, c = divmod(i, ncols)
    if titles[i] is None:  # No image here (a short row).
      continue
    x0 = left + c * (panel + gap)
    y0 = height - top - (r + 1) * (panel + title_h)
    ax = fig.add_axes((x0 / width, y0 / height, panel / width, panel / height))
    ax.imshow(
      np.maximum(images[i], vmin), cmap=aia171_cmap(), norm=norm, origin="lower",
      extent=(-half, half, -half, half), interpolation="nearest",
    )  # fmt: skip
    limb = Circle((0, 0), radius_px * arcsec_per_px, fill=False, color="w", lw=0.6, ls=":")
    ax.add_patch(limb)
    # Text rather than set_title, and fixed ticks: Matplotlib's title placement and tick
    # search took most of a 12-panel figure's time.
    ax.text(0.5, 1.02, titles[i], fontsize=7, ha="center", va="bottom", transform=ax.transAxes)
    ticks = [t for t in (-1000, -500, 0, 500, 1000) if abs(t) < half]
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    lowest = r == nrows - 1 or i + ncols >= n or titles[i + ncols] is None
    ax.tick_params(labelsize=6, labelleft=c == 0, labelbottom=lowest)
    if lowest:
      ax.set_xlabel("Solar X [arcsec]", fontsize=7)
    if c == 0:
      ax.set_ylabel("Solar Y [arcsec]", fontsize=7)
  bar_x = (left + ncols * panel + (ncols - 1) * gap + 0.25) / width
  cax = fig.add_axes((bar_x, bottom / height, 0.15 / width, 1.0 - (top + bottom) / height))
  colour_bar(fig, cax, norm)
  fig.suptitle(suptitle, fontsize=9, y=1.0 - 0.1 / height, va="top")
  if note:
    fig.text(0.5, 0.08 / height, "\n".join(note_lines), fontsize=6.5, ha="center", va="bottom")
  return save_png(fig, path)


def save_loss_curve(steps, losses, path, title: str = "training loss") -> epath.Path:
  """Writes the loss against the step (log y when every value is positive) as a PNG."""
  steps = np.asarray(steps)
  losses = np.asarray(losses, dtype=np.float64)
  if steps.shape != losses.shape or steps.size == 0:
    raise ValueError(
      f"steps {steps.shape} and losses {losses.shape} must be non-empty and of one shape."
    )
  fig = figure(6.0, 3.5)
  ax = fig.add_subplot(1, 1, 1)
  ax.plot(steps, losses, lw=1.2)
  finite = losses[np.isfinite(losses)]
  if finite.size and np.all(finite > 0):
    ax.set_yscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel("loss")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  return save_png(fig, path)
