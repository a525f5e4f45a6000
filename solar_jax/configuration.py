"""Configs: loading them by name or from a run's config.json, each numeric field's range.

Locked ``ml_collections`` configs already reject unknown keys. This module loads a
config (``load_module_config``, ``from_json``), checks every numeric field on its own
against ``RANGES`` (``check_ranges``) and the fields that must agree without a registry
or a device (``check_fields``: what ``main`` checks before JAX loads), and says what an
artefact depends on (``depends_on``). The choices (samplers, schedules, label policies,
regimes, ...) are registered where they are implemented and checked at the top, in
``solar_jax.checks``, which calls ``check_fields`` first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import math
import os
import pathlib
import pkgutil
import re

import ml_collections
from etils import epath

from solar_jax import configs as configs_package
from solar_jax.configs import default
from solar_jax.errors import ConfigError

# Fields that name a file or directory: ``~`` and ``$VARS`` in them are expanded
# (``--config.data.data_dir=~/tfds`` reaches the program unexpanded: the shell
# expands ``~`` only at the start of a word).
PATH_FIELDS = ("data.data_dir", "evaluation.inception_weights", "sampling.checkpoint")


@dataclasses.dataclass(frozen=True)
class Range:
  """The values a numeric field may take: finite, an integer where ``integer``, within
  ``[lo, hi]`` (bounds excluded where ``open_lo``/``open_hi``; None: unbounded)."""

  lo: float | None = None
  hi: float | None = None
  integer: bool = False
  open_lo: bool = False
  open_hi: bool = False

  def holds(self, value) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
      return False
    if self.integer and not isinstance(value, int):
      return False
    if not math.isfinite(value):
      return False
    if self.lo is not None and (value <= self.lo if self.open_lo else value < self.lo):
      return False
    return self.hi is None or (value < self.hi if self.open_hi else value <= self.hi)

  def describe(self) -> str:
    kind = "an integer" if self.integer else "a finite number"
    if self.lo is not None and self.hi is not None:
      left, right = "(" if self.open_lo else "[", ")" if self.open_hi else "]"
      return f"{kind} in {left}{self.lo:g}, {self.hi:g}{right}"
    if self.integer and self.lo == 1 and not self.open_lo:
      return "a positive integer"
    if self.lo is not None:
      return f"{kind} {'>' if self.open_lo else '>='} {self.lo:g}"
    return kind


POSITIVE_INT = Range(1, integer=True)
NON_NEGATIVE_INT = Range(0, integer=True)
POSITIVE = Range(0, open_lo=True)
NON_NEGATIVE = Range(0)
FRACTION = Range(0, 1)  # [0, 1]
SEED = Range(0, 2**32 - 1, integer=True)

# Every numeric field of configs/default.py and the values it may take, checked by
# ``check_ranges`` (a tuple field: each element). NaN and Inf are never allowed. Limits
# that depend on another field (sampling.num_steps <= diffusion.num_timesteps, batch
# sizes over the mesh, clip_min < clip_max) are checked after this table.
RANGES: dict[str, Range] = {
  "seed": SEED,
  "data.image_size": POSITIVE_INT,
  "data.channels": POSITIVE_INT,
  "data.cooling_lag_minutes": NON_NEGATIVE,
  "data.issuance_hours": Range(0, 23, integer=True),  # UT hours
  "data.issuance_tolerance_minutes": Range(0, 30, open_hi=True),
  "data.fold": NON_NEGATIVE_INT,
  "provenance.num_folds": NON_NEGATIVE_INT,  # 0: not read.
  "data.embargo_days": NON_NEGATIVE,
  "data.withheld_day_fraction": Range(0, 0.9),
  "data.withheld_day_seed": SEED,
  "data.clip_min": POSITIVE,
  "data.clip_max": POSITIVE,
  "data.clip_max_quantile": Range(0, 1, open_hi=True),
  "data.shuffle_buffer": POSITIVE_INT,
  "data.prefetch": NON_NEGATIVE_INT,
  "model.base_channels": POSITIVE_INT,
  "model.channel_mult": POSITIVE_INT,
  "model.num_res_blocks": POSITIVE_INT,
  "model.attention_resolutions": POSITIVE_INT,
  "model.num_heads": POSITIVE_INT,
  "model.dropout": FRACTION,
  "model.num_groups": POSITIVE_INT,
  "diffusion.num_timesteps": POSITIVE_INT,
  "diffusion.beta_start": Range(0, 1, open_lo=True, open_hi=True),
  "diffusion.beta_end": Range(0, 1, open_lo=True, open_hi=True),
  "diffusion.cosine_s": POSITIVE,
  "diffusion.label_dropout": FRACTION,
  "diffusion.min_snr_gamma": POSITIVE,
  "training.batch_size": POSITIVE_INT,
  "training.num_steps": POSITIVE_INT,
  "training.learning_rate": POSITIVE,
  "training.warmup_steps": NON_NEGATIVE_INT,
  "training.weight_decay": NON_NEGATIVE,
  "training.grad_clip": NON_NEGATIVE,
  "training.ema_decay": FRACTION,
  "training.log_every": POSITIVE_INT,
  "training.checkpoint_every": POSITIVE_INT,
  "training.keep_checkpoints": POSITIVE_INT,
  "training.sample_every": NON_NEGATIVE_INT,
  "training.num_sample_images": NON_NEGATIVE_INT,
  "sampling.num_steps": POSITIVE_INT,
  "sampling.eta": FRACTION,
  "sampling.guidance_scale": NON_NEGATIVE,
  "sampling.batch_size": POSITIVE_INT,
  "sampling.per_class": Range(0, 2**31 - 1, integer=True),  # Memory: sample.check_memory.
  "sampling.max_images": Range(1, 2**31 - 1, integer=True),
  "sampling.seed": SEED,
  "evaluation.num_images": POSITIVE_INT,
  "evaluation.random_features_dim": POSITIVE_INT,
  "evaluation.batch_size": POSITIVE_INT,
  "evaluation.kid_bootstrap": POSITIVE_INT,
  "evaluation.nearest_k": POSITIVE_INT,
  "evaluation.num_clusters": Range(2, integer=True),
  "evaluation.memorisation_train_images": NON_NEGATIVE_INT,
  "evaluation.flare_kernel_dns": POSITIVE,
  "classifier.stage_sizes": POSITIVE_INT,
  "classifier.width": POSITIVE_INT,
  "classifier.stem_stride": POSITIVE_INT,
  "classifier.dropout": FRACTION,
  "classifier.batch_size": POSITIVE_INT,
  "classifier.num_steps": POSITIVE_INT,
  "classifier.learning_rate": POSITIVE,
  "classifier.weight_decay": NON_NEGATIVE,
  "classifier.eval_every": NON_NEGATIVE_INT,
  "classifier.stacked_runs": POSITIVE_INT,
  "classifier.vectorized_runs": NON_NEGATIVE_INT,
  "classifier.seeds": SEED,
  "classifier.focal_gamma": NON_NEGATIVE,
  "classifier.focal_grid": NON_NEGATIVE,
  "classifier.oversample_share": Range(0, 1, open_hi=True),
  "classifier.oversample_grid": Range(0, 1, open_hi=True),
  "classifier.class_weight_power": NON_NEGATIVE,
  "classifier.weight_power_grid": NON_NEGATIVE,
  "classifier.augment_rotation_grid": Range(0, 180),
  "classifier.augment_rotation_deg": Range(0, 180),
  "classifier.augment_intensity": NON_NEGATIVE,
  "classifier.synthetic_ratio": NON_NEGATIVE,
  "classifier.ratio_grid": NON_NEGATIVE,
  "classifier.guidance_scale": NON_NEGATIVE,  # None: sampling.guidance_scale.
  "classifier.guidance_grid": NON_NEGATIVE,
  "classifier.sampling_steps": POSITIVE_INT,  # None: sampling.num_steps.
  "classifier.num_pools": POSITIVE_INT,
  "classifier.bootstrap_samples": Range(100, integer=True),  # The 2.5/97.5 percentiles need it.
  "mesh.data": Range(-1, integer=True),  # -1: all devices / fsdp; 0 is refused by mesh_shape.
  "mesh.fsdp": POSITIVE_INT,
  "mesh.num_processes": POSITIVE_INT,  # None: JAX_NUM_PROCESSES or the scheduler's.
  "mesh.process_id": NON_NEGATIVE_INT,
}


# The numeric fields whose default is an unset placeholder (None).
NULLABLE = (
  "classifier.guidance_scale",
  "classifier.sampling_steps",
  "mesh.num_processes",
  "mesh.process_id",
)


def _lookup(config, field: str):
  for part in field.split("."):
    config = config[part]
  return config


def check_ranges(config) -> None:
  """Every ``RANGES`` field holds allowed values (None only where the default is a
  placeholder); raises ConfigError naming the first that does not."""
  for field, allowed in RANGES.items():
    value = _lookup(config, field)
    if value is None and field in NULLABLE:
      continue  # An unset placeholder: its default is None and None has a meaning.
    values = value if isinstance(value, tuple | list) else (value,)
    for v in values:
      if not allowed.holds(v):
        raise ConfigError(f"{field}={_show(value)} must be {allowed.describe()}.")


def check_fields(config) -> None:
  """Raises ConfigError naming the first field that cannot hold, by the rules that need
  no registry and no device: each numeric field's range (``check_ranges``), then the
  fields that must agree (clip levels, the UNet's depth and attention sides against the
  image side, sampler steps against the schedule, one count per class, ...).

  ``main`` runs it before JAX loads; ``checks.validate`` runs it first, then every
  choice against its registry and the batches against the devices.
  """
  check_ranges(config)
  data, model, diffusion = config.data, config.model, config.diffusion
  if not 0 < data.clip_min < data.clip_max:
    raise ConfigError(
      f"data.clip_min={data.clip_min} and data.clip_max={data.clip_max} must satisfy "
      "0 < clip_min < clip_max."
    )
  if len(data.classes) < 2:
    raise ConfigError(f"data.classes={data.classes!r} needs at least two classes.")
  if not model.channel_mult:
    raise ConfigError("model.channel_mult must name at least one level.")
  factor = 2 ** (len(model.channel_mult) - 1)
  if data.image_size % factor:
    raise ConfigError(
      f"data.image_size={data.image_size} is not divisible by the UNet's total "
      f"downsampling {factor} (model.channel_mult has {len(model.channel_mult)} levels)."
    )
  if str(data.builder_config).isdigit() and int(data.builder_config) % data.image_size:
    raise ConfigError(
      f"data.image_size={data.image_size} must divide the stored resolution "
      f"data.builder_config={data.builder_config!r} (the input pipeline averages "
      "stored pixels in blocks of builder_config / image_size)."
    )
  sides = {data.image_size // 2**i for i in range(len(model.channel_mult))}
  for side in model.attention_resolutions:
    if side not in sides:
      raise ConfigError(
        f"model.attention_resolutions contains {side}, which is not a feature-map side "
        f"of this UNet (sides: {sorted(sides, reverse=True)})."
      )
  if diffusion.schedule == "linear" and not 0 < diffusion.beta_start < diffusion.beta_end < 1:
    raise ConfigError(
      f"diffusion.beta_start={diffusion.beta_start} and diffusion.beta_end="
      f"{diffusion.beta_end} must satisfy 0 < beta_start < beta_end < 1."
    )
  _check_sampling_and_classifier(config)


def _check_sampling_and_classifier(config) -> None:
  data, diffusion, sampling, classifier = (
    config.data,
    config.diffusion,
    config.sampling,
    config.classifier,
  )
  for field, steps in (
    ("sampling.num_steps", sampling.num_steps),
    ("classifier.sampling_steps", classifier.sampling_steps),
  ):
    if steps is not None and not 1 <= steps <= diffusion.num_timesteps:
      raise ConfigError(f"{field}={steps!r} must lie in [1, {diffusion.num_timesteps}].")
  if len(sampling.per_class) != len(data.classes):
    raise ConfigError(
      f"sampling.per_class={tuple(sampling.per_class)} needs one count >= 0 for each of "
      f"data.classes={tuple(data.classes)} (or by name: --config.sampling.per_class=M:30,X:30)."
    )
  evaluation = config.evaluation
  if evaluation.floor_split and evaluation.floor_split == evaluation.split:
    raise ConfigError(
      f"evaluation.floor_split={evaluation.floor_split} must differ from evaluation.split "
      "(the floor compares two disjoint real sets); use '' for no floors."
    )
  if not classifier.seeds:
    raise ConfigError("classifier.seeds must name at least one seed.")
  if len(set(classifier.seeds)) != len(classifier.seeds):
    raise ConfigError(f"classifier.seeds={tuple(classifier.seeds)} repeats a seed.")
  if not classifier.stage_sizes:
    raise ConfigError("classifier.stage_sizes needs one or more counts >= 1.")
  for field in ("guidance_grid", "ratio_grid"):
    values = tuple(classifier[field])
    if len(set(values)) != len(values):
      raise ConfigError(f"classifier.{field}={values} needs distinct values >= 0.")


def _show(value) -> str:
  return repr(tuple(value) if isinstance(value, list) else value)


def mesh_shape(mesh_config, num_devices: int, num_processes: int = 1) -> tuple[int, int]:
  """Returns the (data, fsdp) mesh shape on ``num_devices`` devices.

  ``mesh.data=-1`` takes every device. One process may run on fewer devices than it
  has (``mesh.data=1`` on an 8-GPU node: the first device); several processes use
  every device, since each feeds its own devices' share of the batch.
  """
  fsdp = mesh_config.fsdp
  if fsdp < 1 or num_devices % fsdp:
    raise ConfigError(
      f"mesh.fsdp={fsdp} must be a positive divisor of the device count ({num_devices})."
    )
  data = mesh_config.data if mesh_config.data != -1 else num_devices // fsdp
  used = data * fsdp
  if data < 1 or used > num_devices or (num_processes > 1 and used != num_devices):
    need = "equal" if num_processes > 1 else "be at most"
    raise ConfigError(
      f"mesh.data={mesh_config.data} times mesh.fsdp={fsdp} must {need} the device count "
      f"({num_devices}{f' over {num_processes} processes' if num_processes > 1 else ''}); "
      "use mesh.data=-1 to take all devices."
    )
  return data, fsdp


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


def depends_on(config, fields, *, exclude=()) -> dict:
  """What an artefact depends on: ``{"section.field": value}`` for ``fields`` of ``config``.

  The one helper behind every cache key and stored record (checkpoints, sample sets,
  synthetic pools, classifier runs, compiled programs), so two keys cannot drift apart.

  Args:
    config: a ConfigDict or its dict (as stored in a checkpoint or config.json).
    fields: ``"section.field"``, ``"field"`` (top level) or ``"section.*"`` (every
      field of the section but those in ``exclude``).
    exclude: dotted fields a ``.*`` entry leaves out.

  Returns:
    JSON-normalised values (tuples become lists); a field the config lacks is None.
  """
  tree = config.to_dict() if hasattr(config, "to_dict") else config
  tree = json.loads(json.dumps(tree, default=list))
  out = {}
  for field in fields:
    section, _, key = field.rpartition(".")
    node = tree
    for part in section.split(".") if section else ():
      node = node.get(part) or {}
    if key == "*":
      out.update({f"{section}.{k}": v for k, v in node.items() if f"{section}.{k}" not in exclude})
    else:
      out[field] = node.get(key)
  return out


def digest(values, length: int = 8) -> str:
  """A short hash of ``values`` (canonical JSON): the readable key's suffix."""
  text = json.dumps(values, sort_keys=True, default=str)
  return hashlib.sha1(text.encode()).hexdigest()[:length]


def to_json(config: ml_collections.ConfigDict) -> str:
  """The resolved config as JSON (tuples become lists)."""
  return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)


def expand_paths(config: ml_collections.ConfigDict, fields=PATH_FIELDS) -> None:
  """Expands ``~`` and environment variables in the ``fields`` (path fields), in place.

  URLs (``gs://...``) pass through unchanged unless they hold ``$VARS``. A stored
  config (a run's config.json, an export) is data: expand only the fields the
  command line set, so that nothing from this environment is filled into it.
  """
  for field in fields:
    section, key = field.split(".")
    value = config[section][key]
    if isinstance(value, str) and value:
      config[section][key] = os.path.expandvars(os.path.expanduser(value))


def default_config() -> ml_collections.ConfigDict:
  """``solar_jax/configs/default.py``'s config: every other config starts from it."""
  return default.get_config()


def shipped_configs() -> list[str]:
  """The names of the configs in ``solar_jax/configs/`` (``--config=NAME``)."""
  return sorted(
    m.name for m in pkgutil.iter_modules(configs_package.__path__) if not m.name.startswith("_")
  )


def load_module_config(name: str) -> ml_collections.ConfigDict:
  """``get_config()`` of the module ``name``: a shipped config's name or a dotted module.

  Raises:
    ConfigError: ``name`` is a file path, or no such module (or it has no get_config).
  """
  if name.endswith(".py") or "/" in name or os.sep in name:
    stem = pathlib.PurePath(name).stem
    hint = f"--config={stem}" if stem in shipped_configs() else f"--config={stem} from its folder"
    raise ConfigError(
      f"--config={name}: configs are modules imported by name, not files: use {hint} "
      "(or put its folder on PYTHONPATH and name the module)."
    )
  candidates = [f"solar_jax.configs.{name}", name] if name.isidentifier() else [name]
  for candidate in candidates:
    try:
      module = importlib.import_module(candidate)
    except ModuleNotFoundError as e:
      if e.name and candidate.startswith(e.name):
        continue  # This candidate does not exist; an import error inside it is the user's.
      raise ConfigError(f"--config={name}: {candidate} fails to import ({e}).") from None
    if not hasattr(module, "get_config"):
      raise ConfigError(f"--config={name}: {module.__name__} has no get_config().")
    return module.get_config()
  raise ConfigError(
    f"--config={name}: no such config; use one of {', '.join(shipped_configs())}, "
    "a module on PYTHONPATH, or a run's config.json."
  )


# Fields added after configs were first stored, whose default does what a config
# without them did: a run's config.json or an export that lacks one of these loads with
# the default. Any other missing field is refused (a default might change the run).
DEFAULT_WHEN_ABSENT = (
  "data.verify_shards",  # A check of the shards only.
  "data.split",  # 'month_blocks': the only split rule before it.
  # Not data.withheld_day_fraction: its default (0.1) is not what configs before it did
  # (they withheld nothing), so such a config.json is refused naming the field.
  # Read only with the forecast label, which a dataset before them (< 2.3.0) refuses.
  "data.issuance_hours",
  "data.issuance_tolerance_minutes",
  "diffusion.loss_weighting",  # 'none': the plain MSE loss of the runs before it.
  "diffusion.min_snr_gamma",  # Read only with loss_weighting='min_snr'.
  "sampling.checkpoint",  # '': this workdir's checkpoints.
  "model.conditioning",  # 'class': the only conditioning before it.
  *("sampling.fluxes", "sampling.flux_draw"),  # Read by flux models only.
  "classifier.guidance_scale",  # None: sampling.guidance_scale, as before.
  "mesh.coordinator_address",  # None: the JAX_* variables or the scheduler, as before.
  "mesh.num_processes",
  "mesh.process_id",
  # Facts of the dataset, filled in by data.resolve before config.json is written:
  # a config stored before them (the whole section absent) loads with "not read".
  "provenance.simulated",
  "provenance.goes_scale",
  "provenance.split_rule",
  "provenance.degradation",
  "provenance.version",
  "provenance.num_folds",
  "provenance.unreadable",
  "provenance.events_per_class",
)


def _expected(default, ref_type) -> tuple[str, type | tuple[type, ...] | None]:
  """What a JSON value of a field with ``default`` (of ``ref_type``) must be."""
  kind = ref_type if default is None else type(default)
  if kind is bool:
    return "true or false", bool
  if kind is int:
    return "an integer", int
  if kind is float:
    return "a number", (int, float)
  if kind is str:
    return "a string", str
  return f"a {kind.__name__}", None


def _json_type(value) -> str:
  if value is None:
    return "null"
  if isinstance(value, bool):
    return "true" if value else "false"
  names = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number"}
  return names.get(type(value), type(value).__name__)


def _typed(value, default, ref_type, field: str, origin: str):
  """``value`` checked against the field's type (None only for placeholders)."""
  if isinstance(default, tuple):
    if not isinstance(value, list):
      raise ConfigError(f"{origin}: {field} must be a list, not {_json_type(value)} ({value!r}).")
    element = type(default[0]) if default else None
    if element is None:
      return tuple(value)
    return tuple(
      _typed(v, element(), element, f"{field}[{i}]", origin) for i, v in enumerate(value)
    )
  if value is None and default is None:
    return None  # A typed placeholder, unset.
  want, types = _expected(default, ref_type)
  ok = (
    types is not None
    and isinstance(value, types)
    and (types is bool or not isinstance(value, bool))
  )
  if not ok:
    raise ConfigError(
      f"{origin}: {field} must be {want}, not {_json_type(value)} ({json.dumps(value)})."
    )
  return value


def _all_default_when_absent(node, field: str) -> bool:
  """Whether ``node`` is a section whose every field may be absent (a section added later)."""
  if not isinstance(node, ml_collections.ConfigDict):
    return False
  return all(f"{field}.{key}" in DEFAULT_WHEN_ABSENT for key in node)


def _merge(config: ml_collections.ConfigDict, stored, origin: str, prefix: str = "") -> None:
  """Sets ``stored``'s values on ``config``, each checked against its field's type.

  Raises:
    ConfigError: an unknown field, a value of another type, or a missing section or
      field (but for ``DEFAULT_WHEN_ABSENT``); one line naming the field.
  """
  if not isinstance(stored, dict):
    where = f"section {prefix[:-1]}" if prefix else "the file"
    raise ConfigError(
      f"{origin}: {where} must be a JSON object of fields, not {_json_type(stored)}."
    )
  for key, value in stored.items():
    if key not in config:
      raise ConfigError(
        f"{origin}: {prefix}{key} is not a field of solar_jax/configs/default.py (a config of "
        "another version?)."
      )
    if isinstance(config[key], ml_collections.ConfigDict):
      _merge(config[key], value, origin, f"{prefix}{key}.")
    else:
      ref_type = config.get_ref(key).get_type()
      config[key] = _typed(value, config[key], ref_type, prefix + key, origin)
  for key in config:
    field = prefix + key
    may_lack = field in DEFAULT_WHEN_ABSENT or _all_default_when_absent(config[key], field)
    if key in stored or may_lack:
      continue
    what = "section" if isinstance(config[key], ml_collections.ConfigDict) else "field"
    raise ConfigError(
      f"{origin}: the {what} {field} is missing (not filled with today's default, which "
      "may change the run); add it, or start from a shipped config (--config=NAME)."
    )


def _migrate(stored, origin: str):
  """A stored config of an earlier version in today's fields, where the meaning is kept.

  ``model.name`` (read by nothing; only 'unet' existed) is dropped; ``classifier.task``
  ('ge_m', 'forecast_ge_m', ...) becomes ``classifier.label`` and ``classifier.grouping``.
  """
  if not isinstance(stored, dict):
    return stored
  model, classifier = stored.get("model"), stored.get("classifier")
  if isinstance(model, dict) and "name" in model:
    model = stored["model"] = dict(model)
    if model.pop("name") != "unet":
      raise ConfigError(f"{origin}: model.name must be 'unet', the only model there is.")
  if isinstance(classifier, dict) and "task" in classifier:
    classifier = stored["classifier"] = dict(classifier)
    task = str(classifier.pop("task"))
    forecast = task.startswith("forecast_")
    classifier.setdefault("label", "max_class_next_24h" if forecast else "")
    classifier.setdefault("grouping", task.removeprefix("forecast_"))
  return stored


def from_dict(stored, origin: str) -> ml_collections.ConfigDict:
  """The config that a stored config (a dict read from JSON) describes; see ``from_json``."""
  config = default_config()
  _merge(config, _migrate(stored, origin), origin)
  return config


def from_json(path) -> ml_collections.ConfigDict:
  """A run's ``config.json`` (``workdir.write_config``) or an export's, as the config
  that wrote it.

  The stored values are set on the default config, so the field types (tuples,
  typed placeholders) are the default's and ``to_json`` of the result equals the file.
  Stored values are data: nothing in them (``~``, ``$VARS``) is expanded, and the path
  is used as given (the shell has expanded it once).

  Raises:
    ConfigError: the file cannot be read, or a field is unknown, missing or of another
      type (one line naming the file and the field).
  """
  path = epath.Path(path)
  try:
    stored = json.loads(path.read_text())
  except (OSError, ValueError) as e:
    raise ConfigError(f"--config={path}: cannot read it as a run's config.json ({e}).") from None
  return from_dict(stored, os.fspath(path))
