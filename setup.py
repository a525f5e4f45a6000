"""solar_jax: class-conditional diffusion models of SDO/AIA 171 Å images."""

import re

import setuptools

# The version is set once, in solar_jax/__init__.py (read as text: nothing is imported).
with open("solar_jax/__init__.py", encoding="utf-8") as f:
  VERSION = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)

# Lower bounds are the versions this project was installed and tested with.
# jax is left unpinned to an accelerator: GPU/TPU users install jax[cuda12]
# or jax[tpu] on top and nothing here pins them back to the CPU build.
INSTALL_REQUIRES = [
  "jax>=0.10",
  "flax>=0.12",
  "optax>=0.2.5",
  "orbax-checkpoint>=0.12",
  "tensorflow-datasets>=4.9.10",
  "tensorflow-cpu>=2.21; platform_machine=='x86_64'",
  "tensorflow>=2.21; platform_machine!='x86_64'",
  "ml-collections>=1.1",
  "sunpy[map,net,timeseries]>=7.0",
  "astropy>=8.0",
  "aiapy>=0.10",
  "sunkit-instruments>=0.6",
  "clu>=0.0.12",
  "tensorboard>=2.21",
  "absl-py>=2.1",
  "numpy>=2.0",
  "scikit-learn>=1.6",
  "scipy>=1.14",
  "matplotlib>=3.9",
  "tqdm>=4.66",
  "importlib_resources>=6.4",
  "apache-beam>=2.60",
  "mlcroissant>=1.0",
  "etils[epath]>=1.10",
]

EXTRAS_REQUIRE = {
  "test": ["pytest>=8", "pytest-xdist>=3.6", "hypothesis>=6.100", "ruff>=0.8", "dill>=0.3.8"],
  # Only the peer comparison in benchmarks/ needs PyTorch and diffusers (tested with
  # torch 2.13.0+cpu and diffusers 0.42.1). On a CPU-only machine install PyTorch's
  # CPU build first: plain `torch` from PyPI brings the CUDA libraries (several GB).
  "bench": ["torch>=2.9", "diffusers>=0.42"],
}

setuptools.setup(
  name="solar_jax",
  version=VERSION,
  description="Class-conditional diffusion models of SDO/AIA 171 Å images in JAX/Flax.",
  long_description=open("README.md", encoding="utf-8").read(),
  long_description_content_type="text/markdown",
  packages=setuptools.find_packages(
    include=["solar_jax", "solar_jax.*", "tfds_builders", "tfds_builders.*"]
  ),
  license="MIT",
  package_data={
    "tfds_builders.sdo_aia171": ["checksums.tsv", "CITATIONS.bib", "README.md"],
    # The shipped model (DiffusionPipeline.from_pretrained("demo")): an export, every file.
    "solar_jax": ["pretrained/**/*"],
  },
  python_requires=">=3.10",
  install_requires=INSTALL_REQUIRES,
  extras_require=EXTRAS_REQUIRE,
)
