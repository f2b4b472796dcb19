"""Spatial views of a clip: one crop box and one flip shared by every stream (CoViAR / TSN style).

All functions are TensorFlow, pure, and run inside the tf.data graph; randomness comes only from an
explicit stateless seed (int32/int64 (2,)). They work on a clip in physical units (before normalisation):

  iframes        float32 (G, H, W, 3), RGB in [0, 255]
  motion_vectors float32 (T, H, W, 2), pixels, x then y
  residuals      float32 (T, H, W, 3), intensity in [-255, 255]
  motion_energy  float32 (G, H, W), per pixel sum of per-frame MV magnitudes over a GOP, pixels

A crop box is an int32 (4,) tensor (top, left, height, width) in source pixels.

Resizing: I-frames, MVs and residuals use bilinear interpolation with half-pixel centres and no
anti-aliasing, which is what CoViAR's cv2.resize(INTER_LINEAR) does to all three. Bilinear interpolation
is linear, so resizing MVs in pixels and normalising afterwards equals CoViAR's order (scale, resize)
up to the clip at +-20 px. Like CoViAR, MV *values* are not rescaled by the resize factor: the network
sees displacements in source pixels. Motion energy is resized by area and multiplied by the area ratio,
so each output pixel holds the energy of its footprint and every grid cell's sum is preserved; PMSP's
argmax over cells is then the argmax over the same regions of the crop.
"""

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

# TSN / CoViAR GroupMultiScaleCrop: the crop's height and width scales are at most this many steps
# apart in the scale list, so aspect ratios stay near 1.
MAX_SCALE_DISTORTION = 1
# Colour jitter strengths (config.data.color_jitter switches it on): brightness shift as a fraction of
# the intensity range, contrast factor range 1 +- this. One draw per clip, so all I-frames agree.
BRIGHTNESS_DELTA = 0.2
CONTRAST_DELTA = 0.2


def multi_scale_crop_box(height: tf.Tensor, width: tf.Tensor, scales: Sequence[float], seed: tf.Tensor) -> tf.Tensor:
  """A random multi-scale crop box (CoViAR's GroupMultiScaleCrop with a random position).

  Crop sides are int(scale * min(height, width)) for each scale; the height takes scale i and the width
  scale j, with (i, j) drawn uniformly from the pairs with |i - j| <= MAX_SCALE_DISTORTION; the top-left
  corner is uniform over the positions that keep the box inside the frame.

  Args:
    height, width: int32 scalars, the frame size.
    scales: fractions of the short side, each in (0, 1].
    seed: stateless seed (2,).

  Returns:
    int32 (4,): top, left, height, width.
  """
  if not scales or any(not 0 < s <= 1 for s in scales):
    raise ValueError(
        f'config.data.crop_scales={tuple(scales)} must be fractions in (0, 1]; e.g. (1.0, 0.875, 0.75, 0.66).'
    )
  pairs = [(i, j) for i in range(len(scales)) for j in range(len(scales)) if abs(i - j) <= MAX_SCALE_DISTORTION]
  height, width = tf.cast(height, tf.int32), tf.cast(width, tf.int32)
  pair_seed, top_seed, left_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
  pair = tf.random.stateless_uniform([], pair_seed, 0, len(pairs), dtype=tf.int32)
  short_side = tf.cast(tf.minimum(height, width), tf.float32)
  # float32 products, truncated like Python's int(); a tiny epsilon guards 0.875 * 256 = 223.99998.
  sides = tf.cast(tf.constant(scales, tf.float32) * short_side + 1e-4, tf.int32)
  crop_height = tf.gather(sides, tf.gather(tf.constant([i for i, _ in pairs]), pair))
  crop_width = tf.gather(sides, tf.gather(tf.constant([j for _, j in pairs]), pair))
  top = tf.random.stateless_uniform([], top_seed, 0, height - crop_height + 1, dtype=tf.int32)
  left = tf.random.stateless_uniform([], left_seed, 0, width - crop_width + 1, dtype=tf.int32)
  return tf.stack([top, left, crop_height, crop_width])


def eval_crop_boxes(height: tf.Tensor, width: tf.Tensor, num_crops: int) -> tf.Tensor:
  """Square boxes of the short side, evenly placed along the long side (3: left/centre/right).

  One crop is the centre crop; three are the two ends and the centre (top/centre/bottom for a
  portrait frame), the standard 3-crop test of video networks.

  Args:
    height, width: int32 scalars, the frame size.
    num_crops: how many boxes, >= 1.

  Returns:
    int32 (num_crops, 4): rows of top, left, height, width.
  """
  if num_crops < 1:
    raise ValueError(f'config.data.eval_num_crops={num_crops} must be >= 1 (3 is the standard).')
  height, width = tf.cast(height, tf.int32), tf.cast(width, tf.int32)
  side = tf.minimum(height, width)
  slack = tf.cast(tf.maximum(height, width) - side, tf.float32)
  if num_crops == 1:
    fractions = tf.constant([0.5])
  else:
    fractions = tf.linspace(0.0, 1.0, num_crops)
  offsets = tf.cast(tf.round(fractions * slack), tf.int32)
  zeros = tf.zeros_like(offsets)
  sides = tf.fill([num_crops], side)
  portrait = height > width
  tops = tf.where(portrait, offsets, zeros)
  lefts = tf.where(portrait, zeros, offsets)
  return tf.stack([tops, lefts, sides, sides], axis=1)


def crop(frames: tf.Tensor, box: tf.Tensor) -> tf.Tensor:
  """frames (..., H, W, C) -> (..., box height, box width, C)."""
  top, left, height, width = tf.unstack(box)
  return frames[..., top : top + height, left : left + width, :]


def resize(frames: tf.Tensor, size: int) -> tf.Tensor:
  """Bilinear resize (half-pixel centres, no anti-aliasing) of (T, h, w, C) to float32 (T, size, size, C)."""
  return tf.image.resize(tf.cast(frames, tf.float32), [size, size], method='bilinear')


def resize_motion_energy(energy: tf.Tensor, size: int) -> tf.Tensor:
  """Area resize of float32 (G, h, w) to (G, size, size), preserving the sum over any whole region."""
  height, width = tf.shape(energy)[1], tf.shape(energy)[2]
  area_ratio = tf.cast(height * width, tf.float32) / float(size * size)
  resized = tf.image.resize(tf.cast(energy, tf.float32)[..., tf.newaxis], [size, size], method='area')
  return resized[..., 0] * area_ratio


def map_streams(fn, clip: dict[str, Any]) -> dict[str, Any]:
  """`fn(name, tensor)` on every stream of a clip, nested dicts included ({'shifted': {...}}).

  A stream's kind is its own key ('iframes', 'motion_vectors', 'residuals', 'motion_energy'), at any
  depth; the structure is kept.
  """
  return {name: map_streams(fn, value) if isinstance(value, dict) else fn(name, value) for name, value in clip.items()}


def flip_left_right(clip: dict[str, Any]) -> dict[str, Any]:
  """Mirrors every stream of a clip; MV x components change sign (a leftward motion becomes rightward).

  Args:
    clip: stream name -> tensor (nested dicts allowed) with the width on axis -2 ((..., H, W, C)
      frames) or, for 'motion_energy', on axis -1 ((G, H, W)). 'motion_vectors' have x on channel 0.

  Returns:
    The flipped clip, same structure, shapes and dtypes.
  """

  # Written for speed on TensorFlow's CPU kernels (measured on (25, 112, 112, C) clips): reversing the
  # middle axis of a 3-D view is 3x faster than of the 4-D tensor, and the x sign multiplies by a tiled
  # (-1, 1) rather than broadcasting it (8x). Same values.
  def flip(name, value):
    shape = tf.shape(value)
    width_last = name == 'motion_energy'
    rows = tf.reshape(value, [-1, shape[-1]] if width_last else [-1, shape[-2], shape[-1]])
    value = tf.reshape(tf.reverse(rows, axis=[1]), shape)
    if name == 'motion_vectors':
      value = value * tf.reshape(tf.tile(tf.constant([-1.0, 1.0], value.dtype), [tf.size(value) // 2]), shape)
    return value

  return map_streams(flip, clip)


def color_jitter(iframes: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """Random brightness and contrast, one draw for all I-frames of a clip.

  Args:
    iframes: float32 (G, H, W, 3) in [0, 255].
    seed: stateless seed (2,).

  Returns:
    float32 (G, H, W, 3) in [0, 255]: (x - m) * contrast + m + brightness * 255, clipped, where m is
    each frame's mean intensity.
  """
  brightness_seed, contrast_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  brightness = tf.random.stateless_uniform([], brightness_seed, -BRIGHTNESS_DELTA, BRIGHTNESS_DELTA)
  contrast = tf.random.stateless_uniform([], contrast_seed, 1 - CONTRAST_DELTA, 1 + CONTRAST_DELTA)
  mean = tf.reduce_mean(iframes, axis=[-3, -2, -1], keepdims=True)
  return tf.clip_by_value((iframes - mean) * contrast + mean + brightness * 255.0, 0.0, 255.0)


def crop_clip(clip: dict[str, Any], box: tf.Tensor) -> dict[str, Any]:
  """Crops every stream of a clip with one box.

  Args:
    clip: stream name -> tensor (nested dicts allowed); 'motion_energy' is (G, H, W), the others
      (T, H, W, C).
    box: int32 (4,) top, left, height, width.

  Returns:
    The same structure: (G, box height, box width) or (T, box height, box width, C), dtypes kept.
  """
  return map_streams(
      lambda name, value: crop(value[..., tf.newaxis], box)[..., 0] if name == 'motion_energy' else crop(value, box),
      clip,
  )


def resize_clip(clip: dict[str, Any], size: int) -> dict[str, Any]:
  """Resizes every stream of a (cropped) clip to size x size (see the module docstring).

  Args:
    clip: stream name -> tensor (nested dicts allowed); 'motion_energy' is (G, h, w), the others
      (T, h, w, C).
    size: output side.

  Returns:
    The same structure: float32 (G, size, size) or (T, size, size, C).
  """
  return map_streams(
      lambda name, value: resize_motion_energy(value, size) if name == 'motion_energy' else resize(value, size), clip
  )


def crop_and_resize_clip(clip: dict[str, Any], box: tf.Tensor, size: int) -> dict[str, Any]:
  """`resize_clip(crop_clip(clip, box), size)`: one crop box for every stream, then size x size."""
  return resize_clip(crop_clip(clip, box), size)
