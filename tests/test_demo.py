"""solar_jax.data.demo: a SIMULATED archive built from sunpy's real AIA 171 Å frame."""

import datetime
import hashlib
import json
import warnings

import numpy as np
import pytest
from astropy.io import fits

from solar_jax.data import aia, demo, flare_list, frame_facts, goes, splits
from solar_jax.data.demo import plan as demo_plan
from solar_jax.data.demo import render as demo_render


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
  out = tmp_path_factory.mktemp("demo")
  summary = demo.write_demo_archive(
    out, num_frames=15, months=3, start="2011-06-01", seed=5, xrs_cadence_s=120
  )
  return out, summary


def test_reader_accepts_every_frame_and_labels_match_the_plan(archive):
  out, summary = archive
  flares = flare_list.read_flare_list(out / "flares.csv")
  assert not flares.skipped and len(flares) == summary["num_flares"]
  xrs = goes.read_xrs(sorted((out / "goes").glob("*.fits")))
  index = flare_list.FlareIndex(flares)
  rows = []
  for record in summary["frames"]:
    frame = aia.read_frame(out / record["file"], image_size=64, accept_synthetic=True)
    assert frame.time.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] == record["time"]
    rows.append(frame_facts.frame_facts(frame.time, index, xrs, association_lag_minutes=120))
  facts = {k: np.array([r[k] for r in rows]) for k in frame_facts.FIELDS}
  facts["time"] = np.array([r["time"] for r in summary["frames"]])
  # The manifest's letters are the intended classes on the true scale.
  labels, _ = frame_facts.labels(facts, "goes_class", 30.0, class_scale="true")
  flaring = frame_facts.in_flare(facts, 30.0)
  for record, label, inside in zip(summary["frames"], labels, flaring):
    # The plan's true fluxes come back through the SWPC-scaled list and SDAC files.
    assert (goes.CLASS_LETTERS[label], inside) == (record["letter"], record["flaring"]), record[
      "file"
    ]


def test_every_file_says_it_is_simulated(archive):
  out, _ = archive
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for path in aia.find_fits_files(out / "aia"):
      with fits.open(path) as hdul:
        assert any(h.header.get("SIMULATE") is True for h in hdul), path
    for path in (out / "goes").glob("*.fits"):
      assert fits.getheader(path)["SIMULATE"] is True
  rows = (out / "flares.csv").read_text().splitlines()
  assert rows[0].endswith(",simulated") and all(r.endswith(",SIMULATED") for r in rows[1:])


def test_flaring_frames_are_brighter_than_quiet_ones(archive):
  out, summary = archive
  peak = {c: [] for c in demo.CLASSES}
  for record in summary["frames"]:
    peak[record["letter"]].append(
      aia.read_frame(out / record["file"], image_size=128, accept_synthetic=True).image.max()
    )
  quiet_max = max(max(peak["A"] + peak["B"], default=0.0), 1.0)
  assert min(peak["X"]) > min(peak["M"]) > 0.5 * quiet_max
  assert min(peak["X"]) > 2.0 * quiet_max


def test_deterministic_for_a_seed(tmp_path):
  def digest(path):
    demo.write_demo_archive(
      path, num_frames=3, months=3, start="2011-06-01", seed=9, xrs_cadence_s=240
    )
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return {
      p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files
    }

  assert digest(tmp_path / "a") == digest(tmp_path / "b")


def test_disk_coordinates_agree_with_sunpy():
  import astropy.units as u
  import sunpy.map
  from sunpy.coordinates import HeliographicStonyhurst

  data, header = demo_render.load_real_frame()
  _, _, _, lat, lon, on_disk = demo_render.disk_coordinates(header, data.shape)
  rows, cols = np.nonzero(on_disk)
  pick = np.linspace(0, len(rows) - 1, 200).astype(int)
  rows, cols = rows[pick], cols[pick]
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    smap = sunpy.map.Map(data, header)
    world = smap.pixel_to_world(cols * u.pix, rows * u.pix).transform_to(
      HeliographicStonyhurst(obstime=smap.date)
    )
  mu = np.cos(np.radians(np.hypot(np.degrees(lat[rows, cols]), np.degrees(lon[rows, cols]))))
  inner = mu > 0.5
  np.testing.assert_allclose(np.degrees(lat[rows, cols])[inner], world.lat.deg[inner], atol=0.6)
  np.testing.assert_allclose(np.degrees(lon[rows, cols])[inner], world.lon.deg[inner], atol=0.6)


def test_default_plan_is_imbalanced_and_every_split_has_every_class():
  _, frames, _, _ = demo_plan.plan_archive(480, datetime.datetime(2011, 1, 1), 12, 0, num_regions=4)
  counts = {c: sum(f.letter == c for f in frames) for c in demo.CLASSES}
  assert counts["X"] < counts["M"] < min(counts["A"], counts["B"], counts["C"])
  times = np.array([f.time for f in frames], dtype="datetime64[ms]")
  codes = splits.assign(times, fold=0, num_folds=10, embargo_days=14)
  for code, split in enumerate(splits.SPLITS):
    letters = {f.letter for f, c in zip(frames, codes) if c == code}
    assert letters == set(demo.CLASSES), split


@pytest.mark.parametrize(
  "num_frames, months, start, seed", [(600, 12, "2011-01-01", 0), (48, 6, "2011-04-01", 4)]
)
def test_every_month_and_split_has_issuance_frames(num_frames, months, start, seed):
  """The quickstart's and conftest's demos: a forecast task has frames in every split."""
  start = datetime.datetime.fromisoformat(start)
  _, frames, _, _ = demo_plan.plan_archive(num_frames, start, months, seed, num_regions=4)
  times = np.array([f.time for f in frames], dtype="datetime64[ms]")
  issuance = frame_facts.issuance_frames(times)
  # Quiet frames lie exactly on a grid hour (a flaring frame may lie near one too).
  of_day = (times - times.astype("datetime64[D]")).astype(np.int64)
  on_grid = np.isin(of_day, [h * 3_600_000 for h in frame_facts.ISSUANCE_HOURS])
  assert on_grid.sum() > num_frames // 2 and (issuance >= on_grid).all()
  assert not any(f.flaring for f, g in zip(frames, on_grid) if g)
  assert len(set(splits.month_index(times[on_grid]))) == months
  codes = splits.assign(times, fold=0, num_folds=10, embargo_days=14)
  for code, split in enumerate(splits.SPLITS):
    assert (issuance & (codes == code)).sum() >= 3, split


def test_manifest_is_written(archive):
  out, summary = archive
  assert (
    json.loads((out / "demo_manifest.json").read_text())["class_counts"] == summary["class_counts"]
  )
