"""Sampling without training: another run's checkpoint, an export, the Python API, and
synthetic FITS that nobody (the dataset reader included) takes for observations."""

import json
import pathlib
import shlex

import conftest
import numpy as np
import pytest
from etils import epath

from solar_jax import api, configuration, main, pipeline, provenance
from solar_jax import workdir as wd
from solar_jax.configs import tiny
from solar_jax.data import aia
from solar_jax.ddpm import export, sample
from solar_jax.diffusion import samplers

STEP = conftest.TINY_CHECKPOINT_STEP
pytestmark = pytest.mark.filterwarnings("ignore:.*BLANK.*")  # sunpy's real test frame.


def _config():
  config = tiny.get_config()
  config.sampling.num_steps = 2
  config.sampling.per_class = (1, 0, 0, 0, 1)
  return config


@pytest.fixture(scope="module")
def trained(tiny_checkpoint):
  """A workdir with a checkpoint at STEP (a fresh init: what is tested is where it goes)."""
  return tiny_checkpoint


@pytest.mark.slow
def test_sampling_another_runs_checkpoint_writes_a_new_folder(trained, tmp_path):
  mine = tmp_path / "mine"
  legacy = pathlib.Path(
    wd.samples_dir(mine, STEP)
  )  # samples/<step>/ of a run before keyed folders.
  (legacy / "fits").mkdir(parents=True)
  wd.write_npz(legacy / "samples.npz", images=np.ones((1, 32, 32, 1), np.float32))
  (legacy / "fits" / "sample_00000_A.fits").write_bytes(b"an older run's file")
  before = {p: p.read_bytes() for p in legacy.rglob("*") if p.is_file()}

  config = _config()
  config.sampling.checkpoint = str(trained / "checkpoints")
  pipeline.check_inputs(config, str(mine), "sample")  # No checkpoint in mine: not needed.
  out = sample.run(config, mine)
  assert out.name == f"{STEP}-{wd.sample_key(config)}"
  config.sampling.checkpoint = ""
  assert out.name != f"{STEP}-{wd.sample_key(config)}"  # The model's source is in the key.
  config.sampling.checkpoint = str(trained / "checkpoints")
  assert {p: p.read_bytes() for p in legacy.rglob("*") if p.is_file()} == before
  assert wd.latest_samples(mine, config) == out / "samples.npz"

  config.sampling.guidance_scale = 3.0  # Other settings: another folder, the first kept.
  second = sample.run(config, mine)
  assert second != out and (out / "samples.npz").exists()
  assert sorted(p.name for p in (mine / "samples").iterdir()) == sorted(
    [str(STEP), out.name, second.name]
  )


def test_a_path_that_holds_no_model_is_named(tmp_path):
  config = _config()
  config.sampling.checkpoint = str(tmp_path / "nothing")
  with pytest.raises(FileNotFoundError, match="sampling.checkpoint=.*nothing"):
    pipeline.check_inputs(config, str(tmp_path / "run"), "sample")


@pytest.fixture(scope="module")
def fits_file(trained, tmp_path_factory):
  config = _config()
  config.sampling.checkpoint = str(trained)  # A workdir given as the source.
  out = sample.run(config, tmp_path_factory.mktemp("fits_run"))
  return config, sorted((out / "fits").iterdir())[-1], out


def test_synthetic_fits_plot_in_plain_sunpy_with_no_arguments_titled_synthetic(fits_file, trained):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import sunpy.map

  config, path, _ = fits_file
  assert path.name.startswith("synthetic_")
  m = sunpy.map.Map(str(path))
  assert not isinstance(m, sunpy.map.sources.AIAMap)  # Whose colour map would not exist.
  assert "SYNTHETIC" in m.name and "SYNTHETIC" in m.latex_name
  assert m.meta["img_type"] == "SYNTHETIC" and m.meta["ckptsrc"] == str(trained)
  assert (m.meta["clipmin"], m.meta["clipmax"]) == (config.data.clip_min, config.data.clip_max)
  assert m.cmap is not None and m.wavelength.to_value("angstrom") == 171
  # A sunpy user's first gestures, with no arguments.
  plt.close("all")
  m.peek()
  (figure,) = [plt.figure(n) for n in plt.get_fignums()]
  assert any("SYNTHETIC" in axes.get_title() for axes in figure.axes)
  fig = plt.figure()
  axes = fig.add_subplot(projection=m)
  m.plot(axes=axes)
  assert "SYNTHETIC" in axes.get_title()
  m.plot(axes=axes, cmap="sdoaia171")  # What the FITS COMMENT tells a reader to pass.
  plt.close("all")


def test_generated_maps_plot_in_the_aia_colours():
  import sunpy.map

  images = np.random.default_rng(0).lognormal(5.0, 1.0, (2, 32, 32)).astype(np.float32)
  out = api.Samples(
    images=images,
    labels=np.array([0, 4]),
    class_names=("A", "B", "C", "M", "X"),
    step=3,
    settings=dict(sampler="ddim", num_steps=5, eta=0.0, guidance_scale=1.0, seed=0),
    source="runs/x",
    clip=(1.0, 3000.0),
  )
  maps = out.maps()
  assert [m.meta["goescls"] for m in maps] == ["A", "X"]
  for m, image in zip(maps, images):
    assert isinstance(m, sunpy.map.GenericMap) and "SYNTHETIC" in m.name
    assert m.cmap.name == "sdoaia171"
    np.testing.assert_array_equal(m.data, image)


def test_the_dataset_reader_refuses_synthetic_frames_unless_told(fits_file):
  config, path, out = fits_file
  with pytest.raises(aia.BadFrameError) as info:
    aia.read_frame(path, image_size=config.data.image_size)
  assert info.value.reason == "synthetic" and "SYNTHETIC" in info.value.detail
  assert "accept_synthetic=True" in info.value.detail
  frame = aia.read_frame(path, image_size=config.data.image_size, accept_synthetic=True)
  images = wd.read_npz(out / "samples.npz")["images"]
  # Same geometry as the dataset: the reader gives back the written image (disk pixels).
  yy, xx = np.mgrid[:32, :32] - 15.5
  disk = np.hypot(yy, xx) < 0.9 * aia.default_disk_radius(32)
  np.testing.assert_allclose(frame.image[disk], images[-1, ..., 0][disk], rtol=1e-3)


def test_the_reader_refuses_a_simulated_frame_unless_told(tmp_path):
  import sunpy.data.test
  from astropy.io import fits

  real = sunpy.data.test.get_test_filepath("aia_171_level1.fits")  # A real AIA frame.
  with fits.open(real) as hdul:
    data, header = hdul[0].data.astype(np.float32), hdul[0].header.copy()
  del header["BLANK"]  # Only valid for integer data.
  header["SIMULATE"] = (True, "SIMULATED frame")
  path = tmp_path / "simulated.fits"
  fits.PrimaryHDU(data, header).writeto(path)
  with pytest.raises(aia.BadFrameError, match="SIMULATE=True") as info:
    aia.read_frame(path, image_size=16)
  assert info.value.reason == "synthetic"
  assert aia.read_frame(path, image_size=16, accept_synthetic=True).image.shape == (16, 16)
  header["SIMULATE"] = False
  fits.PrimaryHDU(data, header).writeto(path, overwrite=True)
  assert aia.read_frame(path, image_size=16).image.shape == (16, 16)


@pytest.mark.slow
def test_export_then_generate_in_python(trained):

  config = _config()
  out = export.run(config, trained)
  assert out == epath.Path(trained) / "export" / str(STEP)
  card = (out / "MODEL_CARD.md").read_text()
  assert "Known failure modes" in card and "Training data" in card and "parameters" in card
  # Who exported it, and the sampler to use: the config's here (no evaluation in trained).
  meta = json.loads((out / "export.json").read_text())
  assert card.startswith("---\nlicense: mit\n") and "## Intended use" in card
  assert f"(commit `{provenance.git_commit()}`)" in card
  assert f"with `{provenance.command_line()}`" in card
  assert meta["exported_by"]["commit"] == provenance.git_commit()
  settings = samplers.recorded_settings(config)
  assert meta["recommended_sampler"] == {
    **{k: settings[k] for k in ("sampler", "num_steps", "eta", "guidance_scale")},
    "chosen_by": "config (not evaluated)",
  }
  assert export.usage_command(meta["recommended_sampler"]) in card
  from_export = api.generate(out, classes={"A": 1, "X": 1}, num_steps=2)
  from_workdir = api.generate(trained, classes=["A", "X"], n=1, num_steps=2)
  assert from_export.images.shape == (2, 32, 32) and from_export.step == STEP
  assert list(from_export.labels) == [0, 4] and from_export.class_names[4] == "X"
  np.testing.assert_allclose(from_export.images, from_workdir.images, rtol=1e-5)
  assert from_export.images.min() >= config.data.clip_min * (1 - 1e-6)
  maps = from_export.maps()
  assert maps[0].name.startswith("SYNTHETIC") and maps[0].cmap.name == "sdoaia171"
  # --mode=sample reads the export too.
  config.sampling.checkpoint = str(out)
  written = sample.run(config, epath.Path(trained) / "elsewhere")
  np.testing.assert_allclose(
    wd.read_npz(written / "samples.npz")["images"][..., 0], from_export.images, rtol=1e-5
  )


def test_the_card_recommends_the_sampler_its_evaluation_scored(tmp_path):
  """eval/metrics.json's sampler settings become the export's recommendation, and the
  card's command, parsed by the command line itself, sets exactly them."""
  config = _config()
  drawn = dict(sampler="ddpm", num_steps=100, eta=1.0, guidance_scale=3.0, seed=0, step=STEP)
  wd.eval_dir(tmp_path).mkdir()
  wd.write_json(wd.eval_dir(tmp_path) / "metrics.json", {"samples": drawn, "summary": {}})
  evaluation = export.evaluation_record(tmp_path)
  sampler = export.recommended_sampler(config, evaluation)
  assert sampler == {
    "sampler": "ddpm",
    "num_steps": 100,
    "eta": 1.0,
    "guidance_scale": 3.0,
    "chosen_by": f"evaluation at step {STEP}",
  }
  wd.write_text(tmp_path / "config.json", configuration.to_json(config))
  command = export.usage_command(sampler).replace("<this dir>", str(tmp_path))
  argv = shlex.split(command.replace("<new dir>", str(tmp_path / "new")))[2:]
  try:
    main.parse_flags(["solar_jax.main", *argv])
    parsed = main.FLAGS.config
    assert (parsed.sampling.sampler, parsed.sampling.num_steps) == ("ddpm", 100)
    assert (parsed.sampling.eta, parsed.sampling.guidance_scale) == (1.0, 3.0)
    assert parsed.sampling.checkpoint == str(tmp_path)
  finally:
    main.FLAGS.unparse_flags()
    for name in [n for n in main.FLAGS if n.startswith("config.")]:
      delattr(main.FLAGS, name)
