"""SDOML input: a Zarr store in the SDOML v2 layout gives the records the same frames as FITS give.

The test writes the frames of a small demo archive (made from sunpy's real AIA 171 Å test
frame, SIMULATED) twice: as the demo's FITS files under ``aia/`` and as an SDOML v2 store
(``<year>/171A`` [T, N, N] in DN/s divided by DEG_COR, mean-binned 2x2 as SDOML bins, the
FITS keywords as per-frame attribute lists with the WCS rewritten for the binning). The
binning CRPIX is the exact one, (CRPIX - 1.5) / 2 + 1, so both paths see the same disk
(``solar_jax.data.sdoml`` notes SDOML's own CRPIX/2, a quarter-pixel shift).
"""

import importlib.util
import json
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds
import zarr
from astropy.io import fits

from solar_jax import errors
from solar_jax.data import aia, build_report, demo, frame_facts, sdoml
from tfds_builders.sdo_aia171 import sdo_aia171_dataset_builder as sdo

_SKIP_CARDS = {"", "COMMENT", "HISTORY", "SIMPLE", "BITPIX", "EXTEND", "NAXIS"}


def _fits_frame(path):
  with fits.open(path) as hdul:
    hdu = next(h for h in hdul if h.data is not None)
    return np.asarray(hdu.data, np.float64), hdu.header.copy()


def write_sdoml_store(paths, store, *, binning=2, deg_cor=None, edit=None):
  """An SDOML v2 store of the FITS files ``paths``; ``edit(i, keywords, image)`` alters frame i."""
  frames = sorted((_fits_frame(p) for p in paths), key=lambda f: f[1]["T_OBS"])
  by_year = {}
  for i, (data, header) in enumerate(frames):
    keywords = {k: header[k] for k in header if k not in _SKIP_CARDS}
    factor = 1.0 if deg_cor is None else deg_cor[i]
    image = data / header["EXPTIME"] / factor
    n = image.shape[0] // binning
    image = image.reshape(n, binning, n, binning).mean(axis=(1, 3))
    for axis in (1, 2):
      keywords[f"NAXIS{axis}"] = n
      keywords[f"CDELT{axis}"] = header[f"CDELT{axis}"] * binning
      keywords[f"CRPIX{axis}"] = (header[f"CRPIX{axis}"] - (binning + 1) / 2) / binning + 1
    keywords.update(DEG_COR=factor, PIXLUNIT="DN/s")
    if edit is not None:
      image = edit(i, keywords, image)
    by_year.setdefault(header["T_OBS"][:4], []).append((image, keywords))
  root = zarr.open_group(str(store), mode="w", zarr_format=2)
  for year, items in by_year.items():
    n = items[0][0].shape[0]
    array = root.create_group(year).create_array(
      "171A", shape=(len(items), n, n), chunks=(15, n, n), dtype="f4"
    )
    array[:] = np.stack([im for im, _ in items]).astype(np.float32)
    keys = sorted({k for _, kw in items for k in kw})
    array.attrs.update({k: [kw.get(k) for _, kw in items] for k in keys})
  return store


@pytest.fixture(scope="module")
def fits_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("fits_manual")
  demo.write_demo_archive(
    out, num_frames=6, months=2, start="2011-06-01", seed=4, xrs_cadence_s=240
  )
  return out


def _fits_files(manual):
  return sorted(aia.find_fits_files(manual / "aia"))


@pytest.fixture(scope="module")
def sdoml_dir(fits_dir, tmp_path_factory):
  """The same archive with its frames in an SDOML store at DIR/sdoml/ and no aia/."""
  out = tmp_path_factory.mktemp("sdoml_manual")
  for name in ("flares.csv", "demo_manifest.json"):
    shutil.copy(fits_dir / name, out / name)
  shutil.copytree(fits_dir / "goes", out / "goes")
  write_sdoml_store(_fits_files(fits_dir), out / "sdoml")
  return out


def _build(manual, data_dir):
  builder = sdo.Builder(config="64", data_dir=str(data_dir))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
  return builder


def _records(builder):
  out = {}
  for split in builder.info.splits:
    for ex in builder.as_dataset(split=split).as_numpy_iterator():
      out[ex["time"].decode()] = dict(ex, split=split)
  return out


@pytest.fixture(scope="module")
def sdoml_build(sdoml_dir, tmp_path_factory):
  return _build(sdoml_dir, tmp_path_factory.mktemp("tfds_sdoml"))


def test_sdoml_store_builds_the_same_records_as_the_fits_files(
  fits_dir, sdoml_dir, sdoml_build, tmp_path
):
  from_fits = _records(_build(fits_dir, tmp_path / "fits"))
  builder = sdoml_build
  from_sdoml = _records(builder)
  assert len(from_fits) == 6 and set(from_sdoml) == set(from_fits)
  for time, want in from_fits.items():
    got = from_sdoml[time]
    assert got["split"] == want["split"]
    assert got["source"].decode().startswith("sdoml/2011/171A/")
    scale = float(np.abs(want["image"]).max())
    np.testing.assert_allclose(got["image"], want["image"], rtol=1e-5, atol=1e-5 * scale)
    for key in ("exposure", "intensity_max", "intensity_p999"):
      np.testing.assert_allclose(got[key], want[key], rtol=1e-5, err_msg=key)
    for key in frame_facts.FIELDS:
      if isinstance(want[key], float | np.floating):
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)  # NaN == NaN here
      else:
        assert got[key] == want[key], (time, key)
  # Provenance: the report and the metadata name the store, its layout and who corrected.
  report = json.loads((builder.data_path / build_report.REPORT_NAME).read_text())
  assert report["sdoml"]["store"] == str((sdoml_dir / "sdoml").resolve())
  assert report["sdoml"]["layout"] == sdoml.LAYOUT
  assert "DEG_COR" in report["sdoml"]["degradation"]
  assert report["files_found"] == 6 and report["skipped"]["count"] == 0
  meta = tfds.builder_from_directory(builder.data_path).info.metadata  # as stored
  assert meta["degradation"] is True and meta["sdoml"]["store"] == report["sdoml"]["store"]
  assert meta["simulated"] and report["simulated"]


@pytest.mark.slow
def test_beam_build_of_the_store_gives_the_same_records(sdoml_dir, sdoml_build, tmp_path):
  """The planned SDOML items (a FrameRef each) travel through Beam's pickling."""
  import apache_beam as beam  # lazy: only this test runs a pipeline

  options = beam.options.pipeline_options.PipelineOptions(["--runner=DirectRunner"])
  builder = sdo.Builder(config="64", data_dir=str(tmp_path))
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(manual_dir=str(sdoml_dir), beam_options=options)
  )
  want, got = _records(sdoml_build), _records(builder)
  assert set(got) == set(want)
  for time in want:
    np.testing.assert_array_equal(got[time]["image"], want[time]["image"])


def test_degradation_is_divided_once_by_sdoml_not_again(fits_dir, tmp_path):
  """A store whose images were divided by DEG_COR reads as the FITS frame / DEG_COR, not /DEG_COR²."""
  paths = _fits_files(fits_dir)[:3]
  deg_cor = [0.5, 0.8, 1.0]
  store = write_sdoml_store(paths, tmp_path / "store", binning=1, deg_cor=deg_cor)
  listing = sdoml.list_frames(str(store))
  assert [ref.index for ref, _ in listing.frames] == [0, 1, 2] and not listing.bad
  fits_frames = sorted(
    (aia.read_frame(p, image_size=64, accept_synthetic=True) for p in paths), key=lambda f: f.time
  )
  for (ref, time), want, factor in zip(listing.frames, fits_frames, deg_cor, strict=True):
    got = sdoml.read_frame(ref, image_size=64, accept_synthetic=True)
    assert got.time == time == want.time and got.exposure == want.exposure
    np.testing.assert_allclose(got.image, want.image / factor, rtol=1e-5, atol=1e-3)
    assert any(f"DEG_COR={factor:g}" in note for note in got.notes)


def _edit_bad(i, keywords, image):
  """Frame i broken the way the FITS tests break files; the reason each must give."""
  if i == 0:
    keywords["WAVELNTH"] = 193
  elif i == 1:
    image = image.copy()
    image[image.shape[0] // 2, image.shape[1] // 2] = np.nan
  elif i == 2:
    del keywords["DEG_COR"]
  elif i == 3:
    keywords["PIXLUNIT"] = "DN"
  elif i == 4:
    del keywords["T_OBS"], keywords["DATE-OBS"]
  return image


def test_bad_frames_raise_bad_frame_error_with_the_fits_reasons(fits_dir, tmp_path):
  store = write_sdoml_store(_fits_files(fits_dir), tmp_path / "bad", edit=_edit_bad)
  listing = sdoml.list_frames(str(store))
  assert [(e.reason, e.path) for e in listing.bad] == [
    ("missing_keyword", "sdoml/2011/171A/000004")
  ]
  reasons = {}
  for ref, _ in listing.frames:
    try:
      sdoml.read_frame(ref, image_size=32, accept_synthetic=True)
      reasons[ref.index] = "ok"
    except aia.BadFrameError as e:
      reasons[ref.index] = e.reason
  assert reasons == {
    0: "wavelength",
    1: "non_finite",
    2: "missing_keyword",
    3: "bad_keyword",
    5: "ok",
  }
  # The demo's frames say they are simulated: refused unless accepted, as by the FITS reader.
  with pytest.raises(aia.BadFrameError, match="SIMULATE") as caught:
    sdoml.read_frame(listing.frames[-1][0], image_size=32)
  assert caught.value.reason == "synthetic"


def test_spec_file_years_and_cadence(fits_dir, tmp_path):
  write_sdoml_store(_fits_files(fits_dir), tmp_path / "stores" / "aia.zarr")
  (tmp_path / "sdoml.json").write_text(json.dumps({"store": "stores/aia.zarr", "years": [2011]}))
  spec = sdoml.find_store(tmp_path)
  assert spec["store"] == str((tmp_path / "stores" / "aia.zarr").resolve())
  every = sdoml.list_frames(spec["store"], years=spec["years"])
  times = sorted(t for _, t in every.frames)
  # A 40-day cadence keeps the earliest frame of each 40-day bin since 2010-01-01.
  thinned = sdoml.list_frames(spec["store"], cadence_minutes=40 * 1440)
  bins = {}
  for t in times:
    bins.setdefault((t - sdoml.datetime.datetime(2010, 1, 1)).days // 40, t)
  assert sorted(t for _, t in thinned.frames) == sorted(bins.values())
  assert thinned.provenance["frames_thinned"] == len(times) - len(bins)
  with pytest.raises(errors.MissingInputError, match="no year group"):
    sdoml.list_frames(spec["store"], years=[2012])
  assert sdoml.find_store(tmp_path / "stores") is None


def test_gs_store_without_gcsfs_says_what_to_install():
  if importlib.util.find_spec("gcsfs") is not None:
    pytest.skip("gcsfs is installed: the store would be opened over the network")
  with pytest.raises(errors.MissingInputError, match="pip install gcsfs"):
    sdoml.open_store("gs://fdl-sdoml-v2/sdomlv2_small.zarr")


@pytest.mark.parametrize(
  "spec, match",
  [
    ({"years": [2011]}, "PATH_OR_URL"),
    ({"store": "x", "year": [2011]}, "unknown keys"),
    ({"store": "x", "years": "2011"}, "years="),
    ({"store": "x", "cadence_minutes": -6}, "cadence_minutes="),
  ],
)
def test_bad_spec_names_the_key(tmp_path, spec, match):
  (tmp_path / "sdoml.json").write_text(json.dumps(spec))
  with pytest.raises(errors.InputMismatchError, match=match):
    sdoml.find_store(tmp_path)


def test_a_group_without_year_groups_is_not_an_sdoml_store(tmp_path):
  zarr.open_group(str(tmp_path / "store"), mode="w", zarr_format=2).create_group("aia")
  with pytest.raises(errors.InputMismatchError, match="no year group"):
    sdoml.list_frames(str(tmp_path / "store"))
