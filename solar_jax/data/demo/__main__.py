"""``python -m solar_jax.data.demo``: writes the simulated demo archive (see the package)."""

from solar_jax.data import demo

demo.main()
