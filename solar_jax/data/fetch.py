"""Downloads the raw inputs of the sdo_aia171 dataset (needs internet): plans, scales, resumes.

Queries the HEK for GOES flares of class B1.0 and above (``--min_class``) and keeps
its answer as ``OUT/hek_events.csv`` (the query in ``OUT/cache/hek_query.json``: a
rerun does not ask again). One flare is often listed once per HEK detection module
(SWPC, SSW Latest Events, ...): those near-duplicates (same NOAA AR, peaks within
``MERGE_MINUTES``) are joined by ``flare_list.merge_duplicates`` and the merged list
is written as ``OUT/flares.csv`` (a HEK export that ``flare_list.read_flare_list`` reads).

The frame plan (``fetch_plan.plan_frames``, written as ``OUT/plan.csv``): the AIA
171 Å frame nearest each time of the forecast issuance grid (``--issuance_hours`` UT
every day, default 00, 06, 12, 18: the default of ``data.issuance_hours``), whatever
the Sun does then, marked ``issuance``; those more than ``--quiet_margin`` outside
every listed flare's [start, end] also marked ``quiet``; and the frame nearest each
flare peak; ``--max_frames=N`` keeps its first N. ``--dry_run`` stops there and
prints frames, searches, bytes and hours per month with the assumptions behind them.

Frames go to ``OUT/aia/`` by ``--route`` (``fetch_aia``): ``fido`` (the VSO,
full-resolution level 1, ~10 MiB a frame) or ``jsoc`` (JSOC exports of
aia.lev1_euv_12s with ``--jsoc_email``, rebinned to ``--image_size`` or cut out on
the server). Searches are one a day of the plan, cached under ``OUT/cache/``;
downloads go through parfive with progress bars. A rerun fetches only what is not on
disk whole: an HTML error page or a half-written file is removed and fetched again,
never kept. GOES XRS 1-minute averages go to ``OUT/goes/``. The directory is then
the manual dir of the TFDS builder; the last line printed is the ``tfds build``
command::

  python -m solar_jax.data.fetch --start 2011-01-01 --end 2012-01-01 --dry_run \\
      --min_class B1.0 --out ~/sdo_aia171_raw --route=jsoc --image_size=1024
  python -m solar_jax.data.fetch --start 2011-01-01 --end 2012-01-01 \\
      --out ~/sdo_aia171_raw --route=jsoc --image_size=1024 --jsoc_email=you@example.org

Without network it stops with one line naming the service it could not reach
(exit status 1). Downloads that fail while others succeed are counted: the
files that came are kept, one line gives the count and the first error, and
the exit status is 1 (rerun the command). A search answer without the expected
table or columns is a ``FetchError`` naming what is missing. A bad flag is one line
and exit status 2.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import pathlib
import sys
from collections.abc import Sequence

from absl import app, flags

from solar_jax import files
from solar_jax.data import (
  fetch_aia,
  fetch_files,
  fetch_routes,
  flare_list,
  frame_facts,
  goes,
)
from solar_jax.data.fetch_plan import (  # noqa: F401 (the plan's names, as before)
  PLAN_COLUMNS,
  PlannedFrame,
  issuance_times,
  near_flares,
  parse_duration,
  parse_hours,
  plan_frames,
  write_plan,
)

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

# Defaults of the command line. B1.0: the dataset has a B class, so the HEK
# list must hold B flares too. Issuance frames at 00, 06, 12, 18 UT (the default
# data.issuance_hours); quiet: none within 2 h of a listed flare's [start, end], well
# beyond the builder's 30 min label window, so a quiet frame shows no listed flare's
# rise or decay.
DEFAULT_MIN_CLASS = "B1.0"
DEFAULT_ISSUANCE_HOURS = ",".join(str(h) for h in frame_facts.ISSUANCE_HOURS)
DEFAULT_QUIET_MARGIN = "2h"
# HEK events of one flare from several modules peak within a few minutes.
MERGE_MINUTES = 6.0


FetchError = fetch_aia.FetchError
check_download = fetch_files.check_download


def hek_query(start: datetime.datetime, end: datetime.datetime, min_class: str) -> tuple:
  """sunpy attrs for GOES flares of at least ``min_class`` in [start, end]."""
  import sunpy.net.attrs as a

  goes.class_to_flux(min_class)  # validates the class string
  return (
    a.Time(start, end),
    a.hek.EventType("FL"),
    a.hek.FL.GOESCls >= min_class.upper(),
    a.hek.OBS.Observatory == "GOES",
  )


def goes_query(start: datetime.datetime, end: datetime.datetime) -> tuple:
  """sunpy attrs for GOES XRS 1-minute averages in [start, end]."""
  import sunpy.net.attrs as a

  return (a.Time(start, end), a.Instrument.xrs, a.Resolution("avg1m"))


_search = fetch_routes.search_fido


class Failures:
  """Downloads that failed: how many, and the first error (for one line to the user)."""

  def __init__(self):
    self.count, self.first = 0, ""

  def add(self, service: str, errors) -> None:
    errors = list(errors or [])
    if errors and not self.first:
      self.first = f"{service}: {' '.join(str(errors[0]).split())}"
    self.count += len(errors)


def _download(
  service: str, results, directory: pathlib.Path, failures: Failures, progress: bool = True
) -> list[str]:
  """Fido.fetch into ``directory`` (parfive's progress bar); the files written.

  Failed downloads go to ``failures``. A file that is not whole (``file_problem``:
  an HTML error page saved as .fits or .nc, a half-written FITS) is removed and
  counted as a failed download, so a rerun fetches it again instead of keeping it.

  Raises FetchError when every download failed (the network is gone).
  """
  from sunpy.net import Fido

  directory.mkdir(parents=True, exist_ok=True)
  try:
    files = Fido.fetch(results, path=str(directory / "{file}"), progress=progress)
  except OSError as e:
    raise FetchError(f"no network: cannot download from {service} ({type(e).__name__}: {e})") from e
  errors = list(getattr(files, "errors", None) or [])
  if errors and not list(files):
    raise FetchError(f"no network: every download from {service} failed (first: {errors[0]})")
  kept = []
  for file in files:
    problem = fetch_files.file_problem(file)
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
  the range still keeps quiet frames inside it away from its window. The query is
  kept in OUT/cache/hek_query.json: a rerun of the same query reads hek_events.csv
  instead of asking again.
  """
  events_csv, query_json = out / "hek_events.csv", out / "cache" / "hek_query.json"
  query = dict(start=str(start - margin), end=str(end + margin), min_class=min_class.upper())
  if events_csv.is_file() and query_json.is_file() and json.loads(query_json.read_text()) == query:
    with open(events_csv, newline="", encoding="utf-8") as f:
      num_events = sum(1 for _ in csv.DictReader(f))
  else:
    hek = _search(
      "the HEK (Heliophysics Event Knowledgebase)",
      hek_query(start - margin, end + margin, min_class),
    )
    num_events = write_hek_export(_hek_table(hek), events_csv)
    query_json.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(query_json, query)
  flares, num_merged = write_merged_export(events_csv, out / "flares.csv")
  return flares, {"hek_events": num_events, "flares": len(flares), "merged_duplicates": num_merged}


def _route(options: fetch_aia.Options, cache: pathlib.Path):
  if options.route == "jsoc":
    return fetch_routes.Jsoc(options, cache)
  return fetch_routes.Fido(options)


def _fetch_aia(plan, out: pathlib.Path, options, failures: Failures) -> dict[str, int]:
  """The AIA 171 Å frame nearest each planned time, into OUT/aia/: what is still missing.

  Searches one day at a time (cached under OUT/cache/<route>/); a file on disk that
  is not whole is removed first and fetched again.
  """
  cache = out / "cache" / options.route
  route = _route(options, cache)
  times = [p.time for p in plan]
  chosen, searches = fetch_aia.find_records(times, cache, route.search_day, options.progress)
  done, removed = fetch_files.scan_frames(out / "aia")
  records = sorted({r.key: r for r in chosen.values()}.values(), key=lambda r: r.time)
  missing = fetch_aia.missing(records, done)
  errors: list[str] = []  # a removed file is fetched again below: not a failure
  fetched = route.fetch(records, missing, out / "aia", errors) if missing else []
  done, _ = fetch_files.scan_frames(out / "aia")
  failures.add(route.service, errors)
  return {
    "aia_searches": searches,
    "aia_not_found": len(times) - len(chosen),
    "aia_files": len(fetched),
    "aia_on_disk": len(records) - len(fetch_aia.missing(records, done)),
    "aia_refetched": len(removed),
  }


def fetch(
  start: datetime.datetime,
  end: datetime.datetime,
  min_class: str,
  out: pathlib.Path,
  issuance_hours=frame_facts.ISSUANCE_HOURS,
  quiet_margin: datetime.timedelta | None = None,
  *,
  options: fetch_aia.Options | None = None,
  max_frames: int | None = None,
  dry_run: bool = False,
  mb_per_s: float = 5.0,
) -> dict:
  """Downloads flares, AIA frames and GOES XRS for [start, end] into ``out``.

  AIA frames: the one nearest each time of ``plan_frames(start, end, flares,
  issuance_hours, quiet_margin)`` (``quiet_margin`` None: ``DEFAULT_QUIET_MARGIN``),
  the first ``max_frames`` of it (None: all), the plan written as ``OUT/plan.csv``.
  ``dry_run``: the HEK is asked (or its cache read) and the plan written, nothing
  else; the counts hold ``months`` (``fetch_aia.month_table``).

  Returns:
    counts of what was written: ``hek_events`` (HEK events with a GOES class),
    ``flares`` (after merging), ``merged_duplicates`` (events joined into
    another), ``issuance_times`` (grid times planned), ``issuance_near_flares`` (of
    them, within the margin of a flare: planned, not quiet), ``aia_files`` (fetched
    by this run), ``aia_on_disk`` (planned frames now on disk), ``aia_searches``,
    ``aia_not_found`` (planned times without a record within a minute),
    ``aia_refetched`` (files found not whole, removed), ``goes_files``; and of
    downloads that failed (``failed``, with the first error in ``first_error``; the
    rest was still fetched).

  Raises:
    FetchError: no network, or an answer of an unexpected shape (one line).
    flare_list.FlareListError: a HEK answer whose rows cannot be read.
  """
  out = pathlib.Path(out).expanduser()
  options = options or fetch_aia.Options()
  if quiet_margin is None:
    quiet_margin = parse_duration(DEFAULT_QUIET_MARGIN)
  failures = Failures()
  flares, counts = _fetch_flares(start, end, min_class, out, quiet_margin)
  plan = plan_frames(start, end, flares, issuance_hours, quiet_margin)[:max_frames]
  write_plan(out / "plan.csv", plan)
  counts.update(
    issuance_times=sum(p.issuance for p in plan),
    issuance_near_flares=sum(p.issuance and not p.quiet for p in plan),
  )
  if dry_run:
    return dict(counts, months=fetch_aia.month_table(plan, options, mb_per_s))
  counts.update(_fetch_aia(plan, out, options, failures))
  goes_search = "NOAA NCEI (GOES XRS search)"
  xrs = _search(goes_search, goes_query(start, end))
  goes_files = []
  if _file_num(goes_search, xrs):
    goes_files = _download("NOAA NCEI (GOES XRS)", xrs, out / "goes", failures, options.progress)
  return dict(counts, goes_files=len(goes_files), failed=failures.count, first_error=failures.first)


# ------------------------------------------------------------------ CLI ---

FLAGS = flags.FLAGS
flags.DEFINE_string("start", None, "UTC start, ISO 8601 (YYYY-MM-DD[THH:MM]).")
flags.DEFINE_string("end", None, "UTC end, ISO 8601.")
flags.DEFINE_string("out", None, "The output directory (the builder's manual dir).")
flags.DEFINE_string("min_class", DEFAULT_MIN_CLASS, "Smallest GOES class of the HEK flares.")
flags.DEFINE_string(
  "issuance_hours",
  DEFAULT_ISSUANCE_HOURS,
  "UT hours of the forecast issuance grid, a frame each day at each (as data.issuance_hours).",
)
flags.DEFINE_string(
  "quiet_margin",
  DEFAULT_QUIET_MARGIN,
  "An issuance frame within this of a listed flare's [start, end] is not marked quiet.",
)
flags.DEFINE_bool("dry_run", False, "Print frames, bytes and hours per month; fetch nothing.")
flags.DEFINE_integer(
  "max_frames", None, "Fetch only the first N frames of the plan.", lower_bound=1
)
flags.DEFINE_enum(
  "route", "fido", ["fido", "jsoc"], "fido: full-resolution level 1 (VSO); jsoc: JSOC exports."
)
flags.DEFINE_string("jsoc_email", "", "Email registered at the JSOC (needed by --route=jsoc).")
flags.DEFINE_enum(
  "jsoc_process", "rebin", ["rebin", "cutout", "none"], "JSOC processing: rebin, cutout, none."
)
flags.DEFINE_integer("image_size", 1024, "Side the JSOC rebins to (4096 / a power of 2).")
flags.DEFINE_float("cutout_arcsec", 2000.0, "Side of the JSOC cutout, centred on the disk.")
flags.DEFINE_float(
  "assumed_mb_per_s", 5.0, "Download rate the dry run assumes (MB/s).", lower_bound=0.001
)
flags.DEFINE_bool("progress", True, "Progress bars (tqdm, parfive).")


@dataclasses.dataclass(frozen=True)
class Args:
  start: datetime.datetime
  end: datetime.datetime
  out: pathlib.Path
  min_class: str
  issuance_hours: tuple
  quiet_margin: datetime.timedelta
  options: fetch_aia.Options
  max_frames: int | None
  dry_run: bool
  mb_per_s: float


def _usage(message: str):
  print(f"fetch: {message} (see --help)", file=sys.stderr)
  raise SystemExit(2)


def _time_flag(name: str) -> datetime.datetime:
  value = getattr(FLAGS, name)
  if value is None:
    _usage(f"--{name} is required")
  try:
    return flare_list.to_naive_utc(value)
  except ValueError:
    _usage(f"--{name}={value!r} is not an ISO time (YYYY-MM-DD[THH:MM])")


def _args_from_flags() -> Args:
  start, end = _time_flag("start"), _time_flag("end")
  if end <= start:
    _usage(f"--end {end} must be after --start {start}")
  if FLAGS.out is None:
    _usage("--out is required")
  try:
    goes.class_to_flux(FLAGS.min_class)
    hours, margin = parse_hours(FLAGS.issuance_hours), parse_duration(FLAGS.quiet_margin)
  except ValueError as e:
    _usage(str(e))
  ratio = fetch_aia.FULL_SIDE / FLAGS.image_size if FLAGS.image_size > 0 else 0
  if (
    FLAGS.route == "jsoc"
    and FLAGS.jsoc_process == "rebin"
    and not (ratio >= 1 and ratio == int(ratio) and int(ratio) & (int(ratio) - 1) == 0)
  ):
    _usage(f"--image_size={FLAGS.image_size}: use 4096 / a power of 2 (4096, 2048, 1024, 512, ...)")
  if FLAGS.route == "jsoc" and not FLAGS.dry_run and "@" not in FLAGS.jsoc_email:
    _usage("--route=jsoc needs --jsoc_email (registered at jsoc.stanford.edu)")
  options = fetch_aia.Options(
    FLAGS.route,
    FLAGS.jsoc_email,
    FLAGS.jsoc_process,
    FLAGS.image_size,
    FLAGS.cutout_arcsec,
    FLAGS.progress,
  )
  out = pathlib.Path(FLAGS.out).expanduser()
  return Args(
    start,
    end,
    out,
    FLAGS.min_class,
    hours,
    margin,
    options,
    FLAGS.max_frames,
    FLAGS.dry_run,
    FLAGS.assumed_mb_per_s,
  )


def parse_args(argv: Sequence[str] | None = None) -> Args:
  """The flags of ``argv`` (without the program name); a bad one is one line and exit 2."""
  FLAGS.unparse_flags()
  try:
    FLAGS(["fetch", *(sys.argv[1:] if argv is None else argv)])
  except flags.Error as e:
    _usage(str(e))
  return _args_from_flags()


def build_command(out: pathlib.Path, image_size: int) -> str:
  """The ``tfds build`` command that builds the dataset from ``out`` (README, step 2)."""
  configs = [s for s in (64, 128, 256, 512) if s <= image_size] or [64]
  return (
    f"tfds build tfds_builders/sdo_aia171 --config={configs[-1]} --manual_dir={out} "
    "--data_dir=~/tensorflow_datasets"
  )


def _print_dry_run(args: Args, counts: dict) -> None:
  print(
    f"fetch (dry run): {counts['flares']} flares, plan of {counts['months'][-1]['frames']} AIA "
    f"frames written to {args.out / 'plan.csv'} (--route={args.options.route})"
  )
  print(fetch_aia.format_table(counts["months"]))
  print(fetch_aia.assumptions(args.options, args.mb_per_s))
  print("next: the same command without --dry_run")


def _flags_parser(argv: list[str]) -> list[str]:
  """absl's flags_parser: a bad flag is one line and exit 2."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    _usage(str(e))


def _absl_main(argv: list[str]) -> None:
  if len(argv) > 1:
    _usage(f"unexpected arguments: {' '.join(argv[1:])}")
  sys.exit(run(_args_from_flags()))


def main(argv: Sequence[str] | None = None) -> int:
  """The command line ``argv`` (without the program name): its exit status."""
  return run(parse_args(argv))


def run(args: Args) -> int:
  """Fetches (or plans, ``--dry_run``) as ``args`` say; prints what came and what next."""
  try:
    counts = fetch(
      args.start,
      args.end,
      args.min_class,
      args.out,
      args.issuance_hours,
      args.quiet_margin,
      options=args.options,
      max_frames=args.max_frames,
      dry_run=args.dry_run,
      mb_per_s=args.mb_per_s,
    )
  except (FetchError, flare_list.FlareListError) as e:
    print(f"fetch: {e}", file=sys.stderr)
    return 1
  if args.dry_run:
    _print_dry_run(args, counts)
    return 0
  print(
    f"fetch: wrote {counts['flares']} flares ({counts['merged_duplicates']} duplicate HEK "
    f"events merged), {counts['aia_files']} AIA files ({counts['aia_on_disk']} of the plan's "
    f"frames on disk; {counts['issuance_times']} issuance times, {counts['issuance_near_flares']} "
    f"of them near flares; plan.csv; {counts['aia_searches']} day searches, "
    f"{counts['aia_not_found']} times without a frame; {counts['aia_refetched']} files not whole, "
    f"fetched again) and {counts['goes_files']} GOES files "
    f"under {args.out}"
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
  print(
    f"next: {build_command(args.out, args.options.image_size if args.options.route == 'jsoc' else 512)}"
  )
  return 0


if __name__ == "__main__":
  app.run(_absl_main, flags_parser=_flags_parser)
