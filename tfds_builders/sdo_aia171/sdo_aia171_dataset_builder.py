"""sdo_aia171: SDO/AIA 171 Å images with the GOES and flare facts of each frame.

Reads a manual directory of AIA level-1/1.5 FITS files (or an SDOML v2 Zarr
store: ``solar_jax.data.sdoml``), a flare list and
(optionally) GOES XRS files, and writes one example per usable frame, stored
in DN/s at the config's resolution. A record keeps FACTS, not one label
(``frame_facts``: GOES flux at the frame on the true scale, the flare it
belongs to with its times and AR, the next 24 h); the training configs choose
a label from them on read (``data.label``). Layout and options: README.md
beside this file.

Splits. Stored splits are month blocks ``block0 .. block{k-1}`` (calendar month
index modulo ``num_folds``); train / validation / test of a fold, with the
embargo, are chosen on read (``solar_jax.data.splits``), so every fold is read
from one build. A simulated archive (the demo) is flagged in the dataset's
metadata (``simulated``) and every report built on it says so.

Bad input never stops the build. Each file that cannot become an example is
skipped with a reason (``aia.BadFrameError`` reasons,
``duplicate_time``, ...) and listed in ``build_report.json`` in the dataset
version directory, beside ``dataset_info.json`` (``solar_jax.data.build_report``);
a summary is logged (absl, INFO).
A flare list or XRS file that cannot be read stops the build with an error
naming the file (without it no label can be trusted); so does a flare list
with more than half of its rows unreadable (``flare_list.read_flare_list``).
Flare-list rows left out, GOES files without a usable sample and directory
entries not followed (symlink loops, dangling links) are logged as warnings
and listed in the report; the build goes on.

Passing Beam options (``tfds build --beam_pipeline_options=...`` or
``DownloadConfig(beam_options=...)``) runs the per-file work as an Apache
Beam pipeline; without them it runs in this process. Both give the same
examples and the same report.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import datetime
import functools
import pathlib
import sys

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

# `tfds build tfds_builders/sdo_aia171` from a checkout without `pip install -e .`
# cannot import solar_jax: the repository root is put on sys.path then.
try:
  from solar_jax.data import aia, build_report, flare_list, frame_facts, frame_geometry, goes, sdoml
except ImportError:
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
  from solar_jax.data import aia, build_report, flare_list, frame_facts, frame_geometry, goes, sdoml

CLASS_NAMES = goes.CLASS_LETTERS
# The intensity above which the default transform (data.clip_max) saturates:
# the report gives the share of frames per class whose disk exceeds it.
REFERENCE_CLIP_DN_S = 3000.0

# The terms of the data (DATA_LICENSE.md at the repository root); TFDS writes them to
# the dataset's LICENSE file. The citation is CITATIONS.bib beside this file (TFDS reads it).
LICENSE = (
  "SDO/AIA images: NASA data, public domain in the United States, free to use; the SDO "
  "data policy asks for the acknowledgement 'Courtesy of NASA/SDO and the AIA science "
  "team' and citations of the mission and instrument (Pesnell et al. 2012, Lemen et al. "
  "2012). GOES XRS fluxes and SWPC flare lists: NOAA data, public domain; cite the "
  "instrument and archive. HEK and SDOML ask for their papers. A simulated demo archive "
  "(solar_jax.data.demo; metadata 'simulated') is MIT-licensed like the code. Details: "
  "DATA_LICENSE.md and CITATIONS.bib of solar_jax."
)


@dataclasses.dataclass(eq=False)
class SdoAia171Config(tfds.core.BuilderConfig):
  """One stored resolution and the rules of the facts.

  Attributes:
    image_size: side S of the stored square images.
    disk_radius_px: solar disk radius in output pixels (None: 0.40 * S).
    association_lag_minutes: a frame belongs to a flare from its start to
      this long after its end; ``data.cooling_lag_minutes`` chooses on read
      how much of it counts as flaring (at most this).
    degradation: divide the frames of a real FITS archive by aiapy's
      time-dependent degradation factor (171 Å lost about half its sensitivity
      over the mission, so a multi-year archive without it drifts). On in every
      named config; a simulated archive has no degradation and SDOML's frames are
      corrected already, so neither is corrected here. A real archive is built
      without it only when a config asks (``degradation=False``); without a
      table (``DIR/calibration/`` or aiapy's cache) the build stops and says how.
    num_folds: month blocks (stored splits ``block0 ..``); folds on read.
    true_flux_lists_since: the first day of the GOES-16 era: SWPC and HEK classes
      of flares from this day on are true fluxes, earlier ones carry the SWPC 0.7
      scaling (``goes``); on read, ``data.class_scale='swpc'`` multiplies true fluxes
      before it by 0.7 (stored in the metadata).
    flare_list_provenance: where the flare list's classes come from
      (``goes.LIST_PROVENANCES``: 'swpc', 'hek' or 'ncei'); '' decides it from the
      list (``flare_list.list_provenance``), an error when the list does not say.
  """

  image_size: int = 64
  disk_radius_px: float | None = None
  association_lag_minutes: float = 120.0
  degradation: bool = True
  num_folds: int = 10
  true_flux_lists_since: str = "2020-01-01"
  flare_list_provenance: str = ""

  def block_of(self, time: datetime.datetime) -> str:
    """The stored split of a frame observed at ``time`` (naive UTC)."""
    return f"block{(12 * time.year + time.month - 1) % self.num_folds}"

  def split_rule(self) -> str:
    return (
      f"stored: month blocks (12*year + month - 1) % {self.num_folds} (UTC frame time); "
      "on read (solar_jax.data.splits): test = block `fold`, validation = block "
      f"(fold + {self.num_folds // 2}) % {self.num_folds}, train the rest, frames within "
      "data.embargo_days of a higher-priority split dropped"
    )


def _config(size: int) -> SdoAia171Config:
  # Degradation correction is decided by the archive, not the resolution: real FITS
  # frames are corrected, a simulated archive (the demo) and SDOML are not (none to
  # correct; corrected already).
  return SdoAia171Config(
    name=str(size),
    image_size=size,
    description=(
      f"{size}x{size} px, disk radius 0.40*S, facts per frame, 10 month blocks, "
      "degradation correction of real FITS archives"
    ),
  )


def uncorrected_config_json(cfg: SdoAia171Config) -> str:
  """The ``tfds build --config`` value that asks for ``cfg`` without degradation correction."""
  return (
    f'{{"name": "{cfg.name}_uncorrected", "image_size": {cfg.image_size}, "degradation": false}}'
  )


# ------------------------------------------------------------ per file ---


_iso = frame_facts.iso


def _intensity(image: np.ndarray, radius_px: float) -> dict:
  """On-disk intensity facts (DN/s): the maximum and the 99.9th percentile."""
  side = image.shape[0]
  yy, xx = np.mgrid[:side, :side] - (side - 1) / 2.0
  disk = image[np.hypot(yy, xx) <= radius_px]
  if not disk.size:
    return dict(intensity_max=np.float32(np.nan), intensity_p999=np.float32(np.nan))
  return dict(
    intensity_max=np.float32(disk.max()), intensity_p999=np.float32(np.percentile(disk, 99.9))
  )


def process_file(
  item: dict,
  *,
  image_size: int,
  disk_radius_px,
  degradation: bool,
  correction_table=None,
  accept_synthetic: bool = False,
  geometry: bool = True,
) -> dict:
  """Reads one planned file: {'kind': 'example', ...} or {'kind': 'skip', ...}.

  Module level so Beam can pickle it. ``item`` holds the file ('file' relative
  to the manual dir, 'path'), the header time ('time') and the frame's facts.
  ``geometry``: store ``frame_geometry.FIELDS`` (datasets from 2.4.0 on).
  """
  rel = item["file"]
  try:
    if "sdoml" in item:  # SDOML: already DN/s and degradation-corrected (sdoml.read_frame)
      frame = sdoml.read_frame(
        item["sdoml"],
        image_size=image_size,
        disk_radius_px=disk_radius_px,
        accept_synthetic=accept_synthetic,
      )
    else:
      frame = aia.read_frame(
        item["path"],
        image_size=image_size,
        disk_radius_px=disk_radius_px,
        degradation=degradation,
        correction_table=correction_table,
        accept_synthetic=accept_synthetic,
      )
  except aia.BadFrameError as e:
    return build_report.skip(rel, e.reason, e.detail)
  except aia.DegradationTableError:
    raise  # a set-up problem, not a bad file
  except Exception as e:  # A reader bug must not stop a long build; it is reported.
    return build_report.skip(rel, "unexpected_error", f"{type(e).__name__}: {e}")
  if _iso(frame.time) != item["time"]:
    return build_report.skip(
      rel, "time_mismatch", f"header scan gave {item['time']}, reader {_iso(frame.time)}"
    )
  facts = item["facts"]
  example = {
    "image": frame.image[..., None].astype(np.float32),
    "time": item["time"],
    "exposure": np.float32(frame.exposure),
    "source": frame.source,
    **_intensity(frame.image, frame.disk_radius_px),
    **{k: _feature_value(kind, facts[k]) for k, kind in frame_facts.FIELDS.items()},
  }
  if geometry:
    example.update(frame_geometry.record_fields(frame.observer, image_size, frame.disk_radius_px))
  return dict(kind="example", file=rel, time=item["time"], example=example)


def _feature_value(kind: str, value):
  return {"f": np.float32, "i": np.int32, "b": bool, "s": str}[kind](value)


def _dedupe(results: list[dict]) -> list[dict]:
  """Of examples with one time, keeps the first file (path order); the rest are skipped."""
  results = sorted(results, key=lambda r: r["file"])
  kept = results[0]
  return [kept] + [
    build_report.skip(
      r["file"], "duplicate_time", f"time {r['time']} already taken by {kept['file']}"
    )
    for r in results[1:]
  ]


# -------------------------------------------------------------- builder ---


_FACT_DOCS = {
  "goes_flux": "median GOES 1-8 Å flux within 5 min of the frame, W m^-2, true scale (NaN: none)",
  "flare_event_id": "the flare the frame belongs to ('' none)",
  "flare_class": "its GOES class as published",
  "flare_flux": (
    "its peak flux, true scale: max(listed, XRS peak within 5 min of the listed peak); "
    "the listed one where another listed flare is in progress there"
  ),
  "flare_start": "its start, ISO UTC",
  "flare_peak": "its peak, ISO UTC",
  "flare_end": "its end, ISO UTC",
  "minutes_after_flare_start": "frame time minus the flare's start, minutes",
  "minutes_after_flare_end": "frame time minus the flare's end, minutes",
  "noaa_ar": "NOAA active region of the flare (0 unknown)",
  "flare_hgs_lat": "the flare's listed Stonyhurst latitude, degrees (NaN not listed)",
  "flare_hgs_lon": "the flare's listed Stonyhurst longitude, degrees (NaN not listed)",
  "next24_flux": (
    "forecast flux, true scale: the larger of the peak flux of the largest listed flare "
    "STARTING in (t, t + 24 h] and the median XRS flux of the window outside every listed "
    "flare's [start, end + association lag] (NaN unknown); never the window's XRS maximum"
  ),
  "next24_event_id": "largest listed flare starting in (t, t + 24 h] ('' none)",
  "next24_complete": "GOES XRS covers all of (t, t + 24 h]",
}


class Builder(tfds.core.GeneratorBasedBuilder):
  """SDO/AIA 171 Å frames with GOES flare-class labels (manual download)."""

  VERSION = tfds.core.Version("2.4.0")
  # Read (and built on request) as they were: 2.3.0 records lack only the geometry.
  SUPPORTED_VERSIONS = [tfds.core.Version("2.3.0")]
  RELEASE_NOTES = {
    "1.0.0": "Initial release: DN/s images, GOES class labels, month-block splits.",
    "2.0.0": (
      "Records keep facts (GOES flux at the frame, the flare with start/peak/end and NOAA AR, "
      "the next 24 h, on-disk intensity), labels chosen on read (data.label); one GOES scale "
      "(true flux; SDAC files and pre-2020 listed classes / 0.7); primary GOES satellite per "
      "day; flares from start to end (+ cooling lag), not +-30 min of the peak; stored splits "
      "are month blocks, folds with an embargo on read; near-duplicate events merged; "
      "degradation correction on at 128 px and above; metadata flags simulated archives."
    ),
    "2.1.0": (
      "Flare-list rows checked (midnight wraps repaired, inverted or > 12 h rows skipped, "
      "counted in the report); flare_flux from the XRS peak near the listed peak, not a "
      "neighbour's; BUNIT decides the exposure division, IMG_TYPE other than LIGHT skipped; "
      "degradation correction for every real FITS archive (any resolution), a build "
      "without it only on request; a build that keeps no frame is an error."
    ),
    "2.2.0": (
      "A listed class's factor to the true scale comes from its list's provenance (SWPC "
      "event report or HEK: / 0.7 before 2020; NCEI reprocessed summary: true already), "
      "decided from the list or flare_list_provenance, never by date alone; the metadata "
      "records the GOES-16 era's first day (labels on the SWPC scale on read: "
      "data.class_scale) and the list's events per class on both scales, which the build "
      "report prints too."
    ),
    "2.3.0": (
      "next24_flux is a forecast: the largest listed flare STARTING in (t, t + 24 h] (the "
      "flare in progress never counts), else the window's quiet XRS level (median outside "
      "every listed flare's [start, end + association lag]); no longer the window's XRS "
      "maximum, which held the decay of the flare in progress. next24_event_id: the largest "
      "flare starting there. The forecast label is read on the issuance grid (data."
      "issuance_hours); datasets before 2.3.0 are refused for it."
    ),
    "2.4.0": (
      "Records keep the frame's geometry (solar_jax.data.frame_geometry: RSUN_OBS, RSUN_REF, "
      "DSUN_OBS, HGLN/HGLT_OBS, HAEX/HAEY/HAEZ_OBS, DATE-OBS, the grid's CDELT and CRPIX), "
      "so solar_jax.data.to_map rebuilds a sunpy Map of it; DatasetInfo has the data's "
      "license and citations. Images, facts and splits are those of 2.3.0, which stays "
      "readable (version='2.3.0')."
    ),
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put the data in the manual dir (`--manual_dir=DIR`) as:
    DIR/aia/**/*.fits[.gz]  AIA 171 Å level-1 or 1.5 FITS (any depth; plain,
                            gzip or RICE-compressed), e.g. from JSOC via
                            sunpy.net.Fido (a.Instrument.aia, a.Wavelength(171*u.AA)).
    DIR/flares.csv          flare list: SWPC-style (event_starttime,
      or DIR/flares.json    event_peaktime, event_endtime, goes_class) or a HEK
                            export (CSV or JSON, fl_goescls).
    DIR/goes/ (optional)    GOES XRS files (SDAC FITS, NCEI netCDF) read with
                            sunpy.timeseries; needed to label quiet frames.
  Or, instead of DIR/aia/, an SDOML v2 Zarr store (AIA at 512 px, DN/s, degradation-
  corrected): DIR/sdoml/ (a local store) or DIR/sdoml.json {"store": "gs://..." or a path}
  (solar_jax.data.sdoml; gs:// needs `pip install gcsfs`).
  A simulated archive for trying it out: python -m solar_jax.data.demo --out DIR
  Then, from any directory (with solar_jax installed or on PYTHONPATH):
    tfds build sdo_aia171 --imports=tfds_builders --config=64 --manual_dir=DIR --data_dir=OUT
  """
  BUILDER_CONFIGS = [_config(s) for s in (64, 128, 256, 512)]
  DEFAULT_CONFIG_NAME = "64"

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.image_size
    kinds = {
      "f": lambda doc: tfds.features.Scalar(dtype=np.float32, doc=doc),
      "i": lambda doc: tfds.features.Scalar(dtype=np.int32, doc=doc),
      "b": lambda doc: tfds.features.Scalar(dtype=np.bool_, doc=doc),
      "s": lambda doc: tfds.features.Text(doc=doc),
    }
    facts = {k: kinds[kind](_FACT_DOCS[k]) for k, kind in frame_facts.FIELDS.items()}
    if self._has_geometry():
      facts.update(
        {
          k: tfds.features.Text(doc=doc)
          if k in frame_geometry.TEXT_FIELDS
          else tfds.features.Scalar(dtype=np.float64, doc=doc)
          for k, doc in frame_geometry.FIELDS.items()
        }
      )
    return self.dataset_info_from_configs(
      description=__doc__.split("\n\n")[0],
      features=tfds.features.FeaturesDict(
        {
          "image": tfds.features.Tensor(shape=(size, size, 1), dtype=np.float32),
          "time": tfds.features.Text(doc="UTC frame time, ISO 8601"),
          "exposure": tfds.features.Scalar(dtype=np.float32, doc="EXPTIME in s"),
          "source": tfds.features.Text(doc="source FITS file name"),
          "intensity_max": kinds["f"]("largest on-disk DN/s"),
          "intensity_p999": kinds["f"]("99.9th percentile of on-disk DN/s"),
          **facts,
        }
      ),
      metadata=tfds.core.MetadataDict(),
      homepage="https://sdo.gsfc.nasa.gov/",
      license=LICENSE,
    )

  def _has_geometry(self) -> bool:
    """Whether this version's records keep ``frame_geometry.FIELDS`` (2.4.0 on)."""
    return self.version >= frame_geometry.SINCE

  # -- driver side ---------------------------------------------------------

  def _download_and_prepare(self, dl_manager, download_config):
    # This override of TFDS's private step stays: TFDS offers no public place
    # for either of its two jobs. (1) _split_generators never sees the
    # DownloadConfig, yet it must choose between a Beam PTransform and a plain
    # generator, so the choice is recorded here. (2) This is the one point
    # where every split is written (the Beam pipeline included) while
    # self.data_dir is still TFDS's temporary directory, renamed to the final
    # one only after this returns: the report moves with the data and exists
    # only for a completed build (_post_download_and_prepare_hook runs after
    # the rename, when a killed build could leave data without its report).
    self._use_beam = (
      download_config.beam_options is not None or download_config.beam_runner is not None
    )
    super()._download_and_prepare(dl_manager=dl_manager, download_config=download_config)
    report = build_report.merge(self._parts_dir, self._report_settings(), clip=REFERENCE_CLIP_DN_S)
    logging.info("%s", build_report.format_report(report))
    build_report.check_frames_kept(
      sum(report["blocks"].values()),
      report["skipped"]["files"],
      report["files_found"],
      f"sdo_aia171/{self.builder_config.name} from {report['manual_dir']}",
    )
    build_report.write(self.data_dir, report)

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    cfg = self.builder_config
    root = pathlib.Path(dl_manager.manual_dir)
    since = datetime.datetime.fromisoformat(cfg.true_flux_lists_since)
    flares, flare_path, merged = _read_flares(root, since, cfg.flare_list_provenance or None)
    xrs, xrs_paths = _read_goes(root)
    store = sdoml.find_store(root)
    scan = self._scan_fits if store is None else functools.partial(_scan_sdoml, store=store)
    timed, skipped, found, source_entries = scan(root)
    # Nothing left to read: stop before TFDS writes an empty dataset.
    build_report.check_frames_kept(len(timed), skipped, found, f"sdo_aia171/{cfg.name} from {root}")
    simulated = (root / SIMULATED_MARKER).exists()
    index = flare_list.FlareIndex(flares)
    planned = collections.defaultdict(list)
    for rel, time, where in timed:
      facts = frame_facts.frame_facts(
        time, index, xrs, association_lag_minutes=cfg.association_lag_minutes
      )
      item = dict(file=rel, time=_iso(time), facts=facts, **where)
      planned[cfg.block_of(time)].append(item)
    self._parts_dir = str(epath.Path(self.data_dir) / build_report.PARTS_DIR)
    driver = dict(
      manual_dir=str(root),
      files_found=found,
      simulated=simulated,
      flare_list=dict(
        build_report.flare_list_entry(flare_path, flares, since), merged_duplicates=merged
      ),
      goes_files=[str(p) for p in xrs_paths],
      goes_scale=goes.SCALE_NOTE.format(since=cfg.true_flux_lists_since),
      goes_conversions=dict(xrs.conversions) if xrs is not None else {},
      goes_primary=dict(xrs.primary) if xrs is not None else {},
      goes_skipped=[dict(file=f, reason="no_usable_samples", detail=d) for f, d in xrs.skipped]
      if xrs is not None
      else [],
      skipped=skipped,
      splits=sorted(planned),
      **source_entries,  # not_followed (FITS) or the SDOML store's provenance
    )
    for line in build_report.input_problems(driver):
      logging.warning("sdo_aia171: %s", line)
    build_report.write_driver_part(self._parts_dir, driver)
    self.info.metadata.update(self._metadata(simulated))
    self.info.metadata.update(events_per_class=build_report.events_per_class(flares, since))
    if store is not None:  # SDOML images are degradation-corrected already: never twice
      self.info.metadata.update(degradation=True, sdoml=source_entries["sdoml"])
    # A simulation has no degradation; SDOML's was corrected by its converter.
    degradation = cfg.degradation and not simulated and store is None
    table = _checked_correction_table(root, cfg) if degradation else None
    settings = dict(
      image_size=cfg.image_size,
      disk_radius_px=cfg.disk_radius_px,
      degradation=degradation,
      correction_table=table,
      # The reader refuses simulated or synthetic frames unless the archive says it is one.
      accept_synthetic=simulated,
      geometry=self._has_geometry(),
    )
    # A block with no file at all is left out (TFDS cannot write an empty split).
    return {
      block: self._generate_examples(block, planned[block], settings) for block in sorted(planned)
    }

  def _metadata(self, simulated: bool) -> dict:
    """What readers need to interpret the records (stored in the dataset's metadata.json)."""
    cfg = self.builder_config
    return dict(
      simulated=simulated,
      classes=list(CLASS_NAMES),
      goes_scale=goes.SCALE,
      goes_scale_note=goes.SCALE_NOTE.format(since=cfg.true_flux_lists_since),
      true_flux_lists_since=cfg.true_flux_lists_since,
      num_folds=cfg.num_folds,
      association_lag_minutes=cfg.association_lag_minutes,
      degradation=cfg.degradation and not simulated,
      split_rule=cfg.split_rule(),
    )

  def _scan_fits(self, root: pathlib.Path):
    """([(file, header time, {'path'})], skip records, files found, {'not_followed'})."""
    files, not_followed = aia.scan_fits_files(root / "aia")
    if not files:
      raise FileNotFoundError(
        f"No FITS files under {root / 'aia'}.\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}"
      )
    timed, skipped = [], []
    for path in files:
      rel = path.relative_to(root).as_posix()
      try:
        timed.append((rel, aia.read_time(path), dict(path=str(path))))
      except Exception:  # noqa: BLE001 - the reader below names what is wrong
        skipped.append(self._diagnose(path, rel))
    entries = [
      dict(entry=pathlib.Path(p).relative_to(root).as_posix(), detail=d) for p, d in not_followed
    ]
    return timed, skipped, len(files), dict(not_followed=entries)

  def _diagnose(self, path: pathlib.Path, rel: str) -> dict:
    """Skip record of a file whose header could not be scanned: the reader's reason."""
    try:
      aia.read_frame(path, image_size=8)
    except aia.BadFrameError as e:
      return build_report.skip(rel, e.reason, e.detail)
    except Exception as e:  # noqa: BLE001
      return build_report.skip(rel, "unexpected_error", f"{type(e).__name__}: {e}")
    return build_report.skip(rel, "header_scan", "the header could not be scanned for its time")

  def _report_settings(self) -> dict:
    """What this build was asked for, as the build report records it."""
    cfg = self.builder_config
    return dict(
      dataset=self.name,
      config=cfg.name,
      version=str(self.version),
      image_size=cfg.image_size,
      association_lag_minutes=cfg.association_lag_minutes,
      degradation=cfg.degradation,
      num_folds=cfg.num_folds,
      true_flux_lists_since=cfg.true_flux_lists_since,
      flare_list_provenance=cfg.flare_list_provenance,
      split_rule=cfg.split_rule(),
      beam=bool(getattr(self, "_use_beam", False)),
    )

  # -- per split -----------------------------------------------------------

  def _generate_examples(self, split: str, items: list[dict], settings: dict):
    """(key, example) pairs of one split: a Beam PTransform under Beam, else a generator.

    Keys are the file paths relative to the manual dir (unique, deterministic).
    """
    if getattr(self, "_use_beam", False):
      return self._beam_split(split, items, settings)
    return self._python_split(split, items, settings)

  def _python_split(self, split: str, items: list[dict], settings: dict):
    """Generator of (key, example) for one split, in this process."""
    seen = {}
    light = []
    for item in sorted(items, key=lambda i: i["file"]):
      result = process_file(item, **settings)
      if result["kind"] == "example":
        if result["time"] in seen:
          result = build_report.skip(
            result["file"],
            "duplicate_time",
            f"time {result['time']} already taken by {seen[result['time']]}",
          )
        else:
          seen[result["time"]] = result["file"]
          yield result["file"], result["example"]
      light.append(build_report.light(result))
    # TFDS cannot write a split without examples: say why none was kept, not that.
    build_report.check_frames_kept(
      len(seen),
      [r for r in light if r["kind"] == "skip"],
      len(items),
      f"sdo_aia171/{self.builder_config.name}, stored split {split} (a month block)",
    )
    build_report.write_split_part(self._parts_dir, split, light)

  def _beam_split(self, split: str, items: list[dict], settings: dict):
    """The same as ``_python_split`` as a Beam PTransform."""
    beam = tfds.core.lazy_imports.apache_beam
    parts_dir = self._parts_dir
    process = functools.partial(process_file, **settings)

    def key_by_time(result):
      return result["time"], result

    def write_part(light):
      build_report.write_split_part(parts_dir, split, light)

    @beam.ptransform_fn
    def generate(pbegin):
      results = (
        pbegin
        | "Files" >> beam.Create(sorted(items, key=lambda i: i["file"]))
        | "Reshuffle" >> beam.Reshuffle()
        | "Read" >> beam.Map(process)
      )
      examples = results | "Good" >> beam.Filter(lambda r: r["kind"] == "example")
      bad = results | "Bad" >> beam.Filter(lambda r: r["kind"] == "skip")
      deduped = (
        examples
        | "KeyByTime" >> beam.Map(key_by_time)
        | "GroupByTime" >> beam.GroupByKey()
        | "Dedupe" >> beam.FlatMap(lambda kv: _dedupe(list(kv[1])))
      )
      kept = deduped | "Kept" >> beam.Filter(lambda r: r["kind"] == "example")
      duplicates = deduped | "Duplicates" >> beam.Filter(lambda r: r["kind"] == "skip")
      (
        (kept | "Light" >> beam.Map(build_report.light), bad, duplicates)
        | "AllOutcomes" >> beam.Flatten()
        | "ToList" >> beam.combiners.ToList()
        | "WritePart" >> beam.Map(write_part)
      )
      return kept | "ToExample" >> beam.Map(lambda r: (r["file"], r["example"]))

    return generate()


# ------------------------------------------------------------ inputs ---


# A manual dir holding this file is a simulated archive (the demo writes it).
SIMULATED_MARKER = "demo_manifest.json"


def _read_flares(root: pathlib.Path, since: datetime.datetime, provenance: str | None = None):
  """(flares with near-duplicates merged, the list's path, number merged away).

  ``provenance``: the config's ``flare_list_provenance`` (None: from the list).
  """
  candidates = [root / "flares.csv", root / "flares.json"]
  present = [p for p in candidates if p.exists()]
  if len(present) != 1:
    raise FileNotFoundError(
      f"Manual dir {root} must hold exactly one flare list, flares.csv or flares.json "
      f"(found {[p.name for p in present] or 'none'})."
    )
  flares = flare_list.read_flare_list(present[0], true_flux_since=since, provenance=provenance)
  merged, count = flare_list.merge_duplicates(flares)
  kept = flare_list.FlareList(merged, flares.skipped, flares.path, flares.rows, flares.repaired)
  return kept, present[0], count


def _read_goes(root: pathlib.Path):
  goes_dir = root / "goes"
  if not goes_dir.is_dir():
    return None, []
  paths = sorted(
    p
    for p in goes_dir.rglob("*")
    if p.is_file() and p.name.lower().endswith((".fits", ".fits.gz", ".fts", ".nc"))
  )
  if not paths:
    return None, []
  # A file without a usable sample adds no coverage: it is reported and left
  # out (its frames get NaN GOES facts), not a stopped build.
  return goes.read_xrs(paths, skip_empty=True, primary=_primary_table(goes_dir)), paths


def _primary_table(goes_dir: pathlib.Path):
  """Rows (first day, last day, satellite) of ``goes/primary.csv`` when present.

  Raises ``goes.XRSError`` naming the file and line of a row that is not
  ``YYYY-MM-DD,YYYY-MM-DD,<GOES number>`` with start <= end.
  """
  path = goes_dir / "primary.csv"
  if not path.exists():
    return None
  how = "rows must be start,end,satellite (YYYY-MM-DD,YYYY-MM-DD,GOES number, start <= end)"
  try:
    with path.open(newline="") as f:
      reader = csv.DictReader(f)
      missing = [c for c in ("start", "end", "satellite") if c not in (reader.fieldnames or ())]
      if missing:
        raise goes.XRSError(
          f"{path} line 1: no column {', '.join(missing)} (header {reader.fieldnames}); {how}"
        )
      rows = []
      for row in reader:
        line = reader.line_num
        try:
          start = datetime.date.fromisoformat(str(row["start"]).strip())
          end = datetime.date.fromisoformat(str(row["end"]).strip())
          satellite = int(str(row["satellite"]).strip())
        except (TypeError, ValueError) as e:
          raise goes.XRSError(f"{path} line {line}: {e}; {how}") from e
        if end < start or satellite <= 0:
          raise goes.XRSError(
            f"{path} line {line}: start {start}, end {end}, satellite {satellite}; {how}"
          )
        rows.append((start.isoformat(), end.isoformat(), satellite))
  except (OSError, UnicodeDecodeError, csv.Error) as e:
    raise goes.XRSError(f"{path}: cannot be read ({e}); {how}") from e
  return rows


def _scan_sdoml(root: pathlib.Path, store: dict):
  """``_scan_fits`` for an SDOML store (``sdoml.find_store``): frames named 'sdoml/<year>/171A/<i>'."""
  listing = sdoml.list_frames(
    store["store"],
    years=store.get("years"),
    cadence_minutes=store.get("cadence_minutes"),
    storage_options=store.get("storage_options"),
  )
  if not listing.frames and not listing.bad:
    raise FileNotFoundError(f"No 171 Å frame in the SDOML store {store['store']} (from {root}).")
  if (root / "aia").is_dir():
    logging.warning("sdo_aia171: %s names an SDOML store; %s/aia/ is not read", root, root)
  timed = [(ref.name, time, dict(sdoml=ref)) for ref, time in listing.frames]
  skipped = [
    build_report.skip(pathlib.PurePath(e.path).as_posix(), e.reason, e.detail) for e in listing.bad
  ]
  provenance = dict(listing.provenance, degradation="applied by SDOML (DEG_COR), not by aiapy here")
  return (
    timed,
    skipped,
    len(listing.frames) + len(listing.bad),
    dict(not_followed=[], sdoml=provenance),
  )


def _correction_table(root: pathlib.Path):
  """A degradation table under ``DIR/calibration/`` if there is one, else aiapy's (network)."""
  tables = sorted((root / "calibration").glob("*response_table*.txt"))
  return str(tables[-1]) if tables else None


def _checked_correction_table(root: pathlib.Path, cfg: SdoAia171Config):
  """``_correction_table``, loaded once before any file is read; an error says how to go on."""
  table = _correction_table(root)
  try:
    aia.check_correction_table(table)
  except aia.DegradationTableError as e:
    cause = e.__cause__ if e.__cause__ is not None else e
    raise aia.DegradationTableError(
      f"{root} is a real AIA archive: sdo_aia171/{cfg.name} corrects its degradation, and "
      f"no aiapy response table is there ({type(cause).__name__}: {cause}). Put "
      f"aia_V10_20201119_190000_response_table.txt (SolarSoft sdo/aia/response/) in "
      f"{root / 'calibration'}/, or build without the correction: "
      f"--config='{uncorrected_config_json(cfg)}'"
    ) from e
  return table
