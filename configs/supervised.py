"""Action classification trained from scratch (the "scratch" rows and the connection ablations).

  python main.py --config=configs/supervised.py:ucf101:1 --workdir=runs/scratch_ucf101_1
  python main.py --config=configs/supervised.py:hmdb51:1:no_attention --workdir=runs/noatt_hmdb51_1
Variants: a data set (ucf101 | hmdb51 | synthetic; default ucf101), an official split (1 | 2 | 3;
default 1), the connection ablations (no_connection, unidirectional, no_conv, no_attention), coviar
(three separate streams, CoViAR-style), and demo, tiny, r50, bf16 (see default.py). A data set named
in the variants is kept by demo and tiny (ucf101:1:tiny: a tiny network on UCF101 split 1); without
one, demo and tiny use the synthetic demo set.
"""

import ml_collections

from configs import default
from configs import demo

DATASETS = ('ucf101', 'hmdb51', 'synthetic')
SPLITS = ('1', '2', '3')
ABLATIONS = ('no_connection', 'unidirectional', 'no_conv', 'no_attention', 'coviar')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return classification_config(arg)


def classification_config(arg: str | None) -> ml_collections.ConfigDict:
  """The classification config shared by supervised.py and finetune.py."""
  variants = default.parse_variants(arg, allowed=DATASETS + SPLITS + ABLATIONS + default.COMMON_VARIANTS)
  dataset = [v for v in variants if v in DATASETS]
  split = [v for v in variants if v in SPLITS]
  if len(dataset) > 1 or len(split) > 1:
    raise ValueError(f'Config {arg!r} names more than one data set or split; name at most one of each.')
  dataset_name = dataset[0] if dataset else 'ucf101'
  split_number = split[0] if split else '1'

  config = default.base_config()
  config.task.name = 'classification'
  config.dataset.name = dataset_name
  # data_prep.convert writes the three official splits of UCF101/HMDB51 to one directory, each video
  # once; official split N is read as its splits 'trainN' and 'testN'.
  config.dataset.data_dir = f'data/{dataset_name}'
  config.dataset.train_split = f'train{split_number}'
  config.dataset.eval_split = f'test{split_number}'
  config.batch_size = 64
  config.eval_batch_size = 64
  config.num_epochs = 100.0
  config.optimizer.learning_rate = 0.05
  config.optimizer.warmup_epochs = 5.0
  config.eval_every_steps = 1000
  config.checkpoint_every_steps = 500

  if 'no_connection' in variants:
    config.model.connections = 'none'
  if 'unidirectional' in variants:
    config.model.connections = 'unidirectional'
  if 'no_conv' in variants:
    config.model.connection_conv = False
  if 'no_attention' in variants:
    config.model.connection_attention = False
  if 'coviar' in variants:
    config.model.name = 'coviar'
    # CoViAR classifies with its own per-stream layers: fine-tuning to another data set (another class
    # count) re-initialises them, as the pretext heads of IMRNet.
    config.dont_load = ('heads/.*', 'backbone/[imr]_classifier/.*')
    config.model.connections = 'none'
  named_dataset = {key: config.dataset[key] for key in ('name', 'data_dir', 'train_split', 'eval_split')}
  default.apply_common_variants(config, variants)
  if dataset:
    # A data set named in the variants is kept: ':demo' / ':tiny' then shrink the network and clips
    # only (e.g. ucf101:1:tiny is a tiny network on split 1 of data/ucf101), never switch the data.
    config.dataset.update(named_dataset)
  if 'demo' in variants:
    config.num_epochs = float(demo.LABELLED_EPOCHS)  # a small labelled set: few steps per epoch
  if dataset_name == 'synthetic':
    config.dataset.update(data_dir=demo.DATA_DIR, train_split='train', eval_split='test')
  return config
