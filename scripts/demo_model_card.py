"""Copies an export to the package's shipped model and completes its card (scripts/demo_model.sh).

  python scripts/demo_model_card.py runs/demo_model/export/1500 solar_jax/pretrained/demo

Samples 2 images per class from the copy (seed 1, its recommended sampler), scores them
as benchmarks/tiny_sampler.sh does (the mean correlation of log10 DN/s with the mean real
test image of the training dataset: near 1 for a disk, near 0 for noise), writes their
grid to ``runs/demo_model/shipped_samples.png`` and adds a section to MODEL_CARD.md that
says what the model is for, how it was made and that score.
"""

import pathlib
import re
import shutil
import sys

import numpy as np

import solar_jax
from solar_jax import viz
from solar_jax.data import input_pipeline, scaling

SECTION = """
## Shipped with solar_jax

SIMULATED: this model learnt from the simulated demo archive
(`python -m solar_jax.data.demo`: frames rendered from sunpy's one real AIA 171 A test
frame, with simulated flares and GOES fluxes), not from observations. It is there to try
the Python API and the pipeline in seconds, offline:
`solar_jax.DiffusionPipeline.from_pretrained("demo")`. Its samples are disks like the demo
frames, not the Sun: never use them, or anything learnt from them, as data.

Made by `bash scripts/demo_model.sh` in solar_jax's repository, that is:

```
{commands}
```

Its samples (2 per class, seed 1, the recommended sampler: {sampler}): mean correlation of
log10 DN/s with the mean real test image of the training dataset {score:.3f} (the {num_real}
test frames themselves: {real:.3f}; noise: about 0), as `benchmarks/tiny_sampler.sh`
measures it (`scripts/demo_model_card.py`).
"""


def commands() -> str:
  """The commands of scripts/demo_model.sh's header, as written there."""
  text = (pathlib.Path(__file__).parent / "demo_model.sh").read_text()
  header = text.split("# The steps (each reused when its output exists):\n", 1)[1]
  lines = []
  for line in header.splitlines():
    if not line.startswith("#   "):
      break
    lines.append(line[4:])
  return "\n".join(lines)


def correlation(images, mean_real) -> float:
  logs = np.log10(np.maximum(images, 1))
  return float(np.mean([np.corrcoef(x.ravel(), mean_real.ravel())[0, 1] for x in logs]))


def main(source: str, target: str) -> None:
  target = pathlib.Path(target)
  shutil.rmtree(target, ignore_errors=True)
  shutil.copytree(source, target)
  pipe = solar_jax.DiffusionPipeline.from_pretrained(target)
  out = pipe(num_images=2, seed=1)
  config = pipe.config
  real = input_pipeline.make_for_inference(config.data, "test", images=True)["image"][..., 0]
  real = scaling.inverse(real, config.data.clip_min, config.data.clip_max)
  mean_real = np.log10(np.maximum(real, 1)).mean(0)
  settings = pipe.recommended_sampler
  sampler = (
    f"{settings['sampler']}, {settings['num_steps']} steps, eta {settings['eta']:g}, "
    f"guidance {settings['guidance_scale']:g}"
  )
  card = target / "MODEL_CARD.md"
  text = card.read_text() + SECTION.format(
    commands=commands(),
    sampler=sampler,
    score=correlation(out.images, mean_real),
    num_real=len(real),
    real=correlation(real, mean_real),
  )
  card.write_text(re.sub(r"exported from \S+?/runs/", "exported from runs/", text))
  viz.save_image_grid(
    out.images,
    out.labels,
    out.class_names,
    "runs/demo_model/shipped_samples.png",
    title=f"SYNTHETIC samples of the shipped demo model (SIMULATED data): {sampler}, seed 1",
    vmin=config.data.clip_min,
    vmax=config.data.clip_max,
    ncols=2,
  )
  print(repr(pipe), repr(out), sep="\n")


if __name__ == "__main__":
  main(*sys.argv[1:])
