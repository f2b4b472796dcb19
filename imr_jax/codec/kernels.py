"""Numba kernels: a P-frame's MV map, accumulation and residual, each in one pass (the default path).

The rules are METHOD.md section 2 (`motion.reference_motion_map` states them as plain code). Per
P-frame:

1. `paint_motion` zeroes the frame's MV map and writes each vector's rectangle in array order,
   cut to the offsets whose both ends lie inside the frame: exact for any block sizes, positions
   and overlaps, so it needs no fallback.
2. `accumulate_frame` (or `frame_residual` for per-frame outputs) makes one row-major pass over
   the pixels that reads the MV map and writes the accumulated MV and the residual.

Accumulation keeps no source map of its own. With acc_t(p) = p - A_t(p) and q = p - mv_t(p),
A_t(p) = A_{t-1}(q) becomes acc_t(p) = mv_t(p) + acc_{t-1}(q): the state is the previous
accumulated-MV output, read while the next one is written to another array, so no value of A_t
is read in place of one of A_{t-1}. Every gather stays inside the frame by construction: q by the
both-ends-inside rule, A_t(p) because A_{t-1} maps into the frame.

Layouts, chosen so that no loop creates array views (numba refcounts every view) and every index
is unsigned (numba adds a negative-index check to every signed one):
- MV maps are flat int32 (H * W,): one (x, y) int16 pair per pixel viewed as one int32 (x in the
  low half), i.e. an int16 (H, W, 2) array's `.view(np.int32).reshape(-1)`.
- RGB frames are flat uint8 rows with a row stride (PyAV pads its rows): `flat_rows`.
- Residuals are flat int16 (H * W * 3,).
Measured at 340x256 on one core: about 13 us to paint, 230 us for the accumulation pass.
`cache=True` stores the compiled code beside this file; only the first run pays the compile.
"""

from __future__ import annotations

import numba
import numpy as np

# AVMotionVector as PyAV's `MotionVectors.to_ndarray()` lays it out (the C struct, aligned).
SIDE_DATA_DTYPE = np.dtype([('source', 'i4'), ('w', 'u1'), ('h', 'u1'), ('src_x', 'i2'),
                            ('src_y', 'i2'), ('dst_x', 'i2'), ('dst_y', 'i2'), ('flags', 'u8'),
                            ('motion_x', 'i4'), ('motion_y', 'i4'), ('motion_scale', 'u2')],
                           align=True)
_U = numba.uint64  # Index type: unsigned indices skip numba's negative-index fix-up.


def flat_rows(rgb: np.ndarray) -> tuple[np.ndarray, int]:
  """A (H, W, 3) uint8 image as a flat uint8 array of its rows and the row stride in bytes.

  No copy when each row's pixels are contiguous (PyAV's padded rows); a copy otherwise.
  """
  if rgb.strides[1:] != (3, 1) or rgb.strides[0] < 3 * rgb.shape[1]:
    rgb = np.ascontiguousarray(rgb)
  height, width = rgb.shape[:2]
  stride = rgb.strides[0]
  size = (height - 1) * stride + 3 * width if height else 0
  return np.lib.stride_tricks.as_strided(rgb, (size,), (1,), writeable=False), stride


@numba.njit(cache=True, nogil=True)
def side_data_blocks(side_data: np.ndarray, blocks: np.ndarray) -> None:
  """Copies AVMotionVector records (`SIDE_DATA_DTYPE`, (N,)) into int32 (N, 7) `BLOCK_FIELDS`."""
  for i in range(side_data.shape[0]):
    record = side_data[i]
    blocks[i, 0] = record.source
    blocks[i, 1] = record.w
    blocks[i, 2] = record.h
    blocks[i, 3] = record.src_x
    blocks[i, 4] = record.src_y
    blocks[i, 5] = record.dst_x
    blocks[i, 6] = record.dst_y


@numba.njit(cache=True, nogil=True)
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
    packed = np.int32(((dst_y - src_y) << 16) | ((dst_x - src_x) & 0xFFFF))
    for y in range(y_lo, y_hi):
      for p in range(_U(y * width + x_lo), _U(y * width + x_hi)):
        motion[p] = packed


@numba.njit(cache=True, nogil=True)
def accumulate_frame(motion: np.ndarray, previous: np.ndarray, rgb: np.ndarray, rgb_stride: int,
                     iframe: np.ndarray, iframe_stride: int, accumulated: np.ndarray,
                     residual: np.ndarray, height: int, width: int) -> None:
  """One P-frame's accumulated MV and residual, in one pass over its pixels.

  Args:
    motion: int32 (H * W,) packed MV map mv_t (`paint_motion`).
    previous: int32 (H * W,) packed acc_{t-1}: the accumulated MVs of the GOP's last P-frame
      with side data, or zeros (A = identity) when there is none.
    rgb: F_t, uint8 rows (`flat_rows`) with row stride `rgb_stride`.
    rgb_stride: bytes from one row of `rgb` to the next.
    iframe: F_I, uint8 rows (`flat_rows`).
    iframe_stride: bytes from one row of `iframe` to the next.
    accumulated: int32 (H * W,) output, packed acc_t = p - A_t(p); not the `previous` array.
    residual: int16 (H * W * 3,) output F_t(p) - F_I(A_t(p)), RGB, in [-255, 255].
    height: frame height H.
    width: frame width W.
  """
  for y in range(height):
    c = _U(y * rgb_stride)
    p = y * width
    for x in range(width):
      m = motion[p]
      m_x, m_y = np.int16(m & 0xFFFF), m >> 16
      a = previous[_U(p - (m_y * width + m_x))]
      a_x = np.int16(a & 0xFFFF) + m_x
      a_y = (a >> 16) + m_y
      accumulated[p] = (a_y << 16) | (a_x & 0xFFFF)
      s = _U((y - a_y) * iframe_stride + 3 * (x - a_x))
      d = _U(3 * p)
      residual[d] = np.int16(rgb[c]) - np.int16(iframe[s])
      residual[d + _U(1)] = np.int16(rgb[c + _U(1)]) - np.int16(iframe[s + _U(1)])
      residual[d + _U(2)] = np.int16(rgb[c + _U(2)]) - np.int16(iframe[s + _U(2)])
      c += _U(3)
      p += 1


@numba.njit(cache=True, nogil=True)
def frame_residual(motion: np.ndarray, rgb: np.ndarray, rgb_stride: int, previous: np.ndarray,
                   previous_stride: int, residual: np.ndarray, height: int, width: int) -> None:
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
