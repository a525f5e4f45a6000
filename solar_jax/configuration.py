"""Checks a resolved config before anything is compiled.

Locked ``ml_collections`` configs already reject unknown keys. This module
rejects values that are impossible, with one line that names the field and
what is allowed, so a bad run fails in seconds instead of after compiling.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import re
import sys

import ml_collections
from etils import epath

from solar_jax.errors import ConfigError

SCHEDULES = ("linear", "cosine")
PREDICTIONS = ("eps", "v")
SAMPLERS = ("ddim", "ddpm", "dpmpp_2m")
LOSS_WEIGHTINGS = ("none", "min_snr")
# The keys of solar_jax.diffusion.samplers.SAMPLERS / SPACINGS / FINAL_STEPS (a test
# keeps them equal); sampling.spacing and sampling.final_step also take 'default'.
SPACINGS = ("uniform", "quadratic", "logsnr")
FINAL_STEPS = ("jump", "zero")
DTYPES = ("float32", "bfloat16")
SAMPLE_COUNTS = ("fixed", "balance")
CLASSIFIER_TASKS = (
  "multiclass",
  "ge_m",
  "ge_c",
  "forecast_multiclass",
  "forecast_ge_m",
  "forecast_ge_c",
)
CLASSIFIER_REGIMES = (
  "real",
  "weighted",
  "focal",
  "oversample",
  "augment",
  "real_synthetic",
  "synthetic_only",
)
AUGMENT_FLIPS = ("none", "ns", "ns_ew")
EXTRACTORS = ("inception", "classifier", "random")
BUILDER_CONFIGS = ("64", "128", "256", "512")
# Label policies applied on read (solar_jax/data/frame_facts.py says what each means).
DATA_LABELS = ("goes_class", "flare_class", "background_class", "max_class_next_24h")
DISTRIBUTED = ("auto", "yes", "no")
MODES = ("train", "sample", "evaluate", "classify", "all", "export")
# Fields that name a file or directory: ``~`` and ``$VARS`` in them are expanded
# (``--config.data.data_dir=~/tfds`` reaches the program unexpanded: the shell
# expands ``~`` only at the start of a word).
PATH_FIELDS = ("data.data_dir", "evaluation.inception_weights", "sampling.checkpoint")
# configs/default.py, beside the package (a clone or an editable install).
DEFAULT_CONFIG_FILE = pathlib.Path(__file__).resolve().parents[1] / "configs" / "default.py"


def _choice(value, field: str, allowed) -> None:
  if value not in allowed:
    raise ConfigError(f"{field}={value!r} is not one of {', '.join(map(repr, allowed))}.")


def _positive(value, field: str) -> None:
  if not value > 0:
    raise ConfigError(f"{field}={value!r} must be positive.")


def _in_range(value, field: str, lo, hi) -> None:
  if not lo <= value <= hi:
    raise ConfigError(f"{field}={value!r} must lie in [{lo}, {hi}].")


def mesh_shape(mesh_config, num_devices: int) -> tuple[int, int]:
  """Returns the (data, fsdp) mesh shape for ``num_devices`` devices."""
  fsdp = mesh_config.fsdp
  if fsdp < 1 or num_devices % fsdp:
    raise ConfigError(
      f"mesh.fsdp={fsdp} must be a positive divisor of the device count ({num_devices})."
    )
  data = mesh_config.data if mesh_config.data != -1 else num_devices // fsdp
  if data < 1 or data * fsdp != num_devices:
    raise ConfigError(
      f"mesh.data={mesh_config.data} times mesh.fsdp={fsdp} must equal the device count "
      f"({num_devices}); use mesh.data=-1 to take all devices."
    )
  return data, fsdp


def _validate_data(data) -> None:
  _choice(data.builder_config, "data.builder_config", BUILDER_CONFIGS)
  _positive(data.image_size, "data.image_size")
  _positive(data.channels, "data.channels")
  if not 0 < data.clip_min < data.clip_max:
    raise ConfigError(
      f"data.clip_min={data.clip_min} and data.clip_max={data.clip_max} must satisfy "
      "0 < clip_min < clip_max."
    )
  _choice(data.label, "data.label", DATA_LABELS)
  if not 0 <= data.clip_max_quantile < 1:
    raise ConfigError(f"data.clip_max_quantile={data.clip_max_quantile} must lie in [0, 1).")
  if data.fold < 0:
    raise ConfigError(f"data.fold={data.fold} must be >= 0 (and below the dataset's folds).")
  if data.embargo_days < 0:
    raise ConfigError(f"data.embargo_days={data.embargo_days} must be >= 0.")
  if data.cooling_lag_minutes < 0:
    raise ConfigError(f"data.cooling_lag_minutes={data.cooling_lag_minutes} must be >= 0.")
  _positive(data.shuffle_buffer, "data.shuffle_buffer")
  if data.prefetch < 0:
    raise ConfigError(f"data.prefetch={data.prefetch} must be >= 0.")
  if len(data.classes) < 2:
    raise ConfigError(f"data.classes={data.classes!r} needs at least two classes.")


def _validate_model(data, model) -> None:
  if not model.channel_mult:
    raise ConfigError("model.channel_mult must name at least one level.")
  factor = 2 ** (len(model.channel_mult) - 1)
  if data.image_size % factor:
    raise ConfigError(
      f"data.image_size={data.image_size} is not divisible by the UNet's total "
      f"downsampling {factor} (model.channel_mult has {len(model.channel_mult)} levels)."
    )
  if int(data.builder_config) % data.image_size:
    raise ConfigError(
      f"data.image_size={data.image_size} must divide the stored resolution "
      f"data.builder_config={data.builder_config!r} (the input pipeline averages "
      "stored pixels in blocks of builder_config / image_size)."
    )
  _positive(model.num_groups, "model.num_groups")
  _positive(model.base_channels, "model.base_channels")
  _positive(model.num_res_blocks, "model.num_res_blocks")
  _positive(model.num_heads, "model.num_heads")
  _choice(model.dtype, "model.dtype", DTYPES)
  _in_range(model.dropout, "model.dropout", 0.0, 1.0)
  sides = {data.image_size // 2**i for i in range(len(model.channel_mult))}
  for side in model.attention_resolutions:
    if side not in sides:
      raise ConfigError(
        f"model.attention_resolutions contains {side}, which is not a feature-map side "
        f"of this UNet (sides: {sorted(sides, reverse=True)})."
      )


def _validate_diffusion_and_training(diffusion, training) -> None:
  _choice(diffusion.schedule, "diffusion.schedule", SCHEDULES)
  _choice(diffusion.prediction, "diffusion.prediction", PREDICTIONS)
  _positive(diffusion.num_timesteps, "diffusion.num_timesteps")
  _in_range(diffusion.label_dropout, "diffusion.label_dropout", 0.0, 1.0)
  _choice(diffusion.loss_weighting, "diffusion.loss_weighting", LOSS_WEIGHTINGS)
  _positive(diffusion.min_snr_gamma, "diffusion.min_snr_gamma")
  if diffusion.schedule == "linear" and not 0 < diffusion.beta_start < diffusion.beta_end < 1:
    raise ConfigError(
      f"diffusion.beta_start={diffusion.beta_start} and diffusion.beta_end="
      f"{diffusion.beta_end} must satisfy 0 < beta_start < beta_end < 1."
    )

  for field in ("batch_size", "num_steps", "log_every", "checkpoint_every", "keep_checkpoints"):
    _positive(training[field], f"training.{field}")
  _positive(training.learning_rate, "training.learning_rate")
  _in_range(training.ema_decay, "training.ema_decay", 0.0, 1.0)
  for field in ("warmup_steps", "sample_every", "grad_clip", "num_sample_images", "weight_decay"):
    if training[field] < 0:
      raise ConfigError(f"training.{field}={training[field]} must be >= 0.")


def _validate_sampling(config) -> None:
  data, diffusion, sampling = config.data, config.diffusion, config.sampling
  _choice(sampling.sampler, "sampling.sampler", SAMPLERS)
  _choice(sampling.spacing, "sampling.spacing", ("default", *SPACINGS))
  _choice(sampling.final_step, "sampling.final_step", ("default", *FINAL_STEPS))
  _choice(sampling.counts, "sampling.counts", SAMPLE_COUNTS)
  _in_range(sampling.num_steps, "sampling.num_steps", 1, diffusion.num_timesteps)
  _in_range(sampling.eta, "sampling.eta", 0.0, 1.0)
  for name, scale in (
    ("sampling.guidance_scale", sampling.guidance_scale),
    ("classifier.guidance_scale", config.classifier.guidance_scale),
  ):
    if scale is not None and not scale >= 0:
      raise ConfigError(f"{name}={scale} must be >= 0.")
  if config.classifier.sampling_steps is not None:
    _in_range(
      config.classifier.sampling_steps, "classifier.sampling_steps", 1, diffusion.num_timesteps
    )
  _positive(sampling.batch_size, "sampling.batch_size")
  _positive(sampling.max_images, "sampling.max_images")
  if len(sampling.per_class) != len(data.classes) or min(sampling.per_class) < 0:
    raise ConfigError(
      f"sampling.per_class={tuple(sampling.per_class)} needs one count >= 0 for each of "
      f"data.classes={tuple(data.classes)}."
    )


def _validate_evaluation_and_classifier(evaluation, classifier) -> None:
  for name in evaluation.extractors:
    _choice(name, "evaluation.extractors", EXTRACTORS)
  for field in ("num_images", "batch_size", "kid_bootstrap", "nearest_k", "random_features_dim"):
    _positive(evaluation[field], f"evaluation.{field}")
  if evaluation.num_clusters < 2:
    raise ConfigError(f"evaluation.num_clusters={evaluation.num_clusters} must be >= 2.")
  _choice(evaluation.split, "evaluation.split", ("train", "validation", "test"))
  if evaluation.floor_split:
    _choice(evaluation.floor_split, "evaluation.floor_split", ("train", "validation", "test"))
    if evaluation.floor_split == evaluation.split:
      raise ConfigError(
        f"evaluation.floor_split={evaluation.floor_split} must differ from evaluation.split "
        "(the floor compares two disjoint real sets); use '' for no floors."
      )
  if evaluation.memorisation_train_images < 0:
    raise ConfigError(
      f"evaluation.memorisation_train_images={evaluation.memorisation_train_images} must be >= 0."
    )
  _positive(evaluation.flare_kernel_dns, "evaluation.flare_kernel_dns")

  _choice(classifier.task, "classifier.task", CLASSIFIER_TASKS)
  for name in classifier.regimes:
    _choice(name, "classifier.regimes", CLASSIFIER_REGIMES)
  if not classifier.seeds:
    raise ConfigError("classifier.seeds must name at least one seed.")
  _positive(classifier.batch_size, "classifier.batch_size")
  _positive(classifier.num_steps, "classifier.num_steps")
  _positive(classifier.learning_rate, "classifier.learning_rate")
  for field in ("width", "stem_stride"):
    _positive(classifier[field], f"classifier.{field}")
  if not classifier.stage_sizes or min(classifier.stage_sizes) < 1:
    raise ConfigError(
      f"classifier.stage_sizes={tuple(classifier.stage_sizes)} needs one or more counts >= 1."
    )
  _in_range(classifier.dropout, "classifier.dropout", 0.0, 1.0)
  for field in ("weight_decay", "eval_every"):
    if classifier[field] < 0:
      raise ConfigError(f"classifier.{field}={classifier[field]} must be >= 0.")
  if classifier.synthetic_ratio < 0:
    raise ConfigError(f"classifier.synthetic_ratio={classifier.synthetic_ratio} must be >= 0.")
  _validate_experiment(classifier)


def _validate_experiment(classifier) -> None:
  """The fields of the augmentation experiment: baselines, validation grid, uncertainty."""
  if len(set(classifier.seeds)) != len(classifier.seeds):
    raise ConfigError(f"classifier.seeds={tuple(classifier.seeds)} repeats a seed.")
  if classifier.focal_gamma < 0:
    raise ConfigError(f"classifier.focal_gamma={classifier.focal_gamma} must be >= 0.")
  _choice(classifier.augment_flips, "classifier.augment_flips", AUGMENT_FLIPS)
  if classifier.augment_flips == "ns_ew" and classifier.task.startswith("forecast_"):
    raise ConfigError(
      "classifier.augment_flips='ns_ew' with classifier.task="
      f"{classifier.task!r}: an east-west flip reverses solar rotation, which a 24-hour "
      "forecast depends on; use 'ns'."
    )
  _in_range(classifier.augment_rotation_deg, "classifier.augment_rotation_deg", 0.0, 180.0)
  if classifier.augment_intensity < 0:
    raise ConfigError(f"classifier.augment_intensity={classifier.augment_intensity} must be >= 0.")
  for field in ("guidance_grid", "ratio_grid"):
    values = tuple(classifier[field])
    if any(not v >= 0 for v in values) or len(set(values)) != len(values):
      raise ConfigError(f"classifier.{field}={values} needs distinct values >= 0.")
  _positive(classifier.num_pools, "classifier.num_pools")
  if classifier.bootstrap_samples < 100:
    raise ConfigError(
      f"classifier.bootstrap_samples={classifier.bootstrap_samples} must be >= 100 "
      "(the 2.5 and 97.5 percentiles need it)."
    )


def distributed_value(field: str, value, source: str | None = None):
  """A parsed ``mesh.{coordinator_address, num_processes, process_id}`` value.

  ``source`` names where it came from (the field, or its JAX_* variable).
  """
  source = source or f"mesh.{field}"
  if field == "coordinator_address":
    if not re.fullmatch(r"[^\s:]+:\d+", str(value)):
      raise ConfigError(f"{source}={value!r} must be host:port (e.g. 10.0.0.1:1234).")
    return str(value)
  try:
    number = int(value)
  except (TypeError, ValueError):
    raise ConfigError(f"{source}={value!r} must be an integer.") from None
  if number < (1 if field == "num_processes" else 0):
    raise ConfigError(f"{source}={value!r} must be >= {1 if field == 'num_processes' else 0}.")
  return number


def _validate_mesh(config, num_devices: int | None) -> None:
  training, sampling, classifier = config.training, config.sampling, config.classifier
  _choice(config.mesh.distributed, "mesh.distributed", DISTRIBUTED)
  for field in ("coordinator_address", "num_processes", "process_id"):
    if config.mesh[field] is not None:
      distributed_value(field, config.mesh[field])
  if num_devices is not None:
    data_axis, fsdp = mesh_shape(config.mesh, num_devices)
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


def validate(config: ml_collections.ConfigDict, num_devices: int | None = None) -> None:
  """Raises ConfigError naming the first impossible field.

  Args:
    config: the resolved config.
    num_devices: global device count; when given, batch sizes are checked
      against the data-parallel mesh axis.
  """
  _validate_data(config.data)
  _validate_model(config.data, config.model)
  _validate_diffusion_and_training(config.diffusion, config.training)
  _validate_sampling(config)
  _validate_evaluation_and_classifier(config.evaluation, config.classifier)
  _validate_mesh(config, num_devices)


def to_json(config: ml_collections.ConfigDict) -> str:
  """The resolved config as JSON (tuples become lists)."""
  return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)


def expand_paths(config: ml_collections.ConfigDict) -> None:
  """Expands ``~`` and environment variables in every ``PATH_FIELDS`` value, in place.

  URLs (``gs://...``) pass through unchanged unless they hold ``$VARS``.
  """
  for field in PATH_FIELDS:
    section, key = field.split(".")
    value = config[section][key]
    if isinstance(value, str) and value:
      config[section][key] = os.path.expandvars(os.path.expanduser(value))


def default_config() -> ml_collections.ConfigDict:
  """``configs/default.py``'s config, loaded by path: a config file anywhere can extend it.

  The configs import this instead of ``from configs import default``, which worked
  only from the repository root.
  """
  name = "solar_jax_configs_default"
  module = sys.modules.get(name)
  if module is None:
    if not DEFAULT_CONFIG_FILE.exists():
      raise ConfigError(
        f"{DEFAULT_CONFIG_FILE} is missing: install solar_jax from its repository "
        "(pip install -e .), which holds configs/default.py."
      )
    spec = importlib.util.spec_from_file_location(name, DEFAULT_CONFIG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
  return module.get_config()


def _merge(config: ml_collections.ConfigDict, stored: dict, prefix: str = "") -> None:
  """Sets ``stored``'s values on ``config``; lists become tuples where the field holds one."""
  for key, value in stored.items():
    if key not in config:
      raise ConfigError(
        f"{prefix}{key}: not a field of configs/default.py (a config of another version?)."
      )
    if isinstance(config[key], ml_collections.ConfigDict):
      _merge(config[key], value, f"{prefix}{key}.")
    elif isinstance(value, list):
      config[key] = tuple(value)
    else:
      config[key] = value


def from_json(path) -> ml_collections.ConfigDict:
  """A run's ``config.json`` (``workdir.write_config``) as the config that wrote it.

  The stored values are set on the default config, so the field types (tuples,
  typed placeholders) are the default's and ``to_json`` of the result equals the file.
  """
  path = epath.Path(os.path.expandvars(os.path.expanduser(os.fspath(path))))
  try:
    stored = json.loads(path.read_text())
  except (OSError, ValueError) as e:
    raise ConfigError(f"--config={path}: cannot read it as a run's config.json ({e}).") from None
  config = default_config()
  _merge(config, stored)
  return config


def get_config(path: str) -> ml_collections.ConfigDict:
  """Config-file entry point for a ``config.json``: ``--config=<this file>:<config.json>``
  (``solar_jax.cli`` rewrites ``--config=<workdir>/config.json`` to that)."""
  return from_json(path)
