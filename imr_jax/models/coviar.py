"""The CoViAR baseline (Wu et al., CVPR 2018): three separate per-frame 2D ResNets, late fusion.

As in CoViAR's reference code (chaoyuaw/pytorch-coviar, model.py, test.py, combine.py):
  - I-frames: ResNet-152; MVs (2 input channels) and residuals: ResNet-18 each, with a batch norm on
    the raw input (`data_bn`). Every frame is classified on its own (2D network).
  - each stream's class scores (logits, before softmax) are averaged over its frames;
  - the three are combined as a weighted sum, default weights I : M : R = 2 : 1 : 1 (combine.py's
    defaults --wi 2 --wm 1 --wr 1).
The 2D networks are ResNet3D with temporal kernel 1 and temporal strides 1: every conv sees one
frame, and batch norm over (B, T, H, W) is a 2D batch norm over B * T frames, so the network is
exactly a per-frame 2D ResNet (kernels carry a leading temporal axis of size 1).
CoViAR trains each stream with its own loss; the streams share no parameters, so a sum of the
per-stream losses on 'stream_logits' trains them the same way within one model.
"""

from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from imr_jax.models import imrnet
from imr_jax.models import resnet3d

DEFAULT_STREAM_WEIGHTS = (2.0, 1.0, 1.0)  # I, M, R: combine.py's defaults


class CoViAR(nn.Module):
  """Per-frame 2D ResNets on I-frames, MVs and residuals; fused class scores.

  Attributes:
    num_classes: classes of the classifier on each stream.
    streams: the streams that run, in canonical order.
    iframe_depth: ResNet depth of the I-stream (CoViAR: 152).
    pframe_depth: ResNet depth of the M and R streams (CoViAR: 18).
    widths: base widths of res2..res5 for all streams; () for each depth's default.
    stream_weights: fusion weights of the (i, m, r) logits.
    dtype: compute dtype.
  """

  num_classes: int
  streams: str = imrnet.STREAMS
  iframe_depth: int = 152
  pframe_depth: int = 18
  widths: tuple[int, ...] = ()
  stream_weights: tuple[float, float, float] = DEFAULT_STREAM_WEIGHTS
  dtype: Any = jnp.float32

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
    """Inputs as IMRNet's (any T per stream, H and W free per stream).

    Returns:
      {'logits': (B, num_classes) float32, the weighted sum of the streams' frame-averaged logits;
       'stream_logits': {stream: (B, num_classes)}; 'features': (B, D) concatenation (i, m, r order)
       of the streams' pooled features; stream: (B, D_stream); 'stages' with return_stages}.
    """
    inputs = {'i': iframes, 'm': motion_vectors, 'r': residuals}
    imrnet.check_inputs(self.streams, inputs)
    weights = dict(zip(imrnet.STREAMS, self.stream_weights))
    outputs, stream_logits, stages = {}, {}, {}
    for stream in self.streams:
      depth = self.iframe_depth if stream == 'i' else self.pframe_depth
      network = resnet3d.ResNet3D(
          depth=depth,
          widths=tuple(self.widths),
          temporal_strides=(1, 1, 1, 1, 1),
          temporal_kernel_size=1,
          normalize_input=stream != 'i',
          dtype=self.dtype,
          name=f'{stream}_stream',
      )
      x = network.forward_stem(inputs[stream], train)
      stages[stream] = {'stem': x}
      for stage in resnet3d.STAGE_NAMES:
        x = network.forward_stage(stage, x, train)
        stages[stream][stage] = x
      outputs[stream] = resnet3d.global_average_pool(x)
      # The mean over frames of per-frame logits equals the classifier of the frame-mean features
      # (the layer is affine), so the classifier runs once per clip.
      classifier = nn.Dense(self.num_classes, name=f'{stream}_classifier')
      stream_logits[stream] = classifier(outputs[stream])
    outputs['features'] = jnp.concatenate([outputs[s] for s in self.streams], axis=-1)
    outputs['stream_logits'] = stream_logits
    outputs['logits'] = sum(weights[s] * stream_logits[s] for s in self.streams)
    if return_stages:
      outputs['stages'] = stages
    return outputs
