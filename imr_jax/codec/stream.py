"""Opening, probing and re-encoding videos (METHOD.md section 2: MPEG-4 Part 2, q=1, GOP 12)."""

from __future__ import annotations

import dataclasses
import fractions
import os
import pathlib
from collections.abc import Iterator
from typing import Any

import av
from av.video.reformatter import Interpolation
import numpy as np

from imr_jax.codec.errors import CodecError

# Frame sides the codec accepts. The upper bound guards memory: one GOP of outputs at 4096 x 4096
# already takes about 2.6 GB.
MIN_SIDE = 8
MAX_SIDE = 4096
# FFmpeg's FF_QP2LAMBDA: `-q:v q` is global_quality = q * FF_QP2LAMBDA with the qscale flag.
_QP2LAMBDA = 118
# MPEG-4 Part 2 codes the time base denominator in 16 bits.
_MAX_TIME_BASE_DENOMINATOR = 65535
REENCODE_HINT = 're-encode it first with imr_jax.codec.reencode(src, dst)'
# Machine-independent pixels. FFmpeg picks its DCTs and swscale its conversions by the SIMD instruction
# set of the CPU it runs on, and plain C, SSE2, AVX2 and AVX-512 round differently: the same video
# gave other bytes on other machines. These settings pin one exact implementation (checked with
# FFmpeg's CPU flags forced to plain C, SSE2 and all: byte-identical output; tests/test_codec.py).
# swscale needs BITEXACT | ACCURATE_RND for both scaling (CoViAR's bicubic) and YUV -> RGB: with
# BITEXACT alone, plain C and AVX2 still differed by up to 2 levels. ACCURATE_RND disables swscale's
# fast YUV -> RGB converters, which costs about 0.2-0.45 ms per 340x256 frame (README, codec speed).
# Used with one thread.
EXACT_SCALING = Interpolation.BITEXACT | Interpolation.ACCURATE_RND
EXACT_TO_RGB = EXACT_SCALING
EXACT_ENCODER_OPTIONS = {'dct': 'int', 'idct': 'simple'}  # with Flags.bitexact and one thread
EXACT_DECODER_OPTIONS = {'idct': 'simple'}


@dataclasses.dataclass(frozen=True)
class StreamInfo:
  """What `probe` and `reencode` report about a video stream.

  Attributes:
    path: the file.
    codec_name: FFmpeg decoder name of the first video stream ('mpeg4' after `reencode`).
    width: frame width in pixels.
    height: frame height in pixels.
    num_frames: number of frames in the stream.
    gop_size: the I-frame period when the stream has I-frames exactly at 0, g, 2g, ... and no
      B-frames (for a stream of one GOP, its length); None when the GOPs are irregular.
    has_b_frames: whether any frame is a B-frame.
  """

  path: str
  codec_name: str
  width: int
  height: int
  num_frames: int
  gop_size: int | None
  has_b_frames: bool


def check_size(path: Any, width: int, height: int, what: str = 'frames') -> None:
  """Raises CodecError unless MIN_SIDE <= width, height <= MAX_SIDE."""
  if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
    raise CodecError(
        f'{path}: {what} of {width}x{height} pixels are outside the supported '
        f'{MIN_SIDE}..{MAX_SIDE} pixels per side; re-encode it to a sensible size '
        f'(e.g. imr_jax.codec.reencode(src, dst, width=340, height=256))'
    )


def open_video(path: Any) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
  """Opens the first video stream of a file, turning every failure into a CodecError."""
  file = pathlib.Path(path)
  if not file.exists():
    raise CodecError(f'{path}: no such file; check the path')
  if not file.is_file():
    raise CodecError(f'{path}: not a regular file; give the path of a video file')
  try:
    container = av.open(str(file))
  except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as error:
    raise CodecError(
        f'{path}: not a video FFmpeg can read ({error}); give a video file, or re-encode it with ffmpeg'
    ) from None
  if not container.streams.video:
    kinds = ', '.join(sorted({s.type for s in container.streams})) or 'nothing'
    container.close()
    raise CodecError(f'{path}: has no video stream (it holds {kinds}); give a video file')
  stream = container.streams.video[0]
  if stream.codec_context is None or not stream.codec_context.name:
    container.close()
    raise CodecError(f'{path}: the video stream has no codec FFmpeg can decode; re-encode it with ffmpeg')
  stream.codec_context.options = dict(EXACT_DECODER_OPTIONS)
  return container, stream


def _vop_types(packet: bytes) -> list[str]:
  """MPEG-4 Part 2 coding types ('I', 'P', 'B', 'S') of the VOPs whose headers start in a packet."""
  types = []
  start = packet.find(b'\x00\x00\x01\xb6')
  while start >= 0 and start + 4 < len(packet):
    types.append('IPBS'[packet[start + 4] >> 6])
    start = packet.find(b'\x00\x00\x01\xb6', start + 4)
  return types


def _frame_types(path: Any, container, stream) -> list[str]:
  """Picture type of every frame in stream order; raises CodecError on a corrupt stream."""
  try:
    if stream.codec_context.name == 'mpeg4':
      # The VOP header says the type: no need to decode.
      types = []
      for packet in container.demux(stream):
        if packet.size:
          types.extend(_vop_types(bytes(packet)))
      return types
    return [av.video.frame.PictureType(frame.pict_type).name for frame in container.decode(stream)]
  except av.error.FFmpegError as error:
    raise CodecError(f'{path}: the stream is truncated or corrupt ({error}); re-encode it from its source') from None


def gop_size_of(types: list[str]) -> int | None:
  """The I-frame period of a list of picture types, or None when the GOPs are irregular."""
  if not types or 'B' in types:
    return None
  iframes = [i for i, kind in enumerate(types) if kind == 'I']
  if not iframes or iframes[0] != 0:
    return None
  period = iframes[1] if len(iframes) > 1 else len(types)
  return period if iframes == list(range(0, len(types), period)) else None


def probe(path: Any) -> StreamInfo:
  """Reads a video's size, frame count and GOP structure (demuxes the whole file).

  Args:
    path: a video file FFmpeg can read.

  Returns:
    Its StreamInfo.

  Raises:
    CodecError: missing file, not a video, no video stream, zero frames, corrupt stream, or
      frames outside MIN_SIDE..MAX_SIDE pixels per side.
  """
  container, stream = open_video(path)
  with container:
    width, height = stream.codec_context.width, stream.codec_context.height
    check_size(path, width, height)
    types = _frame_types(path, container, stream)
    if not types:
      raise CodecError(f'{path}: the video stream has zero frames; give a video with frames')
    return StreamInfo(
        path=str(path),
        codec_name=stream.codec_context.name,
        width=width,
        height=height,
        num_frames=len(types),
        gop_size=gop_size_of(types),
        has_b_frames='B' in types,
    )


def _decoded_frames(path: Any, container, stream) -> Iterator[av.VideoFrame]:
  try:
    yield from container.decode(stream)
  except av.error.FFmpegError as error:
    raise CodecError(
        f'{path}: decoding failed ({error}); the file is truncated or corrupt, repair or re-download it'
    ) from None


def _frame_rate(stream) -> fractions.Fraction:
  rate = stream.average_rate or stream.guessed_rate or 25
  rate = fractions.Fraction(rate).limit_denominator(_MAX_TIME_BASE_DENOMINATOR)
  return rate if 0 < rate <= 1000 else fractions.Fraction(25)


def reencode(
    src: Any, dst: Any, *, width: int = 340, height: int = 256, gop_size: int = 12, qscale: int = 1
) -> StreamInfo:
  """Re-encodes any video FFmpeg reads into CoViAR's raw MPEG-4 Part 2 stream.

  Equivalent to `ffmpeg -i SRC -vf scale=W:H,setsar=1:1 -q:v Q -g G -bf 0 -c:v mpeg4 -f m4v DST`:
  bicubic scaling without keeping the aspect ratio, fixed quantiser, I-frames exactly every
  `gop_size` frames, no B-frames. The result is verified before it is moved to `dst`.

  Args:
    src: input video path.
    dst: output path (conventionally `.m4v`); its directory must exist. Written atomically.
    width: output width in pixels.
    height: output height in pixels.
    gop_size: frames per GOP (one I-frame, then gop_size - 1 P-frames).
    qscale: MPEG-4 quantiser 1..31 (1 = best quality, CoViAR's choice).

  Returns:
    The StreamInfo of `dst`, with `gop_size` the requested one (also for videos shorter than it).

  Raises:
    CodecError: for unreadable input or bad arguments; the message names the file and the fix.
  """
  check_size(dst, width, height, what='requested frames')
  if not (isinstance(gop_size, int) and 1 <= gop_size <= 1000):
    raise CodecError(f'{dst}: gop_size={gop_size!r} must be an int in 1..1000 (CoViAR uses 12)')
  if not (isinstance(qscale, int) and 1 <= qscale <= 31):
    raise CodecError(f'{dst}: qscale={qscale!r} must be an int in 1..31 (CoViAR uses 1)')
  dst = pathlib.Path(dst)
  if not dst.parent.is_dir():
    raise CodecError(f'{dst}: its directory does not exist; create it first')
  container, stream = open_video(src)
  source_width, source_height = stream.codec_context.width, stream.codec_context.height
  if not (0 < source_width <= 4 * MAX_SIDE and 0 < source_height <= 4 * MAX_SIDE):
    container.close()
    raise CodecError(
        f'{src}: frames of {source_width}x{source_height} pixels are not a sensible video size; check the file'
    )
  temporary = dst.with_name(f'.{dst.name}.{os.getpid()}.partial')
  try:
    with container, av.open(str(temporary), 'w', format='m4v') as output:
      rate = _frame_rate(stream)
      encoder = output.add_stream('mpeg4', rate=rate)
      encoder.width, encoder.height, encoder.pix_fmt = width, height, 'yuv420p'
      context = encoder.codec_context
      context.time_base = 1 / rate
      context.gop_size = gop_size
      context.max_b_frames = 0
      context.flags |= av.codec.context.Flags.qscale
      context.global_quality = qscale * _QP2LAMBDA
      context.thread_count = 1  # The encoded bitstream must not depend on the machine...
      context.flags |= av.codec.context.Flags.bitexact  # ... nor on its SIMD instruction set.
      context.options = dict(EXACT_ENCODER_OPTIONS)
      num_frames = 0
      for frame in _decoded_frames(src, container, stream):
        scaled = frame.reformat(
            width=width, height=height, format='yuv420p', threads=1, interpolation=Interpolation.BICUBIC | EXACT_SCALING
        )
        # A keyframe flag carried over from the source would force extra I-frames.
        scaled.pict_type = av.video.frame.PictureType.NONE
        scaled.pts = num_frames
        scaled.time_base = context.time_base
        output.mux(encoder.encode(scaled))
        num_frames += 1
      if num_frames == 0:
        raise CodecError(f'{src}: the video stream has zero frames; give a video with frames')
      output.mux(encoder.encode(None))
    info = probe(temporary)
    if info.num_frames != num_frames or info.gop_size != min(gop_size, num_frames) or (info.has_b_frames):
      raise CodecError(
          f'{src}: re-encoding gave {info.num_frames} frames (expected {num_frames}), GOP size '
          f'{info.gop_size} (expected {gop_size}), B-frames: {info.has_b_frames}; this FFmpeg '
          f'build ({av.__version__}) does not honour the encoder settings, report it'
      )
    os.replace(temporary, dst)
  finally:
    temporary.unlink(missing_ok=True)
  return dataclasses.replace(info, path=str(dst), gop_size=gop_size)


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
  """uint8 (H, W, 3) RGB of a decoded frame (FFmpeg's yuv420p -> rgb24 conversion)."""
  return frame.to_ndarray(format='rgb24', threads=1, interpolation=Interpolation.BILINEAR | EXACT_TO_RGB)
