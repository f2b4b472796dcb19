"""Tolerances derived from the computation, for the tests' floating-point comparisons.

A tolerance here is never a number that happened to pass on one machine. Each comparison in the suite is
one of:
  * exact by construction: the same program on the same inputs, or arithmetic whose every step is exact
    (integers, powers of two, values that float32 represents); compared with `assert_array_equal`;
  * a rounding-error bound: a sum or dot product of n terms computed in any order (any blocking, any
    number of threads or devices, any SIMD width) in a format of unit roundoff u lies within
    gamma(n) * sum_i |terms_i| of the exact value, gamma(n) = n u / (1 - n u) (Higham, "Accuracy and
    Stability of Numerical Algorithms", 2nd ed., section 3.1). Two such computations therefore differ
    by at most 2 gamma(n) sum |terms|. The sum of absolute terms is computed from the inputs (for a
    linear map, the same map applied to |inputs|), so the bound holds on any CPU;
  * a comparison of two programs through many nonlinear layers, made in float64 (u = 2^-53, 2^29 times
    smaller than float32's), with the margin stated where it is made.

`tests/test_numerics.py` checks these helpers on sums whose exact values are known.
"""

import numpy as np

FLOAT32 = np.float32
FLOAT64 = np.float64

# Two programs that compute the same function through many nonlinear layers (two conv algorithms, one
# vs four devices), compared in float64 relative to each array's magnitude. The float32 versions of
# these comparisons differed by up to 2e-5 of the magnitude (3.5e-5 at 1.7, seen on two CPUs), which
# scales to 4e-14 in float64 (u is 2^29 times smaller); 1e-9 leaves a factor of 2e4 for other CPUs
# and still catches any real mistake (a wrong offset, stride or reduction), which shows at the scale
# of the values themselves.
FLOAT64_RTOL = 1e-9


def unit_roundoff(dtype) -> float:
  """u = half the machine epsilon: 2^-24 for float32, 2^-53 for float64, 2^-8 for bfloat16."""
  if np.dtype(dtype).name == 'bfloat16':
    return 2.0**-8
  return float(np.finfo(dtype).eps) / 2


def gamma(n: int, dtype=FLOAT32) -> float:
  """gamma(n) = n u / (1 - n u): relative bound of n roundings (of a sum of n + 1 terms)."""
  nu = n * unit_roundoff(dtype)
  if nu >= 1:
    raise ValueError(f'gamma({n}) is unbounded in {np.dtype(dtype).name}; the bound says nothing.')
  return nu / (1 - nu)


def assert_within(actual, expected, bound, what: str = '') -> None:
  """|actual - expected| <= bound elementwise (bound broadcasts); reports the worst element."""
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  bound = np.broadcast_to(np.asarray(bound, np.float64), expected.shape)
  assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
  error = np.abs(actual - expected)
  excess = error - bound
  if np.any(excess > 0):
    worst = tuple(int(i) for i in np.unravel_index(np.argmax(excess), excess.shape))
    raise AssertionError(
        f'{what}: {int(np.sum(excess > 0))} of {excess.size} elements exceed their rounding bound; '
        f'worst at {worst}: |{float(actual[worst])!r} - {float(expected[worst])!r}| = '
        f'{error[worst]:.3g} > {bound[worst]:.3g}'
    )


def relative_to_magnitude(actual, expected, rtol: float, what: str = '') -> None:
  """|actual - expected| <= rtol * max |expected|: a norm-wise comparison of whole arrays.

  For outputs of deep networks, where an element near zero carries the rounding of large intermediate
  values, the array's magnitude is the scale rounding errors are relative to.
  """
  expected = np.asarray(expected, np.float64)
  scale = float(np.max(np.abs(expected))) if expected.size else 0.0
  assert_within(actual, expected, rtol * scale, what)


def cross_entropy_bound(num_classes: int, max_abs_logit: float, value: float) -> float:
  """Absolute rounding bound of a float32 softmax cross-entropy (or a mean of such losses).

  log_softmax(x)_y = (x_y - max x) - log(sum_c exp(x_c - max x)): C shifted logits (within
  u |x - max| <= 2 u M each), C exponentials (each <= 1, within a few u), their sum in [1, C]
  (gamma(C) of it), its logarithm and the last subtraction (u of the result each). All of this is
  within gamma(2 C + 4) * (C + 2 M + |value|); a mean of such losses is within the same bound.
  """
  return gamma(2 * num_classes + 4) * (num_classes + 2 * max_abs_logit + abs(value))
