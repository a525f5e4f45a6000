"""Test set-up: JAX on CPU with 8 fake devices, before JAX is imported.

Every test sees 8 CPU devices; a test that wants one device builds its mesh
from ``jax.devices()[:1]``.
"""

import os
import pathlib

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
  os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# One persistent compilation cache for the session's processes (xdist workers and the
# CLI subprocesses inherit it): the tiny UNet's train step and samplers compile once.
os.environ.setdefault(
  "JAX_COMPILATION_CACHE_DIR",
  str(pathlib.Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax_compilation"),
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.3")

import pytest  # noqa: E402

from solar_jax import xla_flags  # noqa: E402

xla_flags.configure_xla_cpu()  # As main does: the tests run the same XLA:CPU kernels.

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
  return REPO_ROOT


@pytest.fixture(scope="session")
def shared_flare_list() -> pathlib.Path:
  """The real cycle-24 flare list in ../shared, or a skip when it is absent."""
  path = SHARED_DATA / "flare_lists" / "final_flare_list_sc24.csv"
  if not path.exists():
    pytest.skip(f"{path.name} not found beside the project (../shared/data is optional)")
  return path
