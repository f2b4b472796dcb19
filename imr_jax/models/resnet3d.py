"""3D ResNets (basic and bottleneck blocks) in channels-last NDHWC layout.

One network class serves both the IMR streams (3x3x3 kernels) and CoViAR's per-frame 2D ResNets
(`temporal_kernel_size=1`, temporal strides 1: every conv then sees one frame, and batch norm over
(B, T, H, W) is exactly a 2D batch norm over B * T frames).

Layout follows the 3D-ResNets of Hara et al. (CVPR 2018) and torchvision's ResNet v1.5:
  stem: conv (k_t, 7, 7) /(1, 2, 2) -> BN -> ReLU -> max-pool (1, 3, 3) /(1, 2, 2); with a temporal
        stem stride s > 1 the pool becomes (max(k_t, s), 3, 3) /(s, 2, 2).
  res2..res5: the first block of res3..res5 halves H and W; each stage's temporal stride is a
        parameter, applied in its first block's (k_t, 3, 3) conv and projection shortcut.
Convolutions and pools pad symmetrically by k // 2 (as PyTorch), so stride 2 maps n to
floor((n - 1) / 2) + 1: 112 -> 56 -> 28 (res2) -> 14 -> 7 -> 4 (res5); T_P = 25 -> 13 -> 7 -> 4.
Compute runs in `dtype`; parameters and batch-norm statistics are float32; means and the input batch
norm run in `accumulation_dtype(dtype)` (float32 for bfloat16 compute).

`strided_conv='subsample'` computes every strided conv as its stride-1 conv followed by taking every
s-th output (a 1x1x1 conv: every s-th input first). With the symmetric `k // 2` padding above this is
the same function, with the same parameters; only the cost differs. It exists for XLA:CPU, whose
transposed convolution (the input gradient of a strided conv) is several times slower than the
stride-1 conv's gradient; accelerators keep 'native'.

The input batch norm of the M and R streams hands its affine part to the stem's convolution
(`InputNorm`, `AffineInputConv`): conv(scale * x_hat + bias, W) is computed as conv(x_hat, scale * W)
plus the convolution of the frame's inside with the bias folded into W. It is the same function with
the same variables, but its gradient no longer needs the stem's input gradient: a full-resolution
convolution into 2 or 3 channels, which was 73% of the CPU demo's step time (benchmarks/profile_summary.py).

Every conv is `Conv` (nn.Conv's parameter and initialisation), which on the CPU runs a 3-D convolution
as 2-D convolutions per temporal tap (`conv`).
"""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

STAGE_NAMES = ('res2', 'res3', 'res4', 'res5')

# depth -> (block kind, blocks per stage). 10 (one block per stage, Hara et al.'s 3D-ResNet-10) with
# narrow widths is the network of the tests and the CPU demo.
DEPTHS = {
    10: ('basic', (1, 1, 1, 1)),
    18: ('basic', (2, 2, 2, 2)),
    34: ('basic', (3, 4, 6, 3)),
    50: ('bottleneck', (3, 4, 6, 3)),
    101: ('bottleneck', (3, 4, 23, 3)),
    152: ('bottleneck', (3, 8, 36, 3)),
}
STANDARD_WIDTHS = (64, 128, 256, 512)
STRIDED_CONV_MODES = ('native', 'subsample')
BOTTLENECK_EXPANSION = 4

# He initialisation (fan-out, normal) as in torchvision's ResNets: keeps the scale through ReLUs.
_conv_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


def accumulation_dtype(dtype: Any) -> Any:
  """The dtype of means and other sums for a compute dtype: at least float32."""
  return jnp.promote_types(dtype, jnp.float32)


def stage_output_channels(depth: int, widths: Sequence[int]) -> tuple[int, ...]:
  """Channels at the outputs of res2..res5."""
  kind, _ = DEPTHS[depth]
  expansion = BOTTLENECK_EXPANSION if kind == 'bottleneck' else 1
  return tuple(w * expansion for w in widths)


def conv(x: jnp.ndarray, kernel: jnp.ndarray, strides: Sequence[int]) -> jnp.ndarray:
  """(B, T, H, W, C) conv (k_t, k_h, k_w, C, F), bias-free, with PyTorch's symmetric `k // 2` padding.

  On the CPU it runs as k_t 2-D convolutions of the time-shifted frames, summed: the same products,
  summed in another order (tests/test_models.py bounds the difference). XLA:CPU's 3-D convolution is
  the slower form: with this one the demo's train step took a third to a quarter of the time and
  IMR-R18's at 112 px half (docs/EXPERIMENTS.md, README). Elsewhere it is XLA's 3-D convolution.
  """
  strides = tuple(strides)
  padding = [(k // 2, k // 2) for k in kernel.shape[:3]]
  if jax.default_backend() != 'cpu':
    return lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=('NDHWC', 'DHWIO', 'NDHWC'))
  b, t, h, w, c = x.shape
  kt, st, pt = kernel.shape[0], strides[0], padding[0][0]
  t_out = (t + 2 * pt - kt) // st + 1
  padded = jnp.pad(x, ((0, 0), (pt, pt), (0, 0), (0, 0), (0, 0))) if pt else x
  out = None
  for k in range(kt):
    frames = padded[:, k : k + st * (t_out - 1) + 1 : st].reshape(b * t_out, h, w, c)
    y = lax.conv_general_dilated(
        frames, kernel[k], strides[1:], padding[1:], dimension_numbers=('NHWC', 'HWIO', 'NHWC')
    )
    out = y if out is None else out + y
  return out.reshape(b, t_out, *out.shape[1:])


class Conv(nn.Module):
  """`conv` with a float32 `kernel` parameter (k_t, k_h, k_w, C, F), computed in `dtype`.

  The parameter, its initialisation and its random stream are those of nn.Conv(features,
  kernel_size, use_bias=False, param_dtype=float32, kernel_init=_conv_init), so checkpoints are too.
  """

  features: int
  kernel_size: tuple[int, int, int]
  strides: tuple[int, int, int] = (1, 1, 1)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    shape = (*self.kernel_size, x.shape[-1], self.features)
    kernel = self.param('kernel', _conv_init, shape, jnp.float32)
    return conv(x.astype(self.dtype), kernel.astype(self.dtype), self.strides)


def _conv(
    features: int, kernel_size: Sequence[int], strides: Sequence[int] = (1, 1, 1), *, dtype: Any, name: str
) -> Conv:
  return Conv(features, tuple(kernel_size), tuple(strides), dtype, name=name)


def _strided_conv(
    x: jnp.ndarray,
    features: int,
    kernel_size: Sequence[int],
    strides: Sequence[int],
    *,
    mode: str,
    dtype: Any,
    name: str,
) -> jnp.ndarray:
  """`_conv(...)(x)` with strides; mode 'subsample' computes it at stride 1 and subsamples.

  For an odd kernel k padded by k // 2, output i of the stride-s conv is centred on input s * i,
  as is output s * i of the stride-1 conv; both have floor((n - 1) / s) + 1 outputs.
  """
  strides = tuple(strides)
  if mode == 'native' or strides == (1, 1, 1):
    return _conv(features, kernel_size, strides, dtype=dtype, name=name)(x)
  if mode != 'subsample':
    raise ValueError(f'strided_conv={mode!r}; use one of {STRIDED_CONV_MODES}.')
  every_sth = (slice(None),) + tuple(slice(None, None, s) for s in strides)
  conv = _conv(features, kernel_size, dtype=dtype, name=name)
  if all(k == 1 for k in kernel_size):
    return conv(x[every_sth])  # a pointwise conv commutes with subsampling: do less work
  return conv(x)[every_sth]


def _norm(*, train: bool, dtype: Any, name: str, zero_scale: bool = False) -> nn.BatchNorm:
  # No axis_name: under jit over a sharded batch, the mean is already global.
  return nn.BatchNorm(
      use_running_average=not train,
      momentum=0.9,
      epsilon=1e-5,
      dtype=dtype,
      param_dtype=jnp.float32,
      scale_init=nn.initializers.zeros if zero_scale else nn.initializers.ones,
      name=name,
  )


class BasicBlock(nn.Module):
  """Two (k_t, 3, 3) convs; output channels = width."""

  width: int
  strides: tuple[int, int, int]  # (time, height, width)
  temporal_kernel_size: int = 3
  dtype: Any = jnp.float32
  strided_conv: str = 'native'

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    conv = functools.partial(_conv, dtype=self.dtype)
    strided = functools.partial(_strided_conv, mode=self.strided_conv, dtype=self.dtype)
    norm = functools.partial(_norm, train=train, dtype=self.dtype)
    kernel = (self.temporal_kernel_size, 3, 3)
    y = strided(x, self.width, kernel, self.strides, name='conv1')
    y = nn.relu(norm(name='norm1')(y))
    y = conv(self.width, kernel, name='conv2')(y)
    # Zero-initialised last scale: each block starts as the identity (Goyal et al., 2017).
    y = norm(name='norm2', zero_scale=True)(y)
    shortcut = x
    if x.shape[-1] != self.width or tuple(self.strides) != (1, 1, 1):
      shortcut = strided(x, self.width, (1, 1, 1), self.strides, name='shortcut_conv')
      shortcut = norm(name='shortcut_norm')(shortcut)
    return nn.relu(y + shortcut)


class BottleneckBlock(nn.Module):
  """1x1x1 -> (k_t, 3, 3) (strided, v1.5) -> 1x1x1; output channels = 4 * width."""

  width: int
  strides: tuple[int, int, int]
  temporal_kernel_size: int = 3
  dtype: Any = jnp.float32
  strided_conv: str = 'native'

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    conv = functools.partial(_conv, dtype=self.dtype)
    strided = functools.partial(_strided_conv, mode=self.strided_conv, dtype=self.dtype)
    norm = functools.partial(_norm, train=train, dtype=self.dtype)
    out_channels = self.width * BOTTLENECK_EXPANSION
    y = conv(self.width, (1, 1, 1), name='conv1')(x)
    y = nn.relu(norm(name='norm1')(y))
    y = strided(y, self.width, (self.temporal_kernel_size, 3, 3), self.strides, name='conv2')
    y = nn.relu(norm(name='norm2')(y))
    y = conv(out_channels, (1, 1, 1), name='conv3')(y)
    y = norm(name='norm3', zero_scale=True)(y)
    shortcut = x
    if x.shape[-1] != out_channels or tuple(self.strides) != (1, 1, 1):
      shortcut = strided(x, out_channels, (1, 1, 1), self.strides, name='shortcut_conv')
      shortcut = norm(name='shortcut_norm')(shortcut)
    return nn.relu(y + shortcut)


class InputNorm(nn.Module):
  """The batch norm of a raw input, returning its affine part instead of applying it.

  The variables, their initialisation and updates are nn.BatchNorm's (params `scale`, `bias`;
  batch_stats `mean`, `var`, kept as momentum * old + (1 - momentum) * new; the variance as Flax's
  E[x^2] - E[x]^2, floored at 0), so checkpoints are those of nn.BatchNorm(momentum, epsilon).
  Statistics run in x's dtype (the caller passes at least float32).

  Returns (x_hat, scale, bias): nn.BatchNorm's output is scale * x_hat + bias.
  """

  momentum: float = 0.9
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    channels = x.shape[-1]
    axes = tuple(range(x.ndim - 1))
    running_mean = self.variable('batch_stats', 'mean', lambda: jnp.zeros(channels, jnp.float32))
    running_var = self.variable('batch_stats', 'var', lambda: jnp.ones(channels, jnp.float32))
    scale = self.param('scale', nn.initializers.ones, (channels,), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (channels,), jnp.float32)
    if train:
      mean = jnp.mean(x, axes)
      var = jnp.maximum(0.0, jnp.mean(x * x, axes) - mean * mean)
      if not self.is_initializing():
        running_mean.value = self.momentum * running_mean.value + (1 - self.momentum) * mean
        running_var.value = self.momentum * running_var.value + (1 - self.momentum) * var
    else:
      mean, var = running_mean.value, running_var.value
    x_hat = (x - mean.astype(x.dtype)) * lax.rsqrt(var + self.epsilon).astype(x.dtype)
    return x_hat, scale, bias


def inside_taps(size: int, kernel: int, stride: int) -> np.ndarray:
  """(outputs, kernel) 0/1 float32: whether tap j of output i lands inside an axis of `size` positions.

  For a convolution along that axis with PyTorch's `kernel // 2` padding on both sides.
  """
  outputs = (size + 2 * (kernel // 2) - kernel) // stride + 1
  positions = stride * np.arange(outputs)[:, None] + np.arange(kernel)[None, :] - kernel // 2
  return ((positions >= 0) & (positions < size)).astype(np.float32)


class AffineInputConv(nn.Module):
  """`_conv(features, kernel_size, strides)(scale * x + bias)` for per-channel scale and bias.

  With zero padding, conv(scale * x + bias, W) = conv(x, W * scale) + conv(inside, B), where `inside` is
  1 over the frame and 0 in the padding, and B = sum_c bias_c W[..., c, :]. The frame's inside is a
  product of one indicator per axis, so the second term is three small contractions of B with
  `inside_taps` (one (T', H', W', features) map shared by the batch), not a convolution. The gradients
  of scale, bias and W then come from the convolution's weight gradient alone: x's gradient (a
  full-resolution convolution into 2 or 3 channels) is not needed, since x is data. The kernel
  parameter is `_conv`'s.
  """

  features: int
  kernel_size: tuple[int, int, int]
  strides: tuple[int, int, int]
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, scale: jnp.ndarray, bias: jnp.ndarray) -> jnp.ndarray:
    shape = (*self.kernel_size, x.shape[-1], self.features)
    kernel = self.param('kernel', _conv_init, shape, jnp.float32)
    y = conv(x.astype(self.dtype), (kernel * scale[:, None]).astype(self.dtype), self.strides)
    inside = [inside_taps(*axis) for axis in zip(x.shape[1:-1], self.kernel_size, self.strides)]
    b = jnp.sum(kernel * bias[:, None], axis=-2)  # (k_t, k_h, k_w, features)
    b = jnp.einsum('ijko,wk->ijwo', b, inside[2])
    b = jnp.einsum('ijwo,hj->ihwo', b, inside[1])
    b = jnp.einsum('ihwo,ti->thwo', b, inside[0])
    return y + b.astype(self.dtype)


class Stem(nn.Module):
  """conv (k_t, 7, 7) /(1, 2, 2) -> BN -> ReLU -> max-pool (1, 3, 3) /(1, 2, 2).

  With temporal_stride s > 1 the pool is (max(k_t, s), 3, 3) /(s, 2, 2). With `input_affine=(scale,
  bias)` the conv's input is scale * x + bias (see AffineInputConv).
  """

  width: int
  temporal_stride: int = 1
  temporal_kernel_size: int = 3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(
      self, x: jnp.ndarray, train: bool, input_affine: tuple[jnp.ndarray, jnp.ndarray] | None = None
  ) -> jnp.ndarray:
    kt = self.temporal_kernel_size
    if input_affine is None:
      x = _conv(self.width, (kt, 7, 7), (1, 2, 2), dtype=self.dtype, name='conv')(x)
    else:
      x = AffineInputConv(self.width, (kt, 7, 7), (1, 2, 2), self.dtype, name='conv')(x, *input_affine)
    x = nn.relu(_norm(train=train, dtype=self.dtype, name='norm')(x))
    # A temporal pool window of 1 with stride > 1 would skip frames; widen it to cover the stride.
    pool_t = max(kt, self.temporal_stride) if self.temporal_stride > 1 else 1
    return nn.max_pool(
        x, (pool_t, 3, 3), strides=(self.temporal_stride, 2, 2), padding=((pool_t // 2, pool_t // 2), (1, 1), (1, 1))
    )


class ResStage(nn.Module):
  """A stage of `num_blocks` blocks; the first one applies `strides`."""

  block: str  # 'basic' | 'bottleneck'
  num_blocks: int
  width: int
  strides: tuple[int, int, int]
  temporal_kernel_size: int = 3
  dtype: Any = jnp.float32
  strided_conv: str = 'native'

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    block_cls = BasicBlock if self.block == 'basic' else BottleneckBlock
    for index in range(self.num_blocks):
      strides = self.strides if index == 0 else (1, 1, 1)
      x = block_cls(
          self.width, strides, self.temporal_kernel_size, self.dtype, self.strided_conv, name=f'block{index + 1}'
      )(x, train)
    return x


class ResNet3D(nn.Module):
  """One stream: optional input batch norm, stem, res2..res5, global average pool.

  Attributes:
    depth: a key of DEPTHS (10, 18, 34, 50, 101, 152).
    widths: base widths of res2..res5 (the stem has widths[0] channels; bottleneck outputs are 4x
      these); () for the standard (64, 128, 256, 512).
    temporal_strides: temporal strides of (stem pool, res2, res3, res4, res5).
    temporal_kernel_size: 3 for a 3D network; 1 makes it a per-frame 2D network.
    normalize_input: batch-normalise the raw input first (the MV and residual streams).
    dtype: compute dtype.
    strided_conv: 'native' | 'subsample' (stride-1 conv, then every s-th output: the same
      function and parameters, faster to differentiate on CPU; see the module docstring) for the
      strided convs of res3..res5. The stem's input needs no gradient, so its conv stays native.

  Besides `__call__`, IMRNet drives the stages one at a time through `forward_stem` and
  `forward_stage`, to insert its connections between them.
  """

  depth: int = 18
  widths: tuple[int, ...] = ()
  temporal_strides: tuple[int, ...] = (1, 1, 1, 1, 1)
  temporal_kernel_size: int = 3
  normalize_input: bool = False
  dtype: Any = jnp.float32
  strided_conv: str = 'native'

  def setup(self):
    if self.strided_conv not in STRIDED_CONV_MODES:
      raise ValueError(f'strided_conv={self.strided_conv!r}; use one of {STRIDED_CONV_MODES}.')
    block, blocks_per_stage = DEPTHS[self.depth]
    if self.normalize_input:
      self.input_norm = InputNorm(momentum=0.9, epsilon=1e-5)
    kt = self.temporal_kernel_size
    widths = tuple(self.widths) or STANDARD_WIDTHS
    self.stem = Stem(widths[0], self.temporal_strides[0], kt, self.dtype)
    stages = []
    for index, (num_blocks, width) in enumerate(zip(blocks_per_stage, widths)):
      spatial = 1 if index == 0 else 2
      stages.append(
          ResStage(
              block,
              num_blocks,
              width,
              (self.temporal_strides[index + 1], spatial, spatial),
              kt,
              self.dtype,
              self.strided_conv,
          )
      )
    self.res2, self.res3, self.res4, self.res5 = stages

  def forward_stem(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    """(B, T, H, W, C_in) float -> (B, T', H / 4, W / 4, widths[0]) in `dtype` (rounded up)."""
    if not self.normalize_input:
      return self.stem(x.astype(self.dtype), train)
    # At least float32: the raw MV / residual values are normalised before any cast.
    x_hat, scale, bias = self.input_norm(x.astype(accumulation_dtype(self.dtype)), train)
    return self.stem(x_hat, train, input_affine=(scale, bias))

  def forward_stage(self, name: str, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    """Runs stage `name` (one of STAGE_NAMES)."""
    return getattr(self, name)(x, train)

  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    """(B, T, H, W, C_in) -> pooled features (B, C_out), float32 (float64 for float64 compute)."""
    x = self.forward_stem(x, train)
    for name in STAGE_NAMES:
      x = self.forward_stage(name, x, train)
    return global_average_pool(x)


def global_average_pool(x: jnp.ndarray) -> jnp.ndarray:
  """(B, T, H, W, C) -> (B, C) float32 (the mean is taken in float32 for bfloat16 inputs)."""
  return jnp.mean(x, axis=(1, 2, 3), dtype=accumulation_dtype(x.dtype))
