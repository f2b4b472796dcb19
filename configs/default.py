"""Every configuration key of the project, each with a one-line comment.

Experiment configs (pmsp.py, ctp.py, ...) import this module and override a few keys. Configs hold no
derived numbers: training and warm-up steps are computed at run time from epochs and dataset sizes.

  python main.py --config=configs/default.py --workdir=runs/pmsp   # the same run as configs/pmsp.py

Variants are passed after the file name, separated by colons, e.g.
`--config=configs/pmsp.py:demo` or `--config=configs/finetune.py:hmdb51:2:r50`. The shared variants:
  demo   the synthetic data set and a small network: a CPU run of minutes (what `demo.py` uses;
         its values live in configs/demo.py)
  tiny   the smallest network and clip: a CPU run of seconds (what the tests use; configs/demo.py)
  r50    3D-ResNet-50 streams on 224 x 224 crops (the paper's large setting; wants data converted with
         `data_prep.convert --map_downscale=1`, the codec's full 340x256 maps)
  bf16   bfloat16 compute (parameters and optimizer state stay float32)
"""

import ml_collections

from configs import demo

COMMON_VARIANTS = ('demo', 'tiny', 'r50', 'bf16')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the default config: PMSP pretraining of IMRNet-R18 on Kinetics-400."""
  return pretext_config('pmsp', arg)


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
  config.model.depth = 18  # 3D-ResNet depth per stream: 10 | 18 | 34 | 50 | 101 | 152
  config.model.widths = ()  # base widths of res2..res5; () = the standard (64, 128, 256, 512)
  config.model.streams = 'imr'  # which streams run: any non-empty subset of 'i', 'm', 'r'
  config.model.connections = 'bidirectional'  # bidirectional | unidirectional (P -> I only) | none
  config.model.connection_conv = True  # connections map the source stream through a conv
  config.model.connection_attention = True  # connections scale by an input-dependent gate
  config.model.i_temporal_strides = (1, 1, 1, 1, 1)  # I-stream temporal strides: stem pool, res2..res5
  # M/R-stream temporal strides: stem pool, res2..res5. IMR-R18 halves the 25 P-frames' time at res3-res5:
  # 74.5 GFLOPs per clip (XLA's count), the paper's cost (docs/METHOD.md, benchmarks/model_cost.py).
  config.model.p_temporal_strides = (1, 1, 2, 2, 2)
  config.model.dtype = 'float32'  # compute dtype: float32 | bfloat16 (parameters stay float32)
  # name='coviar' only: per-frame 2D ResNets with fused per-stream logits.
  config.model.coviar_iframe_depth = 152  # ResNet depth of the I-stream
  config.model.coviar_pframe_depth = 18  # ResNet depth of the M and R streams
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
  if 'demo' in variants:
    demo.apply_demo(config)
  if 'tiny' in variants:
    demo.apply_tiny(config)


def pretext_config(
    task: str, arg: str | None, task_variants: dict[str, str] | None = None
) -> ml_collections.ConfigDict:
  """A pretraining config: the defaults with `config.task.name = task` and the shared variants.

  Args:
    task: the task trained (imr_jax.tasks.TASK_NAMES).
    arg: the variants after the file name, e.g. 'demo' or 'binary:r50'.
    task_variants: extra variants that name another task, e.g. {'binary': 'ctp_binary'}.
  """
  task_variants = task_variants or {}
  variants = parse_variants(arg, allowed=tuple(task_variants) + COMMON_VARIANTS)
  config = base_config()
  config.task.name = next((task_variants[v] for v in variants if v in task_variants), task)
  apply_common_variants(config, variants)
  return config
