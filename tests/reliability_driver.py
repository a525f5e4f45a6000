"""The real command line (solar_jax.main) on a synthetic training stream, for subprocess tests.

    PYTHONPATH=. python tests/reliability_driver.py --config=tiny \
        --workdir=runs/w --config.training.num_steps=8

Only the data source differs from ``python -m solar_jax.main``: batch k is drawn
from ``default_rng(1000 + k)``, so a resumed run sees the same batches as an
uninterrupted one, and no TFDS dataset has to be built. Everything else (flags,
input checks, workdir lock, config.json, checkpoints, SIGTERM, errors) is the
product's own code.

Test hook: ``SOLAR_JAX_TEST_HANG_IN_SAVE=<step>`` stops the process inside the
save of checkpoint <step>, after its files are written and before orbax
commits them, and writes ``<workdir>/hanging_in_save`` so that a test can
SIGKILL it at exactly that moment.
"""

import asyncio
import os
import sys

import numpy as np
from etils import epath

from solar_jax import main
from solar_jax.data import input_pipeline, resolve
from solar_jax.ddpm import train


def synthetic_batches(config, start_step: int):
  """Deterministic stream: batch k depends on k only, so a resume continues it exactly."""
  size, b = config.data.image_size, config.training.batch_size
  step = start_step
  while True:
    rng = np.random.default_rng(1000 + step)
    yield {
      "image": rng.uniform(-1, 1, (b, size, size, config.data.channels)).astype(np.float32),
      "label": rng.integers(0, len(config.data.classes), b).astype(np.int32),
    }
    step += 1


def _hang_in_save(step: str) -> None:
  from orbax.checkpoint._src.path import atomicity

  real = atomicity.AtomicRenameTemporaryPath.finalize

  async def finalize(self):
    final = epath.Path(self._final_path)  # noqa: SLF001 - test hook
    if final.name == step:
      (final.parent.parent / "hanging_in_save").write_text(str(self.get()))
      await asyncio.sleep(600)  # Killed here by the test.
    return await real(self)

  atomicity.AtomicRenameTemporaryPath.finalize = finalize


if __name__ == "__main__":
  train._train_iterator = synthetic_batches  # noqa: SLF001 - the one substitution
  train.train_frames_per_class = lambda config: None  # (and so no split to count)
  input_pipeline.get_builder = lambda data_config: None  # No TFDS dataset here,
  input_pipeline.verify_shards = lambda *args, **kwargs: None  # so no shards to check.
  resolve.resolve_data = lambda config: None  # and no provenance to read.
  if os.environ.get("SOLAR_JAX_TEST_HANG_IN_SAVE"):
    _hang_in_save(os.environ["SOLAR_JAX_TEST_HANG_IN_SAVE"])
  sys.argv[0] = "solar_jax.main"
  main.run()
