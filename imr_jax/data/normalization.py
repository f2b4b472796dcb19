"""Pixel space <-> network space for the three streams (CoViAR's scaling, METHOD.md section 2).

Pixel space is what the codec and the record schema give: I-frames uint8 RGB in [0, 255], motion
vectors in pixels (channel 0 = x to the right, channel 1 = y downwards), residuals in intensity
[-255, 255]. Network space is what the batch holds (DESIGN.md section 3):

  I-frame   (x / 255 - IMAGENET_MEAN) / IMAGENET_STD
  MV        clip(v * 127.5 / 20 + 128, 0, 255) / 255 - 0.5        (about +-20 px)
  residual  (clip(r + 128, 0, 255) / 255 - 0.5) / IMAGENET_STD

Every function accepts numpy arrays, jax arrays (also under `jax.jit`) and TensorFlow tensors (for the
tf.data input pipeline), returns the same kind of array, and computes in float32.

The MV scaling maps v = 0 to MV_ZERO = 128 / 255 - 0.5, not to 0, so negating a vector in network
space is `2 * MV_ZERO - n`, and the code range [0, 255] is the asymmetric pixel range
[-128 / 6.375, 127 / 6.375] = [-20.08, 19.92] px. Negation is exact (up to float32 rounding, at most
one unit in the last place) for |v| <= 19.92 px; the end -20.08 px, which has no positive twin,
negates to the clipped end 19.92 px.
"""

import sys
from typing import Any

import numpy as np

# ImageNet statistics of RGB in [0, 1]; CoViAR also divides residuals by the ImageNet std.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Pixels of motion that move the 8-bit MV code by 127.5 steps (CoViAR's MV range).
MV_RANGE_PX = 20.0
MV_CODE_PER_PX = 127.5 / MV_RANGE_PX  # 6.375 code steps per pixel
MV_ZERO = 128.0 / 255.0 - 0.5  # the network value of a zero motion vector
MV_MIN = -0.5  # network value of MV code 0
MV_MAX = 0.5  # network value of MV code 255

Array = Any  # np.ndarray | jax.Array | tf.Tensor


def _backend(x: Array):
  """Returns (clip, to_float32, constant) functions of the array library that `x` belongs to."""
  module = type(x).__module__
  if module.startswith('jax') or module.startswith('jaxlib'):
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

    return (
        lambda a, lo, hi: jnp.clip(a, lo, hi),
        lambda a: jnp.asarray(a, jnp.float32),
        lambda c: jnp.asarray(c, jnp.float32),
    )
  if module.startswith('tensorflow') and 'tensorflow' in sys.modules:
    tf = sys.modules['tensorflow']
    return tf.clip_by_value, lambda a: tf.cast(a, tf.float32), lambda c: _TiledConstant(tf, c)
  return (
      lambda a, lo, hi: np.clip(a, np.float32(lo), np.float32(hi)),
      lambda a: np.asarray(a, np.float32),
      lambda c: np.asarray(c, np.float32),
  )


class _TiledConstant:
  """A per-channel TensorFlow constant that broadcasts by tiling (the tf.data pipeline's fast path).

  TensorFlow's CPU kernels broadcast a (C,) operand over (..., C) about 8x slower than they combine two
  tensors of one shape, and tiling the constant to the full shape is a plain copy (measured on
  (25, 112, 112, 3) clips: 3.5 ms per broadcast op against 0.7 ms for tile + op). The arithmetic is the
  same, so the result is bit-identical to broadcasting.
  """

  def __init__(self, tf, values):
    self.tf, self.values = tf, tf.constant(values, tf.float32)

  def _full(self, other):
    tf = self.tf
    shape = tf.shape(other)
    tiled = tf.tile(self.values, [tf.size(other) // tf.size(self.values)])
    return tf.reshape(tiled, shape)

  def __radd__(self, other):
    return other + self._full(other)

  def __rsub__(self, other):
    return other - self._full(other)

  def __rmul__(self, other):
    return other * self._full(other)

  def __rtruediv__(self, other):
    return other / self._full(other)


def normalize_iframes(pixels: Array) -> Array:
  """RGB pixels -> network I-frames.

  Args:
    pixels: (..., 3) RGB, uint8 or float, values in [0, 255].

  Returns:
    float32 (..., 3): (pixels / 255 - IMAGENET_MEAN) / IMAGENET_STD, about [-2.1, 2.6].
  """
  _, to_float32, constant = _backend(pixels)
  return (to_float32(pixels) / 255.0 - constant(IMAGENET_MEAN)) / constant(IMAGENET_STD)


def denormalize_iframes(iframes: Array) -> Array:
  """Network I-frames -> float32 RGB pixels in [0, 255] (the inverse of `normalize_iframes`)."""
  _, to_float32, constant = _backend(iframes)
  return (to_float32(iframes) * constant(IMAGENET_STD) + constant(IMAGENET_MEAN)) * 255.0


def normalize_motion_vectors(motion_vectors_px: Array) -> Array:
  """Motion vectors in pixels -> network MVs.

  Args:
    motion_vectors_px: (..., 2) x then y, pixels, any real or integer dtype.

  Returns:
    float32 (..., 2) in [-0.5, 0.5]: clip(v * 6.375 + 128, 0, 255) / 255 - 0.5. Vectors beyond
    [-20.08, 19.92] px saturate.
  """
  clip, to_float32, _ = _backend(motion_vectors_px)
  code = clip(to_float32(motion_vectors_px) * MV_CODE_PER_PX + 128.0, 0.0, 255.0)
  return code / 255.0 - 0.5


def denormalize_motion_vectors(motion_vectors: Array) -> Array:
  """Network MVs -> float32 motion vectors in pixels, in [-20.08, 19.92] (inverse inside that range)."""
  _, to_float32, _ = _backend(motion_vectors)
  return ((to_float32(motion_vectors) + 0.5) * 255.0 - 128.0) / MV_CODE_PER_PX


def negate_motion_vectors(motion_vectors: Array) -> Array:
  """Network MVs of v -> network MVs of -v, without leaving network space.

  Used by the time-reversal (AOT) and rotation transforms, and for the x channel by a horizontal
  flip. The result is clipped to [-0.5, 0.5], so it stays a valid MV code.

  Args:
    motion_vectors: float32 network MVs (any shape; negates every element), values in [-0.5, 0.5].

  Returns:
    float32, same shape: clip(2 * MV_ZERO - motion_vectors, -0.5, 0.5).
  """
  clip, to_float32, _ = _backend(motion_vectors)
  return clip(2.0 * MV_ZERO - to_float32(motion_vectors), MV_MIN, MV_MAX)


def normalize_residuals(residuals: Array) -> Array:
  """Residuals in intensity -> network residuals.

  Args:
    residuals: (..., 3) RGB, any real or integer dtype, values in [-255, 255].

  Returns:
    float32 (..., 3): (clip(r + 128, 0, 255) / 255 - 0.5) / IMAGENET_STD; residuals outside
    [-128, 127] saturate (as in CoViAR).
  """
  clip, to_float32, constant = _backend(residuals)
  code = clip(to_float32(residuals) + 128.0, 0.0, 255.0)
  return (code / 255.0 - 0.5) / constant(IMAGENET_STD)


def denormalize_residuals(residuals: Array) -> Array:
  """Network residuals -> float32 residuals in intensity, in [-128, 127] (inverse inside that range)."""
  _, to_float32, constant = _backend(residuals)
  return (to_float32(residuals) * constant(IMAGENET_STD) + 0.5) * 255.0 - 128.0
