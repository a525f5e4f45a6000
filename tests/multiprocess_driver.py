"""One process of a multi-process run on fake CPU devices, for tests/test_multiprocess.py.

    PYTHONPATH=. python tests/multiprocess_driver.py SPEC_JSON

SPEC_JSON: {"workdir", "data_dir", "out", "devices", and for one of several processes
"num_processes", "process_id", "coordinator_address"}. Process 0 joins the others
through the config's explicit fields (``mesh.coordinator_address``,
``mesh.num_processes``, ``mesh.process_id``), the others through the matching
``JAX_*`` variables; collectives run over gloo (CPU). Without ``num_processes``
the process runs alone (the reference). Then it runs the product's modes in one
workdir as ``solar_jax.main`` runs them (``run_in_workdir``): train towards step 6
until SIGTERM (sent to the last process only, while it prepares batch 1) stops
every process, resume to step 6, sample, classify, evaluate, and
--mode=all's report stage.

Only the training stream is substituted: global batch k is drawn from
``default_rng(1000 + k)`` and process p feeds its rows ``[p * B/P, (p+1) * B/P)``,
so 2 processes and 1 process see the same global batches. Process 0 writes
``out/params.npz`` (the final params and EMA params, gathered); every process
writes ``out/preempted_<p>.txt`` (the message it stopped with) and
``out/writes_<p>.json``: the files it opened for writing, renamed, removed or
created under the workdir (Python-level, from an audit hook).
"""

import json
import os
import signal
import sys

_SPEC = json.loads(sys.argv[1])
# Cheaper compiles (most of this test's time): both sides of each comparison use them.
os.environ["XLA_FLAGS"] = (
  f"--xla_force_host_platform_device_count={_SPEC['devices']} "
  "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
)
os.environ["JAX_PLATFORMS"] = "cpu"
_WORKDIR = os.path.realpath(_SPEC["workdir"])
_RANK = _SPEC.get("process_id", 0)
_WRITES: list[str] = []
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _audit(event: str, args) -> None:
  """Records writes under the workdir (open for writing, rename, remove, mkdir)."""
  if event == "open":
    path, mode, flags = args
    writing = any(c in mode for c in "wax+") if isinstance(mode, str) else flags & _WRITE_FLAGS
    paths = [path] if writing else []
  elif event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree"):
    paths = [a for a in args[:2] if isinstance(a, str | bytes | os.PathLike)]
  else:
    return
  for path in paths:
    try:
      path = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
      continue
    if path.startswith(_WORKDIR + os.sep):
      _WRITES.append(f"{event} {os.path.relpath(path, _WORKDIR)}")


sys.addaudithook(_audit)

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

from solar_jax import errors, parallel, pipeline, xla_flags  # noqa: E402
from solar_jax.configs import tiny  # noqa: E402
from solar_jax.ddpm import train  # noqa: E402


def config_for(spec):
  """The tiny config at the test's sizes: 2 + 2 steps, 5 samples, one classifier run."""
  config = tiny.get_config()
  config.data.data_dir = spec["data_dir"]
  config.data.image_size = 16  # Smaller programs: compiling is most of this test's time.
  config.model.base_channels = 8
  config.model.channel_mult = (1,)  # One level, no attention: per-image layers whatever
  config.model.attention_resolutions = ()  # the depth; the processes share the batch.
  config.model.num_groups = 4
  config.classifier.stage_sizes = (1,)
  config.mesh.data, config.mesh.fsdp = -1, 2  # Every device of both processes.
  config.training.num_steps = 6
  config.training.checkpoint_every = 6  # Saves at the preemption and at the end: orbax's are slow.
  config.training.sample_every = 0
  config.training.num_sample_images = 0
  config.sampling.num_steps = 2
  config.sampling.per_class = (2, 1, 1, 1, 1)
  config.classifier.regimes = ("real",)
  config.classifier.num_steps = 2
  config.evaluation.num_images = 8
  config.evaluation.kid_bootstrap = 20  # (The fields it once set no longer existed.)
  config.evaluation.nearest_k = 2
  config.evaluation.num_clusters = 2
  config.logging.tensorboard = False
  if spec.get("num_processes"):  # Process 0 from the config, the others from JAX_* variables.
    explicit = {k: spec[k] for k in ("coordinator_address", "num_processes", "process_id")}
    for field, value in explicit.items():
      if spec["process_id"] == 0:
        config.mesh[field] = value
      else:
        os.environ[parallel.EXPLICIT_FIELDS[field]] = str(value)
  return config


def process_batches(config, start_step: int, sigterm_at=None):
  """This process's rows of global batch k = default_rng(1000 + k), from ``start_step`` on.

  With ``sigterm_at``, the last process sends itself SIGTERM as it prepares batch
  ``sigterm_at`` (SIGTERM reaches one host only, as a preemption notice may).
  """
  size, b = config.data.image_size, config.training.batch_size
  p, n = jax.process_index(), jax.process_count()
  rows = slice(p * b // n, (p + 1) * b // n)
  step = start_step
  while True:
    if step == sigterm_at and p == n - 1:
      os.kill(os.getpid(), signal.SIGTERM)
    rng = np.random.default_rng(1000 + step)
    image = rng.uniform(-1, 1, (b, size, size, config.data.channels)).astype(np.float32)
    label = rng.integers(0, len(config.data.classes), b).astype(np.int32)
    yield {"image": image[rows], "label": label[rows]}
    step += 1


def _gathered(tree):
  return jax.tree.map(lambda x: np.asarray(multihost_utils.process_allgather(x, tiled=True)), tree)


def run(spec) -> None:
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  # The resumed run compiles the same programs again: a per-process cache skips that.
  jax.config.update("jax_compilation_cache_dir", os.path.join(spec["out"], f"cache_{_RANK}"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  xla_flags.configure_malloc()
  xla_flags.configure_xla_cpu()
  config = config_for(spec)
  parallel.initialize(config)
  workdir, final = spec["workdir"], {}

  def train_stage(c, w, sigterm_at=None):
    train._train_iterator = lambda c, start: process_batches(c, start, sigterm_at)  # noqa: SLF001
    final["state"] = train.run(c, w)

  # 1. Train towards step 6; SIGTERM on one process after step 1: every process stops at
  # one step and saves it. 2. Resume to step 6. 3-5. sample, classify, evaluate.
  try:
    pipeline.run_in_workdir(config, workdir, "train", lambda c, w: train_stage(c, w, sigterm_at=1))
    raise AssertionError("training was not stopped by SIGTERM")
  except errors.Preempted as e:
    with open(os.path.join(spec["out"], f"preempted_{_RANK}.txt"), "w") as f:
      f.write(str(e))
  pipeline.run_in_workdir(config, workdir, "train", train_stage)
  for mode in ("sample", "classify", "evaluate"):
    pipeline.run_in_workdir(config, workdir, mode, pipeline.ENTRY_POINTS[mode])
  pipeline.run_in_workdir(
    config, workdir, "report", pipeline.write_report
  )  # --mode=all's last stage.
  params = _gathered({"params": final["state"].params, "ema": final["state"].ema_params})
  if jax.process_index() == 0:
    flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(params)}
    np.savez(os.path.join(spec["out"], "params.npz"), **flat)


if __name__ == "__main__":
  try:
    run(_SPEC)
  finally:
    with open(os.path.join(_SPEC["out"], f"writes_{_RANK}.json"), "w") as f:
      json.dump(_WRITES, f)
