"""Dynamic connections between the I-stream and a P-stream (METHOD.md section 3).

One direction, source -> target, computes a message that is added to the target's features:
  1. temporal alignment of the source to the target's T (`align_time`);
  2. a 1x1x1 conv mapping the source's channels to the target's (optional, `use_conv`). 1x1x1, not
     3x3x3: the streams are already aligned in space and (after step 1) in time, so the conv only
     translates between feature spaces; it is also 27x cheaper;
  3. an input-dependent gate in (0, 1) per (clip, time step, channel) (optional, `use_attention`):
     sigmoid of a 2-layer MLP on the spatially pooled message and target, concatenated.
Without the conv, the source's features are used as they are (the parameter-free identity mapping);
this needs equal channels in both streams, which holds because all IMR streams share their widths.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from imr_jax.models.resnet3d import accumulation_dtype

# The gate MLP's hidden width: max(channels // GATE_REDUCTION, MIN_GATE_HIDDEN).
GATE_REDUCTION = 4
MIN_GATE_HIDDEN = 8


def alignment_matrix(source_length: int, target_length: int) -> np.ndarray:
  """The (target_length, source_length) float64 matrix that resamples a sequence in time.

  Both sequences cover the same time span, split into equal intervals; target step t is the
  overlap-weighted mean of the source steps its interval meets, so every row sums to 1. For
  source = k * target this is average pooling over k steps (P -> I); for target = k * source it
  repeats each source step k times (I -> P); other lengths mix the source steps an interval meets.
  """
  if source_length < 1 or target_length < 1:
    raise ValueError(f'Sequence lengths must be positive, got {source_length} -> {target_length}.')
  # Interval boundaries in units of 1 / (source_length * target_length): exact integer arithmetic.
  source_edges = np.arange(source_length + 1) * target_length
  target_edges = np.arange(target_length + 1) * source_length
  low = np.maximum(target_edges[:-1, None], source_edges[None, :-1])
  high = np.minimum(target_edges[1:, None], source_edges[None, 1:])
  return np.clip(high - low, 0, None) / source_length


def align_time(x: jnp.ndarray, target_length: int) -> jnp.ndarray:
  """(B, T_source, H, W, C) -> (B, target_length, H, W, C), as `alignment_matrix` defines.

  Whole-number ratios use reshape-mean and repeat (cheap, exact); other ratios a small matmul.
  """
  source_length = x.shape[1]
  if source_length == target_length:
    return x
  if source_length % target_length == 0:
    factor = source_length // target_length
    grouped = x.reshape(x.shape[0], target_length, factor, *x.shape[2:])
    return jnp.mean(grouped, axis=2, dtype=accumulation_dtype(x.dtype)).astype(x.dtype)
  if target_length % source_length == 0:
    return jnp.repeat(x, target_length // source_length, axis=1)
  # At least float32 weights: fractions such as 1/3 are far from exact in bfloat16.
  dtype = accumulation_dtype(x.dtype)
  weights = jnp.asarray(alignment_matrix(source_length, target_length), dtype=dtype)
  return jnp.einsum('ts,bshwc->bthwc', weights, x.astype(dtype)).astype(x.dtype)


class DynamicConnection(nn.Module):
  """One direction of a dynamic connection; returns the message to add to `target`.

  Attributes:
    use_conv: map the source through a 1x1x1 conv (parameters `conv`).
    use_attention: scale the message by an input-dependent gate (`gate_hidden`, `gate_out`).
    dtype: compute dtype.
  """

  use_conv: bool = True
  use_attention: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, source: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
    """source (B, T_s, H, W, C_s), target (B, T_t, H, W, C_t) -> message (B, T_t, H, W, C_t).

    H and W must agree; T_s and T_t may be any lengths.
    """
    if source.shape[0] != target.shape[0] or source.shape[2:4] != target.shape[2:4]:
      raise ValueError(
          f'A connection needs equal batch and spatial sizes in both streams; got '
          f'source {source.shape} and target {target.shape}. Give all streams the '
          'same crop size.'
      )
    channels = target.shape[-1]
    target_length = target.shape[1]
    if self.use_conv:
      conv = nn.Conv(channels, (1, 1, 1), use_bias=False, dtype=self.dtype, param_dtype=jnp.float32, name='conv')
      # The pointwise conv commutes with temporal resampling (both are linear, on different axes),
      # so run it on the shorter sequence: pool first for P -> I, repeat last for I -> P.
      if source.shape[1] > target_length:
        message = conv(align_time(source, target_length))
      else:
        message = align_time(conv(source), target_length)
    else:
      if source.shape[-1] != channels:
        raise ValueError(
            f'connection_conv=False needs equal channels in both streams; got '
            f'source {source.shape[-1]}, target {channels}. Set connection_conv=True.'
        )
      message = align_time(source, target_length)
    if self.use_attention:
      pooled = jnp.concatenate(
          [
              jnp.mean(message, axis=(2, 3), dtype=accumulation_dtype(message.dtype)),
              jnp.mean(target, axis=(2, 3), dtype=accumulation_dtype(target.dtype)),
          ],
          axis=-1,
      )  # (B, T_t, 2 C_t)
      hidden = max(channels // GATE_REDUCTION, MIN_GATE_HIDDEN)
      gate = nn.relu(nn.Dense(hidden, name='gate_hidden')(pooled))
      gate = nn.sigmoid(nn.Dense(channels, name='gate_out')(gate))  # (B, T_t, C_t) in (0, 1)
      message = message * gate[:, :, None, None, :].astype(message.dtype)
    return message.astype(target.dtype)
