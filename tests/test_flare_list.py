"""Tests of solar_jax.data.flare_list on the real cycle-24 flare list."""

import csv
import dataclasses
import datetime
import json
import pathlib

import numpy as np
import pytest

from solar_jax.data import flare_list as fl
from solar_jax.data import goes

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
EXCERPT = FIXTURES / "flare_list_sc24_excerpt.csv"
T = datetime.datetime


@pytest.fixture(scope="module")
def flares():
  return fl.read_flare_list(EXCERPT)


@pytest.fixture(scope="module")
def index(flares):
  return fl.FlareIndex(flares)


# ---------------------------------------------------------- flare lists ---


def test_read_excerpt_of_real_list(flares):
  assert len(flares) == 37 and flares.skipped == []
  assert [f.peak for f in flares] == sorted(f.peak for f in flares)
  m25 = next(f for f in flares if f.peak == T(2011, 6, 7, 6, 41))
  assert (m25.start, m25.end, m25.goes_class) == (
    T(2011, 6, 7, 6, 16),
    T(2011, 6, 7, 6, 59),
    "M2.5",
  )
  # Listed M2.5 in 2011 (SWPC scale) is 2.5e-5 / 0.7 true flux; its AR is kept.
  assert m25.peak_flux == pytest.approx(2.5e-5 / 0.7, rel=1e-12)
  assert m25.noaa_ar == 11226
  assert m25.event_id == "SOL2011-06-07T06:41:00"


def test_full_list_agrees_with_its_own_class_columns(shared_flare_list):
  flares = fl.read_flare_list(shared_flare_list)
  with open(shared_flare_list) as f:
    rows = list(csv.reader(f))[1:]
  assert len(flares) == len(rows) == 8606 and flares.skipped == []
  by_peak = {}
  for row in rows:  # row[0] is the unnamed index column
    by_peak.setdefault(row[2], []).append(row)
  for flare in flares:
    candidates = by_peak[flare.peak.strftime("%Y-%m-%d %H:%M:%S")]
    row = next(r for r in candidates if r[5] == flare.goes_class)
    published = flare.peak_flux * goes.SWPC_XRSB_SCALE  # every flare here is pre-2020
    assert goes.class_letter(published) == row[4]  # goes_class_ind
    assert published == pytest.approx(float(row[6]), rel=1e-9)  # goes_class_val
    ars = {int(r[8]) if r[8].strip() else 0 for r in candidates if r[5] == flare.goes_class}
    assert flare.noaa_ar in ars


def test_excerpt_still_matches_full_list(shared_flare_list):
  full = {(f.peak, f.goes_class, f.start, f.end) for f in fl.read_flare_list(shared_flare_list)}
  assert {(f.peak, f.goes_class, f.start, f.end) for f in fl.read_flare_list(EXCERPT)} <= full


def _hek_events(flares):
  """The excerpt's flares spelled as HEK names them (SOL ids as HEK writes them)."""
  return [
    {
      "event_starttime": f.start.isoformat(),
      "event_peaktime": f.peak.isoformat(),
      "event_endtime": f.end.isoformat(),
      "fl_goescls": f.goes_class,
      "SOL_standard": "SOL" + f.start.isoformat() + "L000C000",
      "frm_name": "SWPC",
      "hpc_x": 100.5,
    }
    for f in flares
  ]


def test_hek_json_and_csv_spellings_read_identically(flares, tmp_path):
  from astropy.table import Table
  from astropy.time import Time

  events = _hek_events(flares)
  (tmp_path / "hek.json").write_text(json.dumps({"result": events}))
  (tmp_path / "plain.json").write_text(json.dumps(events))
  # A CSV as an astropy/sunpy HEK table writes it: times as astropy Time (ISO, space).
  table = Table(rows=[[e[k] for k in events[0]] for e in events], names=list(events[0]))
  for key in ("event_starttime", "event_peaktime", "event_endtime"):
    table[key] = Time(list(table[key]))
    table[key].format = "iso"  # '2011-02-14 02:35:00.000', as sunpy's HEK table shows it
  table.write(tmp_path / "hek.csv", format="csv")
  assert " " in (tmp_path / "hek.csv").read_text().splitlines()[1]  # not the JSON spelling

  lists = [fl.read_flare_list(tmp_path / n) for n in ("hek.json", "plain.json", "hek.csv")]
  assert lists[0] == lists[1] == lists[2]
  assert lists[0][0].event_id.startswith("SOL2011-02-14T")
  # Same flares as the SWPC-style CSV, apart from the id spelling.
  strip = [(f.start, f.peak, f.end, f.goes_class, f.peak_flux) for f in flares]
  assert [(f.start, f.peak, f.end, f.goes_class, f.peak_flux) for f in lists[0]] == strip


def test_rows_with_bad_class_or_time_are_skipped_and_counted(flares, tmp_path):
  events = _hek_events(flares[:3])
  events[0]["fl_goescls"] = ""  # HEK events from non-GOES methods have no class
  events[2]["event_peaktime"] = "not a time"
  path = tmp_path / "hek.json"
  path.write_text(json.dumps({"result": events}))
  result = fl.read_flare_list(path)
  assert len(result) == 1 and result[0].goes_class == flares[1].goes_class
  assert [number for number, _ in result.skipped] == [1, 3]


def test_missing_column_and_unreadable_file_errors(tmp_path):
  path = tmp_path / "list.csv"
  path.write_text(
    "event_starttime,event_peaktime,goes_class\n2011-01-01 00:00,2011-01-01 00:05,C1\n"
  )
  with pytest.raises(fl.FlareListError, match=r"list\.csv.*event_endtime"):
    fl.read_flare_list(path)
  with pytest.raises(fl.FlareListError, match="absent.csv"):
    fl.read_flare_list(tmp_path / "absent.csv")
  (tmp_path / "bad.json").write_text("{not json")
  with pytest.raises(fl.FlareListError, match="bad.json"):
    fl.read_flare_list(tmp_path / "bad.json")


def test_flare_index_matches_brute_force(flares, index):
  rng = np.random.default_rng(0)
  base = T(2011, 2, 14)
  for minutes in rng.uniform(0, 60 * 24 * 1000, size=300):
    time = base + datetime.timedelta(minutes=float(minutes))
    window = datetime.timedelta(minutes=float(rng.uniform(0, 120)))
    expected = [f for f in flares if abs(f.peak - time) <= window]
    assert index.within(time, window) == expected


def _flare(event_id, peak_minute, goes_class, ar):
  peak = T(2011, 6, 7, 6, peak_minute)
  flux = goes.listed_true_flux(goes.class_to_flux(goes_class), peak)
  return fl.Flare(
    event_id,
    peak - datetime.timedelta(minutes=5),
    peak,
    peak + datetime.timedelta(minutes=5 + peak_minute % 3),
    goes_class,
    flux,
    ar,
  )


def test_merge_duplicates_joins_one_flare_from_several_modules():
  flares = [
    _flare("swpc", 41, "M2.5", 11226),
    _flare("other_region", 42, "C3.0", 11227),
    _flare("ssw_no_ar", 43, "M2.4", 0),
    _flare("ssw_same_ar", 44, "M2.6", 11226),
    _flare("later", 55, "M2.5", 11226),
  ]
  merged, count = fl.merge_duplicates(flares)
  assert count == 2
  by_id = {f.event_id: f for f in merged}
  assert set(by_id) == {"ssw_same_ar", "other_region", "later"}
  joined = by_id["ssw_same_ar"]  # the largest of the three reports of the M flare
  assert joined.noaa_ar == 11226 and joined.goes_class == "M2.6"
  assert joined.start == min(f.start for f in flares[:4] if f.event_id != "other_region")
  assert joined.end == max(f.end for f in (flares[0], flares[2], flares[3]))
  assert by_id["other_region"].noaa_ar == 11227
  # The real excerpt lists one flare twice (the list merges SWPC and HEK reports):
  # C7.1 without an AR peaking 04:48 and C8.3 of AR 11158 at 04:49 on 2011-02-14.
  real = fl.read_flare_list(EXCERPT)
  merged, count = fl.merge_duplicates(real)
  assert count == 1 and len(merged) == len(real) - 1
  joined = next(
    f for f in merged if f.peak.date() == datetime.date(2011, 2, 14) and f.goes_class == "C8.3"
  )
  assert (joined.noaa_ar, joined.start) == (11158, T(2011, 2, 14, 3, 24))
  assert not any(f.goes_class == "C7.1" and f.peak == T(2011, 2, 14, 4, 48) for f in merged)


def test_noaa_ar_of_hek_spelling(tmp_path):
  (tmp_path / "hek.json").write_text(
    json.dumps(
      [
        {
          "event_starttime": "2011-06-07T06:16:00",
          "event_peaktime": "2011-06-07T06:41:00",
          "event_endtime": "2011-06-07T06:59:00",
          "fl_goescls": "M2.5",
          "ar_noaanum": 11226,
        },
        {
          "event_starttime": "2011-06-07T08:16:00",
          "event_peaktime": "2011-06-07T08:41:00",
          "event_endtime": "2011-06-07T08:59:00",
          "fl_goescls": "C1.0",
          "ar_noaanum": 0,
        },
      ]
    )
  )
  flares = fl.read_flare_list(tmp_path / "hek.json")
  assert [f.noaa_ar for f in flares] == [11226, 0]


def _merge_reference(flares, minutes=6.0):
  """The first ``merge_duplicates`` (every open group scanned per event, ~n^2): the reference."""
  import math

  ordered = sorted(flares, key=lambda f: f.peak)
  window = datetime.timedelta(minutes=minutes)
  groups = []
  for flare in ordered:
    best, best_key = None, None
    for group in reversed(groups):
      if flare.peak - group[0].peak > window:
        break
      ars = {f.noaa_ar for f in group if f.noaa_ar}
      if flare.noaa_ar and ars and flare.noaa_ar not in ars:
        continue
      top = max(f.peak_flux for f in group)
      key = (
        not (flare.noaa_ar and flare.noaa_ar in ars),
        abs(math.log(flare.peak_flux / top)) if flare.peak_flux > 0 and top > 0 else math.inf,
        flare.peak - group[-1].peak,
      )
      if best_key is None or key < best_key:
        best, best_key = group, key
    if best is None:
      groups.append([flare])
    else:
      best.append(flare)
  merged = []
  for group in groups:
    top = max(group, key=lambda f: f.peak_flux)
    ars = [f.noaa_ar for f in group if f.noaa_ar]
    merged.append(
      dataclasses.replace(
        top,
        start=min(f.start for f in group),
        end=max(f.end for f in group),
        noaa_ar=ars[0] if ars else 0,
      )
    )
  merged.sort(key=lambda f: f.peak)
  return merged, len(ordered) - len(merged)


def _dense_rows(rng, n, span_s, classes, ars):
  base = T(2014, 1, 1)
  rows = []
  for i in range(n):
    peak = base + datetime.timedelta(seconds=rng.randrange(0, span_s, rng.choice([1, 30, 60])))
    goes_class = rng.choice(classes)
    rows.append(
      fl.Flare(
        f"e{i}",
        peak - datetime.timedelta(minutes=rng.randint(0, 9)),
        peak,
        peak + datetime.timedelta(minutes=rng.randint(0, 9)),
        goes_class,
        goes.class_to_flux(goes_class),
        rng.choice(ars) if ars else 10000 + i,
      )
    )
  return rows


def test_merge_duplicates_equals_the_reference_sweep(shared_flare_list):
  """The bisecting sweep makes the merges of the first implementation, on the real lists."""
  for path in (EXCERPT, FIXTURES / "flare_list_sc24_2011.csv", shared_flare_list):
    flares = fl.read_flare_list(path)
    assert fl.merge_duplicates(flares) == _merge_reference(flares), path.name
  # Dense synthetic lists with ties of every kind: equal classes (equal fluxes), classes
  # a factor 2 either side (equal |log ratio|), equal peaks, rows without an AR.
  import random

  rng = random.Random(1)
  classes = ["C1.0", "C2.0", "C4.0", "C1.1", "M1.0", "B5.0", "A0.0"]
  for _ in range(200):
    rows = _dense_rows(
      rng, rng.randint(1, 80), rng.choice([60, 600, 3600]), classes, [0, 0, 1, 2, 3]
    )
    assert fl.merge_duplicates(rows) == _merge_reference(rows)
  rows = _dense_rows(rng, 400, 300, classes, None)  # every row its own AR: nothing merges
  assert fl.merge_duplicates(rows) == _merge_reference(rows) and _merge_reference(rows)[1] == 0


def test_merge_duplicates_of_10k_rows_peaking_within_minutes(monkeypatch):
  """10k rows within 5 min: 5k flares of their own AR, each reported again without an AR.

  The first sweep compared every row without an AR with every open group (~n^2 flux
  ratios, about a minute here); the work per row must stay a few ratios (no timing).
  """
  import math
  import types

  ratios = []

  def log(x):
    ratios.append(x)
    return math.log(x)

  monkeypatch.setattr(
    fl, "math", types.SimpleNamespace(log=log, inf=math.inf, isfinite=math.isfinite)
  )
  rows = []
  base = T(2014, 1, 1)
  for i in range(5000):
    peak = base + datetime.timedelta(milliseconds=50 * i)
    minutes = datetime.timedelta(minutes=1)
    rows.append(
      fl.Flare(
        f"swpc{i}",
        peak - 5 * minutes,
        peak,
        peak + 10 * minutes,
        "C2.0",
        goes.class_to_flux("C2.0"),
        10000 + i,
      )
    )
    rows.append(
      fl.Flare(
        f"ssw{i}",
        peak - 6 * minutes,
        peak,
        peak + 12 * minutes,
        "C1.9",
        goes.class_to_flux("C1.9"),
        0,
      )
    )
  merged, count = fl.merge_duplicates(rows)
  assert count == 5000
  assert [f.event_id for f in merged] == [f"swpc{i}" for i in range(5000)]
  assert [f.noaa_ar for f in merged] == [10000 + i for i in range(5000)]
  assert all(f.end - f.start == datetime.timedelta(minutes=18) for f in merged)
  assert len(ratios) <= 20 * len(rows)
