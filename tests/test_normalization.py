"""Pixel <-> network conversions: known values, inverses, negation, and numpy / jax / tf agreement."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from imr_jax.data import normalization

MEAN = np.array(normalization.IMAGENET_MEAN, np.float32)
STD = np.array(normalization.IMAGENET_STD, np.float32)


def test_iframes_known_values_and_inverse():
  pixels = np.array([[0, 0, 0], [255, 255, 255], [10, 128, 250]], np.uint8)
  network = normalization.normalize_iframes(pixels)
  assert network.dtype == np.float32
  np.testing.assert_allclose(network[0], -MEAN / STD, rtol=1e-6)
  np.testing.assert_allclose(network[1], (1 - MEAN) / STD, rtol=1e-6)
  np.testing.assert_allclose(normalization.denormalize_iframes(network), pixels, atol=1e-4)


def test_motion_vectors_known_values():
  v = np.array([[0, 0], [20, -20], [100, -100], [1, -1]], np.float32)
  n = normalization.normalize_motion_vectors(v)
  assert n.dtype == np.float32
  np.testing.assert_allclose(n[0], [normalization.MV_ZERO] * 2, atol=1e-7)
  # +20 px: 20 * 6.375 + 128 = 255.5, clipped to code 255; -20 px: code 0.5.
  np.testing.assert_allclose(n[1], [0.5, 0.5 / 255 - 0.5], atol=1e-7)
  np.testing.assert_allclose(n[2], [0.5, -0.5], atol=1e-7)  # saturates
  np.testing.assert_allclose(n[3], [134.375 / 255 - 0.5, 121.625 / 255 - 0.5], atol=1e-7)


def test_motion_vectors_inverse_inside_range():
  v = np.arange(-20, 20, dtype=np.int16)[:, None].repeat(2, axis=1)
  back = normalization.denormalize_motion_vectors(normalization.normalize_motion_vectors(v))
  np.testing.assert_allclose(back, v, atol=1e-4)


def test_negate_motion_vectors_matches_normalizing_the_negated_pixels():
  v = np.arange(-19, 20, dtype=np.float32)[:, None] + np.array([0.0, 0.25], np.float32)
  negated = normalization.negate_motion_vectors(normalization.normalize_motion_vectors(v))
  np.testing.assert_allclose(negated, normalization.normalize_motion_vectors(-v), atol=1e-7)
  # The ends of the code range: -20.08 px (code 0) has no twin and negates to code 255.
  ends = normalization.negate_motion_vectors(np.array([-0.5, 0.5], np.float32))
  np.testing.assert_allclose(ends, [0.5, 1 / 255 - 0.5], atol=1e-7)
  # Negating twice is the identity up to one unit in the last place (float32 rounding).
  twice = normalization.negate_motion_vectors(negated)
  np.testing.assert_array_less(np.abs(twice - normalization.normalize_motion_vectors(v)),
                               np.spacing(np.float32(0.5)) * 1.01)


def test_residuals_known_values_and_inverse():
  r = np.array([[0, 0, 0], [-128, -128, -128], [200, 127, -255]], np.int16)  # 127 is code 255
  n = normalization.normalize_residuals(r)
  assert n.dtype == np.float32
  np.testing.assert_allclose(n[0], (128 / 255 - 0.5) / STD, atol=1e-6)
  np.testing.assert_allclose(n[1], -0.5 / STD, rtol=1e-6)
  np.testing.assert_allclose(n[2], [0.5 / STD[0], 0.5 / STD[1], -0.5 / STD[2]], rtol=1e-6)
  inside = np.arange(-128, 128, dtype=np.int16)[:, None].repeat(3, axis=1)
  back = normalization.denormalize_residuals(normalization.normalize_residuals(inside))
  np.testing.assert_allclose(back, inside, atol=1e-3)


FUNCTIONS = ('normalize_iframes', 'denormalize_iframes', 'normalize_motion_vectors',
             'denormalize_motion_vectors', 'negate_motion_vectors', 'normalize_residuals',
             'denormalize_residuals')


@pytest.mark.parametrize('name', FUNCTIONS)
def test_numpy_and_jitted_jax_agree(name):
  function = getattr(normalization, name)
  channels = 2 if 'motion' in name else 3
  x = np.random.default_rng(0).uniform(-300, 300, (2, 4, channels)).astype(np.float32)
  expected = function(x)
  got = jax.jit(function)(jnp.asarray(x))
  assert isinstance(got, jax.Array) and got.dtype == jnp.float32
  np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_tensorflow_tensors_work():
  tf = pytest.importorskip('tensorflow')
  pixels = np.array([[[0, 128, 255]]], np.uint8)
  mv = np.array([[[-3, 7]]], np.int16)
  got = tf.function(lambda p, m: (normalization.normalize_iframes(p),
                                  normalization.negate_motion_vectors(
                                      normalization.normalize_motion_vectors(m))))(pixels, mv)
  np.testing.assert_allclose(got[0].numpy(), normalization.normalize_iframes(pixels), rtol=1e-6)
  np.testing.assert_allclose(got[1].numpy(), normalization.normalize_motion_vectors(-mv), atol=1e-7)
