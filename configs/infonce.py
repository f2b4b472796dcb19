"""InfoNCE (contrastive, in-batch negatives) baseline pretraining of IMRNet on Kinetics-400.

  python main.py --config=configs/infonce.py --workdir=runs/infonce
Variants: demo, tiny, r50, bf16 (see default.py).
"""

import ml_collections

from configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = default.base_config()
  config.task.name = 'infonce'
  default.apply_common_variants(config, default.parse_variants(arg, allowed=default.COMMON_VARIANTS))
  return config
