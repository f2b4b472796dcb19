"""Numba kernels: a P-frame's MV map, accumulation and residual (the default `GopBuilder` path).

The rules are METHOD.md section 2 (`motion.reference_motion_map` states them as plain code). Per
P-frame with side data:

1. The MV map mv_t. `paint_cells` writes the vectors into a grid of 8x8-pixel cells when that is
   exact (MPEG-4 Part 2's aligned, non-overlapping 8x8 and 16x16 blocks: every real frame);
   otherwise `paint_motion` writes a per-pixel map, each vector's rectangle in array order, cut
   to the offsets whose both ends lie inside the frame (exact for any vectors).
2. `accumulate_frame_cells` (or `accumulate_frame` from the per-pixel map) walks each pixel row
   in runs of equal mv_t and writes the accumulated MV and the residual.

No gathers: with q = p - mv_t(p), acc_t(p) = p - A_t(p) obeys acc_t(p) = mv_t(p) + acc_{t-1}(q),
and the warped I-frame W_t(p) = F_I(A_t(p)) obeys W_t(p) = W_{t-1}(q). Along a run of equal
mv_t, q runs along a row too, so acc_t and W_t are contiguous copies of acc_{t-1} and W_{t-1}
(plus the constant mv_t), and the residual F_t - W_t is one contiguous subtraction per row.
acc_{t-1} is the previous output and W is double-buffered, so no value of step t is read in
place of one of step t - 1. Every source index is inside the frame by the both-ends-inside rule.

Layouts, chosen so that no inner loop creates array views (numba refcounts every view) and
indices are unsigned (numba adds a negative-index check to every signed one). Arrays are flat:
- the per-pixel MV map is int32 (H * W,): one (x, y) int16 pair per pixel viewed as one int32
  (x in the low half), i.e. an int16 (H, W, 2) array's `.view(np.int32).reshape(-1)`;
- acc_t is the int16 (H, W, 2) output viewed the same way; W is uint8 (H * W * 3,);
- RGB frames are uint8 rows with a row stride (PyAV pads its rows): `flat_rows`;
- residuals are int16 (H * W * 3,).
The per-frame (not accumulated) residual F_t(p) - F_{t-1}(p - mv_t(p)) is `frame_residual`, a
plain per-pixel pass. `cache=True` stores the compiled code beside this file (about 2 s to
compile, once per machine). error_model='numpy' drops the division-by-zero checks (no kernel
divides by a variable), which measured ~3% faster end to end; fastmath stays off (no floats) and
bounds checks stay at numba's default, off.
"""

from __future__ import annotations

import numba
import numpy as np

_U = numba.uint64  # Index type: unsigned indices skip numba's negative-index fix-up.
_CELL = 8  # MPEG-4 Part 2 blocks are 8 or 16 pixels wide: runs of equal vectors are too.


def flat_rows(rgb: np.ndarray) -> tuple[np.ndarray, int]:
  """A (H, W, 3) uint8 image as a flat uint8 array of its rows and the row stride in bytes.

  No copy when each row's pixels are contiguous (PyAV's padded rows); a copy otherwise.
  """
  if rgb.strides[1:] != (3, 1) or rgb.strides[0] < 3 * rgb.shape[1]:
    rgb = np.ascontiguousarray(rgb)
  stride = rgb.strides[0]
  if rgb.shape[0] and rgb.flags.writeable:
    return _flat_rows(rgb), stride  # the same view, ~0.6 us rather than ~3 us a frame
  height, width = rgb.shape[:2]
  size = (height - 1) * stride + 3 * width if height else 0
  return np.lib.stride_tricks.as_strided(rgb, (size,), (1,), writeable=False), stride


@numba.njit(cache=True, nogil=True, error_model='numpy')
def _flat_rows(rgb: np.ndarray) -> np.ndarray:
  """`flat_rows`' view, for H >= 1 and pixels contiguous within each row."""
  size = (rgb.shape[0] - 1) * rgb.strides[0] + 3 * rgb.shape[1]
  return np.lib.stride_tricks.as_strided(rgb[:, :, 0], (size,), (1,))


@numba.njit(cache=True, nogil=True, error_model='numpy')
def side_data_blocks(words: np.ndarray, blocks: np.ndarray) -> None:
  """Block vectors from raw AVMotionVector records (`motion.SIDE_DATA_DTYPE`, little-endian).

  One pass rather than numpy's one strided copy per field (~4 us, not ~9 us, a frame).

  Args:
    words: int16 (N, 20), the records' bytes viewed as int16: source at words 0-1, w and h the
      bytes of word 2, src_x, src_y, dst_x, dst_y words 3-6.
    blocks: int32 (N, 7) output, columns `motion.BLOCK_FIELDS`.
  """
  for i in range(blocks.shape[0]):
    blocks[i, 0] = (np.int32(words[i, 1]) << 16) | (np.int32(words[i, 0]) & 0xFFFF)
    sizes = np.int32(words[i, 2])
    blocks[i, 1] = sizes & 0xFF
    blocks[i, 2] = (sizes >> 8) & 0xFF
    for j in range(4):
      blocks[i, 3 + j] = words[i, 3 + j]


@numba.njit(cache=True, nogil=True, error_model='numpy')
def paint_motion(blocks: np.ndarray, motion: np.ndarray, height: int, width: int) -> None:
  """Writes one frame's MV map.

  Args:
    blocks: int32 (N, 7) block vectors, columns `motion.BLOCK_FIELDS`, in the decoder's order.
    motion: int32 (H * W,) output, packed (x, y) int16 pairs: dst - src on written pixels, 0
      elsewhere.
    height: frame height H.
    width: frame width W.
  """
  motion[:] = 0
  for i in range(blocks.shape[0]):
    w, h = blocks[i, 1], blocks[i, 2]
    src_x, src_y, dst_x, dst_y = blocks[i, 3], blocks[i, 4], blocks[i, 5], blocks[i, 6]
    if dst_x == src_x and dst_y == src_y:
      continue
    # The offsets with both dst + d and src + d inside form a rectangle (w, h >= 0, so w // 2
    # is C's w / 2).
    x_lo = max(-(w // 2), -dst_x, -src_x) + dst_x
    x_hi = min(w // 2, width - dst_x, width - src_x) + dst_x
    y_lo = max(-(h // 2), -dst_y, -src_y) + dst_y
    y_hi = min(h // 2, height - dst_y, height - src_y) + dst_y
    if x_lo >= x_hi:  # also keeps x_hi, which may be negative, out of the unsigned range
      continue
    packed = np.int32(((dst_y - src_y) << 16) | ((dst_x - src_x) & 0xFFFF))
    for y in range(y_lo, y_hi):
      for p in range(_U(y * width + x_lo), _U(y * width + x_hi)):
        motion[p] = packed


@numba.njit(cache=True, nogil=True, error_model='numpy')
def copy_rows(rgb: np.ndarray, rgb_stride: int, out: np.ndarray, height: int, width: int) -> None:
  """Copies uint8 rows (`flat_rows`) with row stride `rgb_stride` into a flat (H * W * 3,) array."""
  for y in range(height):
    source = rgb[y * rgb_stride : y * rgb_stride + 3 * width]
    target = out[3 * y * width : 3 * (y + 1) * width]
    for k in range(3 * width):
      target[k] = source[k]


@numba.njit(cache=True, nogil=True, error_model='numpy')
def paint_cells(blocks: np.ndarray, cells: np.ndarray, covered: np.ndarray, columns: int) -> bool:
  """Writes one frame's vectors into a grid of 8x8-pixel cells, when that is exact.

  It is when every vector is an 8x8 or 16x16 block on the 8-pixel grid, inside the grid, and no
  two cover the same cell (MPEG-4 Part 2 always): then a pixel's only candidate vector is its
  cell's, and it is written iff its source lies inside the frame (`accumulate_frame_cells`
  applies that rule), whatever the array order.

  Args:
    blocks: int32 (N, 7) block vectors, columns `motion.BLOCK_FIELDS`.
    cells: int32 (rows * columns,) output, packed (x, y) int16 dst - src per cell, 0 where no
      vector (or a zero one) covers it. rows = 2 * ceil(H / 16), columns = 2 * ceil(W / 16).
    covered: uint8 (rows * columns,) scratch.
    columns: cells per grid row.

  Returns:
    False (and `cells` undefined) when the vectors break a precondition: use `paint_motion`.
  """
  rows = cells.shape[0] // columns
  cells[:] = 0
  covered[:] = 0
  for i in range(blocks.shape[0]):
    w, h = blocks[i, 1], blocks[i, 2]
    if (w != 8 and w != 16) or (h != 8 and h != 16):
      return False
    left, top = blocks[i, 5] - w // 2, blocks[i, 6] - h // 2
    if left < 0 or top < 0 or left % _CELL or top % _CELL:
      return False
    column, row = left // _CELL, top // _CELL
    if column + w // _CELL > columns or row + h // _CELL > rows:
      return False
    packed = np.int32(((blocks[i, 6] - blocks[i, 4]) << 16) | ((blocks[i, 5] - blocks[i, 3]) & 0xFFFF))
    for r in range(row, row + h // _CELL):
      for c in range(column, column + w // _CELL):
        if covered[r * columns + c]:
          return False
        covered[r * columns + c] = 1
        cells[r * columns + c] = packed
  return True


@numba.njit(cache=True, nogil=True, error_model='numpy', inline='always')
def _copy_run(
    p: int,
    n: int,
    m: int,
    width: int,
    previous: np.ndarray,
    warped_previous: np.ndarray,
    accumulated: np.ndarray,
    warped: np.ndarray,
) -> None:
  """acc_t and W_t of the n pixels from flat index p on, which all have the packed MV m."""
  q = _U(p - ((m >> 16) * width + np.int16(m & 0xFFFF)))  # inside: the both-ends-inside rule
  p, n = _U(p), _U(n)
  for j in range(n):
    a = previous[q + j]
    # acc_{t-1} + mv_t on packed (x, y) int16 pairs: each half on its own, no carry across.
    accumulated[p + j] = (((a >> 16) + (m >> 16)) << 16) | ((a + m) & 0xFFFF)
  p, q = _U(3) * p, _U(3) * q
  for k in range(_U(3) * n):
    warped[p + k] = warped_previous[q + k]


@numba.njit(cache=True, nogil=True, error_model='numpy', inline='always')
def _residual_row(
    y: int, width: int, rgb: np.ndarray, rgb_stride: int, warped: np.ndarray, residual: np.ndarray
) -> None:
  """Row y of F_t - W_t: a loop over contiguous rows, which LLVM vectorises."""
  residual_row = residual[3 * y * width : 3 * (y + 1) * width]
  rgb_row = rgb[y * rgb_stride : y * rgb_stride + 3 * width]
  warped_row = warped[3 * y * width : 3 * (y + 1) * width]
  for k in range(3 * width):
    residual_row[k] = np.int16(rgb_row[k]) - np.int16(warped_row[k])


@numba.njit(cache=True, nogil=True, error_model='numpy', inline='always')
def _run_end(motion: np.ndarray, row: int, x: int, width: int) -> int:
  """The end of the run of pixels equal to motion[row + x] in the row, x < end <= width."""
  value = motion[_U(row + x)]
  end = x + 1
  # Eight at a time first: a loop of loads only, which LLVM vectorises.
  while end + _CELL <= width:
    same = True
    for j in range(_U(_CELL)):
      same &= motion[_U(row + end) + j] == value
    if not same:
      break
    end += _CELL
  while end < width and motion[_U(row + end)] == value:
    end += 1
  return end


@numba.njit(cache=True, nogil=True, error_model='numpy')
def accumulate_frame(
    motion: np.ndarray,
    previous: np.ndarray,
    warped_previous: np.ndarray,
    rgb: np.ndarray,
    rgb_stride: int,
    accumulated: np.ndarray,
    warped: np.ndarray,
    residual: np.ndarray,
    height: int,
    width: int,
) -> None:
  """One P-frame's accumulated MV and residual, by runs of equal vectors in its MV map.

  Besides acc_t, the warped I-frame W_t(p) = F_I(A_t(p)) is carried from frame to frame:
  W_t(p) = W_{t-1}(q) with q = p - mv_t(p). Along a run of pixels with the same mv_t, q runs
  along a row as well, so both acc_t and W_t are contiguous copies (plus the constant mv_t for
  acc_t), and the residual is F_t - W_t, a contiguous subtraction: no gathers at all.

  Args:
    motion: int32 (H * W,) packed MV map mv_t (`paint_motion`).
    previous: int32 (H * W,) packed acc_{t-1}: the accumulated MVs of the GOP's last P-frame
      with side data, or zeros (A = identity) when there is none.
    warped_previous: uint8 (H * W * 3,) W_{t-1}; the I-frame (`copy_rows`) for the first.
    rgb: F_t, uint8 rows (`flat_rows`) with row stride `rgb_stride`.
    rgb_stride: bytes from one row of `rgb` to the next.
    accumulated: int32 (H * W,) output, packed acc_t = p - A_t(p); not the `previous` array.
    warped: uint8 (H * W * 3,) output W_t; not the `warped_previous` array.
    residual: int16 (H * W * 3,) output F_t(p) - W_t(p), RGB, in [-255, 255].
    height: frame height H.
    width: frame width W.
  """
  for y in range(height):
    row = y * width
    x = 0
    while x < width:
      end = _run_end(motion, row, x, width)
      _copy_run(row + x, end - x, motion[_U(row + x)], width, previous, warped_previous, accumulated, warped)
      x = end
    _residual_row(y, width, rgb, rgb_stride, warped, residual)


@numba.njit(cache=True, nogil=True, error_model='numpy')
def accumulate_frame_cells(
    cells: np.ndarray,
    columns: int,
    previous: np.ndarray,
    warped_previous: np.ndarray,
    rgb: np.ndarray,
    rgb_stride: int,
    accumulated: np.ndarray,
    warped: np.ndarray,
    residual: np.ndarray,
    height: int,
    width: int,
) -> None:
  """`accumulate_frame` with the MV map given as `paint_cells` cells (no per-pixel map).

  Along a pixel row, a cell of MV m writes the pixels whose source x - m_x lies in [0, W)
  (when the source row y - m_y lies in [0, H)); its other pixels keep mv 0. Equal neighbours
  merge into one run.
  """
  for y in range(height):
    row = y * width
    cell_row = (y // _CELL) * columns
    run_start, run_value = 0, np.int32(0)
    for x0 in range(0, width, _CELL):
      x1 = min(x0 + _CELL, width)
      m = cells[cell_row + x0 // _CELL]
      m_x, m_y = np.int16(m & 0xFFFF), m >> 16
      lo, hi = x0, x0  # the written pixels [lo, hi) of this cell row
      if m != 0 and 0 <= y - m_y < height:
        lo = max(x0, m_x)
        hi = max(lo, min(x1, width + m_x))
      for start, stop, value in ((x0, lo, np.int32(0)), (lo, hi, m), (hi, x1, np.int32(0))):
        if start < stop and value != run_value:
          if start > run_start:
            _copy_run(
                row + run_start, start - run_start, run_value, width, previous, warped_previous, accumulated, warped
            )
          run_start, run_value = start, value
    _copy_run(row + run_start, width - run_start, run_value, width, previous, warped_previous, accumulated, warped)
    _residual_row(y, width, rgb, rgb_stride, warped, residual)


@numba.njit(cache=True, nogil=True, error_model='numpy')
def frame_residual(
    motion: np.ndarray,
    rgb: np.ndarray,
    rgb_stride: int,
    previous: np.ndarray,
    previous_stride: int,
    residual: np.ndarray,
    height: int,
    width: int,
) -> None:
  """The per-frame residual F_t(p) - F_{t-1}(p - mv_t(p)), in one pass.

  Args:
    motion: int32 (H * W,) packed MV map mv_t (`paint_motion`).
    rgb: F_t, uint8 rows (`flat_rows`) with row stride `rgb_stride`.
    rgb_stride: bytes from one row of `rgb` to the next.
    previous: F_{t-1}, uint8 rows (`flat_rows`).
    previous_stride: bytes from one row of `previous` to the next.
    residual: int16 (H * W * 3,) output, RGB, in [-255, 255].
    height: frame height H.
    width: frame width W.
  """
  for y in range(height):
    c = _U(y * rgb_stride)
    p = y * width
    for x in range(width):
      m = motion[p]
      s = _U((y - (m >> 16)) * previous_stride + 3 * (x - np.int16(m & 0xFFFF)))
      d = _U(3 * p)
      residual[d] = np.int16(rgb[c]) - np.int16(previous[s])
      residual[d + _U(1)] = np.int16(rgb[c + _U(1)]) - np.int16(previous[s + _U(1)])
      residual[d + _U(2)] = np.int16(rgb[c + _U(2)]) - np.int16(previous[s + _U(2)])
      c += _U(3)
      p += 1
