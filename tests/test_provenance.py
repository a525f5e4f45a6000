"""What made an artefact (provenance.record), and the files that say how to cite and license."""

import re
import shlex
import subprocess

import yaml

import solar_jax
from solar_jax import provenance


def test_the_record_names_the_commit_of_this_checkout_and_the_command(repo_root, monkeypatch):
  head = subprocess.run(
    ["git", "-C", str(repo_root), "rev-parse", "HEAD"], capture_output=True, text=True
  ).stdout.strip()
  argv = ["solar_jax.main", "--workdir=wörk dir", "--config.data.classes=('A', 'X')"]
  monkeypatch.setattr("sys.argv", argv)
  info = provenance.record()
  assert info["commit"].removesuffix("+dirty") == head and len(head) == 40
  assert shlex.split(info["command"]) == argv  # Shell-quoted: a shell runs it again.
  assert info["version"] == solar_jax.__version__
  assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["date"])
  # ``python -m solar_jax.main`` leaves the module's path in argv[0]: named as typed.
  typed = provenance.command_line([str(repo_root / "solar_jax" / "main.py"), "--mode=report"])
  assert typed == "python -m solar_jax.main --mode=report"


def test_outside_a_git_checkout_the_commit_is_unknown(tmp_path, monkeypatch):
  """An installed package (no .git beside it, or inside another repository) never fails."""
  package = tmp_path / "site-packages" / "solar_jax"
  package.mkdir(parents=True)
  subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)  # Someone else's repo.
  monkeypatch.setattr(solar_jax, "__file__", str(package / "__init__.py"))
  assert provenance.git_commit.__wrapped__() == provenance.UNKNOWN
  monkeypatch.setenv("PATH", "")  # No git at all.
  assert provenance.git_commit.__wrapped__() == provenance.UNKNOWN


def test_the_version_is_set_once_and_citation_cff_is_valid_cff(repo_root):
  cff = yaml.safe_load((repo_root / "CITATION.cff").read_text())
  assert cff["cff-version"] == "1.2.0"
  assert {"message", "authors", "title"} <= set(cff) and cff["authors"][0]["name"]
  assert cff["version"] == solar_jax.__version__ and cff["license"] == "MIT"
  setup = (repo_root / "setup.py").read_text()
  assert "version=VERSION" in setup and re.search(r"version=\"", setup) is None
  assert (repo_root / "LICENSE").read_text().startswith("MIT License")


def test_citations_bib_has_what_the_readme_and_the_card_ask_to_cite(repo_root):
  bib = (repo_root / "CITATIONS.bib").read_text()
  keys = re.findall(r"^@\w+\{([^,]+),", bib, re.M)
  assert len(keys) == len(set(keys))
  for key in (
    "ho2020ddpm",
    "song2021ddim",
    "ho2022cfg",
    "pesnell2012sdo",
    "lemen2012aia",
    "hanser1996goesxrs",
    "hurlburt2012hek",
    "galvez2019sdoml",
    "leka2019comparison",
    "bobra2015flare",
  ):
    assert key in keys, key
  assert bib.count("{") == bib.count("}")  # Balanced braces: bibtex reads every entry.
