"""PMSP + CTP pretraining of IMRNet on Kinetics-400: the sum of the two losses, weighted by
config.pmsp.loss_weight and config.ctp.loss_weight.

  python main.py --config=configs/pmsp_ctp.py --workdir=runs/pmsp_ctp
Variants: demo, tiny, r50, bf16 (see default.py).
"""

from configs import default


def get_config(arg: str | None = None):
  return default.pretext_config('pmsp_ctp', arg)
