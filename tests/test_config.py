"""Config validation: every config loads, bad values fail with the field named."""

import importlib
import json

import jax
import pytest

from solar_jax import checks, configuration, parallel
from solar_jax.models import classifier as classifier_lib

CONFIG_NAMES = ["default", "tiny", "quickstart", "aia171_64", "aia171_128", "aia171_256"]


def _config(name="tiny"):
  return importlib.import_module(f"solar_jax.configs.{name}").get_config()


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_shipped_configs_are_valid(name):
  checks.validate(_config(name), num_devices=8)


@pytest.mark.parametrize("name", CONFIG_NAMES[1:])
def test_configs_only_override_declared_fields(name):
  # Every leaf of a derived config exists in the default config, with the same type
  # (a None default is a typed placeholder: ml_collections checks what is assigned to it).
  default = _config("default").to_dict()
  derived = _config(name).to_dict()
  for section, fields in derived.items():
    if isinstance(fields, dict):
      assert set(fields) == set(default[section]), section
      for key, value in fields.items():
        if default[section][key] is not None:
          assert type(value) is type(default[section][key]), f"{section}.{key}"


@pytest.mark.parametrize(
  "field, value, words",
  [
    ("diffusion.schedule", "sigmoid", ["diffusion.schedule", "'linear'", "'cosine'"]),
    ("diffusion.prediction", "x0", ["diffusion.prediction", "'eps'", "'v'"]),
    ("sampling.sampler", "euler", ["sampling.sampler", "'ddim'", "'ddpm'"]),
    ("sampling.spacing", "log", ["sampling.spacing", "'quadratic'"]),
    ("model.dtype", "float16", ["model.dtype", "'bfloat16'"]),
    ("data.image_size", 33, ["data.image_size=33", "downsampling 2"]),
    ("training.batch_size", 12, ["training.batch_size=12", "8 data-parallel"]),
    ("sampling.num_steps", 101, ["sampling.num_steps=101", "[1, 100]"]),
    ("sampling.eta", 1.5, ["sampling.eta=1.5"]),
    ("sampling.guidance_scale", -0.5, ["sampling.guidance_scale=-0.5", ">= 0"]),
    ("classifier.guidance_scale", -1.0, ["classifier.guidance_scale=-1.0", ">= 0"]),
    ("model.attention_resolutions", (7,), ["model.attention_resolutions", "7"]),
    ("classifier.grouping", "ge_x", ["classifier.grouping", "'ge_m'", "'multiclass'"]),
    ("classifier.label", "next_week", ["classifier.label", "'max_class_next_24h'"]),
    ("data.dataset", "sdo_hmi", ["data.dataset", "'sdo_aia171'"]),
    ("classifier.regimes", ("real", "mixup"), ["classifier.regimes", "'focal'", "'augment'"]),
    (
      "classifier.primary_endpoint",
      "delta_auc",
      ["classifier.primary_endpoint", "'delta_tss_ge_m'"],
    ),
    ("classifier.augment_flips", "ew", ["classifier.augment_flips", "'ns'"]),
    ("classifier.guidance_grid", (1.0, -3.0), ["classifier.guidance_grid", ">= 0"]),
    ("classifier.ratio_grid", (1.0, 1.0), ["classifier.ratio_grid", "distinct"]),
    ("classifier.focal_grid", (2.0, 2.0), ["classifier.focal_grid", "distinct"]),
    ("classifier.oversample_grid", (0.25, 1.0), ["classifier.oversample_grid", "[0, 1)"]),
    ("classifier.regimes", ("real", "reweighted"), ["'reweighted'", "'real_synthetic'"]),
    ("classifier.sampling_steps", 101, ["classifier.sampling_steps=101", "[1, 100]"]),
    ("classifier.num_pools", 0, ["classifier.num_pools=0", "positive"]),
    ("classifier.bootstrap_samples", 10, ["classifier.bootstrap_samples=10", ">= 100"]),
    ("classifier.seeds", (0, 0), ["classifier.seeds", "repeats"]),
    ("mesh.fsdp", 3, ["mesh.fsdp=3", "divisor"]),
    ("data.clip_min", 0.0, ["data.clip_min=0.0"]),
    ("data.class_scale", "published", ["data.class_scale='published'", "'swpc'", "'true'"]),
    ("data.issuance_hours", (0, 24), ["data.issuance_hours", "[0, 23]"]),
    ("data.issuance_tolerance_minutes", 30.0, ["data.issuance_tolerance_minutes", "[0, 30)"]),
  ],
)
def test_impossible_values_name_the_field(field, value, words):
  config = _config("tiny")
  config.mesh.data = -1  # Every one of the 8 devices: the batch checks apply.
  section, key = field.split(".")
  config[section][key] = value
  with pytest.raises(configuration.ConfigError) as info:
    checks.validate(config, num_devices=8)
  message = str(info.value)
  assert "\n" not in message
  for word in words:
    assert word in message


def test_east_west_flips_are_refused_for_forecasting():
  config = _config("tiny")
  config.classifier.label, config.classifier.grouping = "max_class_next_24h", "ge_m"
  config.classifier.augment_flips = "ns_ew"
  with pytest.raises(configuration.ConfigError, match="reverses solar rotation"):
    checks.validate(config)


def test_batch_divisibility_follows_device_count():
  config = _config("tiny")
  config.mesh.data = -1  # Every device (tiny runs on one).
  config.training.batch_size = 12
  checks.validate(config, num_devices=4)  # 12 = 3 x 4: fine.
  checks.validate(config, num_devices=1)
  with pytest.raises(configuration.ConfigError, match="training.batch_size=12"):
    checks.validate(config, num_devices=8)


def test_mesh_shape():
  config = _config("default")  # mesh.data=-1: every device.
  assert configuration.mesh_shape(config.mesh, 8) == (8, 1)
  config.mesh.fsdp = 2
  assert configuration.mesh_shape(config.mesh, 8) == (4, 2)
  config.mesh.data = 2  # One process may use the first 4 of its 8 devices ...
  assert configuration.mesh_shape(config.mesh, 8) == (2, 2)
  with pytest.raises(configuration.ConfigError, match=r"mesh.data=2 .* must equal .* 2 processes"):
    configuration.mesh_shape(config.mesh, 8, num_processes=2)  # ... several use every device.
  config.mesh.data = 8
  with pytest.raises(configuration.ConfigError, match=r"mesh.data=8 .* at most the device count"):
    configuration.mesh_shape(config.mesh, 8)


def test_a_smaller_mesh_takes_the_first_devices():
  config = _config("tiny")
  for data, fsdp in ((1, 1), (2, 2), (3, 1)):
    config.mesh.data, config.mesh.fsdp = data, fsdp
    mesh = parallel.create_mesh(config.mesh)
    assert dict(mesh.shape) == {"data": data, "fsdp": fsdp}
    assert list(mesh.devices.flat) == jax.devices()[: data * fsdp]


def test_locked_config_rejects_unknown_key():
  from ml_collections import config_dict

  config = config_dict.ConfigDict(_config("tiny"))
  config.lock()
  with pytest.raises(AttributeError, match="nonexistent"):
    config.nonexistent = 1


@pytest.mark.parametrize(
  "task,label,grouping",
  [
    ("multiclass", "", "multiclass"),
    ("ge_m", "", "ge_m"),
    ("forecast_ge_m", "max_class_next_24h", "ge_m"),
    ("forecast_multiclass", "max_class_next_24h", "multiclass"),
  ],
)
def test_a_config_json_with_the_old_classifier_task_reads_as_label_and_grouping(
  tmp_path, task, label, grouping
):
  """classifier.task mixed two choices; a stored config keeps its meaning in the new two."""
  stored = json.loads(configuration.to_json(_config("tiny")))
  del stored["classifier"]["label"], stored["classifier"]["grouping"]
  stored["classifier"]["task"] = task
  stored["model"]["name"] = "unet"  # Read by nothing, dropped.
  path = tmp_path / "config.json"
  path.write_text(json.dumps(stored))
  config = configuration.from_json(path)
  assert (config.classifier.label, config.classifier.grouping) == (label, grouping)
  assert classifier_lib.task_of(config.classifier, config.data.label) == task
  if label:  # A forecast on a generator of today's classes: its synthetic regimes are refused.
    with pytest.raises(configuration.ConfigError, match="DDPM conditioned on data.label"):
      checks.validate(config)
    config.data.label = label  # A generator trained on the forecast label: accepted.
  checks.validate(config)


@pytest.mark.parametrize("where", ["data", "classifier"])
def test_a_look_ahead_label_needs_an_embargo_of_its_horizon(where):
  config = _config("tiny")
  config[where].label = "max_class_next_24h"
  config.classifier.regimes = ("real", "oversample")  # No generator: data.label may differ.
  config.data.embargo_days = 0.5
  with pytest.raises(configuration.ConfigError) as info:
    checks.validate(config)
  assert str(info.value).startswith("data.embargo_days=0.5 is shorter than the 1-day horizon")
  config.data.embargo_days = 1.0
  checks.validate(config)
  for hours in ((), (6, 6)):  # Read on the issuance grid: it must name distinct hours.
    config.data.issuance_hours = hours
    with pytest.raises(configuration.ConfigError, match=r"data.issuance_hours=.*distinct UT"):
      checks.validate(config)
  config.data.label = config.classifier.label = "goes_class"  # Today's class: no look-ahead.
  config.data.embargo_days = 0.0
  checks.validate(config)


def test_a_config_json_from_before_the_provenance_section_loads(tmp_path):
  """config.provenance was added later: a stored config without it loads as not read."""
  from solar_jax.data import resolve

  stored = json.loads(configuration.to_json(_config()))
  del stored["provenance"]
  path = tmp_path / "config.json"
  path.write_text(json.dumps(stored))
  config = configuration.from_json(path)
  assert config.provenance.simulated is None and config.provenance.unreadable == ""
  assert "not resolved" in resolve.record(config)["unreadable"]
  stored["provenance"] = {}  # A section present but empty: every field may be absent too.
  path.write_text(json.dumps(stored))
  assert configuration.from_json(path).provenance.version == ""
  del stored["model"]  # Any other section is still refused.
  path.write_text(json.dumps(stored))
  with pytest.raises(configuration.ConfigError, match="section model is missing"):
    configuration.from_json(path)


def test_a_config_json_from_before_data_class_scale_is_refused(tmp_path):
  """Runs before data.class_scale labelled on the true scale; the default is 'swpc', so a
  stored config without the field would change its labels: refused, naming the field."""
  stored = json.loads(configuration.to_json(_config()))
  assert stored["data"]["class_scale"] == "swpc"
  del stored["data"]["class_scale"]
  path = tmp_path / "config.json"
  path.write_text(json.dumps(stored))
  with pytest.raises(configuration.ConfigError, match="data.class_scale is missing") as info:
    configuration.from_json(path)
  assert "\n" not in str(info.value)
