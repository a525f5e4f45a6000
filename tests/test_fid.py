"""FID and KID against closed forms and sampling theory."""

from __future__ import annotations

import numpy as np
import pytest

from solar_jax.metrics import fid


def _random_spd(rng, d, scale=1.0):
  a = rng.normal(size=(d, d)) * scale
  return a @ a.T / d + 0.1 * np.eye(d)


@pytest.mark.parametrize("method", fid.METHODS)
def test_closed_form_for_diagonal_covariances(method):
  # For commuting covariances d² = |mu1-mu2|² + Σ (sqrt(s1) - sqrt(s2))².
  rng = np.random.default_rng(0)
  d = 16
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
  s1, s2 = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
  got = fid.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2), method=method)
  assert got == pytest.approx(expected, rel=1e-10)


def test_one_dimensional_case_is_the_gaussian_w2():
  # W2² between N(m1, v1) and N(m2, v2) in 1-D is (m1-m2)² + (sqrt v1 - sqrt v2)².
  got = fid.frechet_distance(
    np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[1.0]])
  )
  assert got == pytest.approx(9.0 + 1.0)


def test_sqrtm_and_eigh_agree_on_general_covariances():
  rng = np.random.default_rng(1)
  d = 32
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
  s1, s2 = _random_spd(rng, d), _random_spd(rng, d, scale=2.0)
  a = fid.frechet_distance(mu1, s1, mu2, s2, method="sqrtm")
  b = fid.frechet_distance(mu1, s1, mu2, s2, method="eigh")
  assert a == pytest.approx(b, rel=1e-8)
  # Symmetric, and zero for identical Gaussians.
  assert fid.frechet_distance(mu2, s2, mu1, s1) == pytest.approx(a, rel=1e-8)
  assert abs(fid.frechet_distance(mu1, s1, mu1, s1)) < 1e-8


def test_rotated_gaussians_use_the_full_matrix_root():
  # Same spectrum, rotated: the means match, so the distance is pure covariance
  # mismatch, 2 Tr(S) - 2 Tr((S1 S2)^1/2) > 0 unless the rotation is trivial.
  s = np.diag([4.0, 1.0])
  theta = np.pi / 2
  rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
  s_rot = rot @ s @ rot.T  # diag(1, 4)
  expected = (2.0 - 1.0) ** 2 + (1.0 - 2.0) ** 2
  assert fid.frechet_distance(np.zeros(2), s, np.zeros(2), s_rot) == pytest.approx(expected)


def test_fid_of_gaussian_samples_matches_the_parameters():
  rng = np.random.default_rng(2)
  d, n = 8, 200_000
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d) * 0.5
  s1, s2 = _random_spd(rng, d), _random_spd(rng, d, scale=1.5)
  x = rng.multivariate_normal(mu1, s1, size=n)
  y = rng.multivariate_normal(mu2, s2, size=n)
  expected = fid.frechet_distance(mu1, s1, mu2, s2, method="eigh")
  got = fid.fid_from_features(x, y)
  # Sampling error of the estimate is O(sqrt(d/n)) relative: ~1% here.
  assert got == pytest.approx(expected, rel=0.03)


def test_fid_of_a_set_with_itself_is_zero():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(500, 20))
  assert abs(fid.fid_from_features(x, x)) < 1e-6


def test_feature_statistics_reject_bad_input():
  with pytest.raises(ValueError, match="N >= 2"):
    fid.feature_statistics(np.zeros((1, 4)))
  with pytest.raises(ValueError, match="NaN"):
    fid.feature_statistics(np.array([[0.0, np.nan], [1.0, 2.0]]))


def test_significant_imaginary_part_raises():
  # A covariance "product" that is not PSD-similar has a complex square root.
  s1 = np.array([[1.0, 0.0], [0.0, -1.0]])
  s2 = np.eye(2)
  with pytest.raises(ValueError, match="imaginary component"):
    fid.frechet_distance(np.zeros(2), s1, np.zeros(2), s2, method="sqrtm")


def test_mmd_estimator_is_unbiased():
  # Over many independent pairs of small samples of one distribution the mean
  # estimate is 0 within its standard error, where the biased V-statistic
  # (diagonal kept) is clearly positive: the test can tell the two apart.
  rng = np.random.default_rng(4)
  m, d, reps = 10, 4, 2000
  unbiased, biased = np.empty(reps), np.empty(reps)
  for i in range(reps):
    x, y = rng.normal(size=(m, d)), rng.normal(size=(m, d))
    unbiased[i] = fid.mmd2_unbiased(x, y)
    k_xx, k_yy = fid.polynomial_kernel(x, x), fid.polynomial_kernel(y, y)
    biased[i] = k_xx.mean() + k_yy.mean() - 2 * fid.polynomial_kernel(x, y).mean()
  stderr = unbiased.std() / np.sqrt(reps)
  assert abs(unbiased.mean()) < 4 * stderr
  assert biased.mean() > 10 * biased.std() / np.sqrt(reps)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_a_shift():
  rng = np.random.default_rng(5)
  x, y = rng.normal(size=(300, 16)), rng.normal(size=(300, 16))
  same = fid.kernel_inception_distance(x, y, num_bootstrap=100, seed=0)
  shifted = fid.kernel_inception_distance(x, y + 0.5, num_bootstrap=100, seed=0)
  assert same["ci_low"] <= 0.0 <= same["ci_high"]
  assert shifted["ci_low"] > same["ci_high"]
  # The point estimate is the whole-set unbiased MMD², not a subset average.
  assert shifted["mean"] == pytest.approx(fid.mmd2_unbiased(x, y + 0.5), rel=1e-12)


def test_mmd_matches_a_direct_double_sum():
  rng = np.random.default_rng(5)
  x, y = rng.normal(size=(7, 3)), rng.normal(size=(9, 3)) + 0.3

  def k(a, b):
    return (a @ b / 3 + 1.0) ** 3

  xx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
  yy = sum(k(y[i], y[j]) for i in range(9) for j in range(9) if i != j) / (9 * 8)
  xy = sum(k(x[i], y[j]) for i in range(7) for j in range(9)) / (7 * 9)
  assert fid.mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kid_interval_is_wider_for_smaller_n_and_covers_the_truth():
  # The interval comes from resampling images, so it must shrink roughly as
  # 1/sqrt(N); and over independent draws it must cover the large-sample value.
  rng = np.random.default_rng(6)
  d, shift = 8, 0.3
  truth = fid.mmd2_unbiased(rng.normal(size=(3000, d)), rng.normal(size=(3000, d)) + shift)
  widths = {}
  for n in (25, 100, 400):
    x, y = rng.normal(size=(n, d)), rng.normal(size=(n, d)) + shift
    out = fid.kernel_inception_distance(x, y, num_bootstrap=200, seed=n)
    assert out["n_real"] == out["n_fake"] == n and out["num_bootstrap"] == 200
    widths[n] = out["ci_high"] - out["ci_low"]
  assert widths[25] > 1.5 * widths[100] > 1.5 * 1.5 * widths[400]
  covered = 0
  for seed in range(40):
    x, y = rng.normal(size=(60, d)), rng.normal(size=(60, d)) + shift
    out = fid.kernel_inception_distance(x, y, num_bootstrap=100, seed=seed)
    covered += out["ci_low"] <= truth <= out["ci_high"]
  assert covered >= 33  # 95 % nominal; >= 33 of 40 fails with probability < 2 %.


def test_fid_of_a_set_with_itself_is_zero_and_grows_as_the_shift_squared():
  # Shifting every feature by delta moves the mean by delta·1 and leaves the
  # covariance unchanged: FID = D delta² exactly.
  rng = np.random.default_rng(7)
  x = rng.normal(size=(300, 12))
  assert abs(fid.fid_from_features(x, x)) < 1e-6
  values = [fid.fid_from_features(x, x + delta) for delta in (0.1, 0.2, 0.4, 0.8)]
  for delta, value in zip((0.1, 0.2, 0.4, 0.8), values):
    assert value == pytest.approx(12 * delta**2, rel=1e-6, abs=1e-6)
  assert values == sorted(values)


def test_fid_floor_of_two_gaussian_samples_matches_the_analytic_bias():
  # Two samples of n from N(0, I_D): E|mu1-mu2|² = 2D/n, and to second order the
  # Bures term is |S1-S2|_F²/4 with E|S-I|_F² = D(D+1)/(n-1) for a sample
  # covariance (ddof=1), so E FID = 2D/n + D(D+1)/(2(n-1)).
  rng = np.random.default_rng(8)
  d, n, reps = 8, 400, 60
  values = [
    fid.fid_from_features(rng.normal(size=(n, d)), rng.normal(size=(n, d))) for _ in range(reps)
  ]
  expected = 2 * d / n + d * (d + 1) / (2 * (n - 1))
  stderr = np.std(values) / np.sqrt(reps)
  assert abs(np.mean(values) - expected) < 4 * stderr
  assert abs(np.mean(values) - expected) < 0.05 * expected
