"""Checkpoints: round trip with shardings, non-finite refusal, corrupt fallback, lock."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from solar_jax import checkpointing, errors, parallel
from solar_jax import workdir as wd
from solar_jax.configs import tiny


def _state(mesh, scale=1.0):
  config = tiny.get_config()
  config.mesh.fsdp = 2
  tree = {
    "w": jnp.arange(4 * 8 * 1024, dtype=jnp.float32).reshape(4, 8, 1024) * scale,
    "b": jnp.ones((3,), jnp.float32) * scale,
    "step": jnp.asarray(5, jnp.int32),
  }
  shardings = parallel.state_shardings(mesh, tree)
  return jax.device_put(tree, shardings), shardings


def _mesh(fsdp=2):
  config = tiny.get_config()
  config.mesh.fsdp = fsdp
  return parallel.create_mesh(config.mesh)


def test_fsdp_shards_large_leaves_only():
  mesh = _mesh(2)
  state, shardings = _state(mesh)
  assert shardings["w"].spec == jax.sharding.PartitionSpec(None, None, "fsdp")
  assert shardings["b"].spec == jax.sharding.PartitionSpec()
  assert state["w"].addressable_shards[0].data.shape == (4, 8, 512)


def test_round_trip_keeps_values_and_shardings(tmp_path):
  mesh = _mesh(2)
  state, shardings = _state(mesh)
  ckpt = checkpointing.Checkpointer(tmp_path, keep=2)
  ckpt.save(10, state, {"note": "x"})
  abstract = jax.tree.map(
    lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), state, shardings
  )
  restored, meta = ckpt.restore(abstract)
  assert meta["step"] == 10 and meta["note"] == "x"
  for key in state:
    np.testing.assert_array_equal(np.asarray(restored[key]), np.asarray(state[key]))
    assert restored[key].sharding == shardings[key]


def test_relative_workdir_round_trips(tmp_path, monkeypatch):
  """`--workdir=runs/x` is relative; orbax itself accepts only absolute paths."""
  monkeypatch.chdir(tmp_path)
  state, shardings = _state(_mesh(1))
  checkpointing.Checkpointer("runs/x", keep=1).save(3, state)
  abstract = jax.tree.map(
    lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), state, shardings
  )
  restored, meta = checkpointing.Checkpointer("runs/x", keep=1).restore(abstract)
  assert meta["step"] == 3 and (tmp_path / "runs/x/checkpoints/3").is_dir()
  np.testing.assert_array_equal(np.asarray(restored["w"]), np.asarray(state["w"]))


def test_keeps_last_k(tmp_path):
  mesh = _mesh(1)
  state, _ = _state(mesh)
  ckpt = checkpointing.Checkpointer(tmp_path, keep=2)
  for step in (1, 2, 3):
    ckpt.save(step, state)
  assert ckpt.all_steps() == [2, 3]


def test_refuses_non_finite_and_keeps_last_good(tmp_path):
  mesh = _mesh(1)
  state, _ = _state(mesh)
  ckpt = checkpointing.Checkpointer(tmp_path, keep=3)
  ckpt.save(1, state)
  bad = dict(state, b=state["b"] * jnp.nan)
  with pytest.raises(errors.NonFiniteError, match="step 2"):
    ckpt.save(2, bad)
  assert ckpt.all_steps() == [1]


def test_corrupt_latest_falls_back_to_previous(tmp_path):
  mesh = _mesh(1)
  state, shardings = _state(mesh)
  ckpt = checkpointing.Checkpointer(tmp_path, keep=3)
  ckpt.save(1, state)
  state2, _ = _state(mesh, scale=2.0)
  ckpt.save(2, state2)
  # Truncate every data file of the newest checkpoint.
  for path in (tmp_path / "checkpoints" / "2" / "state").rglob("*"):
    if path.is_file() and path.stat().st_size > 0 and "metadata" not in path.name:
      path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
  abstract = jax.tree.map(
    lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), state, shardings
  )
  restored, meta = checkpointing.Checkpointer(tmp_path, keep=3).restore(abstract)
  assert meta["step"] == 1
  np.testing.assert_array_equal(np.asarray(restored["b"]), np.asarray(state["b"]))


def test_no_checkpoint_is_none(tmp_path):
  mesh = _mesh(1)
  state, _ = _state(mesh)
  assert checkpointing.Checkpointer(tmp_path, keep=1).restore(state) is None


def test_workdir_lock_refuses_second_holder(tmp_path):
  with wd.Lock(tmp_path):
    with pytest.raises(RuntimeError, match="in use by pid"):
      with wd.Lock(tmp_path):
        pass
  with wd.Lock(tmp_path):  # Released: can be taken again.
    pass


def test_a_program_run_once_equals_jit_and_compiles_once_per_signature(monkeypatch):
  mesh = _mesh()
  state, shardings = _state(mesh, scale=0.5)

  def fn(tree):
    return jax.tree.map(lambda x: jnp.sin(x * 3.0) + x.sum(), tree)

  compiles = []
  real = jax.stages.Lowered.compile
  monkeypatch.setattr(
    jax.stages.Lowered, "compile", lambda self, **kw: compiles.append(kw) or real(self, **kw)
  )
  once = parallel.jit_run_once(fn, out_shardings=shardings)
  got, again = once(state), once(_state(mesh, scale=2.0)[0])
  assert len(compiles) == 1 and compiles[0]["compiler_options"]  # Cheap on CPU.
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(jax.jit(fn)(state))):
    np.testing.assert_allclose(a, b, rtol=1e-6)
  assert jax.tree.map(lambda x: x.sharding, got) == shardings  # As jax.jit's out_shardings.
  assert float(again["b"][0]) == pytest.approx(np.sin(6.0) + 6.0)
  once({**state, "b": jnp.ones((4,))})  # Another shape: compiled again.
  assert len(compiles) == 2
  shapes = jax.eval_shape(once, state)  # Traced: as jax.jit, nothing compiled.
  assert jax.tree.map(lambda x: x.shape, shapes) == jax.tree.map(lambda x: x.shape, state)
  assert len(compiles) == 2
