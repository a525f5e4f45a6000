"""The names of the choices whose registries live in modules that import JAX, for the
command line's early answer.

``main`` checks the fields and their ranges before JAX loads (``configuration.check_fields``);
a misspelt *choice* (``--config.sampling.sampler=ddm``) was only refused by
``checks.validate``, after JAX, TensorFlow and the registries loaded (~12 s). This table
lets ``main`` refuse it in about a second. The registries stay the authority:
``checks.validate`` still checks every choice against them, and
``tests/test_config.py`` checks that each row below names exactly its registry's entries
(``SOURCES``), so a sampler added to ``samplers.SAMPLERS`` without its row here fails
that test rather than being refused on the command line.
"""

from __future__ import annotations

from solar_jax.errors import ConfigError

# field -> the allowed names, in the registry's order.
NAMES = {
  "model.dtype": ("float32", "bfloat16"),
  "model.conditioning": ("class", "flux"),
  "diffusion.schedule": ("linear", "cosine"),
  "diffusion.prediction": ("eps", "v"),
  "diffusion.loss_weighting": ("none", "min_snr"),
  "sampling.sampler": ("ddim", "ddpm", "dpmpp_2m"),
  "sampling.spacing": ("default", "uniform", "quadratic", "logsnr"),
  "sampling.final_step": ("default", "jump", "zero"),
  "sampling.counts": ("fixed", "balance"),
  "sampling.flux_draw": ("centre", "training"),
  "evaluation.extractors": ("classifier", "random", "inception"),
  "classifier.grouping": ("multiclass", "ge_m", "ge_c"),
  "classifier.regimes": (
    "real",
    "weighted",
    "focal",
    "oversample",
    "augment",
    "real_synthetic",
    "synthetic_only",
    "reweighted",
  ),
  "classifier.primary_endpoint": ("delta_tss_ge_m", "delta_tss", "delta_macro_f1"),
  "classifier.augment_flips": ("none", "ns", "ns_ew"),
  "mesh.distributed": ("auto", "yes", "no"),
}

# field -> the registry it mirrors ("module:attribute"; a leading "+default" adds
# timesteps.DEFAULT in front, as checks.validate does).
SOURCES = {
  "model.dtype": "solar_jax.models.unet:DTYPES",
  "model.conditioning": "solar_jax.models.unet:CONDITIONINGS",
  "diffusion.schedule": "solar_jax.diffusion.schedules:SCHEDULES",
  "diffusion.prediction": "solar_jax.diffusion.losses:PREDICTIONS",
  "diffusion.loss_weighting": "solar_jax.diffusion.losses:LOSS_WEIGHTINGS",
  "sampling.sampler": "solar_jax.diffusion.samplers:SAMPLERS",
  "sampling.spacing": "+default solar_jax.diffusion.timesteps:SPACINGS",
  "sampling.final_step": "+default solar_jax.diffusion.timesteps:FINAL_STEPS",
  "sampling.counts": "solar_jax.ddpm.sample:SAMPLE_COUNTS",
  "sampling.flux_draw": "solar_jax.ddpm.flux_sampling:FLUX_DRAWS",
  "evaluation.extractors": "solar_jax.evaluation.features:EXTRACTORS",
  "classifier.grouping": "solar_jax.models.classifier:GROUPINGS",
  "classifier.regimes": "solar_jax.classifier.training_sets:REGIMES",
  "classifier.primary_endpoint": "solar_jax.classifier.training_sets:PRIMARY_ENDPOINTS",
  "classifier.augment_flips": "solar_jax.classifier.training_sets:AUGMENT_FLIPS",
  "mesh.distributed": "solar_jax.parallel:DISTRIBUTED",
}


def check(config) -> None:
  """Refuses a name no registry has, in one line naming the field (as checks.validate)."""
  for field, allowed in NAMES.items():
    section, _, key = field.partition(".")
    if section not in config or key not in config[section]:
      continue
    value = config[section][key]
    for name in value if isinstance(value, list | tuple) else (value,):
      if name not in allowed:
        raise ConfigError(f"{field}={name!r} is not one of {', '.join(map(repr, allowed))}.")
