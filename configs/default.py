"""Every configuration key of the project, each with a one-line comment.

Experiment configs (pmsp.py, ctp.py, ...) import this module and override a few keys. Configs hold no
derived numbers: training and warm-up steps are computed at run time from epochs and dataset sizes.

Variants are passed after the file name, separated by colons, e.g.
`--config=configs/pmsp.py:demo` or `--config=configs/finetune.py:hmdb51:2:r50`. The shared variants:
  demo   the synthetic data set and a small network: a CPU run of minutes (what `demo.py` uses)
  tiny   the smallest network and clip: a CPU run of seconds (what the tests use)
  r50    3D-ResNet-50 streams on 224 x 224 crops (the paper's large setting)
  bf16   bfloat16 compute (parameters and optimizer state stay float32)
"""

import ml_collections

# Where `python -m data_prep.synthetic` + `python -m data_prep.convert` put the demo data set.
DEMO_DATA_DIR = 'data/synthetic'

COMMON_VARIANTS = ('demo', 'tiny', 'r50', 'bf16')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the default config: PMSP pretraining of IMRNet-R18 on Kinetics-400."""
  config = base_config()
  apply_common_variants(config, parse_variants(arg, allowed=COMMON_VARIANTS))
  return config


def base_config() -> ml_collections.ConfigDict:
  """The full key set with the project's defaults (no variants applied)."""
  config = ml_collections.ConfigDict()
  config.seed = 0  # seeds parameter init, the per-step task randomness and the data order

  config.dataset = ml_collections.ConfigDict()
  config.dataset.name = 'kinetics400'  # kinetics400 | ucf101 | hmdb51 | synthetic (informational)
  config.dataset.data_dir = 'data/kinetics400'  # output directory of data_prep.convert (manifest.json)
  config.dataset.train_split = 'train'  # split trained on
  config.dataset.eval_split = 'validation'  # split evaluated on ('test' for UCF101/HMDB51/synthetic)

  config.data = ml_collections.ConfigDict()
  config.data.num_gops = 5  # consecutive GOPs per clip; the I-stream sees num_gops I-frames
  config.data.p_per_gop = 5  # P-frames per GOP fed to each P-stream (evenly spaced)
  config.data.crop_size = 112  # side of the square training crop, pixels
  config.data.crop_scales = (1.0, 0.875, 0.75, 0.66)  # multi-scale crop: side = scale * min(H, W)
  config.data.flip = True  # random horizontal flip (negates the MV x channel)
  config.data.color_jitter = False  # brightness/contrast jitter on I-frames only
  config.data.shuffle_buffer = 256  # training records are shuffled in windows of this many (~2-5 MB each)
  config.data.eval_num_clips = 10  # clips per video at evaluation, uniformly spaced
  config.data.eval_num_crops = 3  # spatial crops per clip at evaluation (left/centre/right)
  config.data.eval_crop_size = 112  # side of the square evaluation crop, pixels

  config.model = ml_collections.ConfigDict()
  config.model.name = 'imrnet'  # imrnet (joint, with connections) | coviar (three separate streams)
  # 3D-ResNet depth per stream: 'tiny' | 18 | 34 | 50 | 101 | 152; int or str, hence `object`.
  config.model.depth = ml_collections.FieldReference(18, field_type=object)
  config.model.widths = ()  # base widths of res2..res5; () = the depth's default (64, 128, 256, 512)
  config.model.streams = 'imr'  # which streams run: any non-empty subset of 'i', 'm', 'r'
  config.model.connections = 'bidirectional'  # bidirectional | unidirectional (P -> I only) | none
  config.model.connection_conv = True  # connections map the source stream through a conv
  config.model.connection_attention = True  # connections scale by an input-dependent gate
  config.model.i_temporal_strides = (1, 1, 1, 1, 1)  # I-stream temporal strides: stem pool, res2..res5
  config.model.p_temporal_strides = (1, 1, 1, 1, 1)  # M/R-stream temporal strides: stem pool, res2..res5
  config.model.dtype = 'float32'  # compute dtype: float32 | bfloat16 (parameters stay float32)
  # name='coviar' only: per-frame 2D ResNets with fused per-stream logits.
  config.model.coviar_iframe_depth = ml_collections.FieldReference(152, field_type=object)  # I-stream
  config.model.coviar_pframe_depth = ml_collections.FieldReference(18, field_type=object)  # M, R streams
  config.model.coviar_stream_weights = (2.0, 1.0, 1.0)  # (i, m, r) fusion weights of the logits
  config.model.num_classes = -1  # coviar's logits; -1 = the data set's class count, set at run time
  config.model.strided_conv = 'native'  # native | subsample (stride 1 + slicing: same result, fast CPU)

  config.task = ml_collections.ConfigDict()
  config.task.name = 'pmsp'  # pmsp | ctp | ctp_binary | pmsp_ctp | aot | rotation | infonce | classification

  config.pmsp = ml_collections.ConfigDict()
  config.pmsp.grid_sizes = (2, 4)  # spatial grids s (s x s cells); 1 x 1 has a constant label, refused
  config.pmsp.temporal_bins = (1, 5)  # temporal bins t per level, 1 <= t <= num_gops
  config.pmsp.label_mode = 'argmax'  # argmax (one-hot, the paper) | distribution (soft energy target)
  config.pmsp.hidden_dim = 512  # hidden width of each level's 2-layer MLP head
  config.pmsp.loss_weight = 1.0  # weight of the PMSP loss in pmsp_ctp

  config.ctp = ml_collections.ConfigDict()
  config.ctp.classes = ('aligned', 'shifted', 'shuffled', 'mismatched')  # correspondence types
  config.ctp.hidden_dim = 512  # hidden width of the 2-layer MLP head
  config.ctp.loss_weight = 1.0  # weight of the CTP loss in pmsp_ctp

  config.aot = ml_collections.ConfigDict()
  config.aot.hidden_dim = 512  # hidden width of the arrow-of-time head

  config.rotation = ml_collections.ConfigDict()
  config.rotation.hidden_dim = 512  # hidden width of the rotation head

  config.infonce = ml_collections.ConfigDict()
  config.infonce.temperature = 0.1  # softmax temperature of the similarity logits
  config.infonce.dim = 128  # embedding size
  config.infonce.hidden_dim = 512  # hidden width of the projection MLP

  config.classification = ml_collections.ConfigDict()
  config.classification.dropout_rate = 0.5  # dropout before the classifier

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = 'sgd'  # sgd (with momentum) | adamw
  config.optimizer.learning_rate = 0.1  # peak learning rate, for the global batch_size below
  config.optimizer.momentum = 0.9  # SGD momentum
  config.optimizer.nesterov = False  # SGD Nesterov momentum
  config.optimizer.b1 = 0.9  # AdamW first-moment decay
  config.optimizer.b2 = 0.999  # AdamW second-moment decay
  config.optimizer.weight_decay = 1e-4  # kernels only (not biases, norm scales); sgd: L2, adamw: decoupled
  config.optimizer.grad_clip_norm = 10.0  # clip gradients to this global L2 norm; 0 disables
  config.optimizer.warmup_epochs = 2.0  # linear warm-up from 0, then cosine decay to 0 at the end

  config.batch_size = 128  # global batch size (all devices of all hosts)
  config.eval_batch_size = 128  # global batch size at evaluation
  config.num_epochs = 50.0  # training length; steps = num_epochs * train split size // batch_size
  config.num_train_steps = -1  # if > 0, overrides num_epochs (tests, quick checks)
  config.num_eval_steps = -1  # pretext evaluation batches; -1 = one pass over the eval split
  config.log_every_steps = 50  # write training metrics every this many steps
  config.eval_every_steps = 2000  # evaluate every this many steps (and always at the end)
  config.checkpoint_every_steps = 1000  # save a checkpoint every this many steps (and at the end)
  config.keep_checkpoints = 3  # number of most recent checkpoints kept
  config.profile = False  # capture a profile of a few steps into the workdir (TensorBoard)

  config.init_from = ''  # a pretraining workdir: load its latest checkpoint's weights strictly
  config.require_init_from = False  # True (finetune.py): training without init_from is an error
  config.dont_load = ('heads/.*',)  # regexes of parameter paths not loaded from init_from (re-initialised)
  return config


def parse_variants(arg: str | None, allowed: tuple[str, ...]) -> list[str]:
  """Splits a ':'-separated variant string; raises on a variant not in `allowed`."""
  variants = [v for v in (arg or '').split(':') if v]
  for variant in variants:
    if variant not in allowed:
      raise ValueError(f'Unknown config variant {variant!r} in {arg!r}; choose from {allowed}.')
  return variants


def apply_common_variants(config: ml_collections.ConfigDict, variants: list[str]) -> None:
  """Applies the shared variants (demo, tiny, r50, bf16) in place."""
  if 'r50' in variants:
    config.model.depth = 50
    config.data.crop_size = 224
    config.data.eval_crop_size = 224
  if 'bf16' in variants:
    config.model.dtype = 'bfloat16'
  if 'demo' in variants or 'tiny' in variants:
    config.dataset.name = 'synthetic'
    config.dataset.data_dir = DEMO_DATA_DIR
    config.dataset.train_split = 'train'
    config.dataset.eval_split = 'test'
    config.data.shuffle_buffer = 64
    config.data.color_jitter = False
    config.model.depth = 'tiny'
    config.model.coviar_iframe_depth = 'tiny'
    config.model.coviar_pframe_depth = 'tiny'
    for head in (config.pmsp, config.ctp, config.aot, config.rotation, config.infonce):
      head.hidden_dim = 32
    config.infonce.dim = 16
    config.classification.dropout_rate = 0.0
    config.optimizer.name = 'adamw'
    config.optimizer.learning_rate = 2e-3
    config.optimizer.weight_decay = 1e-4
    config.optimizer.warmup_epochs = 1.0
    config.keep_checkpoints = 2
    # The same function as 'native', 2-3x faster to differentiate on XLA:CPU (resnet3d.py).
    config.model.strided_conv = 'subsample'
  if 'demo' in variants:
    # Sized for a 2-core CPU: demo.py runs pretraining, fine-tuning and scratch in about 10 minutes.
    config.data.num_gops = 4
    config.data.p_per_gop = 1
    config.data.crop_size = 32
    config.data.crop_scales = (1.0, 0.875)
    config.data.eval_crop_size = 32
    config.data.eval_num_clips = 3
    config.data.eval_num_crops = 1
    config.pmsp.temporal_bins = (1, 4)
    config.batch_size = 8
    config.eval_batch_size = 32
    config.num_epochs = 8.0
    config.log_every_steps = 10
    config.eval_every_steps = 10_000  # only at the end
    config.checkpoint_every_steps = 100
  if 'tiny' in variants:
    config.data.num_gops = 2
    config.data.p_per_gop = 1
    config.data.crop_size = 16
    config.data.crop_scales = (1.0,)
    config.data.eval_crop_size = 16
    config.data.eval_num_clips = 2
    config.data.eval_num_crops = 1
    config.model.widths = (4, 4, 4, 4)
    config.pmsp.grid_sizes = (2,)
    config.pmsp.temporal_bins = (1, 2)
    for head in (config.pmsp, config.ctp, config.aot, config.rotation, config.infonce):
      head.hidden_dim = 8
    config.infonce.dim = 8
    config.batch_size = 4
    config.eval_batch_size = 4
    config.num_epochs = 1.0
    config.num_train_steps = 2
    config.num_eval_steps = 1
    config.log_every_steps = 1
    config.eval_every_steps = 2
    config.checkpoint_every_steps = 1
