"""Offline stand-ins for the services the fetcher asks, answering in their real shapes.

- ``FakeFido``: ``Fido.search`` answers the HEK (an astropy table with Time columns), the
  VSO (a real ``VSOQueryResponseTable`` in a ``UnifiedResponse``: Start Time, Provider,
  fileid, ...; one AIA 171 record a minute at :03.34) and GOES XRS; ``Fido.fetch`` writes
  a small FITS file per VSO row (T_OBS its time) under the row's file name, or what a
  test set in ``pages`` (an HTML error page, a cut file), and returns parfive ``Results``.
- ``FakeJsoc``: a drms client (``query`` -> pandas DataFrame of T_REC, T_OBS, QUALITY;
  ``export``/``export_from_id`` -> an export request with ``urls`` record/filename/url)
  and ``FakeDownloader`` (parfive's ``enqueue_file``/``download``).
"""

from __future__ import annotations

import datetime
import io
import pathlib
import re

import numpy as np

HTML = b"<!DOCTYPE html>\n<html><body><h1>503 Service Unavailable</h1></body></html>\n"
NETCDF = b"CDF\x01\x00\x00\x00\x00"


def fits_bytes(time: datetime.datetime, side: int = 4) -> bytes:
  """A whole FITS file of a ``side``² int16 image observed at ``time`` (T_OBS, DATE-OBS)."""
  from astropy.io import fits

  hdu = fits.PrimaryHDU(np.zeros((side, side), np.int16))
  hdu.header["T_OBS"] = time.isoformat(timespec="milliseconds") + "Z"
  hdu.header["DATE-OBS"] = hdu.header["T_OBS"]
  buffer = io.BytesIO()
  hdu.writeto(buffer)
  return buffer.getvalue()


def _of_type(attrs, cls):
  return [x for x in attrs if isinstance(x, cls)]


def vso_name(t: datetime.datetime) -> str:
  """The file name the VSO gives an AIA level-1 171 Å record (slugified Content-Disposition)."""
  return f"aia_lev1_171a_{t:%Y_%m_%dt%H_%M_%S}_34z_image_lev1.fits"


def vso_table(start: datetime.datetime, end: datetime.datetime):
  """What the VSO answers for AIA 171 Å in [start, end], one record a minute (a.Sample)."""
  import astropy.units as u
  from astropy.time import Time
  from sunpy.net.fido_factory import UnifiedResponse
  from sunpy.net.vso.table_response import VSOQueryResponseTable

  first = start.replace(second=0, microsecond=0) + datetime.timedelta(seconds=3.34)
  times = []
  while first <= end:
    if first >= start:
      times.append(first)
    first += datetime.timedelta(minutes=1)
  n = len(times)
  table = VSOQueryResponseTable(
    {
      "Start Time": Time(times),
      "End Time": Time([t + datetime.timedelta(seconds=2) for t in times]),
      "Source": ["SDO"] * n,
      "Instrument": ["AIA"] * n,
      "Wavelength": u.Quantity([[171.0, 171.0]] * n, u.AA),
      "Provider": ["JSOC"] * n,
      "Physobs": ["intensity"] * n,
      "Wavetype": ["NARROW"] * n,
      "Extent Width": ["4096"] * n,
      "Extent Length": ["4096"] * n,
      "Extent Type": ["FULLDISK"] * n,
      "Size": u.Quantity([64.64] * n, u.Mibyte),
      "fileid": [f"aia__lev1:171:{int(t.timestamp())}" for t in times],
    },
    client=None,
  )
  return UnifiedResponse(table)


class _Found:
  """A Fido answer of ``n`` GOES files (the fetcher reads file_num and passes it to fetch)."""

  def __init__(self, n, name):
    self.file_num, self.name = n, name

  def __getitem__(self, key):
    return self


class FakeFido:
  """Fido.search/fetch answering from ``hek_table``; records every call it gets."""

  def __init__(self, monkeypatch, hek_table):
    import sunpy.net.attrs as a
    from sunpy.net import Fido

    from solar_jax.data import fetch_routes

    self.hek_table, self.a = hek_table, a
    self.searches = {"hek": [], "aia": [], "xrs": []}
    self.fetched: list[list[str]] = []  # the fileids of each AIA fetch call
    self.pages: dict[str, bytes] = {}  # file name -> what the server sends instead
    self.errors: dict[str, str] = {}  # file name -> the error its download ends with
    # (call, n): in the call-th AIA fetch (from 0), write n files, half the next, then a kill.
    self.kill_after: tuple[int, int] | None = None
    monkeypatch.setattr(Fido, "search", self.search)
    monkeypatch.setattr(Fido, "fetch", self.fetch)
    monkeypatch.setattr(fetch_routes, "_vso_client", lambda: None)

  def search(self, *attrs):
    a = self.a
    (time,) = _of_type(attrs, a.Time)
    span = (time.start.datetime, time.end.datetime)
    if _of_type(attrs, a.hek.EventType):
      self.searches["hek"].append(span)
      return {"hek": self.hek_table}
    (instrument,) = _of_type(attrs, a.Instrument)
    if instrument.value.lower() == "xrs":
      self.searches["xrs"].append(span)
      return _Found(1, "sci_xrsf-l2-avg1m_g15_d20110607_v1-0-0.nc")
    self.searches["aia"].append(span)
    return vso_table(*span)

  def fetch(self, found, path, progress=True, overwrite=False):
    from parfive import Results

    results = Results()
    if isinstance(found, _Found):
      file = pathlib.Path(path.format(file=found.name))
      if not file.exists():
        file.write_bytes(self.pages.get(found.name, NETCDF))
      results.append(path=str(file), url=f"https://fake/{file.name}")
      return results
    self.fetched.append([str(r) for r in found["fileid"]])
    for row in found:
      t = datetime.datetime.fromisoformat(str(row["Start Time"]))
      name = vso_name(t)
      file = pathlib.Path(path.format(file=name))
      data = self.pages.get(name, fits_bytes(t))
      if name in self.errors:
        results.add_error(name, f"https://fake/{name}", OSError(self.errors[name]))
        continue
      if self.kill_after == (len(self.fetched) - 1, len(results)):
        file.write_bytes(data[: len(data) // 2])  # the file being written when killed
        raise KeyboardInterrupt
      file.write_bytes(data)
      results.append(path=str(file), url=f"https://fake/{file.name}")
    return results


def jsoc_trec(t: datetime.datetime) -> str:
  return f"{t:%Y-%m-%dT%H:%M:%S}Z"


class FakeJsoc:
  """A drms client answering keyword queries of aia.lev1_euv_12s and export requests."""

  def __init__(self, flagged=()):
    self.flagged = set(flagged)  # T_REC values whose QUALITY is not 0
    self.queries: list[str] = []
    self.exports: list[tuple] = []  # (ds, process) of every new export request
    self.requests: dict[str, FakeRequest] = {}

  def query(self, ds, key):
    import pandas as pd

    self.queries.append(ds)
    match = re.search(r"\[(\S+?)Z/(\d+)m\]", ds)
    start = datetime.datetime.fromisoformat(match.group(1))
    rows = []
    for i in range(0, int(match.group(2)) * 60 + 1, 12):
      t = start + datetime.timedelta(seconds=i)
      trec = jsoc_trec(t)
      t_obs = t - datetime.timedelta(seconds=0.66)
      rows.append(
        (trec, f"{t_obs:%Y-%m-%dT%H:%M:%S.%f}"[:-4] + "Z", 1 << 30 if trec in self.flagged else 0)
      )
    return pd.DataFrame(rows, columns=key.split(","))

  def export(self, ds, method, protocol, process, email):
    assert (method, protocol) == ("url", "fits") and "@" in email
    self.exports.append((ds, process))
    request = FakeRequest(f"JSOC_20261202_{len(self.requests):03d}", ds, process)
    self.requests[request.id] = request
    return request

  def export_from_id(self, request_id):
    return self.requests[request_id]


class FakeRequest:
  """drms.ExportRequest: id, status, wait, has_succeeded, urls (record, filename, url)."""

  def __init__(self, request_id, ds, process):
    import pandas as pd

    self.id, self.status = request_id, 0
    trecs = re.match(r"aia\.lev1_euv_12s\[([^\]]+)\]\[171\]\{image\}$", ds).group(1).split(",")
    series = "aia.lev1_euv_12s_mod" if process else "aia.lev1_euv_12s"
    rows = []
    for trec in trecs:
      name = f"aia.lev1_euv_12s.{trec.replace(':', '')}.171.image.fits"
      rows.append(
        (f"{series}[{trec}][171]", name, f"http://jsoc.stanford.edu/SUM1/{self.id}/{name}")
      )
    self.urls = pd.DataFrame(rows, columns=["record", "filename", "url"])

  def wait(self):
    return True

  def has_succeeded(self):
    return self.status == 0


class FakeDownloader:
  """parfive.Downloader: serves each JSOC url as a small FITS file (or ``pages[name]``)."""

  def __init__(self, pages=None, log=None):
    self.queue, self.pages, self.log = [], pages or {}, log if log is not None else []

  def enqueue_file(self, url, path, filename):
    self.queue.append((url, pathlib.Path(path) / filename))

  def download(self):
    from parfive import Results

    results = Results()
    for _url, file in self.queue:
      self.log.append(file.name)
      trec = re.search(r"\.(\d{4}-\d\d-\d\dT\d{6})Z\.", file.name).group(1)
      t = datetime.datetime.strptime(trec, "%Y-%m-%dT%H%M%S") - datetime.timedelta(seconds=0.66)
      file.write_bytes(self.pages.get(file.name, fits_bytes(t)))
      results.append(path=str(file), url=f"https://fake/{file.name}")
    return results
