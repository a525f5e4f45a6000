"""examples/quickstart.ipynb runs, top to bottom, on a tiny model (and is stored without outputs).

With nbclient and ipykernel installed (``pip install -e ".[test]"``) it runs in a Jupyter
kernel; without them its code cells run in order in one namespace, which is what a kernel
does with cells free of IPython magics (the notebook has none).
"""

import contextlib
import importlib.util
import io
import json
import os

import conftest
import pytest

from solar_jax import workdir as wd

NOTEBOOK = "examples/quickstart.ipynb"


@pytest.fixture(scope="module")
def tiny_workdir(tiny_checkpoint):
  """A workdir with a checkpoint (a fresh init), config.json and two metrics files."""
  (tiny_checkpoint / "eval").mkdir()
  wd.write_json(
    tiny_checkpoint / "eval" / "metrics.json", {"summary": {"classifier": {"fid": 12.5}}}
  )
  return tiny_checkpoint


def test_the_notebook_is_stored_without_outputs(repo_root):
  notebook = json.loads((repo_root / NOTEBOOK).read_text())
  code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
  assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)


def test_the_notebook_runs(repo_root, tiny_workdir, monkeypatch):
  monkeypatch.setenv("SOLAR_JAX_WORKDIR", str(tiny_workdir))
  monkeypatch.setenv("SOLAR_JAX_NUM_IMAGES", "2")
  monkeypatch.setenv("MPLBACKEND", "Agg")
  monkeypatch.chdir(repo_root)
  path = repo_root / NOTEBOOK
  if importlib.util.find_spec("nbclient") and importlib.util.find_spec("ipykernel"):
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    env = dict(os.environ, PYTHONPATH=str(repo_root))
    monkeypatch.setattr(os, "environ", env)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3").execute()
    text = "".join(
      o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs
    )
  else:
    import matplotlib

    matplotlib.use("Agg")
    notebook = json.loads(path.read_text())
    namespace, captured = {"__name__": "__main__"}, io.StringIO()
    with contextlib.redirect_stdout(captured):
      for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
          exec(compile("".join(cell["source"]), NOTEBOOK, "exec"), namespace)  # noqa: S102
    text = captured.getvalue()
    maps = namespace["maps"]
    assert len(maps) == 2 and all(m.name.startswith("SYNTHETIC") for m in maps)
    assert all(m.meta["goescls"] == "X" for m in maps)
  assert f"2 images of class X, model step {conftest.TINY_CHECKPOINT_STEP}" in text
  assert "classifier.fid | 12.5" in text  # The headline figures read from eval/metrics.json.
  assert "classifier/metrics.json: not there yet" in text
