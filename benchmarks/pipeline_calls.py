"""Load once, call many times: the shipped demo model's load, first and second call.

  cd /tmp && PYTHONPATH=<repo> python <repo>/benchmarks/pipeline_calls.py

Prints wall and CPU seconds of ``DiffusionPipeline.from_pretrained("demo")``, a first
call (10 images, its recommended sampler: compiles the sampler) and a second call with
another seed and other classes (compiles nothing: the count of new compiles is printed).
"""

import resource
import time

import solar_jax
from solar_jax.diffusion import samplers


def cpu() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def timed(label, fn):
  wall, used = time.time(), cpu()
  result = fn()
  print(f"{label}: {time.time() - wall:.1f} s wall, {cpu() - used:.1f} s CPU")
  return result


if __name__ == "__main__":
  pipe = timed(
    'from_pretrained("demo")', lambda: solar_jax.DiffusionPipeline.from_pretrained("demo")
  )
  print(pipe)
  print(timed("first call, 10 images", lambda: pipe(num_images=2, seed=1)))
  size = samplers.sample_batch._cache_size()
  timed("second call, 10 images", lambda: pipe(classes={"M": 5, "X": 5}, seed=2))
  print(f"new compiles in the second call: {samplers.sample_batch._cache_size() - size}")
