"""Motion-vector maps from exported block vectors, and their accumulation (METHOD.md section 2).

Everything here is pure numpy and knows nothing of the decoder, so the rules can be tested on
hand-made vectors. A frame's vectors arrive as an int32 array `blocks` of shape (N, 7) with the
columns of `BLOCK_FIELDS`: FFmpeg's AVMotionVector fields, in whole pixels, where `dst` is the
block centre in the current frame and `src` the matching point in the reference frame.

The rules (CoViAR's, without its quirks): for each vector with dst != src, in array order, and for
every offset d in [-(w // 2), w // 2) x [-(h // 2), h // 2): if both p = dst + d and q = src + d lie
inside the frame, the pixel p is *written*: mv(p) = dst - src and its source is q. Unwritten pixels
have mv = 0 and are their own source, so in every case source(p) = p - mv(p).

Three implementations give the same answer:
- `reference_motion_map`: one rectangle per vector, applied in order; obviously right, slow.
- `MotionMapper` (the 'numpy' backend of `gops.GopBuilder`): paints vectors into a grid of
  8x8-pixel cells and expands the cells to pixels with precomputed index arrays. It handles the
  blocks MPEG-4 Part 2 produces (16x16 macroblocks and 8x8 blocks on the 8-pixel grid, no
  overlaps) and falls back to the reference otherwise.
- `kernels.paint_motion` (the default 'numba' backend): the reference's rectangles, compiled.
"""

from __future__ import annotations

import numpy as np

BLOCK_FIELDS = ('source', 'w', 'h', 'src_x', 'src_y', 'dst_x', 'dst_y')
# AVMotionVector as PyAV's `MotionVectors.to_ndarray()` lays it out (the C struct, aligned), so
# that `np.frombuffer(side_data, SIDE_DATA_DTYPE)` reads the side data without building the dtype
# on every frame.
SIDE_DATA_DTYPE = np.dtype(
    [
        ('source', 'i4'),
        ('w', 'u1'),
        ('h', 'u1'),
        ('src_x', 'i2'),
        ('src_y', 'i2'),
        ('dst_x', 'i2'),
        ('dst_y', 'i2'),
        ('flags', 'u8'),
        ('motion_x', 'i4'),
        ('motion_y', 'i4'),
        ('motion_scale', 'u2'),
    ],
    align=True,
)
_W, _H, _SRC_X, _SRC_Y, _DST_X, _DST_Y = 1, 2, 3, 4, 5, 6
_CELL = 8  # Cell size of the fast path: MPEG-4 Part 2 blocks are 8x8 or 16x16 on an 8-px grid.


def block_vectors(side_data: np.ndarray | None) -> np.ndarray:
  """Converts exported AVMotionVector records to the (N, 7) int32 `blocks` array.

  Args:
    side_data: the structured array of PyAV's `MotionVectors.to_ndarray()` (fields source, w, h,
      src_x, src_y, dst_x, dst_y, ...), or None for a frame without side data.

  Returns:
    int32 (N, 7) with the columns of `BLOCK_FIELDS`; (0, 7) for None.
  """
  if side_data is None or len(side_data) == 0:
    return np.zeros((0, len(BLOCK_FIELDS)), np.int32)
  blocks = np.empty((len(side_data), len(BLOCK_FIELDS)), np.int32)
  for column, name in enumerate(BLOCK_FIELDS):
    blocks[:, column] = side_data[name]
  return blocks


def _check_blocks(blocks: np.ndarray) -> np.ndarray:
  blocks = np.asarray(blocks)
  if blocks.ndim != 2 or blocks.shape[1] != len(BLOCK_FIELDS):
    raise ValueError(f'blocks must have shape (N, {len(BLOCK_FIELDS)}) with columns {BLOCK_FIELDS}, got {blocks.shape}')
  return blocks.astype(np.int64, copy=False)


def reference_motion_map(blocks: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
  """The MV map of one frame by the definition, one vector at a time (slow, exact).

  Args:
    blocks: int (N, 7) block vectors, columns `BLOCK_FIELDS`, in the decoder's array order.
    height: frame height H in pixels.
    width: frame width W in pixels.

  Returns:
    motion: int16 (H, W, 2), mv(p) = dst - src (x then y) for written pixels, 0 elsewhere.
    source: int32 (H * W,), flat index y * W + x of source(p) = p - mv(p).
  """
  blocks = _check_blocks(blocks)
  motion = np.zeros((height, width, 2), np.int16)
  for _, w, h, src_x, src_y, dst_x, dst_y in blocks:
    if dst_x == src_x and dst_y == src_y:
      continue
    # Offsets d with both dst + d and src + d inside: an intersection of intervals, i.e. a
    # rectangle. `w // 2` is C's w / 2 for the non-negative sizes FFmpeg exports.
    dx_lo = max(-(w // 2), -dst_x, -src_x)
    dx_hi = min(w // 2, width - dst_x, width - src_x)
    dy_lo = max(-(h // 2), -dst_y, -src_y)
    dy_hi = min(h // 2, height - dst_y, height - src_y)
    if dx_lo < dx_hi and dy_lo < dy_hi:
      motion[dst_y + dy_lo : dst_y + dy_hi, dst_x + dx_lo : dst_x + dx_hi] = (dst_x - src_x, dst_y - src_y)
  pixels = np.arange(height * width, dtype=np.int32)
  source = pixels - (motion[..., 1].astype(np.int32).ravel() * width + motion[..., 0].astype(np.int32).ravel())
  return motion, source


class MotionMapper:
  """Fast MV maps for one frame size, with preallocated work buffers (not thread-safe).

  `map(blocks, motion_out)` writes the frame's MV map into `motion_out` and returns the flat
  source index of every pixel; the result equals `reference_motion_map` for every input (the
  cell grid is used only when its preconditions hold, checked on every call).

  Vectors are painted into a grid of 8x8-pixel cells. A cell's value reaches its pixels in two
  steps that keep numpy on long contiguous rows: a small fancy index builds one pixel row per
  cell row, then a broadcast writes it to the cell row's 8 pixel rows. Blocks whose source
  leaves the frame (the both-ends-inside rule cuts them) are then fixed pixel by pixel.
  """

  def __init__(self, height: int, width: int):
    self.height, self.width = height, width
    # The grid covers whole 16x16 macroblocks, which may reach past the right/bottom edge.
    self._rows = -(-height // 16) * 2
    self._cols = -(-width // 16) * 2
    num_cells = self._rows * self._cols
    self.pixels = np.arange(height * width, dtype=np.int32)
    # Pixel rows in whole cell rows, and the cell row / column of every pixel row / column.
    self._full_rows = height // _CELL
    self._used_rows = -(-height // _CELL)
    self._column_cell = np.arange(width) // _CELL
    self._column_index = np.arange(width, dtype=np.int32)
    self._row_start = (np.arange(self._used_rows * _CELL, dtype=np.int32) * width).reshape(self._used_rows, _CELL, 1)
    # Each cell's 64 pixels: flat index (-1 past the frame) and coordinates.
    cell_y, cell_x = np.divmod(np.arange(num_cells), self._cols)
    offset_y, offset_x = np.divmod(np.arange(_CELL * _CELL), _CELL)
    self._cell_pixel_x = cell_x[:, None] * _CELL + offset_x[None, :]
    self._cell_pixel_y = cell_y[:, None] * _CELL + offset_y[None, :]
    self._cell_pixels = np.where(
        (self._cell_pixel_x < width) & (self._cell_pixel_y < height),
        self._cell_pixel_y * width + self._cell_pixel_x,
        -1,
    )
    self._cell_motion = np.zeros((self._rows, self._cols), np.int32)  # (x, y) int16 pair
    self._cell_offset = np.zeros((self._rows, self._cols), np.int32)  # mv_y * W + mv_x
    self._corner_cells = np.array([0, 1, self._cols, self._cols + 1], np.int32)
    self._fourfold = np.repeat(np.arange(num_cells), 4)  # vector of each cell, for macroblocks
    self._grid_limit = np.array([self._cols * _CELL, self._rows * _CELL])
    self._frame_size = np.array([[width], [height]])
    self._source = np.empty(height * width, np.int32)
    self.fast_frames = 0
    self.slow_frames = 0

  def map(self, blocks: np.ndarray, motion_out: np.ndarray | None = None) -> np.ndarray:
    """The MV map and source index of one frame.

    Args:
      blocks: int (N, 7) block vectors, columns `BLOCK_FIELDS`, in the decoder's array order.
      motion_out: int16 (H, W, 2) C-contiguous array to write the MV map into; None to skip it
        (the source index alone is enough to accumulate).

    Returns:
      int32 (H * W,) flat source index p - mv(p). It is an internal buffer, overwritten by the
      next call: copy it to keep it.
    """
    height, width = self.height, self.width
    painted = self._paint_cells(np.asarray(blocks), with_motion=motion_out is not None)
    if painted is None:
      self.slow_frames += 1
      motion, source = reference_motion_map(blocks, height, width)
      if motion_out is not None:
        motion_out[...] = motion
      self._source[:] = source
      return self._source
    self.fast_frames += 1
    cell_ids, cut = painted
    used, full = self._used_rows, self._full_rows
    # One row of pixels per cell row, then broadcast down the cell's 8 pixel rows.
    source_rows = self._column_index - self._cell_offset[:used, self._column_cell]
    source = self._source.reshape(height, width)
    np.add(self._row_start[:full], source_rows[:full, None], out=source[: full * _CELL].reshape(full, _CELL, width))
    if full < used:  # a last, partial cell row
      np.add(self._row_start[full, : height - full * _CELL], source_rows[full], out=source[full * _CELL :])
    if motion_out is not None:
      motion_rows = self._cell_motion[:used, self._column_cell]
      packed_motion = motion_out.view(np.int32).reshape(height, width)
      np.copyto(packed_motion[: full * _CELL].reshape(full, _CELL, width), motion_rows[:full, None])
      if full < used:
        np.copyto(packed_motion[full * _CELL :], motion_rows[full])
    if cut is not None:
      self._cut(*cut, None if motion_out is None else motion_out.reshape(-1, 2))
    self._cell_offset.fill(0)
    if motion_out is not None:
      self._cell_motion.fill(0)
    return self._source

  def _cut(self, cells: np.ndarray, mv: np.ndarray, motion: np.ndarray | None) -> None:
    """Unwrites the pixels of `cells` (MVs `mv`, (k, 2)) whose source p - mv leaves the frame."""
    q_x = self._cell_pixel_x[cells] - mv[:, :1]
    q_y = self._cell_pixel_y[cells] - mv[:, 1:]
    pixels = self._cell_pixels[cells]
    outside = (pixels >= 0) & ((q_x < 0) | (q_x >= self.width) | (q_y < 0) | (q_y >= self.height))
    unwritten = pixels[outside]
    if motion is not None:
      motion[unwritten] = 0
    self._source[unwritten] = unwritten

  def _paint_cells(self, blocks: np.ndarray, with_motion: bool):
    """Paints the vectors into the cell tables; None when the fast preconditions fail.

    The preconditions: 8x8 or 16x16 blocks on the 8-px grid, inside the macroblock grid, no two
    covering the same cell (then array order cannot matter, and a vector with dst == src, which
    writes nothing, paints the same zero an unwritten pixel has). Every step works on all
    vectors at once: a frame has a few hundred, and the per-call cost of numpy dominates.

    Returns (painted cell ids, (ids, int16 (x, y) MVs) of the cells of blocks that the
    both-ends-inside rule cuts, or None).
    """
    if len(blocks) == 0:
      return np.zeros(0, np.intp), None
    columns = np.ascontiguousarray(blocks.T[1:])  # rows: w, h, src_x, src_y, dst_x, dst_y
    size, src, dst = columns[0:2], columns[2:4], columns[4:6]
    macroblocks = bool((size == 16).all())
    if not macroblocks and not ((size == 8) | (size == 16)).all():
      return None
    half = size >> 1
    corner = dst - half  # left, top
    if (corner & (_CELL - 1)).any() or corner.min() < 0 or ((corner + size).max(axis=1) > self._grid_limit).any():
      return None
    first = (corner[1] >> 3) * self._cols + (corner[0] >> 3)
    if macroblocks:
      ids = (first[:, None] + self._corner_cells).ravel()
      vector_of_cell = (
          self._fourfold[: len(ids)] if len(ids) <= len(self._fourfold) else (np.repeat(np.arange(len(blocks)), 4))
      )
    else:
      big_w, big_h = size == 16
      covered = np.stack([np.ones_like(big_w), big_w, big_h, big_w & big_h], 1)
      ids = (first[:, None] + self._corner_cells)[covered]
      vector_of_cell = np.nonzero(covered)[0]
    if np.bincount(ids).max() > 1:
      return None
    motion = dst - src  # (2, N): x, y
    offset = motion[1] * self.width + motion[0]
    self._cell_offset.ravel()[ids] = offset[vector_of_cell]
    # Blocks whose source rectangle (of their part inside the frame) leaves the frame.
    cut = ((src - half < 0) | (np.minimum(corner + size, self._frame_size) - motion > self._frame_size)).any(axis=0)
    pairs = None
    if with_motion or cut.any():
      # An (x, y) int16 pair viewed as one int32, so one copy moves both channels.
      pairs = motion.T.astype(np.int16, order='C').view(np.int32)[vector_of_cell, 0]
      if with_motion:
        self._cell_motion.ravel()[ids] = pairs
    if not cut.any():
      return ids, None
    cut_cells = cut[vector_of_cell]
    return ids, (ids[cut_cells], pairs[cut_cells].view(np.int16).reshape(-1, 2))


def motion_map(blocks: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
  """Same contract as `reference_motion_map`, through the fast path (a fresh `MotionMapper`)."""
  mapper = MotionMapper(height, width)
  motion = np.empty((height, width, 2), np.int16)
  source = mapper.map(_check_blocks(blocks), motion).copy()
  return motion, source
