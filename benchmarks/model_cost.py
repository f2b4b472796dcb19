"""Parameters and FLOPs of IMR-R18, IMR-R50 and CoViAR, beside the paper's runtime table.

  .venv/bin/python benchmarks/model_cost.py            # all models (compiles only; CPU is fine)
  .venv/bin/python benchmarks/model_cost.py --models imr_r18,coviar

FLOPs are XLA's own count for the compiled inference forward pass (batch 1, train=False):
`jax.jit(f).lower(...).compile().cost_analysis()['flops']`. XLA counts 2 FLOPs per multiply-add and
skips the kernel taps that fall on padding; it also counts elementwise work (batch norm, ReLU,
pooling, connection gates). Papers usually quote multiply-adds (MACs), so the table also shows
XLA FLOPs / 2 as GMACs. Per frame = per clip / 30, the frames the network reads (5 I-frames + 25
P-frames; for CoViAR 5 I-frames + 25 MV frames, the residual frames being the same 25 P-frames).
The clip spans 5 GOPs = 60 decoded frames; the last column divides by that instead.
CoViAR's own 4.2 counts GMACs per frame of a 12-frame GOP: one I-frame (ResNet-152) and 11
P-frames (two ResNet-18s); the script also prints that figure from per-stream compiles.
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
from imr_jax import models  # pylint: disable=g-import-not-at-top

NUM_GOPS = 5
P_PER_GOP = 5
T_I, T_P = NUM_GOPS, NUM_GOPS * P_PER_GOP
FRAMES_READ = T_I + T_P  # per-frame denominator
FRAMES_SPANNED = NUM_GOPS * 12  # GOP size 12

# The paper's runtime table (GFLOPs per frame, as the paper counts them).
PAPER_GFLOPS_PER_FRAME = {'imr_r18': 0.66, 'imr_r50': 1.04, 'imr_r50_112': 1.04, 'coviar': 4.2}


def imrnet_config(depth: int) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(
      dict(
          name='imrnet',
          depth=depth,
          widths=(),
          streams='imr',
          connections='bidirectional',
          connection_conv=True,
          connection_attention=True,
          i_temporal_strides=(1, 1, 1, 1, 1),
          p_temporal_strides=(1, 1, 2, 2, 2),
          dtype='float32',
      )
  )


def coviar_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(
      dict(
          name='coviar',
          streams='imr',
          widths=(),
          num_classes=101,
          coviar_iframe_depth=152,
          coviar_pframe_depth=18,
          coviar_stream_weights=(2.0, 1.0, 1.0),
          dtype='float32',
      )
  )


MODELS = {
    'imr_r18': ('IMR R18', imrnet_config(18), 112),
    'imr_r50': ('IMR R50', imrnet_config(50), 224),
    'imr_r50_112': ('IMR R50', imrnet_config(50), 112),  # the paper's R50 figure fits 112 px
    'coviar': ('CoViAR (R152 + 2x R18)', coviar_config(), 224),
}


def measure(config: ml_collections.ConfigDict, size: int) -> tuple[int, float, float]:
  """Returns (parameters, XLA FLOPs per clip, compile seconds) of one clip's inference forward."""
  backbone = models.build_backbone(config)
  inputs = dict(
      iframes=jax.ShapeDtypeStruct((1, T_I, size, size, 3), jnp.float32),
      motion_vectors=jax.ShapeDtypeStruct((1, T_P, size, size, 2), jnp.float32),
      residuals=jax.ShapeDtypeStruct((1, T_P, size, size, 3), jnp.float32),
  )
  variables = jax.eval_shape(lambda x: backbone.init(jax.random.key(0), **x, train=False), inputs)
  num_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(variables['params']))
  forward = lambda v, x: backbone.apply(v, **x, train=False)['features']
  start = time.perf_counter()
  compiled = jax.jit(forward).lower(variables, inputs).compile()
  seconds = time.perf_counter() - start
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # older jax returned one dict per device
    cost = cost[0]
  return num_params, float(cost['flops']), seconds


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--models', default=','.join(MODELS), help=f'comma-separated subset of {",".join(MODELS)}')
  args = parser.parse_args()
  names = args.models.split(',')
  unknown = set(names) - set(MODELS)
  if unknown:
    parser.error(f'unknown --models {sorted(unknown)}; choose from {sorted(MODELS)}')

  print(
      f'Clip: {T_I} I-frames + {T_P} P-frames (MV and residual), batch 1, inference. Device: '
      f'{jax.devices()[0].platform}. FLOPs: XLA cost analysis (2 per multiply-add); '
      f'GMACs = XLA GFLOPs / 2.'
  )
  header = (
      f'{"model":<24}{"input":>8}{"params (M)":>12}{"GFLOPs/clip":>13}{"GFLOPs/frame":>14}'
      f'{"GMACs/frame":>13}{"paper GFLOPs/frame":>20}{"GMACs/60 frames":>17}'
  )
  rows = []
  for name in names:
    label, config, size = MODELS[name]
    num_params, flops, seconds = measure(config, size)
    per_frame = flops / FRAMES_READ / 1e9
    rows.append(
        f'{label:<24}{size:>5}px{num_params / 1e6:>12.1f}{flops / 1e9:>13.1f}'
        f'{per_frame:>14.2f}{per_frame / 2:>13.2f}{PAPER_GFLOPS_PER_FRAME[name]:>20.2f}'
        f'{flops / 2 / FRAMES_SPANNED / 1e9:>17.2f}'
    )
    print(f'  compiled {label} in {seconds:.0f} s', flush=True)
  print(header)
  print('\n'.join(rows))
  print(
      f'GFLOPs/frame and GMACs/frame: per clip / {FRAMES_READ} frames read; GMACs/60 frames: per '
      f'clip / {FRAMES_SPANNED} decoded frames spanned. IMR temporal strides of (stem pool, '
      'res2..res5): I (1,1,1,1,1), P (1,1,2,2,2); 3x3x3 kernels.'
  )
  if 'coviar' in names:
    _, config, size = MODELS['coviar']
    iframe = measure(ml_collections.ConfigDict({**config.to_dict(), 'streams': 'i'}), size)[1]
    pframe = measure(ml_collections.ConfigDict({**config.to_dict(), 'streams': 'mr'}), size)[1]
    iframe_macs, pframe_macs = iframe / 2 / T_I / 1e9, pframe / 2 / T_P / 1e9
    print(
        f'CoViAR per frame: I-frame (ResNet-152) {iframe_macs:.2f} GMACs, P-frame (MV + residual '
        f'ResNet-18) {pframe_macs:.2f} GMACs; over a GOP of 12 as CoViAR counts, (I + 11 P) / 12 '
        f'= {(iframe_macs + 11 * pframe_macs) / 12:.2f} GMACs/frame (paper: 4.2).'
    )


if __name__ == '__main__':
  main()
