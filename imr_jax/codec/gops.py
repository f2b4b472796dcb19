"""One decode pass over a re-encoded video, yielding its GOPs as I-frame, MVs and residuals.

Per GOP (METHOD.md section 2): the I-frame, and for every P-frame t its MV map mv_t, the
accumulated source map A_t (A_0 = identity; A_t(p) = A_{t-1}(p - mv_t(p))), the accumulated MV
p - A_t(p), and the residual F_t(p) - F_I(A_t(p)) (accumulated) or F_t(p) - F_{t-1}(p - mv_t(p))
(per frame), on decoded RGB. A P-frame without motion side data (all intra) has all-zero outputs and
leaves A unchanged.

Three implementations of the per-frame work, equal to the last bit (tests/test_codec.py):
- 'numba' (default): `kernels`, one painting pass for the MV map and one fused pass over the
  pixels for the accumulated MV and the residual, written straight into the GOP's arrays
  (which are recycled across GOPs once no Gop refers to them).
- 'numpy': `motion.MotionMapper` and a handful of flat numpy gathers (no compiler needed).
- 'reference': `motion.reference_motion_map` and plain indexing; slow, obviously right.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import av
import numpy as np

from imr_jax.codec import kernels
from imr_jax.codec import motion
from imr_jax.codec import stream as stream_lib
from imr_jax.codec.errors import CodecError


@dataclasses.dataclass(frozen=True, eq=False)
class Gop:
  """One group of pictures: an I-frame and the P-frames that follow it.

  Attributes:
    index: 0-based GOP number in the file.
    start_frame: frame number of the I-frame (index * gop_size).
    iframe: uint8 (H, W, 3) RGB.
    motion_vectors: int16 (P, H, W, 2), x then y, pixels, dst - src; accumulated since the I-frame
      (p - A_t(p)) or per frame, as `iter_gops(accumulate=...)` asked.
    residuals: int16 (P, H, W, 3) RGB in [-255, 255]; accumulated (F_t(p) - F_I(A_t(p))) or per
      frame (F_t(p) - F_{t-1}(p - mv_t(p))).
    frame_motion_vectors: int16 (P, H, W, 2), always the per-frame MV map. With accumulate=True
      it is painted from `block_motion_vectors` on first access (`kernels.paint_motion`, about
      15 us per 340x256 P-frame), then kept; accumulating does not need it.
    block_motion_vectors: P int32 arrays (N_k, 7), the decoder's vectors of each P-frame, columns
      `motion.BLOCK_FIELDS` (source, w, h, src_x, src_y, dst_x, dst_y); (0, 7) without side data.
  """

  index: int
  start_frame: int
  iframe: np.ndarray
  motion_vectors: np.ndarray
  residuals: np.ndarray
  block_motion_vectors: tuple[np.ndarray, ...]
  _frame_motion_vectors: np.ndarray | None = dataclasses.field(default=None, repr=False)

  @property
  def num_pframes(self) -> int:
    return len(self.residuals)

  @property
  def frame_motion_vectors(self) -> np.ndarray:
    if self._frame_motion_vectors is None:
      height, width = self.iframe.shape[:2]
      maps = np.empty((self.num_pframes, height, width, 2), np.int16)
      for blocks, out in zip(self.block_motion_vectors, maps):
        kernels.paint_motion(np.ascontiguousarray(blocks, np.int32), out.view(np.int32).reshape(-1), height, width)
      object.__setattr__(self, '_frame_motion_vectors', maps)  # a cache, not a change of value
    return self._frame_motion_vectors


def _pixels_as_items(rgb: np.ndarray) -> np.ndarray:
  """uint8 (H, W, 3) as a flat (H * W,) array of 3-byte items, so one gather moves whole pixels."""
  return np.ascontiguousarray(rgb).reshape(-1, 3).view('V3')[:, 0]


BACKENDS = ('numba', 'numpy', 'reference')
_SIDE_DATA_WORDS = motion.SIDE_DATA_DTYPE.itemsize // 2  # int16 words per record


class GopBuilder:
  """Builds Gops from decoded frames and their block vectors, one GOP at a time (no decoder).

  `start(index, start_frame, iframe)`, then `add(rgb, blocks)` per P-frame, then `finish()`.
  Each frame's outputs are written in place into the GOP's (capacity, H, W, C) arrays
  (`capacity` P-frames, doubled when exceeded), allocated afresh for every GOP: a finished Gop
  owns its arrays and nothing writes them again, however long a caller keeps them. (The C
  allocator hands a freed GOP's memory to the next one, so steady-state extraction does not
  page-fault; benchmarks/codec_bench.py measured recycling buffers by hand as no faster.) A
  builder is not thread-safe: one builder per thread.

  Args:
    height: frame height H.
    width: frame width W.
    accumulate: accumulated (CoViAR's default) or per-frame MVs and residuals.
    capacity: P-frames to allocate for per GOP (gop_size - 1 avoids any regrowth or trim).
    backend: 'numba' (default, fastest), 'numpy' or 'reference'; all give identical outputs.
  """

  def __init__(self, height: int, width: int, *, accumulate: bool = True, capacity: int = 11, backend: str = 'numba'):
    if backend not in BACKENDS:
      raise ValueError(f'backend={backend!r} must be one of {BACKENDS}')
    self.height, self.width, self.accumulate = height, width, accumulate
    self.capacity, self.backend = capacity, backend
    num_pixels = height * width
    self.mapper = motion.MotionMapper(height, width)
    self._source = np.empty(num_pixels, np.int32)  # A_t, flat (numpy and reference paths)
    self._next_source = np.empty(num_pixels, np.int32)
    # (x, y) int16 of every pixel, also viewed as one int32 per pixel for gathers.
    y, x = np.divmod(np.arange(num_pixels), width)
    self._coordinates = np.stack([x, y], -1).astype(np.int16).reshape(height, width, 2)
    self._packed_coordinates = self._coordinates.view(np.int32).reshape(-1)
    self._gathered = np.empty((height, width, 3), np.uint8)
    self._gathered_items = _pixels_as_items(self._gathered)
    # Numba path: the packed MV map of the current frame, acc_0 = 0, and the warped I-frame
    # W_t(p) = F_I(A_t(p)) as W_{t-1} and W_t.
    self._packed_motion = np.empty(num_pixels, np.int32)
    self._no_motion = np.zeros(num_pixels, np.int32)
    self._warped, self._next_warped = (np.empty(3 * num_pixels, np.uint8) for _ in range(2))
    # The MV map as 8x8-pixel cells, when the vectors allow (`kernels.paint_cells`).
    self._columns = -(-width // 16) * 2
    self._cells = np.empty(-(-height // 16) * 2 * self._columns, np.int32)
    self._covered = np.empty_like(self._cells, np.uint8)
    self.cell_frames = 0  # P-frames accumulated from cells rather than a per-pixel map
    self.motion = self.residuals = None

  def start(self, index: int, start_frame: int, iframe: np.ndarray) -> None:
    """Begins a GOP at I-frame `iframe`, uint8 (H, W, 3) RGB."""
    self.index, self.start_frame, self.iframe = index, start_frame, iframe
    self.count = 0
    self.blocks = []
    self._previous = None
    self._allocate(self.capacity)
    # The frame residuals are taken against: F_I (accumulated) or F_{t-1} (per frame).
    self._reference_rgb = iframe
    if self.backend == 'numba':
      self._reference_rows = kernels.flat_rows(iframe)
      if self.accumulate:
        kernels.copy_rows(*self._reference_rows, self._warped, self.height, self.width)
      self._previous = self._no_motion  # acc_{t-1}, packed
    else:
      self._source[:] = self.mapper.pixels
      self._reference = _pixels_as_items(iframe)

  def _allocate(self, capacity: int) -> None:
    # `motion` holds the accumulated or the per-frame MVs, whichever was asked for.
    self.motion = np.empty((capacity, self.height, self.width, 2), np.int16)
    self.residuals = np.empty((capacity, self.height, self.width, 3), np.int16)

  def _grow(self) -> None:
    old = (self.motion, self.residuals)
    self.capacity *= 2
    self._allocate(self.capacity)
    for new, kept in zip((self.motion, self.residuals), old):
      new[: self.count] = kept[: self.count]
    if self.backend == 'numba' and self._previous is not self._no_motion:
      self._previous = self.motion[self._previous_index].view(np.int32).reshape(-1)

  def add(self, rgb: np.ndarray, blocks: np.ndarray | None) -> None:
    """Adds a P-frame.

    Args:
      rgb: uint8 (H, W, 3) decoded RGB of the P-frame.
      blocks: int32 (N, 7) block vectors (`motion.block_vectors`), or None when the frame has no
        motion side data (an all-intra P-frame: all-zero outputs, A unchanged).
    """
    if self.count == self.capacity:
      self._grow()
    t = self.count
    self.count += 1
    self.blocks.append(motion.block_vectors(None) if blocks is None else blocks)
    if blocks is None:
      # All-intra P-frame: nothing points anywhere; A carries over unchanged.
      self.motion[t] = 0
      self.residuals[t] = 0
      if not self.accumulate:
        self._set_previous_frame(rgb)
      return
    if self.backend == 'numba':
      self._add_numba(t, rgb, np.ascontiguousarray(blocks, np.int32))
    elif self.backend == 'numpy':
      self._add_numpy(t, rgb, blocks)
    else:
      self._add_reference(t, rgb, blocks)

  def _set_previous_frame(self, rgb: np.ndarray) -> None:
    self._reference_rgb = rgb
    if self.backend == 'numba':
      self._reference_rows = kernels.flat_rows(rgb)
    else:
      self._reference = _pixels_as_items(rgb)

  def _add_numba(self, t: int, rgb: np.ndarray, blocks: np.ndarray) -> None:
    height, width = self.height, self.width
    rows, stride = kernels.flat_rows(rgb)
    residual = self.residuals[t].reshape(-1)
    if not self.accumulate:
      reference, reference_stride = self._reference_rows  # F_{t-1}
      packed_motion = self.motion[t].view(np.int32).reshape(-1)
      kernels.paint_motion(blocks, packed_motion, height, width)
      kernels.frame_residual(packed_motion, rows, stride, reference, reference_stride, residual, height, width)
      self._reference_rows = rows, stride
      return
    accumulated = self.motion[t].view(np.int32).reshape(-1)
    if kernels.paint_cells(blocks, self._cells, self._covered, self._columns):
      self.cell_frames += 1
      kernels.accumulate_frame_cells(
          self._cells,
          self._columns,
          self._previous,
          self._warped,
          rows,
          stride,
          accumulated,
          self._next_warped,
          residual,
          height,
          width,
      )
    else:
      kernels.paint_motion(blocks, self._packed_motion, height, width)
      kernels.accumulate_frame(
          self._packed_motion,
          self._previous,
          self._warped,
          rows,
          stride,
          accumulated,
          self._next_warped,
          residual,
          height,
          width,
      )
    self._previous, self._previous_index = accumulated, t
    self._warped, self._next_warped = self._next_warped, self._warped

  def _add_numpy(self, t: int, rgb: np.ndarray, blocks: np.ndarray) -> None:
    motion_vectors, residual = self.motion[t], self.residuals[t]
    if self.accumulate:
      source = self.mapper.map(blocks)
      np.take(self._source, source, out=self._next_source, mode='clip')
      self._source, self._next_source = self._next_source, self._source
      # Accumulated MV p - A_t(p), from the coordinates of A_t(p).
      np.take(self._packed_coordinates, self._source, out=motion_vectors.view(np.int32).reshape(-1), mode='clip')
      np.subtract(self._coordinates, motion_vectors, out=motion_vectors)
      np.take(self._reference, self._source, out=self._gathered_items, mode='clip')
    else:
      source = self.mapper.map(blocks, motion_vectors)
      np.take(self._reference, source, out=self._gathered_items, mode='clip')
      self._reference = _pixels_as_items(rgb)
    np.subtract(rgb, self._gathered, out=residual, dtype=np.int16)

  def _add_reference(self, t: int, rgb: np.ndarray, blocks: np.ndarray) -> None:
    frame_motion, source = motion.reference_motion_map(blocks, self.height, self.width)
    if self.accumulate:
      self._source = self._source[source]  # A_t(p) = A_{t-1}(p - mv_t(p))
      source_y, source_x = np.divmod(self._source, self.width)
      self.motion[t] = (self._coordinates.reshape(-1, 2) - np.stack([source_x, source_y], -1)).reshape(
          self.motion[t].shape
      )
      taken = self._source
    else:
      self.motion[t] = frame_motion
      taken = source
    reference = self._reference_rgb.reshape(-1, 3)[taken].reshape(rgb.shape)
    self.residuals[t] = rgb.astype(np.int16) - reference
    if not self.accumulate:
      self._set_previous_frame(rgb)

  def finish(self) -> Gop:
    """The Gop of the frames added since `start`."""
    count = self.count
    # The last GOP is usually shorter: a view of the buffers unless that would pin mostly unused
    # memory (a copy is fresh memory, page faults included).
    trim = (lambda a: a[:count]) if 2 * count >= self.capacity else (lambda a: a[:count].copy())
    motion_vectors = trim(self.motion)
    return Gop(
        index=self.index,
        start_frame=self.start_frame,
        iframe=self.iframe,
        motion_vectors=motion_vectors,
        residuals=trim(self.residuals),
        block_motion_vectors=tuple(self.blocks),
        _frame_motion_vectors=None if self.accumulate else motion_vectors,
    )


def _not_coviar(path: Any, what: str) -> CodecError:
  return CodecError(
      f'{path}: {what}, but iter_gops needs an MPEG-4 Part 2 stream with I-frames '
      f'exactly every gop_size frames and no B-frames; {stream_lib.REENCODE_HINT}'
  )


def _block_vectors(side_data) -> np.ndarray | None:
  """The (N, 7) int32 block vectors of a frame's MOTION_VECTORS side data (None: no side data)."""
  if side_data is None:
    return None
  words = np.frombuffer(side_data, np.int16).reshape(-1, _SIDE_DATA_WORDS)
  blocks = np.empty((len(words), len(motion.BLOCK_FIELDS)), np.int32)
  kernels.side_data_blocks(words, blocks)
  return blocks


def iter_gops(path: Any, *, accumulate: bool = True, backend: str = 'numba') -> Iterator[Gop]:
  """Decodes a re-encoded video once, yielding its GOPs in order (every frame, the last included).

  Args:
    path: a stream written by `reencode` (MPEG-4 Part 2, regular GOPs, no B-frames).
    accumulate: CoViAR's accumulated MVs and residuals (True, its default) or per-frame ones.
    backend: 'numba' (default), 'numpy' or 'reference' (`GopBuilder`); identical outputs.

  Yields:
    Gop objects; all of size gop_size - 1 P-frames except possibly the last. The gop_size is
    the distance between the first two I-frames.

  Raises:
    CodecError: missing file, not a video, no video stream, not MPEG-4 Part 2, B-frames,
      irregular GOPs, zero frames, a truncated or corrupt stream, or an absurd frame size.
  """
  if backend not in BACKENDS:
    raise ValueError(f'backend={backend!r} must be one of {BACKENDS}')
  container, video = stream_lib.open_video(path)
  with container:
    context = video.codec_context
    if context.name != 'mpeg4':
      raise _not_coviar(path, f'its video codec is {context.name}')
    height, width = context.height, context.width
    stream_lib.check_size(path, width, height)
    # `explode` turns the decoder's silent error concealment into an exception.
    context.options = {**stream_lib.EXACT_DECODER_OPTIONS, 'flags2': '+export_mvs', 'err_detect': 'explode'}
    context.thread_count = 1
    builder = None
    gop_size = None
    index = -1
    frame_number = -1
    try:
      for frame in container.decode(video):
        frame_number += 1
        kind = av.video.frame.PictureType(frame.pict_type).name
        if frame.width != width or frame.height != height:
          raise _not_coviar(path, f'frame {frame_number} is {frame.width}x{frame.height}, not {width}x{height}')
        if kind == 'I':
          if frame_number == 0:
            pass
          elif gop_size is None:
            gop_size = frame_number
            builder.capacity = gop_size - 1  # later GOPs fill their buffers exactly
          elif frame_number % gop_size:
            raise _not_coviar(path, f'frame {frame_number} is an I-frame off the {gop_size}-frame GOP grid')
          if builder is not None:
            yield builder.finish()
          else:
            builder = GopBuilder(height, width, accumulate=accumulate, backend=backend)
          index += 1
          builder.start(index, frame_number, stream_lib.frame_to_rgb(frame))
        elif kind == 'P':
          if frame_number == 0:
            raise _not_coviar(path, 'its first frame is a P-frame')
          if gop_size is not None and frame_number % gop_size == 0:
            raise _not_coviar(
                path, f'frame {frame_number} is a P-frame where the {gop_size}-frame GOP grid needs an I-frame'
            )
          builder.add(stream_lib.frame_to_rgb(frame), _block_vectors(frame.side_data.get('MOTION_VECTORS')))
        else:
          raise _not_coviar(path, f'frame {frame_number} is a {kind}-frame')
    except av.error.FFmpegError as error:
      raise CodecError(
          f'{path}: the stream is truncated or corrupt at frame {frame_number + 1} '
          f'({error}); re-encode it from its source'
      ) from None
    if builder is None:
      raise CodecError(f'{path}: the video stream has zero frames; give a video with frames')
    yield builder.finish()
