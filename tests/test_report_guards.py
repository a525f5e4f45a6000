"""report.md's guard rails and captions, the noise check and the spectra's arcsec axis."""

import json
import pathlib
import re
import warnings

import numpy as np
import pytest

from solar_jax import report
from solar_jax.configs import tiny
from solar_jax.data import aia, scaling
from solar_jax.evaluation import captions, plots
from solar_jax.metrics import physics, sanity


@pytest.fixture(scope="module")
def aia_frame():
  """sunpy's real AIA 171 Å level-1 frame on the stored grid (64², disk at 0.4 S)."""
  import sunpy.data.test

  path = sunpy.data.test.get_test_filepath("aia_171_level1.fits")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return {s: aia.read_frame(path, image_size=s).image for s in (32, 64, 128)}


def test_noise_samples_fail_the_sanity_check_and_real_disks_pass(aia_frame):
  rng = np.random.default_rng(0)
  frame = aia_frame[64]
  real = np.stack([np.roll(frame, (k, -k), (0, 1)) for k in range(4)])
  # Real-like: the same Sun shifted, 3x brighter, with 0.1 dex pixel noise, through the
  # model's clip and back; and the frame at other resolutions (checked at their own size).
  real_like = np.stack(
    [
      np.roll(frame, (2, 3), (0, 1)),
      3.0 * frame,
      frame * 10 ** rng.normal(0, 0.1, frame.shape),
      scaling.inverse(scaling.forward(frame, 1.0, 3000.0), 1.0, 3000.0),
    ]
  )
  noise = np.stack(
    [
      10 ** rng.uniform(0, np.log10(3000), frame.shape),  # Log-uniform in the clip range.
      scaling.inverse(rng.normal(size=frame.shape).astype(np.float32), 1.0, 3000.0),
      np.full(frame.shape, 200.0) + rng.normal(0, 20, frame.shape),  # Flat, noisy.
    ]
  )
  out = sanity.noise_check(real, np.concatenate([real_like, noise]))
  assert out["noise_like"] == [4, 5, 6] and out["num_noise_like"] == 3
  assert out["real_median"]["limb_contrast_dex"] > 0.4  # The corona falls off the limb.
  assert out["real_median"]["spectral_slope"] < -2.0  # A red spectrum.
  for size in (32, 128):
    frames = aia_frame[size][None]
    noisy = 10 ** rng.uniform(0, 3.4, (2, size, size))
    assert sanity.noise_check(frames, np.concatenate([frames, noisy]))["noise_like"] == [1, 2]
  # Noise as the reference is no reference: said, not judged.
  assert "not_estimable" in sanity.noise_check(noise, real)


@pytest.mark.parametrize("size", [64, 128, 256])
def test_disk_spectrum_peaks_at_the_sinusoid_frequency_in_arcsec(size):
  """A sinusoid of a 150 arcsec period peaks at 1/150 arcsec⁻¹ whatever the image size."""
  period = 150.0
  scale = physics.arcsec_per_pixel(size)  # RSUN_OBS / (0.4 S)
  assert scale == pytest.approx(physics.RSUN_1AU_ARCSEC / (0.4 * size))
  y, x = (np.mgrid[0:size, 0:size] - (size - 1) / 2) * scale
  field = np.cos(2 * np.pi * (0.6 * x + 0.8 * y) / period)  # |f| = 1 / period.
  spec = physics.disk_power_spectrum(field[None])
  peak = spec["freq_arcsec"][np.argmax(spec["power"])]
  step = spec["freq_arcsec"][0]  # One ring of the window: the resolution.
  assert abs(peak - 1 / period) <= 0.5 * step + 1e-12
  assert "inscribed in the disk" in spec["window"] and "Hann" in spec["window"]


def test_goes_and_time_titles():
  assert plots.goes_text(3.14e-6) == "GOES C3.1" and plots.goes_text(2e-4) == "GOES X2.0"
  assert plots.goes_text(float("nan")) == "" and plots.goes_text(None) == ""
  real = {"time": np.array([b"2011-02-15T01:48:00.340"]), "goes_flux": np.array([2.2e-5])}
  assert plots.real_title(real, 0, "M") == "real M\n2011-02-15 01:48 UT · GOES M2.2"


def _classifier_metrics(names=("A", "B", "C", "M", "X")):
  """A tiny run's classifier: every regime predicts B, one M and one X test event."""
  cm = [[0, 3, 0, 0, 0], [0, 9, 0, 0, 0], [0, 4, 0, 0, 0], [0, 2, 0, 0, 0], [0, 1, 0, 0, 0]]
  zero = {"mean": 0.0, "ci95": [0.0, 0.0], "includes_zero": True, "valid_fraction": 1.0}
  score = {"mean": 0.0, "ci95": [0.0, 0.0], "valid_fraction": 1.0}
  regimes = {}
  for regime in ("real", "oversample", "real_synthetic"):
    regimes[regime] = {
      "scores": {"macro_f1": dict(score), "tss_ge_m": dict(score)},
      "delta_vs_oversample": {"macro_f1": zero, "tss_ge_m": zero},
      "delta_vs_real": {"macro_f1": zero, "tss_ge_m": zero},
      "confusion_summed": cm,
      "mean_std": {
        **{k: {"mean": 0.0, "std": 0.0} for k in ("macro_f1", "tss", "hss", "balanced_accuracy")},
        "thresholds": {t: {"tss": {"mean": 0.25, "std": 0.0}} for t in (">=M", ">=C")},
      },
    }
  regimes["synthetic_only"] = {"skipped": "no synthetic pool drawn"}
  events = {"A": 3, "B": 5, "C": 2, "M": 1, "X": 0}
  return {
    "task": "multiclass",
    "class_names": list(names),
    "seeds": [0],
    "label": "xrs_class",
    "selection_metric": "tss",
    "bootstrap": {"num_samples": 100},
    "support": {
      "events": 11,
      "frames": 19,
      "per_class": {n: {"events": e, "frames": e + 1} for n, e in events.items()},
    },
    "regimes": regimes,
    "comparisons": {
      "rows": [
        {"regime": "real_synthetic", "baseline": "oversample", "score": "macro_f1"}
        | {"mean": 0.0, "ci95": [0.0, 0.0], "p_value": 1.0, "p_holm": 1.0}
      ]
    },
  }


def _eval_metrics(noise_like: int):
  return {
    "skipped_extractors": {"classifier": "no classifier checkpoint in classifier/runs"},
    "physics": {
      "noise_check": {
        "num_images": 10,
        "num_noise_like": noise_like,
        "share_noise_like": noise_like / 10,
        "noise_like": list(range(noise_like)),
        "threshold": 0.5,
        "note": sanity.NOTE,
        "real_median": {"limb_contrast_dex": 0.6, "spectral_slope": -2.7},
        "fake_median": {"limb_contrast_dex": 0.02, "spectral_slope": 0.1},
      }
    },
  }


def _report(tmp_path, classifier=None, evaluation=None):
  config = tiny.get_config()
  config.provenance.update(simulated=True, version="sdo_aia171/64")
  for sub, metrics in (("classifier", classifier), ("eval", evaluation)):
    if metrics is not None:
      (tmp_path / sub).mkdir(exist_ok=True)
      (tmp_path / sub / "metrics.json").write_text(json.dumps(metrics))
  text = report.render_report(config, tmp_path)
  rails = text[text.index("## Guard rails") :]
  return text, rails[: rails.index("\n## ", 5) if "\n## " in rails[5:] else None]


def test_degenerate_classifier_and_noise_samples_are_flagged_at_the_top(tmp_path):
  text, rails = _report(tmp_path, _classifier_metrics(), _eval_metrics(noise_like=8))
  assert text.index("## Guard rails") < text.index("## Flare classifier")
  assert "**Degenerate classifier**: 3 of 3 regimes (real, oversample, real_synthetic) " in rails
  assert "predict class B for every test frame" in rails
  assert "**Identical regimes**: real, oversample, real_synthetic" in rails
  assert "class M has 1 test event, class X has 0 test events" in rails
  assert "**TSS ≥M not estimable: 1 test event M+X**" in rails
  assert "Classifier regime `synthetic_only` skipped" in rails
  assert "**Most of the samples are noise**: 8 of 10 (80%)" in rails
  assert "**Feature space `classifier` skipped** (samples)" in rails
  # No interval on one event, no "+0.000 [+0.000, +0.000]" between identical regimes, and
  # the verdict is a column, not a sentence per comparison.
  assert "+0.000 [+0.000, +0.000]" not in text
  assert "| real_synthetic − real | macro F1 | +0.000 [+0.000, +0.000] (100 % valid)" not in text
  assert "| real_synthetic − real | macro F1 | " in text and "identical predictions |" in text
  assert "| real_synthetic − oversample | TSS ≥M | not estimable: 1 test event M+X |" in text
  assert "the interval includes zero" not in text
  # A pair in the family of comparisons is shown there once, with its verdict and p-values.
  pair = [x for x in text.splitlines() if x.startswith("| real_synthetic − oversample | macro F1")]
  assert pair == [
    "| real_synthetic − oversample | macro F1 | — | identical predictions | 1.000 | 1.000 |"
  ]
  row = next(x for x in text.splitlines() if x.startswith("| real_synthetic | "))
  assert "n/a (not estimable: 1 test event M+X)" in row
  # The table of every score: TSS >=M (1 event) n/a, TSS >=C (3 events) shown.
  assert "| regime | macro F1 | TSS | HSS | balanced acc. | TSS >=M | TSS >=C |" in text
  assert (
    "| real | 0.000 ± 0.000 | 0.000 ± 0.000 | 0.000 ± 0.000 | 0.000 ± 0.000 | n/a | 0.250 ± 0.000 |"
    in text
  )


def test_a_sound_run_trips_no_guard_rail(tmp_path):
  metrics = _classifier_metrics()
  metrics["regimes"]["oversample"]["confusion_summed"] = np.diag([3, 9, 4, 2, 1]).tolist()
  metrics["regimes"]["real"]["confusion_summed"] = (np.diag([3, 9, 4, 2, 1]) + 1).tolist()
  metrics["regimes"]["real_synthetic"]["confusion_summed"] = (np.diag([3, 9, 4, 2, 1]) * 2).tolist()
  del metrics["regimes"]["synthetic_only"]
  metrics["support"]["per_class"] = {n: {"events": 4, "frames": 9} for n in "ABCMX"}
  evaluation = _eval_metrics(noise_like=0)
  del evaluation["skipped_extractors"]
  metrics["comparisons"]["rows"][0].update(mean=0.2, ci95=[0.1, 0.3])
  text, rails = _report(tmp_path, metrics, evaluation)
  assert "No guard rail tripped" in rails and "⚠" not in rails
  row = "| real_synthetic − oversample | macro F1 | +0.200 [+0.100, +0.300] | above 0 | 1.000 |"
  assert row in text
  # One noise-like sample is flagged, but not as "most".
  _, rails = _report(tmp_path, metrics, _eval_metrics(noise_like=1))
  assert "**Noise-like samples**: 1 of 10" in rails


FIGURES = {
  "": ["loss_curve.png"],
  "eval": [
    "power_spectrum.png", "grid_A.png", "grid_X.png", "limb_profile.png",
    "intensity_histogram.png", "flare_physics.png", "class_consistency_synthetic.png",
    "cluster_occupancy_random.png", "memorisation_ratios.png",
    "memorisation_pairs_pixels.png",
  ],
  "classifier": ["confusion_real.png", "reliability.png", "scores.png"],
}  # fmt: skip


def test_every_figure_in_the_report_has_a_caption_grouped_by_question(tmp_path):
  for sub, names in FIGURES.items():
    (tmp_path / sub).mkdir(exist_ok=True)
    for name in names:
      (tmp_path / sub / name).write_bytes(b"\x89PNG")
  text, _ = _report(tmp_path, _classifier_metrics(), _eval_metrics(0))
  links = captions.figure_links(text)
  shown = sorted(pathlib.Path(p).name for p, _ in links)
  assert shown == sorted(n for names in FIGURES.values() for n in names)
  for path, following in links:
    assert following.startswith("*") and not following.startswith("**"), (path, following)
    assert captions.UNKNOWN not in following, path
  # Grouped by question: realism first, memorisation after it, in the captions' order.
  section = text[text.index("## Evaluation") :]
  realism = section.index(captions.QUESTIONS["realism"])
  memorisation = section.index(captions.QUESTIONS["memorisation"])
  assert realism < section.index("grid_A.png") < section.index("limb_profile.png")
  assert section.index("power_spectrum.png") < memorisation < section.index("memorisation_ratios")
  assert captions.QUESTIONS["usefulness"] in text


def test_every_png_the_package_writes_has_a_caption():
  """Every '*.png' file name in the package's source matches a caption's pattern."""
  root = pathlib.Path(report.__file__).parent
  names = set()
  for path in root.rglob("*.py"):
    names |= set(re.findall(r"[\"']([\w{}\-]+\.png)[\"']", path.read_text()))
  names = {re.sub(r"\{[^}]*\}", "x", n) for n in names} - {"x.png"}
  assert {"grid_x.png", "limb_profile.png", "confusion_x.png"} <= names
  for name in names:
    assert captions.caption(name)[1] != captions.UNKNOWN, name
