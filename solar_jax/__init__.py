"""solar_jax: class-conditional diffusion models of SDO/AIA 171 Å images, in JAX.

Importing the package has no side effects; ``python -m solar_jax.main`` runs it
(see README.md, ``--help``), and ``ARCHITECTURE.md`` maps its modules.
``solar_jax.DiffusionPipeline.from_pretrained(path or "demo")`` loads a trained model
once and samples it as often as asked; ``solar_jax.generate(path, classes=..., n=...)``
loads and samples once (``solar_jax.api``; imported on first use, it loads JAX).
"""

import importlib

__version__ = "0.1.0"  # The one place the version is set (setup.py reads it).


def __getattr__(name):
  if name in ("generate", "Samples", "DiffusionPipeline"):
    return getattr(importlib.import_module("solar_jax.api"), name)
  raise AttributeError(f"module 'solar_jax' has no attribute {name!r}")
