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
  # 140 rows give a peak or end after midnight as a time on the start's day (repaired).
  assert len(flares.repaired) == 140
  for flare in flares:
    text = flare.peak.strftime("%Y-%m-%d %H:%M:%S")
    if text not in by_peak:  # a repaired peak: the list wrote it on the start's day
      text = (flare.peak - datetime.timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
      assert flare.start.date() == flare.peak.date() - datetime.timedelta(days=1)
    candidates = by_peak[text]
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


# ------------------------------------------------------- order of times ---

LIST_2011 = FIXTURES / "flare_list_sc24_2011.csv"
# The 2011 list's rows (1 = first data row) whose peak or end the list wrote as a time on
# the start's day although it came after midnight, e.g. row 158: C2.1 of 2011-03-03,
# start 23:53, peak 23:58, end '2011-03-03 00:04'.
WRAPPED_2011 = [68, 144, 158, 324, 643, 685, 748, 788, 800, 813, 907, 1044, 1073, 1107, 1197, 1204]


def test_midnight_wraps_of_the_real_2011_list_are_repaired():
  flares = fl.read_flare_list(LIST_2011)
  assert len(flares) == flares.rows == 1319 and flares.skipped == []
  assert [r.row for r in flares.repaired] == WRAPPED_2011
  assert all(f.start <= f.peak <= f.end for f in flares)
  by_start = {f.start: f for f in flares}
  c21 = by_start[T(2011, 3, 3, 23, 53)]  # end 00:04 of the next day
  assert (c21.peak, c21.end, c21.goes_class) == (T(2011, 3, 3, 23, 58), T(2011, 3, 4, 0, 4), "C2.1")
  c28 = by_start[T(2011, 2, 16, 23, 2)]  # peak and end after midnight
  assert (c28.peak, c28.end) == (T(2011, 2, 17, 0, 25), T(2011, 2, 17, 1, 7))
  assert c28.event_id == "SOL2011-02-17T00:25:00"  # the id names the repaired peak
  repaired = {r.row: r.detail for r in flares.repaired}
  assert repaired[158].startswith("midnight_wrap: line 159: event_endtime 00:04:00 before")


def _edited_2011(tmp_path, edits=(), extra=()):
  """The real 2011 list with some rows edited ({line: (old, new)}) and rows appended."""
  lines = LIST_2011.read_text().splitlines()
  for line, (old, new) in dict(edits).items():
    assert old in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
  path = tmp_path / "flares.csv"
  path.write_text("\n".join([*lines, *extra]) + "\n")
  return path


# A typo of the kind the issue reports: an X1.3 whose end went in a month late
# (2011-03-07 for 2011-02-07). Not in the real list (no flare is listed on 2011-02-07).
X13_TYPO = (
  "9001,2011-02-07 09:50:00,2011-02-07 10:20:00,2011-03-07 10:45:00,X,X1.3,1.3e-04,,11153,,,,,"
)


def test_inverted_times_and_a_month_long_flare_are_skipped_with_their_reason(tmp_path):
  path = _edited_2011(
    tmp_path,
    edits={
      # X2.2 of 2011-02-15: peak and end swapped (end 01:56 before the peak 02:06).
      48: ("01:56:00,2011-02-15 02:06:00", "02:06:00,2011-02-15 01:56:00"),
      # C1.0 of 2011-01-14 (start 12:52): an end on the day before, not a wrap.
      5: ("2011-01-14 13:25:00", "2011-01-13 13:25:00"),
      # C1.9 of 2011-01-04: a peak 19 years after its start.
      3: ("2011-01-04 03:25:00", "2030-01-04 03:25:00"),
    },
    extra=[X13_TYPO],
  )
  flares = fl.read_flare_list(path)
  skipped = {s.row: s.reason for s in flares.skipped}
  assert skipped == {2: "bad_order", 4: "bad_order", 47: "bad_order", 1320: "too_long"}
  assert "2011-03-07 10:45:00" in flares.skipped[-1].detail
  assert len(flares) == 1320 - 4 and [r.row for r in flares.repaired] == WRAPPED_2011
  assert not any(f.goes_class in ("X2.2", "X1.3") for f in flares)
  assert max(f.end - f.start for f in flares) <= fl.MAX_FLARE_DURATION


def test_the_x13_typo_no_longer_labels_a_quiet_b_frame_as_x(tmp_path):
  from solar_jax.data import frame_facts

  flares = fl.read_flare_list(_edited_2011(tmp_path, extra=[X13_TYPO]))
  index = fl.FlareIndex(fl.merge_duplicates(flares)[0])
  # A quiet day at B3 (true flux) in 1-min samples around the frame.
  times = np.arange(np.datetime64("2011-02-07T00:00"), np.datetime64("2011-02-09T00:00"))
  xrs = goes.XRSSeries(times.astype("datetime64[ns]"), np.full(times.shape, 3e-7))
  frame = T(2011, 2, 7, 14, 20)  # 4 h after the X1.3's listed peak
  facts = frame_facts.frame_facts(frame, index, xrs, association_lag_minutes=120.0)
  arrays = {k: np.array([v]) for k, v in facts.items()}
  arrays["time"] = np.array([frame_facts.iso(frame)])
  label, _ = frame_facts.labels(arrays, "goes_class", 30.0)
  assert goes.CLASS_LETTERS[label[0]] == "B" and facts["flare_event_id"] == ""


def test_a_header_only_or_flareless_list_is_an_error_naming_the_file(tmp_path):
  header = LIST_2011.read_text().splitlines()[0]
  (tmp_path / "empty.csv").write_text(header + "\n")
  with pytest.raises(fl.FlareListError, match=r"empty\.csv: no flare rows"):
    fl.read_flare_list(tmp_path / "empty.csv")
  (tmp_path / "empty.json").write_text('{"result": []}')
  with pytest.raises(fl.FlareListError, match=r"empty\.json: no flare rows"):
    fl.read_flare_list(tmp_path / "empty.json")
  (tmp_path / "other.json").write_text(
    json.dumps(
      [
        {
          "event_starttime": "2011-06-07T06:16",
          "event_peaktime": "2011-06-07T06:41",
          "event_endtime": "2011-06-07T06:59",
          "fl_goescls": "",
        }
      ]
    )
  )
  with pytest.raises(fl.FlareListError, match=r"other\.json: none of its 1 rows.*no_goes_class=1"):
    fl.read_flare_list(tmp_path / "other.json")


# ------------------------------------------------- class scale, provenance ---


def _published_letter(goes_class: str, factor: str) -> str:
  """The class letter of a published class string times ``factor``, in exact decimals."""
  import decimal

  flux = (
    decimal.Decimal(goes_class[1:])
    * {
      "A": decimal.Decimal("1e-8"),
      "B": decimal.Decimal("1e-7"),
      "C": decimal.Decimal("1e-6"),
      "M": decimal.Decimal("1e-5"),
      "X": decimal.Decimal("1e-4"),
    }[goes_class[0]]
    / decimal.Decimal(factor)
  )
  edges = [(decimal.Decimal(f"1e-{8 - i}"), c) for i, c in enumerate("ABCMX")]
  return [c for edge, c in edges if flux >= edge][-1] if flux >= edges[0][0] else "A"


def test_the_real_list_gives_the_published_counts_on_the_swpc_scale(shared_flare_list):
  """SWPC scale: the goes_class column as published; true scale: published / 0.7.

  Counted from the CSV here (exact decimals), and by the two code paths that count:
  the build report's ``events_per_class`` and the labels on read of frames inside
  each flare (flare fluxes stored as float32, as records keep them).
  """
  from solar_jax.data import build_report, frame_facts

  with open(shared_flare_list) as f:
    header, *rows = list(csv.reader(f))
  column = header.index("goes_class") + 1  # rows lead with an unnamed index field
  classes = [row[column].strip().upper() for row in rows]
  published = {c: sum(g[0] == c for g in classes) for c in goes.CLASS_LETTERS}
  # Every flare of the list peaked before 2020: its true flux is the published / 0.7.
  true = {c: sum(_published_letter(g, "0.7") == c for g in classes) for c in goes.CLASS_LETTERS}
  assert published["M"] + published["X"] == 797 and true["M"] + true["X"] > 1.5 * 797
  flares = fl.read_flare_list(shared_flare_list)
  assert len(flares) == len(classes) and {f.provenance for f in flares} == {"swpc"}
  assert build_report.events_per_class(flares) == {"swpc": published, "true": true}
  # A frame at each flare's start, its facts as stored (float32 flux, ISO times).
  facts = {
    "time": np.array([frame_facts.iso(f.start) for f in flares]),
    "flare_event_id": np.array([f.event_id for f in flares]),
    "flare_flux": np.array([f.peak_flux for f in flares], np.float32),
    "flare_peak": np.array([frame_facts.iso(f.peak) for f in flares]),
    "minutes_after_flare_start": np.zeros(len(flares), np.float32),
    "minutes_after_flare_end": np.array(
      [(f.start - f.end).total_seconds() / 60 for f in flares], np.float32
    ),
    "goes_flux": np.full(len(flares), np.nan, np.float32),
  }
  for scale, want in (("swpc", published), ("true", true)):
    labels, _ = frame_facts.labels(facts, "flare_class", 30.0, class_scale=scale)
    got = np.bincount(labels, minlength=5)
    assert dict(zip(goes.CLASS_LETTERS, got.tolist())) == want, scale


def _write_list(path, rows, extra=""):
  header = "event_starttime,event_peaktime,event_endtime,goes_class" + extra
  path.write_text("\n".join([header, *rows]) + "\n")
  return path


PRE = "2015-03-11 16:11:00,2015-03-11 16:22:00,2015-03-11 16:29:00,C8.0"
POST = "2022-03-30 17:21:00,2022-03-30 17:37:00,2022-03-30 17:46:00,C8.0"


def test_an_ncei_list_is_never_divided_twice(tmp_path):
  """An NCEI reprocessed list gives true fluxes: its true flux is its listed flux."""
  stated = _write_list(tmp_path / "ncei.csv", [PRE + ",ncei", POST + ",ncei"], ",class_provenance")
  given = _write_list(tmp_path / "plain.csv", [PRE, POST])
  (tmp_path / "ncei.json").write_text(
    json.dumps(
      {
        "provenance": "ncei",
        "events": [
          dict(
            zip(("event_starttime", "event_peaktime", "event_endtime", "goes_class"), r.split(","))
          )
          for r in (PRE, POST)
        ],
      }
    )
  )
  for flares in (
    fl.read_flare_list(stated),
    fl.read_flare_list(given, provenance="ncei"),
    fl.read_flare_list(tmp_path / "ncei.json"),
  ):
    assert [f.provenance for f in flares] == ["ncei", "ncei"]
    assert [f.peak_flux for f in flares] == [goes.class_to_flux("C8.0")] * 2
    # On the SWPC scale the 2015 one is what SWPC would have published (x 0.7).
    pre, post = (f.flux_on("swpc") for f in flares)
    assert pre == pytest.approx(0.7 * 8e-6) and post == pytest.approx(8e-6)
  # The same rows from an SWPC list: / 0.7 before 2020, as published after.
  swpc = fl.read_flare_list(given, provenance="swpc")
  assert swpc[0].peak_flux == pytest.approx(8e-6 / 0.7) and swpc[1].peak_flux == 8e-6
  assert [f.flux_on("swpc") for f in swpc] == [8e-6, 8e-6]


def test_a_list_of_unknown_provenance_is_one_line_naming_the_setting(tmp_path):
  path = _write_list(tmp_path / "plain.csv", [PRE, POST])
  with pytest.raises(fl.FlareListError) as info:
    fl.read_flare_list(path)
  message = str(info.value)
  assert "\n" not in message and "plain.csv" in message
  assert "provenance=" in message and "flare_list_provenance" in message
  assert "class_provenance" in message
  with pytest.raises(fl.FlareListError, match=r"provenance= 'noaa' is not one of swpc, hek, ncei"):
    fl.read_flare_list(path, provenance="noaa")
  stated = _write_list(tmp_path / "s.csv", [PRE + ",swpc"], ",class_provenance")
  assert fl.read_flare_list(stated)[0].provenance == "swpc"
  event = dict(
    zip(("event_starttime", "event_peaktime", "event_endtime", "goes_class"), PRE.split(","))
  )
  (tmp_path / "j.json").write_text(json.dumps({"provenance": "swpc", "events": [event]}))
  with pytest.raises(fl.FlareListError, match=r"'swpc'.*provenance='ncei'"):
    fl.read_flare_list(tmp_path / "j.json", provenance="ncei")
  bad = _write_list(tmp_path / "b.csv", [PRE + ",noaa", POST + ",ncei"], ",class_provenance")
  flares = fl.read_flare_list(bad)
  assert len(flares) == 1 and flares.skipped[0].reason == "bad_provenance"


def test_the_formats_say_their_provenance(flares, tmp_path):
  """The real list's layout is SWPC's; a HEK export is 'hek', with the same factor."""
  assert {f.provenance for f in flares} == {"swpc"}
  events = [
    {
      "event_starttime": f.start.isoformat(),
      "event_peaktime": f.peak.isoformat(),
      "event_endtime": f.end.isoformat(),
      "fl_goescls": f.goes_class,
    }
    for f in flares
  ]
  (tmp_path / "hek.json").write_text(json.dumps({"result": events}))
  hek = fl.read_flare_list(tmp_path / "hek.json")
  assert {f.provenance for f in hek} == {"hek"}
  assert [f.peak_flux for f in hek] == [f.peak_flux for f in flares]
