"""Tiny configuration for tests: seconds per step on one CPU core.

32² images read from the 64² builder config (block means of 2 x 2 stored pixels);
any built sdo_aia171/64 dataset serves, e.g. the demo archive's (60 frames over the
default 12 months give fold 0 a train split with every class: A 5, B 13, C 5, M 8, X 7
frames, dataset 2.2.0; fewer frames can leave a class out: training warns and report.md
says so):

python -m solar_jax.data.demo --out runs/demo_manual --num_frames 60
python -m tensorflow_datasets.scripts.cli.main build tfds_builders/sdo_aia171 --config=64 \
    --manual_dir=runs/demo_manual --data_dir=runs/tfds --noforce_checksums_validation
python -m solar_jax.main --config=tiny --workdir=runs/tiny --mode=train \
    --config.data.data_dir=runs/tfds
"""

from solar_jax.configuration import default_config


def get_config():
  config = default_config()
  config.data.builder_config = "64"
  config.data.image_size = 32
  config.data.shuffle_buffer = 64

  config.model.base_channels = 16
  config.model.channel_mult = (1, 2)
  config.model.num_res_blocks = 1
  config.model.attention_resolutions = (16,)
  config.model.num_heads = 2
  config.model.num_groups = 8
  config.model.dropout = 0.0

  config.diffusion.num_timesteps = 100

  config.training.batch_size = 8
  config.training.num_steps = 4
  config.training.warmup_steps = 2
  config.training.ema_decay = 0.9
  config.training.log_every = 2
  config.training.checkpoint_every = 2
  config.training.keep_checkpoints = 2
  config.training.num_sample_images = 4

  # Stochastic DDIM (eta = 1) at 25 of the 100 timesteps. From one tiny model trained 480
  # steps on the demo below, the correlation of the samples with the mean real image (a
  # disk: 0.99 for real images) was 0.93 for it and 0.95 for ancestral DDPM (100 steps),
  # but 0.50 for deterministic DDIM (eta = 0, 5 or 25 steps: noise over a half-formed
  # disk) and 0.87 for eta = 1 at 5 steps (benchmarks/RESULTS.md, "The tiny config's
  # sampler"). At tiny's own 4 training steps no sampler makes disks: the tests check
  # where images go, not what they look like.
  config.sampling.num_steps = 25
  config.sampling.eta = 1.0
  config.sampling.batch_size = 8
  config.sampling.per_class = (2, 2, 2, 2, 2)

  config.evaluation.num_images = 16
  config.evaluation.kid_bootstrap = 50
  config.evaluation.memorisation_train_images = 64
  config.evaluation.nearest_k = 3
  config.evaluation.num_clusters = 4
  config.evaluation.batch_size = 8

  config.classifier.stage_sizes = (1, 1)
  config.classifier.width = 8
  config.classifier.batch_size = 8
  config.classifier.num_steps = 4
  config.classifier.eval_every = 2
  config.classifier.seeds = (0,)
  # One pool, no validation grid: the tests of the grid and the pools set their own.
  config.classifier.num_pools = 1
  config.classifier.guidance_grid = ()
  config.classifier.ratio_grid = ()
  config.classifier.focal_grid = ()
  config.classifier.oversample_grid = ()
  config.classifier.weight_power_grid = ()
  config.classifier.augment_rotation_grid = ()
  config.classifier.bootstrap_samples = 200

  config.logging.progress = False
  # One device: the tests' 8 fake CPU devices on 2 cores cost ~1.5x more per step than
  # one (benchmarks/RESULTS.md, "Test suite time"); the tests of 1 vs 8 devices set
  # their meshes. --config.mesh.data=-1 takes every device.
  config.mesh.data = 1
  return config
