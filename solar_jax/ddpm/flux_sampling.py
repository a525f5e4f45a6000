"""What a flux-conditioned generator (``model.conditioning='flux'``) is asked for.

A flux model is conditioned on the log10 GOES 1-8 Å flux [W m^-2] behind the label
(``data.frame_facts.label_fluxes``: on ``data.class_scale``, like the classes). A sample
set of one asks for one flux per image, from ``sampling.fluxes`` (floats in W m^-2 or
class strings such as 'M2.5', ``data.goes.class_to_flux``), or per class (the class
counts of ``sample.sample_counts``) by ``sampling.flux_draw``: 'centre', the class's
geometric centre (A..M: 10^(decade + 0.5), e.g. M3.16; X: X3.16), or 'training', drawn
with replacement from the training split's label fluxes of that class (seeded by
``sampling.seed``), so a set spans each class's range as the data do. Each image's
class is the class of its flux (``frame_facts.class_index``), which names its FITS file
and places it in the grid; its header records the flux (``GOESFLUX``) and its class
string (``GOESCLS``).
"""

from __future__ import annotations

import math

import numpy as np

from solar_jax import errors
from solar_jax.data import frame_facts, goes, input_pipeline

# sampling.flux_draw: each class's flux at its centre, or drawn from the training split's.
FLUX_DRAWS = ("centre", "training")
# The flux sweep (``sweep_fluxes``): A1 to X10, this many fluxes evenly spaced in log10.
SWEEP_RANGE = ("A1", "X10")
SWEEP_POINTS = 11


def is_flux_model(config) -> bool:
  return config.model.conditioning == "flux"


def parse_flux(value, field: str = "sampling.fluxes") -> float:
  """A flux in W m^-2 from a positive number or a GOES class string ('M2.5' -> 2.5e-5).

  Raises:
    errors.ConfigError: one line naming ``field`` and the value.
  """
  if isinstance(value, str):
    try:
      return goes.class_to_flux(value)
    except ValueError:
      pass
    try:
      value = float(value)
    except ValueError:
      raise errors.ConfigError(
        f"{field}: {value!r} is neither a GOES class string (e.g. 'M2.5') nor a flux in W m^-2."
      ) from None
  if isinstance(value, bool) or not isinstance(value, int | float):
    raise errors.ConfigError(f"{field}: {value!r} is not a flux in W m^-2 or a class string.")
  if not (math.isfinite(value) and 1e-10 <= value <= 1e-1):
    raise errors.ConfigError(
      f"{field}: {value!r} W m^-2 is not a GOES 1-8 A flux (use 1e-10 .. 1e-1, or 'A1'..'X20')."
    )
  return float(value)


def class_string(flux: float) -> str:
  """The GOES class string of a flux, 3 significant digits ('M2.5', 'X10')."""
  letter = goes.class_letter(flux)
  return f"{letter}{flux / goes.CLASS_BASE_FLUX[letter]:.3g}"


def class_centres(num_classes: int) -> np.ndarray:
  """The geometric centre flux of each class A.. (10^(decade + 0.5) W m^-2)."""
  bases = np.array([goes.CLASS_BASE_FLUX[c] for c in goes.CLASS_LETTERS[:num_classes]])
  return bases * 10**0.5


def sweep_fluxes(points: int = SWEEP_POINTS) -> np.ndarray:
  """``points`` fluxes evenly spaced in log10 from A1 to X10 (W m^-2)."""
  lo, hi = (math.log10(goes.class_to_flux(c)) for c in SWEEP_RANGE)
  return 10.0 ** np.linspace(lo, hi, points)


def training_fluxes(config) -> tuple[np.ndarray, np.ndarray]:
  """(labels, label fluxes) of the training split (one pass over its facts)."""
  split = input_pipeline.make_for_inference(config.data, "train", images=False)
  return np.asarray(split["label"], np.int32), np.asarray(split["label_flux"], np.float64)


def per_class_fluxes(config, per_class, train=None) -> np.ndarray:
  """One flux per image of ``np.repeat(classes, per_class)`` by ``sampling.flux_draw``.

  ``train``: ``(labels, fluxes)`` of the training split for 'training' (default: read).

  Raises:
    errors.InputMismatchError: 'training' asks for a class the training split lacks.
  """
  per_class = np.asarray(per_class, np.int64)
  if config.sampling.flux_draw == "centre":
    return np.repeat(class_centres(len(per_class)), per_class)
  labels, fluxes = train if train is not None else training_fluxes(config)
  rng = np.random.default_rng([int(config.sampling.seed), 2028])
  out = []
  for c, n in enumerate(per_class):
    pool = fluxes[(labels == c) & np.isfinite(fluxes)]
    if n and not len(pool):
      raise errors.InputMismatchError(
        f"sampling.flux_draw='training': the training split has no frame of class "
        f"{config.data.classes[c]} to draw its fluxes from; set its count to 0 or use "
        "sampling.flux_draw='centre'."
      )
    out.append(rng.choice(pool, size=int(n), replace=True) if n else np.zeros(0))
  return np.concatenate(out) if out else np.zeros(0)


def requested(config, per_class) -> tuple[np.ndarray, np.ndarray]:
  """``(labels int32 [N], fluxes float64 [N] W m^-2)`` a flux model draws: the listed
  ``sampling.fluxes`` in their order, or ``per_class`` counts by ``sampling.flux_draw``."""
  if config.sampling.fluxes:
    fluxes = np.array([parse_flux(v) for v in config.sampling.fluxes], np.float64)
    labels = frame_facts.class_index(fluxes)
    return np.minimum(labels, len(config.data.classes) - 1).astype(np.int32), fluxes
  fluxes = per_class_fluxes(config, per_class)
  labels = np.repeat(np.arange(len(per_class), dtype=np.int32), per_class)
  return labels, fluxes


def counts_of(config, labels) -> np.ndarray:
  """Images per class of ``labels`` (int64 [num_classes])."""
  return np.bincount(labels, minlength=len(config.data.classes)).astype(np.int64)


def check_model_kind(config, asked_flux: bool, where: str) -> None:
  """Refuses, in one line, fluxes asked of a class model or classes alone of a flux model.

  Raises:
    errors.ConfigError: naming ``where`` (the model) and its conditioning.
  """
  if asked_flux and not is_flux_model(config):
    raise errors.ConfigError(
      f"{where} is conditioned on the GOES class (model.conditioning='class'): it cannot "
      "be asked for fluxes; ask for classes, or use a flux-conditioned model."
    )
