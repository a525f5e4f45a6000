"""Downloads the raw inputs of the sdo_aia171 dataset (needs internet).

Queries the HEK for GOES flares of class B1.0 and above (``--min_class``)
and keeps its answer as ``OUT/hek_events.csv``. One flare is often listed
once per HEK detection module (SWPC, SSW Latest Events, ...): those
near-duplicates (same NOAA AR, peaks within ``MERGE_MINUTES``) are joined by
``flare_list.merge_duplicates`` and the merged list is written as
``OUT/flares.csv`` (a HEK export that ``flare_list.read_flare_list`` reads).

The frame plan (``plan_frames``, written as ``OUT/plan.csv``): the AIA 171 Å frame
nearest each time of the forecast issuance grid (``--issuance_hours`` UT every day,
default 00, 06, 12, 18: the default of ``data.issuance_hours``), whatever the Sun
does then (a forecast is issued at fixed times, flaring or not), marked ``issuance``;
those more than ``--quiet_margin`` outside every listed flare's [start, end] are
also marked ``quiet``; and the frame nearest each flare peak. Frames go to
``OUT/aia/``, GOES XRS 1-minute averages to ``OUT/goes/``. The directory is then the
manual dir of the TFDS builder::

  python -m solar_jax.data.fetch --start 2011-06-01 --end 2011-07-01 \\
      --min_class B1.0 --issuance_hours 0,6,12,18 --quiet_margin 2h --out ~/sdo_aia171_raw

Without network it stops with one line naming the service it could not reach
(exit status 1). Downloads that fail while others succeed are counted: the
files that came are kept, one line gives the count and the first error, and
the exit status is 1. A search answer without the expected table or columns
is a ``FetchError`` naming what is missing.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import gzip
import pathlib
import re
import sys
import warnings
from collections.abc import Sequence

import astropy.units as u
import sunpy.net.attrs as a
from sunpy.net import Fido
from sunpy.util.exceptions import SunpyConnectionWarning

from solar_jax.data import flare_list, frame_facts, goes

# Columns of the HEK export (flare_list.read_flare_list reads the first four,
# the event id and the NOAA AR, ar_noaanum).
HEK_COLUMNS = (
  "event_starttime",
  "event_peaktime",
  "event_endtime",
  "fl_goescls",
  "SOL_standard",
  "kb_archivid",
  "frm_name",
  "obs_observatory",
  "ar_noaanum",
  "hpc_x",
  "hpc_y",
)

# Half-width of the time range searched around each requested AIA time: AIA
# takes a 171 Å image every 12 s, so a minute always holds several.
AIA_SEARCH_HALF_WIDTH = datetime.timedelta(minutes=1)

# Defaults of the command line. B1.0: the dataset has a B class, so the HEK
# list must hold B flares too. Issuance frames at 00, 06, 12, 18 UT (the default
# data.issuance_hours); quiet: none within 2 h of a listed flare's [start, end], well
# beyond the builder's 30 min label window, so a quiet frame shows no listed flare's
# rise or decay.
DEFAULT_MIN_CLASS = "B1.0"
DEFAULT_ISSUANCE_HOURS = ",".join(str(h) for h in frame_facts.ISSUANCE_HOURS)
DEFAULT_QUIET_MARGIN = "2h"
# Columns of OUT/plan.csv, one row per planned frame.
PLAN_COLUMNS = ("time", "issuance", "quiet", "flare_event_id")
# HEK events of one flare from several modules peak within a few minutes.
MERGE_MINUTES = 6.0


class FetchError(RuntimeError):
  """A download step failed; the message is one line for the user."""

  def __init__(self, message: str):
    super().__init__(" ".join(str(message).split()))


def parse_duration(text: str, what: str = "duration") -> datetime.timedelta:
  """'6h', '30m', '1d', '90s', '0m' -> timedelta (zero allowed, negative not)."""
  match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
  if not match:
    raise ValueError(f"{what} {text!r}: use a number and s/m/h/d, e.g. '6h'.")
  unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
  return datetime.timedelta(**{unit: float(match.group(1))})


def parse_hours(text: str) -> tuple[int, ...]:
  """'0,6,12,18' -> (0, 6, 12, 18): distinct UT hours in [0, 23], at least one."""
  try:
    hours = tuple(int(h) for h in text.split(","))
  except ValueError:
    hours = ()
  if not hours or len(set(hours)) != len(hours) or not all(0 <= h <= 23 for h in hours):
    raise ValueError(f"issuance hours {text!r}: give distinct UT hours 0..23, e.g. '0,6,12,18'.")
  return tuple(sorted(hours))


def issuance_times(
  start: datetime.datetime, end: datetime.datetime, hours
) -> list[datetime.datetime]:
  """The issuance grid in ``[start, end)``: every day at ``hours`` UT, in order."""
  day = datetime.datetime.combine(start.date(), datetime.time())
  times = []
  while day < end:
    times += [day + datetime.timedelta(hours=h) for h in sorted(hours)]
    day += datetime.timedelta(days=1)
  return [t for t in times if start <= t < end]


def near_flares(times, flares, margin: datetime.timedelta) -> list[bool]:
  """For sorted ``times``: whether each lies in a flare's [start - margin, end + margin].

  The windows are closed (a time on an edge is near). One sweep over the sorted windows.
  """
  windows = sorted((f.start - margin, f.end + margin) for f in flares)
  near, i = [], 0
  reach = None  # the latest end of the windows opened at or before t
  for t in times:
    while i < len(windows) and windows[i][0] <= t:
      reach = windows[i][1] if reach is None else max(reach, windows[i][1])
      i += 1
    near.append(reach is not None and t <= reach)
  return near


@dataclasses.dataclass(frozen=True)
class PlannedFrame:
  """A frame to fetch (the one nearest ``time``) and why: a row of OUT/plan.csv."""

  time: datetime.datetime
  issuance: bool  # a time of the issuance grid (forecasts are issued from it)
  quiet: bool  # an issuance time more than the margin outside every listed flare
  flare_event_id: str  # the flare whose peak this is ('' none)


def plan_frames(
  start: datetime.datetime,
  end: datetime.datetime,
  flares,
  hours=frame_facts.ISSUANCE_HOURS,
  margin: datetime.timedelta = datetime.timedelta(hours=2),
) -> list[PlannedFrame]:
  """Every issuance time in ``[start, end)`` and every flare peak in ``[start, end]``.

  A peak on a grid time is one frame with both marks. Sorted by time.
  """
  grid = issuance_times(start, end, hours)
  near = near_flares(grid, flares, margin)
  rows = {t: PlannedFrame(t, True, not n, "") for t, n in zip(grid, near)}
  for f in flares:
    if start <= f.peak <= end:
      rows[f.peak] = dataclasses.replace(
        rows.get(f.peak, PlannedFrame(f.peak, False, False, "")),
        quiet=False,
        flare_event_id=f.event_id,
      )
  return [rows[t] for t in sorted(rows)]


def write_plan(path: pathlib.Path, plan: list[PlannedFrame]) -> None:
  """``plan`` as CSV (``PLAN_COLUMNS``; times ISO, marks 'true'/'false')."""
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(PLAN_COLUMNS)
    for p in plan:
      marks = [str(p.issuance).lower(), str(p.quiet).lower()]
      writer.writerow([p.time.isoformat(), *marks, p.flare_event_id])


def hek_query(start: datetime.datetime, end: datetime.datetime, min_class: str) -> tuple:
  """sunpy attrs for GOES flares of at least ``min_class`` in [start, end]."""
  goes.class_to_flux(min_class)  # validates the class string
  return (
    a.Time(start, end),
    a.hek.EventType("FL"),
    a.hek.FL.GOESCls >= min_class.upper(),
    a.hek.OBS.Observatory == "GOES",
  )


def aia_query(time: datetime.datetime) -> tuple:
  """sunpy attrs for the AIA 171 Å frame nearest ``time``."""
  return (
    a.Time(time - AIA_SEARCH_HALF_WIDTH, time + AIA_SEARCH_HALF_WIDTH, near=time),
    a.Instrument.aia,
    a.Wavelength(171 * u.angstrom),
  )


def goes_query(start: datetime.datetime, end: datetime.datetime) -> tuple:
  """sunpy attrs for GOES XRS 1-minute averages in [start, end]."""
  return (a.Time(start, end), a.Instrument.xrs, a.Resolution("avg1m"))


def _search(service: str, attrs: tuple):
  """Fido.search, with a lost network as one FetchError naming ``service``."""
  try:
    with warnings.catch_warnings():
      # sunpy warns once per mirror it tries; the error below says it once.
      warnings.simplefilter("ignore", SunpyConnectionWarning)
      return Fido.search(*attrs)
  except OSError as e:  # URLError, ConnectionError, socket and aiohttp errors
    raise FetchError(f"no network: cannot reach {service} ({type(e).__name__}: {e})") from e


class Failures:
  """Downloads that failed: how many, and the first error (for one line to the user)."""

  def __init__(self):
    self.count, self.first = 0, ""

  def add(self, service: str, errors) -> None:
    errors = list(errors or [])
    if errors and not self.first:
      self.first = f"{service}: {' '.join(str(errors[0]).split())}"
    self.count += len(errors)


# What a downloaded file must start with, by its suffix: FITS ('SIMPLE  =', also
# inside gzip), netCDF-3 ('CDF\x01', 64-bit offsets 'CDF\x02') or netCDF-4 (HDF5).
# A server that fails often answers 200 with an HTML error page, which Fido saves
# under the file's name; a rerun would then skip it as already downloaded.
_FITS_MAGIC = (b"SIMPLE  =",)
_NETCDF_MAGIC = (b"CDF\x01", b"CDF\x02", b"\x89HDF\r\n\x1a\n")
_MAGIC_BY_SUFFIX = {
  ".fits": _FITS_MAGIC,
  ".fts": _FITS_MAGIC,
  ".fit": _FITS_MAGIC,
  ".nc": _NETCDF_MAGIC,
}
_GZIP_MAGIC = b"\x1f\x8b"


def check_download(path) -> str | None:
  """Why a downloaded file is not what its name says (None when it is).

  FITS files (.fits, .fts, .fit, also gzip-compressed) must start with
  'SIMPLE  =', netCDF files (.nc) with the netCDF-3 or HDF5 (netCDF-4) signature.
  Other suffixes are not checked.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    return f"{path}: reported as downloaded but absent"
  name = path.name.lower()
  stem = name[:-3] if name.endswith(".gz") else name
  magic = _MAGIC_BY_SUFFIX.get(pathlib.PurePath(stem).suffix)
  if magic is None:
    return None
  try:
    with open(path, "rb") as f:
      head = f.read(16)
      if name.endswith(".gz") or head.startswith(_GZIP_MAGIC):
        if not head.startswith(_GZIP_MAGIC):
          return f"{path}: not gzip data (starts with {head[:16]!r})"
        f.seek(0)
        with gzip.open(f) as inner:
          head = inner.read(16)
  except (OSError, EOFError) as e:
    return f"{path}: cannot be read ({type(e).__name__}: {e})"
  if not head.startswith(magic):
    kind = "FITS" if magic is _FITS_MAGIC else "netCDF"
    return f"{path}: not a {kind} file (starts with {head[:16]!r}: an error page?)"
  return None


def _download(service: str, results, directory: pathlib.Path, failures: Failures) -> list[str]:
  """Fido.fetch into ``directory``; the files written. Failed downloads go to ``failures``.

  A file that is not what its name says (``check_download``: an HTML error page
  saved as .fits or .nc) is removed and counted as a failed download, so a rerun
  fetches it again instead of keeping it.

  Raises FetchError when every download failed (the network is gone).
  """
  directory.mkdir(parents=True, exist_ok=True)
  try:
    files = Fido.fetch(results, path=str(directory / "{file}"), progress=False)
  except OSError as e:
    raise FetchError(f"no network: cannot download from {service} ({type(e).__name__}: {e})") from e
  errors = list(getattr(files, "errors", None) or [])
  if errors and not list(files):
    raise FetchError(f"no network: every download from {service} failed (first: {errors[0]})")
  kept = []
  for file in files:
    problem = check_download(file)
    if problem is None:
      kept.append(file)
    else:
      pathlib.Path(file).unlink(missing_ok=True)
      errors.append(f"{problem}; removed")
  failures.add(service, errors)
  return kept


def _file_num(service: str, found) -> int:
  """How many files a Fido search found; FetchError for an answer of another shape."""
  number = getattr(found, "file_num", None)
  if not isinstance(number, int):
    raise FetchError(f"unexpected answer from {service}: {type(found).__name__} has no file_num")
  return number


def _hek_table(found):
  """The HEK table of a Fido answer; FetchError naming what is missing."""
  try:
    return found["hek"]
  except (KeyError, IndexError, TypeError, ValueError) as e:
    keys = getattr(found, "keys", lambda: [])()
    raise FetchError(
      f"unexpected answer from the HEK: no 'hek' table (it has {list(keys)}; {e!r})"
    ) from e


def _iso(value) -> str:
  if hasattr(value, "isot"):  # astropy Time
    return value.isot
  return str(value)


def write_hek_export(table, path: pathlib.Path) -> int:
  """Writes GOES-classified HEK flares (one row per peak and class) as CSV.

  Raises FetchError when a non-empty table lacks one of the first four
  ``HEK_COLUMNS`` (times and GOES class).
  """
  names = set(getattr(table, "colnames", ()))
  missing = [c for c in HEK_COLUMNS[:4] if c not in names]
  if missing and len(table):
    raise FetchError(
      f"unexpected answer from the HEK: no column {', '.join(missing)} "
      f"(columns are {sorted(names)})"
    )
  seen, rows = set(), []
  for row in table:
    goes_class = str(row["fl_goescls"]).strip() if "fl_goescls" in names else ""
    key = _row_key(_iso(row["event_peaktime"]), goes_class)
    if not goes_class or key in seen:
      continue  # several HEK methods report the same GOES flare
    seen.add(key)
    rows.append({c: _iso(row[c]) if c in names else "" for c in HEK_COLUMNS})
  _write_rows(path, rows)
  return len(rows)


def _row_key(peak: str, goes_class: str) -> tuple:
  """(peak, class) of an export row as ``read_flare_list`` reads them."""
  try:
    peak = flare_list.to_naive_utc(peak)
  except (TypeError, ValueError):
    pass  # an unreadable time: read_flare_list skips the row, compare as text
  return peak, goes_class.strip().upper()


def _write_rows(path: pathlib.Path, rows: list[dict]) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, HEK_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)


def write_merged_export(
  events_csv: pathlib.Path, path: pathlib.Path, minutes: float = MERGE_MINUTES
) -> tuple[flare_list.FlareList, int]:
  """Joins the near-duplicate events of a HEK export; writes the result as a HEK export.

  Each merged flare is written as the row of its largest event (its id,
  class, peak and other columns) with the group's earliest start, latest end
  and known NOAA AR, so ``read_flare_list(path)`` gives the flares of
  ``flare_list.merge_duplicates(read_flare_list(events_csv), minutes)``.
  Rows ``read_flare_list`` cannot read are left out (they stay in
  ``events_csv``).

  Returns:
    (the merged flares as read back from ``path``, number of events merged away).
  """
  merged, num_merged = flare_list.merge_duplicates(
    flare_list.read_flare_list(events_csv), minutes=minutes
  )
  with open(events_csv, newline="", encoding="utf-8") as f:
    by_key = {_row_key(r["event_peaktime"], r["fl_goescls"]): r for r in csv.DictReader(f)}
  rows = []
  for flare in merged:
    row = dict(by_key[(flare.peak, flare.goes_class)])
    row["event_starttime"] = flare.start.isoformat()
    row["event_endtime"] = flare.end.isoformat()
    if flare.noaa_ar:
      row["ar_noaanum"] = str(flare.noaa_ar)
    rows.append(row)
  _write_rows(path, rows)
  return flare_list.read_flare_list(path), num_merged


def _fetch_flares(
  start: datetime.datetime,
  end: datetime.datetime,
  min_class: str,
  out: pathlib.Path,
  margin: datetime.timedelta,
) -> tuple[flare_list.FlareList, dict[str, int]]:
  """HEK flares -> OUT/hek_events.csv (as answered) and OUT/flares.csv (merged).

  The HEK is asked for [start - margin, end + margin]: a flare just outside
  the range still keeps quiet frames inside it away from its window.
  """
  hek = _search(
    "the HEK (Heliophysics Event Knowledgebase)",
    hek_query(start - margin, end + margin, min_class),
  )
  events_csv = out / "hek_events.csv"
  num_events = write_hek_export(_hek_table(hek), events_csv)
  flares, num_merged = write_merged_export(events_csv, out / "flares.csv")
  return flares, {"hek_events": num_events, "flares": len(flares), "merged_duplicates": num_merged}


def _fetch_aia(times, out: pathlib.Path, failures: Failures) -> list[str]:
  """The AIA 171 Å frame nearest each time, into OUT/aia/ (one search per time)."""
  aia, aia_search = "the VSO/JSOC (AIA)", "the VSO/JSOC (AIA search)"
  files = []
  for time in times:
    found = _search(aia_search, aia_query(time))
    if _file_num(aia_search, found):
      files += _download(aia, found[:, 0], out / "aia", failures)
  return files


def fetch(
  start: datetime.datetime,
  end: datetime.datetime,
  min_class: str,
  out: pathlib.Path,
  issuance_hours=frame_facts.ISSUANCE_HOURS,
  quiet_margin: datetime.timedelta | None = None,
) -> dict[str, int]:
  """Downloads flares, AIA frames and GOES XRS for [start, end] into ``out``.

  AIA frames: the one nearest each time of ``plan_frames(start, end, flares,
  issuance_hours, quiet_margin)`` (``quiet_margin`` None: ``DEFAULT_QUIET_MARGIN``),
  the plan written as ``OUT/plan.csv``.

  Returns:
    counts of what was written: ``hek_events`` (HEK events with a GOES class),
    ``flares`` (after merging), ``merged_duplicates`` (events joined into
    another), ``issuance_times`` (grid times planned), ``issuance_near_flares`` (of
    them, within the margin of a flare: planned, not quiet), ``aia_files``,
    ``goes_files``; and of downloads that failed (``failed``, with the first error
    in ``first_error``; the rest was still fetched).

  Raises:
    FetchError: no network, or an answer of an unexpected shape (one line).
    flare_list.FlareListError: a HEK answer whose rows cannot be read.
  """
  out = pathlib.Path(out).expanduser()
  if quiet_margin is None:
    quiet_margin = parse_duration(DEFAULT_QUIET_MARGIN)
  failures = Failures()
  flares, counts = _fetch_flares(start, end, min_class, out, quiet_margin)
  plan = plan_frames(start, end, flares, issuance_hours, quiet_margin)
  write_plan(out / "plan.csv", plan)
  aia_files = _fetch_aia([p.time for p in plan], out, failures)
  goes_search = "NOAA NCEI (GOES XRS search)"
  xrs = _search(goes_search, goes_query(start, end))
  goes_files = []
  if _file_num(goes_search, xrs):
    goes_files = _download("NOAA NCEI (GOES XRS)", xrs, out / "goes", failures)
  return {
    **counts,
    "issuance_times": sum(p.issuance for p in plan),
    "issuance_near_flares": sum(p.issuance and not p.quiet for p in plan),
    "aia_files": len(aia_files),
    "goes_files": len(goes_files),
    "failed": failures.count,
    "first_error": failures.first,
  }


def _time(text: str) -> datetime.datetime:
  try:
    return flare_list.to_naive_utc(text)
  except ValueError as e:
    raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time (YYYY-MM-DD[THH:MM])") from e


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
    prog="python -m solar_jax.data.fetch", description=__doc__.split("\n")[0]
  )
  parser.add_argument("--start", type=_time, required=True, help="UTC start, ISO 8601")
  parser.add_argument("--end", type=_time, required=True, help="UTC end, ISO 8601")
  parser.add_argument(
    "--min_class",
    default=DEFAULT_MIN_CLASS,
    help=f"smallest GOES class of the HEK flares (default {DEFAULT_MIN_CLASS})",
  )
  parser.add_argument("--out", type=pathlib.Path, required=True, help="output directory")
  parser.add_argument(
    "--issuance_hours",
    type=parse_hours,
    default=DEFAULT_ISSUANCE_HOURS,
    help="UT hours of the forecast issuance grid, a frame each day at each "
    f"(default {DEFAULT_ISSUANCE_HOURS}, as data.issuance_hours)",
  )
  parser.add_argument(
    "--quiet_margin",
    type=parse_duration,
    default=DEFAULT_QUIET_MARGIN,
    help="an issuance frame within this of a listed flare's [start, end] is not marked quiet "
    f"(default {DEFAULT_QUIET_MARGIN})",
  )
  args = parser.parse_args(argv)
  if args.end <= args.start:
    parser.error(f"--end {args.end} must be after --start {args.start}")
  try:
    goes.class_to_flux(args.min_class)
  except ValueError as e:
    parser.error(f"--min_class: {e}")
  return args


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(argv)
  try:
    counts = fetch(
      args.start, args.end, args.min_class, args.out, args.issuance_hours, args.quiet_margin
    )
  except (FetchError, flare_list.FlareListError) as e:
    print(f"fetch: {e}", file=sys.stderr)
    return 1
  print(
    f"fetch: wrote {counts['flares']} flares ({counts['merged_duplicates']} duplicate HEK "
    f"events merged), {counts['aia_files']} AIA files ({counts['issuance_times']} issuance "
    f"times, {counts['issuance_near_flares']} of them near flares; plan.csv) and "
    f"{counts['goes_files']} GOES files under {args.out}"
  )
  if counts["failed"]:
    # The files written are usable, but the manual dir is incomplete: say so
    # and fail, so a script does not build a dataset on it unawares.
    print(
      f"fetch: {counts['failed']} downloads failed (first: {counts['first_error']}); "
      "rerun the same command to fetch them",
      file=sys.stderr,
    )
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
