"""Images/s of evaluation feature extraction (Inception pool3; the flare classifier if trained).

  python benchmarks/bench_features.py --image_size=64 --batch_sizes=8,32 --num_images=64
  python benchmarks/bench_features.py --config=quickstart --workdir=runs/qs

The Inception network runs with RANDOM weights: the timing is that of the real
network (same layers, same 299x299 input), but the features mean nothing.
Compilation is timed separately from the steady state. With --workdir of a
run that has a trained classifier, its extractor
(solar_jax.classifier.experiment.load_feature_extractor) is timed in the same run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time

import jax
import numpy as np

from solar_jax import xla_flags  # noqa: E402
from solar_jax.models import inception


def _time(fn, images: np.ndarray, repeats: int) -> tuple[float, float]:
  """(first call seconds incl. compilation, steady-state images/s)."""
  t0 = time.perf_counter()
  fn(images[: min(len(images), 1)])
  first = time.perf_counter() - t0
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn(images)
    best = min(best, time.perf_counter() - t0)
  return first, len(images) / best


def _load_config(path: str):
  spec = importlib.util.spec_from_file_location("bench_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def main() -> None:
  xla_flags.configure_xla_cpu()  # Before JAX starts its CPU backend, as training does.
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--image_size", type=int, default=64)
  parser.add_argument("--batch_sizes", default="8,32")
  parser.add_argument("--num_images", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--config", default="", help="config for the classifier extractor")
  parser.add_argument("--workdir", default="", help="run with a trained classifier")
  args = parser.parse_args()

  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, (args.num_images, args.image_size, args.image_size, 1))
  images = images.astype(np.float32)
  results = {
    "device": jax.devices()[0].device_kind,
    "num_devices": jax.device_count(),
    "image_size": args.image_size,
    "num_images": args.num_images,
    "inception_random_weights": {},
  }
  variables = inception.random_variables(0)
  for batch_size in (int(b) for b in args.batch_sizes.split(",")):
    extractor = inception.InceptionFeatureExtractor(variables, batch_size=batch_size)
    first, rate = _time(extractor, images, args.repeats)
    results["inception_random_weights"][f"batch_{batch_size}"] = {
      "first_call_s": round(first, 2),
      "images_per_s": round(rate, 2),
    }
    print(
      f"inception batch {batch_size}: first call {first:.1f} s, {rate:.2f} images/s", flush=True
    )

  if args.workdir and args.config:
    from solar_jax.classifier import experiment

    config = _load_config(args.config)
    fn = experiment.load_feature_extractor(config, args.workdir)
    size = config.data.image_size
    cls_images = rng.uniform(-1, 1, (args.num_images, size, size, 1)).astype(np.float32)
    first, rate = _time(fn, cls_images, args.repeats)
    results["classifier"] = {"first_call_s": round(first, 2), "images_per_s": round(rate, 2)}
    print(f"classifier: first call {first:.1f} s, {rate:.2f} images/s")
  else:
    results["classifier"] = "not timed (pass --config and --workdir of a trained run)"
  print(json.dumps(results, indent=2))


if __name__ == "__main__":
  main()
