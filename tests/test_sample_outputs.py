"""--mode=sample outputs: FITS that sunpy reads as AIA 171 maps, npz, PNG grid, errors."""

import datetime
import warnings

import jax
import numpy as np
import pytest
from astropy.io import fits
from etils import epath

import solar_jax
from solar_jax import parallel, provenance
from solar_jax import workdir as wd
from solar_jax.configs import tiny
from solar_jax.data import aia, scaling
from solar_jax.ddpm import sample
from solar_jax.models import unet

COUNTS = (1, 0, 2, 0, 1)  # A, C, C, X: 4 images, two classes absent.


def _config():
  config = tiny.get_config()
  config.sampling.num_steps = 2
  config.sampling.seed = 11
  return config


def _random_params(config, seed=0):
  """Random parameters of the right shapes (no training needed to test the writer)."""
  model = unet.create_model(config)
  s = config.data.image_size
  x = jax.ShapeDtypeStruct((1, s, s, 1), np.float32)
  t = jax.ShapeDtypeStruct((1,), np.int32)
  shapes = jax.eval_shape(model.init, jax.random.key(0), x, t, t)["params"]
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda a: (0.05 * rng.normal(size=a.shape)).astype(np.float32), shapes)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
  config = _config()
  params = _random_params(config)
  workdir = tmp_path_factory.mktemp("run")
  out = sample.sample_and_write(config, workdir, params, 123, counts=COUNTS)
  return config, params, epath.Path(out)


def test_layout_and_npz_round_trip(written):
  config, params, out = written
  assert out.name.startswith("123-ddim-2-eta1-g1-s11-") and out.parent.name == "samples"
  assert out.name == f"123-{wd.sample_key(config)}"
  with np.load(out / "samples.npz") as npz:
    data = {k: npz[k] for k in npz.files}
  assert set(data) == {
    "images",
    "labels",
    "class_names",
    "seed",
    "guidance_scale",
    "num_steps",
    "eta",
    "sampler",
    "spacing",
    "final_step",
    "step",
  }
  assert data["images"].shape == (4, 32, 32, 1) and data["images"].dtype == np.float32
  np.testing.assert_array_equal(data["labels"], [0, 2, 2, 4])
  assert list(data["class_names"]) == list(config.data.classes)
  assert int(data["seed"]) == 11 and int(data["step"]) == 123 and int(data["num_steps"]) == 2
  assert str(data["sampler"]) == "ddim"
  assert (str(data["spacing"]), str(data["final_step"])) == ("uniform", "jump")  # Resolved.
  # Deterministic for a fixed seed, and the DN/s images invert the model-space samples.
  mesh = parallel.create_mesh(config.mesh)  # The one sample_and_write used: no recompile.
  again = sample.generate(config, params, data["labels"], mesh=mesh)
  np.testing.assert_allclose(
    scaling.forward(data["images"], config.data.clip_min, config.data.clip_max),
    np.clip(again, -1, 1),
    atol=1e-5,
  )
  assert data["images"].min() >= config.data.clip_min * (1 - 1e-6)
  assert data["images"].max() <= config.data.clip_max * (1 + 1e-6)


def test_inverse_transform_is_exact():
  rng = np.random.default_rng(0)
  dns = rng.uniform(1.0, 3000.0, 1000).astype(np.float32)
  back = scaling.inverse(scaling.forward(dns, 1.0, 3000.0), 1.0, 3000.0)
  np.testing.assert_allclose(back, dns, rtol=2e-6)


def test_fits_is_a_synthetic_171_map(written):
  import astropy.units as u
  import sunpy.map

  config, _, out = written
  files = sorted((out / "fits").iterdir())
  assert [f.name for f in files] == [
    "synthetic_00000_A.fits",
    "synthetic_00001_C.fits",
    "synthetic_00002_C.fits",
    "synthetic_00003_X.fits",
  ]
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # No header sunpy/astropy has to repair.
    m = sunpy.map.Map(str(files[3]))
  # A GenericMap: an AIAMap's colour map name would come from DETECTOR and not exist.
  assert type(m) is sunpy.map.GenericMap
  assert m.wavelength == 171 * u.AA and m.meta["instrume"] == "SYNTHETIC AIA_3"
  assert m.date.isot == "2014-01-01T00:00:00.000"
  assert m.unit == u.DN / u.s and m.exposure_time == 1 * u.s
  assert m.meta["synthetic"] is True and m.meta["modelstp"] == 123 and m.meta["seed"] == 11
  assert m.meta["goescls"] == "X" and "Synthetic" in str(m.meta["comment"])
  assert m.meta["img_type"] == "SYNTHETIC" and m.name.startswith("SYNTHETIC 171")
  assert (m.meta["clipmin"], m.meta["clipmax"]) == (config.data.clip_min, config.data.clip_max)
  assert m.meta["sampler"] == "ddim" and m.meta["nsteps"] == 2 and m.meta["ckptsrc"]
  # What wrote it: the date (FITS DATE, UTC), version, commit, and the command, whole.
  assert m.meta["sj_ver"] == solar_jax.__version__
  assert m.meta["sjcommit"] == provenance.git_commit() != ""
  written_at = datetime.datetime.fromisoformat(m.meta["date"] + "+00:00")
  age = datetime.datetime.now(datetime.timezone.utc) - written_at
  assert datetime.timedelta(0) <= age < datetime.timedelta(hours=1)
  history = list(fits.getheader(files[3])["HISTORY"])
  assert provenance.command_from_history(history) == provenance.command_line()
  # Geometry of the dataset: disk centred, radius 0.40 * size pixels.
  radius = (m.rsun_obs / m.scale[0]).to_value(u.pix)
  assert radius == pytest.approx(aia.default_disk_radius(32), rel=1e-6)
  centre = m.world_to_pixel(m.center)
  assert centre.x.value == pytest.approx(15.5) and centre.y.value == pytest.approx(15.5)
  with np.load(out / "samples.npz") as npz:
    np.testing.assert_array_equal(m.data, npz["images"][3, ..., 0])


def test_grid_png(written):
  import matplotlib.image

  _, _, out = written
  data = (out / "grid.png").read_bytes()
  assert data[:8] == b"\x89PNG\r\n\x1a\n"
  with (out / "grid.png").open("rb") as f:
    image = matplotlib.image.imread(f, format="png")
  assert image.ndim == 3 and image.shape[0] > 50 and image.std() > 0.01


def test_missing_checkpoint_is_a_clear_error(tmp_path):
  config = _config()
  with pytest.raises(FileNotFoundError, match="train first"):
    sample.run(config, tmp_path / "empty")


def test_bad_counts_are_clear_errors():
  config = _config()
  with pytest.raises(ValueError, match="unknown class 'Z'"):
    sample.sample_counts(config, {"Z": 3})
  with pytest.raises(ValueError, match="one count >= 0"):
    sample.sample_counts(config, (1, 2))
  with pytest.raises(ValueError, match="nothing to sample"):
    sample.sample_counts(config, (0, 0, 0, 0, 0))
  np.testing.assert_array_equal(sample.sample_counts(config, {"M": 4}), [0, 0, 0, 4, 0])
  np.testing.assert_array_equal(sample.sample_counts(config), config.sampling.per_class)


def test_balance_tops_up_to_the_largest_class(monkeypatch):
  train = np.array([500, 300, 120, 30, 2])
  labels = np.repeat(np.arange(5), train)  # The train split's facts: its labels.
  monkeypatch.setattr(
    sample.input_pipeline,
    "make_for_inference",
    lambda data_config, split, images: {"label": labels} if split == "train" and not images else {},
  )
  config = _config()
  config.sampling.counts = "balance"
  config.sampling.max_images = 10_000
  np.testing.assert_array_equal(sample.sample_counts(config), [0, 200, 380, 470, 498])
  config.sampling.max_images = 100  # Capped: proportional, summing to the cap.
  capped = sample.sample_counts(config)
  assert capped.sum() == 100 and capped[0] == 0
  np.testing.assert_allclose(capped, np.array([0, 200, 380, 470, 498]) / 1548 * 100, atol=1)


@pytest.mark.parametrize(
  "command",
  ["python -m solar_jax.main --workdir='wörk dir'", " " * 200, "a  " * 60 + "100%", "é" * 90],
)
def test_a_command_of_any_length_round_trips_through_fits_history(command):
  """HISTORY cards hold 72 printable ASCII characters and lose their edge spaces: the
  command comes back whole anyway (non-ASCII, '%', runs of spaces at a cut)."""
  lines = provenance.history_lines(command)
  assert all(len(v) <= 72 and v == v.strip() and v.isascii() for v in lines)
  header = fits.Header()
  for value in lines:
    header.add_history(value)
  reread = fits.Header.fromstring(header.tostring())  # As a reader of the file sees it.
  assert len(reread["HISTORY"]) == len(lines)
  assert provenance.command_from_history(list(reread["HISTORY"])) == command
