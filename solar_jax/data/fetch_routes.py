"""The two archives the fetcher asks for AIA frames: the VSO through Fido, the JSOC through drms.

Each route has ``search_day(start, end) -> [Record]`` (one search of a day) and
``fetch(records, missing, directory, errors) -> [files]``; ``fetch_aia`` chooses,
caches and resumes around them. The services are reached only through
``sunpy.net.Fido`` (``search``, ``fetch``), ``jsoc_client`` (a ``drms.Client``) and
``make_downloader`` (a ``parfive.Downloader``), which the tests replace.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import re
import warnings

from solar_jax import files
from solar_jax.data import fetch_aia
from solar_jax.data.fetch_aia import FetchError, Record

# The columns of a VSO answer kept to fetch a record later (sunpy's VSOQueryResponseTable;
# VSOClient.fetch reads Provider and fileid, and Info Required when the VSO asks for it).
VSO_COLUMNS = (
  "Start Time",
  "Provider",
  "Source",
  "Instrument",
  "Physobs",
  "fileid",
  "Info Required",
)
JSOC_KEYS = ("T_REC", "T_OBS", "QUALITY")


def search_fido(service: str, attrs: tuple):
  """Fido.search, with a lost network as one FetchError naming ``service``."""
  from sunpy.net import Fido
  from sunpy.util.exceptions import SunpyConnectionWarning

  try:
    with warnings.catch_warnings():
      # sunpy warns once per mirror it tries; the error below says it once.
      warnings.simplefilter("ignore", SunpyConnectionWarning)
      return Fido.search(*attrs)
  except OSError as e:  # URLError, ConnectionError, socket and aiohttp errors
    raise FetchError(f"no network: cannot reach {service} ({type(e).__name__}: {e})") from e


def aia_day_query(start: datetime.datetime, end: datetime.datetime) -> tuple:
  """sunpy attrs for the AIA 171 Å records in [start, end], one a minute."""
  import astropy.units as u
  import sunpy.net.attrs as a

  return (
    a.Time(start, end),
    a.Instrument.aia,
    a.Wavelength(171 * u.angstrom),
    a.Sample(1 * u.min),
  )


def _json_value(value):
  if isinstance(value, datetime.datetime):
    return value.isoformat(timespec="milliseconds")
  if hasattr(value, "unit"):
    return float(getattr(value, "value", value))
  return None if value is None else str(value)


def _values(column) -> list:
  """A column's values as Python objects (a Time column as datetimes, at once)."""
  if hasattr(column, "datetime"):
    return list(column.datetime)
  return list(column)


def _vso_tables(found) -> list:
  """The VSO tables of a Fido answer; FetchError naming a missing column."""
  tables = [t for t in found if len(t)] if hasattr(found, "__iter__") else None
  if tables is None:
    raise FetchError(f"unexpected answer from the VSO (AIA search): a {type(found).__name__}")
  for table in tables:
    names = set(getattr(table, "colnames", ()))
    lacking = [c for c in ("Start Time", "Provider", "fileid") if c not in names]
    if lacking:
      raise FetchError(
        f"unexpected answer from the VSO (AIA search): no column {', '.join(lacking)} "
        f"(columns are {sorted(names)})"
      )
  return tables


def _vso_client():
  """A VSO client for records read back from the cache (needs the network)."""
  from sunpy.net.vso import VSOClient

  return VSOClient()


def make_downloader(progress: bool):
  """parfive's downloader: parallel, with its progress bars; a half-written file is overwritten."""
  import parfive

  return parfive.Downloader(max_conn=4, progress=progress, overwrite=True)


class Fido:
  """AIA level 1 at full resolution through the VSO (sunpy's Fido and parfive)."""

  name = "fido"
  service = "the VSO (AIA)"

  def __init__(self, options: fetch_aia.Options):
    self.options, self._client = options, None

  def search_day(self, start, end) -> list[Record]:
    found = search_fido("the VSO (AIA search)", aia_day_query(start, end))
    records = []
    for table in _vso_tables(found):
      kept = [c for c in VSO_COLUMNS if c in table.colnames]
      columns = [[_json_value(v) for v in _values(table[c])] for c in kept]
      for i, time in enumerate(_values(table["Start Time"])):
        if not isinstance(time, datetime.datetime):
          time = datetime.datetime.fromisoformat(str(time))
        values = tuple((c, column[i]) for c, column in zip(kept, columns))
        records.append(Record(time, str(table["fileid"][i]), values))
    return records

  def fetch(self, records, missing, directory: pathlib.Path, errors: list) -> list[pathlib.Path]:
    """Fetches the ``missing`` records, ``BATCH`` a call (``records``: all the plan's)."""
    from sunpy.net import Fido as fido
    from sunpy.net.vso.table_response import VSOQueryResponseTable

    directory.mkdir(parents=True, exist_ok=True)
    fetched = []
    for i in range(0, len(missing), fetch_aia.BATCH):
      rows = [dict(r.row) for r in missing[i : i + fetch_aia.BATCH]]
      if self._client is None:
        self._client = _vso_client()  # once a run: it loads the VSO's WSDL
      table = VSOQueryResponseTable(rows=rows, client=self._client)
      try:
        results = fido.fetch(
          table, path=str(directory / "{file}"), progress=self.options.progress, overwrite=True
        )
      except OSError as e:
        raise FetchError(
          f"no network: cannot download from {self.service} ({type(e).__name__}: {e})"
        ) from e
      failed = list(getattr(results, "errors", None) or [])
      if failed and not list(results) and not fetched:
        raise FetchError(
          f"no network: every download from {self.service} failed (first: {failed[0]})"
        )
      errors += [f"{self.service}: {' '.join(str(e).split())}" for e in failed]
      fetched += fetch_aia.check_fetched(list(results), errors)
    return fetched


def jsoc_client(email: str):
  """A drms client of the JSOC (exports need ``email`` registered there)."""
  import drms

  return drms.Client(email=email or None)


def jsoc_time(text) -> datetime.datetime | None:
  """A JSOC time ('2011-06-07T06:40:59.34Z', '2011.06.07_06:40:59_UTC') as naive UTC; None if not one."""
  match = re.fullmatch(
    r"(\d{4})[-.](\d\d)[-.](\d\d)[T_](\d\d):(\d\d):(\d\d(?:\.\d*)?)(Z|_UTC)?", str(text).strip()
  )
  if match is None:
    return None
  y, mo, d, h, mi = (int(g) for g in match.groups()[:5])
  return datetime.datetime(y, mo, d, h, mi) + datetime.timedelta(seconds=float(match.group(6)))


def _record_trec(record: str) -> str:
  """'aia.lev1_euv_12s_mod[2011-06-07T06:41:00Z][171]' -> '2011-06-07T06:41:00Z'."""
  match = re.search(r"\[([^\]]+)\]", str(record))
  return match.group(1) if match else ""


class Jsoc:
  """aia.lev1_euv_12s through JSOC exports (drms), rebinned or cut out on the server."""

  name = "jsoc"
  service = "the JSOC (AIA export)"

  def __init__(self, options: fetch_aia.Options, cache: pathlib.Path):
    self.options, self.exports = options, cache / "exports.json"
    self.client = jsoc_client(options.jsoc_email)

  def search_day(self, start, end) -> list[Record]:
    minutes = round((end - start).total_seconds() / 60)
    ds = f"{fetch_aia.SERIES}[{start:%Y-%m-%dT%H:%M:%S}Z/{minutes}m][171]"
    try:
      table = self.client.query(ds, key=",".join(JSOC_KEYS))
    except (OSError, RuntimeError) as e:  # URLError, drms.DrmsError
      raise FetchError(f"cannot search the JSOC ({ds}): {type(e).__name__}: {e}") from e
    lacking = [k for k in JSOC_KEYS if k not in getattr(table, "columns", ())]
    if lacking:
      raise FetchError(f"unexpected answer from the JSOC ({ds}): no key {', '.join(lacking)}")
    records = []
    for trec, tobs, quality in zip(table["T_REC"], table["T_OBS"], table["QUALITY"]):
      time = jsoc_time(tobs)
      if time is not None and int(quality) == 0:  # QUALITY != 0: a flagged frame
        records.append(Record(time, str(trec)))
    return records

  def process(self, chunk) -> dict | None:
    """The processing step of an export (drms's ``process``), None for full resolution."""
    if self.options.jsoc_process == "rebin":
      return {"rebin": {"method": "boxcar", "scale": self.options.image_size / fetch_aia.FULL_SIDE}}
    if self.options.jsoc_process == "cutout":
      width = self.options.cutout_arcsec
      return {
        "im_patch": {
          "t_ref": chunk[0].key,
          "t": 0,
          "r": 0,
          "c": 0,
          "locunits": "arcsec",
          "boxunits": "arcsec",
          "x": 0,
          "y": 0,
          "width": width,
          "height": width,
        }
      }
    return None

  def _request(self, ds: str, process):
    """The export of ``ds`` (the cached request when there is one); its key in the cache."""
    key = fetch_aia.export_key(ds, process)
    ids = json.loads(self.exports.read_text()) if self.exports.is_file() else {}
    try:
      if key in ids:
        return self.client.export_from_id(ids[key]), key
      request = self.client.export(
        ds, method="url", protocol="fits", process=process, email=self.options.jsoc_email
      )
    except (OSError, RuntimeError, ValueError) as e:
      raise FetchError(
        f"the JSOC refused the export of {ds[:80]}...: {type(e).__name__}: {e}"
      ) from e
    ids[key] = request.id
    self.exports.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(self.exports, ids)
    return request, key

  def _forget(self, key: str) -> None:
    ids = json.loads(self.exports.read_text()) if self.exports.is_file() else {}
    ids.pop(key, None)
    files.write_json(self.exports, ids)

  def fetch(self, records, missing, directory: pathlib.Path, errors: list) -> list[pathlib.Path]:
    """Exports each month's ``records`` (a chunk with a missing one), downloads the missing files."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = {r.key for r in missing}
    fetched = []
    for chunk in _chunks(records):
      if not wanted & {r.key for r in chunk}:
        continue  # every frame of this export is on disk: no request
      ds = f"{fetch_aia.SERIES}[{','.join(r.key for r in chunk)}][171]{{image}}"
      request, key = self._request(ds, self.process(chunk))
      request.wait()
      if not request.has_succeeded():
        self._forget(key)
        errors.append(f"{self.service}: request {request.id} ended with status {request.status}")
        continue
      downloader = make_downloader(self.options.progress)
      for record, name, url in zip(
        request.urls["record"], request.urls["filename"], request.urls["url"]
      ):
        if _record_trec(record) in wanted:
          downloader.enqueue_file(url, path=str(directory), filename=name)
      results = downloader.download()
      failed = list(getattr(results, "errors", None) or [])
      if failed:  # an expired export answers 404: the next run asks again
        self._forget(key)
      errors += [f"{self.service}: {' '.join(str(e).split())}" for e in failed]
      fetched += fetch_aia.check_fetched(list(results), errors)
    return fetched


def _chunks(records) -> list[list[Record]]:
  """Records by the month of their T_REC, at most EXPORT_CHUNK each, in time order."""
  by_month: dict[tuple, list] = {}
  for r in sorted({r.key: r for r in records}.values(), key=lambda r: r.time):
    month = jsoc_time(r.key) or r.time  # T_REC's month (T_OBS can be a second before it)
    by_month.setdefault((month.year, month.month), []).append(r)
  size = fetch_aia.EXPORT_CHUNK
  return [m[i : i + size] for m in by_month.values() for i in range(0, len(m), size)]
