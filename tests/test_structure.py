"""The code's structure: a one-way import graph, every config field read, modest sizes.

ARCHITECTURE.md draws the layers; these tests keep the code to it.
"""

import ast
import pathlib
import re

import pytest

from solar_jax import pipeline
from solar_jax.configs import default

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "solar_jax"

# The layers, lowest first: a module imports only its own layer or lower ones. Every
# layer below the top is a folder of the package (ARCHITECTURE.md says what each holds);
# the few top-level modules are the entry, configuration, workdir, checkpointing,
# parallelism and the report, as in big_vision and the flax examples.
LAYERS = (
  ("errors", "configuration", "choices", "xla_flags", "files", "provenance", "configs"),
  ("data", "viz", "metrics"),
  ("models",),
  ("diffusion",),
  ("parallel", "workdir", "checkpointing"),
  ("ddpm",),
  ("classifier",),
  ("evaluation",),
  ("report",),
  ("checks", "pipeline", "cli", "main", "api"),
)
FOLDERS = {"configs", "data", "metrics", "models", "diffusion", "ddpm", "classifier", "evaluation"}
# --mode=NAME runs the package of the same name (train and sample and export live in ddpm/).
MODE_PACKAGES = {
  "train": "ddpm.train",
  "sample": "ddpm.sample",
  "export": "ddpm.export",
  "classify": "classifier.experiment",
  "evaluate": "evaluation.evaluate",
}


def _modules() -> dict[str, pathlib.Path]:
  found = {}
  for path in PACKAGE.rglob("*.py"):
    name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    found[name.removesuffix(".__init__").removesuffix("__init__")] = path
  return found


def _layer(module: str) -> int:
  """The layer of ``module``: the most specific entry of LAYERS that names it or its package."""
  best = None
  for index, names in enumerate(LAYERS):
    for name in names:
      if module == name or module.startswith(name + "."):
        if best is None or len(name) > len(best[1]):
          best = (index, name)
  if best is None:
    raise AssertionError(
      f"solar_jax.{module} has no layer in LAYERS: add it (and to ARCHITECTURE.md)"
    )
  return best[0]


def _imports(path: pathlib.Path, modules) -> set[str]:
  """Project modules ``path`` imports, anywhere in the file (functions included), and
  those it names for ``importlib.import_module`` (main's deferred ``solar_jax.pipeline``)."""
  out = set()
  text = path.read_text()
  for node in ast.walk(ast.parse(text)):
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.Constant) and "import_module(" in text:
      names = [node.value] if isinstance(node.value, str) and " " not in node.value else []
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      # ``from solar_jax.evaluation import fid`` imports the module evaluation.fid.
      names = [f"{node.module}.{a.name}" for a in node.names]
    else:
      continue
    for name in names:
      if not name.startswith("solar_jax."):
        continue
      name = name.removeprefix("solar_jax.")
      while name and name not in modules:
        name = name.rpartition(".")[0]
      if name:
        out.add(name)
  return out


def _graph():
  modules = _modules()
  return {m: _imports(p, modules) - {m, ""} for m, p in modules.items() if m}


def test_import_graph_is_acyclic():
  graph = _graph()
  state: dict[str, int] = {}  # 1 on the stack, 2 done.

  def visit(node, path):
    state[node] = 1
    for nxt in sorted(graph[node]):
      if state.get(nxt) == 1:
        cycle = path[path.index(nxt) :] + [nxt]
        raise AssertionError("import cycle: " + " -> ".join(cycle))
      if nxt not in state:
        visit(nxt, path + [nxt])
    state[node] = 2

  for node in sorted(graph):
    if node not in state:
      visit(node, [node])


def test_imports_follow_the_layers():
  wrong = [
    f"solar_jax.{m} (layer {_layer(m)}) imports solar_jax.{d} (layer {_layer(d)})"
    for m, deps in sorted(_graph().items())
    for d in sorted(deps)
    if _layer(d) > _layer(m)
  ]
  assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("lower", ["models", "diffusion"])
def test_models_and_samplers_know_no_meshes_trainers_or_evaluation(lower):
  banned = ("parallel", "train", "sample", "evaluation", "checkpointing", "workdir")
  for module, deps in _graph().items():
    if module.startswith(lower + "."):
      assert not [d for d in deps if d.split(".")[0] in banned], (module, deps)


def test_project_imports_sit_at_the_top_of_each_file():
  hidden = []
  for path in _modules().values():
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
      is_project = (
        isinstance(node, ast.ImportFrom) and (node.module or "").startswith("solar_jax")
      ) or (
        isinstance(node, ast.Import) and any(a.name.startswith("solar_jax") for a in node.names)
      )
      if is_project and id(node) not in top:
        hidden.append(f"{path.relative_to(ROOT)}:{node.lineno}")
  assert not hidden, hidden


def _leaves(config, prefix=""):
  for key, value in config.items():
    if hasattr(value, "items"):
      yield from _leaves(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}"


def test_every_config_field_is_read_by_the_code():
  """A field is read when its name is accessed (``.name``, ``["name"]``) outside the config code."""
  sources = [
    p for p in PACKAGE.rglob("*.py") if p.name != "configuration.py" and "configs" not in p.parts
  ]
  sources += list((ROOT / "tfds_builders").rglob("*.py"))
  text = "\n".join(p.read_text() for p in sources)
  unread = []
  for leaf in _leaves(default.get_config()):
    name = leaf.rpartition(".")[2]
    pattern = rf"(\.{name}\b|\[[\"']{name}[\"']\]|get\([\"']{name}[\"'])"
    if not re.search(pattern, text):
      unread.append(leaf)
  assert not unread, f"config fields nothing reads: {unread}"


def _functions(tree):
  for node in ast.walk(tree):
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
      yield node


def test_modules_and_functions_stay_readable():
  """No module over 600 lines; no function over 80 code lines unless a ``# Long:`` comment says why."""
  long_modules, long_functions = [], []
  for path in PACKAGE.rglob("*.py"):
    lines = path.read_text().splitlines()
    if len(lines) > 600:
      long_modules.append(f"{path.relative_to(ROOT)} ({len(lines)} lines)")
    for fn in _functions(ast.parse("\n".join(lines))):
      length = fn.end_lineno - fn.lineno + 1
      if ast.get_docstring(fn) is not None:  # Code lines: the docstring does not count.
        length -= fn.body[0].end_lineno - fn.body[0].lineno + 1
      first = min([fn.lineno, *(d.lineno for d in fn.decorator_list)])
      why = lines[first - 2].strip().startswith("# Long:") if first >= 2 else False
      if length > 80 and not why:
        long_functions.append(f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name} ({length} lines)")
  assert not long_modules, long_modules
  assert not long_functions, long_functions
  assert len((PACKAGE / "main.py").read_text().splitlines()) <= 150


def test_every_layer_below_the_top_is_a_folder():
  """Each entry of LAYERS is a folder of the package or one of the few top-level modules."""
  modules = _modules()
  top = {m for m in modules if m and "." not in m and not (PACKAGE / m).is_dir()}
  assert top == {
    "errors",
    "configuration",
    "choices",
    "xla_flags",
    "files",
    "provenance",
    "viz",
    "parallel",
    "workdir",
    "checkpointing",
    "report",
    "checks",
    "pipeline",
    "cli",
    "main",
    "api",
  }, top
  folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
  assert folders == FOLDERS, folders
  named = {n for layer in LAYERS for n in layer}
  assert named == top | folders, named ^ (top | folders)


def test_modes_run_the_module_of_their_name():

  for mode, module in MODE_PACKAGES.items():
    assert mode in pipeline.MODES
    entry = pipeline.ENTRY_POINTS[mode]
    assert entry.__module__ == f"solar_jax.{module}", (mode, entry.__module__)


def test_choices_are_registered_where_they_are_implemented():
  """configuration.py declares no list of names; the check reads each implementation's."""
  from solar_jax import checks, configuration
  from solar_jax.diffusion import samplers, schedules, timesteps

  names = [
    n for n in vars(configuration) if n.isupper() and isinstance(getattr(configuration, n), tuple)
  ]
  assert set(names) <= {"PATH_FIELDS", "NULLABLE", "DEFAULT_WHEN_ABSENT"}, names
  config = default.get_config()
  for field, registry in (
    ("sampling.sampler", samplers.SAMPLERS),
    ("sampling.spacing", timesteps.SPACINGS),
    ("diffusion.schedule", schedules.SCHEDULES),
  ):
    section, key = field.split(".")
    for name in registry:
      config[section][key] = name
      checks.validate(config)  # Every registered name passes ...
    config[section][key] = "no_such_name"
    with pytest.raises(checks.ConfigError, match=field.replace(".", r"\.")):
      checks.validate(config)  # ... and an unregistered one is named.
    config = default.get_config()
