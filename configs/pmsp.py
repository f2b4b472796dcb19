"""PMSP (pyramidal motion statistics prediction) pretraining of IMRNet on Kinetics-400.

  python main.py --config=configs/pmsp.py --workdir=runs/pmsp
Variants: demo, tiny, r50, bf16 (see default.py).
"""

from configs import default


def get_config(arg: str | None = None):
  return default.pretext_config('pmsp', arg)
