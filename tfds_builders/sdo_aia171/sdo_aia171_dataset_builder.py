"""sdo_aia171: SDO/AIA 171 Å images labelled with their GOES flare class.

Reads a manual directory of AIA level-1/1.5 FITS files, a flare list and
(optionally) GOES XRS files, and writes one example per usable frame, stored
in DN/s at the config's resolution. Layout and options: README.md beside this
file. Splits are by time blocks, never random (consecutive frames are nearly
identical): see ``SdoAia171Config.split_of``.

Bad input never stops the build. Each file that cannot become an example is
skipped with a reason (``aia.BadFrameError`` reasons, ``no_label``,
``duplicate_time``, ...) and listed in ``build_report.json`` in the dataset
version directory, beside ``dataset_info.json`` (``solar_jax.data.build_report``);
a summary is logged (absl, INFO).
A flare list or XRS file that cannot be read stops the build with an error
naming the file (without it no label can be trusted); so does a flare list
with more than half of its rows unreadable (``flare_labels.read_flare_list``).
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
  from solar_jax.data import aia, build_report, flare_labels
except ImportError:
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
  from solar_jax.data import aia, build_report, flare_labels

CLASS_NAMES = flare_labels.CLASS_LETTERS

_CITATION = """
@article{lemen2012aia,
  title={The Atmospheric Imaging Assembly (AIA) on the Solar Dynamics Observatory (SDO)},
  author={Lemen, James R. and others},
  journal={Solar Physics}, volume={275}, pages={17--40}, year={2012},
  doi={10.1007/s11207-011-9776-8}
}
"""


@dataclasses.dataclass(eq=False)
class SdoAia171Config(tfds.core.BuilderConfig):
  """One stored resolution and the labelling / split rules.

  Attributes:
    image_size: side S of the stored square images.
    disk_radius_px: solar disk radius in output pixels (None: 0.40 * S).
    window_minutes: a frame within this many minutes of a listed flare's
      peak is flaring and takes the flare's class (``label_frame``).
    quiet_policy: 'background' (quiet frames take the class of the median XRS
      flux) or 'drop' (quiet frames are skipped).
    degradation: divide by aiapy's time-dependent degradation factor.
    split_modulus, validation_blocks, test_blocks: the time-block split rule.
      Block index = 12 * year + month - 1 of the frame time (UTC); residue
      ``block % split_modulus`` in ``validation_blocks`` -> validation, in
      ``test_blocks`` -> test, otherwise train. The default (10, (8,), (9,))
      gives 80/10/10 % in whole calendar months.
  """

  image_size: int = 64
  disk_radius_px: float | None = None
  window_minutes: float = 30.0
  quiet_policy: str = "background"
  degradation: bool = False
  split_modulus: int = 10
  validation_blocks: tuple[int, ...] = (8,)
  test_blocks: tuple[int, ...] = (9,)

  def split_of(self, time: datetime.datetime) -> str:
    """The split of a frame observed at ``time`` (naive UTC)."""
    residue = (12 * time.year + time.month - 1) % self.split_modulus
    if residue in self.validation_blocks:
      return "validation"
    if residue in self.test_blocks:
      return "test"
    return "train"

  def split_rule(self) -> str:
    return (
      f"calendar-month blocks: (12*year + month - 1) % {self.split_modulus} in "
      f"{list(self.validation_blocks)} -> validation, in {list(self.test_blocks)} -> test, "
      "else train (UTC frame time)"
    )


def _config(size: int) -> SdoAia171Config:
  return SdoAia171Config(
    name=str(size),
    image_size=size,
    description=f"{size}x{size} px, disk radius 0.40*S, window 30 min, quiet=background, month blocks",
  )


# ------------------------------------------------------------ per file ---


def _iso(time: datetime.datetime) -> str:
  return time.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def process_file(item: dict, *, image_size: int, disk_radius_px, degradation: bool) -> dict:
  """Reads one planned file: {'kind': 'example', ...} or {'kind': 'skip', ...}.

  Module level so Beam can pickle it. ``item`` holds the file ('file' relative
  to the manual dir, 'path'), the header time ('time') and the label.
  """
  rel = item["file"]
  try:
    frame = aia.read_frame(
      item["path"], image_size=image_size, disk_radius_px=disk_radius_px, degradation=degradation
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
  label = item["label"]
  example = {
    "image": frame.image[..., None].astype(np.float32),
    "label": label["letter"],
    "goes_flux": np.float32(label["flux"]),
    "time": item["time"],
    "exposure": np.float32(frame.exposure),
    "source": frame.source,
    "event_id": label["event_id"],
    "flaring": bool(label["flaring"]),
  }
  return dict(kind="example", file=rel, time=item["time"], example=example)


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


class Builder(tfds.core.GeneratorBasedBuilder):
  """SDO/AIA 171 Å frames with GOES flare-class labels (manual download)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: DN/s images, GOES class labels, month-block splits."}
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
  A simulated archive for trying it out: python -m solar_jax.data.demo --out DIR
  """
  BUILDER_CONFIGS = [_config(s) for s in (64, 128, 256, 512)]
  DEFAULT_CONFIG_NAME = "64"

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.image_size
    return self.dataset_info_from_configs(
      description=__doc__.split("\n\n")[0],
      features=tfds.features.FeaturesDict(
        {
          "image": tfds.features.Tensor(shape=(size, size, 1), dtype=np.float32),
          "label": tfds.features.ClassLabel(names=CLASS_NAMES),
          "goes_flux": tfds.features.Scalar(dtype=np.float32, doc="GOES 1-8 Å W m^-2 (SWPC scale)"),
          "time": tfds.features.Text(doc="UTC frame time, ISO 8601"),
          "exposure": tfds.features.Scalar(dtype=np.float32, doc="EXPTIME in s"),
          "source": tfds.features.Text(doc="source FITS file name"),
          "event_id": tfds.features.Text(doc="flare event id ('' when quiet)"),
          "flaring": tfds.features.Scalar(dtype=np.bool_),
        }
      ),
      supervised_keys=("image", "label"),
      homepage="https://sdo.gsfc.nasa.gov/",
      citation=_CITATION,
    )

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
    report = build_report.merge(self._parts_dir, self._report_settings())
    build_report.write(self.data_dir, report)
    logging.info("%s", build_report.format_report(report))

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    cfg = self.builder_config
    root = pathlib.Path(dl_manager.manual_dir)
    flares, flare_path = _read_flares(root)
    xrs, xrs_paths = _read_goes(root)
    files, not_followed = aia.scan_fits_files(root / "aia")
    if not files:
      raise FileNotFoundError(
        f"No FITS files under {root / 'aia'}.\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}"
      )
    index = flare_labels.FlareIndex(flares)
    planned = collections.defaultdict(list)
    skipped = []
    for path in files:
      rel = path.relative_to(root).as_posix()
      try:
        time = aia.read_time(path)
      except Exception:  # noqa: BLE001 - the reader below names what is wrong
        skipped.append(self._diagnose(path, rel))
        continue
      label = flare_labels.label_frame(
        time, index, xrs, window_minutes=cfg.window_minutes, quiet_policy=cfg.quiet_policy
      )
      if label is None:
        why = (
          "quiet frame and quiet_policy='drop'"
          if cfg.quiet_policy == "drop"
          else (f"no listed flare within {cfg.window_minutes:g} min and no GOES XRS coverage")
        )
        skipped.append(build_report.skip(rel, "no_label", f"{_iso(time)}: {why}"))
        continue
      item = dict(file=rel, path=str(path), time=_iso(time), label=dataclasses.asdict(label))
      planned[cfg.split_of(time)].append(item)
    self._parts_dir = str(epath.Path(self.data_dir) / build_report.PARTS_DIR)
    driver = dict(
      manual_dir=str(root),
      files_found=len(files),
      flare_list=build_report.flare_list_entry(flare_path, flares),
      goes_files=[str(p) for p in xrs_paths],
      goes_skipped=[dict(file=f, reason="no_usable_samples", detail=d) for f, d in xrs.skipped]
      if xrs is not None
      else [],
      not_followed=[
        dict(entry=pathlib.Path(p).relative_to(root).as_posix(), detail=d) for p, d in not_followed
      ],
      skipped=skipped,
      splits=sorted(planned),
    )
    for line in build_report.input_problems(driver):
      logging.warning("sdo_aia171: %s", line)
    build_report.write_driver_part(self._parts_dir, driver)
    settings = dict(
      image_size=cfg.image_size, disk_radius_px=cfg.disk_radius_px, degradation=cfg.degradation
    )
    # A split with no file at all is left out (TFDS cannot write an empty split).
    return {
      split: self._generate_examples(split, planned[split], settings)
      for split in ("train", "validation", "test")
      if planned[split]
    }

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
      window_minutes=cfg.window_minutes,
      quiet_policy=cfg.quiet_policy,
      degradation=cfg.degradation,
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


def _read_flares(root: pathlib.Path):
  candidates = [root / "flares.csv", root / "flares.json"]
  present = [p for p in candidates if p.exists()]
  if len(present) != 1:
    raise FileNotFoundError(
      f"Manual dir {root} must hold exactly one flare list, flares.csv or flares.json "
      f"(found {[p.name for p in present] or 'none'})."
    )
  return flare_labels.read_flare_list(present[0]), present[0]


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
  # out (frames it would have labelled become no_label), not a stopped build.
  return flare_labels.read_xrs(paths, skip_empty=True), paths
