"""CTP (correspondence type prediction) pretraining of IMRNet on Kinetics-400.

  python main.py --config=configs/ctp.py --workdir=runs/ctp           # 4 classes
  python main.py --config=configs/ctp.py:binary --workdir=runs/ctp2   # CTP (Binary): aligned or not
Variants: binary, demo, tiny, r50, bf16 (see default.py).
"""

from configs import default


def get_config(arg: str | None = None):
  return default.pretext_config('ctp', arg, task_variants={'binary': 'ctp_binary'})
