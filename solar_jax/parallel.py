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
from etils import epath
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from solar_jax import configuration

BATCH_AXES = ("data", "fsdp")
# Parameters smaller than this stay replicated under FSDP: splitting them
# costs more in collectives than it saves in memory.
_MIN_FSDP_SIZE = 2**14

# Environment variables that show a multi-process launch.
_CLUSTER_ENV = (
  "JAX_COORDINATOR_ADDRESS",
  "COORDINATOR_ADDRESS",
  "TPU_WORKER_HOSTNAMES",
  "MEGASCALE_COORDINATOR_ADDRESS",
  "OMPI_COMM_WORLD_SIZE",
)


def _cluster_detected() -> bool:
  if any(os.environ.get(name) for name in _CLUSTER_ENV):
    hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
    return (
      "," in hosts
      or not hosts
      or any(os.environ.get(n) for n in _CLUSTER_ENV if n != "TPU_WORKER_HOSTNAMES")
    )
  return int(os.environ.get("SLURM_NTASKS", "1")) > 1


def maybe_initialize_distributed(mesh_config: ml_collections.ConfigDict) -> bool:
  """Calls ``jax.distributed.initialize()`` when the config or environment asks.

  Must run before any other JAX call. Returns whether it initialised.
  """
  mode = mesh_config.distributed
  if mode == "no" or jax.distributed.is_initialized():
    return False
  if mode == "auto" and not _cluster_detected():
    return False
  jax.distributed.initialize()
  logging.info(
    "jax.distributed initialised: process %d of %d", jax.process_index(), jax.process_count()
  )
  return True


def create_mesh(mesh_config: ml_collections.ConfigDict, devices=None) -> Mesh:
  """Builds the ('data', 'fsdp') mesh over ``devices`` (default: all devices)."""
  devices = list(jax.devices() if devices is None else devices)
  shape = configuration.mesh_shape(mesh_config, len(devices))
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


def write_config(config: ml_collections.ConfigDict, workdir) -> None:
  """Writes ``workdir/config.json`` (process 0 only)."""
  if not is_main_process():
    return
  workdir = epath.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "config.json").write_text(configuration.to_json(config))
