"""Tests of imr_jax.codec: MV and accumulation rules by hand, known motion, real clips, bad input."""

import contextlib
import ctypes
import pathlib
import sys

import av
from av.video.reformatter import Interpolation

import numpy as np
import pytest

from data_prep import synthetic
from imr_jax import codec
from imr_jax.codec import gops as gops_lib
from imr_jax.codec import kernels
from imr_jax.codec import motion
from imr_jax.codec import stream as stream_lib
from tests import videos


def _block(w, h, src_x, src_y, dst_x, dst_y):
  return [-1, w, h, src_x, src_y, dst_x, dst_y]


def _blocks(*rows):
  return np.array(rows, np.int32).reshape(-1, 7)


def _numba_map(blocks, height, width):
  painted = np.full((height, width, 2), 7, np.int16)  # not zeros: painting must clear it
  kernels.paint_motion(np.ascontiguousarray(blocks, np.int32), painted.view(np.int32).reshape(-1), height, width)
  return painted


def _both_maps(blocks, height, width):
  """The reference map, after checking that the numpy and numba paths agree with it."""
  mv, source = codec.reference_motion_map(blocks, height, width)
  fast_mv, fast_source = codec.motion_map(blocks, height, width)
  np.testing.assert_array_equal(fast_mv, mv)
  np.testing.assert_array_equal(fast_source, source)
  np.testing.assert_array_equal(_numba_map(blocks, height, width), mv)
  return mv, source


# ---------------------------------------------------------------------------------------------
# The MV map rules, on hand-made vectors.


def test_one_macroblock_inside_the_frame():
  mv, source = _both_maps(_blocks(_block(16, 16, 21, 13, 24, 16)), 32, 48)
  expected = np.zeros((32, 48, 2), np.int16)
  expected[8:24, 16:32] = (3, 3)
  np.testing.assert_array_equal(mv, expected)
  # source(p) = p - mv(p), flat y * W + x.
  assert source[10 * 48 + 20] == 7 * 48 + 17
  assert source[0] == 0


def test_sign_is_dst_minus_src_and_exported_src_is_used_as_is():
  # FFmpeg exports src = dst + motion / scale truncated toward zero: -17 / 2 -> -8, so src_x = 16
  # (floor division would give 15). The map must use the exported integers: mv_x = 24 - 16 = 8.
  record = np.zeros(
      1,
      [
          ('source', '<i4'),
          ('w', 'u1'),
          ('h', 'u1'),
          ('src_x', '<i2'),
          ('src_y', '<i2'),
          ('dst_x', '<i2'),
          ('dst_y', '<i2'),
          ('flags', '<u8'),
          ('motion_x', '<i4'),
          ('motion_y', '<i4'),
          ('motion_scale', '<u2'),
      ],
  )
  record[0] = (-1, 16, 16, 16, 8, 24, 8, 0, -17, 0, 2)
  blocks = motion.block_vectors(record)
  np.testing.assert_array_equal(blocks, [[-1, 16, 16, 16, 8, 24, 8]])
  mv, _ = _both_maps(blocks, 16, 48)
  np.testing.assert_array_equal(mv[0:16, 16:32], np.broadcast_to([8, 0], (16, 16, 2)))
  # A block whose content came from the right and below has negative components.
  mv, _ = _both_maps(_blocks(_block(8, 8, 9, 7, 4, 4)), 16, 16)
  np.testing.assert_array_equal(mv[0, 0], [-5, -3])
  np.testing.assert_array_equal(mv[7, 7], [-5, -3])
  np.testing.assert_array_equal(mv[8, 8], [0, 0])


def test_both_ends_inside_rule():
  # Source block reaches 3 px past the left edge and 2 px past the top: those pixels stay unwritten.
  mv, source = _both_maps(_blocks(_block(16, 16, 5, 6, 8, 8)), 32, 32)
  written = np.any(mv != 0, axis=-1)
  expected = np.zeros((32, 32), bool)
  expected[2:16, 3:16] = True
  np.testing.assert_array_equal(written, expected)
  assert source[0] == 0 and source[1 * 32 + 2] == 1 * 32 + 2
  # Destination past the right edge (W = 20, macroblock 16..31): only columns 16..19 exist.
  mv, _ = _both_maps(_blocks(_block(16, 16, 22, 8, 24, 8)), 16, 20)
  np.testing.assert_array_equal(np.any(mv != 0, -1).sum(0), [0] * 16 + [16] * 4)
  # Source entirely outside: nothing written.
  mv, _ = _both_maps(_blocks(_block(16, 16, -9, 8, 8, 8)), 16, 16)
  assert not mv.any()
  mv, _ = _both_maps(_blocks(_block(16, 16, 400, 8, 8, 8), _block(16, 16, 8, -300, 24, 8)), 16, 32)
  assert not mv.any()


def test_vectors_apply_in_array_order():
  first = _block(16, 16, 6, 8, 8, 8)  # mv (2, 0)
  second = _block(16, 16, 8, 5, 8, 8)  # mv (0, 3): its source leaves the frame for rows 0..2
  mv, _ = _both_maps(_blocks(first, second), 16, 16)
  np.testing.assert_array_equal(mv[3:, 0], np.broadcast_to([0, 3], (13, 2)))
  # Rows 0..2 fail the rule for `second`, so `first` holds there (but for its own columns 0..1).
  np.testing.assert_array_equal(mv[0:3, 2], np.broadcast_to([2, 0], (3, 2)))
  assert not mv[0:3, 0:2].any()
  # Reversed order: `first` wins wherever it writes.
  mv, _ = _both_maps(_blocks(second, first), 16, 16)
  np.testing.assert_array_equal(mv[5, 2:], np.broadcast_to([2, 0], (14, 2)))
  np.testing.assert_array_equal(mv[5, 0:2], np.broadcast_to([0, 3], (2, 2)))


def test_zero_vectors_write_nothing_and_odd_blocks_take_the_slow_path():
  mv, _ = _both_maps(_blocks(_block(16, 16, 10, 8, 8, 8), _block(16, 16, 8, 8, 8, 8)), 16, 16)
  np.testing.assert_array_equal(mv[0, 0], [-2, 0])  # the zero vector did not overwrite it
  np.testing.assert_array_equal(mv[0, 14], [0, 0])  # source x = 16 is outside
  # 5-px blocks cover offsets [-2, 2): 4 pixels, as in CoViAR's C loop.
  mapper = codec.MotionMapper(16, 16)
  mv = np.empty((16, 16, 2), np.int16)
  mapper.map(_blocks(_block(5, 5, 7, 7, 8, 8)), mv)
  assert mapper.slow_frames == 1 and mapper.fast_frames == 0
  np.testing.assert_array_equal(np.any(mv != 0, -1).sum(), 16)
  np.testing.assert_array_equal(mv, codec.reference_motion_map(_blocks(_block(5, 5, 7, 7, 8, 8)), 16, 16)[0])
  np.testing.assert_array_equal(mv, _numba_map(_blocks(_block(5, 5, 7, 7, 8, 8)), 16, 16))


def test_fast_path_matches_reference_on_random_vectors():
  rng = np.random.default_rng(0)
  height, width = 40, 52  # not multiples of 16 or 8
  for trial in range(30):
    rows = []
    for by in range(0, height, 16):
      for bx in range(0, width, 16):
        if rng.random() < 0.3:
          continue
        mvx, mvy = rng.integers(-20, 21, 2)
        if trial % 2:
          for oy in (0, 8):
            for ox in (0, 8):
              x, y = bx + ox + 4, by + oy + 4
              rows.append(_block(8, 8, x - mvx, y - mvy, x, y))
        else:
          rows.append(_block(16, 16, bx + 8 - mvx, by + 8 - mvy, bx + 8, by + 8))
    mapper = codec.MotionMapper(height, width)
    mv = np.empty((height, width, 2), np.int16)
    source = mapper.map(_blocks(*rows), mv)
    assert mapper.fast_frames == 1
    ref_mv, ref_source = codec.reference_motion_map(_blocks(*rows), height, width)
    np.testing.assert_array_equal(mv, ref_mv)
    np.testing.assert_array_equal(source, ref_source)
    np.testing.assert_array_equal(_numba_map(_blocks(*rows), height, width), ref_mv)


def test_side_data_dtype_is_pyav_layout(carphone_340):
  with av.open(carphone_340.path) as container:
    stream = container.streams.video[0]
    stream.codec_context.options = {**stream_lib.EXACT_DECODER_OPTIONS, 'flags2': '+export_mvs'}
    frames = container.decode(stream)
    next(frames)
    side_data = next(frames).side_data.get('MOTION_VECTORS')
    assert motion.SIDE_DATA_DTYPE == side_data.to_ndarray().dtype
    np.testing.assert_array_equal(np.frombuffer(side_data, motion.SIDE_DATA_DTYPE), side_data.to_ndarray())
    # iter_gops' one-pass conversion of the raw records.
    np.testing.assert_array_equal(gops_lib._block_vectors(side_data), motion.block_vectors(side_data.to_ndarray()))


# ---------------------------------------------------------------------------------------------
# Accumulation and residuals, on hand-made frames (GopBuilder, no decoder).


def _gradient(height, width, scale):
  y, x = np.mgrid[0:height, 0:width]
  return np.stack([x * scale, y * scale, x + y], -1).astype(np.uint8)


@pytest.mark.parametrize('layout', ['padded', 'contiguous', 'read-only', 'strided'])
def test_flat_rows_holds_each_row_at_its_stride(layout):
  padded = np.arange(4 * 7 * 3, dtype=np.uint8).reshape(4, 7, 3)
  rgb = {'padded': padded[:, :5], 'contiguous': padded.copy(), 'strided': padded[:, ::2]}.get(layout, padded[:, :5])
  if layout == 'read-only':
    rgb.flags.writeable = False
  rows, stride = kernels.flat_rows(rgb)
  for y in range(rgb.shape[0]):
    np.testing.assert_array_equal(rows[y * stride : y * stride + 3 * rgb.shape[1]], rgb[y].ravel())
  assert len(rows) == (rgb.shape[0] - 1) * stride + 3 * rgb.shape[1]


def test_accumulation_by_hand():
  height, width = 16, 32
  iframe = _gradient(height, width, 3)
  frame1 = _gradient(height, width, 5)
  frame3 = _gradient(height, width, 7)
  builder = codec.GopBuilder(height, width)
  builder.start(0, 0, iframe)
  builder.add(frame1, _blocks(_block(16, 16, 6, 8, 8, 8)))  # mv (2, 0) on columns 2..15
  builder.add(frame1, None)  # no side data
  builder.add(frame3, _blocks(_block(16, 16, 20, 8, 24, 8)))  # mv (4, 0) on columns 16..31
  gop = builder.finish()
  assert gop.motion_vectors.shape == (3, height, width, 2) and gop.motion_vectors.dtype == np.int16
  assert gop.residuals.shape == (3, height, width, 3) and gop.residuals.dtype == np.int16
  # Frame 1: A_1(x) = x - 2 on columns 2..15.
  np.testing.assert_array_equal(gop.motion_vectors[0, 5, [1, 2, 15, 16]], [[0, 0], [2, 0], [2, 0], [0, 0]])
  # The frame without side data: all outputs zero.
  assert not gop.motion_vectors[1].any() and not gop.residuals[1].any()
  assert not gop.frame_motion_vectors[1].any()
  assert len(gop.block_motion_vectors[1]) == 0
  # Frame 3: p = (17, 5) has q = (13, 5), and A_1(13, 5) = (11, 5): accumulated (6, 0).
  # p = (20, 5) has q = (16, 5), unwritten in frame 1: accumulated (4, 0).
  np.testing.assert_array_equal(gop.motion_vectors[2, 5, 17], [6, 0])
  np.testing.assert_array_equal(gop.motion_vectors[2, 5, 20], [4, 0])
  np.testing.assert_array_equal(gop.motion_vectors[2, 5, 2], [2, 0])  # carried over from frame 1
  np.testing.assert_array_equal(gop.frame_motion_vectors[2, 5, 17], [4, 0])
  # Residual: F_3(p) - F_I(A_3(p)).
  np.testing.assert_array_equal(gop.residuals[2, 5, 17], frame3[5, 17].astype(int) - iframe[5, 11].astype(int))
  np.testing.assert_array_equal(gop.residuals[2, 5, 2], frame3[5, 2].astype(int) - iframe[5, 0].astype(int))
  np.testing.assert_array_equal(gop.residuals[0, 5, 1], frame1[5, 1].astype(int) - iframe[5, 1].astype(int))


def test_per_frame_residual_by_hand():
  height, width = 16, 32
  frames = [_gradient(height, width, s) for s in (3, 5, 7)]
  builder = codec.GopBuilder(height, width, accumulate=False)
  builder.start(0, 0, frames[0])
  builder.add(frames[1], _blocks(_block(16, 16, 6, 8, 8, 8)))
  builder.add(frames[2], _blocks(_block(16, 16, 20, 8, 24, 8)))
  gop = builder.finish()
  assert gop.motion_vectors is gop.frame_motion_vectors
  np.testing.assert_array_equal(gop.motion_vectors[1, 5, 17], [4, 0])
  # F_t(p) - F_{t-1}(p - mv(p)).
  np.testing.assert_array_equal(gop.residuals[1, 5, 17], frames[2][5, 17].astype(int) - frames[1][5, 13].astype(int))
  np.testing.assert_array_equal(gop.residuals[1, 5, 3], frames[2][5, 3].astype(int) - frames[1][5, 3].astype(int))
  np.testing.assert_array_equal(gop.residuals[0, 5, 3], frames[1][5, 3].astype(int) - frames[0][5, 1].astype(int))


def test_residual_range_and_buffer_growth():
  height, width = 8, 8
  builder = codec.GopBuilder(height, width, capacity=2)
  builder.start(3, 36, np.full((height, width, 3), 255, np.uint8))
  for t in range(5):
    builder.add(np.zeros((height, width, 3), np.uint8), _blocks())
  gop = builder.finish()
  assert (gop.index, gop.start_frame, gop.num_pframes) == (3, 36, 5)
  assert (gop.residuals == -255).all()


def _hand_made_gop(seed, height=24, width=40):
  """(rgb, kind, blocks) of an I-frame and P-frames that exercise every rule of the MV map."""
  rng = np.random.default_rng(seed)

  def random_blocks(size, keep=0.8, reach=12):
    rows = []
    for y in range(size // 2, height + size // 2, size):
      for x in range(size // 2, width + size // 2, size):
        if rng.random() < keep:
          mv_x, mv_y = rng.integers(-reach, reach + 1, 2)
          rows.append(_block(size, size, x - mv_x, y - mv_y, x, y))
    return _blocks(*rows)

  hand = _blocks(
      _block(16, 16, 6, 8, 8, 8),  # mv (2, 0)
      _block(16, 16, 8, 5, 8, 8),  # overlaps the first, later in array order; source cut
      _block(8, 8, 20, 12, 16, 12),  # inside both 16x16 blocks' reach: overwrites
      _block(16, 16, 45, 8, 40, 8),  # past the right edge, source further out
      _block(5, 5, 30, 20, 33, 22),  # odd size: offsets [-2, 2)
      _block(16, 16, 24, 16, 24, 16),  # zero vector: writes nothing
      _block(16, 16, -9, 8, 8, 8),  # source entirely outside: writes nothing
      _block(16, 16, 400, 8, 8, 8),
  )  # far outside on the right, in the top row: nothing
  frames = [(rng.integers(0, 256, (height, width, 3), np.uint8), 'I', None)]
  for blocks in (
      hand,
      None,
      random_blocks(16),
      _blocks(),
      random_blocks(8, reach=20),
      None,
      random_blocks(16, keep=1.0),
  ):
    frames.append((rng.integers(0, 256, (height, width, 3), np.uint8), 'P', blocks))
  return frames


@pytest.mark.parametrize('seed', [0, 1])
@pytest.mark.parametrize('accumulate', [True, False])
@pytest.mark.parametrize('backend', codec.GOP_BACKENDS)
def test_backends_equal_the_definition_on_hand_made_gops(seed, accumulate, backend):
  frames = _hand_made_gop(seed)
  height, width = frames[0][0].shape[:2]
  want = _naive_gops(frames, height, width)[0]
  builder = codec.GopBuilder(height, width, accumulate=accumulate, backend=backend, capacity=3)  # grows twice
  builder.start(0, 0, frames[0][0])
  for rgb, _, blocks in frames[1:]:
    # PyAV's RGB rows are padded: the kernels must honour the row stride.
    padded = np.zeros((height, width + 5, 3), np.uint8)
    padded[:, :width] = rgb
    builder.add(padded[:, :width], blocks)
  gop = builder.finish()
  np.testing.assert_array_equal(gop.motion_vectors, want['acc' if accumulate else 'mv'])
  np.testing.assert_array_equal(gop.residuals, want['res' if accumulate else 'frame_res'])
  np.testing.assert_array_equal(gop.frame_motion_vectors, want['mv'])
  assert gop.motion_vectors.dtype == gop.residuals.dtype == np.int16
  if backend == 'numba' and accumulate:
    # The aligned (and the empty) frames go through the cell grid, the hand-made one through
    # the per-pixel map.
    assert builder.cell_frames == 4
  assert [len(b) for b in gop.block_motion_vectors] == [
      0 if blocks is None else len(blocks) for _, _, blocks in frames[1:]
  ]


def test_arrays_a_caller_keeps_are_never_written_again(monkeypatch):
  """Whole Gops, views, raw memory (a C extension's hold) and arrays of other builders, kept.

  Ownership must not depend on the interpreter's reference counts: here sys.getrefcount says
  nothing holds anything (as an interpreter that borrows references could).
  """
  monkeypatch.setattr(sys, 'getrefcount', lambda obj: 1)
  height, width = 8, 16
  blocks = _blocks(_block(8, 8, 3, 4, 4, 4))
  builders = [codec.GopBuilder(height, width, capacity=2) for _ in range(2)]

  def build(builder, value):  # residuals value + k, k = 0, 1, 2
    builder.start(0, 0, np.full((height, width, 3), 5, np.uint8))
    for k in range(3):  # grows once
      builder.add(np.full((height, width, 3), 5 + value + k, np.uint8), blocks)
    return builder.finish()

  kept, copies = [], []
  for value in range(20):
    gop = build(builders[value % 2], value)
    held = {
        'gop': gop.residuals,
        'view': gop.motion_vectors[1:],
        'memory': np.frombuffer(memoryview(gop.residuals[0]).cast('B'), np.uint8),
    }
    kept.append(held)
    copies.append({name: array.copy() for name, array in held.items()})
    del gop  # the views and the raw memory stay, held in `kept`
  for held, copy in zip(kept, copies):
    for name in held:
      np.testing.assert_array_equal(held[name], copy[name], err_msg=name)


def test_gops_kept_from_a_real_video_are_never_overwritten(carphone_340):
  gops = list(codec.iter_gops(carphone_340.path))
  again = list(codec.iter_gops(carphone_340.path))  # extracting more video writes none of them
  for gop, fresh in zip(gops, again):
    np.testing.assert_array_equal(gop.motion_vectors, fresh.motion_vectors)
    np.testing.assert_array_equal(gop.residuals, fresh.residuals)
    assert not np.shares_memory(gop.residuals, fresh.residuals)


def test_unknown_backend_is_rejected(square_video):
  with pytest.raises(ValueError, match='backend'):
    codec.GopBuilder(8, 8, backend='cuda')
  with pytest.raises(ValueError, match='backend'):
    next(codec.iter_gops(square_video[0].path, backend='cuda'))


# ---------------------------------------------------------------------------------------------
# Synthetic video with known motion, through the real encoder and decoder.

_VELOCITY = (2, 1)
_SIZE, _START = 32, (16, 16)


@pytest.fixture(scope='module')
def square_video(tmp_path_factory):
  directory = tmp_path_factory.mktemp('square')
  frames = videos.moving_square_frames(14, 64, 96, velocity=_VELOCITY, size=_SIZE, start=_START)
  source = videos.write_video(directory / 'square.mkv', frames)
  info = codec.reencode(source, directory / 'square.m4v', width=96, height=64)
  return info, frames


def _inside_square(t, margin=0):
  inside = np.zeros((64, 96), bool)
  x0, y0 = _START[0] + t * _VELOCITY[0], _START[1] + t * _VELOCITY[1]
  inside[y0 + margin : y0 + _SIZE - margin, x0 + margin : x0 + _SIZE - margin] = True
  return inside


def test_reencode_gives_regular_gops(square_video):
  info, _ = square_video
  assert (info.codec_name, info.width, info.height) == ('mpeg4', 96, 64)
  assert (info.num_frames, info.gop_size, info.has_b_frames) == (14, 12, False)
  assert codec.probe(info.path) == info


@pytest.mark.parametrize('accumulate', [True, False])
def test_known_motion(square_video, accumulate):
  info, frames = square_video
  gops = list(codec.iter_gops(info.path, accumulate=accumulate))
  assert [(g.index, g.start_frame, g.num_pframes) for g in gops] == [(0, 0, 11), (1, 12, 1)]
  assert np.abs(gops[0].iframe.astype(int) - frames[0]).mean() < 4
  assert np.abs(gops[1].iframe.astype(int) - frames[12]).mean() < 4  # the last GOP is there
  gop = gops[0]
  for t in range(1, 12):
    inside = _inside_square(t)
    steps = t if accumulate else 1
    expected = (steps * _VELOCITY[0], steps * _VELOCITY[1])
    moving = gop.frame_motion_vectors[t - 1][inside]
    # Inside the square, most pixels carry exactly the motion, and none carries a wrong one.
    assert ((moving == _VELOCITY).all(-1)).mean() > 0.4, t
    assert ((moving == _VELOCITY).all(-1) | (moving == 0).all(-1)).all(), t
    values, counts = np.unique(gop.motion_vectors[t - 1][_inside_square(t, margin=8)], axis=0, return_counts=True)
    np.testing.assert_array_equal(values[counts.argmax()], expected)
    tracked = inside & (gop.motion_vectors[t - 1] == expected).all(-1)
    assert np.abs(gop.residuals[t - 1][tracked]).mean() < 3, t
  # Blocks vectors: only the square's macroblocks move, by exactly the velocity.
  for blocks in gop.block_motion_vectors:
    mv = blocks[:, 5:7] - blocks[:, 3:5]
    moving = mv[(mv != 0).any(-1)]
    assert len(moving) and (moving == _VELOCITY).all()


def test_last_frame_is_reachable(square_video, tmp_path):
  info, frames = square_video
  last = list(codec.iter_gops(info.path))[-1]
  assert last.start_frame + last.num_pframes == info.num_frames - 1
  # The last frame reconstructed from its I-frame and accumulated residual is the decoded frame.
  with av.open(info.path) as container:
    container.streams.video[0].codec_context.options = dict(stream_lib.EXACT_DECODER_OPTIONS)
    decoded = [_rgb(f) for f in container.decode(video=0)]
  assert len(decoded) == 14
  source = np.indices((64, 96))[::-1].transpose(1, 2, 0) - last.motion_vectors[-1]
  rebuilt = last.iframe[source[..., 1], source[..., 0]].astype(int) + last.residuals[-1]
  np.testing.assert_array_equal(rebuilt, decoded[-1])


def test_all_intra_pframe_has_no_side_data(tmp_path):
  # A scene cut at frame 5: the encoder codes that P-frame all intra, so it exports no vectors.
  cut = np.concatenate(
      [videos.moving_square_frames(14, 64, 96, seed=0)[:5], videos.moving_square_frames(14, 64, 96, seed=1)[5:]]
  )
  source = videos.write_video(tmp_path / 'cut.mkv', cut)
  info = codec.reencode(source, tmp_path / 'cut.m4v', width=96, height=64)
  decoded = _decode_with_vectors(info.path)
  assert decoded[5][2] is None and all(d[2] is not None for d in decoded[1:5] + decoded[6:12])
  expected = _naive_gops(decoded, 64, 96)
  for accumulate in (True, False):
    gop = next(codec.iter_gops(info.path, accumulate=accumulate))
    assert gop.block_motion_vectors[4].shape == (0, 7)
    assert not gop.motion_vectors[4].any() and not gop.residuals[4].any()
    np.testing.assert_array_equal(gop.motion_vectors, expected[0]['acc' if accumulate else 'mv'])
    np.testing.assert_array_equal(gop.residuals, expected[0]['res' if accumulate else 'frame_res'])
  assert gop.residuals[5].any()  # the frame after the cut is coded against it again


def test_reencode_short_video_and_custom_gop(tmp_path):
  frames = videos.moving_square_frames(7, 32, 48, size=16, start=(4, 4))
  source = videos.write_video(tmp_path / 'short.mkv', frames)
  info = codec.reencode(source, tmp_path / 'short.m4v', width=40, height=24, gop_size=3)
  assert (info.width, info.height, info.num_frames, info.gop_size) == (40, 24, 7, 3)
  gops = list(codec.iter_gops(info.path))
  assert [g.num_pframes for g in gops] == [2, 2, 0]
  assert gops[-1].motion_vectors.shape == (0, 24, 40, 2)
  assert gops[-1].iframe.shape == (24, 40, 3)


# ---------------------------------------------------------------------------------------------
# Real footage.


def _rgb(frame):
  """A decoded frame as RGB, by the project's machine-independent conversion (codec/stream.py)."""
  return frame.to_ndarray(format='rgb24', threads=1, interpolation=Interpolation.BILINEAR | stream_lib.EXACT_TO_RGB)


def _decode_with_vectors(path):
  """Independent of iter_gops: RGB frames, picture types and block vectors of every frame."""
  with av.open(str(path)) as container:
    stream = container.streams.video[0]
    stream.codec_context.options = {**stream_lib.EXACT_DECODER_OPTIONS, 'flags2': '+export_mvs'}
    result = []
    for frame in container.decode(stream):
      side_data = frame.side_data.get('MOTION_VECTORS')
      result.append(
          (
              _rgb(frame),
              av.video.frame.PictureType(frame.pict_type).name,
              None if side_data is None else motion.block_vectors(side_data.to_ndarray()),
          )
      )
  return result


def _naive_gops(decoded, height, width):
  """The definition of METHOD.md section 2, written plainly with coordinate maps."""
  gops = []
  ys, xs = np.mgrid[0:height, 0:width]
  for rgb, kind, blocks in decoded:
    if kind == 'I':
      gops.append({'iframe': rgb, 'mv': [], 'acc': [], 'res': [], 'frame_res': []})
      origin_x, origin_y, previous = xs.copy(), ys.copy(), rgb
      continue
    gop = gops[-1]
    if blocks is None:
      for key in ('mv', 'acc'):
        gop[key].append(np.zeros((height, width, 2), int))
      for key in ('res', 'frame_res'):
        gop[key].append(np.zeros((height, width, 3), int))
      previous = rgb
      continue
    mv, _ = codec.reference_motion_map(blocks, height, width)
    qx, qy = xs - mv[..., 0], ys - mv[..., 1]
    origin_x, origin_y = origin_x[qy, qx], origin_y[qy, qx]
    gop['mv'].append(mv.astype(int))
    gop['acc'].append(np.stack([xs - origin_x, ys - origin_y], -1))
    gop['res'].append(rgb.astype(int) - gop['iframe'][origin_y, origin_x])
    gop['frame_res'].append(rgb.astype(int) - previous[qy, qx])
    previous = rgb
  return gops


@pytest.fixture(scope='module')
def carphone_340(real_clips, tmp_path_factory):
  clip = next(p for p in real_clips if p.name == 'carphone_pristine.mp4')
  return codec.reencode(clip, tmp_path_factory.mktemp('real') / 'carphone.m4v')


def test_real_clip_at_340x256_matches_the_definition(carphone_340):
  info = carphone_340
  assert (info.width, info.height, info.num_frames, info.gop_size) == (340, 256, 120, 12)
  decoded = _decode_with_vectors(info.path)
  assert [kind for _, kind, _ in decoded] == (['I'] + ['P'] * 11) * 10
  expected = _naive_gops(decoded[:36], 256, 340)  # three GOPs keep the test quick
  for accumulate in (True, False):
    gops = codec.iter_gops(info.path, accumulate=accumulate)
    for gop, want in zip(gops, expected):
      np.testing.assert_array_equal(gop.iframe, want['iframe'])
      np.testing.assert_array_equal(gop.frame_motion_vectors, want['mv'])
      np.testing.assert_array_equal(gop.motion_vectors, want['acc' if accumulate else 'mv'])
      np.testing.assert_array_equal(gop.residuals, want['res' if accumulate else 'frame_res'])
  # Every column is written somewhere, the last 340 mod 8 = 4 included (CoViAR leaves them).
  gops = list(codec.iter_gops(info.path))
  written = np.concatenate([g.frame_motion_vectors for g in gops]).any(-1).any(0).any(0)
  assert written.all()


def test_numba_equals_reference_on_every_real_pframe(carphone_340):
  for accumulate in (True, False):
    fast = codec.iter_gops(carphone_340.path, accumulate=accumulate)
    slow = codec.iter_gops(carphone_340.path, accumulate=accumulate, backend='reference')
    num_pframes = 0
    for gop, want in zip(fast, slow, strict=True):
      np.testing.assert_array_equal(gop.iframe, want.iframe)
      np.testing.assert_array_equal(gop.motion_vectors, want.motion_vectors)
      np.testing.assert_array_equal(gop.residuals, want.residuals)
      np.testing.assert_array_equal(gop.frame_motion_vectors, want.frame_motion_vectors)
      for blocks, want_blocks in zip(gop.block_motion_vectors, want.block_motion_vectors, strict=True):
        np.testing.assert_array_equal(blocks, want_blocks)
      num_pframes += gop.num_pframes
    assert num_pframes == 110
  # Every real P-frame takes the cell grid path.
  decoded = _decode_with_vectors(carphone_340.path)[:12]
  builder = codec.GopBuilder(256, 340)
  builder.start(0, 0, decoded[0][0])
  for rgb, _, blocks in decoded[1:]:
    builder.add(rgb, blocks)
  assert builder.cell_frames == 11


def test_fast_path_equals_reference_on_real_vectors(carphone_340):
  mapper = codec.MotionMapper(256, 340)
  mv = np.empty((256, 340, 2), np.int16)
  checked = 0
  for _, kind, blocks in _decode_with_vectors(carphone_340.path):
    if blocks is None:
      continue
    source = mapper.map(blocks, mv)
    ref_mv, ref_source = codec.reference_motion_map(blocks, 256, 340)
    np.testing.assert_array_equal(mv, ref_mv)
    np.testing.assert_array_equal(source, ref_source)
    checked += 1
  assert checked == 110 and mapper.fast_frames == 110  # every P-frame, none via the slow path


def test_all_real_clips_structure(real_clips, tmp_path):
  for clip in real_clips:
    info = codec.reencode(clip, tmp_path / f'{clip.stem}.m4v', width=64, height=48)
    assert (info.width, info.height, info.gop_size, info.has_b_frames) == (64, 48, 12, False)
    assert info.num_frames == {'bigbuckbunny': 132, 'bikes': 250}.get(clip.stem, 120)
    num_frames = 0
    for index, gop in enumerate(codec.iter_gops(info.path)):
      assert (gop.index, gop.start_frame) == (index, 12 * index)
      p = gop.num_pframes
      assert gop.iframe.shape == (48, 64, 3) and gop.iframe.dtype == np.uint8
      assert gop.motion_vectors.shape == (p, 48, 64, 2) and gop.motion_vectors.dtype == np.int16
      assert gop.residuals.shape == (p, 48, 64, 3) and gop.residuals.dtype == np.int16
      assert np.abs(gop.residuals).max() <= 255
      assert len(gop.block_motion_vectors) == p
      num_frames += 1 + p
    assert num_frames == info.num_frames
    assert gop.iframe.std() > 5  # real pictures, not zeros


def test_h264_source_is_rejected_by_iter_gops(real_clips):
  with pytest.raises(codec.CodecError, match='re-encode it first'):
    next(codec.iter_gops(real_clips[0]))
  info = codec.probe(real_clips[0])
  assert info.codec_name == 'h264' and info.num_frames > 0


# ---------------------------------------------------------------------------------------------
# The same bytes on every machine.

# FFmpeg's AV_CPU_FLAG_* for a CPU with SSE2 as its best (x86-64's baseline): MMX, MMXEXT, SSE, SSE2.
_SSE2_ONLY = 0x1 | 0x2 | 0x8 | 0x10


@contextlib.contextmanager
def _ffmpeg_as_on_a_cpu_with(cpu_flags: int):
  """FFmpeg picks its SIMD code as if the CPU had only `cpu_flags` (0: plain C), then auto again."""
  libraries = sorted((pathlib.Path(av.__file__).parent.parent / 'av.libs').glob('libavutil*'))
  if not libraries:
    pytest.skip('this PyAV build has no bundled libavutil to force CPU flags on')
  avutil = ctypes.CDLL(str(libraries[0]))
  avutil.av_force_cpu_flags(ctypes.c_int(cpu_flags))
  try:
    yield
  finally:
    avutil.av_force_cpu_flags(ctypes.c_int(-1))


def test_pixels_do_not_depend_on_the_cpus_simd(real_clips, tmp_path):
  """Re-encoding, extraction and the synthetic writer give the same bytes with FFmpeg's plain C, SSE2
  and this CPU's best SIMD code, as on another machine; FFmpeg's default conversion does not."""
  clip = next(p for p in real_clips if p.name == 'carphone_pristine.mp4')
  frames = synthetic.render_video(
      synthetic.SyntheticConfig(width=32, height=32, num_frames=12), 'rise', np.random.SeedSequence(0)
  )
  outputs, default_rgb = {}, {}
  for name, cpu_flags in (('best', -1), ('plain C', 0), ('SSE2', _SSE2_ONLY)):
    with _ffmpeg_as_on_a_cpu_with(cpu_flags):
      info = codec.reencode(clip, tmp_path / f'{name}.m4v', width=96, height=64)
      gops = list(codec.iter_gops(info.path))
      synthetic.write_video(frames, tmp_path / f'{name}.avi')
      with av.open(str(clip)) as container:
        default_rgb[name] = np.stack([f.to_ndarray(format='rgb24') for f in container.decode(video=0)])
    files = [np.fromfile(path, np.uint8) for path in (info.path, tmp_path / f'{name}.avi')]
    outputs[name] = files + [
        np.concatenate([g.iframe.ravel(), g.motion_vectors.ravel(), g.residuals.ravel()]) for g in gops
    ]
  for name in ('plain C', 'SSE2'):
    assert len(outputs[name]) == len(outputs['best'])
    for actual, expected in zip(outputs[name], outputs['best']):
      np.testing.assert_array_equal(actual, expected, err_msg=name)
  # The forced flags took effect: FFmpeg's default YUV -> RGB conversion differs between them.
  assert not np.array_equal(default_rgb['plain C'], default_rgb['best'])


# ---------------------------------------------------------------------------------------------
# Bad input: a CodecError naming the file and the fix, never a crash or silent zeros.


def _raises(function, path, match):
  with pytest.raises(codec.CodecError, match=match) as error:
    result = function(path)
    if hasattr(result, '__next__'):
      list(result)
  assert str(path) in str(error.value)
  return error


def _reencode_beside(path):
  return codec.reencode(path, pathlib.Path(path).with_suffix('.x'))


@pytest.mark.parametrize('function', [codec.probe, codec.iter_gops, _reencode_beside])
def test_missing_file_and_not_a_video(function, tmp_path):
  _raises(function, tmp_path / 'missing.m4v', 'no such file; check the path')
  text = tmp_path / 'notes.m4v'
  text.write_text('hello, this is not a video\n' * 20)
  _raises(function, text, 'not a video')


def test_no_video_stream(tmp_path):
  path = tmp_path / 'audio.wav'
  with av.open(str(path), 'w') as container:
    stream = container.add_stream('pcm_s16le', rate=8000)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format='s16', layout='mono')
    frame.sample_rate = 8000
    container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
  for function in (codec.probe, codec.iter_gops, lambda p: codec.reencode(p, tmp_path / 'o.m4v')):
    _raises(function, path, 'no video stream')


def test_zero_frames(tmp_path):
  path = tmp_path / 'empty.avi'
  with av.open(str(path), 'w', format='avi') as container:
    stream = container.add_stream('mpeg4', rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 48, 'yuv420p'
    container.start_encoding()
  for function in (codec.probe, codec.iter_gops, lambda p: codec.reencode(p, tmp_path / 'o.m4v')):
    _raises(function, path, 'zero frames')


def test_truncated_and_corrupt_streams(square_video, tmp_path):
  data = pathlib.Path(square_video[0].path).read_bytes()
  truncated = tmp_path / 'truncated.m4v'
  truncated.write_bytes(data[: len(data) * 2 // 3])
  _raises(codec.iter_gops, truncated, 'truncated or corrupt')
  corrupt = bytearray(data)
  for position in np.random.default_rng(0).integers(200, len(data), 40):
    corrupt[position] ^= 0xFF
  path = tmp_path / 'corrupt.m4v'
  path.write_bytes(bytes(corrupt))
  _raises(codec.iter_gops, path, 'truncated or corrupt')


def test_b_frames_and_irregular_gops_need_reencoding(tmp_path):
  frames = videos.moving_square_frames(10, 32, 48, size=16, start=(4, 4))
  with_b = videos.write_mpeg4(tmp_path / 'b.m4v', frames, max_b_frames=2)
  _raises(codec.iter_gops, with_b, 're-encode it first')
  assert codec.probe(with_b).has_b_frames and codec.probe(with_b).gop_size is None
  irregular = videos.write_mpeg4(tmp_path / 'irregular.m4v', frames, gop_size=4, iframes_at=(6,))
  _raises(codec.iter_gops, irregular, 're-encode it first')
  assert codec.probe(irregular).gop_size is None
  # Re-encoding fixes both.
  info = codec.reencode(with_b, tmp_path / 'fixed.m4v', width=48, height=32, gop_size=4)
  assert [g.num_pframes for g in codec.iter_gops(info.path)] == [3, 3, 1]


def test_absurd_sizes(square_video, tmp_path):
  source = square_video[0].path
  for width, height in ((0, 256), (340, -1), (100000, 256), (340, 5)):
    with pytest.raises(codec.CodecError, match='supported') as error:
      codec.reencode(source, tmp_path / 'o.m4v', width=width, height=height)
    assert 'o.m4v' in str(error.value)
  with pytest.raises(codec.CodecError, match='gop_size'):
    codec.reencode(source, tmp_path / 'o.m4v', gop_size=0)
  tiny = videos.write_mpeg4(tmp_path / 'tiny.m4v', np.zeros((2, 4, 6, 3), np.uint8))
  _raises(codec.iter_gops, tiny, 'outside the supported')
  wide = videos.write_mpeg4(tmp_path / 'wide.m4v', np.zeros((1, 16, 4200, 3), np.uint8))
  _raises(codec.iter_gops, wide, 'outside the supported')
  assert not (tmp_path / 'o.m4v').exists()


# ---------------------------------------------------------------------------------------------
# Pictures.


def test_flow_colours_and_grid():
  from imr_jax import visualization

  colours = visualization.flow_to_rgb(np.array([[[0, 0], [4, 0], [-4, 0], [2, 0]]]), 4)
  np.testing.assert_array_equal(colours[0, :3], [[255, 255, 255], [255, 0, 0], [0, 255, 255]])
  assert colours[0, 3, 0] == 255 and 0 < colours[0, 3, 1] < 255  # half length: paler red
  np.testing.assert_array_equal(visualization.residual_to_rgb(np.array([[[-255, 0, 300]]])), [[[0, 128, 255]]])
  tile = np.zeros((5, 6, 3), np.uint8)
  grid = visualization.image_grid([[tile, tile], [tile]], padding=2)
  assert grid.shape == (2 + 2 * 7, 2 + 2 * 8, 3)
  assert (grid[2:7, 2:8] == 0).all() and (grid[9:14, 10:16] == 255).all()  # missing cell blank
  # The key (21 px: centre 10, rim radius 9.5): each pixel coloured as the motion from the centre to it,
  # so white in the middle, near-full red 9 px right, cyan 9 px left, violet up; white outside the disk.
  wheel = visualization.colour_wheel(21, 21)
  for y, x in ((10, 10), (10, 19), (10, 1), (1, 10), (19, 10)):
    np.testing.assert_array_equal(wheel[y, x], visualization.flow_to_rgb(np.array([[[x - 10, y - 10]]]), 9.5)[0, 0])
  assert wheel[10, 19, 0] == 255 and wheel[10, 19, 1] < 20 and (wheel[0, 0] == 255).all()


def test_visualize_cli_draws_a_gop(square_video, tmp_path):
  from data_prep import visualize

  picture = visualize.gop_picture(square_video[0].path, 1, mode='both')
  # 5 rows (frame, MV and residual twice) of 64-px tiles; 2 columns (I, P1) of 96-px tiles.
  assert picture.shape[0] > 5 * 64 and picture.shape[1] > 2 * 96 and picture.dtype == np.uint8
  first = visualize.gop_picture(square_video[0].path, 0, mode='accumulated')
  assert first.shape[0] > 3 * 64 and first.shape[1] > 12 * 96
  with pytest.raises(codec.CodecError, match='no GOP 5'):
    visualize.gop_picture(square_video[0].path, 5)


def test_visualize_command_line(square_video, tmp_path):
  import subprocess
  import sys

  out = tmp_path / 'gop.png'
  result = subprocess.run(
      [sys.executable, '-m', 'data_prep.visualize', square_video[0].path, '--gop=0', f'--out={out}', '--max_width=600'],
      capture_output=True,
      text=True,
      cwd=pathlib.Path(__file__).parents[1],
      timeout=120,
  )
  assert result.returncode == 0, result.stderr
  from PIL import Image

  width, height = Image.open(out).size
  assert 500 < width <= 600 and height > 5 * 10  # 13 columns of 96 px frames, scaled to fit 600 px
  result = subprocess.run(
      [sys.executable, '-m', 'data_prep.visualize', str(tmp_path / 'nope.mp4')],
      capture_output=True,
      text=True,
      cwd=pathlib.Path(__file__).parents[1],
      timeout=120,
  )
  assert result.returncode != 0 and 'no such file' in result.stderr
