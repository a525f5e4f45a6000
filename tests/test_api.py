"""solar_jax.DiffusionPipeline: load once, sample many times without compiling again, save
and load to the same samples, short reprs, and the model shipped with the package.

Every call samples 2 images with the tiny config's DDIM at 2 steps (eta 1, guidance 1):
the compile of test_notebook's ``solar_jax.generate`` call (batch 2), so the suite's
persistent compilation cache holds it.
"""

import json
import pathlib
import re

import jax
import numpy as np
import pytest

import solar_jax
from solar_jax import api, errors
from solar_jax.data import aia
from solar_jax.diffusion import samplers
from solar_jax.metrics import physics

FEW_STEPS = dict(num_steps=2, eta=1.0, guidance_scale=1.0)
# disk_correlation above which an image shows a disk: a real frame 0.73, the demo model's
# samples at 2 steps 0.5-0.7 (25 steps: 0.66-0.75), noise and an untrained model's about 0.
DISKS = 0.4
COMPILE_EVENTS = (
  "/jax/core/compile/jaxpr_trace_duration",
  "/jax/core/compile/jaxpr_to_mlir_module_duration",
  "/jax/core/compile/backend_compile_duration",
)


@pytest.fixture(scope="module")
def pipe(tiny_checkpoint):
  return solar_jax.DiffusionPipeline.from_pretrained(tiny_checkpoint)


class _Compilations:
  """Counts JAX's tracing, lowering and compiling events while active."""

  def __enter__(self):
    self.events = []
    jax.monitoring.register_event_duration_secs_listener(self._record)
    return self

  def _record(self, event, duration, **kwargs):
    if event in COMPILE_EVENTS:
      self.events.append(event)

  def __exit__(self, *exc):
    jax.monitoring.unregister_event_duration_listener(self._record)


def test_the_second_call_does_not_compile(pipe):
  """Other seeds, classes and counts of the same batch shape reuse the first compile."""
  first = pipe(classes="X", num_images=2, seed=1, **FEW_STEPS)
  size = samplers.sample_batch._cache_size()
  with _Compilations() as compiled:
    second = pipe(classes={"A": 1, "M": 1}, seed=2, **FEW_STEPS)
    third = pipe(classes="X", num_images=2, seed=1, **FEW_STEPS)
  assert compiled.events == [] and samplers.sample_batch._cache_size() == size
  assert list(second.labels) == [0, 3] and list(first.labels) == [4, 4]
  np.testing.assert_array_equal(third.images, first.images)  # Same seed: same images.
  assert np.abs(second.images - first.images).mean() > 0


def test_a_saved_pipeline_loads_to_the_same_samples(pipe, tmp_path):
  out = pipe.save_pretrained(tmp_path / "saved")
  names = {p.name for p in pathlib.Path(out).iterdir()}
  assert names == {"params", "config.json", "export.json", "MODEL_CARD.md"}
  meta = json.loads((pathlib.Path(out) / "export.json").read_text())
  assert meta["recommended_sampler"] == pipe.recommended_sampler and meta["step"] == pipe.step
  assert "## Use" in (pathlib.Path(out) / "MODEL_CARD.md").read_text()
  again = solar_jax.DiffusionPipeline.from_pretrained(out)
  assert again.recommended_sampler == pipe.recommended_sampler and again.step == pipe.step
  want = pipe(classes=["B", "C"], num_images=1, seed=5, **FEW_STEPS)
  have = again(classes=["B", "C"], num_images=1, seed=5, **FEW_STEPS)
  np.testing.assert_array_equal(have.images, want.images)
  # Saved again from the export: the card and the first export's record travel unchanged.
  twice = again.save_pretrained(tmp_path / "twice")
  assert (pathlib.Path(twice) / "MODEL_CARD.md").read_text() == again.model_card
  assert (
    json.loads((pathlib.Path(twice) / "export.json").read_text())["exported_by"]
    == (meta["exported_by"])
  )


def test_reprs_are_one_short_line(pipe):
  out = pipe(classes="X", num_images=2, seed=1, **FEW_STEPS)
  for text in (repr(pipe), repr(out), str(out)):
    assert "\n" not in text and len(text) < 300 and "array" not in text, text
  assert repr(out) == (
    "Samples(2 SYNTHETIC images 32x32 DN/s, classes {'X': 2}, step 3, ddim, 2 steps, "
    "eta 1, guidance 1, seed 1)"
  )
  assert re.fullmatch(
    r"DiffusionPipeline\(32x32 AIA 171 A, classes A B C M X, step 3, [\d,]+ parameters, "
    r"sampler ddim, 2 steps, eta 1, guidance 1, from .+\)",
    repr(pipe),
  ), repr(pipe)


def test_an_unknown_model_is_one_line_naming_the_shipped_ones(tmp_path):
  with pytest.raises(errors.MissingInputError, match="not the name of a model shipped.*'demo'"):
    api.resolve(tmp_path / "nowhere")
  with pytest.raises(errors.MissingInputError, match="no config.json there"):
    solar_jax.DiffusionPipeline.from_pretrained(tmp_path)


def disk_correlation(images) -> np.ndarray:
  """Per image, the correlation of log10 DN/s with a disk of the data's radius (1 on the
  disk, 0 off it): a real AIA 171 frame gives 0.73 (its corona is bright off the limb),
  a noise image about 0."""
  x = np.log10(np.maximum(np.asarray(images, np.float64), 1.0))
  disk = physics.disk_mask(x.shape[1:]).ravel().astype(np.float64)
  return np.array([np.corrcoef(image.ravel(), disk)[0, 1] for image in x])


def test_the_disk_statistic_tells_disks_from_noise(pipe):
  import sunpy.data.test

  real = aia.read_frame(sunpy.data.test.get_test_filepath("aia_171_level1.fits"), image_size=32)
  real = real.image
  assert disk_correlation(real[None])[0] > DISKS
  noise = 10 ** np.random.default_rng(0).uniform(0, 3.5, (4, 32, 32))
  assert np.abs(disk_correlation(noise)).max() < 0.2 < DISKS
  untrained = pipe(classes="X", num_images=2, seed=1, **FEW_STEPS)  # A fresh init's.
  assert np.abs(disk_correlation(untrained.images)).max() < 0.2


def test_the_shipped_model_is_package_data(repo_root, tmp_path):
  """setup.py's package data takes every file of the shipped models (egg_info lists what an
  sdist or wheel would hold)."""
  import subprocess
  import sys

  subprocess.run(
    [sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path)],
    cwd=repo_root,
    check=True,
    capture_output=True,
  )
  listed = set(next(tmp_path.glob("*.egg-info")).joinpath("SOURCES.txt").read_text().split())
  shipped = {
    p.relative_to(repo_root).as_posix()
    for name in api.PRETRAINED.values()
    for p in (repo_root / "solar_jax" / name).rglob("*")
    if p.is_file()
  }
  assert shipped and shipped <= listed, sorted(shipped - listed)


def test_the_shipped_model_samples_disks_marked_simulated():
  """``from_pretrained("demo")``: the package's model, trained on the SIMULATED demo
  archive, draws disks at 2 steps and says where it learnt (card, reprs, FITS header)."""
  pipe = solar_jax.DiffusionPipeline.from_pretrained("demo")
  assert pipe.simulated and "SIMULATED training data" in repr(pipe)
  assert "SIMULATED DATA" in pipe.model_card and "## Shipped with solar_jax" in pipe.model_card
  assert "scripts/demo_model.sh" in pipe.model_card and "--mode=train" in pipe.model_card
  out = pipe(classes=["B", "X"], num_images=1, seed=0, **FEW_STEPS)
  assert out.simulated and repr(out).endswith(", SIMULATED training data)")
  assert disk_correlation(out.images).min() > DISKS, disk_correlation(out.images)
  header = out.fits_headers()[0]  # What out.maps() reads (sunpy.map: 5 s to import).
  assert header["SIMULATE"] is True and header["DETECTOR"] == "SYNTHETIC"


@pytest.mark.slow
def test_the_tiny_path_passes_the_noise_check_at_its_recommended_sampler():
  """The shipped demo model is the tiny config's path: at the sampler its export recommends
  (DDIM eta 1, 25 steps) every class draws images the report's noise check passes against
  sunpy's real AIA 171 frame; at 2 steps the same model's images are still grainy and fail."""
  import sunpy.data.test

  from solar_jax.metrics import sanity

  real = aia.read_frame(sunpy.data.test.get_test_filepath("aia_171_level1.fits"), image_size=32)
  pipe = solar_jax.DiffusionPipeline.from_pretrained("demo")
  rec = pipe.recommended_sampler
  assert (rec["num_steps"], rec["eta"]) == (25, 1.0), rec
  classes = ["A", "B", "C", "M", "X"]
  recommended = pipe(classes=classes, num_images=1, seed=0)
  check = sanity.noise_check(real.image[None], recommended.images)
  assert check["num_noise_like"] == 0, check
  few = sanity.noise_check(
    real.image[None], pipe(classes=classes, num_images=1, seed=0, **FEW_STEPS).images
  )
  assert few["num_noise_like"] == len(classes), few


def test_a_class_model_asked_for_a_flux_is_one_line(pipe):
  with pytest.raises(errors.ConfigError, match="conditioned on the GOES class") as caught:
    pipe(flux="M2.5", num_images=1)
  assert "\n" not in str(caught.value) and errors.exit_code(caught.value) == 2
