"""Devices, meshes and shardings: the one place that knows about them.

One mesh with axes ``('data', 'fsdp')``. The batch is split over both axes;
parameters and optimiser state are split over ``fsdp`` (replicated when
``mesh.fsdp == 1``). Both axes use ``AxisType.Auto``: shardings are given at
the jit boundary and XLA propagates them through the convolutions, which on
explicit axes would each need their output sharding spelled out.
"""

from __future__ import annotations

import os

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from solar_jax import configuration, errors

# mesh.distributed: detect a cluster launch (auto), force jax.distributed (yes), or not.
DISTRIBUTED = ("auto", "yes", "no")
BATCH_AXES = ("data", "fsdp")
# Parameters smaller than this stay replicated under FSDP: splitting them
# costs more in collectives than it saves in memory.
_MIN_FSDP_SIZE = 2**14

# Environment variables of a scheduler whose launch JAX detects by itself
# (jax._src.clusters): Cloud TPU pods, multislice, Open MPI, SLURM, Kubernetes.
_CLUSTER_ENV = (
  "TPU_WORKER_HOSTNAMES",
  "MEGASCALE_COORDINATOR_ADDRESS",
  "OMPI_COMM_WORLD_SIZE",
)
# The explicit set-up: config field -> the environment variable read when it is unset.
EXPLICIT_FIELDS = {
  "coordinator_address": "JAX_COORDINATOR_ADDRESS",
  "num_processes": "JAX_NUM_PROCESSES",
  "process_id": "JAX_PROCESS_ID",
}


def _cluster_detected(environ=os.environ) -> bool:
  """Whether a scheduler that JAX auto-detects launched this process as one of several."""
  hosts = environ.get("TPU_WORKER_HOSTNAMES", "")
  if "," in hosts or any(environ.get(n) for n in _CLUSTER_ENV if n != "TPU_WORKER_HOSTNAMES"):
    return True
  if environ.get("KUBERNETES_SERVICE_HOST") and environ.get("JOB_COMPLETION_INDEX"):
    return True  # An indexed Job (JobSet): JAX asks the Kubernetes API for the rest.
  return int(environ.get("SLURM_NTASKS", "1") or 1) > 1


def distributed_args(mesh_config: ml_collections.ConfigDict, environ=os.environ) -> dict:
  """The explicit ``jax.distributed.initialize`` arguments the config or environment gives.

  Each of ``mesh.coordinator_address``, ``mesh.num_processes``, ``mesh.process_id``
  is taken from the config, else from its ``JAX_*`` variable (``EXPLICIT_FIELDS``).

  Returns:
    The fields given, by name ({} when none is).

  Raises:
    errors.ConfigError: a value is malformed, or only some fields are given and no
      scheduler that JAX detects (SLURM, Open MPI, TPU, Kubernetes) can supply the rest.
  """
  args, sources = {}, []
  for field, variable in EXPLICIT_FIELDS.items():
    value, source = mesh_config[field], f"mesh.{field}"
    if value is None and environ.get(variable, "").strip():
      value, source = environ[variable].strip(), variable
    if value is not None:
      args[field] = configuration.distributed_value(field, value, source)
      sources.append(source)
  if args.get("process_id", 0) >= args.get("num_processes", 2**31):
    raise errors.ConfigError(
      f"mesh.process_id={args['process_id']} must lie in [0, mesh.num_processes - 1] "
      f"(mesh.num_processes={args['num_processes']})."
    )
  missing = [f for f in EXPLICIT_FIELDS if f not in args]
  if args and missing and not _cluster_detected(environ):
    raise errors.ConfigError(
      f"an explicit multi-process set-up needs {' and '.join(_named(f) for f in missing)} "
      f"as well ({' and '.join(sources)} {'is' if len(sources) == 1 else 'are'} set): give all three, or none to let JAX detect the cluster "
      "(TPU, SLURM, Open MPI, Kubernetes)."
    )
  return args


def _named(field: str) -> str:
  return f"mesh.{field} ({EXPLICIT_FIELDS[field]})"


def maybe_initialize_distributed(mesh_config: ml_collections.ConfigDict, environ=os.environ):
  """Calls ``jax.distributed.initialize`` when the config or environment asks.

  Explicit fields (``distributed_args``) are passed on; without them JAX detects
  the cluster. ``mesh.distributed``: 'auto' initialises when fields are given or a
  scheduler is detected, 'yes' always, 'no' never. Must run before any other JAX
  call. Returns whether it initialised.

  Raises:
    errors.ConfigError: a partial or malformed set-up, or one that JAX rejects.
  """
  mode = mesh_config.distributed
  if mode == "no" or jax.distributed.is_initialized():
    return False
  args = distributed_args(mesh_config, environ)
  if mode == "auto" and not args and not _cluster_detected(environ):
    return False
  try:
    jax.distributed.initialize(**args)
  except (ValueError, TypeError) as e:  # JAX's own checks: a set-up it cannot complete.
    raise errors.ConfigError(
      f"jax.distributed.initialize({', '.join(f'{k}={v!r}' for k, v in args.items())}): "
      f"{e} Set mesh.coordinator_address, mesh.num_processes and mesh.process_id."
    ) from None
  logging.info(
    "jax.distributed initialised: process %d of %d", jax.process_index(), jax.process_count()
  )
  return True


def initialize(config: ml_collections.ConfigDict) -> None:
  """Starts the distributed system (if asked); ``checks.validate`` then checks the config
  against the devices.

  Raises:
    errors.ConfigError: a bad distributed set-up, naming the field.
  """
  maybe_initialize_distributed(config.mesh)


def create_mesh(mesh_config: ml_collections.ConfigDict, devices=None) -> Mesh:
  """Builds the ('data', 'fsdp') mesh over ``devices`` (default: all devices).

  With ``mesh.data`` x ``mesh.fsdp`` below the device count (one process only), the
  mesh takes the first devices of the list.
  """
  devices = list(jax.devices() if devices is None else devices)
  shape = configuration.mesh_shape(mesh_config, len(devices), jax.process_count())
  used = shape[0] * shape[1]
  if used < len(devices):
    logging.log_first_n(logging.INFO, "The mesh uses %d of %d devices.", 1, used, len(devices))
  devices = devices[:used]
  return jax.make_mesh(shape, BATCH_AXES, axis_types=(AxisType.Auto,) * 2, devices=devices)


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over every device of the mesh."""
  return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def num_batch_shards(mesh: Mesh) -> int:
  return mesh.shape["data"] * mesh.shape["fsdp"]


def _fsdp_spec(shape: tuple[int, ...], fsdp: int) -> P:
  """Splits the largest dimension divisible by ``fsdp``; small arrays stay whole."""
  if fsdp == 1 or int(np.prod(shape, dtype=np.int64)) < _MIN_FSDP_SIZE:
    return P()
  for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
    if shape[dim] % fsdp == 0:
      spec = [None] * len(shape)
      spec[dim] = "fsdp"
      return P(*spec)
  return P()


def state_shardings(mesh: Mesh, abstract_tree):
  """NamedShardings for a pytree of arrays (params, optimiser state, EMA)."""
  fsdp = mesh.shape["fsdp"]

  def leaf_sharding(leaf):
    shape = getattr(leaf, "shape", ())
    return NamedSharding(mesh, _fsdp_spec(tuple(shape), fsdp))

  return jax.tree.map(leaf_sharding, abstract_tree)


def make_global_batch(mesh: Mesh, local_batch: dict) -> dict:
  """Builds global arrays from each process's share of the batch.

  Non-numeric entries (times, file names as bytes) stay on the host, as they are.
  """
  sharding = data_sharding(mesh)
  out = {}
  for key, value in local_batch.items():
    value = np.asarray(value)
    if value.dtype.kind in "biuf":
      out[key] = jax.make_array_from_process_local_data(sharding, value)
    else:
      out[key] = value
  return out


def check_local_batch(batch_size: int, mesh: Mesh) -> int:
  """Returns the per-process batch size, or raises naming the field."""
  shards = num_batch_shards(mesh)
  if batch_size % shards or batch_size % jax.process_count():
    raise configuration.ConfigError(
      f"batch size {batch_size} is not divisible by the {shards} batch shards and "
      f"{jax.process_count()} processes."
    )
  return batch_size // jax.process_count()


def is_main_process() -> bool:
  return jax.process_index() == 0


# Programs run once or a few times (a model's initialisation, the finiteness check of a
# save) gain microseconds from XLA:CPU's LLVM optimisation and pay seconds for it: the
# quickstart UNet's init compiles in 7.5 s without it against 19 s (benchmarks/RESULTS.md,
# "Programs run once, compiled cheaply"). The options are XLA:CPU's; other backends compile
# as usual.
_RUN_ONCE_CPU_OPTIONS = {
  "xla_backend_optimization_level": 0,
  "xla_llvm_disable_expensive_passes": True,
}


def jit_run_once(fn, **jit_kwargs):
  """``jax.jit(fn, **jit_kwargs)`` for a program run rarely: on CPU compiled without LLVM's
  optimisation passes (slower code, faster compile; results equal to float rounding: the
  quickstart UNet's initial parameters differ in their last bits). One compile per
  argument structure, shapes, dtypes and shardings, as ``jax.jit``; traced inside another
  transformation (``jax.eval_shape``), it is ``jax.jit(fn)``."""
  jitted, compiled = jax.jit(fn, **jit_kwargs), {}

  def call(*args):
    leaves, treedef = jax.tree.flatten(args)
    if any(isinstance(x, jax.core.Tracer) for x in leaves):  # Traced (eval_shape, jit).
      return jitted(*args)
    key = (treedef, tuple((x.shape, str(x.dtype), getattr(x, "sharding", None)) for x in leaves))
    if key not in compiled:
      lowered = jitted.lower(*args)
      cpu = jax.default_backend() == "cpu"
      compiled[key] = lowered.compile(compiler_options=_RUN_ONCE_CPU_OPTIONS if cpu else None)
    return compiled[key](*args)

  return call
