"""Downloads the raw inputs of the sdo_aia171 dataset (needs internet).

Queries the HEK for GOES flares, writes them as ``OUT/flares.csv`` (a HEK
export that ``flare_labels.read_flare_list`` reads), downloads the AIA 171 Å
frame nearest each flare peak and quiet frames at a fixed cadence to
``OUT/aia/``, and GOES XRS 1-minute averages to ``OUT/goes/``. The directory
is then the manual dir of the TFDS builder::

  python -m solar_jax.data.fetch --start 2011-06-01 --end 2011-07-01 \\
      --min_class C1.0 --quiet_cadence 6h --out ~/sdo_aia171_raw

Without network it stops with one line naming the service it could not reach
(exit status 1). Downloads that fail while others succeed are counted: the
files that came are kept, one line gives the count and the first error, and
the exit status is 1. A search answer without the expected table or columns
is a ``FetchError`` naming what is missing.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import pathlib
import re
import sys
import warnings
from collections.abc import Sequence

import astropy.units as u
import sunpy.net.attrs as a
from sunpy.net import Fido
from sunpy.util.exceptions import SunpyConnectionWarning

from solar_jax.data import flare_labels

# Columns of the HEK export (flare_labels reads the first four).
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


class FetchError(RuntimeError):
  """A download step failed; the message is one line for the user."""

  def __init__(self, message: str):
    super().__init__(" ".join(str(message).split()))


def parse_cadence(text: str) -> datetime.timedelta:
  """'6h', '30m', '1d', '90s' -> timedelta."""
  match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
  if not match:
    raise ValueError(f"cadence {text!r}: use a number and s/m/h/d, e.g. '6h'.")
  unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
  value = datetime.timedelta(**{unit: float(match.group(1))})
  if value <= datetime.timedelta(0):
    raise ValueError(f"cadence {text!r} must be positive.")
  return value


def hek_query(start: datetime.datetime, end: datetime.datetime, min_class: str) -> tuple:
  """sunpy attrs for GOES flares of at least ``min_class`` in [start, end]."""
  flare_labels.class_to_flux(min_class)  # validates the class string
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


def aia_quiet_query(start: datetime.datetime, end: datetime.datetime, cadence) -> tuple:
  """sunpy attrs for AIA 171 Å frames every ``cadence`` in [start, end]."""
  return (
    a.Time(start, end),
    a.Instrument.aia,
    a.Wavelength(171 * u.angstrom),
    a.Sample(cadence.total_seconds() * u.s),
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


def _download(service: str, results, directory: pathlib.Path, failures: Failures) -> list[str]:
  """Fido.fetch into ``directory``; the files written. Failed downloads go to ``failures``.

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
  failures.add(service, errors)
  return list(files)


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
    peak = _iso(row["event_peaktime"])
    if not goes_class or (peak, goes_class) in seen:
      continue  # several HEK methods report the same GOES flare
    seen.add((peak, goes_class))
    rows.append([_iso(row[c]) if c in names else "" for c in HEK_COLUMNS])
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(HEK_COLUMNS)
    writer.writerows(rows)
  return len(rows)


def fetch(
  start: datetime.datetime,
  end: datetime.datetime,
  min_class: str,
  out: pathlib.Path,
  quiet_cadence: datetime.timedelta,
) -> dict[str, int]:
  """Downloads flares, AIA frames and GOES XRS for [start, end] into ``out``.

  Returns:
    counts of what was written (``flares``, ``aia_files``, ``goes_files``) and
    of downloads that failed (``failed``, with the first error in
    ``first_error``; the rest was still fetched).

  Raises:
    FetchError: no network, or an answer of an unexpected shape (one line).
  """
  out = pathlib.Path(out).expanduser()
  failures = Failures()
  hek = _search("the HEK (Heliophysics Event Knowledgebase)", hek_query(start, end, min_class))
  flares_csv = out / "flares.csv"
  num_flares = write_hek_export(_hek_table(hek), flares_csv)
  flares = flare_labels.read_flare_list(flares_csv)

  aia_files = []
  aia, aia_search = "the VSO/JSOC (AIA)", "the VSO/JSOC (AIA search)"
  for flare in flares:
    found = _search(aia_search, aia_query(flare.peak))
    if _file_num(aia_search, found):
      aia_files += _download(aia, found[:, 0], out / "aia", failures)
  quiet = _search(aia_search, aia_quiet_query(start, end, quiet_cadence))
  if _file_num(aia_search, quiet):
    aia_files += _download(aia, quiet, out / "aia", failures)
  goes_search = "NOAA NCEI (GOES XRS search)"
  goes = _search(goes_search, goes_query(start, end))
  goes_files = []
  if _file_num(goes_search, goes):
    goes_files = _download("NOAA NCEI (GOES XRS)", goes, out / "goes", failures)
  return {
    "flares": num_flares,
    "aia_files": len(aia_files),
    "goes_files": len(goes_files),
    "failed": failures.count,
    "first_error": failures.first,
  }


def _time(text: str) -> datetime.datetime:
  try:
    return flare_labels.to_naive_utc(text)
  except ValueError as e:
    raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time (YYYY-MM-DD[THH:MM])") from e


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
    prog="python -m solar_jax.data.fetch", description=__doc__.split("\n")[0]
  )
  parser.add_argument("--start", type=_time, required=True, help="UTC start, ISO 8601")
  parser.add_argument("--end", type=_time, required=True, help="UTC end, ISO 8601")
  parser.add_argument("--min_class", default="C1.0", help="smallest GOES class, e.g. M1.0")
  parser.add_argument("--out", type=pathlib.Path, required=True, help="output directory")
  parser.add_argument("--quiet_cadence", type=parse_cadence, default="6h", help="e.g. 6h, 90m")
  args = parser.parse_args(argv)
  if args.end <= args.start:
    parser.error(f"--end {args.end} must be after --start {args.start}")
  try:
    flare_labels.class_to_flux(args.min_class)
  except ValueError as e:
    parser.error(f"--min_class: {e}")
  return args


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(argv)
  try:
    counts = fetch(args.start, args.end, args.min_class, args.out, args.quiet_cadence)
  except (FetchError, flare_labels.FlareListError) as e:
    print(f"fetch: {e}", file=sys.stderr)
    return 1
  print(
    f"fetch: wrote {counts['flares']} flares, {counts['aia_files']} AIA files and "
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
