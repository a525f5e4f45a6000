"""Active-region identity: a region returning a rotation later at its Carrington position merges."""

import datetime
import json

import numpy as np
import pytest
from astropy.time import Time
from etils import epath
from sunpy.coordinates import sun

from solar_jax import report
from solar_jax.classifier import real_data
from solar_jax.data import flare_list, frame_facts, regions

T0 = datetime.datetime(2014, 9, 20)


def _region(ar, first_day, carrington_lon, lat, days=8):
  """Flares of region ``ar`` once a day for ``days`` days from ``first_day``, at a fixed
  Carrington position (Stonyhurst longitude = Carrington - L0, computed with sunpy)."""
  peaks = [T0 + datetime.timedelta(days=first_day + d, hours=6) for d in range(days)]
  lons = (carrington_lon - sun.L0(Time(peaks)).to_value("deg") + 180.0) % 360.0 - 180.0
  flares = []
  for d, (peak, lon) in enumerate(zip(peaks, lons)):
    flares.append(
      flare_list.Flare(
        f"{ar}-{d}", peak, peak, peak + datetime.timedelta(minutes=20), "C1.0", 1e-6 / 0.7,
        noaa_ar=ar, hgs_lat=lat, hgs_lon=lon,
      )
    )  # fmt: skip
  return flares


def test_a_region_returning_a_rotation_later_merges_and_a_simultaneous_one_does_not():
  flares = [
    *_region(100, 0, 200.0, 15.0),
    *_region(400, 0, 20.0, 15.0),  # on the disk with 100, elsewhere
    *_region(200, 27, 203.0, 16.0),  # 100 come back: one rotation, 3° and 1° away
    *_region(300, 28, 208.0, 8.0),  # beside 200, also within 100's tolerances
    *_region(500, 55, 199.0, 14.0),  # 100 again, two rotations later
  ]
  ids = regions.region_ids(flares)
  assert ids[200] == 100 and ids[500] == 100
  # 300 is on the disk with 200: never one region with it, also not through 100.
  assert ids[300] == 300 and ids[400] == 400
  # The stored-fact path gives the same regions (frames of those flares).
  got = regions.frame_regions(
    [f.noaa_ar for f in flares],
    [frame_facts.iso(f.peak) for f in flares],
    [f.hgs_lat for f in flares],
    [f.hgs_lon for f in flares],
  )
  np.testing.assert_array_equal(got, [ids[f.noaa_ar] for f in flares])


def test_carrington_l0_from_a_daily_grid_agrees_with_sunpy():
  peaks = np.array(["2011-02-15T01:44:00", "2014-10-24T21:41:00", "2017-09-06T11:53:00"])
  days = peaks.astype("datetime64[ms]").astype(np.int64) / 86_400_000.0
  want = sun.L0(Time(list(peaks))).to_value("deg")
  diff = (regions.carrington_l0(days) - want + 180.0) % 360.0 - 180.0
  assert np.abs(diff).max() < 0.01


def test_bootstrap_units_regions_events_and_day_blocks():
  facts = {
    "flare_event_id": np.array(["e1", "e1", "e2", "", "", "e3"], object),
    "noaa_ar": np.array([12192, 12192, 0, 0, 0, 12192]),
    "flare_peak": np.array(["2014-10-24T21:41:00.000"] * 3 + [""] * 2 + ["2014-10-25T17:08:00"]),
  }
  groups = np.array(["e1", "e1", "e2", "day:2014-10-26", "day:2014-10-27", "e3"], object)
  units = frame_facts.bootstrap_units(facts, groups)
  days = np.array(["2014-10-26", "2014-10-27"], "datetime64[D]").astype(np.int64)
  blocks = (days // 3 * 3).astype("datetime64[D]")
  assert list(units) == [
    "region:12192", "region:12192", "e2", f"days:{blocks[0]}", f"days:{blocks[1]}",
    "region:12192",
  ]  # fmt: skip


def test_the_cycle_24_list_parses_positions(shared_flare_list, tmp_path):
  """The real list: positions are parsed; AR 12192 and its return 12209 are one region."""
  lines = shared_flare_list.read_text().splitlines()
  # Its rows of Sep-Dec 2014 only (reading all 8,606 rows takes seconds).
  keep = [lines[0]] + [
    r for r in lines[1:] if ",2014-09" <= r[r.index(",") : 9 + r.index(",")] <= ",2014-12"
  ]
  path = tmp_path / "sc24_2014.csv"
  path.write_text("\n".join(keep) + "\n")
  around = flare_list.read_flare_list(path, provenance="swpc")
  assert len(around) > 300
  assert np.isfinite([f.hgs_lon for f in around if f.noaa_ar]).mean() > 0.9
  ids = regions.region_ids(around)
  # AR 12192 (Oct 2014, the source of most X flares of fold 7) returned as 12209 (Nov 2014).
  assert ids[12209] == ids[12192]
  assert len(set(ids.values())) < len(ids)
  with pytest.raises(KeyError):
    ids[0]


def test_recurrent_overlap_of_a_returning_region_and_the_splits_path(tmp_path):
  # Training: regions 100 and 400; test: 200 (100 returned) and 300 (new, elsewhere).
  flares = [
    *_region(100, 0, 200.0, 15.0),
    *_region(400, 0, 20.0, -15.0),
    *_region(200, 27, 203.0, 16.0),
    *_region(300, 28, 110.0, -20.0),
  ]
  ar = np.array([f.noaa_ar for f in flares])
  peak = np.array([frame_facts.iso(f.peak) for f in flares], object)
  lat, lon = np.array([f.hgs_lat for f in flares]), np.array([f.hgs_lon for f in flares])
  test = (ar == 200) | (ar == 300)
  weights = np.where(ar == 300, 3.0, 1.0)  # 300's flares weigh 3 frames each
  got = regions.recurrent_overlap(ar, peak, lat, lon, test, ~test, weights=weights)
  assert got["share"] == pytest.approx(8 / 32) and got["test_regions"] == 2
  assert got["test_flaring_frames"] == 32 and 0.0 <= got["chance"] < got["share"]

  # The classifier's path: splits of one frame per flare, its group its own flare.
  def split(mask):
    return {
      "group": np.array([f.event_id for f, m in zip(flares, mask) if m], object),
      "flare_event_id": np.array([f.event_id for f, m in zip(flares, mask) if m], object),
      "noaa_ar": ar[mask],
      "flare_peak": peak[mask],
      "flare_hgs_lat": lat[mask],
      "flare_hgs_lon": lon[mask],
    }

  both = real_data.recurrent_regions(split(~test), split(test))
  assert both["share"] == pytest.approx(0.5) and both["test_regions"] == 2
  # metrics.json's data.recurrent_regions is put in words in the report's data paragraph.
  path = tmp_path / "classifier" / "metrics.json"
  path.parent.mkdir()
  path.write_text(json.dumps({"data": {"recurrent_regions": both}}))
  (line,) = report.recurrent_line(epath.Path(tmp_path))
  assert line.startswith("Recurrent active regions: 50.0% of the test flaring frames (16 frames")
  assert f"chance level {both['chance']:.1%}" in line
