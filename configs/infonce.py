"""InfoNCE (contrastive, in-batch negatives) baseline pretraining of IMRNet on Kinetics-400.

  python main.py --config=configs/infonce.py --workdir=runs/infonce
Variants: demo, tiny, r50, bf16 (see default.py).
"""

from configs import default


def get_config(arg: str | None = None):
  return default.pretext_config('infonce', arg)
