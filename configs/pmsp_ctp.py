"""PMSP + CTP pretraining of IMRNet on Kinetics-400 (sum of the two losses, weights in config.task).

  python main.py --config=configs/pmsp_ctp.py --workdir=runs/pmsp_ctp
Variants: demo, tiny, r50, bf16 (see default.py).
"""

import ml_collections

from configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = default.base_config()
  config.task.name = 'pmsp_ctp'
  default.apply_common_variants(config, default.parse_variants(arg, allowed=default.COMMON_VARIANTS))
  return config
