"""What a built dataset's version and metadata.json must hold before a split is read:
the stored read-time facts (classes, folds, association lag), the forecast facts' version,
the GOES scale's switch date."""

from __future__ import annotations

import datetime

from etils import epath

from solar_jax import errors
from solar_jax.data import frame_facts, goes

BUILD_COMMAND = "tfds build sdo_aia171 --imports=tfds_builders"


def _check_metadata(builder, data_config) -> None:
  """The read-time choices must fit what the build stored (one line naming the field)."""
  meta = metadata(builder)
  where = f"{data_config.dataset}/{data_config.builder_config} in {builder.data_dir}"
  if tuple(meta.get("classes", ())) != tuple(data_config.classes):
    raise errors.InputMismatchError(
      f"data.classes={tuple(data_config.classes)} differ from the classes of {where} "
      f"({meta.get('classes')}); a dataset of version < 2.0.0 must be rebuilt."
    )
  if not 0 <= data_config.fold < meta["num_folds"]:
    raise errors.InputMismatchError(
      f"data.fold={data_config.fold}: {where} has {meta['num_folds']} folds (0..{meta['num_folds'] - 1})."
    )
  if data_config.cooling_lag_minutes > meta["association_lag_minutes"]:
    raise errors.InputMismatchError(
      f"data.cooling_lag_minutes={data_config.cooling_lag_minutes:g} exceeds the "
      f"{meta['association_lag_minutes']:g} min after a flare's end that {where} stores facts for."
    )


# Keys of the dataset's metadata.json that reading a split needs.
REQUIRED_METADATA = ("classes", "num_folds", "association_lag_minutes")


def metadata(builder) -> dict:
  """The dataset's stored metadata (``simulated``, ``num_folds``, GOES scale, ...).

  Raises ``errors.DamagedFileError`` naming metadata.json and the key when one of
  ``REQUIRED_METADATA`` is absent or ``num_folds`` is not a positive integer.
  """
  meta = dict(builder.info.metadata or {})
  path = epath.Path(builder.data_dir) / "metadata.json"
  for key in REQUIRED_METADATA:
    if key not in meta:
      raise errors.DamagedFileError(
        f"{path}: no {key!r} (keys: {sorted(meta)}); the file was edited or the dataset "
        f"comes from an older builder: rebuild it ({BUILD_COMMAND})"
      )
  folds = meta["num_folds"]
  if isinstance(folds, bool) or not isinstance(folds, int) or folds < 1:
    raise errors.DamagedFileError(
      f"{path}: num_folds={folds!r} is not a positive integer; rebuild the dataset"
    )
  return meta


# The first dataset version whose next24_flux is the forecast flux (flares starting in the
# window, frame_facts 'Forecast definition'); earlier ones stored the window's XRS maximum.
FORECAST_FACTS_SINCE = "2.3.0"


def check_forecast_facts(builder) -> None:
  """Refuses the forecast label on a dataset whose ``next24_flux`` means the old thing."""
  version = str(builder.info.version)
  if tuple(int(p) for p in version.split(".")) < tuple(
    int(p) for p in FORECAST_FACTS_SINCE.split(".")
  ):
    raise errors.InputMismatchError(
      f"label {frame_facts.FORECAST_LABEL!r}: {builder.data_dir} is dataset {version}, whose "
      "next24_flux is the XRS maximum of (t, t + 24 h] (the decay of the flare in progress "
      f"counts: detection, not a forecast); rebuild it at >= {FORECAST_FACTS_SINCE} "
      f"({BUILD_COMMAND})."
    )


def true_flux_since(meta: dict) -> datetime.datetime:
  """The GOES-16 era's first day the build used (``goes.TRUE_FLUX_LISTS_SINCE`` if unrecorded).

  Builds before 2.2.0 do not record it; every one of them used the default.
  """
  value = meta.get("true_flux_lists_since")
  return datetime.datetime.fromisoformat(value) if value else goes.TRUE_FLUX_LISTS_SINCE
