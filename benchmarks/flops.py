"""FLOPs of a JAX function, counted two ways, for the cost table and MFU.

- `xla_flops`: XLA's own count for the compiled program (`cost_analysis()['flops']`): 2 per multiply-add,
  elementwise work included, and convolution taps that fall on padding skipped (18% of them for IMR-R18's
  short clips and small maps).
- `every_tap_flops`: the convolutions and matrix products of the traced program, 2 per multiply-add, every
  kernel tap counted, padding included, nothing else: the convention of `torch.utils.flop_counter` and of
  cuDNN, and of most papers' FLOP figures. A gradient's convolutions count as their forward does (an
  input-gradient convolution runs over the zeros a strided forward would insert; they are not counted).
  This is the figure MFU is computed from.
"""

import math
from typing import Any, Callable

import jax


def xla_flops(fn: Callable[..., Any], *args: Any) -> float:
  """XLA's FLOP count of `jax.jit(fn)(*args)` (args may be jax.ShapeDtypeStruct)."""
  cost = jax.jit(fn).lower(*args).compile().cost_analysis()
  if isinstance(cost, (list, tuple)):  # older jax returned one dict per device
    cost = cost[0]
  return float(cost['flops'])


def every_tap_flops(fn: Callable[..., Any], *args: Any) -> float:
  """Convolution and matrix-product FLOPs of `fn(*args)`, every kernel tap counted (2 per multiply-add)."""
  return _jaxpr_flops(jax.make_jaxpr(fn)(*args).jaxpr)


def _conv_flops(eqn) -> float:
  lhs = eqn.invars[0].aval.shape
  rhs = eqn.invars[1].aval.shape
  out = eqn.outvars[0].aval.shape
  _, rhs_spec, _ = eqn.params['dimension_numbers']
  rhs_taps = math.prod(rhs[d] for d in rhs_spec[2:])
  if any(d > 1 for d in eqn.params['lhs_dilation']):
    # The input gradient of a strided convolution: a convolution over the output gradient with zeros
    # inserted. Its real multiply-adds are the forward's: every real input element (the forward's output
    # positions, all features) meets every tap and every output feature once. (Dividing the dilated
    # count by the dilation is the same only when the sizes divide evenly.)
    return 2.0 * math.prod(lhs) * rhs_taps * rhs[rhs_spec[0]]
  return 2.0 * math.prod(out) * rhs_taps * rhs[rhs_spec[1]]


def _dot_flops(eqn) -> float:
  lhs = eqn.invars[0].aval.shape
  (lhs_contracting, _), _ = eqn.params['dimension_numbers']
  return 2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in lhs_contracting)


def _sub_jaxprs(value: Any):
  """The jaxprs an equation's parameter holds: a Jaxpr, a ClosedJaxpr (its .jaxpr) or a sequence of them."""
  if hasattr(value, 'eqns'):
    yield value
  elif hasattr(getattr(value, 'jaxpr', None), 'eqns'):
    yield value.jaxpr
  elif isinstance(value, (tuple, list)):
    for item in value:
      yield from _sub_jaxprs(item)


def _jaxpr_flops(jaxpr) -> float:
  total = 0.0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == 'conv_general_dilated':
      total += _conv_flops(eqn)
    elif name == 'dot_general':
      total += _dot_flops(eqn)
    else:
      repeat = eqn.params.get('length', 1) if name == 'scan' else 1
      for key, value in eqn.params.items():
        if key in ('branches',):  # cond: the dearest branch
          total += max((_jaxpr_flops(j) for j in _sub_jaxprs(value)), default=0.0)
          continue
        for sub in _sub_jaxprs(value):
          total += repeat * _jaxpr_flops(sub)
  return total
