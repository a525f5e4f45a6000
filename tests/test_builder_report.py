"""The sdo_aia171 builder on a manual dir with good and bad files of every kind.

The manual dir is written by solar_jax.data.demo from sunpy's real AIA frame
(SIMULATED archive) with --with_bad: truncated and non-FITS files, wrong
wavelength, QUALITY != 0, zero exposure, a missing keyword, NaN on the disk, a
duplicate time and a time without any label.
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from solar_jax.data import build_report, demo, flare_list, frame_facts, goes, regions, splits
from tfds_builders.sdo_aia171 import sdo_aia171_dataset_builder as sdo

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def manual_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("manual")
  demo.write_demo_archive(
    out, num_frames=6, months=3, start="2011-06-01", seed=2, with_bad=True, xrs_cadence_s=240
  )
  return out


def build(manual_dir, data_dir, beam=False):
  kwargs = {}
  if beam:
    import apache_beam as beam_lib

    kwargs["beam_options"] = beam_lib.options.pipeline_options.PipelineOptions(
      ["--runner=DirectRunner"]
    )
  builder = sdo.Builder(config="64", data_dir=str(data_dir))
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir), **kwargs)
  )
  return builder


def examples_by_source(builder):
  out = {}
  for split in builder.info.splits:
    for ex in builder.as_dataset(split=split).as_numpy_iterator():
      out[ex["source"].decode()] = dict(ex, split=split)
  return out


def report_of(builder):
  return json.loads((builder.data_path / build_report.REPORT_NAME).read_text())


@pytest.fixture(scope="module")
def clean_build(manual_dir, tmp_path_factory):
  return build(manual_dir, tmp_path_factory.mktemp("tfds_clean"))


def test_report_names_every_bad_file_with_its_reason(clean_build, manual_dir):
  manifest = json.loads((manual_dir / "demo_manifest.json").read_text())
  report = report_of(clean_build)
  got = {s["file"]: s["reason"] for s in report["skipped"]["files"]}
  want = {b["file"]: b["reason"] for b in manifest["bad_files"]}
  assert got == want
  assert len(want) == 8 and report["skipped"]["count"] == 8
  # The report sits in the final version dir, beside dataset_info.json.
  assert (clean_build.data_path / "dataset_info.json").exists()
  assert not (clean_build.data_path / "_build_report_parts").exists()


def test_every_good_file_is_an_example_with_the_intended_label(clean_build, manual_dir):
  manifest = json.loads((manual_dir / "demo_manifest.json").read_text())
  examples = examples_by_source(clean_build)
  want = {pathlib.Path(f["file"]).name: f for f in manifest["frames"]}
  assert set(examples) == set(want)
  for name, ex in examples.items():
    facts = {k: np.array([ex[k]]) for k in (*frame_facts.FIELDS, "time")}
    # The manifest's letters are the intended classes on the true scale.
    label, _ = frame_facts.labels(facts, "goes_class", 30.0, class_scale="true")
    assert goes.CLASS_LETTERS[label[0]] == want[name]["letter"], name
    assert bool(frame_facts.in_flare(facts, 30.0)[0]) == want[name]["flaring"]
    assert ex["time"].decode() == want[name]["time"]
    assert ex["image"].shape == (64, 64, 1) and np.isfinite(ex["image"]).all()
    month = splits.month_index([want[name]["time"]])[0]
    assert ex["split"] == f"block{month % 10}"
  # Report counts agree with what TFDS stored.
  report = report_of(clean_build)
  for split, info in clean_build.info.splits.items():
    assert report["blocks"][split] == info.num_examples
  assert report["simulated"] and clean_build.info.metadata["simulated"]
  lines = build_report.format_report(report).splitlines()
  assert lines[0] == build_report.SIMULATED_LINE


def test_report_gives_every_fold_with_events_embargo_and_ar_overlap(clean_build):
  """The fold tables agree with splits.summary recomputed from the stored records."""
  report = report_of(clean_build)
  examples = list(examples_by_source(clean_build).values())
  facts = {k: np.array([e[k] for e in examples]) for k in (*frame_facts.FIELDS, "time")}
  labels, groups = frame_facts.labels(facts, build_report.REPORT_LABEL, 30.0)
  flare_ids = np.where(frame_facts.in_flare(facts, 30.0), facts["flare_event_id"], b"")
  flare_ids = np.array([f.decode() for f in flare_ids], dtype=object)
  assert sorted(report["folds"]) == [str(f) for f in range(10)]
  for fold in range(10):
    codes = splits.assign(facts["time"], fold=fold, num_folds=10, embargo_days=14)
    want = splits.summary(codes, labels, groups, facts["noaa_ar"], flare_ids, goes.CLASS_LETTERS)
    got = dict(report["folds"][str(fold)])
    overlap = got.pop("region_overlap")
    assert got == json.loads(json.dumps(want)), fold
    # The recurrent-region overlap by Carrington position, test and validation vs train.
    ar = np.where(flare_ids != "", facts["noaa_ar"], 0)
    lat, lon = (np.array([np.nan if v is None else v for v in facts[k]], float)
                for k in ("flare_hgs_lat", "flare_hgs_lon"))  # fmt: skip
    for split, code in (("test", splits.TEST), ("validation", splits.VALIDATION)):
      again = regions.recurrent_overlap(
        ar, facts["flare_peak"], lat, lon, codes == code, codes == splits.TRAIN, seed=fold
      )
      assert overlap[split]["share"] == again["share"], (fold, split)
      assert overlap[split]["chance"] == again["chance"], (fold, split)
  assert set(report["folds"]["0"]["ar_overlap"]) == {"test_events_with_ar", "in_train", "share"}
  assert "also flared in train: test " in build_report.format_report(report)
  # The forecast label's frames: issuance frames only, counted as on read.
  forecast, _ = frame_facts.labels(facts, "max_class_next_24h", 30.0)
  codes = splits.assign(facts["time"], fold=0, num_folds=10, embargo_days=14)
  issuance = frame_facts.issuance_frames(facts["time"])
  assert not (forecast[~issuance] >= 0).any()
  assert report["forecast"]["issuance_frames"] == issuance.sum()
  assert report["forecast"]["fold0"] == {
    s: int(np.sum((codes == i) & (forecast >= 0))) for i, s in enumerate(splits.SPLITS)
  }
  assert "are issuance frames; fold 0 labelled" in build_report.format_report(report)


@pytest.mark.slow
@pytest.mark.long
def test_beam_direct_runner_gives_the_same_dataset_and_report(clean_build, manual_dir, tmp_path):
  beam_build = build(manual_dir, tmp_path, beam=True)
  a, b = examples_by_source(clean_build), examples_by_source(beam_build)
  assert set(a) == set(b)
  for name in a:
    np.testing.assert_array_equal(a[name]["image"], b[name]["image"])
    assert (a[name]["flare_event_id"], a[name]["split"]) == (
      b[name]["flare_event_id"],
      b[name]["split"],
    )
    assert a[name]["goes_flux"] == b[name]["goes_flux"] or np.isnan(a[name]["goes_flux"])
  ra, rb = report_of(clean_build), report_of(beam_build)
  assert rb["beam"] and not ra["beam"]
  assert ra["folds"] == rb["folds"] and ra["skipped"] == rb["skipped"]


def test_unreadable_flare_list_is_an_error_naming_the_file(manual_dir, tmp_path):
  bad = tmp_path / "manual"
  shutil.copytree(manual_dir, bad)
  (bad / "flares.csv").write_text("this,is,not\na,flare,list\n")
  with pytest.raises(flare_list.FlareListError, match="flares.csv"):
    build(bad, tmp_path / "tfds")


_KILLED_BUILD = """
import pathlib, sys, time
import tensorflow_datasets as tfds
from tfds_builders.sdo_aia171 import sdo_aia171_dataset_builder as sdo
manual, data_dir, marker = sys.argv[1:4]
real = sdo.process_file
calls = []
def slow(item, **kw):
  calls.append(item)
  if len(calls) == 3:  # half-way through the files: tell the test, then hang
    pathlib.Path(marker).write_text("started")
    time.sleep(600)
  return real(item, **kw)
sdo.process_file = slow
sdo.Builder(config="64", data_dir=data_dir).download_and_prepare(
  download_config=tfds.download.DownloadConfig(manual_dir=manual))
"""


@pytest.mark.slow
@pytest.mark.long
def test_killed_build_restarts_and_equals_a_clean_build(clean_build, manual_dir, tmp_path):
  data_dir, marker = tmp_path / "tfds", tmp_path / "marker"
  env = dict(os.environ, PYTHONPATH=str(REPO))
  proc = subprocess.Popen(
    [sys.executable, "-c", _KILLED_BUILD, str(manual_dir), str(data_dir), str(marker)],
    env=env,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  try:
    deadline = time.time() + 120
    while not marker.exists():
      assert proc.poll() is None and time.time() < deadline, "the build did not start"
      time.sleep(0.2)
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  version_dir = data_dir / "sdo_aia171" / "64" / str(sdo.Builder.VERSION)
  assert not version_dir.exists()  # only TFDS's incomplete dir was left
  restarted = build(manual_dir, data_dir)
  a, b = examples_by_source(clean_build), examples_by_source(restarted)
  assert set(a) == set(b)
  for name in a:
    np.testing.assert_array_equal(a[name]["image"], b[name]["image"])
  ra, rb = report_of(clean_build), report_of(restarted)
  assert ra["folds"] == rb["folds"] and ra["skipped"] == rb["skipped"]


def test_report_gives_the_lists_events_per_class_on_both_scales(clean_build, manual_dir):
  """SWPC scale: the demo list's published classes; true scale: published / 0.7 (2011)."""
  import csv
  import decimal

  with open(manual_dir / "flares.csv") as f:
    published = [row["goes_class"] for row in csv.DictReader(f)]
  edges = {c: decimal.Decimal(f"1e-{8 - i}") for i, c in enumerate(goes.CLASS_LETTERS)}

  def letter(flux):
    return max((c for c in goes.CLASS_LETTERS if flux >= edges[c]), key=edges.get, default="A")

  fluxes = [decimal.Decimal(c[1:]) * edges[c[0]] for c in published]
  want = {
    scale: {c: sum(letter(flux / divisor) == c for flux in fluxes) for c in goes.CLASS_LETTERS}
    for scale, divisor in (("swpc", 1), ("true", decimal.Decimal("0.7")))
  }
  report = report_of(clean_build)
  entry = report["flare_list"]
  assert entry["merged_duplicates"] == 0 and entry["provenance"] == {"swpc": len(published)}
  assert entry["events_per_class"] == want
  assert want["swpc"] != want["true"]  # the demo has flares the two scales class apart
  assert clean_build.info.metadata["events_per_class"] == want
  assert build_report.events_line(want) in build_report.format_report(report)
