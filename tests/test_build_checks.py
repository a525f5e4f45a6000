"""The sdo_aia171 builder's checks of its inputs (issues 27 and 31, data side).

Flare-list rows out of order or too long, a dark frame, a build that keeps no frame,
a malformed goes/primary.csv, a metadata.json without num_folds, and the degradation
correction of a real archive (sunpy's real AIA 171 Å level-1 frame) versus a simulated
one. Demo archives are SIMULATED (solar_jax.data.demo), the real frame and flare list
are real.
"""

import csv
import datetime
import json
import pathlib
import shutil
import types

import numpy as np
import pytest
import tensorflow_datasets as tfds
from astropy.io import fits

from solar_jax import errors
from solar_jax.data import aia, build_report, demo, frame_facts, goes, input_pipeline, resolve
from tfds_builders.sdo_aia171 import sdo_aia171_dataset_builder as sdo

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
pytestmark = pytest.mark.filterwarnings("ignore:.*BLANK.*")


def _build(manual, data_dir, config="64"):
  builder = sdo.Builder(config=config, data_dir=str(data_dir))
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual), compute_stats=tfds.download.ComputeStatsMode.SKIP
    )
  )
  return builder


def _labels_by_source(builder):
  out = {}
  for split in builder.info.splits:
    for ex in builder.as_dataset(split=split).as_numpy_iterator():
      facts = {k: np.array([ex[k]]) for k in (*frame_facts.FIELDS, "time")}
      # On the true scale: the demo manifest's letters are the intended true classes.
      label, _ = frame_facts.labels(facts, "goes_class", 30.0, class_scale="true")
      out[ex["source"].decode()] = goes.CLASS_LETTERS[label[0]]
  return out


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("demo")
  manifest = demo.write_demo_archive(
    out, num_frames=10, months=3, start="2011-06-01", seed=2, xrs_cadence_s=240
  )
  return out, manifest


def _copy(demo_dir, tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(demo_dir, manual)
  return manual


def _flare_row(template: dict, start, peak, end, goes_class: str) -> dict:
  fmt = "%Y-%m-%d %H:%M:%S"
  return dict(
    template,
    event_starttime=start.strftime(fmt),
    event_peaktime=peak.strftime(fmt),
    event_endtime=end.strftime(fmt),
    goes_class=goes_class,
    goes_class_ind=goes_class[0],
    goes_class_val=str(goes.class_to_flux(goes_class)),
  )


def _dark_copy(src: pathlib.Path, dst: pathlib.Path, seconds: int) -> None:
  """A copy of a demo frame with IMG_TYPE = 'DARK' and its time moved by ``seconds``."""
  with fits.open(src) as hdul:
    hdul = fits.HDUList([h.copy() for h in hdul])
  for hdu in hdul:
    if "T_OBS" in hdu.header:
      t = datetime.datetime.fromisoformat(hdu.header["T_OBS"].rstrip("Z")[:19])
      hdu.header["T_OBS"] = (t + datetime.timedelta(seconds=seconds)).isoformat() + ".00Z"
      hdu.header["IMG_TYPE"] = "DARK"
  dst.parent.mkdir(parents=True, exist_ok=True)
  hdul.writeto(dst)


@pytest.fixture(scope="module")
def edited_build(demo_dir, tmp_path_factory):
  """The demo with four rows added to its flare list and one dark frame, built."""
  demo_path, manifest = demo_dir
  manual = _copy(demo_path, tmp_path_factory.mktemp("edited"))
  quiet = next(f for f in manifest["frames"] if not f["flaring"])
  frame = datetime.datetime.fromisoformat(quiet["time"])
  with open(manual / "flares.csv", newline="") as f:
    reader = csv.DictReader(f)
    fields, rows = reader.fieldnames, list(reader)
  hour, day = datetime.timedelta(hours=1), datetime.timedelta(days=1)
  month = 31 * day
  quiet_day = datetime.datetime.combine(frame.date(), datetime.time()) - 10 * day
  added = [
    # X1.3, 4 h before the quiet frame, its end typed a month late.
    _flare_row(rows[0], frame - 4.5 * hour, frame - 4 * hour, frame - 3.6 * hour + month, "X1.3"),
    # A midnight wrap: start 23:50, end '00:05' of the start's day.
    _flare_row(
      rows[0],
      quiet_day + 23.8 * hour,
      quiet_day + 23.9 * hour,
      quiet_day + 0.08 * hour,
      "C1.0",
    ),
    # Peak after the end.
    _flare_row(rows[0], quiet_day + 5 * hour, quiet_day + 7 * hour, quiet_day + 6 * hour, "C2.0"),
  ]
  with open(manual / "flares.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fields)
    writer.writeheader()
    writer.writerows(rows + added)
  frames = sorted((manual / "aia").rglob("*.fits"))
  _dark_copy(frames[0], manual / "aia" / "dark" / "dark.fits", seconds=90)
  builder = _build(manual, tmp_path_factory.mktemp("tfds"))
  return builder, manifest, quiet, len(rows)


def test_flare_rows_out_of_order_are_repaired_or_skipped_and_counted(edited_build):
  builder, manifest, quiet, listed = edited_build
  report = json.loads((builder.data_path / build_report.REPORT_NAME).read_text())
  entry = report["flare_list"]
  assert entry["rows"] == listed + 3 and entry["flares"] == listed + 1
  assert entry["skipped_by_reason"] == {"bad_order": 1, "too_long": 1}
  assert [r["row"] for r in entry["skipped"]] == [listed + 1, listed + 3]
  assert entry["repaired_rows"] == 1 and entry["repaired"][0]["row"] == listed + 2
  summary = build_report.format_report(report)
  assert "1 rows repaired" in summary and "too_long=1" in summary and "bad_order=1" in summary
  # The quiet frame 4 h after the typed X1.3 keeps its own label (it was X).
  labels = _labels_by_source(builder)
  assert labels[pathlib.Path(quiet["file"]).name] == quiet["letter"] != "X"
  want = {pathlib.Path(f["file"]).name: f["letter"] for f in manifest["frames"]}
  assert labels == want


def test_a_dark_frame_is_skipped_and_reported(edited_build):
  builder = edited_build[0]
  report = json.loads((builder.data_path / build_report.REPORT_NAME).read_text())
  skipped = {s["file"]: (s["reason"], s["detail"]) for s in report["skipped"]["files"]}
  assert skipped == {
    "aia/dark/dark.fits": ("img_type", "IMG_TYPE='DARK': only LIGHT frames show the Sun")
  }
  assert "dark.fits" not in _labels_by_source(builder)
  # A simulated archive: no degradation to correct, as before.
  assert builder.info.metadata["simulated"] and builder.info.metadata["degradation"] is False


def test_a_build_that_keeps_no_frame_is_an_error_naming_the_cause(demo_dir, tmp_path):
  manual = _copy(demo_dir[0], tmp_path)
  for path in sorted((manual / "aia").rglob("*.fits")):
    _dark_copy(path, path.with_name("dark_" + path.name), seconds=0)
    path.unlink()
  with pytest.raises(
    build_report.NoFramesError,
    match=r"stored split block\d \(a month block\): no frame kept, all \d+ files were skipped \(img_type=\d+\); e\.g\. aia/.*dark_",
  ) as info:
    _build(manual, tmp_path / "tfds")
  assert isinstance(info.value, errors.UserError) and "\n" not in str(info.value)
  assert not list((tmp_path / "tfds").rglob("dataset_info.json"))


@pytest.mark.parametrize(
  "text, where",
  [
    ("start,end,satellite\n2011-06-01,2011-06-30,15\n2011-07-01,2011-07-31,fifteen\n", "line 3"),
    ("start,end,satellite\n2011-06-31,2011-07-30,15\n", "line 2"),
    ("start,end,satellite\n2011-07-30,2011-06-01,15\n", "line 2"),
    ("first,last,satellite\n2011-06-01,2011-06-30,15\n", "line 1: no column start, end"),
  ],
)
def test_a_malformed_goes_primary_csv_is_an_error_naming_file_and_line(
  demo_dir, tmp_path, text, where
):
  manual = _copy(demo_dir[0], tmp_path)
  (manual / "goes" / "primary.csv").write_text(text)
  with pytest.raises(goes.XRSError) as info:
    _build(manual, tmp_path / "tfds")
  message = str(info.value)
  assert f"primary.csv {where}" in message and "\n" not in message
  assert isinstance(info.value, errors.UserError)


def test_metadata_json_without_num_folds_is_an_error_naming_file_and_key(edited_build, tmp_path):
  builder = edited_build[0]
  data_dir = tmp_path / "tfds"
  shutil.copytree(pathlib.Path(builder.data_dir_root), data_dir)
  config = types.SimpleNamespace(
    dataset="sdo_aia171",
    builder_config="64",
    data_dir=str(data_dir),
    image_size=64,
    channels=1,
    classes=tuple(goes.CLASS_LETTERS),
    fold=0,
    cooling_lag_minutes=30.0,
    label="goes_class",
  )
  assert input_pipeline.metadata(input_pipeline.get_builder(config))["num_folds"] == 10
  path = next(data_dir.rglob("metadata.json"))
  meta = json.loads(path.read_text())
  del meta["num_folds"]
  path.write_text(json.dumps(meta))
  with pytest.raises(errors.DamagedFileError) as info:
    input_pipeline.get_builder(config)
  assert str(path) in str(info.value) and "'num_folds'" in str(info.value)
  assert resolve.dataset_provenance(config)["unreadable"] == str(info.value)


# -------------------------------------------------- degradation correction ---


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory):
  """sunpy's real AIA 171 Å level-1 frame (2011-02-15) with the real 2011 flare list."""
  import sunpy.data.test

  manual = tmp_path_factory.mktemp("real")
  (manual / "aia").mkdir()
  shutil.copy(sunpy.data.test.get_test_filepath("aia_171_level1.fits"), manual / "aia")
  shutil.copy(FIXTURES / "flare_list_sc24_2011.csv", manual / "flares.csv")
  return manual


def _aiapy_test_table():
  import aiapy

  # aiapy ships this (older, V8) response table with its tests: offline.
  return (
    pathlib.Path(aiapy.__file__).parent / "tests/data/aia_V8_20171210_050627_response_table.txt"
  )


def test_a_real_archive_without_a_degradation_table_is_refused_saying_how_to_ask(
  real_dir, tmp_path, monkeypatch
):
  import aiapy.calibrate.util

  def offline(source):
    raise ConnectionError("no network")

  monkeypatch.setattr(aiapy.calibrate.util, "get_correction_table", offline)
  aia._load_correction_table.cache_clear()
  try:
    with pytest.raises(aia.DegradationTableError) as info:
      _build(real_dir, tmp_path / "tfds")
  finally:
    aia._load_correction_table.cache_clear()
  message = str(info.value)
  assert isinstance(info.value, errors.UserError) and "\n" not in message
  assert str(real_dir / "calibration") in message
  assert (
    """--config='{"name": "64_uncorrected", "image_size": 64, "degradation": false}'""" in message
  )
  assert not list((tmp_path / "tfds").rglob("dataset_info.json"))


def test_a_real_archive_is_corrected_at_64_px_and_uncorrected_only_on_request(real_dir, tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(real_dir, manual)
  (manual / "calibration").mkdir()
  shutil.copy(_aiapy_test_table(), manual / "calibration")
  path = manual / "aia" / "aia_171_level1.fits"
  plain = aia.read_frame(path, image_size=64).image
  corrected = aia.read_frame(
    path, image_size=64, degradation=True, correction_table=_aiapy_test_table()
  ).image

  def stored(builder):
    (ex,) = [
      e for s in builder.info.splits for e in builder.as_dataset(split=s).as_numpy_iterator()
    ]
    return ex["image"][..., 0]

  builder = _build(manual, tmp_path / "tfds")
  assert builder.info.metadata["degradation"] is True and not builder.info.metadata["simulated"]
  np.testing.assert_allclose(stored(builder), corrected, rtol=1e-6)
  assert np.mean(plain) < np.mean(corrected)  # 171 Å had lost some sensitivity by 2011
  # Asked for (tfds build --config='{"name": ..., "degradation": false}'): uncorrected.
  asked = json.loads(sdo.uncorrected_config_json(sdo.Builder.BUILDER_CONFIGS[0]))
  builder = _build(manual, tmp_path / "tfds_uncorrected", config=sdo.SdoAia171Config(**asked))
  assert builder.info.metadata["degradation"] is False
  np.testing.assert_allclose(stored(builder), plain, rtol=1e-6)


def test_a_flare_list_of_unknown_provenance_stops_the_build_and_the_config_places_it(
  demo_dir, tmp_path
):
  """The demo's list without the SWPC layout's columns cannot be placed: the build stops
  naming flare_list_provenance; with it set to 'ncei' the stored flare fluxes are the
  listed ones (true already: never divided by 0.7), with 'swpc' the listed / 0.7. No
  GOES files: the flare flux is then the listed one alone (no XRS peak to refine it)."""
  demo_path, _ = demo_dir
  manual = _copy(demo_path, tmp_path)
  shutil.rmtree(manual / "goes")
  with open(manual / "flares.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  columns = ["event_starttime", "event_peaktime", "event_endtime", "goes_class", "noaa_ar"]
  with open(manual / "flares.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
  listed = {r["goes_class"]: goes.class_to_flux(r["goes_class"]) for r in rows}
  with pytest.raises(errors.UserError, match="flare_list_provenance") as info:
    _build(manual, tmp_path / "none")
  assert "\n" not in str(info.value) and "flares.csv" in str(info.value)
  for provenance, factor in (("ncei", 1.0), ("swpc", 1 / 0.7)):
    config = sdo.SdoAia171Config(name=f"64_{provenance}", flare_list_provenance=provenance)
    builder = _build(manual, tmp_path / provenance, config=config)
    flaring = [
      ex
      for split in builder.info.splits
      for ex in builder.as_dataset(split=split).as_numpy_iterator()
      if ex["flare_class"]
    ]
    assert flaring
    for ex in flaring:
      assert ex["flare_flux"] == np.float32(listed[ex["flare_class"].decode()] * factor)
    report = json.loads((builder.data_path / build_report.REPORT_NAME).read_text())
    assert report["flare_list"]["provenance"] == {provenance: len(rows)}
