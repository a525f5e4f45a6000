"""Inception-v3 as used for FID (pool3, 2048-d), in Flax Linen, with its weight converter.

The network is the TensorFlow FID graph (``inception-2015-12-05``) exactly as
pytorch-fid ports it: torchvision's Inception-v3 layout with the FID patches
(average pools in the A, C and first E blocks that ignore padded zeros, a max
pool in the last E block), batch norm with eps 1e-3, and the 2048-d output of
the final average pool. Only the layers up to that pool are built.

Weights. Nothing is downloaded. Get the pytorch-fid release asset
``pt_inception-2015-12-05-6726825d.pth`` (the TF FID graph's weights, from
the ``fid_weights`` release of github.com/mseitzer/pytorch-fid) and convert it
once, with PyTorch installed (``pip install torch==2.13.0``, CPU build)::

  python -m solar_jax.models.inception \
      --convert pt_inception-2015-12-05-6726825d.pth --out inception_fid.npz

then set ``--config.evaluation.inception_weights=inception_fid.npz``. The
``.npz`` holds the state-dict tensors under their PyTorch names and layouts
(``Mixed_5b.branch1x1.conv.weight``, OIHW); the loader transposes them. A
missing or incomplete file is an error: this module never falls back to random
weights (``random_variables`` exists for timing only and says so).

Input. The extractor takes images in the model's space (``[-1, 1]``: clipped
log10 DN/s scaled linearly, solar_jax/data/scaling.py), ``[N, H, W, 1]`` or
``[N, H, W, 3]``. Grey images are repeated to three channels. pytorch-fid
expects RGB in ``[0, 1]`` and maps it with ``2x - 1``; the model-space image
is already that result for the ``[0, 1]`` image ``(x + 1) / 2`` (equivalently
the ``[0, 255]`` image ``255 (x + 1) / 2`` of TF FID), so it is used as is.
Images are resized to 299×299 bilinearly with half-pixel centres and no
anti-aliasing, like ``F.interpolate(..., mode='bilinear',
align_corners=False)``; bilinear resizing commutes with the affine map, so
resizing before or after it gives the same input.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from etils import epath
from tqdm import auto as tqdm

from solar_jax import errors

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_SOURCE = (
  "the pytorch-fid release asset pt_inception-2015-12-05-6726825d.pth "
  "(github.com/mseitzer/pytorch-fid, release 'fid_weights')"
)
INPUT_SIZE = 299
FEATURE_DIM = 2048
BN_EPSILON = 1e-3


def _pairs(x) -> tuple[int, int]:
  return (x, x) if isinstance(x, int) else tuple(x)


class BasicConv2d(nn.Module):
  """Conv (no bias) -> BatchNorm (running statistics) -> ReLU, as torchvision's."""

  features: int
  kernel_size: Any
  strides: Any = 1
  padding: Any = 0  # PyTorch-style symmetric padding per spatial dimension.
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    pad = _pairs(self.padding)
    x = nn.Conv(
      self.features,
      _pairs(self.kernel_size),
      strides=_pairs(self.strides),
      padding=[(pad[0], pad[0]), (pad[1], pad[1])],
      use_bias=False,
      precision=self.precision,
      name="conv",
    )(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPSILON, name="bn")(x)
    return nn.relu(x)


def _avg_pool_3x3(x):
  # FID patch: TensorFlow's average pool leaves padded zeros out of the mean.
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_stride2(x):
  return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


class InceptionA(nn.Module):
  """FIDInceptionA (Mixed_5b..5d)."""

  pool_features: int
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    conv = lambda *a, **k: BasicConv2d(*a, precision=self.precision, **k)  # noqa: E731
    b1 = conv(64, 1, name="branch1x1")(x)
    b5 = conv(48, 1, name="branch5x5_1")(x)
    b5 = conv(64, 5, padding=2, name="branch5x5_2")(b5)
    b3 = conv(64, 1, name="branch3x3dbl_1")(x)
    b3 = conv(96, 3, padding=1, name="branch3x3dbl_2")(b3)
    b3 = conv(96, 3, padding=1, name="branch3x3dbl_3")(b3)
    bp = conv(self.pool_features, 1, name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """InceptionB (Mixed_6a): grid reduction 35 -> 17."""

  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    conv = lambda *a, **k: BasicConv2d(*a, precision=self.precision, **k)  # noqa: E731
    b3 = conv(384, 3, strides=2, name="branch3x3")(x)
    bd = conv(64, 1, name="branch3x3dbl_1")(x)
    bd = conv(96, 3, padding=1, name="branch3x3dbl_2")(bd)
    bd = conv(96, 3, strides=2, name="branch3x3dbl_3")(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3_stride2(x)], axis=-1)


class InceptionC(nn.Module):
  """FIDInceptionC (Mixed_6b..6e): factorised 7x7 convolutions."""

  channels_7x7: int
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    conv = lambda *a, **k: BasicConv2d(*a, precision=self.precision, **k)  # noqa: E731
    c7 = self.channels_7x7
    b1 = conv(192, 1, name="branch1x1")(x)
    b7 = conv(c7, 1, name="branch7x7_1")(x)
    b7 = conv(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
    b7 = conv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
    bd = conv(c7, 1, name="branch7x7dbl_1")(x)
    bd = conv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
    bd = conv(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
    bd = conv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
    bd = conv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
    bp = conv(192, 1, name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """InceptionD (Mixed_7a): grid reduction 17 -> 8."""

  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    conv = lambda *a, **k: BasicConv2d(*a, precision=self.precision, **k)  # noqa: E731
    b3 = conv(192, 1, name="branch3x3_1")(x)
    b3 = conv(320, 3, strides=2, name="branch3x3_2")(b3)
    b7 = conv(192, 1, name="branch7x7x3_1")(x)
    b7 = conv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
    b7 = conv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
    b7 = conv(192, 3, strides=2, name="branch7x7x3_4")(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3_stride2(x)], axis=-1)


class InceptionE(nn.Module):
  """FIDInceptionE_1 (pool='avg', Mixed_7b) and FIDInceptionE_2 (pool='max', Mixed_7c)."""

  pool: str
  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    conv = lambda *a, **k: BasicConv2d(*a, precision=self.precision, **k)  # noqa: E731
    b1 = conv(320, 1, name="branch1x1")(x)
    b3 = conv(384, 1, name="branch3x3_1")(x)
    b3 = jnp.concatenate(
      [
        conv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
        conv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3),
      ],
      axis=-1,
    )
    bd = conv(448, 1, name="branch3x3dbl_1")(x)
    bd = conv(384, 3, padding=1, name="branch3x3dbl_2")(bd)
    bd = jnp.concatenate(
      [
        conv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
        conv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd),
      ],
      axis=-1,
    )
    if self.pool == "avg":
      pooled = _avg_pool_3x3(x)
    else:
      # FID patch: the TF graph max-pools here (padding with -inf, like PyTorch).
      pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
    bp = conv(192, 1, name="branch_pool")(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInceptionV3(nn.Module):
  """Inception-v3 of TF FID up to the pool3 features: ``[B, H, W, 3]`` in [-1, 1] -> [B, 2048]."""

  precision: Any = jax.lax.Precision.HIGHEST

  @nn.compact
  def __call__(self, x):
    p = self.precision
    x = BasicConv2d(32, 3, strides=2, precision=p, name="Conv2d_1a_3x3")(x)
    x = BasicConv2d(32, 3, precision=p, name="Conv2d_2a_3x3")(x)
    x = BasicConv2d(64, 3, padding=1, precision=p, name="Conv2d_2b_3x3")(x)
    x = _max_pool_3x3_stride2(x)
    x = BasicConv2d(80, 1, precision=p, name="Conv2d_3b_1x1")(x)
    x = BasicConv2d(192, 3, precision=p, name="Conv2d_4a_3x3")(x)
    x = _max_pool_3x3_stride2(x)
    x = InceptionA(32, precision=p, name="Mixed_5b")(x)
    x = InceptionA(64, precision=p, name="Mixed_5c")(x)
    x = InceptionA(64, precision=p, name="Mixed_5d")(x)
    x = InceptionB(precision=p, name="Mixed_6a")(x)
    x = InceptionC(128, precision=p, name="Mixed_6b")(x)
    x = InceptionC(160, precision=p, name="Mixed_6c")(x)
    x = InceptionC(160, precision=p, name="Mixed_6d")(x)
    x = InceptionC(192, precision=p, name="Mixed_6e")(x)
    x = InceptionD(precision=p, name="Mixed_7a")(x)
    x = InceptionE("avg", precision=p, name="Mixed_7b")(x)
    x = InceptionE("max", precision=p, name="Mixed_7c")(x)
    return jnp.mean(x, axis=(1, 2))


def preprocess(images_model_space, size: int = INPUT_SIZE):
  """Model-space images ``[B, H, W, 1 or 3]`` in [-1, 1] -> Inception input ``[B, size, size, 3]``."""
  x = jnp.asarray(images_model_space, jnp.float32)
  if x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise ValueError(f"images must have shape [B, H, W, 1 or 3], got {x.shape}.")
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  if x.shape[1:3] != (size, size):
    # Half-pixel centres, no anti-aliasing: F.interpolate(bilinear, align_corners=False).
    x = jax.image.resize(x, (x.shape[0], size, size, 3), method="bilinear", antialias=False)
  return x


# ------------------------------------------------------------- weights ---


def _flatten(tree, prefix=()):
  for key, value in tree.items():
    if isinstance(value, dict) or hasattr(value, "items"):
      yield from _flatten(value, (*prefix, key))
    else:
      yield (*prefix, key), value


# Flax (collection, leaf name) <-> PyTorch state-dict suffix of a BasicConv2d.
_LEAF_TO_TORCH = {
  ("params", "conv", "kernel"): "conv.weight",
  ("params", "bn", "scale"): "bn.weight",
  ("params", "bn", "bias"): "bn.bias",
  ("batch_stats", "bn", "mean"): "bn.running_mean",
  ("batch_stats", "bn", "var"): "bn.running_var",
}


def _abstract_variables(model: FIDInceptionV3 | None = None):
  model = model or FIDInceptionV3()
  return jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 75, 75, 3)))


def expected_torch_shapes() -> dict[str, tuple[int, ...]]:
  """PyTorch state-dict name -> shape of every tensor the pool3 network needs."""
  out = {}
  for collection, tree in _abstract_variables().items():
    for path, leaf in _flatten(tree):
      *modules, layer, name = path
      torch_name = ".".join([*modules, _LEAF_TO_TORCH[(collection, layer, name)]])
      shape = leaf.shape
      out[torch_name] = (shape[3], shape[2], shape[0], shape[1]) if len(shape) == 4 else shape
  return out


def variables_from_torch_arrays(arrays: dict[str, np.ndarray]) -> dict:
  """Flax variables {'params', 'batch_stats'} from state-dict-named arrays (OIHW kernels).

  Raises ValueError naming missing tensors and shape mismatches.
  """
  expected = expected_torch_shapes()
  missing = sorted(set(expected) - set(arrays))
  wrong = [
    f"{k}: {tuple(arrays[k].shape)} != {v}"
    for k, v in expected.items()
    if k in arrays and tuple(arrays[k].shape) != v
  ]
  if missing or wrong:
    raise ValueError(
      f"Inception weights do not fit the FID network: {len(missing)} missing "
      f"({', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}); "
      f"{len(wrong)} with wrong shapes ({'; '.join(wrong[:5])}). Convert {FID_WEIGHTS_FILE} "
      "with `python -m solar_jax.models.inception --convert ...`."
    )
  torch_to_leaf = {v: k for k, v in _LEAF_TO_TORCH.items()}
  variables: dict = {"params": {}, "batch_stats": {}}
  for name in expected:
    parts = name.split(".")
    modules, suffix = parts[:-2], ".".join(parts[-2:])
    collection, layer, leaf = torch_to_leaf[suffix]
    value = np.asarray(arrays[name], np.float32)
    if value.ndim == 4:  # OIHW -> HWIO
      value = value.transpose(2, 3, 1, 0)
    node = variables[collection]
    for m in (*modules, layer):
      node = node.setdefault(m, {})
    node[leaf] = jnp.asarray(value)
  return variables


def load_variables(path) -> dict:
  """Loads converted FID Inception weights (.npz); a clear error if the file is absent."""
  if not path:
    raise errors.MissingInputError(
      "config.evaluation.inception_weights is empty, but the 'inception' extractor needs the "
      f"FID Inception weights. Download {FID_WEIGHTS_SOURCE}, convert it with `python -m "
      "solar_jax.models.inception --convert pt_inception-2015-12-05-6726825d.pth --out "
      "inception_fid.npz` and set --config.evaluation.inception_weights=inception_fid.npz "
      "(or drop 'inception' from config.evaluation.extractors)."
    )
  path = epath.Path(path)
  if not path.exists():
    raise errors.MissingInputError(
      f"config.evaluation.inception_weights={str(path)!r} does not exist. It must be the .npz "
      f"converted from {FID_WEIGHTS_SOURCE} with `python -m solar_jax.models.inception "
      "--convert <that .pth> --out <this .npz>`. Random weights are never substituted."
    )
  with path.open("rb") as f:
    with np.load(f) as npz:
      arrays = {k: npz[k] for k in npz.files}
  return variables_from_torch_arrays(arrays)


def random_variables(seed: int = 0) -> dict:
  """Random weights with unit-variance batch statistics. FOR TIMING ONLY: not FID features."""
  variables = FIDInceptionV3().init(jax.random.key(seed), jnp.zeros((1, 75, 75, 3)))
  return jax.tree.map(jnp.asarray, variables)


def convert_state_dict(state_dict: dict) -> dict[str, np.ndarray]:
  """Keeps the tensors the pool3 network needs, as float32 NumPy (PyTorch names/layouts)."""
  expected = expected_torch_shapes()
  arrays = {}
  for name in expected:
    if name in state_dict:
      value = state_dict[name]
      value = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
      arrays[name] = value.astype(np.float32)
  variables_from_torch_arrays(arrays)  # Validates names and shapes.
  return arrays


def _check_hash_prefix(path: epath.Path) -> None:
  """torch.hub names files <name>-<sha256 prefix>.pth; check the prefix when present."""
  match = re.search(r"-([0-9a-f]{8,})\.pth$", path.name)
  if not match:
    return
  digest = hashlib.sha256(path.read_bytes()).hexdigest()
  if not digest.startswith(match.group(1)):
    raise ValueError(
      f"{path}: SHA-256 {digest[:16]}... does not start with {match.group(1)} (from the file "
      "name); the download is corrupt or not the pytorch-fid weights."
    )


def convert_checkpoint(pth_path, out_path) -> dict[str, np.ndarray]:
  """Converts a pytorch-fid ``.pth`` state dict to the ``.npz`` this module loads."""
  try:
    import torch
  except ImportError:
    raise ImportError(
      "Converting the .pth weights needs PyTorch once: `pip install torch==2.13.0` (CPU build)."
    ) from None
  pth_path = epath.Path(pth_path)
  _check_hash_prefix(pth_path)
  with pth_path.open("rb") as f:
    state_dict = torch.load(f, map_location="cpu", weights_only=True)
  arrays = convert_state_dict(state_dict)
  out_path = epath.Path(out_path)
  out_path.parent.mkdir(parents=True, exist_ok=True)
  with out_path.open("wb") as f:
    np.savez(f, **arrays)
  return arrays


# ----------------------------------------------------------- extractor ---


class InceptionFeatureExtractor:
  """Jitted, batched pool3 features of model-space images: ``[N, H, W, C]`` -> ``[N, 2048]``.

  Args:
    variables: Flax variables from :func:`load_variables`.
    batch_size: images per jitted call (the last batch is padded, so one
      compilation serves every batch); rounded up to a multiple of the
      batch shards.
    sharding: optional sharding of a batch [B, ...] (e.g. ``parallel.data_sharding``);
      the weights are replicated over its devices. Every process must pass the
      same images.
    precision: convolution precision ('highest' keeps float32 on TPU/GPU).
  """

  def __init__(
    self,
    variables: dict,
    batch_size: int = 50,
    sharding: jax.sharding.NamedSharding | None = None,
    precision: str = "highest",
    input_size: int = INPUT_SIZE,
  ):
    model = FIDInceptionV3(precision=jax.lax.Precision(precision.lower()))

    def features(v, images):
      return model.apply(v, preprocess(images, input_size))

    self._sharding = sharding
    if sharding is None:
      self._fn = jax.jit(features)
      self.batch_size = int(batch_size)
      self._variables = variables
    else:
      devices = len(sharding.device_set)
      shards = devices // sharding.shard_shape((devices,))[0]
      self.batch_size = int(-(-batch_size // shards) * shards)
      replicated = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
      self._variables = jax.device_put(variables, replicated)
      self._fn = jax.jit(
        features, in_shardings=(replicated, self._sharding), out_shardings=replicated
      )

  def __call__(self, images_model_space: np.ndarray, progress: bool = False) -> np.ndarray:
    return batched_features(
      lambda b: self._fn(self._variables, self._put(b)),
      images_model_space,
      self.batch_size,
      progress=progress,
      desc="inception features",
    )

  def _put(self, batch):
    return batch if self._sharding is None else jax.device_put(batch, self._sharding)


def batched_features(
  fn: Callable[[np.ndarray], Any],
  images: np.ndarray,
  batch_size: int,
  *,
  progress: bool = False,
  desc: str = "features",
) -> np.ndarray:
  """Applies ``fn`` to fixed-size batches (last one zero-padded) -> float32 ``[N, D]``."""
  images = np.asarray(images, np.float32)
  n = len(images)
  out: list[np.ndarray] = []
  starts = range(0, n, batch_size)
  for start in tqdm.tqdm(starts, desc=desc, unit="batch", disable=not progress):
    batch = images[start : start + batch_size]
    pad = batch_size - len(batch)
    if pad:
      batch = np.concatenate([batch, np.zeros((pad, *batch.shape[1:]), batch.dtype)])
    feats = np.asarray(jax.device_get(fn(batch)), np.float32)
    out.append(feats[: batch_size - pad])
  if not out:
    raise ValueError("no images to extract features from.")
  return np.concatenate(out)


def make_extractor(
  weights_path, batch_size: int = 50, sharding=None, precision: str = "highest"
) -> InceptionFeatureExtractor:
  """The FID extractor for ``config.evaluation.inception_weights`` (errors if absent)."""
  return InceptionFeatureExtractor(load_variables(weights_path), batch_size, sharding, precision)


def _main(argv: Sequence[str]) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m solar_jax.models.inception",
    description=f"Convert {FID_WEIGHTS_SOURCE} to the .npz that solar_jax loads.",
  )
  parser.add_argument("--convert", required=True, help=f"path to {FID_WEIGHTS_FILE}")
  parser.add_argument("--out", required=True, help="output .npz path")
  args = parser.parse_args(argv)
  arrays = convert_checkpoint(args.convert, args.out)
  print(f"wrote {args.out}: {len(arrays)} tensors, {sum(a.size for a in arrays.values()):,} values")
  return 0


if __name__ == "__main__":
  sys.exit(_main(sys.argv[1:]))
