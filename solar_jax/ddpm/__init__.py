"""The DDPM stage: train state, --mode=train, --mode=sample (FITS, npz, grids), --mode=export,
and ``solar_jax.generate``."""
