r"""Draws one GOP of a video as a grid of what the codec extracts; writes a PNG.

  python -m data_prep.visualize VIDEO --gop=N --out=gop.png [--mode=both|accumulated|per_frame]

VIDEO is a stream written by imr_jax.codec.reencode; any other video is first re-encoded (to
--width x --height, into a temporary file). One column per frame of the GOP (I-frame first); rows:
  frame                the decoded frame (I-frame; P-frames rebuilt as F_I(A_t(p)) + residual)
  accumulated MV       MV since the I-frame, colour-coded: hue = direction, saturation = length
                       (one scale for the whole row, printed in the row label); under the I-frame,
                       the key: a colour wheel whose rim is that length
  accumulated residual F_t(p) - F_I(A_t(p)), as 128 + gain * r (grey = 0)
  MV                   the per-frame MV map (same colour code)
  residual             the per-frame residual F_t(p) - F_{t-1}(p - mv(p))
--mode picks the accumulated rows, the per-frame rows, or both. The frames are scaled down so that the
picture is at most --max_width pixels wide (default: a laptop screen's width; 0 keeps every pixel);
the labels keep their size.
"""

from __future__ import annotations

import pathlib
import sys
import tempfile
from collections.abc import Sequence

from absl import flags
import numpy as np

from imr_jax import cli
from imr_jax import codec
from imr_jax import visualization

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines the CLI flags; called by the entry point only, so importing this module defines none."""
  flags.DEFINE_integer('gop', 0, 'GOP number (0-based).')
  flags.DEFINE_string('out', 'gop.png', 'Output image path (.png).')
  flags.DEFINE_enum('mode', 'both', ['both', 'accumulated', 'per_frame'], 'Which MV / residual rows to draw.')
  flags.DEFINE_float('residual_gain', 2.0, 'Residual contrast: shown as 128 + gain * r.')
  flags.DEFINE_integer('width', 340, 'Width for re-encoding a video that needs it.')
  flags.DEFINE_integer('height', 256, 'Height for re-encoding a video that needs it.')
  flags.DEFINE_integer('max_width', 1600, 'Scale the picture down to at most this width (0: full size).')


def _select_gop(path: pathlib.Path, index: int, accumulate: bool) -> codec.Gop:
  for gop in codec.iter_gops(path, accumulate=accumulate):
    if gop.index == index:
      return gop
  raise codec.CodecError(f'{path}: has only {gop.index + 1} GOPs, no GOP {index}; pass --gop between 0 and {gop.index}')


def _motion_row(motion: np.ndarray) -> tuple[list[np.ndarray], float]:
  scale = max(float(np.hypot(motion[..., 0], motion[..., 1]).max(initial=0.0)), 1.0)
  return [visualization.flow_to_rgb(m, scale) for m in motion], scale


def gop_picture(
    path: str | pathlib.Path,
    index: int,
    *,
    mode: str = 'both',
    residual_gain: float = 2.0,
    max_width: int | None = None,
) -> np.ndarray:
  """The grid picture of GOP `index` of a re-encoded stream, uint8 (H', W', 3)."""
  path = pathlib.Path(path)
  accumulated = _select_gop(path, index, accumulate=True)
  height, width = accumulated.iframe.shape[:2]
  blank = np.full((height, width, 3), 255, np.uint8)
  # F_t(p) = F_I(A_t(p)) + R_t(p) exactly, with A_t(p) = p - accumulated MV.
  ys, xs = np.mgrid[0:height, 0:width]
  frames = [accumulated.iframe]
  for motion, residual in zip(accumulated.motion_vectors, accumulated.residuals):
    source = accumulated.iframe[ys - motion[..., 1], xs - motion[..., 0]]
    frames.append((source.astype(np.int16) + residual).astype(np.uint8))
  rows, labels = [frames], ['frame']
  views = []
  if mode in ('both', 'accumulated'):
    views.append(('accumulated ', accumulated))
  if mode in ('both', 'per_frame'):
    views.append(('', _select_gop(path, index, accumulate=False)))
  for prefix, gop in views:
    motion_images, scale = _motion_row(gop.motion_vectors)
    rows.append([visualization.colour_wheel(height, width)] + motion_images)
    labels.append(f'{prefix}MV (max {scale:.0f} px)')
    rows.append([blank] + [visualization.residual_to_rgb(r, residual_gain) for r in gop.residuals])
    labels.append(f'{prefix}residual')
  columns = ['I'] + [f'P{t}' for t in range(1, accumulated.num_pframes + 1)]
  return visualization.image_grid(rows, row_labels=labels, column_labels=columns, max_width=max_width)


def main(argv: Sequence[str]) -> None:
  if len(argv) != 2:
    raise cli.UserError('usage: python -m data_prep.visualize VIDEO --gop=N --out=gop.png')
  video = pathlib.Path(argv[1])
  try:
    info = codec.probe(video)
    with tempfile.TemporaryDirectory() as directory:
      if info.codec_name != 'mpeg4' or info.gop_size is None:
        gop = 'an unknown GOP size' if info.gop_size is None else f'GOP size {info.gop_size}'
        print(
            f'{video} is {info.codec_name} with {gop}: re-encoding it to {FLAGS.width}x{FLAGS.height} MPEG-4 first',
            file=sys.stderr,
        )
        video = pathlib.Path(
            codec.reencode(video, pathlib.Path(directory) / 'stream.m4v', width=FLAGS.width, height=FLAGS.height).path
        )
      picture = gop_picture(
          video, FLAGS.gop, mode=FLAGS.mode, residual_gain=FLAGS.residual_gain, max_width=FLAGS.max_width
      )
  except codec.CodecError as error:
    sys.exit(f'error: {error}')
  print(visualization.save_image(picture, FLAGS.out))


if __name__ == '__main__':
  define_flags()
  cli.run(main)
