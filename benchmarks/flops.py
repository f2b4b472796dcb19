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
  rhs = eqn.invars[1].aval.shape
  out = eqn.outvars[0].aval.shape
  _, rhs_spec, _ = eqn.params['dimension_numbers']
  rhs_in_features = rhs[rhs_spec[1]]
  rhs_taps = math.prod(rhs[d] for d in rhs_spec[2:])
  # lhs_dilation: the gradient of a strided convolution, over an input with zeros inserted; its real
  # taps are 1 / prod(dilation) of them, as many as the forward's.
  dilation = math.prod(eqn.params['lhs_dilation'])
  return 2.0 * math.prod(out) * rhs_taps * rhs_in_features / dilation


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
