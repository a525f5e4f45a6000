"""Image grids: every tile is its image in the colour map, in order, north up."""

import numpy as np

from solar_jax import viz


def test_mosaic_places_each_image_in_order_north_up():
  rng = np.random.default_rng(0)
  rgba = rng.uniform(size=(7, 6, 5, 4))
  mosaic, centres = viz.tile_mosaic(rgba, ncols=3, captions=True)
  gap, band = 2, 2  # max(2, 5 // 16) and max(gap, round(0.2 * 6))
  assert mosaic.shape == (3 * (6 + band) + gap, 3 * (5 + gap) + gap, 4)
  for i in range(7):
    r, c = divmod(i, 3)
    top, left = r * (6 + band) + band, c * (5 + gap) + gap
    np.testing.assert_array_equal(mosaic[top : top + 6, left : left + 5], rgba[i, ::-1])
    x, y = centres[i]
    assert left <= x <= left + 5 and y < top  # The caption sits above its tile.
  # Everything else is white: the two empty cells and the gaps.
  covered = np.zeros(mosaic.shape[:2], bool)
  for i in range(7):
    r, c = divmod(i, 3)
    top, left = r * (6 + band) + band, c * (5 + gap) + gap
    covered[top : top + 6, left : left + 5] = True
  assert np.all(mosaic[~covered] == 1.0)


def test_grid_png_shows_the_log_scaled_colour_map(tmp_path):
  """The written grid's brightest and darkest tiles carry the colour map's two ends."""
  images = np.stack([np.full((16, 16), v, np.float32) for v in (1.0, 10.0, 100.0, 1000.0)])
  path = viz.save_image_grid(
    images, [0, 1, 2, 3], "ABCM", tmp_path / "g.png", "t", vmin=1.0, vmax=1000.0
  )
  png = viz.read_png(path)[..., :3]
  cmap = viz.aia171_cmap()
  low, high = np.asarray(cmap(0.0)[:3]), np.asarray(cmap(1.0)[:3])
  distance = lambda colour: np.abs(png - colour).sum(-1)  # noqa: E731
  assert (distance(low) < 0.02).sum() > 100 and (distance(high) < 0.02).sum() > 100
  mid = np.asarray(cmap(1 / 3)[:3])  # 10 DN/s on a log scale from 1 to 1000.
  assert (distance(mid) < 0.03).sum() > 100
