"""AOT (arrow of time: forward vs reversed) baseline pretraining of IMRNet on Kinetics-400.

  python main.py --config=configs/aot.py --workdir=runs/aot
Variants: demo, tiny, r50, bf16 (see default.py).
"""

from configs import default


def get_config(arg: str | None = None):
  return default.pretext_config('aot', arg)
