"""Fine-tuning a pretrained IMRNet for action classification (the pretrained rows of the tables).

  python main.py --config=configs/finetune.py:ucf101:1 --workdir=runs/pmsp_ucf101_1 \
      --config.init_from=runs/pmsp
Same variants and schedule as supervised.py, so "scratch" and "pretrained" runs get the same budget;
`init_from` names a pretraining workdir whose latest checkpoint's weights are loaded strictly (all but
the pretext heads, `dont_load`).
"""

import ml_collections

from configs import supervised


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = supervised.classification_config(arg)
  config.init_from = ''  # required: set with --config.init_from=PRETRAINING_WORKDIR
  config.require_init_from = True  # an empty init_from is an error, not a silent scratch run
  return config
