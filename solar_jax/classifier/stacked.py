"""Several classifier runs trained as one stacked program (``jax.vmap`` over a run axis).

A classifier of the quickstart's size does about 2 GFLOP per step: alone it
leaves an accelerator idle (benchmarks/RESULTS.md, "Classifier runs stacked").
Here the runs of an experiment (regimes, seeds, pools, the validation grid's
points) that share an architecture and step count are trained together: the
parameters, optimiser state, RNG and batches get a leading run axis ``R`` and
one compiled step advances every run. On CPU, which one classifier keeps busy,
the runs are trained one after another instead (``vectorized_runs``).

Each run keeps what it has when trained alone by ``trainer.train_one``: its
initial state (``trainer.seed_key``), its own batch stream (``trainer.BatchStream``,
seeded by the run's seed), its dropout keys, its best-on-validation selection
(``trainer.RunLog``) and its outputs. Runs do not interact: a run's result does
not depend on which runs it is stacked with (tests/test_classifier.py checks
both equalities). Training sets may differ in size: batches are drawn on the host.

Sharding as for one run: the stacked state is replicated (R x 10^5-10^6
parameters), each run's batch is split over the mesh's devices
(``P(None, ('data', 'fsdp'))``).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from solar_jax import parallel
from solar_jax.classifier import trainer
from solar_jax.classifier.training_sets import TrainingSet
from solar_jax.models import classifier as classifier_lib


@dataclasses.dataclass(frozen=True)
class Run:
  """One run to train: what ``trainer.train_one`` takes besides the shared arguments."""

  training_set: TrainingSet
  seed: int
  name: str


@dataclasses.dataclass
class StackedPrograms:
  """The jitted functions over a leading run axis; compiled once per number of runs."""

  mesh: jax.sharding.Mesh
  init: Any  # keys [R] -> ClassifierState with leading axis R (replicated)
  step: Any  # (state [R], batch [R, B, ...]) -> (state, metrics [R]), state donated
  predict: Any  # (params [R], images [B]) -> float32 probabilities [R, B, K] (replicated)
  keep: Any  # (best [R], params [R], improved bool [R]) -> params where improved, else best
  single: trainer.Programs  # The same config's programs for one run (width 1).


_STACKED: dict[tuple, StackedPrograms] = {}


def run_batch_sharding(mesh) -> NamedSharding:
  """Stacked batches ``[R, B, ...]``: each run's batch split over every device."""
  return NamedSharding(mesh, P(None, parallel.BATCH_AXES))


def vectorized_runs(config, mesh) -> int | None:
  """Runs computed side by side: ``classifier.vectorized_runs``; 0 = 1 on CPU, else all (None).

  On XLA:CPU, which the classifier keeps busy alone, nothing beat the runs one
  after another: a vmapped convolution with per-run kernels becomes a grouped
  convolution (0.44x the runs per hour), a ``lax.map`` over runs was 15x slower
  per step, and lanes of one vmapped run stepped in turn 0.82x
  (benchmarks/RESULTS.md). On a GPU the side-by-side form is what fills the device.
  """
  width = config.classifier.vectorized_runs
  if width:
    return int(width)
  return 1 if mesh.devices.flat[0].platform == "cpu" else None


def make_stacked_programs(config: ml_collections.ConfigDict, mesh) -> StackedPrograms:
  """Builds (or reuses) the stacked programs; same cache key as ``trainer.make_programs``."""
  key = trainer.program_key(config, mesh)
  if key not in _STACKED:
    _STACKED[key] = _build(config, mesh)
  return _STACKED[key]


def _build(config, mesh) -> StackedPrograms:
  model = classifier_lib.create_classifier(config)
  optimizer = trainer.create_optimizer(config.classifier)
  rep, data = parallel.replicated(mesh), parallel.data_sharding(mesh)
  init_one = functools.partial(trainer.new_state, config=config, model=model, optimizer=optimizer)
  step_one = functools.partial(trainer.train_step, model=model, optimizer=optimizer)

  def predict_one(params, images):
    return jax.nn.softmax(model.apply({"params": params}, images, train=False), -1)

  def keep(best, params, improved):
    def pick(b, p):
      return jnp.where(improved.reshape((-1,) + (1,) * (p.ndim - 1)), p, b)

    return jax.tree.map(pick, best, params)

  return StackedPrograms(
    mesh=mesh,
    init=jax.jit(jax.vmap(init_one), out_shardings=rep),
    step=jax.jit(
      jax.vmap(step_one),
      in_shardings=(rep, run_batch_sharding(mesh)),
      out_shardings=(rep, rep),
      donate_argnums=(0,),
    ),
    predict=jax.jit(
      jax.vmap(predict_one, in_axes=(0, None)), in_shardings=(rep, data), out_shardings=rep
    ),
    keep=jax.jit(keep, out_shardings=rep),
    single=trainer.make_programs(config, mesh),
  )


def _global(mesh, arrays: dict) -> dict:
  """Global ``[R, B, ...]`` arrays from full host batches: each process gives its share of B."""
  n = next(iter(arrays.values())).shape[1]
  local, i = n // jax.process_count(), jax.process_index()
  sharding = run_batch_sharding(mesh)
  return {
    k: jax.make_array_from_process_local_data(sharding, v[:, i * local : (i + 1) * local])
    for k, v in arrays.items()
  }


def predict_stacked(programs: StackedPrograms, params, images, batch_size: int) -> np.ndarray:
  """Class probabilities float32 ``[R, N, K]`` of every run for ``images`` [N, ...]."""
  return trainer.apply_batched(programs.predict, params, images, batch_size, programs.mesh, axis=1)


def group_runs(runs: list, max_stacked: int) -> list[list]:
  """Consecutive groups of at most ``max_stacked`` runs, as even as can be (fewer shapes)."""
  if not runs:
    return []
  groups = -(-len(runs) // max(1, max_stacked))
  size = -(-len(runs) // groups)
  return [runs[i : i + size] for i in range(0, len(runs), size)]


class _Lane:
  """Runs computed side by side: one stacked state, its window sums and its best parameters."""

  def __init__(self, programs: StackedPrograms, config, runs: list[int], seeds: list[int]):
    self.programs, self.runs = programs, runs
    self.state = programs.init(jnp.stack([trainer.seed_key(config, seeds[r]) for r in runs]))
    self.sums, self.best = None, None

  def step(self, batches: list[dict]) -> None:
    arrays = {k: np.stack([batches[r][k] for r in self.runs]) for k in batches[0]}
    self.state, metrics = self.programs.step(self.state, _global(self.programs.mesh, arrays))
    self.sums = metrics if self.sums is None else jax.tree.map(jnp.add, self.sums, metrics)

  def window(self) -> list[dict]:
    """Each run's summed train metrics since the last call (host scalars)."""
    scalars, self.sums = jax.device_get(self.sums), None  # The only read between evaluations.
    return [{k: v[i] for k, v in scalars.items()} for i in range(len(self.runs))]

  def keep(self, improved: np.ndarray) -> None:
    """Copies the parameters of the ``improved`` runs (the state's buffers are donated)."""
    params = self.state.params
    if self.best is None:
      self.best = jax.tree.map(jnp.copy, params)
    else:
      self.best = self.programs.keep(self.best, params, improved)

  def params(self) -> list:
    params = self.state.params if self.best is None else self.best
    return [jax.tree.map(lambda a, i=i: a[i], params) for i in range(len(self.runs))]


def train_many(
  config: ml_collections.ConfigDict,
  programs: StackedPrograms,
  runs: list[Run],
  validation: dict | None,
  *,
  writer=None,
  label: str | None = None,
) -> list[tuple[Any, dict]]:
  """Trains ``runs`` together, each as ``trainer.train_one`` would.

  ``vectorized_runs`` of them at a time are one stacked (vmapped) state; all
  advance in one host loop over the steps. With ``vectorized_runs`` 1 (CPU's
  default) each run is trained alone by ``trainer.train_one``, one after another.

  Args:
    config: reads classifier.{batch_size, num_steps, eval_every, task, vectorized_runs}.
    programs: from ``make_stacked_programs``.
    runs: the runs (training set, seed, name) to train together.
    validation: {'image', 'label'} shared by every run; None or empty: final parameters.
    writer: optional clu metric writer (tags are each run's name).
    label: the progress bar's name (default: the runs' names).

  Returns:
    ``[(params, info)]`` in the order of ``runs``, as ``trainer.train_one`` returns them.
  """
  c, mesh = config.classifier, programs.mesh
  parallel.check_local_batch(c.batch_size, mesh)
  width = vectorized_runs(config, mesh) or len(runs)
  if width == 1:  # CPU: one run after another is the fastest form (see vectorized_runs).
    return [
      trainer.train_one(
        config, programs.single, r.training_set, validation, seed=r.seed, name=r.name, writer=writer
      )
      for r in runs
    ]
  seeds = [r.seed for r in runs]
  lanes = [
    _Lane(programs, config, list(range(i, min(i + width, len(runs)))), seeds)
    for i in range(0, len(runs), width)
  ]
  streams = [trainer.BatchStream(config, r.training_set, r.seed) for r in runs]
  logs = [trainer.RunLog(config, r.name, validation) for r in runs]
  count = 0
  with trainer.progress_bar(config, label or ", ".join(r.name for r in runs)) as progress:
    for step in range(1, c.num_steps + 1):
      batches = [s.next() for s in streams]
      for lane in lanes:
        lane.step(batches)
      count += 1
      progress.update(1)
      if not logs[0].evaluates(step):
        continue
      sums = [scalars for lane in lanes for scalars in lane.window()]
      records = [log.window(s, count, step) for log, s in zip(logs, sums)]
      count = 0
      if logs[0].has_val:
        for lane in lanes:
          prob = predict_stacked(programs, lane.state.params, validation["image"], c.batch_size)
          pred = np.argmax(prob, -1)
          lane.keep(
            np.array([logs[r].validate(records[r], pred[i]) for i, r in enumerate(lane.runs)])
          )
      for log, record in zip(logs, records):
        log.append(record, writer)
      progress.set_postfix(loss=f"{np.mean([r['train_loss'] for r in records]):.3f}")
  params = [p for lane in lanes for p in lane.params()]
  return [(p, log.info()) for p, log in zip(params, logs)]
