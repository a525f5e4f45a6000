"""Data benchmarks: build throughput vs plain FITS reading, and input pipeline vs raw TFRecord.

  python benchmarks/bench_data.py --manual_dir runs/aia_demo --work runs/bench_data
(writes the SIMULATED demo archive to --manual_dir first when it is empty).

Figures, all single process, measured side by side in one run:
  * build files/s at 128 and 256 (non-Beam `download_and_prepare`, stats skipped) against the
    floor: astropy reading the same FITS files (header + data, no resampling);
  * input pipeline images/s (`make_for_train`, shuffle + transform + batch 64) against reading
    the raw TFRecord files with tf.data (no parsing).
"""

import argparse
import pathlib
import shutil
import time
import warnings

import numpy as np


def fits_floor(files) -> float:
  from astropy.io import fits

  t0 = time.perf_counter()
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for path in files:
      with fits.open(path, memmap=False) as hdul:
        for hdu in hdul:
          if hdu.header.get("NAXIS", 0) > 0:
            np.asarray(hdu.data)
            break
  return len(files) / (time.perf_counter() - t0)


def build_rate(manual_dir, data_dir, config, num_files) -> float:
  import tensorflow_datasets as tfds

  from tfds_builders.sdo_aia171 import sdo_aia171_dataset_builder as sdo

  shutil.rmtree(data_dir, ignore_errors=True)
  builder = sdo.Builder(config=config, data_dir=str(data_dir))
  t0 = time.perf_counter()
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual_dir), compute_stats=tfds.download.ComputeStatsMode.SKIP
    )
  )
  return num_files / (time.perf_counter() - t0)


def pipeline_rates(data_dir, config, batches=60, batch_size=64):
  import tensorflow as tf

  from solar_jax.configs import default
  from solar_jax.data import input_pipeline

  data = default.get_config().data
  data.data_dir, data.builder_config, data.image_size = str(data_dir), config, int(config)
  it = input_pipeline.make_for_train(
    data, "train", batch_size, shuffle=True, seed=0, repeat=True, process_index=0, process_count=1
  )
  next(it)
  t0 = time.perf_counter()
  for _ in range(batches):
    next(it)
  ours = batches * batch_size / (time.perf_counter() - t0)
  files = sorted(str(p) for p in pathlib.Path(data_dir).rglob("*train.tfrecord*"))
  raw = tf.data.TFRecordDataset(files).repeat().batch(batch_size).prefetch(2).as_numpy_iterator()
  next(raw)
  t0 = time.perf_counter()
  for _ in range(batches):
    next(raw)
  return ours, batches * batch_size / (time.perf_counter() - t0)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--manual_dir", default="runs/aia_demo")
  parser.add_argument("--work", default="runs/bench_data")
  parser.add_argument("--num_frames", type=int, default=480)
  args = parser.parse_args()
  manual, work = pathlib.Path(args.manual_dir), pathlib.Path(args.work)
  if not (manual / "aia").exists():
    from solar_jax.data import demo

    demo.write_demo_archive(manual, num_frames=args.num_frames)
  from solar_jax.data import aia

  files = aia.find_fits_files(manual / "aia")
  floor = fits_floor(files)
  print(f"{len(files)} FITS files; plain astropy read: {floor:.1f} files/s")
  for config in ("128", "256"):
    rate = build_rate(manual, work / config, config, len(files))
    print(f"build {config}: {rate:.1f} files/s = {rate / floor:.2f} x the FITS-read floor")
  ours, raw = pipeline_rates(work / "128", "128")
  print(
    f"input pipeline 128: {ours:.0f} images/s; raw TFRecord read: {raw:.0f} records/s ({ours / raw:.2f} x)"
  )


if __name__ == "__main__":
  main()
