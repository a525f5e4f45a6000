"""Default configuration: declares every field the project reads.

Other configs start from it (``solar_jax.configuration.default_config()``) and
override fields; nothing may add a field elsewhere (configs are locked). A config
is a module with ``get_config()``, named on the command line (``--config=tiny``
for ``solar_jax/configs/tiny.py``, ``--config=my_configs.run1`` for a module of
your own on PYTHONPATH). Run with::

  python -m solar_jax.main --config=default --workdir=runs/default
"""

import ml_collections

# GOES classes in order of increasing peak 1-8 Å flux. The model's class index
# is the position in this tuple.
GOES_CLASSES = ("A", "B", "C", "M", "X")


# Long: one declaration per field, section by section, each with its meaning.
def get_config() -> ml_collections.ConfigDict:
  """Returns the default configuration, one section per part of the project."""
  config = ml_collections.ConfigDict()
  config.seed = 0  # Root seed: every random stream is folded from it.

  # ---------------------------------------------------------------- data ---
  data = config.data = ml_collections.ConfigDict()
  data.dataset = "sdo_aia171"  # TFDS name of the builder (input_pipeline.DATASETS).
  data.builder_config = "64"  # Stored resolution: one of 64, 128, 256, 512.
  data.data_dir = ""  # TFDS data dir ('' = TFDS default); may be gs://.
  # Side the model sees; must divide the stored side, the input pipeline averages
  # stored pixels in blocks of builder_config / image_size (DN/s, flux-conserving).
  data.image_size = 64
  data.channels = 1
  data.classes = GOES_CLASSES
  # The label, chosen on read from the facts each record stores (no rebuild needed;
  # solar_jax/data/frame_facts.py), one meaning each: 'xrs_class' (the class of the GOES
  # 1-8 Å flux at the frame's time, every frame: the X-ray class now), 'flare_class'
  # (flaring frames only: their flare's peak class), 'background_class' (frames outside
  # flares only), 'goes_class' (two meanings, kept for comparison: the flare's peak
  # class inside a flare's [start, end + cooling lag], else the flux's class) or
  # 'max_class_next_24h' (forecasting: the largest class among flares STARTING in the
  # next 24 h, else the quiet XRS level; the flare in progress never counts; read on the
  # issuance grid below only).
  data.label = "xrs_class"
  # The issuance grid of the forecast label: forecasts are issued at these UT hours, from
  # the frame nearest each (within the tolerance, edge included; AIA 171 Å has a 12 s
  # cadence and the fetch takes the nearest frame). Under 'max_class_next_24h' every other
  # frame has no label (in no split). Decided on read from the frame time: no rebuild.
  data.issuance_hours = (0, 6, 12, 18)
  data.issuance_tolerance_minutes = 6.0  # < 30: one grid time per frame.
  # 171 Å brightens as flare loops cool, tens of minutes after the GOES end: frames up
  # to this long after a flare's end count as flaring (at most the build's 120 min).
  data.cooling_lag_minutes = 30.0
  # The scale the class thresholds are applied on (records keep the TRUE flux):
  # 'swpc', the classes as SWPC published them (GOES 8-15 fluxes x 0.7 before 2020),
  # as the cycle-24 forecasting literature counts M and X (Leka et al. 2019, Bobra &
  # Couvidat 2015, SWAN-SF); or 'true' (a published C7.0-C9.9 of 2010-2019 is then M).
  data.class_scale = "swpc"
  # Splits on read: month blocks, test = block `fold`, validation = block
  # (fold + folds/2) % folds, train the rest; train frames within embargo_days of a
  # validation or test month (and validation frames near test) are dropped. Running
  # every fold tests every month once (solar_jax/data/splits.py).
  data.fold = 0
  data.embargo_days = 14.0
  # 'month_blocks' (above), or 'forward', the robustness check in time: fold f trains on
  # the archive's first f + 1 calendar years, validates on the next and tests on the one
  # after (later years unused), with the embargo at both boundaries (splits.assign_forward).
  data.split = "month_blocks"
  # Whole days withheld from the train split, inside the training months: this share of
  # the calendar days, drawn from withheld_day_seed (one uniform per day, so a day's fate
  # depends on these two alone). The DDPM (and the classifier: 'train' means one thing)
  # never trains on them; they are the memorisation test's held-out frames, exchangeable
  # with the training months' (solar_jax/data/splits.py). 0 = none: the memorisation
  # test then falls back to the evaluation split (other months, not exchangeable).
  data.withheld_day_fraction = 0.1
  data.withheld_day_seed = 0
  # Intensity transform: clip DN/s to [clip_min, clip_max], log10, then map
  # linearly to [-1, 1]. Inverted exactly on samples (within the clip range).
  data.clip_min = 1.0
  data.clip_max = 3000.0
  # > 0: replace clip_max, before the run starts (data.resolve.resolve_data), by this
  # quantile of the train split's on-disk frame maxima (recorded in config.json), so
  # flare kernels do not saturate (the build report gives the share of frames per
  # class above 3000 DN/s). 0 keeps clip_max as set.
  data.clip_max_quantile = 0.0
  data.shuffle_buffer = 2048
  data.class_balance = False  # Resample train examples to equal class counts.
  data.prefetch = 2
  # Read every record of the dataset once before a run (TFRecord CRCs, record counts):
  # damaged shards fail at the start, naming the file, not mid-training. Shard presence
  # and sizes are always checked. Measured: 0.1 s for the quickstart's 10 MB (after the
  # TensorFlow import), so about a second per 100 MB on the 2-core machine.
  data.verify_shards = True

  # --------------------------------------------------------------- model ---
  model = config.model = ml_collections.ConfigDict()
  model.base_channels = 64
  model.channel_mult = (1, 2, 2, 2)  # One entry per resolution level.
  model.num_res_blocks = 2  # Residual blocks per level.
  model.attention_resolutions = (16,)  # Feature-map sides that get attention.
  model.num_heads = 4
  model.dropout = 0.1
  model.num_groups = 32  # GroupNorm groups (clipped to the channel count).
  model.dtype = "float32"  # Compute dtype: 'float32' or 'bfloat16'.
  model.remat = False  # Gradient checkpointing of residual blocks.
  # What the UNet is conditioned on: 'class' (the GOES class index of the label, an
  # embedding per class) or 'flux' (the log10 GOES 1-8 A flux behind the label, on the
  # label's class scale: Fourier features and an MLP, models/unet.FluxEmbedding). Both
  # learn a null condition for classifier-free guidance (diffusion.label_dropout).
  model.conditioning = "class"

  # ----------------------------------------------------------- diffusion ---
  diffusion = config.diffusion = ml_collections.ConfigDict()
  diffusion.schedule = "linear"  # 'linear' (Ho et al. 2020) or 'cosine'.
  diffusion.num_timesteps = 1000
  diffusion.beta_start = 1e-4  # Linear schedule only.
  diffusion.beta_end = 0.02  # Linear schedule only.
  diffusion.cosine_s = 0.008  # Cosine schedule offset (Nichol & Dhariwal).
  diffusion.prediction = "eps"  # 'eps' or 'v' (Salimans & Ho 2022).
  diffusion.label_dropout = 0.1  # P(label -> null class) for CFG training.
  # Per-timestep weight of the loss: 'none' (the plain MSE of the prediction) or
  # 'min_snr' (Hang et al. 2023: the x0 error weighted by min(SNR, gamma), which
  # stops the low-noise timesteps from dominating the gradient).
  # eps with 'none' gave the quickstart's samples the best KID/FID/coverage of eps/v x
  # none/min_snr at equal steps (v: KID 0.26, eps + min_snr 0.028, eps 0.002;
  # benchmarks/RESULTS.md, "eps vs v, with and without min-SNR").
  diffusion.loss_weighting = "none"
  diffusion.min_snr_gamma = 5.0  # gamma of 'min_snr'.

  # ------------------------------------------------------------ training ---
  training = config.training = ml_collections.ConfigDict()
  training.batch_size = 64  # Global batch over all devices and hosts.
  training.num_steps = 100_000
  training.learning_rate = 2e-4
  training.warmup_steps = 1000
  training.weight_decay = 0.0
  training.grad_clip = 1.0  # Global-norm clip; 0 disables.
  training.ema_decay = 0.9999
  training.log_every = 100
  training.checkpoint_every = 5000
  training.keep_checkpoints = 3
  training.sample_every = 0  # Steps between sample grids; 0 = only at the end.
  training.num_sample_images = 16  # Images in each periodic sample grid (>= 1 per class); 0 = none.

  # ------------------------------------------------------------ sampling ---
  sampling = config.sampling = ml_collections.ConfigDict()
  # 'ddim', 'ddpm' (ancestral) or 'dpmpp_2m' (DPM-Solver++(2M), Lu et al. 2022:
  # deterministic, second order, fewer steps than DDIM eta = 0 for the same error).
  # The research configs' default, DDIM eta 0 with 50 steps, is not yet measured on a
  # research-scale model: run benchmarks/sampler_steps.sh (and bench_quality_nfe.py) with
  # one. On the analytic mixture dpmpp_2m at 25 steps beats DDIM at 200 (RESULTS.md).
  sampling.sampler = "ddim"
  sampling.num_steps = 50  # DDIM / dpmpp_2m steps (1..num_timesteps); DDPM uses all.
  sampling.eta = 0.0  # DDIM stochasticity in [0, 1]; dpmpp_2m adds no noise.
  # DDIM / dpmpp_2m timestep placement ('uniform', 'quadratic', 'logsnr') and last step
  # ('jump': x0 from the last visited timestep; 'zero': the timesteps end at t = 0), or
  # 'default': the sampler's recipe (samplers.SAMPLERS: quadratic + jump for both, the
  # best on the analytic mixture, RESULTS.md "Each sampler's timestep recipe"). The
  # configs keep uniform + jump, with which their samples were measured, until
  # benchmarks/sampler_recipes_model.sh has measured the recipe on a trained model.
  # Samples record the resolved values.
  sampling.spacing = "uniform"
  sampling.final_step = "jump"
  sampling.guidance_scale = 1.0  # CFG: 0 = unconditional, 1 = conditional.
  sampling.clip_x0 = True  # Clip the predicted x0 to [-1, 1].
  sampling.batch_size = 64  # Images per device batch group (global).
  # Images per class, in the order of data.classes; used when not balancing. On the
  # command line also by name: --config.sampling.per_class=M:30,X:30 (the others 0).
  sampling.per_class = (8, 8, 8, 8, 8)
  # 'fixed' (per_class) or 'balance' (top the training counts up to the
  # largest class, total capped by sampling.max_images).
  sampling.counts = "fixed"
  # Flux models only (model.conditioning='flux'): the GOES 1-8 A fluxes to draw, one
  # image each, as W m^-2 floats or class strings ('M2.5'); () = per class (the counts
  # above), each image's flux chosen by flux_draw: 'centre' (the class's geometric
  # centre, e.g. M3.2) or 'training' (drawn from the training split's fluxes of that
  # class, seeded by sampling.seed).
  sampling.fluxes = ()
  sampling.flux_draw = "centre"
  sampling.max_images = 1000
  sampling.seed = 0
  sampling.write_fits = True
  # Where --mode=sample reads the model: '' = this workdir's checkpoints/; else another
  # run's workdir, its checkpoints/, or an inference checkpoint of --mode=export. The
  # samples go to this workdir, in a folder whose name says where the model came from.
  sampling.checkpoint = ""

  # ---------------------------------------------------------- evaluation ---
  evaluation = config.evaluation = ml_collections.ConfigDict()
  evaluation.num_images = 500  # N for real and generated sets alike.
  evaluation.split = "test"
  # Second, disjoint real split for the real-vs-real floors at the same N; "" = no floors.
  evaluation.floor_split = "validation"
  # Path to Inception-v3 FID weights (.npz converted from pytorch-fid's
  # pt_inception-2015-12-05-6726825d.pth, see solar_jax/models/inception.py).
  # Needed only when 'inception' is in extractors; a missing file is an error.
  evaluation.inception_weights = ""
  # Feature spaces: any of 'classifier' (the real-only flare classifier), 'random'
  # (random projections: no training, no download), 'inception' (needs the weights).
  evaluation.extractors = ("classifier", "random")
  evaluation.random_features_dim = 16  # D of the 'random' space (FID needs N > D).
  evaluation.batch_size = 50
  evaluation.kid_bootstrap = 200  # Bootstrap resamples behind KID's 95 % interval.
  evaluation.nearest_k = 5  # k for precision/recall and density/coverage.
  evaluation.num_clusters = 20  # k-means clusters on real features.
  # DDPM training images searched for each sample's nearest neighbour (memorisation),
  # per class: every frame of a class with at most this many, else a uniform random
  # subset of this many (seeded by `seed`, recorded); 0 = no memorisation figures.
  evaluation.memorisation_train_images = 2000
  # Flare-kernel threshold [DN/s]: per class, the share of the disk at or above it.
  evaluation.flare_kernel_dns = 1500.0

  # ---------------------------------------------------------- classifier ---
  classifier = config.classifier = ml_collections.ConfigDict()
  # What the classifier is asked, as two choices: the label it reads ('' = data.label,
  # what the frame shows now; 'max_class_next_24h' = the largest class among flares
  # starting in the next 24 h, a forecast from the issuance frames (data.issuance_hours);
  # any label policy of data/frame_facts.py) and how the GOES classes are grouped ('multiclass' A..X, 'ge_m' >=M against <M, 'ge_c' >=C against <C).
  classifier.label = ""
  classifier.grouping = "multiclass"
  classifier.stage_sizes = (2, 2, 2)  # Residual blocks per ResNet stage.
  classifier.width = 32  # Channels of the first stage (doubled per stage).
  classifier.stem_stride = 2  # Stride of the first conv: 2 quarters the cost of every layer.
  classifier.dropout = 0.1
  classifier.batch_size = 64
  classifier.num_steps = 5000
  classifier.learning_rate = 1e-3
  classifier.weight_decay = 1e-4
  classifier.eval_every = 500  # Validation interval (model selection).
  # Runs of the experiment (regimes, seeds, pools, validation-grid points) trained as one
  # stacked program (classifier/stacked.py). Results do not depend on it; memory grows with it.
  classifier.stacked_runs = 16
  # Runs of a stacked group computed side by side (one jax.vmap state; the group's other
  # runs are further such states); 1 = each run alone, one after another. 0 = auto: 1 on
  # CPU (vmapped runs gave 0.44x the runs per hour there), the whole group on GPU/TPU.
  classifier.vectorized_runs = 0
  classifier.seeds = (0, 1, 2, 3, 4)  # Classifier seeds (paired across regimes).
  # The synthetic regimes must beat the classical fixes (weighted, focal, oversample,
  # augment), not only 'real', to be called useful.
  classifier.regimes = (
    "real",
    "weighted",
    "focal",
    "oversample",
    "augment",
    "real_synthetic",
    "synthetic_only",
    "reweighted",  # Real data at the class prior real_synthetic chose (the prior alone).
  )
  # Every baseline gets the validation budget of the synthetic regimes: each classical
  # regime's knob is chosen on the validation split (first seed, the same rule as
  # guidance_grid/ratio_grid) from its grid; () = the value below, fixed a priori.
  classifier.focal_gamma = 2.0  # Exponent of the 'focal' regime's loss (1 - p_t)^gamma CE.
  classifier.focal_grid = (1.0, 2.0)
  # 'oversample': each class drawn up to share / (1 - share) x the largest class
  # (0.5: balanced; binary tasks: the minority class's share of the epoch).
  classifier.oversample_share = 0.5
  classifier.oversample_grid = (0.25, 0.5)
  # 'weighted': class weights (N / (K n_c))^power (1: class-balanced; 0: none).
  classifier.class_weight_power = 1.0
  classifier.weight_power_grid = (0.5, 1.0)
  # 'augment' regime (solar_jax/classifier/training_sets.py says why each keeps a plausible AIA
  # frame): flips 'none', 'ns' (north-south) or 'ns_ew' (also east-west, which reverses
  # solar rotation: not for the forecasting tasks); rotation about the disk centre up to
  # this many degrees; intensity gain exp(N(0, augment_intensity)) in DN/s.
  classifier.augment_flips = "ns"
  classifier.augment_rotation_deg = 5.0
  classifier.augment_rotation_grid = (5.0, 10.0)  # 'augment': largest rotations chosen from.
  classifier.augment_intensity = 0.05
  classifier.synthetic_ratio = 1.0  # Synthetic images per missing real image (no ratio_grid).
  # Synthetic ratios real_synthetic chooses from on the validation split; () = synthetic_ratio.
  classifier.ratio_grid = (0.5, 1.0)
  # Classifier-free guidance of the synthetic training images; None = sampling.guidance_scale.
  # Used when guidance_grid is empty. Stronger guidance sharpens what tells the classes
  # apart at some cost in FID (README, "Guidance of the synthetic training images").
  classifier.guidance_scale = ml_collections.config_dict.placeholder(float)
  # Guidance scales the synthetic regimes choose from on the validation split (first
  # seed, pool 0); the test split is scored once, with the choice. () = guidance_scale.
  classifier.guidance_grid = (1.0, 3.0, 10.0)
  # DDIM/DPM steps of the synthetic pools; None = sampling.num_steps.
  classifier.sampling_steps = ml_collections.config_dict.placeholder(int)
  # Synthetic pools drawn (seeds sampling.seed + k); each seed trains on each pool, so
  # the generator's spread enters the intervals. >= 2 for a reported figure.
  classifier.num_pools = 2
  # Resamples of the paired bootstrap (test active regions, blocks of quiet days, seeds,
  # pools) behind every interval.
  classifier.bootstrap_samples = 1000
  # The primary endpoint, named before the run: the best synthetic regime minus the best
  # classical baseline on TSS >=M ('delta_tss_ge_m'), 'delta_tss' or 'delta_macro_f1',
  # the best taken in every resample. Every other regime x baseline x score difference
  # is reported with Holm-adjusted p-values.
  classifier.primary_endpoint = "delta_tss_ge_m"

  # ---------------------------------------------------------------- mesh ---
  mesh = config.mesh = ml_collections.ConfigDict()
  # Data-parallel axis size; -1 = all devices / fsdp. One process may take fewer than it
  # has (data x fsdp below the device count: the first devices); several use all.
  mesh.data = -1
  mesh.fsdp = 1  # Parameter-sharding axis size.
  # Call jax.distributed.initialize(): 'auto' (when the environment names a
  # cluster), 'yes' or 'no'.
  mesh.distributed = "auto"
  # An explicit multi-process launch (any launcher): all three, or none to let JAX
  # detect TPU pods, SLURM, Open MPI and Kubernetes. Unset (None) = the matching
  # JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID variable, if any.
  mesh.coordinator_address = ml_collections.config_dict.placeholder(str)  # host:port of process 0.
  mesh.num_processes = ml_collections.config_dict.placeholder(int)
  mesh.process_id = ml_collections.config_dict.placeholder(int)  # This process's rank, 0-based.

  # ---------------------------------------------------------- provenance ---
  # What the dataset says about itself: facts, not choices. data.resolve.resolve_data
  # fills them in from the dataset's metadata before config.json is written (a value
  # set here is replaced), so every output (metrics.json, the model card, report.md)
  # carries them and none of them opens the dataset again.
  provenance = config.provenance = ml_collections.ConfigDict()
  provenance.simulated = ml_collections.config_dict.placeholder(bool)  # None: not read.
  provenance.goes_scale = ""  # The GOES flux scale the labels were made on.
  provenance.split_rule = ""
  provenance.degradation = ""  # Whether the build corrected the AIA degradation.
  provenance.version = ""  # dataset/builder_config version
  provenance.num_folds = 0  # The dataset's month-block folds (0: not read).
  # The flare list's events per class on both class scales (one line; the build's).
  provenance.events_per_class = ""
  provenance.unreadable = ""  # Why the dataset could not be read ('' when it was).

  # ------------------------------------------------------------- logging ---
  logging = config.logging = ml_collections.ConfigDict()
  logging.progress = True  # Progress bars with ETA on long loops.
  logging.tensorboard = True

  return config
