"""Which frames of a video make a clip: sampling on the GOP structure (METHOD.md section 3).

A clip is `num_gops` consecutive GOPs. The I-stream takes each GOP's I-frame; each P-stream takes
`p_per_gop` P-frames per GOP. Everything here is TensorFlow so that it runs inside the tf.data graph; the
functions are pure (randomness only through an explicit stateless seed) and work eagerly in tests.

Exact rules (all indices 0-based):
- A GOP is *usable* when it has at least one P-frame (only a video's last GOP can have none: a video of
  12k + 1 frames ends on a lone I-frame). Clips are built from usable GOPs only; U = their number.
- Window starts: a window of G GOPs starting at usable GOP s covers usable GOPs (s + k) mod U,
  k = 0..G-1, so a video shorter than G GOPs loops. The valid starts are 0..num_starts-1 with
  num_starts = U - G + 1 when U >= G (no wrap-around), else U (every start wraps).
- Training: s uniform over the valid starts. Evaluation: N clips at the centres of N equal parts of the
  start range, s_i = floor((2i + 1) * num_starts / (2N)) (see `evenly_spaced`); a short range repeats.
- P-frames of a GOP with n P-frames (GOP positions 1..n): the p_per_gop centres of p_per_gop equal parts
  of the n P-frames, j-th = floor((2j + 1) * n / (2 p_per_gop)) (0-based among the P-frames). For n = 11
  and p_per_gop = 5 these are P-frames 1, 3, 5, 7, 9 (GOP positions 2, 4, 6, 8, 10). A GOP with fewer
  P-frames than p_per_gop repeats some (n = 2 gives 0, 0, 1, 1, 1), so T_P is always G * p_per_gop.
- Shifted window (CTP): another valid start != s, uniform; when the only valid start is s (U == G) the
  window wraps, s' = (s + d) mod U with d uniform in 1..U-1; a one-GOP video has no other window and
  returns s itself.
"""

from typing import NamedTuple

import tensorflow as tf


class ClipIndices(NamedTuple):
  """Record-level indices of a clip's frames.

  Attributes:
    gops: int32 (G,), GOP numbers (indices into `gop/iframe`, `gop/motion_energy`, `gop/num_pframes`).
    pframes: int32 (G * p_per_gop,), GOP-major indices into the record's flat P-frame lists
      (`pframe/motion_vectors`, `pframe/residuals`).
  """

  gops: tf.Tensor
  pframes: tf.Tensor


def evenly_spaced(count: tf.Tensor, num: int) -> tf.Tensor:
  """The centres of `num` equal parts of range(count): floor((2i + 1) * count / (2 num)), i < num.

  Args:
    count: int32 scalar >= 1, the length of the range.
    num: how many indices.

  Returns:
    int32 (num,), non-decreasing values in [0, count).
  """
  count = tf.cast(count, tf.int32)
  return (2 * tf.range(num, dtype=tf.int32) + 1) * count // (2 * num)


def usable_gops(num_pframes: tf.Tensor) -> tf.Tensor:
  """The GOPs a clip may use: those with at least one P-frame.

  Args:
    num_pframes: int (num_gops,), the record's `gop/num_pframes`.

  Returns:
    int32 (U,), increasing GOP numbers.
  """
  return tf.cast(tf.reshape(tf.where(num_pframes > 0), [-1]), tf.int32)


def num_window_starts(num_usable: tf.Tensor, num_gops: int) -> tf.Tensor:
  """How many distinct windows of `num_gops` GOPs there are (see the module docstring)."""
  num_usable = tf.cast(num_usable, tf.int32)
  return tf.where(num_usable >= num_gops, num_usable - num_gops + 1, num_usable)


def random_window_start(num_usable: tf.Tensor, num_gops: int, seed: tf.Tensor) -> tf.Tensor:
  """A training window start, uniform over the valid starts; int32 scalar."""
  return tf.random.stateless_uniform([], seed, minval=0, maxval=num_window_starts(num_usable, num_gops), dtype=tf.int32)


def eval_window_starts(num_usable: tf.Tensor, num_gops: int, num_clips: int) -> tf.Tensor:
  """The starts of `num_clips` uniformly spaced evaluation windows; int32 (num_clips,)."""
  return evenly_spaced(num_window_starts(num_usable, num_gops), num_clips)


def shifted_window_start(num_usable: tf.Tensor, num_gops: int, start: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """Another window's start, at least one GOP away from `start` where the video allows; int32 scalar."""
  num_usable = tf.cast(num_usable, tf.int32)
  num_starts = num_window_starts(num_usable, num_gops)
  # Drawing from num_starts - 1 values and skipping `start` keeps the draw uniform over the others.
  other = tf.random.stateless_uniform([], seed, minval=0, maxval=tf.maximum(num_starts - 1, 1), dtype=tf.int32)
  other = tf.where(other >= start, other + 1, other)
  wrapped = tf.random.stateless_uniform([], seed, minval=1, maxval=tf.maximum(num_usable, 2), dtype=tf.int32)
  wrapped = (start + wrapped) % num_usable
  return tf.where(num_starts >= 2, other, tf.where(num_usable >= 2, wrapped, start))


def clip_indices(num_pframes: tf.Tensor, start: tf.Tensor, num_gops: int, p_per_gop: int) -> ClipIndices:
  """The frames of the window of `num_gops` usable GOPs that starts at usable GOP `start`.

  Args:
    num_pframes: int (num_gops_in_video,), the record's `gop/num_pframes`; at least one entry > 0.
    start: int32 scalar in [0, U), a window start in usable-GOP units.
    num_gops: G, GOPs per clip.
    p_per_gop: P-frames taken from each GOP.

  Returns:
    ClipIndices with gops (G,) and pframes (G * p_per_gop,).
  """
  num_pframes = tf.cast(num_pframes, tf.int32)
  usable = usable_gops(num_pframes)
  num_usable = tf.shape(usable)[0]
  gops = tf.gather(usable, (start + tf.range(num_gops, dtype=tf.int32)) % num_usable)
  first_pframe = tf.cumsum(num_pframes, exclusive=True)  # flat index of each GOP's first P-frame
  counts = tf.gather(num_pframes, gops)
  parts = 2 * tf.range(p_per_gop, dtype=tf.int32) + 1
  within = parts[tf.newaxis, :] * counts[:, tf.newaxis] // (2 * p_per_gop)  # (G, p_per_gop)
  pframes = tf.gather(first_pframe, gops)[:, tf.newaxis] + within
  return ClipIndices(gops=gops, pframes=tf.reshape(pframes, [-1]))
