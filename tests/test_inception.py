"""The Flax FID Inception against an independent PyTorch build of the same network.

The reference below is written from torchvision's Inception-v3 blocks with
pytorch-fid's FID patches (pytorch-fid itself needs torchvision, which is not
installable beside the CPU torch here). Both networks get the same random
weights through the real converter (.pth -> .npz) and must give the same
2048-d pool3 features. Skipped when PyTorch is absent; tests/test_inception_flax.py
holds the checks that need no PyTorch.
"""

from __future__ import annotations

import numpy as np
import pytest

from solar_jax.models import inception

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


# ------------------------------------------------ PyTorch reference net ---


class _Conv(nn.Module):
  def __init__(self, cin, cout, **kwargs):
    super().__init__()
    self.conv = nn.Conv2d(cin, cout, bias=False, **kwargs)
    self.bn = nn.BatchNorm2d(cout, eps=0.001)

  def forward(self, x):
    return F.relu(self.bn(self.conv(x)))


def _avg(x):
  return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _A(nn.Module):
  def __init__(self, cin, pool_features):
    super().__init__()
    self.branch1x1 = _Conv(cin, 64, kernel_size=1)
    self.branch5x5_1 = _Conv(cin, 48, kernel_size=1)
    self.branch5x5_2 = _Conv(48, 64, kernel_size=5, padding=2)
    self.branch3x3dbl_1 = _Conv(cin, 64, kernel_size=1)
    self.branch3x3dbl_2 = _Conv(64, 96, kernel_size=3, padding=1)
    self.branch3x3dbl_3 = _Conv(96, 96, kernel_size=3, padding=1)
    self.branch_pool = _Conv(cin, pool_features, kernel_size=1)

  def forward(self, x):
    b5 = self.branch5x5_2(self.branch5x5_1(x))
    b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
    return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg(x))], 1)


class _B(nn.Module):
  def __init__(self, cin):
    super().__init__()
    self.branch3x3 = _Conv(cin, 384, kernel_size=3, stride=2)
    self.branch3x3dbl_1 = _Conv(cin, 64, kernel_size=1)
    self.branch3x3dbl_2 = _Conv(64, 96, kernel_size=3, padding=1)
    self.branch3x3dbl_3 = _Conv(96, 96, kernel_size=3, stride=2)

  def forward(self, x):
    bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
    return torch.cat([self.branch3x3(x), bd, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class _C(nn.Module):
  def __init__(self, cin, c7):
    super().__init__()
    self.branch1x1 = _Conv(cin, 192, kernel_size=1)
    self.branch7x7_1 = _Conv(cin, c7, kernel_size=1)
    self.branch7x7_2 = _Conv(c7, c7, kernel_size=(1, 7), padding=(0, 3))
    self.branch7x7_3 = _Conv(c7, 192, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7dbl_1 = _Conv(cin, c7, kernel_size=1)
    self.branch7x7dbl_2 = _Conv(c7, c7, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7dbl_3 = _Conv(c7, c7, kernel_size=(1, 7), padding=(0, 3))
    self.branch7x7dbl_4 = _Conv(c7, c7, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7dbl_5 = _Conv(c7, 192, kernel_size=(1, 7), padding=(0, 3))
    self.branch_pool = _Conv(cin, 192, kernel_size=1)

  def forward(self, x):
    b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
    bd = self.branch7x7dbl_1(x)
    for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4):
      bd = layer(bd)
    bd = self.branch7x7dbl_5(bd)
    return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_avg(x))], 1)


class _D(nn.Module):
  def __init__(self, cin):
    super().__init__()
    self.branch3x3_1 = _Conv(cin, 192, kernel_size=1)
    self.branch3x3_2 = _Conv(192, 320, kernel_size=3, stride=2)
    self.branch7x7x3_1 = _Conv(cin, 192, kernel_size=1)
    self.branch7x7x3_2 = _Conv(192, 192, kernel_size=(1, 7), padding=(0, 3))
    self.branch7x7x3_3 = _Conv(192, 192, kernel_size=(7, 1), padding=(3, 0))
    self.branch7x7x3_4 = _Conv(192, 192, kernel_size=3, stride=2)

  def forward(self, x):
    b3 = self.branch3x3_2(self.branch3x3_1(x))
    b7 = self.branch7x7x3_1(x)
    for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
      b7 = layer(b7)
    return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class _E(nn.Module):
  def __init__(self, cin, use_max_pool):
    super().__init__()
    self.use_max_pool = use_max_pool
    self.branch1x1 = _Conv(cin, 320, kernel_size=1)
    self.branch3x3_1 = _Conv(cin, 384, kernel_size=1)
    self.branch3x3_2a = _Conv(384, 384, kernel_size=(1, 3), padding=(0, 1))
    self.branch3x3_2b = _Conv(384, 384, kernel_size=(3, 1), padding=(1, 0))
    self.branch3x3dbl_1 = _Conv(cin, 448, kernel_size=1)
    self.branch3x3dbl_2 = _Conv(448, 384, kernel_size=3, padding=1)
    self.branch3x3dbl_3a = _Conv(384, 384, kernel_size=(1, 3), padding=(0, 1))
    self.branch3x3dbl_3b = _Conv(384, 384, kernel_size=(3, 1), padding=(1, 0))
    self.branch_pool = _Conv(cin, 192, kernel_size=1)

  def forward(self, x):
    b3 = self.branch3x3_1(x)
    b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
    bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
    bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
    if self.use_max_pool:
      pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
    else:
      pooled = _avg(x)
    return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


class _ReferenceFIDInception(nn.Module):
  """pytorch-fid's InceptionV3(output_blocks=[3]) forward, on [0, 1] RGB input."""

  def __init__(self):
    super().__init__()
    self.Conv2d_1a_3x3 = _Conv(3, 32, kernel_size=3, stride=2)
    self.Conv2d_2a_3x3 = _Conv(32, 32, kernel_size=3)
    self.Conv2d_2b_3x3 = _Conv(32, 64, kernel_size=3, padding=1)
    self.Conv2d_3b_1x1 = _Conv(64, 80, kernel_size=1)
    self.Conv2d_4a_3x3 = _Conv(80, 192, kernel_size=3)
    self.Mixed_5b = _A(192, 32)
    self.Mixed_5c = _A(256, 64)
    self.Mixed_5d = _A(288, 64)
    self.Mixed_6a = _B(288)
    self.Mixed_6b = _C(768, 128)
    self.Mixed_6c = _C(768, 160)
    self.Mixed_6d = _C(768, 160)
    self.Mixed_6e = _C(768, 192)
    self.Mixed_7a = _D(768)
    self.Mixed_7b = _E(1280, use_max_pool=False)
    self.Mixed_7c = _E(2048, use_max_pool=True)

  def forward(self, x01):
    x = F.interpolate(x01, size=(299, 299), mode="bilinear", align_corners=False)
    x = 2 * x - 1
    x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
    x = F.max_pool2d(x, kernel_size=3, stride=2)
    x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
    x = F.max_pool2d(x, kernel_size=3, stride=2)
    for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
      x = getattr(self, f"Mixed_{name}")(x)
    return F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)


def _randomise(model: nn.Module, seed: int) -> None:
  """He-scaled convolutions and non-trivial batch-norm statistics (activations stay O(1))."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for module in model.modules():
      if isinstance(module, nn.Conv2d):
        fan_in = module.weight[0].numel()
        module.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=gen)
      elif isinstance(module, nn.BatchNorm2d):
        c = module.num_features
        module.weight.copy_(0.5 + torch.rand(c, generator=gen))
        module.bias.copy_(0.1 * torch.randn(c, generator=gen))
        module.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
        module.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen))
  model.eval()


@pytest.fixture(scope="module")
def reference_and_weights(tmp_path_factory):
  """A random reference net and the .npz the real converter makes of its .pth."""
  torch.manual_seed(0)
  model = _ReferenceFIDInception()
  _randomise(model, seed=0)
  state = model.state_dict()
  # Like the real pytorch-fid file: extra tensors that pool3 does not use.
  state["fc.weight"] = torch.zeros(1008, 2048)
  state["fc.bias"] = torch.zeros(1008)
  directory = tmp_path_factory.mktemp("inception")
  pth, npz = directory / "random_weights.pth", directory / "random_weights.npz"
  torch.save(state, pth)
  arrays = inception.convert_checkpoint(pth, npz)
  return model, npz, arrays


def _torch_features(model, images_model_space: np.ndarray) -> np.ndarray:
  x01 = (torch.from_numpy(images_model_space).permute(0, 3, 1, 2) + 1.0) / 2.0
  if x01.shape[1] == 1:
    x01 = x01.repeat(1, 3, 1, 1)
  with torch.no_grad():
    return model(x01).numpy()


def test_converter_keeps_exactly_the_pool3_tensors(reference_and_weights):
  _, npz, arrays = reference_and_weights
  assert set(arrays) == set(inception.expected_torch_shapes())
  assert "fc.weight" not in arrays
  assert not any(k.endswith("num_batches_tracked") for k in arrays)
  with np.load(npz) as f:
    assert set(f.files) == set(arrays)


def test_flax_features_match_pytorch_reference(reference_and_weights):
  model, npz, _ = reference_and_weights
  rng = np.random.default_rng(0)
  # Grey 64x64 model-space images (upsampled to 299 in both networks).
  images = rng.uniform(-1.0, 1.0, (2, 64, 64, 1)).astype(np.float32)
  expected = _torch_features(model, images)
  extractor = inception.make_extractor(npz, batch_size=2)
  got = extractor(images)
  assert got.shape == (2, inception.FEATURE_DIM)
  assert np.abs(expected).max() > 1e-2  # The random net does not collapse to zeros.
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
  # Distinct inputs give distinct features (the comparison is not trivial).
  assert np.abs(expected[0] - expected[1]).max() > 1e-3 * np.abs(expected).max()


def test_downsampling_resize_matches_pytorch_interpolate():
  rng = np.random.default_rng(1)
  images = rng.uniform(-1.0, 1.0, (1, 512, 384, 3)).astype(np.float32)
  got = np.asarray(inception.preprocess(images))
  x = torch.from_numpy(images).permute(0, 3, 1, 2)
  expected = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
  np.testing.assert_allclose(got, expected.permute(0, 2, 3, 1).numpy(), atol=1e-5)


def test_converter_checks_the_hash_in_the_file_name(tmp_path):
  bad = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
  torch.save({"x": torch.zeros(1)}, bad)
  with pytest.raises(ValueError, match="SHA-256"):
    inception.convert_checkpoint(bad, tmp_path / "out.npz")
