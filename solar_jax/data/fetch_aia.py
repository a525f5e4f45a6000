"""The AIA 171 Å frames of a plan: found day by day (cached), fetched whole, resumable.

Two routes, chosen by ``--route``:

- ``fido``: sunpy's Fido (the VSO) answers one search per day of the plan (the
  day widened by a minute each side, one record a minute, ``a.Sample``); the record
  nearest each planned time within ``SEARCH_HALF_WIDTH`` is fetched, full-resolution
  level 1 (4096², Rice-compressed, about ``FULL_RES_BYTES``), through parfive with
  its progress bar, ``BATCH`` records per call.
- ``jsoc``: the JSOC (``drms``) answers one keyword query per day of
  ``aia.lev1_euv_12s`` (T_REC, T_OBS, QUALITY; only QUALITY = 0 frames are taken);
  the frames are then exported, one request per month (at most ``EXPORT_CHUNK``
  records, a list of T_REC values), with a processing step that shrinks them on the
  server: ``rebin`` (boxcar, scale ``image_size / 4096``) or ``cutout`` (``im_patch``,
  a box centred on the disk), or ``none`` (full resolution). Needs a registered
  email (http://jsoc.stanford.edu/ajax/register_email.html).

Every day's choice is cached as ``OUT/cache/<route>/<day>.json`` and every export's
request id in ``OUT/cache/jsoc/exports.json``: a restart searches and exports
nothing again. What counts as fetched is on disk (``fetch_files.scan_frames``): a
whole FITS file whose observation time is within ``MATCH`` of the record's.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import pathlib
from collections.abc import Callable

from solar_jax import files
from solar_jax.data import fetch_files

SEARCH_HALF_WIDTH = datetime.timedelta(minutes=1)  # the nearest record must be this close
MATCH = datetime.timedelta(seconds=6)  # a file is a record's if their times are this close
BATCH = 50  # records per Fido.fetch call (a kill loses at most this many downloads)
EXPORT_CHUNK = 200  # records per JSOC export request (a T_REC list in the query)
SERIES = "aia.lev1_euv_12s"
FULL_SIDE = 4096  # AIA level 1 pixels per side
ARCSEC_PER_PX = 0.6  # AIA level 1 plate scale

# Estimates of the dry run (assumptions, printed with it).
FULL_RES_BYTES = 10 * 2**20  # a level-1 171 Å file, Rice-compressed 4096² int16
HEADER_BYTES = 4 * 2880  # the FITS headers of an exported frame
SEARCH_SECONDS = {"fido": 10.0, "jsoc": 3.0}  # one day's search
EXPORT_SECONDS = 120.0  # a JSOC export request's queue and staging
STAGE_SECONDS_PER_FRAME = 1.0  # JSOC processing (rebin, im_patch) per frame


class FetchError(RuntimeError):
  """A download step failed; the message is one line for the user."""

  def __init__(self, message: str):
    super().__init__(" ".join(str(message).split()))


@dataclasses.dataclass(frozen=True)
class Options:
  """The route and what it asks the archive for (the CLI's flags)."""

  route: str = "fido"  # 'fido' or 'jsoc'
  jsoc_email: str = ""
  jsoc_process: str = "rebin"  # 'rebin', 'cutout', 'none'
  image_size: int = 1024  # rebin's target side
  cutout_arcsec: float = 2000.0  # cutout's box side, centred on the disk
  progress: bool = True


def bytes_per_frame(options: Options) -> int:
  """The bytes one frame costs on this route (an upper bound for processed exports).

  Full resolution (Fido, or JSOC without processing): ``FULL_RES_BYTES``. A JSOC
  rebin: image_size² float32 pixels uncompressed plus headers; a cutout: its box in
  level-1 pixels (0.6"), int16 uncompressed plus headers.
  """
  if options.route == "fido" or options.jsoc_process == "none":
    return FULL_RES_BYTES
  if options.jsoc_process == "rebin":
    return options.image_size**2 * 4 + HEADER_BYTES
  side = round(options.cutout_arcsec / ARCSEC_PER_PX)
  return side**2 * 2 + HEADER_BYTES


def estimate(frames: int, days: int, options: Options, mb_per_s: float) -> tuple[int, float]:
  """(bytes, seconds) to fetch ``frames`` frames over ``days`` days of searches."""
  size = frames * bytes_per_frame(options)
  seconds = days * SEARCH_SECONDS[options.route] + size / (mb_per_s * 1e6)
  if options.route == "jsoc" and frames:
    seconds += -(-frames // EXPORT_CHUNK) * EXPORT_SECONDS
    if options.jsoc_process != "none":
      seconds += frames * STAGE_SECONDS_PER_FRAME
  return size, seconds


def assumptions(options: Options, mb_per_s: float) -> str:
  per = bytes_per_frame(options)
  what = {
    "fido": "full-resolution level 1 through the VSO (4096², Rice-compressed)",
    "none": f"full-resolution {SERIES} through a JSOC export",
    "rebin": f"JSOC {SERIES} rebinned to {options.image_size}² (float32, uncompressed: a bound)",
    "cutout": f'JSOC {SERIES} cut to {options.cutout_arcsec:g}" (int16, uncompressed: a bound)',
  }[options.route if options.route == "fido" else options.jsoc_process]
  text = (
    f"assumed: {per / 2**20:.2f} MiB a frame ({what}), {mb_per_s:g} MB/s, "
    f"{SEARCH_SECONDS[options.route]:g} s a day's search"
  )
  if options.route == "jsoc":
    text += f", {EXPORT_SECONDS:g} s an export request of up to {EXPORT_CHUNK} frames"
    if options.jsoc_process != "none":
      text += f", {STAGE_SECONDS_PER_FRAME:g} s of JSOC processing a frame"
  return text


@dataclasses.dataclass(frozen=True)
class Record:
  """One archived frame: its observation time, its key (VSO fileid, JSOC T_REC), its row."""

  time: datetime.datetime
  key: str
  row: tuple = ()  # (column, value) pairs the route needs to fetch it (JSON types)


def _day_cache(cache: pathlib.Path, day: datetime.date) -> pathlib.Path:
  return cache / f"{day.isoformat()}.json"


def choose(times, records: list[Record]) -> dict[datetime.datetime, Record]:
  """{planned time: the record nearest it within SEARCH_HALF_WIDTH} (times without one left out)."""
  records = sorted(records, key=lambda r: r.time)
  by_time = {r.time: r for r in records}
  keys = sorted(by_time)
  chosen = {}
  for t in times:
    best = fetch_files.nearest(keys, t, SEARCH_HALF_WIDTH)
    if best is not None:
      chosen[t] = by_time[best]
  return chosen


def find_records(
  times, cache: pathlib.Path, search_day: Callable, progress: bool
) -> tuple[dict[datetime.datetime, Record], int]:
  """The record chosen for each planned time, one search per day (cached); (chosen, searches).

  A day's cache is used when it was made for every planned time of that day.
  """
  from tqdm import tqdm

  by_day: dict[datetime.date, list] = {}
  for t in times:
    by_day.setdefault(t.date(), []).append(t)
  chosen, searches = {}, 0
  for day in tqdm(sorted(by_day), desc="AIA searches (days)", unit="day", disable=not progress):
    wanted = sorted(by_day[day])
    path = _day_cache(cache, day)
    stored = json.loads(path.read_text()) if path.is_file() else None
    if stored is None or not set(map(_iso, wanted)) <= set(stored["planned"]):
      start = datetime.datetime.combine(day, datetime.time()) - SEARCH_HALF_WIDTH
      found = choose(
        wanted, search_day(start, start + datetime.timedelta(days=1) + 2 * SEARCH_HALF_WIDTH)
      )
      searches += 1
      stored = {
        "planned": [_iso(t) for t in wanted],
        "chosen": {
          _iso(t): [_iso(r.time), r.key, [list(p) for p in r.row]] for t, r in found.items()
        },
      }
      path.parent.mkdir(parents=True, exist_ok=True)
      files.write_json(path, stored)
    for t in wanted:
      if _iso(t) in stored["chosen"]:
        time, key, row = stored["chosen"][_iso(t)]
        chosen[t] = Record(_parse_iso(time), key, tuple(tuple(p) for p in row))
  return chosen, searches


def _iso(t: datetime.datetime) -> str:
  return t.isoformat(timespec="microseconds")


def _parse_iso(text: str) -> datetime.datetime:
  return datetime.datetime.fromisoformat(text)


def missing(records, done: dict) -> list[Record]:
  """The records no file on disk holds (``done``: {time: file} of ``scan_frames``)."""
  times = sorted(done)
  unique = {r.key: r for r in records}
  return [
    r
    for r in sorted(unique.values(), key=lambda r: r.time)
    if fetch_files.nearest(times, r.time, MATCH) is None
  ]


def check_fetched(paths, errors: list) -> list[pathlib.Path]:
  """The whole files among ``paths``; the others are removed and their problem added to ``errors``."""
  kept = []
  for path in paths:
    problem = fetch_files.file_problem(path)
    if problem is None:
      kept.append(pathlib.Path(path))
    else:
      pathlib.Path(path).unlink(missing_ok=True)
      errors.append(f"{problem}; removed")
  return kept


def export_key(ds: str, process) -> str:
  return hashlib.sha256(json.dumps([ds, process], sort_keys=True).encode()).hexdigest()[:16]


def month_table(plan, options: Options, mb_per_s: float) -> list[dict]:
  """The dry run: per month of ``plan`` (PlannedFrames), then 'total', what fetching costs.

  Each row: month, frames, issuance (grid times), peaks (flare peaks not on the grid),
  days (one search each), bytes and seconds (``estimate``).
  """
  months: dict[str, dict] = {}
  for p in plan:
    row = months.setdefault(f"{p.time:%Y-%m}", dict(frames=0, issuance=0, peaks=0, days=set()))
    row["frames"] += 1
    row["issuance"] += bool(p.issuance)
    row["peaks"] += bool(p.flare_event_id) and not p.issuance
    row["days"].add(p.time.date())
  rows = []
  for month, row in sorted(months.items()):
    size, seconds = estimate(row["frames"], len(row["days"]), options, mb_per_s)
    rows.append(
      dict(
        month=month,
        **{k: row[k] for k in ("frames", "issuance", "peaks")},
        days=len(row["days"]),
        bytes=size,
        seconds=seconds,
      )
    )
  total = {
    k: sum(r[k] for r in rows) for k in ("frames", "issuance", "peaks", "days", "bytes", "seconds")
  }
  return rows + [dict(month="total", **total)]


def format_table(rows: list[dict]) -> str:
  lines = [
    f"{'month':>7} {'frames':>7} {'issuance':>8} {'peaks':>6} {'searches':>8} {'GB':>8} {'hours':>7}"
  ]
  for r in rows:
    lines.append(
      f"{r['month']:>7} {r['frames']:>7} {r['issuance']:>8} {r['peaks']:>6} {r['days']:>8} "
      f"{r['bytes'] / 1e9:>8.2f} {r['seconds'] / 3600:>7.2f}"
    )
  return "\n".join(lines)
