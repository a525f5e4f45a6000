"""Tests of solar_jax.data.frame_facts: stored facts and label policies, on real inputs."""

import datetime
import pathlib

import numpy as np
import pytest

from solar_jax.data import flare_list, frame_facts, goes

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
T = datetime.datetime
LAG = 120.0  # the builder's association lag


def goes_file(name):
  import sunpy.data.test

  return pathlib.Path(sunpy.data.test.get_test_filepath(name))


@pytest.fixture(scope="module")
def index():
  return flare_list.FlareIndex(flare_list.read_flare_list(FIXTURES / "flare_list_sc24_excerpt.csv"))


@pytest.fixture(scope="module")
def xrs():
  return goes.read_xrs([goes_file("go1520110607.fits"), goes_file("go1520120601.fits.gz")])


def facts_of(times, index, xrs):
  rows = [frame_facts.frame_facts(t, index, xrs, association_lag_minutes=LAG) for t in times]
  arrays = {k: np.array([r[k] for r in rows]) for k in frame_facts.FIELDS}
  arrays["time"] = np.array([frame_facts.iso(t) for t in times])
  return rows, arrays


def label(arrays, policy, lag=30.0):
  return frame_facts.labels(arrays, policy, lag)


def test_frame_before_a_c_flare_start_is_not_flaring_and_inside_is(index, xrs):
  # C1.1 of 2012-06-01: start 07:37, peak 07:40, end 07:43 (AR 11493). The old rule
  # (+-30 min of the peak) called a frame 25 min before its start flaring.
  times = [T(2012, 6, 1, 7, 12), T(2012, 6, 1, 7, 38), T(2012, 6, 1, 7, 42, 30)]
  rows, arrays = facts_of(times, index, xrs)
  letters, groups = label(arrays, "goes_class")
  flare, _ = label(arrays, "flare_class")
  before, inside, late = rows
  # 07:12 is 91 min after the C2.1's end (05:41): associated, but past any 30 min lag.
  assert before["flare_event_id"] == "SOL2012-06-01T05:34:00"
  assert before["minutes_after_flare_end"] == pytest.approx(91.0)
  assert flare[0] == -1
  assert letters[0] == frame_facts.class_index([before["goes_flux"]])[0]
  for row in (inside, late):
    assert row["flare_event_id"] == "SOL2012-06-01T07:40:00" and row["noaa_ar"] == 11493
  assert flare[1] == flare[2] == goes.CLASS_LETTERS.index("C")
  assert groups[1] == groups[2] == "SOL2012-06-01T07:40:00"
  assert groups[0] == "day:2012-06-01"


def test_cooling_lag_on_read(index, xrs):
  # 20 min after the C1.1's end: flaring with a 30 min lag, not with 10.
  _, arrays = facts_of([T(2012, 6, 1, 8, 3)], index, xrs)
  assert label(arrays, "flare_class", lag=30.0)[0][0] == 2
  assert label(arrays, "flare_class", lag=10.0)[0][0] == -1
  assert label(arrays, "background_class", lag=10.0)[0][0] >= 0
  assert label(arrays, "background_class", lag=30.0)[0][0] == -1


def test_m25_flare_facts_on_the_true_scale(index, xrs):
  rows, arrays = facts_of([T(2011, 6, 7, 6, 41)], index, xrs)
  row = rows[0]
  assert row["flare_event_id"] == "SOL2011-06-07T06:41:00" and row["flare_class"] == "M2.5"
  assert (row["flare_start"], row["flare_end"]) == (
    "2011-06-07T06:16:00.000",
    "2011-06-07T06:59:00.000",
  )
  # Flux: the larger of the listed M2.5 / 0.7 and the SDAC peak / 0.7 (2.5554e-5 / 0.7).
  assert row["flare_flux"] == pytest.approx(2.5554e-5 / 0.7, rel=1e-4)
  assert label(arrays, "goes_class")[0][0] == goes.CLASS_LETTERS.index("M")
  # goes_flux: the median of the SDAC samples within 5 min, divided by 0.7.
  import sunpy.timeseries

  raw = sunpy.timeseries.TimeSeries(str(goes_file("go1520110607.fits"))).to_dataframe()["xrsb"]
  near = raw[T(2011, 6, 7, 6, 36) : T(2011, 6, 7, 6, 46)]
  assert row["goes_flux"] == pytest.approx(float(np.median(near)) / 0.7, rel=1e-6)


def test_next_24_hours(index, xrs):
  rows, arrays = facts_of(
    [T(2011, 6, 6, 12, 0), T(2011, 6, 7, 12, 0), T(2012, 6, 2, 0, 0)], index, xrs
  )
  ahead, after, quiet = rows
  # The M2.5 starts 18.3 h later: the largest listed flare starting in the window, with
  # its flux as flare_class reads it (the SDAC peak 2.5554e-5 / 0.7).
  assert ahead["next24_event_id"] == "SOL2011-06-07T06:41:00"
  assert ahead["next24_flux"] == pytest.approx(2.5554e-5 / 0.7, rel=1e-3)
  assert not ahead["next24_complete"]  # the file starts on 2011-06-07
  # After the M2.5: nothing listed starts in the next 24 h of the excerpt, and XRS runs out.
  assert after["next24_event_id"] == "" and not after["next24_complete"]
  forecast, groups = label(arrays, "max_class_next_24h")
  assert forecast[0] == goes.CLASS_LETTERS.index("M") and groups[0] == "SOL2011-06-07T06:41:00"
  assert forecast[1] == -1  # unknown: no listed flare and no full XRS coverage
  assert np.isnan(quiet["next24_flux"]) and forecast[2] == -1


def test_next_24_hours_with_full_coverage(index, xrs):
  # 2011-06-07 00:00 to 24:00 is covered by the SDAC file (1 s .. 2 s cadence).
  rows, arrays = facts_of([T(2011, 6, 6, 23, 59, 58)], index, xrs)
  assert rows[0]["next24_complete"]
  m25 = next(f for f in index.flares if f.goes_class == "M2.5")
  assert rows[0]["next24_flux"] == pytest.approx(frame_facts.flare_flux(m25, index, xrs))
  # 2 s before 00:00 UT: the issuance frame of that grid time.
  assert label(arrays, "max_class_next_24h")[0][0] == goes.CLASS_LETTERS.index("M")


def _first_day_extended(xrs, until):
  """The SDAC day 2011-06-07 of ``xrs``, then its last hour's median each minute to ``until``."""
  day = xrs.times < np.datetime64("2011-06-08")
  times, flux = xrs.times[day], xrs.flux_long[day]
  last = np.datetime64(times[-1], "m") + np.timedelta64(1, "m")
  more = np.arange(last, np.datetime64(until, "m"), np.timedelta64(1, "m")).astype("datetime64[ns]")
  level = float(np.median(flux[times > times[-1] - np.timedelta64(1, "h")]))
  return goes.XRSSeries(
    np.concatenate([times, more]), np.concatenate([flux, np.full(len(more), level)])
  )


def test_the_flare_in_progress_never_counts_and_one_starting_later_does(index, xrs):
  """The real M2.5 of 2011-06-07 (start 06:16, peak 06:41, end 06:59), no later listed flare.

  The old label (every XRS sample of the window) called a frame 1 min after its peak M:
  detection. Now 06:20 (in progress) and 06:42 (1 min after the peak) get the quiet
  level of the window, B, and 04:16 (2 h before the start) the M2.5's class.
  """
  xrs = _first_day_extended(xrs, T(2011, 6, 8, 8, 0))
  times = [T(2011, 6, 7, 6, 20), T(2011, 6, 7, 6, 42), T(2011, 6, 7, 4, 16)]
  rows, arrays = facts_of(times, index, xrs)
  during, after, before = rows
  assert during["next24_complete"] and after["next24_complete"]
  assert during["next24_event_id"] == after["next24_event_id"] == ""
  assert before["next24_event_id"] == "SOL2011-06-07T06:41:00"
  # The quiet level: the median of the samples outside [06:16, 06:59 + 120 min].
  t, f = xrs.samples(T(2011, 6, 7, 6, 42, 0, 1), T(2011, 6, 8, 6, 42))
  quiet = (t < np.datetime64("2011-06-07T06:16")) | (t > np.datetime64("2011-06-07T08:59"))
  assert after["next24_flux"] == pytest.approx(float(np.median(f[quiet])))
  assert after["next24_flux"] < 1e-6 < f.max()  # the window holds the M2.5's decay
  # Each frame read as the issuance frame of a grid time (its own hour's edge: 06:42 is
  # 18 min before 07:00).
  for i, (hour, minutes, want) in enumerate([(6, 20, "B"), (7, 18, "B"), (4, 16, "M")]):
    got = frame_facts.labels(
      {k: v[i : i + 1] for k, v in arrays.items()},
      "max_class_next_24h",
      30.0,
      issuance_hours=(hour,),
      issuance_tolerance_minutes=minutes,
    )[0]
    assert goes.CLASS_LETTERS[got[0]] == want, times[i]


def test_xrs_decay_after_the_listed_end_does_not_raise_the_label():
  """A B5 background with a flare listed 10:00-10:30 whose XRS stays at M1 until 13:00,
  past its end + the 120 min association lag: a frame at 10:45 is B, not M."""
  times = np.arange(np.datetime64("2015-03-11T00:00"), np.datetime64("2015-03-13T00:00"))
  flux = np.full(times.shape, 5e-7 / 0.7)
  flux[
    (times >= np.datetime64("2015-03-11T10:00")) & (times < np.datetime64("2015-03-11T13:00"))
  ] = 1e-5 / 0.7
  xrs = goes.XRSSeries(times.astype("datetime64[ns]"), flux)
  flare = flare_list.Flare(
    "long", T(2015, 3, 11, 10), T(2015, 3, 11, 10, 10), T(2015, 3, 11, 10, 30), "M1.0", 1e-5 / 0.7
  )
  index = flare_list.FlareIndex([flare])
  rows, arrays = facts_of([T(2015, 3, 11, 10, 45), T(2015, 3, 11, 9, 58)], index, xrs)
  assert rows[0]["next24_flux"] == pytest.approx(5e-7 / 0.7)
  assert rows[1]["next24_event_id"] == "long"  # 2 min before its start
  got = frame_facts.labels(
    arrays, "max_class_next_24h", 30.0, issuance_hours=(10,), issuance_tolerance_minutes=2.0
  )[0]
  assert got[1] == goes.CLASS_LETTERS.index("M")
  # 10:45 is 45 min from 10:00: no issuance frame under a 2-min tolerance, so no label;
  # as the issuance frame of 11:00 (15 min) it reads B.
  assert got[0] == -1
  as_issuance = frame_facts.labels(
    {k: v[:1] for k, v in arrays.items()},
    "max_class_next_24h",
    30.0,
    issuance_hours=(11,),
    issuance_tolerance_minutes=15.0,
  )[0]
  assert as_issuance[0] == goes.CLASS_LETTERS.index("B")


def test_issuance_frames_nearest_within_the_tolerance_edge_included():
  times = [
    "2011-06-07T06:00:00.000",  # on the grid
    "2011-06-07T06:05:59.000",  # nearer ones exist for 06:00
    "2011-06-07T12:06:00.000",  # exactly on the 6-min edge: issuance
    "2011-06-07T18:06:00.001",  # 1 ms past the edge: not
    "2011-06-07T23:58:00.000",  # 00:00 of the next day
    "2011-06-08T00:03:00.000",  # farther from that 00:00
    "2011-06-07T09:00:00.000",  # not a grid hour
  ]
  np.testing.assert_array_equal(
    frame_facts.issuance_frames(times), [True, False, True, False, True, False, False]
  )
  np.testing.assert_array_equal(
    frame_facts.issuance_frames(np.array(times, "datetime64[ms]"), (9,), 0.0),
    [False] * 6 + [True],
  )
  # Under the forecast policy only issuance frames are labelled; the others' facts are
  # the same (a known window), so the grid alone decides.
  n = len(times)
  facts = {k: np.zeros(n, np.float32) for k, kind in frame_facts.FIELDS.items() if kind == "f"}
  facts.update(
    {k: np.array([""] * n) for k, kind in frame_facts.FIELDS.items() if kind == "s"},
    noaa_ar=np.zeros(n, np.int32),
    next24_complete=np.ones(n, bool),
    next24_flux=np.full(n, 2e-6, np.float32),
    minutes_after_flare_start=np.full(n, np.nan, np.float32),
    minutes_after_flare_end=np.full(n, np.nan, np.float32),
    time=np.array(times),
  )
  got, _ = frame_facts.labels(facts, "max_class_next_24h", 30.0, class_scale="true")
  np.testing.assert_array_equal(got, [2, -1, 2, -1, 2, -1, -1])
  # Other policies ignore the grid.
  assert (frame_facts.labels(facts, "goes_class", 30.0)[0] >= 0).all()


def test_policies_partition_the_frames(index, xrs):
  times = [T(2012, 6, 1, h, m) for h in range(0, 24) for m in (0, 20, 40)]
  _, arrays = facts_of(times, index, xrs)
  goes_class, _ = label(arrays, "goes_class")
  flare, _ = label(arrays, "flare_class")
  background, _ = label(arrays, "background_class")
  flaring = frame_facts.in_flare(arrays, 30.0)
  assert flaring.any() and (~flaring).any()
  np.testing.assert_array_equal(flare >= 0, flaring)
  np.testing.assert_array_equal(np.where(flaring, flare, background), goes_class)
  # xrs_class: one meaning for every frame, the class of the flux at the frame's time:
  # the background label where quiet, and inside a flare the flux then (never above the
  # flare's peak class).
  xrs_class, _ = label(arrays, "xrs_class")
  np.testing.assert_array_equal(xrs_class[~flaring], background[~flaring])
  np.testing.assert_array_equal(xrs_class, frame_facts.class_index(arrays["goes_flux"] * 0.7))
  assert np.all(xrs_class[flaring] <= flare[flaring])
  with pytest.raises(ValueError, match="label policy"):
    frame_facts.labels(arrays, "peak_class", 30.0)


def test_class_index_matches_class_letter():
  rng = np.random.default_rng(0)
  fluxes = np.concatenate([10 ** rng.uniform(-10, -2, 300), list(goes.class_edges().values())])
  index = frame_facts.class_index(fluxes)
  assert [goes.CLASS_LETTERS[i] for i in index] == [goes.class_letter(f) for f in fluxes]
  assert frame_facts.class_index([np.nan])[0] == -1


def test_a_neighbours_xrs_peak_is_not_inherited(xrs):
  """A C flare in progress across the real M2.5's peak (06:41) keeps its own listed flux.

  The C1.2 (another region, added to the real list) runs 06:20-07:10; at 07:05 it is
  the only flare in progress. Its flux was the XRS maximum over its [start, end]: the
  M2.5's peak, so the frame was labelled M.
  """
  flares = list(flare_list.read_flare_list(FIXTURES / "flare_list_sc24_excerpt.csv"))
  c12 = flare_list.Flare(
    "neighbour",
    T(2011, 6, 7, 6, 20),
    T(2011, 6, 7, 6, 24),
    T(2011, 6, 7, 7, 10),
    "C1.2",
    goes.listed_true_flux(goes.class_to_flux("C1.2"), T(2011, 6, 7, 6, 24)),
    11227,
  )
  index = flare_list.FlareIndex([*flares, c12])
  rows, arrays = facts_of([T(2011, 6, 7, 7, 5), T(2011, 6, 7, 6, 41)], index, xrs)
  assert rows[0]["flare_event_id"] == "neighbour"
  assert rows[0]["flare_flux"] == pytest.approx(c12.peak_flux, rel=1e-6)
  letters, _ = label(arrays, "flare_class")
  assert goes.CLASS_LETTERS[letters[0]] == "C"
  # At the M2.5's peak the M2.5 is the largest flare in progress; with the C1.2 in
  # progress around its peak too, it keeps its listed flux (M2.5 / 0.7).
  assert rows[1]["flare_event_id"] == "SOL2011-06-07T06:41:00"
  assert rows[1]["flare_flux"] == pytest.approx(2.5e-5 / 0.7, rel=1e-6)
  assert goes.CLASS_LETTERS[letters[1]] == "M"
  # Alone, the M2.5 takes the XRS peak within 5 min of its listed peak (SDAC 2.5554e-5 / 0.7).
  m25 = next(f for f in flares if f.goes_class == "M2.5")
  alone = frame_facts.flare_flux(m25, flare_list.FlareIndex(flares), xrs)
  assert alone == pytest.approx(2.5554e-5 / 0.7, rel=1e-3)


@pytest.mark.parametrize("provenance", ["swpc", "ncei"])
def test_a_published_c8_is_c_on_the_swpc_scale_and_m_on_the_true_scale(tmp_path, provenance):
  """A frame in a flare published C8.0 in 2015 (SWPC list): C on the SWPC scale, M (its true
  flux 1.14e-5) on the true one; one of 2022 (GOES-16 era) is C on both. From an NCEI list
  (true fluxes) a C8.0 is C on both: its true flux is C8.0, x 0.7 in 2015 is C5.6."""
  rows = [
    "2015-03-11 16:11:00,2015-03-11 16:22:00,2015-03-11 16:29:00,C8.0",
    "2022-03-30 17:21:00,2022-03-30 17:37:00,2022-03-30 17:46:00,C8.0",
  ]
  path = tmp_path / "flares.csv"
  path.write_text("event_starttime,event_peaktime,event_endtime,goes_class\n" + "\n".join(rows))
  index = flare_list.FlareIndex(flare_list.read_flare_list(path, provenance=provenance))
  # 2015 with XRS at a B5 background (true): the quiet frame's class moves with the scale too.
  times = np.arange(np.datetime64("2015-03-11T12:00"), np.datetime64("2015-03-11T20:00"))
  xrs = goes.XRSSeries(times.astype("datetime64[ns]"), np.full(times.shape, 1.2e-6))
  frames = [T(2015, 3, 11, 16, 20), T(2022, 3, 30, 17, 30), T(2015, 3, 11, 14, 0)]
  rows = [frame_facts.frame_facts(t, index, xrs, association_lag_minutes=LAG) for t in frames]
  # As records store them: float32 fluxes, ISO text.
  arrays = {
    k: np.array([r[k] for r in rows], np.float32 if kind == "f" else None)
    for k, kind in frame_facts.FIELDS.items()
  }
  arrays["time"] = np.array([frame_facts.iso(t) for t in frames])
  got = {
    scale: [
      goes.CLASS_LETTERS[i]
      for i in frame_facts.labels(arrays, "goes_class", 30.0, class_scale=scale)[0]
    ]
    for scale in goes.CLASS_SCALES
  }
  if provenance == "swpc":
    # The quiet 2015 frame: true 1.2e-6 is C1.2, x 0.7 is B8.4.
    assert got == {"swpc": ["C", "C", "B"], "true": ["M", "C", "C"]}
  else:
    assert got == {"swpc": ["C", "C", "B"], "true": ["C", "C", "C"]}


def test_class_scale_factor_by_era():
  times = ["2015-03-11T16:22:00.000", "2019-12-31T23:59:59.999", "2020-01-01T00:00:00.000", ""]
  np.testing.assert_array_equal(goes.class_scale_factor(times, "swpc"), [0.7, 0.7, 1.0, 1.0])
  np.testing.assert_array_equal(goes.class_scale_factor(times, "true"), [1.0] * 4)
  assert goes.class_scale_factor([T(2011, 6, 7), "2011-06-07 06:41:00"], "swpc").tolist() == [
    0.7,
    0.7,
  ]
  with pytest.raises(ValueError, match="class scale"):
    goes.class_scale_factor(times, "noaa")
  # Rounded to 6 digits, float32 round trips through 0.7 keep a published class.
  for published in ("C7.0", "M1.0", "X1.0", "B7.0"):
    true = np.float32(goes.class_to_flux(published) / 0.7)
    assert frame_facts.class_index([np.float64(true) * 0.7])[0] == "ABCMX".index(published[0])
  assert frame_facts.class_index([np.float32(7e-6 / 0.7)])[0] == 3  # C7.0 is M on the true scale


@pytest.mark.parametrize(
  "policy", [p for p in frame_facts.LABELS if p != frame_facts.FORECAST_LABEL]
)
def test_label_flux_has_the_labels_class(index, xrs, policy):
  # A flux model's condition has the label's meaning: its class is the label, on both
  # class scales; flaring frames under 'flare_class' get the flare's peak flux.
  times = [T(2012, 6, 1, 7, 12), T(2012, 6, 1, 7, 38), T(2012, 6, 1, 7, 42, 30)]
  rows, arrays = facts_of(times, index, xrs)
  for scale in goes.CLASS_SCALES:
    labels, _ = frame_facts.labels(arrays, policy, 30.0, class_scale=scale)
    fluxes = frame_facts.label_fluxes(arrays, policy, 30.0, class_scale=scale)
    known = labels >= 0
    assert known.any()
    np.testing.assert_array_equal(frame_facts.class_index(fluxes[known]), labels[known])
    assert np.isnan(fluxes[~known]).all()
  if policy == "flare_class":
    flux = frame_facts.label_fluxes(arrays, policy, 30.0, class_scale="true")
    assert flux[1] == pytest.approx(rows[1]["flare_flux"])
