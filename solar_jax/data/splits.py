"""Train / validation / test by month-block folds with an embargo, decided on read.

A frame's block is its calendar month ``12 * year + month - 1`` (UTC) modulo
``num_folds``: whole months move together, so frames hours apart never straddle
two splits inside a month. For fold ``f`` the test blocks are residue ``f``,
validation residue ``(f + num_folds // 2) % num_folds`` (far from test, so the
embargo between them costs nothing), train the rest. Across folds every month
is tested once, so every rare flare is tested once.

Embargo (purging): full-disk frames hours apart are nearly the same image and
an active region lives for weeks, so a frame is dropped when a month of a
HIGHER-priority split (test > validation > train) lies within ``embargo_days``
of it: train frames near a validation or test month, validation frames near a
test month. Test frames are never dropped. So no train frame lies within the
embargo of any test frame, and the drops are counted (``EMBARGOED``).

Withheld days (``withhold``): a random share ``data.withheld_day_fraction`` of the
calendar days (UTC) is withheld from the train split, whole days, inside the
training months (embargoed frames are not training frames and stay dropped). The
DDPM (and every reader of 'train') never trains on them; they are the
memorisation test's held-out set (``evaluation/evaluate.py``), frames exchangeable
with the training months' (the same months, the same mix of activity), unlike
the test months. Day ``d`` is withheld when ``u_d < fraction``, with ``u`` one
uniform per day since 1970-01-01 drawn from ``data.withheld_day_seed``: a day's
fate depends on the seed and the fraction alone (not on which other days the
archive holds, nor on the fold), and a larger fraction withholds a superset.
"""

from __future__ import annotations

import numpy as np

from solar_jax.data import frame_facts

SPLITS = ("train", "validation", "test")  # The splits of a fold.
TRAIN, VALIDATION, TEST, EMBARGOED = 0, 1, 2, -1
WITHHELD = 3  # Code of a frame on a withheld day of the training months.
WITHHELD_SPLIT = "withheld"  # Readable like a split: the withheld days' frames.
# Readable like a split: every frame the generator did not train on (test, validation,
# embargoed, withheld days; forward: later years), the rare classes' realism pool.
UNSEEN_SPLIT = "unseen"
_EPOCH_DAY = np.datetime64("1970-01-01", "D")
_DAYS = 73_049  # 1970-01-01 .. 2169-12-31: one uniform each.


def code_of(split: str) -> int:
  """The ``assign``/``withhold`` code of a split name (``SPLITS`` or ``WITHHELD_SPLIT``)."""
  return WITHHELD if split == WITHHELD_SPLIT else SPLITS.index(split)


def day_uniforms(seed: int) -> np.ndarray:
  """float64 [_DAYS]: the uniform of each day since 1970-01-01 under ``seed``."""
  return np.random.default_rng([int(seed), 20_110_401]).random(_DAYS)


def withheld_days(times, fraction: float, seed: int) -> np.ndarray:
  """bool per time: whether its UTC day is withheld (``u_day < fraction``)."""
  times = as_times(times)
  if not 0 <= fraction < 1:
    raise ValueError(f"data.withheld_day_fraction={fraction} must lie in [0, 1).")
  if fraction == 0 or not len(times):
    return np.zeros(len(times), bool)
  days = (times.astype("datetime64[D]") - _EPOCH_DAY).astype(np.int64)
  if days.min() < 0 or days.max() >= _DAYS:
    bad = times[(days < 0) | (days >= _DAYS)][0]
    raise ValueError(f"frame time {bad} lies outside 1970..2169: no withheld-day draw for it.")
  return day_uniforms(seed)[days] < fraction


def withhold(codes, times, fraction: float, seed: int) -> np.ndarray:
  """``assign``'s codes with the train frames of withheld days set to ``WITHHELD``."""
  codes = np.asarray(codes, np.int8)
  held = (codes == TRAIN) & withheld_days(times, fraction, seed)
  return np.where(held, WITHHELD, codes).astype(np.int8)


def as_times(times) -> np.ndarray:
  """ISO strings / bytes / datetime64 -> datetime64[ms]."""
  values = [t.decode() if isinstance(t, bytes) else t for t in np.asarray(times).ravel()]
  return np.array(values, dtype="datetime64[ms]")


def month_index(times) -> np.ndarray:
  """``12 * year + month - 1`` of each time (UTC)."""
  months = as_times(times).astype("datetime64[M]").astype(np.int64)  # months since 1970-01
  return months + 12 * 1970


def roles(num_folds: int, fold: int) -> np.ndarray:
  """Split code (``TRAIN``, ``VALIDATION``, ``TEST``) of each block residue."""
  if num_folds < 3 or not 0 <= fold < num_folds:
    raise ValueError(f"fold={fold} must lie in [0, num_folds={num_folds}), num_folds >= 3.")
  codes = np.full(num_folds, TRAIN, np.int8)
  codes[(fold + num_folds // 2) % num_folds] = VALIDATION
  codes[fold] = TEST
  return codes


def training_partition(fold: int, num_folds: int) -> str:
  """The months fold ``fold`` trains on, named so that folds training on the same months agree.

  Test is residue ``fold`` and validation ``fold + num_folds // 2``: with an even
  ``num_folds`` folds f and f + num_folds/2 swap the two and train on the same months
  (and drop the same embargoed frames), so they share one generator. ``num_folds`` < 3
  (the dataset's count not read): the fold alone.
  """
  if num_folds < 3:
    return f"fold {int(fold)}"
  held = np.flatnonzero(roles(num_folds, int(fold)) != TRAIN)
  return f"months mod {num_folds} not in {{{', '.join(str(int(r)) for r in held)}}}"


def training_record(config: dict) -> dict:
  """What a model trained with ``config`` (a dict, JSON types) learned from: its data.

  The dataset and its version, the training months (``data.fold`` with
  ``training_partition``), the embargo around held-out months and the label policy with
  its cooling lag and class scale (and, for the forecast label, its issuance grid: the
  frames it learned from). A generator is bound to them (DESIGN.md, 'Protocol rules'): a
  checkpoint, an export and a sample set record them, and a run whose data differs in one
  is refused (``checkpointing.parameter_meaning``, ``record_changes``). ``provenance`` is
  filled in from the dataset by ``data.resolve``; a value it could not read is None.
  """
  data, provenance = config.get("data") or {}, config.get("provenance") or {}
  num_folds, fold = int(provenance.get("num_folds") or 0), data.get("fold")
  rule = data.get("split") or "month_blocks"  # A config before the field: month blocks.
  if rule == "forward" and fold is not None:
    num_folds = -1  # Not month blocks: the partition is named below.

  def number(key):
    return None if data.get(key) is None else float(data[key])

  record = {
    "data.dataset": f"{data.get('dataset')}/{data.get('builder_config')}",
    "provenance.version": str(provenance.get("version") or "") or None,
    "data.fold": None
    if fold is None
    else {
      "fold": int(fold),
      "trains_on": f"the first {int(fold) + 1} calendar years of the archive (forward)"
      if num_folds == -1
      else training_partition(int(fold), num_folds)
      if num_folds >= 3 and 0 <= int(fold) < num_folds
      else None,
    },
    "data.split": rule if data else None,
    "data.withheld_days": None
    if not data
    else {
      "fraction": float(data.get("withheld_day_fraction") or 0.0),
      "seed": int(data.get("withheld_day_seed") or 0)
      if data.get("withheld_day_fraction")
      else None,  # Withholding nothing: the seed means nothing.
    },
    "data.embargo_days": number("embargo_days"),
    "data.label": data.get("label"),
    "data.cooling_lag_minutes": number("cooling_lag_minutes"),
    "data.class_scale": data.get("class_scale"),
  }
  if data.get("label") == frame_facts.FORECAST_LABEL:  # Only then does the grid pick frames.
    hours = data.get("issuance_hours")
    record["data.issuance"] = (
      None
      if hours is None
      else {
        "hours": [int(h) for h in hours],
        "tolerance_minutes": number("issuance_tolerance_minutes"),
      }
    )
  return record


def record_changes(stored: dict, run: dict) -> list[str]:
  """The ``training_record`` fields in which ``run`` differs from ``stored``, each described.

  A field either side lacks or could not read (None: a checkpoint made before the field
  was recorded, a machine without the dataset) is not compared. Folds compare by the
  months they train on when both know the dataset's number of folds, else by number.
  """
  changes = []
  for key, want in run.items():
    have = stored.get(key)
    if have is None or want is None:
      continue
    if key == "data.fold":
      both = have.get("trains_on") and want.get("trains_on")
      if (have["trains_on"] != want["trains_on"]) if both else (have["fold"] != want["fold"]):
        changes.append(
          f"data.fold={have['fold']} there ({have.get('trains_on') or 'its training months'}),"
          f" {want['fold']} here ({want.get('trains_on') or 'other months'})"
        )
    elif have != want:
      changes.append(f"{key}={have!r} there, {want!r} here")
  return changes


def assign(times, *, fold: int, num_folds: int, embargo_days: float) -> np.ndarray:
  """Split code per frame: ``TRAIN``/``VALIDATION``/``TEST``, or ``EMBARGOED`` (dropped)."""
  times = as_times(times)
  role = roles(num_folds, fold)
  code = role[month_index(times) % num_folds].astype(np.int8)
  if embargo_days <= 0 or not len(times):
    return code
  margin = np.timedelta64(int(round(embargo_days * 86400e3)), "ms")
  lo, hi = month_index(times - margin), month_index(times + margin)
  nearest = np.full(len(times), TRAIN, np.int8)  # highest-priority split within the margin
  for offset in range(int((hi - lo).max()) + 1):
    month = lo + offset
    inside = month <= hi
    nearest = np.where(inside, np.maximum(nearest, role[month % num_folds]), nearest)
  return np.where(nearest > code, EMBARGOED, code).astype(np.int8)


FUTURE = -2  # Forward split: a frame after the test year (never read).
SPLIT_RULES = ("month_blocks", "forward")  # data.split


def forward_years(times) -> np.ndarray:
  """The calendar years (UTC) the frames span, sorted: the forward split's units."""
  return np.unique(as_times(times).astype("datetime64[Y]").astype(np.int64) + 1970)


def assign_forward(times, *, fold: int, embargo_days: float, years=None) -> np.ndarray:
  """Forward in time: train on the years before, validate on the next, test on the one after.

  With the archive's years ``y_0 < y_1 < ...`` (``years``; default those of ``times``),
  forward fold ``f`` trains on ``y_0 .. y_f``, validates on ``y_{f+1}`` and tests on
  ``y_{f+2}``; later years are ``FUTURE`` (never read). The embargo is kept at both
  boundaries as in ``assign``: a train frame within ``embargo_days`` of the validation
  year, and a validation frame within it of the test year, is ``EMBARGOED``.
  """
  times = as_times(times)
  years = forward_years(times) if years is None else np.asarray(years, np.int64)
  if not 0 <= fold < len(years) - 2:
    raise ValueError(
      f"data.split='forward': fold={fold} needs {fold + 3} calendar years, the archive spans "
      f"{len(years)} ({', '.join(map(str, years))}); forward folds are 0..{len(years) - 3}."
    )

  def role(t):
    year = t.astype("datetime64[Y]").astype(np.int64) + 1970
    code = np.where(year <= years[fold], TRAIN, FUTURE)
    code = np.where(year == years[fold + 1], VALIDATION, code)
    return np.where(year == years[fold + 2], TEST, code).astype(np.int8)

  code = role(times)
  if embargo_days <= 0 or not len(times):
    return code
  margin = np.timedelta64(int(round(embargo_days * 86400e3)), "ms")
  ahead = role(times + margin)  # Roles grow with time up to the test year's end.
  drop = (code >= TRAIN) & (ahead > code)
  return np.where(drop, EMBARGOED, code).astype(np.int8)


def summary(codes, labels, groups, noaa_ar, flare_ids, classes) -> dict:
  """Per split and class: frames and distinct events; embargo drops; AR overlap of test.

  Args:
    codes: ``assign``'s split codes; labels: class index (-1 none); groups:
      resampling groups (``frame_facts.labels``); noaa_ar: AR per frame (0
      unknown); flare_ids: the frame's flare ('' none); classes: class names.

  Returns:
    {'frames': {split: {class: n, 'total': n}}, 'events': {split: {class: n}},
     'embargoed': n dropped, 'unlabelled': n without a label,
     'ar_overlap': {'test_events_with_ar', 'in_train', 'share'}} ('share' is
     None when no test event has an AR).
  """
  codes, labels = np.asarray(codes), np.asarray(labels)
  groups, flare_ids = np.asarray(groups, object), np.asarray(flare_ids, object)
  noaa_ar = np.asarray(noaa_ar)
  frames, events = {}, {}
  for code, split in enumerate(SPLITS):
    mine = (codes == code) & (labels >= 0)
    frames[split] = {c: int(np.sum(mine & (labels == i))) for i, c in enumerate(classes)}
    frames[split]["total"] = int(mine.sum())
    events[split] = {
      c: len(set(groups[mine & (labels == i)].tolist())) for i, c in enumerate(classes)
    }
  flaring = flare_ids != ""
  train_ars = set(noaa_ar[(codes == TRAIN) & flaring & (noaa_ar > 0)].tolist())
  test = (codes == TEST) & flaring & (noaa_ar > 0)
  test_events = {(e, a) for e, a in zip(flare_ids[test].tolist(), noaa_ar[test].tolist())}
  overlap = sum(a in train_ars for _, a in test_events)
  return dict(
    frames=frames,
    events=events,
    embargoed=int(np.sum(codes == EMBARGOED)),
    unlabelled=int(np.sum((codes != EMBARGOED) & (labels < 0))),
    ar_overlap=dict(
      test_events_with_ar=len(test_events),
      in_train=int(overlap),
      share=overlap / len(test_events) if test_events else None,
    ),
  )
