"""The XLA:CPU flag that makes the UNet train faster on CPU, applied where runs start."""

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
