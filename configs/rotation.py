"""Rotation (0/90/180/270 degrees) baseline pretraining of IMRNet on Kinetics-400.

  python main.py --config=configs/rotation.py --workdir=runs/rotation
Variants: demo, tiny, r50, bf16 (see default.py).
"""

from configs import default


def get_config(arg: str | None = None):
  return default.pretext_config('rotation', arg)
