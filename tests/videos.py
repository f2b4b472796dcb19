"""Small synthetic videos with known motion, for tests (any test file may import this module).

The scene: a static textured background, and a textured square that moves a fixed integer number of
pixels per frame. Both textures are smooth noise, so block matching finds the true motion.
"""

from __future__ import annotations

import pathlib

import av
import numpy as np


def _texture(rng: np.random.Generator, height: int, width: int, smooth: int) -> np.ndarray:
  """uint8 (height, width, 3) noise, box-blurred over `smooth` px (not pure high frequency)."""
  # Mostly luma: chroma detail would be lost to the codec's 4:2:0 subsampling.
  luma = rng.uniform(0, 255, (height + smooth, width + smooth, 1))
  noise = luma + rng.uniform(-20, 20, (1, 1, 3))
  summed = noise.cumsum(0).cumsum(1)
  summed = np.pad(summed, ((1, 0), (1, 0), (0, 0)))
  box = (
      summed[smooth:, smooth:] - summed[:-smooth, smooth:] - summed[smooth:, :-smooth] + summed[:-smooth, :-smooth]
  ) / smooth**2
  box = box[:height, :width]
  box = (box - box.mean()) / (box.std() + 1e-6) * 50 + 128  # restore contrast lost to the blur
  return np.clip(box, 0, 255).astype(np.uint8)


def moving_square_frames(
    num_frames: int,
    height: int,
    width: int,
    *,
    velocity: tuple[int, int] = (2, 1),
    size: int = 32,
    start: tuple[int, int] = (16, 16),
    seed: int = 0,
    smooth: int = 3,
) -> np.ndarray:
  """Frames of a textured square moving `velocity` = (dx, dy) px per frame over a textured scene.

  Frame t shows the square with its top-left corner at start + t * velocity (x, y), clipped by the
  frame; the caller keeps it inside if it needs clean answers.

  Returns:
    uint8 (num_frames, height, width, 3) RGB.
  """
  rng = np.random.default_rng(seed)
  background = _texture(rng, height, width, smooth)
  square = _texture(rng, size, size, smooth)
  frames = np.repeat(background[None], num_frames, axis=0)
  for t in range(num_frames):
    x0, y0 = start[0] + t * velocity[0], start[1] + t * velocity[1]
    xa, ya = max(x0, 0), max(y0, 0)
    xb, yb = min(x0 + size, width), min(y0 + size, height)
    if xa < xb and ya < yb:
      frames[t, ya:yb, xa:xb] = square[ya - y0 : yb - y0, xa - x0 : xb - x0]
  return frames


def write_video(path: str | pathlib.Path, frames: np.ndarray, *, fps: int = 25) -> pathlib.Path:
  """Writes uint8 (T, H, W, 3) RGB frames losslessly (FFV1 in Matroska, RGB kept exactly)."""
  path = pathlib.Path(path)
  with av.open(str(path), 'w', format='matroska') as container:
    stream = container.add_stream('ffv1', rate=fps)
    stream.height, stream.width = frames.shape[1:3]
    stream.pix_fmt = 'bgr0'
    for frame in frames:
      container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format='rgb24')))
    container.mux(stream.encode(None))
  return path


def write_moving_square_video(
    path: str | pathlib.Path, num_frames: int = 14, height: int = 64, width: int = 96, **kwargs
) -> pathlib.Path:
  """`moving_square_frames` written losslessly to `path` (re-encode it to get an MPEG-4 stream)."""
  return write_video(path, moving_square_frames(num_frames, height, width, **kwargs))


def write_mpeg4(
    path: str | pathlib.Path,
    frames: np.ndarray,
    *,
    gop_size: int = 12,
    max_b_frames: int = 0,
    iframes_at: tuple[int, ...] = (),
) -> pathlib.Path:
  """Encodes frames straight to a raw MPEG-4 Part 2 stream, optionally breaking CoViAR's rules.

  Args:
    path: output `.m4v` path.
    frames: uint8 (T, H, W, 3) RGB.
    gop_size: the encoder's GOP size.
    max_b_frames: > 0 makes a stream with B-frames.
    iframes_at: frame numbers forced to be I-frames (irregular GOPs).
  """
  path = pathlib.Path(path)
  with av.open(str(path), 'w', format='m4v') as container:
    stream = container.add_stream('mpeg4', rate=25)
    stream.height, stream.width = frames.shape[1:3]
    stream.pix_fmt = 'yuv420p'
    context = stream.codec_context
    context.gop_size = gop_size
    context.max_b_frames = max_b_frames
    context.flags |= av.codec.context.Flags.qscale
    context.global_quality = 118
    for t, rgb in enumerate(frames):
      frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format='rgb24')
      frame = frame.reformat(format='yuv420p')
      frame.pts = t
      frame.pict_type = av.video.frame.PictureType.I if t in iframes_at else av.video.frame.PictureType.NONE
      container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
  return path
