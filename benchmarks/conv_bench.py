r"""Times one 3x3x3 convolution of IMR-R18's shapes, forward and with its gradients: XLA against PyTorch.

  python -m benchmarks.conv_bench                         # res2/res3/res4-like maps, batch 4, on this machine
  python -m benchmarks.conv_bench --shapes=2x5x8x8x16 --repeats=1   # a smoke run (tested)

Why: on the CPU our whole train step runs many times slower than its PyTorch reference
(benchmarks/train_step_bench.py); this isolates the convolutions. Rows per shape (B x T x H x W x C, C in
and out, SAME padding, stride 1):
  xla_conv3d       lax.conv_general_dilated on the 5-D input, as flax.linen.Conv runs it;
  xla_2d_per_tap   the same convolution as a sum over its 3 temporal taps of 2-D convolutions of the
                   time-shifted input (checked equal to the first to float32 rounding before it is timed);
  torch_conv3d     torch.nn.functional.conv3d (oneDNN on the CPU, cuDNN on a GPU), if PyTorch is installed.
`fwd` times the convolution, `fwd+bwd` the gradient of a sum of squares with respect to input and kernel.
GFLOP/s count every tap, 2 per multiply-add (3x the forward's for fwd+bwd); best of `--repeats`.
"""

import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

_SHAPES = flags.DEFINE_list('shapes', ['4x25x14x14x64', '4x13x7x7x128', '4x25x28x28x64'], 'B x T x H x W x C.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed calls per row (the best is kept), after one warm-up.')


def conv3d(x, w):
  return lax.conv_general_dilated(x, w, (1, 1, 1), 'SAME', dimension_numbers=('NDHWC', 'DHWIO', 'NDHWC'))


def conv_2d_per_tap(x, w):
  """conv3d(x, w) for an odd temporal kernel: each temporal tap a 2-D convolution of the shifted frames."""
  b, t, h, width, c = x.shape
  kt = w.shape[0]
  padded = jnp.pad(x, ((0, 0), (kt // 2, kt // 2), (0, 0), (0, 0), (0, 0)))
  out = 0
  for k in range(kt):
    frames = padded[:, k : k + t].reshape(b * t, h, width, c)
    out = out + lax.conv_general_dilated(frames, w[k], (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  return out.reshape(b, t, h, width, -1)


def _best(call, repeats: int) -> float:
  call()  # compile / warm up
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    call()
    best = min(best, time.perf_counter() - start)
  return best


def time_jax(conv, x, w, repeats: int) -> dict[str, float]:
  forward = jax.jit(conv)
  gradient = jax.jit(jax.grad(lambda x, w: jnp.sum(conv(x, w) ** 2), argnums=(0, 1)))
  return {
      'fwd': _best(lambda: jax.block_until_ready(forward(x, w)), repeats),
      'fwd+bwd': _best(lambda: jax.block_until_ready(gradient(x, w)), repeats),
  }


def time_torch(x, w, repeats: int) -> dict[str, float]:
  import torch  # only this row needs PyTorch

  xt = torch.tensor(x).permute(0, 4, 1, 2, 3).contiguous().requires_grad_()
  wt = torch.tensor(w).permute(4, 3, 0, 1, 2).contiguous().requires_grad_()
  padding = w.shape[0] // 2

  def gradient():
    (torch.nn.functional.conv3d(xt, wt, padding=padding) ** 2).sum().backward()

  with torch.no_grad():
    forward = _best(lambda: torch.nn.functional.conv3d(xt, wt, padding=padding), repeats)
  return {'fwd': forward, 'fwd+bwd': _best(gradient, repeats)}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments {argv[1:]}.')
  try:
    import torch  # noqa: F401

    has_torch = True
  except ImportError:
    has_torch = False
    print('PyTorch is not installed: its row is skipped (pip install -r requirements-torch.txt).')
  print(
      f'{jax.devices()[0].device_kind}; 3x3x3 convolution, SAME, stride 1; ms (GFLOP/s every tap), best of '
      f'{_REPEATS.value}'
  )
  print(f'{"shape B x T x H x W x C":<26}{"row":<17}{"fwd":>18}{"fwd+bwd":>18}')
  rng = np.random.default_rng(0)
  for text in _SHAPES.value:
    b, t, h, width, c = map(int, text.split('x'))
    x = rng.standard_normal((b, t, h, width, c), np.float32)
    w = (rng.standard_normal((3, 3, 3, c, c)) / np.sqrt(27 * c)).astype(np.float32)
    reference = np.asarray(jax.jit(conv3d)(x, w))
    # Both sum the same n = 27 c products in float32 in different orders: each is within n * eps * the sum
    # of the products' magnitudes of the exact value (the standard bound for any summation order).
    magnitudes = np.asarray(jax.jit(conv3d)(np.abs(x), np.abs(w)))
    error = np.abs(np.asarray(jax.jit(conv_2d_per_tap)(x, w)) - reference)
    if not np.all(error <= 2 * 27 * c * np.finfo(np.float32).eps * magnitudes):
      raise AssertionError(f'{text}: the 2-D per-tap convolution differs from conv3d by up to {error.max():.3g}.')
    flops = 2 * b * t * h * width * c * c * 27
    rows = {'xla_conv3d': time_jax(conv3d, x, w, _REPEATS.value)}
    rows['xla_2d_per_tap'] = time_jax(conv_2d_per_tap, x, w, _REPEATS.value)
    if has_torch:
      rows['torch_conv3d'] = time_torch(x, w, _REPEATS.value)
    for row, seconds in rows.items():
      cells = [
          f'{1e3 * seconds[key]:.1f} ({factor * flops / seconds[key] / 1e9:.0f})'
          for key, factor in (('fwd', 1), ('fwd+bwd', 3))
      ]
      print(f'{text:<26}{row:<17}{cells[0]:>18}{cells[1]:>18}', flush=True)


if __name__ == '__main__':
  app.run(main)
