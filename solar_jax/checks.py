"""The config check: every choice against the registry of the code that implements it,
and the rules that tie fields together; one line naming the field, before anything compiles.

Each implementation module owns its table of names (``samplers.SAMPLERS``,
``timesteps.SPACINGS``, ``schedules.SCHEDULES``, ``frame_facts.LABELS``,
``training_sets.REGIMES``, ``features.EXTRACTORS``, ...), as score_sde's registries do:
adding a sampler touches ``samplers.py`` and its test, never this file. The rules that
need no registry and no device (each numeric field's range, image size against UNet
depth and the stored side, attention resolutions, steps against the schedule, ...) are
``configuration.check_fields``, which ``main`` runs before JAX loads and ``validate``
first; this module adds the choices, the rules that read a registry's constants (the
forecast label's horizon and flips) and the batches against the mesh. It sits at the top
of the layers because it reads every registry; lower modules keep at most an assert.
"""

from __future__ import annotations

import datetime

import ml_collections

from solar_jax import configuration, parallel
from solar_jax.classifier import training_sets
from solar_jax.data import frame_facts, goes, input_pipeline, splits
from solar_jax.ddpm import flux_sampling, sample
from solar_jax.diffusion import losses, samplers, schedules, timesteps
from solar_jax.errors import ConfigError
from solar_jax.evaluation import features
from solar_jax.models import classifier as classifier_lib
from solar_jax.models import unet


def _choice(value, field: str, allowed) -> None:
  if value not in allowed:
    raise ConfigError(f"{field}={value!r} is not one of {', '.join(map(repr, allowed))}.")


def _validate_data_and_model(data, model) -> None:
  _choice(data.dataset, "data.dataset", input_pipeline.DATASETS)
  _choice(data.builder_config, "data.builder_config", input_pipeline.BUILDER_CONFIGS)
  _choice(data.label, "data.label", frame_facts.LABELS)
  _choice(data.class_scale, "data.class_scale", goes.CLASS_SCALES)
  _choice(data.split, "data.split", splits.SPLIT_RULES)
  _choice(model.dtype, "model.dtype", tuple(unet.DTYPES))
  _choice(model.conditioning, "model.conditioning", unet.CONDITIONINGS)


def _validate_diffusion_and_sampling(diffusion, sampling) -> None:
  _choice(diffusion.schedule, "diffusion.schedule", tuple(schedules.SCHEDULES))
  _choice(diffusion.prediction, "diffusion.prediction", losses.PREDICTIONS)
  _choice(diffusion.loss_weighting, "diffusion.loss_weighting", losses.LOSS_WEIGHTINGS)
  _choice(sampling.sampler, "sampling.sampler", tuple(samplers.SAMPLERS))
  _choice(sampling.spacing, "sampling.spacing", (timesteps.DEFAULT, *timesteps.SPACINGS))
  _choice(sampling.final_step, "sampling.final_step", (timesteps.DEFAULT, *timesteps.FINAL_STEPS))
  _choice(sampling.counts, "sampling.counts", sample.SAMPLE_COUNTS)
  _choice(sampling.flux_draw, "sampling.flux_draw", flux_sampling.FLUX_DRAWS)


def _validate_evaluation_and_classifier(evaluation, classifier) -> None:
  for name in evaluation.extractors:
    _choice(name, "evaluation.extractors", features.EXTRACTORS)
  _choice(evaluation.split, "evaluation.split", splits.SPLITS)
  if evaluation.floor_split:
    _choice(evaluation.floor_split, "evaluation.floor_split", splits.SPLITS)
  _choice(classifier.grouping, "classifier.grouping", classifier_lib.GROUPINGS)
  _choice(classifier.label, "classifier.label", ("", *frame_facts.LABELS))
  for name in classifier.regimes:
    _choice(name, "classifier.regimes", training_sets.REGIMES)
  _choice(
    classifier.primary_endpoint, "classifier.primary_endpoint", training_sets.PRIMARY_ENDPOINTS
  )
  _choice(classifier.augment_flips, "classifier.augment_flips", training_sets.AUGMENT_FLIPS)
  if classifier.augment_flips == "ns_ew" and classifier.label == classifier_lib.FORECAST_LABEL:
    raise ConfigError(
      "classifier.augment_flips='ns_ew' with classifier.label="
      f"{classifier.label!r}: an east-west flip reverses solar rotation, which a 24-hour "
      "forecast depends on; use 'ns'."
    )
  if "reweighted" in classifier.regimes and "real_synthetic" not in classifier.regimes:
    raise ConfigError(
      f"classifier.regimes={tuple(classifier.regimes)}: 'reweighted' takes the class prior "
      "real_synthetic chose; add 'real_synthetic' or leave 'reweighted' out."
    )
  grids = {
    f"{training_sets.KNOBS[r][1]}": v for r, v in training_sets.knob_grids(classifier).items()
  }
  grids.update(guidance_grid=classifier.guidance_grid, ratio_grid=classifier.ratio_grid)
  for field, values in grids.items():
    values = tuple(values)
    if len(set(values)) != len(values):
      raise ConfigError(f"classifier.{field}={values} needs distinct values >= 0.")


def _validate_labels(config) -> None:
  """The labels a run reads: a look-ahead label needs an embargo of its horizon, and the
  synthetic regimes a generator conditioned on the label the classifier reads."""
  data, classifier = config.data, config.classifier
  read = {data.label, classifier.label or data.label}
  horizon_days = frame_facts.NEXT_WINDOW / datetime.timedelta(days=1)
  if classifier_lib.FORECAST_LABEL in read and data.embargo_days < horizon_days:
    raise ConfigError(
      f"data.embargo_days={data.embargo_days:g} is shorter than the {horizon_days:g}-day horizon "
      f"of the label {classifier_lib.FORECAST_LABEL!r}: a training frame's label would see "
      f"into a held-out month; use data.embargo_days >= {horizon_days:g}."
    )
  hours = tuple(data.issuance_hours)
  if classifier_lib.FORECAST_LABEL in read and (not hours or len(set(hours)) != len(hours)):
    raise ConfigError(
      f"data.issuance_hours={hours!r}: the label {classifier_lib.FORECAST_LABEL!r} is read "
      "from the frames of the issuance grid only; give one or more distinct UT hours, e.g. "
      "(0, 6, 12, 18)."
    )
  synthetic = [r for r in classifier.regimes if r in training_sets.SYNTHETIC_REGIMES]
  if synthetic and (classifier.label or data.label) != data.label:
    raise ConfigError(
      f"classifier.regimes={tuple(classifier.regimes)}: {', '.join(synthetic)} train on "
      f"images of a DDPM conditioned on data.label={data.label!r}, not on the classifier's "
      f"classifier.label={classifier.label!r}; set data.label={classifier.label!r} (a "
      "generator trained on that label) or leave the synthetic regimes out."
    )


def _validate_mesh(config, num_devices: int | None, num_processes: int) -> None:
  training, sampling, classifier = config.training, config.sampling, config.classifier
  _choice(config.mesh.distributed, "mesh.distributed", parallel.DISTRIBUTED)
  for field in ("coordinator_address", "num_processes", "process_id"):
    if config.mesh[field] is not None:
      configuration.distributed_value(field, config.mesh[field])
  if num_devices is not None:
    data_axis, fsdp = configuration.mesh_shape(config.mesh, num_devices, num_processes)
    shards = data_axis * fsdp  # The batch is split over both axes.
    for field, value in (
      ("training.batch_size", training.batch_size),
      ("sampling.batch_size", sampling.batch_size),
      ("classifier.batch_size", classifier.batch_size),
    ):
      if value % shards:
        raise ConfigError(
          f"{field}={value} is not divisible by the {shards} data-parallel devices "
          f"(mesh data={data_axis} x fsdp={fsdp})."
        )


def _validate_fluxes(config) -> None:
  """sampling.fluxes: of a flux model only, each a flux or a class string."""
  fluxes, conditioning = tuple(config.sampling.fluxes), config.model.conditioning
  if fluxes and conditioning != "flux":
    raise ConfigError(
      f"sampling.fluxes={fluxes!r} needs a flux-conditioned model (model.conditioning='flux'), "
      f"not model.conditioning={conditioning!r}."
    )
  for value in fluxes:
    flux_sampling.parse_flux(value)


def validate(
  config: ml_collections.ConfigDict, num_devices: int | None = None, num_processes: int = 1
) -> None:
  """Raises ConfigError naming the first impossible field.

  Args:
    config: the resolved config.
    num_devices: global device count; when given, batch sizes are checked
      against the data-parallel mesh axis.
    num_processes: the process count (several use every device).
  """
  configuration.check_fields(config)  # Ranges and fields together: no registry, no device.
  _validate_data_and_model(config.data, config.model)
  _validate_diffusion_and_sampling(config.diffusion, config.sampling)
  _validate_evaluation_and_classifier(config.evaluation, config.classifier)
  _validate_labels(config)
  _validate_fluxes(config)
  _validate_mesh(config, num_devices, num_processes)
