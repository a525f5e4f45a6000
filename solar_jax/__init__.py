"""solar_jax: class-conditional diffusion models of SDO/AIA 171 Å images, in JAX.

Importing the package has no side effects; ``python -m solar_jax.main`` runs it
(see README.md), and ``ARCHITECTURE.md`` maps its modules.
"""
