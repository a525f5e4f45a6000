"""The shared layers agree with their Flax references; the XLA:CPU flag and the compilation
cache are set with care."""

import os
import platform
import subprocess
import sys
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from solar_jax import xla_flags
from solar_jax.models import layers


@pytest.mark.parametrize(
  "shape, groups",
  [
    ((3, 16, 16, 16), 8),
    ((2, 8, 8, 32), 32),
    ((2, 8, 8, 48), 4),
    ((4, 5, 7, 6), 1),
    ((2, 10, 12), 2),
  ],
)
def test_group_norm_matches_flax(shape, groups):
  # Jitted throughout: one compile per program instead of one per operation (eager).
  rng = np.random.default_rng(0)
  # An offset larger than the spread: E[x^2] - E[x]^2 must still be accurate.
  x = jnp.asarray(rng.normal(3.0, 0.7, shape), jnp.float32)
  ref, ours = nn.GroupNorm(groups), layers.GroupNorm(groups)
  params = jax.jit(ref.init)(jax.random.key(0), x)
  shapes = jax.eval_shape(ours.init, jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, shapes) == jax.tree.map(jnp.shape, params)
  params = jax.tree.map(lambda a: a + jnp.asarray(rng.normal(size=a.shape), jnp.float32), params)
  np.testing.assert_allclose(
    jax.jit(ours.apply)(params, x), jax.jit(ref.apply)(params, x), rtol=1e-4, atol=1e-4
  )

  w = jnp.asarray(rng.normal(size=shape), jnp.float32)

  def grads(module):
    loss = lambda p, x: jnp.sum(w * jnp.tanh(module.apply(p, x)))  # noqa: E731
    return jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)

  for g_ours, g_ref in zip(jax.tree.leaves(grads(ours)), jax.tree.leaves(grads(ref))):
    np.testing.assert_allclose(g_ours, g_ref, rtol=2e-3, atol=2e-3)


def test_group_norm_bfloat16_matches_flax():
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 8, 8, 16)), jnp.bfloat16)
  ref, ours = nn.GroupNorm(4, dtype=jnp.bfloat16), layers.GroupNorm(4, dtype=jnp.bfloat16)
  params = jax.jit(ref.init)(jax.random.key(0), x)
  y = jax.jit(ours.apply)(params, x)
  assert y.dtype == jnp.bfloat16
  np.testing.assert_allclose(
    np.asarray(y, np.float32), np.asarray(jax.jit(ref.apply)(params, x), np.float32), atol=3e-2
  )


def test_group_norm_rejects_groups_that_do_not_divide():
  with pytest.raises(ValueError, match="3 groups do not divide 16 channels"):
    layers.GroupNorm(3).init(jax.random.key(0), jnp.zeros((1, 4, 4, 16)))


def test_configure_xla_cpu_adds_the_flag_once_and_respects_the_user(monkeypatch):
  monkeypatch.setattr(xla_flags, "_jaxlib_minor", lambda: (0, 10))
  monkeypatch.setattr(xla_flags, "_accelerator_plugin_installed", lambda: False)
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  assert xla_flags.configure_xla_cpu(env)
  assert env["XLA_FLAGS"] == (
    "--xla_force_host_platform_device_count=8 "
    "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
  )
  assert not xla_flags.configure_xla_cpu(env)  # Already there: not added twice.
  user = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=individual_dot"}
  assert not xla_flags.configure_xla_cpu(user)
  assert user["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type=individual_dot"
  assert not xla_flags.configure_xla_cpu({"SOLAR_JAX_KEEP_XLA_FLAGS": "1"})
  # A GPU/TPU plugin: left out, unless JAX_PLATFORMS asks for the CPU alone.
  monkeypatch.setattr(xla_flags, "_accelerator_plugin_installed", lambda: True)
  assert not xla_flags.configure_xla_cpu({})
  assert not xla_flags.configure_xla_cpu({"JAX_PLATFORMS": "cuda,cpu"})
  cpu = {"JAX_PLATFORMS": "cpu"}
  assert xla_flags.configure_xla_cpu(cpu) and "ynn_fusion_type" in cpu["XLA_FLAGS"]
  # An unmeasured jaxlib gets nothing: an unknown flag would abort XLA.
  monkeypatch.setattr(xla_flags, "_jaxlib_minor", lambda: (0, 11))
  empty = {}
  assert not xla_flags.configure_xla_cpu(empty)
  assert "XLA_FLAGS" not in empty


def test_the_compilation_cache_defaults_to_the_user_cache_and_respects_the_user(
  monkeypatch, tmp_path
):
  monkeypatch.setenv("HOME", str(tmp_path))
  env, expected = {}, str(tmp_path / ".cache" / "solar_jax" / "jax_cache")
  assert xla_flags.configure_compilation_cache(env) == expected
  assert env == {
    "JAX_COMPILATION_CACHE_DIR": expected,
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.1",
  }
  xdg = {"XDG_CACHE_HOME": str(tmp_path / "fast")}
  assert xla_flags.configure_compilation_cache(xdg) == str(tmp_path / "fast/solar_jax/jax_cache")
  # The user's directory and threshold win; an empty directory turns the cache off.
  user = {
    "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "shared"),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "2",
  }
  assert xla_flags.configure_compilation_cache(user) == str(tmp_path / "shared")
  assert user["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "2"
  off = {"JAX_COMPILATION_CACHE_DIR": ""}
  assert (
    xla_flags.configure_compilation_cache(off) is None and off["JAX_COMPILATION_CACHE_DIR"] == ""
  )


def test_every_run_of_the_command_line_turns_the_cache_on_before_jax_starts(
  cli, monkeypatch, tmp_path
):
  from solar_jax import main

  calls = []
  fake_pipeline = types.SimpleNamespace(start=lambda *args: calls.append("start"))
  monkeypatch.setitem(sys.modules, "fake_pipeline", fake_pipeline)  # No JAX, TF imports.
  monkeypatch.setattr(main, "PIPELINE", "fake_pipeline")
  monkeypatch.setattr(xla_flags, "configure_compilation_cache", lambda: calls.append("cache"))
  result = cli("--config=tiny", f"--workdir={tmp_path / 'run'}", "--mode=sample")
  assert result.returncode == 0, result.stderr
  assert calls == ["cache", "start"]


_ALLOCATE = """
import ctypes, os, resource, sys
sys.path.insert(0, os.getcwd())
from solar_jax import xla_flags
applied = xla_flags.configure_malloc()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
faults = []
for _ in range(6):  # 64 MiB allocated, written, freed: what XLA does with its buffers.
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  block = libc.malloc(64 << 20)
  ctypes.memset(block, 1, 64 << 20)
  libc.free(block)
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, sum(faults[1:]))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_freed_buffers_stay_in_the_process_and_the_variable_turns_it_off(repo_root):
  def faults(**env):
    environ = {k: v for k, v in os.environ.items() if k != xla_flags.MALLOC_ENV}
    out = subprocess.run(
      [sys.executable, "-c", _ALLOCATE],
      cwd=repo_root,
      env={**environ, **env},
      capture_output=True,
      text=True,
      check=True,
    ).stdout.split()
    return out[0] == "True", int(out[1])

  applied, kept = faults()
  off, default = faults(**{xla_flags.MALLOC_ENV: "1"})
  assert applied and not off
  # glibc's default maps and unmaps each 64 MiB block: 16,384 fresh pages per allocation.
  assert default >= 5 * 16384 * 0.9, default
  assert kept < default / 20, (kept, default)
