"""Crop, resize, flip and jitter on hand-made clips: a marker must land in the same place in every stream."""

import numpy as np
import pytest
import tensorflow as tf

from imr_jax.data import augment
from tests import numerics


def _marker_clip(height, width, row, col, size=1):
  """A clip whose every stream is zero except a size x size marker block at (row, col)."""

  def frames(num, channels, values):
    array = np.zeros((num, height, width, channels), np.float32)
    array[:, row : row + size, col : col + size, :] = values
    return array

  energy = np.zeros((2, height, width), np.float32)
  energy[:, row : row + size, col : col + size] = 9.0
  return {
      'iframes': frames(2, 3, (200.0, 100.0, 50.0)),
      'motion_vectors': frames(4, 2, (5.0, -3.0)),
      'residuals': frames(4, 3, (-7.0, 8.0, 9.0)),
      'motion_energy': energy,
  }


def _where(array):
  """(rows, cols) of the non-zero pixels of the first frame (channel 0 for frames)."""
  first = array[0] if array.ndim == 3 else array[0, ..., 0]
  return tuple(np.nonzero(first)[i].tolist() for i in range(2))


def test_crop_then_flip_moves_marker_in_every_stream():
  clip = _marker_clip(8, 12, row=3, col=5)
  box = tf.constant([2, 3, 4, 4])  # rows 2..5, columns 3..6
  cropped = augment.crop_and_resize_clip(clip, box, size=4)  # same size: resize is the identity
  for name, value in cropped.items():
    assert _where(value.numpy()) == ([1], [2]), name
  flipped = {k: v.numpy() for k, v in augment.flip_left_right(cropped).items()}
  for name, value in flipped.items():
    assert _where(value) == ([1], [1]), name  # column 2 of 0..3 mirrors to column 1
  np.testing.assert_array_equal(flipped['motion_vectors'][:, 1, 1], [[-5.0, -3.0]] * 4)
  np.testing.assert_array_equal(flipped['residuals'][:, 1, 1], [[-7.0, 8.0, 9.0]] * 4)
  np.testing.assert_array_equal(flipped['iframes'][:, 1, 1], [[200.0, 100.0, 50.0]] * 2)
  np.testing.assert_array_equal(flipped['motion_energy'][:, 1, 1], [9.0, 9.0])


def test_downscale_keeps_marker_block_values():
  # A 2 x 2 block on even coordinates halves to one pixel with the block's exact value.
  clip = _marker_clip(10, 12, row=4, col=6, size=2)
  box = tf.constant([0, 2, 8, 8])
  out = {k: v.numpy() for k, v in augment.crop_and_resize_clip(clip, box, size=4).items()}
  for name, value in out.items():
    assert _where(value) == ([2], [2]), name
  # Exact: equal values blended with weights that sum to 1 (0.5 and 0.25 are exact), and an area
  # mean of four 9s times the exact area ratio 4.
  np.testing.assert_array_equal(out['motion_vectors'][0, 2, 2], [5.0, -3.0])  # values not rescaled
  np.testing.assert_array_equal(out['motion_energy'][0, 2, 2], 36.0)  # 4 pixels of 9: sum kept


def test_motion_energy_area_resize_preserves_sums():
  rng = np.random.default_rng(0)
  energy = rng.integers(0, 500, size=(3, 37, 53)).astype(np.float32)
  box = tf.constant([1, 7, 30, 40])
  out = augment.crop_and_resize_clip({'motion_energy': energy}, box, size=16)['motion_energy'].numpy()
  cropped = energy[:, 1:31, 7:47].astype(np.float64)  # integers: sums exact in float64
  # Each output pixel is an area-weighted sum over at most 3 x 4 input pixels (30 x 40 -> 16 x 16),
  # scaled twice (TensorFlow's 1 / area, our area ratio): within gamma(12 + 2 + 2) of the exact
  # non-negative value, so the float64 sums of outputs are within that of the exact sums too.
  rtol = numerics.gamma(16)
  out = out.astype(np.float64)
  numerics.assert_within(out.sum(axis=(1, 2)), cropped.sum(axis=(1, 2)), rtol * cropped.sum(axis=(1, 2)))
  # Whole cells of a 2 x 2 grid: output halves are 8 px, input halves 15 x 20 px.
  numerics.assert_within(
      out[:, :8, 8:].sum(axis=(1, 2)),
      cropped[:, :15, 20:].sum(axis=(1, 2)),
      rtol * cropped[:, :15, 20:].sum(axis=(1, 2)),
  )


def test_multi_scale_crop_boxes_are_valid_and_cover_the_choices():
  scales = (1.0, 0.875, 0.75, 0.66)
  sides = [256, 224, 192, 168]
  seen_pairs, seen_lefts = set(), set()
  for i in range(300):
    top, left, height, width = (
        augment.multi_scale_crop_box(tf.constant(256), tf.constant(340), scales, tf.constant([i, 0])).numpy().tolist()
    )
    assert height in sides and width in sides
    assert abs(sides.index(height) - sides.index(width)) <= augment.MAX_SCALE_DISTORTION
    assert 0 <= top <= 256 - height and 0 <= left <= 340 - width
    seen_pairs.add((height, width))
    seen_lefts.add(left)
  assert len(seen_pairs) == 10  # 4 + 3 + 3 pairs with |i - j| <= 1
  assert len(seen_lefts) > 50


def test_multi_scale_crop_box_rejects_bad_scales():
  with pytest.raises(ValueError, match='crop_scales'):
    augment.multi_scale_crop_box(tf.constant(8), tf.constant(8), (1.5,), tf.constant([0, 0]))


def test_eval_crop_boxes_along_the_long_side():
  boxes = augment.eval_crop_boxes(tf.constant(256), tf.constant(340), 3).numpy().tolist()
  assert boxes == [[0, 0, 256, 256], [0, 42, 256, 256], [0, 84, 256, 256]]
  boxes = augment.eval_crop_boxes(tf.constant(300), tf.constant(200), 3).numpy().tolist()
  assert boxes == [[0, 0, 200, 200], [50, 0, 200, 200], [100, 0, 200, 200]]
  assert augment.eval_crop_boxes(tf.constant(10), tf.constant(15), 1).numpy().tolist() == [
      [0, 2, 10, 10]
  ]  # round(0.5 * 5) = 2 (round half to even)


def test_color_jitter_is_one_draw_per_clip():
  frame = np.random.default_rng(1).uniform(0, 255, size=(1, 6, 6, 3)).astype(np.float32)
  iframes = tf.constant(np.concatenate([frame, frame]))
  jittered = augment.color_jitter(iframes, tf.constant([5, 6])).numpy()
  np.testing.assert_array_equal(jittered[0], jittered[1])
  assert not np.allclose(jittered, iframes.numpy())
  assert jittered.min() >= 0 and jittered.max() <= 255
