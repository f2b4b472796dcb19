"""Parameters and FLOPs of IMR-R18, IMR-R50 and CoViAR, beside the paper's runtime table.

  .venv/bin/python benchmarks/model_cost.py            # all models (compiles only; CPU is fine)
  .venv/bin/python benchmarks/model_cost.py --models imr_r18,coviar

The networks are the configs' own: IMR-R18 is `configs/pmsp.py` (112 px, 5 GOPs x 5 P-frames, P-stream
temporal strides (1, 1, 2, 2, 2); docs/METHOD.md says why), IMR-R50 its `:r50` variant (224 px, and at
112 px), CoViAR `configs/supervised.py:coviar` at CoViAR's 224 px. Inference forward pass, batch 1,
train=False. FLOPs are counted two ways (benchmarks/flops.py): XLA's count of the compiled program (2 per
multiply-add, elementwise work included, kernel taps on padding skipped) and every tap (convolutions and
matrix products only, every kernel tap counted: PyTorch's `flop_counter` and cuDNN's convention). Papers
usually quote multiply-adds (MACs): the table shows every-tap GFLOPs / 2 as GMACs. Per frame = per clip / 30,
the frames the network reads (5 I-frames + 25 P-frames); the last column divides by the 60 decoded frames
the clip spans instead. CoViAR's own 4.2 counts GMACs per frame of a 12-frame GOP: one I-frame (ResNet-152)
and 11 P-frames (two ResNet-18s); the script also prints that figure from per-stream compiles.
The IMR paper does not say how it counts. Its 0.66 (R18) and 1.04 (R50) are close to our GMACs per
decoded frame (last column) at 112 px for both depths, so the R50 row is also given at 112 px;
this is our reading, not the paper's statement.
"""

import argparse
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from anywhere
from benchmarks import flops  # pylint: disable=g-import-not-at-top
from configs import pmsp, supervised  # pylint: disable=g-import-not-at-top
from imr_jax import models  # pylint: disable=g-import-not-at-top

GOP_SIZE = 12
# The paper's runtime table (GFLOPs per frame, as the paper counts them).
PAPER_GFLOPS_PER_FRAME = {'imr_r18': 0.66, 'imr_r50': 1.04, 'imr_r50_112': 1.04, 'coviar': 4.2}


def _coviar() -> ml_collections.ConfigDict:
  config = supervised.get_config('coviar')
  config.model.num_classes = 101
  config.data.crop_size = 224  # CoViAR's input size
  return config


def _r50_at_112() -> ml_collections.ConfigDict:
  config = pmsp.get_config('r50')
  config.data.crop_size = 112
  return config


MODELS = {
    'imr_r18': ('IMR R18', pmsp.get_config),
    'imr_r50': ('IMR R50', lambda: pmsp.get_config('r50')),
    'imr_r50_112': ('IMR R50', _r50_at_112),  # the paper's R50 figure fits 112 px
    'coviar': ('CoViAR (R152 + 2x R18)', _coviar),
}


def measure(config: ml_collections.ConfigDict) -> dict[str, float]:
  """Parameters, FLOPs per clip (XLA's and every tap) and compile seconds of one clip's inference forward."""
  backbone = models.build_backbone(config.model)
  t_i, t_p, size = config.data.num_gops, config.data.num_gops * config.data.p_per_gop, config.data.crop_size
  inputs = dict(
      iframes=jax.ShapeDtypeStruct((1, t_i, size, size, 3), jnp.float32),
      motion_vectors=jax.ShapeDtypeStruct((1, t_p, size, size, 2), jnp.float32),
      residuals=jax.ShapeDtypeStruct((1, t_p, size, size, 3), jnp.float32),
  )
  inputs = {name: value for name, value in inputs.items() if name[0] in config.model.streams}
  variables = jax.eval_shape(lambda x: backbone.init(jax.random.key(0), **x, train=False), inputs)
  num_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(variables['params']))
  forward = lambda v, x: backbone.apply(v, **x, train=False)['features']
  start = time.perf_counter()
  xla = flops.xla_flops(forward, variables, inputs)
  seconds = time.perf_counter() - start
  return {
      'params': num_params,
      'xla': xla,
      'every_tap': flops.every_tap_flops(forward, variables, inputs),
      'compile_s': seconds,
      'frames_read': t_i + t_p,
      'frames_spanned': t_i * GOP_SIZE,
      'size': size,
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--models', default=','.join(MODELS), help=f'comma-separated subset of {",".join(MODELS)}')
  args = parser.parse_args()
  names = args.models.split(',')
  unknown = set(names) - set(MODELS)
  if unknown:
    parser.error(f'unknown --models {sorted(unknown)}; choose from {sorted(MODELS)}')

  print(f'Inference, batch 1. Device: {jax.devices()[0].platform}. FLOPs: 2 per multiply-add; see the docstring.')
  header = (
      f'{"model":<24}{"input":>8}{"params (M)":>12}{"GFLOPs/clip XLA":>17}{"every tap":>11}'
      f'{"GMACs/frame":>13}{"paper GFLOPs/frame":>20}{"GMACs/decoded frame":>21}'
  )
  rows = []
  for name in names:
    label, make_config = MODELS[name]
    cost = measure(make_config())
    macs = cost['every_tap'] / 2 / 1e9
    rows.append(
        f'{label:<24}{cost["size"]:>5}px{cost["params"] / 1e6:>12.1f}{cost["xla"] / 1e9:>17.1f}'
        f'{cost["every_tap"] / 1e9:>11.1f}{macs / cost["frames_read"]:>13.2f}{PAPER_GFLOPS_PER_FRAME[name]:>20.2f}'
        f'{macs / cost["frames_spanned"]:>21.2f}'
    )
    print(f'  compiled {label} in {cost["compile_s"]:.0f} s', flush=True)
  print(header)
  print('\n'.join(rows))
  r18 = pmsp.get_config().model
  print(
      'GMACs/frame: every-tap GFLOPs / 2 per frame read (I-frames + P-frames); GMACs/decoded frame: per '
      f'frame the clip spans (GOP {GOP_SIZE}). IMR temporal strides of (stem pool, res2..res5): I '
      f'{tuple(r18.i_temporal_strides)}, P {tuple(r18.p_temporal_strides)}; 3x3x3 kernels.'
  )
  if 'coviar' in names:
    config = _coviar()
    costs = {}
    for streams in ('i', 'mr'):
      with config.unlocked():
        config.model.streams = streams
      costs[streams] = measure(config)['every_tap']
    t_i, t_p = config.data.num_gops, config.data.num_gops * config.data.p_per_gop
    iframe_macs, pframe_macs = costs['i'] / 2 / t_i / 1e9, costs['mr'] / 2 / t_p / 1e9
    print(
        f'CoViAR per frame: I-frame (ResNet-152) {iframe_macs:.2f} GMACs, P-frame (MV + residual '
        f'ResNet-18) {pframe_macs:.2f} GMACs; over a GOP of 12 as CoViAR counts, (I + 11 P) / 12 '
        f'= {(iframe_macs + 11 * pframe_macs) / 12:.2f} GMACs/frame (paper: 4.2).'
    )


if __name__ == '__main__':
  main()
