"""Test set-up: JAX on CPU with 8 fake devices, before JAX is imported; shared fixtures.

Every test sees 8 CPU devices; a test that wants one device builds its mesh
from ``jax.devices()[:1]``. What several modules need is made once per session
(``demo_tfds``: a built demo dataset; ``tiny_checkpoint``: a workdir with a tiny
model's checkpoint) and shared by the xdist workers; ``cli`` runs the command line
in this process.
"""

import contextlib
import fcntl
import io
import os
import pathlib
import shutil
import sys
from typing import NamedTuple

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
  _flags += " --xla_force_host_platform_device_count=8"
# Cheaper XLA:CPU compiles (LLVM without its optimisation passes): compiling is most of
# the suite's time; the two sides of every comparison a test makes run in the same
# process or environment. The HLO passes, and which library runs the convolutions, are
# unchanged. Measured in benchmarks/RESULTS.md ("Test suite time").
if "xla_backend_optimization_level" not in _flags:
  _flags += " --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
os.environ["XLA_FLAGS"] = _flags.strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# One persistent compilation cache for the session's processes (xdist workers and the
# CLI subprocesses inherit it): the tiny UNet's train step and samplers compile once.
os.environ.setdefault(
  "JAX_COMPILATION_CACHE_DIR",
  str(pathlib.Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax_compilation"),
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")

import pytest  # noqa: E402
from absl import flags  # noqa: E402

from solar_jax import xla_flags  # noqa: E402

xla_flags.configure_xla_cpu()  # As main does: the tests run the same XLA:CPU kernels.
xla_flags.configure_malloc()  # As main does: freed buffers stay in the process.

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


# ------------------------------------------------ made once per session ---


def _session_dir(tmp_path_factory, name: str, make) -> pathlib.Path:
  """``<session tmp>/<name>``, made by ``make(path)`` once for all xdist workers.

  Under xdist each worker has its own base temp directory inside the session's:
  the first worker to get here makes it under a file lock and the others wait
  for it, then reuse it (treat it as read-only: copy it to change it).
  """
  base = tmp_path_factory.getbasetemp()
  root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
  path, done = root / name, root / f"{name}.done"
  with open(root / f"{name}.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # Released when the file closes.
    if not done.exists():
      shutil.rmtree(path, ignore_errors=True)  # A worker that failed half-way.
      make(path)
      done.write_text("")
  return path


# The demo dataset the input-pipeline, shard and multi-process tests read: six months,
# 2011-04..09 (stored blocks 5..9 and 0), so fold 0 has test = September, validation =
# April and train = May..August less the 14-day embargo.
DEMO_ARCHIVE = dict(num_frames=48, months=6, start="2011-04-01", seed=4, xrs_cadence_s=240)


def _build_demo_tfds(path: pathlib.Path) -> None:
  import tensorflow_datasets as tfds  # Heavy: only when a test asks for the dataset.

  from solar_jax.data import demo
  from tfds_builders.sdo_aia171 import sdo_aia171_dataset_builder as sdo

  demo.write_demo_archive(path / "manual", **DEMO_ARCHIVE)
  sdo.Builder(config="64", data_dir=str(path / "tfds")).download_and_prepare(
    download_config=tfds.download.DownloadConfig(
      manual_dir=str(path / "manual"), compute_stats=tfds.download.ComputeStatsMode.SKIP
    )
  )


@pytest.fixture(scope="session")
def demo_tfds(tmp_path_factory) -> pathlib.Path:
  """The TFDS data_dir of the demo archive (``DEMO_ARCHIVE``) built as sdo_aia171/64.

  Shared by every test of the session: copy it before damaging it.
  """
  return _session_dir(tmp_path_factory, "demo", _build_demo_tfds) / "tfds"


TINY_CHECKPOINT_STEP = 3


def tiny_checkpoint_config():
  """The tiny config ``tiny_checkpoint`` was saved with (2 sampling steps)."""
  from solar_jax.configs import tiny

  config = tiny.get_config()
  config.sampling.num_steps = 2
  return config


def save_tiny_checkpoint(path: pathlib.Path, config=None) -> None:
  """A workdir at ``path``: a fresh init of ``config`` (default ``tiny_checkpoint_config()``)
  saved as step ``TINY_CHECKPOINT_STEP`` with its config, and its config.json."""
  import jax

  from solar_jax import checkpointing, parallel
  from solar_jax import workdir as wd
  from solar_jax.ddpm import train_state

  config = config or tiny_checkpoint_config()
  mesh = parallel.create_mesh(config.mesh)
  with jax.set_mesh(mesh):
    state = train_state.init_train_state(config, mesh)
    checkpointer = checkpointing.Checkpointer(path, keep=1)
    checkpointer.save(TINY_CHECKPOINT_STEP, state, {"config": config.to_json()})
    checkpointer.close()
  wd.write_config(config, path)


@pytest.fixture(scope="session")
def _tiny_checkpoint_master(tmp_path_factory) -> pathlib.Path:
  return _session_dir(tmp_path_factory, "tiny_checkpoint", save_tiny_checkpoint)


@pytest.fixture(scope="module")
def tiny_checkpoint(_tiny_checkpoint_master, tmp_path_factory) -> pathlib.Path:
  """A workdir of the tiny model: a checkpoint at ``TINY_CHECKPOINT_STEP`` (a fresh init:
  what the tests check is where samples and exports go, not what they look like) and
  its config.json (``tiny_checkpoint_config()``). The module's own copy."""
  copy = tmp_path_factory.mktemp("tiny_run") / "run"
  shutil.copytree(_tiny_checkpoint_master, copy)
  return copy


# ------------------------------------------------- the command line ---


class CliResult(NamedTuple):
  returncode: int
  stdout: str
  stderr: str


def _run_cli(*args) -> CliResult:
  """``python -m solar_jax.main ARGS`` in this process (no new interpreter, no imports).

  The flags are parsed afresh for each call and removed after it; the exit code is
  that of ``SystemExit`` (0 when the run returns). Logs that absl writes to the real
  stderr are not captured: ``stderr`` holds what the command prints (``error: ...``).
  """
  from solar_jax import main

  argv, sys.argv = sys.argv, ["solar_jax.main", *map(str, args)]
  out, err = io.StringIO(), io.StringIO()
  try:
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
      main.run()
    code = 0
  except SystemExit as e:
    code = 0 if e.code is None else e.code
  finally:
    sys.argv = argv
    flags.FLAGS.unparse_flags()
    for name in [n for n in flags.FLAGS if n.startswith("config.")]:
      delattr(flags.FLAGS, name)  # The config flag defines one per override, per parse.
  return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def cli():
  """``cli(*args) -> CliResult(returncode, stdout, stderr)``: the command line in-process.

  A subprocess is for what needs a real interpreter: signals, exit codes of a killed
  process, import side effects, several processes.
  """
  return _run_cli


# ------------------------------------------------------------ order ---


# The longest modules, longest first (measured: benchmarks/RESULTS.md, "Test suite time").
LONGEST_MODULES = (
  "tests/test_multiprocess.py",
  "tests/test_reliability.py",
  "tests/test_reliability_run.py",
  "tests/test_train.py",
)


def pytest_collection_modifyitems(config, items):
  """The longest modules first, then the others with tests marked slow, then the rest;
  each module's tests stay together, in their order.

  With ``-n 2 --dist loadfile --no-loadscope-reorder`` (pyproject.toml) a module runs on
  one worker and the workers take modules in this order: the long ones start first and
  the short ones fill in at the end, so both workers finish together.
  """

  def module(item):
    return item.nodeid.split("::")[0]

  slow = {module(item) for item in items if item.get_closest_marker("slow")}

  def rank(item):
    name = module(item)
    if name in LONGEST_MODULES:
      return LONGEST_MODULES.index(name)
    return len(LONGEST_MODULES) + (name not in slow)

  items.sort(key=rank)  # Stable: the order within a rank is kept.
