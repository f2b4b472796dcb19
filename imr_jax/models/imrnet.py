"""The IMR network: I, M and R streams joined by bidirectional dynamic connections.

Each stream is a ResNet3D (resnet3d.py); the M and R streams batch-normalise their raw input first.
After the stem and after res2, res3 and res4, every (I-stream, P-stream) pair exchanges messages
(connections.py): the P -> I messages of all P-streams are added to the I-stream and, when
bidirectional, the I -> P message to each P-stream. All messages of a stage are computed from the
features before any is added, so the result does not depend on the order of the streams.
"""

from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from imr_jax.models import connections as connections_lib
from imr_jax.models import resnet3d

STREAMS = 'imr'  # canonical order of the streams in 'features'
P_STREAMS = 'mr'
INPUT_NAMES = {'i': 'iframes', 'm': 'motion_vectors', 'r': 'residuals'}
INPUT_CHANNELS = {'i': 3, 'm': 2, 'r': 3}
CONNECTED_STAGES = ('stem', 'res2', 'res3', 'res4')
CONNECTION_MODES = ('bidirectional', 'unidirectional', 'none')


def check_inputs(streams: str, inputs: dict[str, Optional[jnp.ndarray]]) -> None:
  """Raises ValueError unless every selected stream has a (B, T, H, W, C) input of its channels."""
  for stream in streams:
    name, x = INPUT_NAMES[stream], inputs[stream]
    if x is None:
      raise ValueError(
          f"Stream '{stream}' is selected (streams={streams!r}) but `{name}` was not "
          f'given; pass it or drop the stream from config.model.streams.'
      )
    if x.ndim != 5 or x.shape[-1] != INPUT_CHANNELS[stream]:
      raise ValueError(f'`{name}` must be (B, T, H, W, {INPUT_CHANNELS[stream]}), got {x.shape}.')


class IMRNet(nn.Module):
  """Three-stream (or fewer) 3D-ResNet with dynamic connections.

  Attributes:
    depth: a key of resnet3d.DEPTHS, the same for all streams.
    widths: base widths of res2..res5, shared by all streams; () for the depth's default.
    streams: the streams that run, in canonical order ('imr', 'im', 'i', ...).
    connections: 'bidirectional' | 'unidirectional' (P -> I only) | 'none'.
    connection_conv: connections map the source through a 1x1x1 conv.
    connection_attention: connections scale by an input-dependent gate.
    i_temporal_strides: temporal strides of the I-stream's (stem pool, res2, res3, res4, res5).
    p_temporal_strides: the same for the M and R streams.
    dtype: compute dtype (parameters and batch-norm statistics are float32).
    strided_conv: how the streams compute strided convs: 'native' | 'subsample' (the same
      function and parameters; faster on CPU, see resnet3d.py).
  """

  depth: Any = 18
  widths: tuple[int, ...] = ()
  streams: str = STREAMS
  connections: str = 'bidirectional'
  connection_conv: bool = True
  connection_attention: bool = True
  i_temporal_strides: tuple[int, ...] = (1, 1, 1, 1, 1)
  p_temporal_strides: tuple[int, ...] = (1, 1, 1, 1, 1)
  dtype: Any = jnp.float32
  strided_conv: str = 'native'

  @nn.compact
  def __call__(
      self,
      iframes: Optional[jnp.ndarray] = None,
      motion_vectors: Optional[jnp.ndarray] = None,
      residuals: Optional[jnp.ndarray] = None,
      *,
      train: bool,
      return_stages: bool = False,
  ) -> dict[str, Any]:
    """Runs the selected streams.

    Args:
      iframes: float (B, T_I, H, W, 3), normalised RGB I-frames.
      motion_vectors: float (B, T_P, H, W, 2), normalised accumulated MVs.
      residuals: float (B, T_P, H, W, 3), normalised accumulated residuals.
      train: batch statistics (and their update) instead of running averages.
      return_stages: also return every stage's output (after its connections).

    H and W must agree between streams; T_I and T_P may be any lengths.

    Returns:
      {'features': (B, D) float32, the concatenation of the pooled streams in the order i, m, r;
       'i' / 'm' / 'r': (B, D_stream) float32 for the selected streams;
       'stages' (only with return_stages): {stream: {'stem', 'res2', ..., 'res5':
       (B, T, H, W, C) in the compute dtype}}}.
    """
    if self.connections not in CONNECTION_MODES:
      raise ValueError(f'connections={self.connections!r}; use one of {CONNECTION_MODES}.')
    inputs = {'i': iframes, 'm': motion_vectors, 'r': residuals}
    check_inputs(self.streams, inputs)
    networks = {
        stream: resnet3d.ResNet3D(
            depth=self.depth,
            widths=tuple(self.widths),
            temporal_strides=tuple(self.i_temporal_strides if stream == 'i' else self.p_temporal_strides),
            normalize_input=stream != 'i',
            dtype=self.dtype,
            strided_conv=self.strided_conv,
            name=f'{stream}_stream',
        )
        for stream in self.streams
    }

    x = {stream: networks[stream].forward_stem(inputs[stream], train) for stream in self.streams}
    x = self._connect('stem', x)
    stages = {stream: {'stem': x[stream]} for stream in self.streams}
    for stage in resnet3d.STAGE_NAMES:
      x = {stream: networks[stream].forward_stage(stage, x[stream], train) for stream in self.streams}
      if stage in CONNECTED_STAGES:
        x = self._connect(stage, x)
      for stream in self.streams:
        stages[stream][stage] = x[stream]

    outputs = {stream: resnet3d.global_average_pool(x[stream]) for stream in self.streams}
    outputs['features'] = jnp.concatenate([outputs[s] for s in self.streams], axis=-1)
    if return_stages:
      outputs['stages'] = stages
    return outputs

  def _connect(self, stage: str, x: dict[str, jnp.ndarray]) -> dict[str, jnp.ndarray]:
    """Adds the stage's connection messages; parameters are '{stage}_{source}_to_{target}'."""
    if self.connections == 'none' or 'i' not in self.streams:
      return x

    def message(source: str, target: str) -> jnp.ndarray:
      connection = connections_lib.DynamicConnection(
          use_conv=self.connection_conv,
          use_attention=self.connection_attention,
          dtype=self.dtype,
          name=f'{stage}_{source}_to_{target}',
      )
      return connection(x[source], x[target])

    incoming = {stream: [] for stream in self.streams}
    for p_stream in (s for s in P_STREAMS if s in self.streams):
      incoming['i'].append(message(p_stream, 'i'))
      if self.connections == 'bidirectional':
        incoming[p_stream].append(message('i', p_stream))
    return {stream: x[stream] + sum(incoming[stream]) if incoming[stream] else x[stream] for stream in self.streams}
