"""Tests of solar_jax.data.splits: month-block folds and the embargo, on the real 2011 list."""

import datetime
import pathlib

import numpy as np
import pytest

from solar_jax.configs import tiny
from solar_jax.data import flare_list, frame_facts, splits

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
DAY = np.timedelta64(86400_000, "ms")


@pytest.fixture(scope="module")
def year():
  """Facts of frames every 6 h over 2011 plus one at each flare's peak (real list, no XRS)."""
  flares = flare_list.read_flare_list(FIXTURES / "flare_list_sc24_2011.csv")
  index = flare_list.FlareIndex(flares)
  t0 = datetime.datetime(2011, 1, 1)
  times = sorted(
    {t0 + datetime.timedelta(hours=6 * i) for i in range(365 * 4)} | {f.peak for f in flares}
  )
  rows = [frame_facts.frame_facts(t, index, None, association_lag_minutes=120.0) for t in times]
  facts = {k: np.array([r[k] for r in rows]) for k in frame_facts.FIELDS}
  facts["time"] = np.array([frame_facts.iso(t) for t in times])
  return facts


def test_month_index_and_roles():
  assert splits.month_index(["2011-01-01T00:00:00.000", "2011-12-31T23:59:59.999"]).tolist() == [
    12 * 2011,
    12 * 2011 + 11,
  ]
  role = splits.roles(10, 3)
  assert role[3] == splits.TEST and role[8] == splits.VALIDATION
  assert (role == splits.TRAIN).sum() == 8
  with pytest.raises(ValueError, match="fold"):
    splits.roles(10, 10)


@pytest.mark.parametrize("fold", range(10))
def test_no_train_frame_within_the_embargo_of_a_test_frame(year, fold):
  times = splits.as_times(year["time"])
  codes = splits.assign(year["time"], fold=fold, num_folds=10, embargo_days=14)
  test, train, val = (times[codes == c] for c in (splits.TEST, splits.TRAIN, splits.VALIDATION))
  assert len(test) and len(train) and len(val)

  def nearest(a, b):  # distance from each of a to the nearest of b
    j = np.clip(np.searchsorted(b, a), 1, len(b) - 1)
    return np.minimum(np.abs(a - b[j - 1]), np.abs(b[j] - a))

  assert nearest(train, test).min() > 14 * DAY
  assert nearest(train, val).min() > 14 * DAY
  assert nearest(val, test).min() > 14 * DAY
  # Test frames are never dropped: the test split is whole months of residue `fold`.
  months = splits.month_index(year["time"])
  np.testing.assert_array_equal(codes == splits.TEST, months % 10 == fold)
  # Without an embargo nothing is dropped, and the drops are what the embargo removed.
  plain = splits.assign(year["time"], fold=fold, num_folds=10, embargo_days=0)
  assert (plain == splits.EMBARGOED).sum() == 0
  assert np.all((codes == plain) | (codes == splits.EMBARGOED))


def test_every_month_is_tested_once_across_folds(year):
  tested = np.zeros(len(year["time"]), int)
  for fold in range(10):
    tested += splits.assign(year["time"], fold=fold, num_folds=10, embargo_days=14) == splits.TEST
  np.testing.assert_array_equal(tested, 1)


def test_summary_counts_and_active_region_overlap(year):
  labels, groups = frame_facts.labels(year, "goes_class", 30.0)
  flaring = frame_facts.in_flare(year, 30.0)
  flare_ids = np.where(flaring, year["flare_event_id"], "")
  codes = splits.assign(year["time"], fold=0, num_folds=10, embargo_days=14)
  table = splits.summary(codes, labels, groups, year["noaa_ar"], flare_ids, "ABCMX")
  # Without XRS only flaring frames have a label: frames = flaring frames per split.
  for code, name in enumerate(splits.SPLITS):
    mine = (codes == code) & flaring
    assert table["frames"][name]["total"] == mine.sum()
    for i, c in enumerate("ABCMX"):
      assert table["events"][name][c] == len(set(flare_ids[mine & (labels == i)]))
  assert table["embargoed"] == (codes == splits.EMBARGOED).sum() > 0
  # Brute force: test flares with an AR whose AR also flared in a train frame.
  train_ars = {
    a for a, c, f in zip(year["noaa_ar"], codes, flare_ids) if c == splits.TRAIN and f and a
  }
  test_events = {
    (f, a) for a, c, f in zip(year["noaa_ar"], codes, flare_ids) if c == splits.TEST and f and a
  }
  overlap = sum(a in train_ars for _, a in test_events)
  assert table["ar_overlap"] == dict(
    test_events_with_ar=len(test_events), in_train=overlap, share=overlap / len(test_events)
  )
  # Month blocks with a 14-day embargo still leave active regions shared with train
  # (an AR lives for weeks and returns after a rotation): the share is reported, not hidden.
  assert 0 < table["ar_overlap"]["share"] < 1


# ------------------------------------------------- the generator's data ---


def _train_months(fold, num_folds):
  """The residues a fold trains on, from ``assign`` itself (one frame per residue)."""
  times = np.array(
    [np.datetime64("2011-01-15", "M") + np.timedelta64(r, "M") for r in range(num_folds)]
  ).astype("datetime64[ms]")
  code = splits.assign(times, fold=fold, num_folds=num_folds, embargo_days=0)
  return frozenset(splits.month_index(times)[code == splits.TRAIN] % num_folds)


@pytest.mark.parametrize("num_folds", [3, 4, 5, 10])
def test_folds_share_a_training_partition_exactly_when_they_train_on_the_same_months(num_folds):
  for f in range(num_folds):
    for g in range(num_folds):
      same = _train_months(f, num_folds) == _train_months(g, num_folds)
      assert (
        splits.training_partition(f, num_folds) == splits.training_partition(g, num_folds)
      ) == same
  # Ten folds: f and f + 5 swap test and validation, so five training partitions.
  assert len({splits.training_partition(f, 10) for f in range(10)}) == 5


def _record(**data):
  config = tiny.get_config()
  config.provenance.version, config.provenance.num_folds = "sdo_aia171/64 2.1.0", 10
  for key, value in data.items():
    config.data[key] = value
  return splits.training_record(config.to_dict())


def test_the_training_record_names_what_differs_and_skips_what_was_not_read():
  fold0 = _record(fold=0)
  assert splits.record_changes(fold0, _record(fold=5)) == []  # One training partition.
  changes = splits.record_changes(fold0, _record(fold=3, label="flare_class", embargo_days=30.0))
  assert len(changes) == 3 and changes[0].startswith("data.fold=0 there")
  assert any(c.startswith("data.label='xrs_class' there") for c in changes)
  assert any(c.startswith("data.embargo_days=14.0 there, 30.0 here") for c in changes)
  # A dataset not read here (no version, no fold count): the folds compare by number.
  unread = {**fold0, "provenance.version": None, "data.fold": {"fold": 0, "trains_on": None}}
  assert splits.record_changes(unread, _record(fold=0)) == []
  assert splits.record_changes(unread, _record(fold=5))[0].startswith("data.fold=0 there")
  other = _record(fold=0)
  other["provenance.version"] = "sdo_aia171/64 2.2.0"
  assert splits.record_changes(fold0, other) == [
    "provenance.version='sdo_aia171/64 2.1.0' there, 'sdo_aia171/64 2.2.0' here"
  ]
  # The forecast label learns from the issuance frames: its grid is part of the record,
  # and only its (the other labels' records, hence sample-set keys, are unchanged).
  assert "data.issuance" not in fold0
  forecast = _record(label="max_class_next_24h", embargo_days=14.0)
  assert forecast["data.issuance"] == {"hours": [0, 6, 12, 18], "tolerance_minutes": 6.0}
  changes = splits.record_changes(
    forecast, _record(label="max_class_next_24h", issuance_hours=(0, 12))
  )
  assert changes == [
    "data.issuance={'hours': [0, 6, 12, 18], 'tolerance_minutes': 6.0} there, "
    "{'hours': [0, 12], 'tolerance_minutes': 6.0} here"
  ]


def test_withheld_days_are_whole_days_of_the_training_months_drawn_from_the_seed(year):
  """Withheld frames: whole UTC days, train frames only, a function of (seed, fraction)."""
  times = splits.as_times(year["time"])
  codes = splits.assign(times, fold=0, num_folds=10, embargo_days=14.0)
  held = splits.withhold(codes, times, 0.2, seed=3)
  # Only train frames move, and only to WITHHELD; the other splits are untouched.
  assert set(np.unique(codes[held == splits.WITHHELD])) == {splits.TRAIN}
  np.testing.assert_array_equal(held[held != splits.WITHHELD], codes[held != splits.WITHHELD])
  # Whole days: no day of the training months has both a withheld and a train frame.
  days = times.astype("datetime64[D]")
  assert not set(days[held == splits.WITHHELD]) & set(days[held == splits.TRAIN])
  # About the fraction of the training days (binomial, 3 sigma), reproducible, nested.
  train_days = np.unique(days[codes == splits.TRAIN])
  share = np.isin(train_days, days[held == splits.WITHHELD]).mean()
  assert abs(share - 0.2) < 3 * np.sqrt(0.2 * 0.8 / len(train_days))
  np.testing.assert_array_equal(splits.withhold(codes, times, 0.2, seed=3), held)
  assert (splits.withhold(codes, times, 0.2, seed=4) != held).any()
  wider = splits.withhold(codes, times, 0.4, seed=3) == splits.WITHHELD
  assert wider[held == splits.WITHHELD].all() and wider.sum() > (held == splits.WITHHELD).sum()
  # A day's fate depends on the seed alone, not on the other frames of the archive.
  np.testing.assert_array_equal(
    splits.withheld_days(times[::7], 0.2, 3), splits.withheld_days(times, 0.2, 3)[::7]
  )
  assert not splits.withhold(codes, times, 0.0, seed=3).tolist().count(splits.WITHHELD)


def test_the_withheld_days_are_part_of_the_generators_record():
  record = _record(withheld_day_fraction=0.1, withheld_day_seed=5)
  assert record["data.withheld_days"] == {"fraction": 0.1, "seed": 5}
  changes = splits.record_changes(record, _record(withheld_day_fraction=0.1, withheld_day_seed=6))
  assert changes == [
    "data.withheld_days={'fraction': 0.1, 'seed': 5} there, {'fraction': 0.1, 'seed': 6} here"
  ]
  # Withholding nothing: the seed means nothing.
  assert _record(withheld_day_fraction=0.0, withheld_day_seed=1)["data.withheld_days"] == {
    "fraction": 0.0,
    "seed": None,
  }
  # A config from before the field trained on every day: it withheld none, and a run
  # that would hold its training days out as "unseen" is refused.
  old = _record()
  config = tiny.get_config().to_dict()
  for key in ("withheld_day_fraction", "withheld_day_seed"):
    del config["data"][key]
  old["data.withheld_days"] = splits.training_record(config)["data.withheld_days"]
  assert old["data.withheld_days"] == {"fraction": 0.0, "seed": None}
  assert splits.record_changes(old, record)[0].startswith("data.withheld_days={'fraction': 0.0")


def _six_hourly(start: str, end: str) -> np.ndarray:
  return np.arange(np.datetime64(start, "ms"), np.datetime64(end, "ms"), DAY // 4)


def test_the_forward_split_trains_on_earlier_years_with_the_embargo_at_its_boundaries():
  times = _six_hourly("2010-05-13", "2014-03-01")  # Five calendar years, the first partial.
  years = times.astype("datetime64[Y]").astype(int) + 1970
  np.testing.assert_array_equal(splits.forward_years(times), [2010, 2011, 2012, 2013, 2014])
  plain = splits.assign_forward(times, fold=1, embargo_days=0.0)
  expected = np.select(
    [years <= 2011, years == 2012, years == 2013], [splits.TRAIN, splits.VALIDATION, splits.TEST],
    splits.FUTURE,
  )  # fmt: skip
  np.testing.assert_array_equal(plain, expected)
  codes = splits.assign_forward(times, fold=1, embargo_days=27.0)
  # Test frames are never dropped; only frames within 27 days of the next split's year are.
  np.testing.assert_array_equal(codes == splits.TEST, plain == splits.TEST)
  dropped = times[codes == splits.EMBARGOED]
  edges = np.array(["2012-01-01", "2013-01-01"], "datetime64[ms]")
  gap = np.abs(dropped[:, None] - edges[None, :]).min(axis=1)
  assert (gap <= np.timedelta64(27, "D")).all() and len(dropped) == 2 * 27 * 4
  for early, late in (("train", "validation"), ("validation", "test")):
    a, b = (times[codes == splits.SPLITS.index(s)] for s in (early, late))
    assert b.min() - a.max() > np.timedelta64(27, "D")  # Forward, beyond the embargo.
  with pytest.raises(ValueError, match="data.split='forward': fold=3 needs 6 calendar years"):
    splits.assign_forward(times, fold=3, embargo_days=14.0)


def test_the_split_rule_is_part_of_the_generators_record():
  blocks, forward = _record(fold=0), _record(fold=0, split="forward")
  assert blocks["data.split"] == "month_blocks" and forward["data.split"] == "forward"
  assert forward["data.fold"]["trains_on"] == "the first 1 calendar years of the archive (forward)"
  changes = splits.record_changes(blocks, forward)
  assert "data.split='month_blocks' there, 'forward' here" in changes
  assert any(c.startswith("data.fold=0 there (months mod 10") for c in changes)
  config = tiny.get_config().to_dict()
  del config["data"]["split"]  # A config from before the field: month blocks.
  assert splits.training_record(config)["data.split"] == "month_blocks"
