"""CTP (correspondence type prediction) pretraining of IMRNet on Kinetics-400.

  python main.py --config=configs/ctp.py --workdir=runs/ctp           # 4 classes
  python main.py --config=configs/ctp.py:binary --workdir=runs/ctp2   # CTP (Binary): aligned or not
Variants: binary, demo, tiny, r50, bf16 (see default.py).
"""

import ml_collections

from configs import default


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variants = default.parse_variants(arg, allowed=('binary',) + default.COMMON_VARIANTS)
  config = default.base_config()
  config.task.name = 'ctp_binary' if 'binary' in variants else 'ctp'
  default.apply_common_variants(config, variants)
  return config
