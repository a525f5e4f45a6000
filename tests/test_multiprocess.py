"""Several processes: the explicit distributed set-up, and every mode on 2 processes x 2 devices.

The multi-process run is real: two local processes join through jax.distributed
on a loopback coordinator and run their collectives over gloo (CPU); each has
2 fake CPU devices. tests/multiprocess_driver.py runs the product's modes in
them; a third process, alone with 4 devices, is the reference on the same
global batches.
"""

import csv
import io
import json
import os
import pathlib
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

from solar_jax import errors, parallel
from solar_jax.configs import default

_DRIVER = pathlib.Path(__file__).with_name("multiprocess_driver.py")
_TIMEOUT_S = 420  # The whole run takes ~90 s on 2 idle cores.


def _mesh(**fields):
  mesh = default.get_config().mesh
  for k, v in fields.items():
    mesh[k] = v
  return mesh


# ------------------------------------------------------ set-up rules ---


def test_explicit_fields_and_their_variables():
  explicit = dict(coordinator_address="10.0.0.1:1234", num_processes=4, process_id=3)
  assert parallel.distributed_args(_mesh(**explicit), environ={}) == explicit
  env = {"JAX_COORDINATOR_ADDRESS": "h:5", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}
  assert parallel.distributed_args(_mesh(), environ=env) == {
    "coordinator_address": "h:5",
    "num_processes": 2,
    "process_id": 1,
  }
  # The config wins over the environment; nothing given -> JAX's auto-detection.
  assert parallel.distributed_args(_mesh(process_id=0), environ=env)["process_id"] == 0
  assert parallel.distributed_args(_mesh(), environ={}) == {}


@pytest.mark.parametrize(
  "fields, env, named",
  [
    ({}, {"JAX_COORDINATOR_ADDRESS": "h:5"}, ("mesh.num_processes", "mesh.process_id")),
    ({"num_processes": 2}, {}, ("mesh.coordinator_address", "mesh.process_id")),
    ({"coordinator_address": "h:5", "num_processes": 2}, {}, ("mesh.process_id",)),
  ],
)
def test_a_partial_set_up_names_the_missing_fields(fields, env, named):
  with pytest.raises(errors.ConfigError) as info:
    parallel.distributed_args(_mesh(**fields), environ=env)
  message = str(info.value)
  assert "\n" not in message
  assert all(name in message for name in named)
  given = set(parallel.EXPLICIT_FIELDS) - {n.removeprefix("mesh.") for n in named}
  assert all(f"mesh.{g} (" not in message for g in given)


def test_a_scheduler_supplies_the_rest():
  # Under SLURM (or Open MPI, a TPU pod) JAX detects the count and rank itself.
  slurm = {"JAX_COORDINATOR_ADDRESS": "h:5", "SLURM_NTASKS": "2"}
  assert parallel.distributed_args(_mesh(), environ=slurm) == {"coordinator_address": "h:5"}


@pytest.mark.parametrize(
  "fields, field",
  [
    ({"coordinator_address": "no-port"}, "mesh.coordinator_address"),
    ({"num_processes": 0}, "mesh.num_processes"),
    (dict(coordinator_address="h:5", num_processes=2, process_id=2), "mesh.process_id"),
  ],
)
def test_bad_values_are_named(fields, field):
  with pytest.raises(errors.ConfigError, match=re.escape(field)):
    parallel.distributed_args(_mesh(**fields), environ={})


def test_coordinator_address_alone_is_one_line_exit_2(cli, tmp_path, monkeypatch):
  monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1")
  for name in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
    monkeypatch.delenv(name, raising=False)
  result = cli("--config=tiny", f"--workdir={tmp_path}")
  assert result.returncode == 2, result.stderr[-2000:]
  lines = result.stderr.strip().splitlines()
  assert lines[-1].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
  assert "mesh.num_processes (JAX_NUM_PROCESSES)" in lines[-1]
  assert "mesh.process_id (JAX_PROCESS_ID)" in lines[-1]
  assert "JAX_COORDINATOR_ADDRESS is set" in lines[-1]
  assert not (tmp_path / "config.json").exists()


# -------------------------------------------------- two processes run ---


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start(repo_root, spec, log):
  env = dict(os.environ, PYTHONPATH=str(repo_root), TF_CPP_MIN_LOG_LEVEL="2")
  for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "XLA_FLAGS"):
    env.pop(name, None)
  pathlib.Path(spec["out"]).mkdir(parents=True, exist_ok=True)
  return subprocess.Popen(
    [sys.executable, str(_DRIVER), json.dumps(spec)],
    cwd=repo_root,
    env=env,
    stdout=log,
    stderr=subprocess.STDOUT,
  )


def _wait_all(procs, logs) -> None:
  try:
    for proc in procs:
      proc.wait(timeout=_TIMEOUT_S)
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.kill()
        proc.wait()
  for proc, log in zip(procs, logs):
    assert proc.returncode == 0, pathlib.Path(log).read_text()[-4000:]


def _files(root: pathlib.Path, under: str) -> dict:
  """Per file: its bytes; an npz's arrays; a FITS file's data and header but for the cards
  that name its workdir (CKPTSRC) and its writer (DATE, SJ_VER, SJCOMMIT, the command in
  HISTORY)."""
  paths = [root / under] if (root / under).is_file() else sorted((root / under).rglob("*"))
  out = {}
  for p in paths:
    if not p.is_file():
      continue
    if p.suffix == ".fits":
      from astropy.io import fits

      with fits.open(p) as hdul:
        header = hdul[0].header.copy()
        for key in ("CKPTSRC", "DATE", "SJ_VER", "SJCOMMIT", "HISTORY"):
          header.remove(key, ignore_missing=True, remove_all=True)
        data = (hdul[0].data.copy(), header.tostring())
    elif p.suffix == ".npz":
      with np.load(p) as npz:
        data = ({k: npz[k] for k in npz.files}, None)
    elif p.suffix == ".png":  # Pixels: an image at a rounding edge may move one level.
      from PIL import Image

      with Image.open(p) as image:
        data = (np.asarray(image).astype(np.float32), image.size)
    else:
      data = p.read_bytes()
    out[p.relative_to(root)] = data
  return out


def _assert_same_files(multi: dict, one: dict) -> None:
  """The same files; arrays (FITS data, npz) equal to float32 rounding, PNG pixels to one
  level, the rest the same bytes. The parameters they come from agree to rounding only: gloo and one process sum
  the gradients in another order, so a bitwise match would depend on the machine."""
  assert multi.keys() == one.keys() and multi
  for name, a in multi.items():
    b = one[name]
    if isinstance(a, bytes):
      assert a == b, name
      continue
    (arrays_a, header_a), (arrays_b, header_b) = a, b
    assert header_a == header_b, name
    if not isinstance(arrays_a, dict):
      arrays_a, arrays_b = {"data": arrays_a}, {"data": arrays_b}
    assert arrays_a.keys() == arrays_b.keys(), name
    for key, x in arrays_a.items():
      y = arrays_b[key]
      assert x.dtype == y.dtype and x.shape == y.shape, (name, key)
      if name.suffix == ".png":
        np.testing.assert_allclose(x, y, atol=1, err_msg=f"{name}")
        assert np.mean(x != y) < 1e-3, name
      elif x.dtype.kind == "f":
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5, err_msg=f"{name}: {key}")
      else:
        np.testing.assert_array_equal(x, y, err_msg=f"{name}: {key}")


@pytest.mark.slow
@pytest.mark.long
def test_two_processes_run_every_mode_as_one_does(repo_root, tmp_path, demo_tfds):
  data_dir = demo_tfds  # Fold 0: test = September, validation = April (conftest).
  port = _free_port()
  multi = dict(data_dir=str(data_dir), workdir=str(tmp_path / "multi"), out=str(tmp_path / "mo"))
  single = dict(data_dir=str(data_dir), workdir=str(tmp_path / "one"), out=str(tmp_path / "oo"))
  specs = [
    dict(multi, devices=2, num_processes=2, process_id=p, coordinator_address=f"127.0.0.1:{port}")
    for p in (0, 1)
  ] + [dict(single, devices=4)]
  logs = [tmp_path / f"log_{i}.txt" for i in range(3)]
  handles = [open(log, "w") for log in logs]  # noqa: SIM115 - closed below
  try:
    _wait_all([_start(repo_root, s, h) for s, h in zip(specs, handles)], logs)
  finally:
    for h in handles:
      h.close()
  mo, oo = pathlib.Path(multi["out"]), pathlib.Path(single["out"])
  workdir_multi, workdir_one = pathlib.Path(multi["workdir"]), pathlib.Path(single["workdir"])

  # SIGTERM reached process 1 only: both stopped at the same step and saved it (one
  # step after the lone process, which needs no agreement), and both resumed from it.
  stops = [(mo / f"preempted_{p}.txt").read_text() for p in (0, 1)]
  assert stops[0] == stops[1] and "stopped at step 3" in stops[0], stops
  assert "stopped at step 2" in (oo / "preempted_0.txt").read_text()

  # Parameters after 6 steps (stopped, resumed) on the same global batches.
  a, b = np.load(mo / "params.npz"), np.load(oo / "params.npz")
  assert sorted(a.files) == sorted(b.files) and len(a.files) > 10
  for key in a.files:
    np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)

  # Samples (npz, grid, FITS): the same files, images to float32 rounding (from parameters
  # equal to rounding). The classifier's predictions: the same labels and forecasts; its
  # probabilities to float32 rounding (batches reduced in another order).
  _assert_same_files(_files(workdir_multi, "samples"), _files(workdir_one, "samples"))
  rows = [
    list(csv.DictReader(io.StringIO((w / "classifier" / "predictions.csv").read_text())))
    for w in (workdir_multi, workdir_one)
  ]
  assert len(rows[0]) == len(rows[1]) and rows[0]
  floats = ("prob_positive", "prob_positive_corrected")
  for multi_row, one_row in zip(*rows):
    assert {k: v for k, v in multi_row.items() if k not in floats} == {
      k: v for k, v in one_row.items() if k not in floats
    }
    for key in floats:
      if multi_row[key] or one_row[key]:
        np.testing.assert_allclose(float(multi_row[key]), float(one_row[key]), atol=1e-4)
  metrics = [
    json.loads((w / "eval" / "metrics.json").read_text()) for w in (workdir_multi, workdir_one)
  ]
  assert metrics[0].keys() == metrics[1].keys()

  # Only process 0 wrote; process 1's only files are orbax's record of its own shards.
  writes = [json.loads((mo / f"writes_{p}.json").read_text()) for p in (0, 1)]
  assert any(re.search(r"samples/6-[^/]+/samples\.npz", w) for w in writes[0])
  assert any("eval/metrics.json" in w for w in writes[0])
  assert any(w.endswith(" report.md") for w in writes[0])
  assert writes[1] and all("array_metadatas/process_1" in w for w in writes[1]), writes[1]
