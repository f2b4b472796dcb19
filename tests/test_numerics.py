"""The tolerance helpers of tests/numerics.py, on sums and losses whose exact values are known."""

import jax
import numpy as np
import optax
import pytest

from tests import numerics

pytestmark = pytest.mark.numerics


def test_unit_roundoff_and_gamma():
  assert numerics.unit_roundoff(np.float32) == 2.0**-24
  assert numerics.unit_roundoff(np.float64) == 2.0**-53
  assert numerics.unit_roundoff(jax.numpy.bfloat16) == 2.0**-8
  assert numerics.gamma(1) == pytest.approx(2.0**-24, rel=1e-6)
  with pytest.raises(ValueError, match='unbounded'):
    numerics.gamma(2**24)


@pytest.mark.parametrize('seed', range(3))
def test_float32_sums_in_any_order_stay_within_the_bound(seed):
  # Terms of both signs and mixed magnitudes: cancellation makes the relative error of the sum large,
  # the bound is relative to sum |terms|.
  rng = np.random.default_rng(seed)
  terms = (rng.normal(size=4096) * 10.0 ** rng.uniform(-3, 3, 4096)).astype(np.float32)
  exact = np.sum(terms.astype(np.float64))  # float32 values: float64 sums 4096 of them to 1e-12
  bound = numerics.gamma(terms.size) * np.sum(np.abs(terms.astype(np.float64)))
  orders = {
      'pairwise': np.sum(terms),
      'sequential': np.cumsum(terms)[-1],
      'reversed': np.cumsum(terms[::-1])[-1],
      'xla': jax.numpy.sum(terms),
  }
  for name, value in orders.items():
    numerics.assert_within(value, exact, bound, name)
  # The sequential sum is not exact, so the check is not vacuous.
  assert orders['sequential'] != exact


def test_assert_within_names_the_worst_element():
  numerics.assert_within([1.0, 2.0], [1.0, 2.5], [0.0, 0.5])
  with pytest.raises(AssertionError, match=r'1 of 2 elements .* worst at \(1,\)'):
    numerics.assert_within([1.0, 2.0], [1.0, 2.5], 0.4, 'x')
  numerics.relative_to_magnitude([10.0, 0.0], [10.0, 1e-6], 1e-6)
  with pytest.raises(AssertionError):
    numerics.relative_to_magnitude([10.0, 0.0], [10.0, 1e-4], 1e-6)


def test_cross_entropy_bound_holds_for_random_logits():
  rng = np.random.default_rng(0)
  for num_classes, scale in ((3, 1.0), (16, 9.0), (400, 30.0)):
    logits = (rng.normal(size=(256, num_classes)) * scale).astype(np.float32)
    labels = rng.integers(0, num_classes, 256)
    got = np.asarray(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    exact_logits = logits.astype(np.float64)
    shifted = exact_logits - exact_logits.max(axis=1, keepdims=True)
    exact = np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(256), labels]
    bound = [numerics.cross_entropy_bound(num_classes, np.abs(logits).max(), value) for value in exact]
    numerics.assert_within(got, exact, bound)
