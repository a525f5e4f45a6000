"""Where runs start, before JAX loads: the XLA:CPU flag that makes the UNet train faster
on CPU, JAX's persistent compilation cache (``configure_compilation_cache``) and glibc's
malloc keeping freed memory (``configure_malloc``)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os

# XLA:CPU of jaxlib 0.10 hands convolutions to YNNPACK, whose weight-gradient
# convolutions are several times slower than XLA's own (Eigen) ones on the
# UNet's shapes: 34 ms against about 10 ms for the 32->32 3x3 convolution at
# 64x64, batch 16, on the 2-core development machine. Without YNNPACK
# convolutions the quickstart UNet's forward + backward takes 0.69x the time
# (benchmarks/RESULTS.md). The flag only touches CPU compilation; it is set
# only for the jaxlib versions where it was measured (an unknown flag in
# XLA_FLAGS is fatal), and never over a value the user chose.
_YNN_FLAG = "xla_cpu_experimental_ynn_fusion_type"
_YNN_VALUE = "-individual_convolution"
_YNN_JAXLIB = ((0, 10),)  # (major, minor) versions measured.
# With one of these installed JAX may pick an accelerator, whose plugin parses
# XLA_FLAGS too: the flag (measured on CPU only) is then left out unless
# JAX_PLATFORMS asks for the CPU alone.
_ACCELERATOR_MODULES = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm7_plugin", "libtpu")


def _jaxlib_minor() -> tuple[int, int] | None:
  try:
    parts = importlib.metadata.version("jaxlib").split(".")
    return int(parts[0]), int(parts[1])
  except (importlib.metadata.PackageNotFoundError, ValueError, IndexError):
    return None


def _accelerator_plugin_installed() -> bool:
  return any(importlib.util.find_spec(name) is not None for name in _ACCELERATOR_MODULES)


def configure_xla_cpu(environ=os.environ) -> bool:
  """Adds ``--xla_cpu_experimental_ynn_fusion_type=-individual_convolution`` to XLA_FLAGS.

  Must run before JAX creates its CPU backend: ``main``, the test set-up and the
  benchmarks call it first thing; importing ``solar_jax`` never does. A no-op when XLA_FLAGS already names the flag, when
  ``SOLAR_JAX_KEEP_XLA_FLAGS`` is set, for an unmeasured jaxlib version, or when
  a GPU/TPU plugin is installed and ``JAX_PLATFORMS`` is not ``cpu``.

  Returns:
    Whether the flag was added.
  """
  flags = environ.get("XLA_FLAGS", "")
  if _YNN_FLAG in flags or environ.get("SOLAR_JAX_KEEP_XLA_FLAGS"):
    return False
  if _jaxlib_minor() not in _YNN_JAXLIB:
    return False
  if environ.get("JAX_PLATFORMS", "").strip().lower() != "cpu" and _accelerator_plugin_installed():
    return False
  environ["XLA_FLAGS"] = f"{flags} --{_YNN_FLAG}={_YNN_VALUE}".strip()
  return True


# JAX's persistent compilation cache: what a run compiled (train step, samplers, the
# classifier, Inception) is stored on disk and read back by the next run of any mode
# instead of compiled again (benchmarks/RESULTS.md, "Command-line start-up").
CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"  # JAX's own variable: a user's value wins.
# Programs that compiled faster than this are not stored (JAX's default: 1 s). On CPU
# the tiny and quickstart models' programs take 0.1-10 s; below 0.1 s the file read
# would cost about what the compile saves.
MIN_COMPILE_TIME_ENV = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"
MIN_COMPILE_TIME_S = "0.1"


def default_cache_dir(environ=os.environ) -> str:
  """``$XDG_CACHE_HOME/solar_jax/jax_cache`` (``~/.cache/...`` without XDG_CACHE_HOME)."""
  base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "solar_jax", "jax_cache")


def configure_compilation_cache(environ=os.environ) -> str | None:
  """Turns on JAX's persistent compilation cache for this process, before JAX is imported.

  Sets ``JAX_COMPILATION_CACHE_DIR`` to ``default_cache_dir()`` and
  ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` to ``MIN_COMPILE_TIME_S``, each only
  when the environment does not set it already: a user's directory (a shared or
  faster disk) wins, and ``JAX_COMPILATION_CACHE_DIR=`` (empty) turns the cache off,
  as it does for JAX. ``main`` calls it; importing ``solar_jax`` never does.

  Returns:
    The cache directory, or None when the cache is off.
  """
  environ.setdefault(CACHE_ENV, default_cache_dir(environ))
  environ.setdefault(MIN_COMPILE_TIME_ENV, MIN_COMPILE_TIME_S)
  return environ[CACHE_ENV] or None


# glibc's malloc returns every large freed block to the kernel (mmap'd blocks at once,
# per-thread heaps when trimmed), and XLA:CPU frees its intermediate buffers after every
# execution: each train step of the quickstart UNet faulted ~73,000 fresh pages in again
# (~290 MB zeroed by the kernel) and spent ~20 % of its CPU in the kernel. Keeping freed
# memory in the process (no mmap'd blocks, no trimming below 1 GiB, one arena) removes
# nearly all of it (benchmarks/RESULTS.md, "Freed memory kept in the process").
MALLOC_ENV = "SOLAR_JAX_KEEP_MALLOC"  # Set: glibc's defaults are left as they are.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -2, -4, -8
MALLOC_SETTINGS = (
  (_M_ARENA_MAX, 1),  # One heap: XLA's threads reuse what the others freed.
  (_M_MMAP_MAX, 0),  # Large blocks come from the heap too, and stay there when freed.
  (_M_TRIM_THRESHOLD, 1 << 30),  # Up to 1 GiB of free heap is kept, not given back.
  (_M_TOP_PAD, 256 << 20),  # The heap grows in 256 MiB steps.
)


def configure_malloc(environ=os.environ) -> bool:
  """Makes glibc's malloc keep freed memory in the process (``MALLOC_SETTINGS``).

  Call it first thing where a run starts (``main`` and the test set-up do); importing
  ``solar_jax`` never does. A no-op without glibc (macOS, musl) or when
  ``SOLAR_JAX_KEEP_MALLOC`` is set. The price: the process's resident memory does not
  shrink below its peak once it has grown (up to 1 GiB of it free).

  Returns:
    Whether every setting was applied.
  """
  import ctypes
  import platform

  if environ.get(MALLOC_ENV) or platform.libc_ver()[0] != "glibc":
    return False
  try:
    mallopt = ctypes.CDLL("libc.so.6").mallopt
  except (OSError, AttributeError):
    return False
  mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
  return all(mallopt(param, value) == 1 for param, value in MALLOC_SETTINGS)
