"""Pixel <-> network conversions: known values, inverses, negation, and numpy / jax / tf agreement."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imr_jax.data import normalization
from tests import numerics

pytestmark = pytest.mark.numerics

# float32 unit roundoff (2^-24). The formulas are 2 to 4 operations; each rounds once in numpy, and
# at most twice under XLA (which may fuse a multiply-add or divide by a constant's reciprocal).
U = numerics.unit_roundoff(np.float32)

MEAN = np.array(normalization.IMAGENET_MEAN, np.float32)
STD = np.array(normalization.IMAGENET_STD, np.float32)


def test_iframes_known_values_and_inverse():
  pixels = np.array([[0, 0, 0], [255, 255, 255], [10, 128, 250]], np.uint8)
  network = normalization.normalize_iframes(pixels)
  assert network.dtype == np.float32
  # Exact: the same float32 operations (0 / 255 = 0 and 255 / 255 = 1 are exact).
  np.testing.assert_array_equal(network[0], -MEAN / STD)
  np.testing.assert_array_equal(network[1], (1 - MEAN) / STD)
  # Inverse: 6 roundings on values that pass through [0, 1] then up to 255 -> within 6 u * 255 * 2.
  numerics.assert_within(normalization.denormalize_iframes(network), pixels, 6 * U * 255 * 2)


def test_motion_vectors_known_values():
  v = np.array([[0, 0], [20, -20], [100, -100], [1, -1]], np.float32)
  n = normalization.normalize_motion_vectors(v)
  assert n.dtype == np.float32
  # The codes (0.5, 128, 134.375, 255, ...) are exact in float32; code / 255 rounds once (<= u, the
  # quotient is at most 1) and - 0.5 once more (<= u / 2): within 2 u of the float64 expectations.
  bound = 2 * U
  numerics.assert_within(n[0], [normalization.MV_ZERO] * 2, bound)
  # +20 px: 20 * 6.375 + 128 = 255.5, clipped to code 255; -20 px: code 0.5.
  numerics.assert_within(n[1], [0.5, 0.5 / 255 - 0.5], bound)
  numerics.assert_within(n[2], [0.5, -0.5], bound)  # saturates
  numerics.assert_within(n[3], [134.375 / 255 - 0.5, 121.625 / 255 - 0.5], bound)


def test_motion_vectors_inverse_inside_range():
  v = np.arange(-20, 20, dtype=np.int16)[:, None].repeat(2, axis=1)
  back = normalization.denormalize_motion_vectors(normalization.normalize_motion_vectors(v))
  # 3 roundings forward (values <= 255, then <= 1) and 4 back (<= 1, <= 255): absolute errors of
  # at most 7 u * 255 in code units, divided by 6.375 code units per pixel.
  numerics.assert_within(back, v, 7 * U * 255 / normalization.MV_CODE_PER_PX)


def test_negate_motion_vectors_matches_normalizing_the_negated_pixels():
  v = np.arange(-19, 20, dtype=np.float32)[:, None] + np.array([0.0, 0.25], np.float32)
  negated = normalization.negate_motion_vectors(normalization.normalize_motion_vectors(v))
  # Both sides are within 2 u of the exact network value (known values above), plus one rounding of
  # the subtraction 2 MV_ZERO - n (<= u / 2 at magnitudes <= 0.5) and of 2 MV_ZERO itself.
  numerics.assert_within(negated, normalization.normalize_motion_vectors(-v), 5 * U)
  # The ends of the code range: -20.08 px (code 0) has no twin and negates to code 255.
  ends = normalization.negate_motion_vectors(np.array([-0.5, 0.5], np.float32))
  numerics.assert_within(ends, [0.5, 1 / 255 - 0.5], 3 * U)
  # Negating twice is the identity up to one unit in the last place (float32 rounding).
  twice = normalization.negate_motion_vectors(negated)
  np.testing.assert_array_less(
      np.abs(twice - normalization.normalize_motion_vectors(v)), np.spacing(np.float32(0.5)) * 1.01
  )


def test_residuals_known_values_and_inverse():
  r = np.array([[0, 0, 0], [-128, -128, -128], [200, 127, -255]], np.int16)  # 127 is code 255
  n = normalization.normalize_residuals(r)
  assert n.dtype == np.float32
  # code / 255 (<= 1) and - 0.5 round within 2 u absolute, / std (>= 0.224) scales that by 1 / std
  # and rounds once more (<= u |result|, |result| <= 2.3).
  bound = 2 * U / STD + U * 2.3
  numerics.assert_within(n[0], (128 / 255 - 0.5) / STD.astype(np.float64), bound)
  numerics.assert_within(n[1], -0.5 / STD.astype(np.float64), bound)
  numerics.assert_within(n[2], [0.5 / STD[0], 0.5 / STD[1], -0.5 / STD[2]], bound)
  inside = np.arange(-128, 128, dtype=np.int16)[:, None].repeat(3, axis=1)
  back = normalization.denormalize_residuals(normalization.normalize_residuals(inside))
  # 4 roundings forward and 4 back, at magnitudes up to 255 (the codes): within 8 u * 255.
  numerics.assert_within(back, inside, 8 * U * 255)


FUNCTIONS = (
    'normalize_iframes',
    'denormalize_iframes',
    'normalize_motion_vectors',
    'denormalize_motion_vectors',
    'negate_motion_vectors',
    'normalize_residuals',
    'denormalize_residuals',
)


@pytest.mark.parametrize('name', FUNCTIONS)
def test_numpy_and_jitted_jax_agree(name):
  function = getattr(normalization, name)
  channels = 2 if 'motion' in name else 3
  x = np.random.default_rng(0).uniform(-300, 300, (2, 4, channels)).astype(np.float32)
  expected = function(x)
  got = jax.jit(function)(jnp.asarray(x))
  assert isinstance(got, jax.Array) and got.dtype == jnp.float32
  # At most 4 operations, rounded once by numpy and at most twice by XLA: 12 roundings, each within u
  # of an intermediate value, and every intermediate is at most 6.4 times the largest output (the
  # MV code per pixel; the other scalings shrink values): within 12 * 6.4 u of the largest |output|.
  numerics.relative_to_magnitude(got, expected, 12 * 6.4 * U)


def test_tensorflow_tensors_work():
  tf = pytest.importorskip('tensorflow')
  pixels = np.array([[[0, 128, 255]]], np.uint8)
  mv = np.array([[[-3, 7]]], np.int16)
  got = tf.function(
      lambda p, m: (
          normalization.normalize_iframes(p),
          normalization.negate_motion_vectors(normalization.normalize_motion_vectors(m)),
      )
  )(pixels, mv)
  # As numpy vs XLA above (TensorFlow's kernels may fuse too); MVs as in the negation test.
  numerics.relative_to_magnitude(got[0].numpy(), normalization.normalize_iframes(pixels), 12 * 6.4 * U)
  numerics.assert_within(got[1].numpy(), normalization.normalize_motion_vectors(-mv), 5 * U)
