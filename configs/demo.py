"""The CPU sizes: the `:demo` variant (tuned for `python demo.py`) and the `:tiny` variant (the tests').

Not a config of its own: every experiment config applies these through its `:demo` / `:tiny` variant,
e.g. `python main.py --config=configs/pmsp.py:demo --workdir=runs/pmsp_demo`.
"""

import ml_collections

# Where `python -m data_prep.synthetic` + `python -m data_prep.convert` put the demo data set.
DATA_DIR = 'data/synthetic'
# Epochs of fine-tuning and of training from scratch on the demo's small labelled set (24 training
# videos: 3 steps an epoch), for demo.py and the `:demo` variant of supervised.py and finetune.py.
LABELLED_EPOCHS = 40


def _small_network(config: ml_collections.ConfigDict) -> None:
  """What :demo and :tiny share: the synthetic set, a 3D-ResNet-10 and a CPU-friendly optimizer."""
  config.dataset.name = 'synthetic'
  config.dataset.data_dir = DATA_DIR
  config.dataset.train_split = 'train'
  config.dataset.eval_split = 'test'
  config.data.shuffle_buffer = 64
  config.data.color_jitter = False
  config.model.depth = 10
  config.model.widths = (8, 16, 32, 64)
  # Clips of 2-4 P-frames: no temporal striding (IMR-R18's would leave one frame from res4 on).
  config.model.p_temporal_strides = (1, 1, 1, 1, 1)
  config.model.coviar_iframe_depth = 10
  config.model.coviar_pframe_depth = 10
  config.infonce.dim = 16
  config.classification.dropout_rate = 0.0
  config.optimizer.name = 'adamw'
  config.optimizer.learning_rate = 2e-3
  config.optimizer.weight_decay = 1e-4
  config.optimizer.warmup_epochs = 1.0
  config.keep_checkpoints = 2
  # The same function as 'native', 2-3x faster to differentiate on XLA:CPU (resnet3d.py).
  config.model.strided_conv = 'subsample'


def _head_widths(config: ml_collections.ConfigDict, hidden_dim: int) -> None:
  for head in (config.pmsp, config.ctp, config.aot, config.rotation, config.infonce):
    head.hidden_dim = hidden_dim


def apply_demo(config: ml_collections.ConfigDict) -> None:
  """Sized for a 2-core CPU: demo.py runs pretraining, two fine-tunings and two scratch runs in ~15 min."""
  _small_network(config)
  _head_widths(config, 32)
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


def apply_tiny(config: ml_collections.ConfigDict) -> None:
  """The smallest network and clip, two training steps: a run of seconds, for the tests."""
  _small_network(config)
  _head_widths(config, 8)
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
  config.infonce.dim = 8
  config.batch_size = 4
  config.eval_batch_size = 4
  config.num_epochs = 1.0
  config.num_train_steps = 2
  config.num_eval_steps = 1
  config.log_every_steps = 1
  config.eval_every_steps = 2
  config.checkpoint_every_steps = 1
