"""The data the way TFDS and sunpy users take it: ``solar_jax.data.load``, ``tfds.load`` by
name after ``import tfds_builders``, and ``solar_jax.data.to_map`` (record -> sunpy Map).

Reads the session's demo dataset (conftest ``demo_tfds``, SIMULATED); the map round trip
reads sunpy's real AIA 171 Å level-1 test file.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

import solar_jax.data
from solar_jax import errors
from solar_jax.configs import default
from solar_jax.data import aia, frame_facts, frame_geometry, input_pipeline, splits

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def internal(demo_tfds):
  """What the runs read for fold 0 under the default label: {split: arrays, DN/s}."""
  config = default.get_config().data
  config.data_dir = str(demo_tfds)
  return {s: input_pipeline.make_for_inference(config, s, transform=False) for s in SPLITS}


def test_load_gives_the_internal_readers_frames_and_labels_in_numpy_and_tf_data(
  demo_tfds, internal
):
  data_dir = str(demo_tfds)
  arrays = solar_jax.data.load("train", data_dir=data_dir, as_numpy=True)
  assert set(arrays) == set(internal["train"]) and len(arrays["label"]) > 0
  for key, ref in internal["train"].items():
    np.testing.assert_array_equal(arrays[key], ref, err_msg=key)
  images, labels = solar_jax.data.load(
    "validation", data_dir=data_dir, as_numpy=True, as_supervised=True
  )
  np.testing.assert_array_equal(images, internal["validation"]["image"])
  np.testing.assert_array_equal(labels, internal["validation"]["label"])
  # tf.data: (image, label) pairs here, one dict per frame below (the 2.3.0 read).
  pairs = list(
    solar_jax.data.load("test", data_dir=data_dir, as_supervised=True).as_numpy_iterator()
  )
  assert all(isinstance(p, tuple) and len(p) == 2 for p in pairs) and len(pairs) > 0
  assert pairs[0][0].shape == (64, 64, 1) and pairs[0][0].dtype == np.float32
  np.testing.assert_array_equal([p[1] for p in pairs], internal["test"]["label"])
  np.testing.assert_array_equal(np.stack([p[0] for p in pairs]), internal["test"]["image"])


def test_load_names_a_bad_split_label_or_field(demo_tfds):
  with pytest.raises(ValueError, match="split='block0'"):
    solar_jax.data.load("block0", data_dir=str(demo_tfds))
  with pytest.raises(ValueError, match="label='goes'"):
    solar_jax.data.load("test", label="goes", data_dir=str(demo_tfds))
  with pytest.raises(ValueError, match="embargo_day does not exist"):
    solar_jax.data.load("test", data_dir=str(demo_tfds), embargo_day=0)


def test_tfds_load_by_name_reads_the_same_frames(demo_tfds, internal):
  """After ``import tfds_builders`` the builder is TFDS's by name; its records are the
  frames (and facts) the internal reader labels, its month blocks the fold's splits."""
  import tensorflow_datasets as tfds

  import tfds_builders  # noqa: F401 - registers sdo_aia171
  from tfds_builders.sdo_aia171 import sdo_aia171_dataset_builder as sdo

  builder = tfds.builder("sdo_aia171/64", data_dir=str(demo_tfds))
  assert isinstance(builder, sdo.Builder) and str(builder.version) == "2.4.0"
  by_name = {
    ex["source"]: ex
    for ex in tfds.as_numpy(tfds.load("sdo_aia171/64", split="all", data_dir=str(demo_tfds)))
  }
  for ref in internal.values():
    for i, source in enumerate(ref["source"]):
      np.testing.assert_array_equal(by_name[source]["image"], ref["image"][i])
      assert by_name[source]["goes_flux"] == pytest.approx(ref["goes_flux"][i], nan_ok=True)
  record = next(iter(by_name.values()))  # a TFDS example is a record to_map reads
  np.testing.assert_array_equal(solar_jax.data.to_map(record).data, record["image"][..., 0])
  # The test split of fold 0 is block 0 (less unlabelled frames: none under xrs_class here).
  roles = splits.roles(10, 0)
  test_blocks = "+".join(f"block{b}" for b in range(10) if roles[b] == splits.SPLITS.index("test"))
  test = tfds.load("sdo_aia171/64", split=test_blocks, data_dir=str(demo_tfds))
  assert sorted(ex["source"] for ex in tfds.as_numpy(test)) == sorted(internal["test"]["source"])


def test_dataset_info_has_the_data_license_and_citations(demo_tfds):
  import tensorflow_datasets as tfds

  import tfds_builders  # noqa: F401

  info = tfds.builder("sdo_aia171/64", data_dir=str(demo_tfds)).info
  assert "public domain" in info.redistribution_info.license
  assert "DATA_LICENSE.md" in info.redistribution_info.license
  assert "Courtesy of NASA/SDO and the AIA science team" in (ROOT / "DATA_LICENSE.md").read_text()
  assert "Courtesy of NASA/SDO and the AIA science team" in info.redistribution_info.license
  # The citation is the builder's CITATIONS.bib: each entry as in the project's list, but
  # solar_jax's own, whose title is CITATION.cff's.
  root = (ROOT / "CITATIONS.bib").read_text()
  entries = re.findall(r"^@\w+\{(\w+),.*?^\}", info.citation, re.S | re.M)
  assert {"pesnell2012sdo", "lemen2012aia", "noaa_goes_xrs", "solar_jax"} <= set(entries)
  for match in re.finditer(r"^@\w+\{(\w+),.*?^\}", info.citation, re.S | re.M):
    if match.group(1) != "solar_jax":
      assert match.group(0) in root, match.group(1)
  assert "class-conditional diffusion models of" in (ROOT / "CITATION.cff").read_text()


def test_the_missing_dataset_hint_builds_by_name(demo_tfds, tmp_path):
  config = default.get_config().data
  config.data_dir = str(tmp_path)
  with pytest.raises(errors.MissingInputError) as info:
    input_pipeline.get_builder(config)
  assert "tfds build sdo_aia171 --imports=tfds_builders --config=64" in str(info.value)
  assert "tfds_builders/" not in str(info.value)


# ------------------------------------------------------------ geometry ---


def _real_record(image_size=64):
  """sunpy's real AIA test file read as the builder reads it, as a record's fields."""
  import sunpy.data.test

  path = sunpy.data.test.get_test_filepath("aia_171_level1.fits")
  frame = aia.read_frame(path, image_size=image_size)
  record = dict(
    image=frame.image[..., None],
    time=frame_facts.iso(frame.time),
    exposure=np.float32(frame.exposure),
    source=frame.source,
    **frame_geometry.record_fields(frame.observer, image_size, frame.disk_radius_px),
  )
  return path, frame, record


def test_a_record_becomes_the_sunpy_map_of_its_file_resampled():
  """The Map's WCS is the file's (sunpy's observer, date, radius) on the stored grid, and
  sunpy's own resampling of the file onto that WCS gives the stored pixels."""
  import astropy.units as u
  import sunpy.map

  path, frame, record = _real_record()
  smap = solar_jax.data.to_map(record)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    original = sunpy.map.Map(path)
  assert isinstance(smap, sunpy.map.sources.AIAMap) and smap.data.shape == (64, 64)
  assert smap.reference_date == original.reference_date
  assert smap.date == original.date
  assert smap.observer_coordinate.separation_3d(original.observer_coordinate) < 1 * u.m
  assert smap.rsun_obs.to_value(u.arcsec) == pytest.approx(original.rsun_obs.to_value(u.arcsec))
  assert u.allclose(smap.rsun_meters, original.rsun_meters)
  # The grid: disk centre (helioprojective 0, 0) at the array centre, north up, radius 0.4 S.
  scale = original.rsun_obs.to_value(u.arcsec) / (0.4 * 64)
  # Points on the axes (TAN departs from linear by 1e-5 there, as the reader's linearised
  # mapping does: aia's docs).
  edges = smap.pixel_to_world([0, 63, 31.5, 31.5, 31.5] * u.pix, [31.5, 31.5, 0, 63, 31.5] * u.pix)
  along = 31.5 * scale * np.array([[-1, 1, 0, 0, 0], [0, 0, -1, 1, 0]])
  np.testing.assert_allclose(edges.Tx.to_value(u.arcsec), along[0], rtol=2e-5, atol=1e-6)
  np.testing.assert_allclose(edges.Ty.to_value(u.arcsec), along[1], rtol=2e-5, atol=1e-6)
  np.testing.assert_allclose(smap.rotation_matrix, np.eye(2), atol=1e-12)
  # sunpy resamples the file onto the Map's WCS: the stored pixels agree on the disk, and
  # far better than with the WCS one pixel off (the check can fail).
  resampled = (original / original.exposure_time).reproject_to(smap.wcs, algorithm="adaptive").data
  yy, xx = np.mgrid[:64, :64] - 31.5
  disk = np.hypot(yy, xx) < 0.95 * frame.disk_radius_px

  def error(image):
    return np.median(np.abs(image[disk] - resampled[disk]) / np.abs(resampled[disk]))

  assert error(frame.image) < 0.08
  assert error(frame.image) < 0.5 * min(error(np.roll(frame.image, 1, a)) for a in (0, 1))


def test_to_map_of_block_means_and_of_bad_records():
  import astropy.units as u

  _, frame, record = _real_record()
  half = frame.image.reshape(32, 2, 32, 2).mean(axis=(1, 3))
  smap = solar_jax.data.to_map(record, image=half)
  assert smap.scale.axis1.to_value(u.arcsec / u.pix) == pytest.approx(2 * record["cdelt"])
  centre = smap.pixel_to_world(15.5 * u.pix, 15.5 * u.pix)
  assert abs(centre.Tx.to_value(u.arcsec)) < 1e-6 and abs(centre.Ty.to_value(u.arcsec)) < 1e-6
  with pytest.raises(ValueError, match="divides the stored side 64"):
    solar_jax.data.to_map(record, image=np.zeros((48, 48)))
  no_observer = dict(record, hgln_obs=np.nan, haex_obs=np.nan)
  with pytest.raises(ValueError, match="has no observer"):
    solar_jax.data.to_map(no_observer)
  old = {k: v for k, v in record.items() if k not in frame_geometry.FIELDS}
  with pytest.raises(ValueError, match="before 2.4.0") as info:
    solar_jax.data.to_map(old)
  assert "\n" not in str(info.value)


def test_records_keep_the_geometry_and_older_datasets_still_read(demo_tfds, internal, tmp_path):
  """2.4.0 records carry the geometry to_map needs; a 2.3.0 dataset (the same records
  without it) is read as before, and to_map says in one line why it cannot."""
  arrays = solar_jax.data.load("test", data_dir=str(demo_tfds), as_numpy=True, image_size=32)
  row = {k: v[0] for k, v in arrays.items()}
  smap = solar_jax.data.to_map(row)
  assert smap.data.shape == (32, 32)
  np.testing.assert_allclose(smap.data, arrays["image"][0, ..., 0])
  # Stored: the 64 px grid; the Map of the 32 px block means has twice its CDELT.
  assert row["crpix"] == 32.5 and row["cdelt"] == pytest.approx(row["rsun_obs"] / (0.4 * 64))
  assert smap.scale.axis1.value == pytest.approx(2 * row["cdelt"])
  # A 2.3.0 build: the same files under that version (its reader ignores the new fields).
  old = tmp_path / "tfds"
  shutil.copytree(demo_tfds, old)
  version_dir = old / "sdo_aia171" / "64" / "2.4.0"
  info_path = version_dir / "dataset_info.json"
  info = json.loads(info_path.read_text())
  info["version"] = "2.3.0"
  info_path.write_text(json.dumps(info))
  version_dir.rename(version_dir.parent / "2.3.0")
  elements = list(solar_jax.data.load("validation", data_dir=str(old)).as_numpy_iterator())
  ref = internal["validation"]
  assert [ex["source"] for ex in elements] == list(ref["source"])
  np.testing.assert_array_equal([ex["label"] for ex in elements], ref["label"])
  np.testing.assert_array_equal(np.stack([ex["image"] for ex in elements]), ref["image"])
  assert set(elements[0]) == set(ref) - set(frame_geometry.FIELDS)
  import tensorflow_datasets as tfds

  assert tfds.builder("sdo_aia171/64:2.3.0", data_dir=str(old)).is_prepared()  # by name too
  with pytest.raises(ValueError, match="datasets before 2.4.0 do not store it"):
    solar_jax.data.to_map(elements[0])


@pytest.mark.slow
@pytest.mark.long
def test_build_by_name_from_outside_the_repository(tmp_path):
  """``tfds build sdo_aia171 --imports=tfds_builders`` run from a directory that is not the
  checkout (the package importable, as after pip install); then ``tfds.load`` by name."""
  import tensorflow_datasets as tfds

  manual = ROOT / "tfds_builders" / "sdo_aia171" / "dummy_data"
  env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
  build = [sys.executable, "-m", "tensorflow_datasets.scripts.cli.main", "build", "sdo_aia171"]
  build += ["--imports=tfds_builders", "--config=64", f"--manual_dir={manual}"]
  build += [f"--data_dir={tmp_path / 'data'}"]
  subprocess.run(build, cwd=tmp_path, env=env, check=True, capture_output=True, timeout=600)
  by_name = tfds.load("sdo_aia171/64", split="all", data_dir=str(tmp_path / "data"))
  sources = {ex["source"] for ex in tfds.as_numpy(by_name)}
  loaded = solar_jax.data.load("all", data_dir=str(tmp_path / "data"), as_numpy=True)
  assert sources and set(loaded["source"]) <= sources


def test_the_observer_read_from_a_header_and_its_bad_values():
  import sunpy.data.test
  from astropy.io import fits

  from solar_jax.data import aia_header

  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the file's BLANK card on float data
    header = fits.getheader(sunpy.data.test.get_test_filepath("aia_171_level1.fits"))
  seen = aia_header.observer(header, "aia.fits")
  assert seen["dsun_obs"] == header["DSUN_OBS"] and seen["hglt_obs"] == header["HGLT_OBS"]
  assert seen["date_obs"] == "2011-02-15T00:00:00.340"
  # Absent: no observer place (NaN), the distance from the radius seen and the true one.
  for key in ("HGLN_OBS", "HGLT_OBS", "HAEX_OBS", "DSUN_OBS"):
    del header[key]
  seen = aia_header.observer(header, "aia.fits")
  assert np.isnan(seen["hgln_obs"]) and np.isnan(seen["haex_obs"])
  assert seen["dsun_obs"] == pytest.approx(147724815128.0, rel=1e-5)
  header["HGLT_OBS"] = 120.0
  with pytest.raises(aia.BadFrameError, match=r"aia\.fits.*HGLT_OBS=120\.0") as info:
    aia_header.observer(header, "aia.fits")
  assert info.value.reason == "bad_keyword"
