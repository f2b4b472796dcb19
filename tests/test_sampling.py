"""Clip sampling on hand-made GOP structures with known answers."""

import numpy as np
import pytest
import tensorflow as tf

from imr_jax.data import sampling


def _indices(num_pframes, start, num_gops, p_per_gop):
  result = sampling.clip_indices(tf.constant(num_pframes), tf.constant(start), num_gops, p_per_gop)
  return result.gops.numpy().tolist(), result.pframes.numpy().tolist()


def test_evenly_spaced_takes_segment_centres():
  assert sampling.evenly_spaced(tf.constant(11), 5).numpy().tolist() == [1, 3, 5, 7, 9]
  assert sampling.evenly_spaced(tf.constant(10), 1).numpy().tolist() == [5]
  assert sampling.evenly_spaced(tf.constant(2), 5).numpy().tolist() == [0, 0, 1, 1, 1]
  assert sampling.evenly_spaced(tf.constant(1), 3).numpy().tolist() == [0, 0, 0]


def test_full_gops_take_every_other_pframe():
  # Three full GOPs of 12 frames (11 P-frames each); flat P-frame index of GOP g starts at 11 g.
  gops, pframes = _indices([11, 11, 11], 1, 2, 5)
  assert gops == [1, 2]
  assert pframes == [12, 14, 16, 18, 20, 23, 25, 27, 29, 31]


def test_last_gop_with_fewer_pframes():
  # 28 frames: GOPs of 12, 12 and 4 frames, so 11, 11 and 3 P-frames.
  gops, pframes = _indices([11, 11, 3], 2, 1, 5)
  assert gops == [2]
  assert pframes == [22, 22, 23, 24, 24]  # floor((2j + 1) * 3 / 10) = 0, 0, 1, 1, 1 after 22


def test_last_gop_without_pframes_is_never_used():
  # 25 frames: the third GOP is a lone I-frame; windows loop over the two usable GOPs only.
  num_pframes = tf.constant([11, 11, 0])
  assert sampling.usable_gops(num_pframes).numpy().tolist() == [0, 1]
  gops, _ = _indices([11, 11, 0], 1, 5, 1)
  assert gops == [1, 0, 1, 0, 1]


def test_short_video_loops():
  gops, pframes = _indices([11, 5], 0, 5, 2)
  assert gops == [0, 1, 0, 1, 0]
  assert pframes == [2, 8, 12, 14, 2, 8, 12, 14, 2, 8]


def test_window_starts():
  assert sampling.num_window_starts(tf.constant(10), 5).numpy() == 6
  assert sampling.num_window_starts(tf.constant(5), 5).numpy() == 1
  assert sampling.num_window_starts(tf.constant(3), 5).numpy() == 3  # loops, each start wraps


def test_eval_starts_are_uniformly_spaced():
  # 14 usable GOPs, windows of 5: starts 0..9; 5 clips at the centres of 5 parts of 10.
  starts = sampling.eval_window_starts(tf.constant(14), 5, 5).numpy().tolist()
  assert starts == [1, 3, 5, 7, 9]
  assert sampling.eval_window_starts(tf.constant(5), 5, 3).numpy().tolist() == [0, 0, 0]
  assert sampling.eval_window_starts(tf.constant(1000), 5, 1).numpy().tolist() == [498]


def test_random_start_covers_valid_range_only():
  starts = {int(sampling.random_window_start(tf.constant(8), 5, tf.constant([i, 7])).numpy()) for i in range(200)}
  assert starts == {0, 1, 2, 3}


def test_random_start_is_deterministic_given_seed():
  seed = tf.constant([3, 4])
  first = sampling.random_window_start(tf.constant(100), 5, seed).numpy()
  assert all(sampling.random_window_start(tf.constant(100), 5, seed).numpy() == first for _ in range(5))


@pytest.mark.parametrize(
    'num_usable,num_gops,start,expected',
    [
        (8, 5, 2, {0, 1, 3}),  # four valid starts, all but 2
        (5, 5, 0, {1, 2, 3, 4}),  # one valid start: wrap around
        (3, 5, 1, {0, 2}),  # short video: every start wraps
        (1, 5, 0, {0}),  # one GOP: no other window exists
    ],
)
def test_shifted_start_differs_from_start(num_usable, num_gops, start, expected):
  shifted = {
      int(
          sampling.shifted_window_start(
              tf.constant(num_usable), num_gops, tf.constant(start), tf.constant([i, 1])
          ).numpy()
      )
      for i in range(200)
  }
  assert shifted == expected


def test_pframes_stay_inside_their_gop():
  num_pframes = np.array([11, 11, 11, 11, 7])
  first = np.concatenate([[0], np.cumsum(num_pframes)[:-1]])
  for start in range(5):
    gops, pframes = _indices(num_pframes.tolist(), start, 3, 4)
    for k, gop in enumerate(gops):
      chunk = np.array(pframes[4 * k : 4 * k + 4])
      assert np.all(chunk >= first[gop]) and np.all(chunk < first[gop] + num_pframes[gop])
