"""AIA 171 Å at 256², research scale (118.9M parameters, measured by tests/test_user_path.py); GPU or TPU.

  # one host:
  python -m solar_jax.main --config=aia171_256 --workdir=gs://BUCKET/runs/aia256 \
      --config.data.data_dir=gs://BUCKET/tfds
  # TPU pod: the same command on every host (JAX detects the pod), e.g.
  gcloud compute tpus tpu-vm ssh NAME --worker=all --command="cd solar_jax && \
      python -m solar_jax.main --config=aia171_256 --workdir=gs://BUCKET/runs/aia256"
  # several GPU hosts: the same command on each, plus --config.mesh.coordinator_address=HOST0:1234
  # --config.mesh.num_processes=N --config.mesh.process_id=RANK (README, "Parallelism")

Plan (benchmarks/memory_plan.py, XLA:CPU estimate): 118.9M parameters, 1480 train GFLOPs/image;
batch/device (plain/remat/FSDP-8/FSDP-8+remat) in 16 GiB: 3/3/3/3, in 80 GiB: 19/18/20/19.
"""

from solar_jax.configuration import default_config


def get_config():
  config = default_config()
  config.data.builder_config = "256"
  config.data.image_size = 256
  # Real data: the clip level from the train split, so flare kernels do not saturate
  # (README, "What a record holds"); 1 % of training frames peak above it.
  config.data.clip_max_quantile = 0.99
  config.model.base_channels = 128
  config.model.channel_mult = (1, 1, 2, 2, 4, 4)
  config.model.num_res_blocks = 2
  config.model.attention_resolutions = (16, 8)
  config.model.num_heads = 4
  config.model.dropout = 0.1
  config.model.dtype = "bfloat16"
  config.diffusion.schedule = "cosine"
  config.training.batch_size = 64
  config.training.num_steps = 300_000
  config.training.learning_rate = 1e-4
  config.training.sample_every = 20_000
  config.sampling.batch_size = 64
  # Evaluation N >= 1000 per class where the test split has that many frames: 1000
  # samples of each class, and N up to 1000 per class (5 classes) in the pooled scores.
  config.sampling.per_class = (1000, 1000, 1000, 1000, 1000)
  config.evaluation.num_images = 5000
  return config
