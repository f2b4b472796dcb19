"""A PyTorch reference of IMR's three 3D-ResNet streams, for the train-step benchmark.

`IMRReference` is the network of `imr_jax.models.IMRNet(connections='none')`, written in PyTorch: the same
stem (conv (k_t, 7, 7) /(1, 2, 2) with PyTorch's `k // 2` padding, batch norm, ReLU, max-pool (1, 3, 3)
/(1, 2, 2), widened in time when the stem's temporal stride is above 1), the same blocks (ResNet v1.5:
the bottleneck's stride on its 3x3x3 conv; projection shortcuts where the shape changes; zero-initialised
last batch-norm scale), the same temporal strides and widths, and the input batch norm of the M and R
streams, whose affine part is folded into the stem's convolution as in Flax (`resnet3d.AffineInputConv`:
conv(scale * x_hat + bias, W) = conv(x_hat, scale * W) + the response of the frame's inside to the folded
bias, so neither side computes the gradient of the stem's input). Module names mirror the Flax ones, so
`load_flax_variables` copies a Flax model's parameters and batch statistics in, and
tests/test_torch_reference.py checks that both compute the same features and gradients, and that
`torch.utils.flop_counter` counts the same FLOPs as `benchmarks.flops.every_tap_flops`.

Two known differences, neither of which touches speed: a training step updates PyTorch's running
variance with the unbiased batch variance (Flax keeps the biased one), and there are no dynamic
connections (they are IMRNet's own; the benchmark's target is IMRNet *with* connections against this).

`torchvision_r3d_18_streams` is what people run today: torchvision's `r3d_18` per stream (no max-pool in
its stem, so every stage sees 4x the positions), with a 2-channel stem for the MVs.

This module imports torch and the Flax model's constants only: no TensorFlow, PyAV, CLU or ml_collections.
"""

import math
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from imr_jax.models import imrnet
from imr_jax.models import resnet3d

# Flax's BatchNorm keeps momentum * old + (1 - momentum) * new with momentum 0.9; PyTorch's momentum is
# the weight of the new value.
_BN_MOMENTUM = 0.1
_BN_EPSILON = 1e-5


def _conv(in_channels: int, out_channels: int, kernel: Sequence[int], stride: Sequence[int] = (1, 1, 1)) -> nn.Conv3d:
  conv = nn.Conv3d(
      in_channels, out_channels, tuple(kernel), tuple(stride), padding=tuple(k // 2 for k in kernel), bias=False
  )
  nn.init.kaiming_normal_(conv.weight, mode='fan_out', nonlinearity='relu')  # resnet3d._conv_init
  return conv


def _norm(channels: int, zero_scale: bool = False) -> nn.BatchNorm3d:
  norm = nn.BatchNorm3d(channels, eps=_BN_EPSILON, momentum=_BN_MOMENTUM)
  if zero_scale:
    nn.init.zeros_(norm.weight)
  return norm


class BasicBlock(nn.Module):
  """resnet3d.BasicBlock: two (k_t, 3, 3) convs, output channels = width."""

  def __init__(self, in_channels: int, width: int, strides: Sequence[int], temporal_kernel_size: int):
    super().__init__()
    kernel = (temporal_kernel_size, 3, 3)
    self.conv1, self.norm1 = _conv(in_channels, width, kernel, strides), _norm(width)
    self.conv2, self.norm2 = _conv(width, width, kernel), _norm(width, zero_scale=True)
    self.shortcut_conv = self.shortcut_norm = None
    if in_channels != width or tuple(strides) != (1, 1, 1):
      self.shortcut_conv, self.shortcut_norm = _conv(in_channels, width, (1, 1, 1), strides), _norm(width)
    self.out_channels = width

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    y = F.relu(self.norm1(self.conv1(x)))
    y = self.norm2(self.conv2(y))
    shortcut = x if self.shortcut_conv is None else self.shortcut_norm(self.shortcut_conv(x))
    return F.relu(y + shortcut)


class BottleneckBlock(nn.Module):
  """resnet3d.BottleneckBlock: 1x1x1 -> (k_t, 3, 3), strided -> 1x1x1; output channels = 4 * width."""

  def __init__(self, in_channels: int, width: int, strides: Sequence[int], temporal_kernel_size: int):
    super().__init__()
    out_channels = width * resnet3d.BOTTLENECK_EXPANSION
    self.conv1, self.norm1 = _conv(in_channels, width, (1, 1, 1)), _norm(width)
    self.conv2, self.norm2 = _conv(width, width, (temporal_kernel_size, 3, 3), strides), _norm(width)
    self.conv3, self.norm3 = _conv(width, out_channels, (1, 1, 1)), _norm(out_channels, zero_scale=True)
    self.shortcut_conv = self.shortcut_norm = None
    if in_channels != out_channels or tuple(strides) != (1, 1, 1):
      self.shortcut_conv = _conv(in_channels, out_channels, (1, 1, 1), strides)
      self.shortcut_norm = _norm(out_channels)
    self.out_channels = out_channels

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    y = F.relu(self.norm1(self.conv1(x)))
    y = F.relu(self.norm2(self.conv2(y)))
    y = self.norm3(self.conv3(y))
    shortcut = x if self.shortcut_conv is None else self.shortcut_norm(self.shortcut_conv(x))
    return F.relu(y + shortcut)


class Stem(nn.Module):
  """resnet3d.Stem: conv (k_t, 7, 7) /(1, 2, 2) -> BN -> ReLU -> max-pool (pool_t, 3, 3) /(s, 2, 2)."""

  def __init__(self, in_channels: int, width: int, temporal_stride: int, temporal_kernel_size: int):
    super().__init__()
    kt = temporal_kernel_size
    self.conv, self.norm = _conv(in_channels, width, (kt, 7, 7), (1, 2, 2)), _norm(width)
    pool_t = max(kt, temporal_stride) if temporal_stride > 1 else 1
    self.pool = nn.MaxPool3d((pool_t, 3, 3), (temporal_stride, 2, 2), padding=(pool_t // 2, 1, 1))

  def forward(self, x: torch.Tensor, input_affine: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    if input_affine is None:
      y = self.conv(x)
    else:  # conv(scale * x + bias), as resnet3d.AffineInputConv
      scale, bias = (v.view(1, -1, 1, 1, 1) for v in input_affine)
      weight, stride = self.conv.weight, self.conv.stride
      y = F.conv3d(x, weight * scale, stride=stride, padding=self.conv.padding)
      inside = [
          torch.from_numpy(resnet3d.inside_taps(*axis)).to(x.device, weight.dtype)
          for axis in zip(x.shape[2:], self.conv.kernel_size, stride)
      ]
      b = (weight * bias).sum(1)  # (features, k_t, k_h, k_w)
      b = torch.einsum('oijk,wk->oijw', b, inside[2])
      b = torch.einsum('oijw,hj->oihw', b, inside[1])
      b = torch.einsum('oihw,ti->othw', b, inside[0])
      y = y + b.to(y.dtype)
    return self.pool(F.relu(self.norm(y)))


class Stage(nn.Module):
  """resnet3d.ResStage: blocks block1..blockN, the first applying the stage's strides."""

  def __init__(self, block: str, num_blocks: int, in_channels: int, width: int, strides, temporal_kernel_size: int):
    super().__init__()
    block_cls = BasicBlock if block == 'basic' else BottleneckBlock
    self.num_blocks = num_blocks
    for index in range(num_blocks):
      block_strides = strides if index == 0 else (1, 1, 1)
      module = block_cls(in_channels, width, block_strides, temporal_kernel_size)
      self.add_module(f'block{index + 1}', module)
      in_channels = module.out_channels
    self.out_channels = in_channels

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    for index in range(self.num_blocks):
      x = getattr(self, f'block{index + 1}')(x)
    return x


class ResNet3D(nn.Module):
  """resnet3d.ResNet3D on (B, C, T, H, W) tensors: [input norm], stem, res2..res5, global mean (float32)."""

  def __init__(
      self,
      in_channels: int,
      depth: int = 18,
      widths: Sequence[int] = (),
      temporal_strides: Sequence[int] = (1, 1, 1, 1, 1),
      temporal_kernel_size: int = 3,
      normalize_input: bool = False,
  ):
    super().__init__()
    block, blocks_per_stage = resnet3d.DEPTHS[depth]
    widths = tuple(widths) or resnet3d.STANDARD_WIDTHS
    self.input_norm = _norm(in_channels) if normalize_input else None
    self.stem = Stem(in_channels, widths[0], temporal_strides[0], temporal_kernel_size)
    channels = widths[0]
    for index, (name, num_blocks, width) in enumerate(zip(resnet3d.STAGE_NAMES, blocks_per_stage, widths)):
      spatial = 1 if index == 0 else 2
      stage = Stage(
          block, num_blocks, channels, width, (temporal_strides[index + 1], spatial, spatial), temporal_kernel_size
      )
      self.add_module(name, stage)
      channels = stage.out_channels
    self.out_channels = channels

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    if self.input_norm is None:
      x = self.stem(x)
    else:
      # At least float32, as the Flax input norm (autocast leaves batch norm in its input's dtype); its
      # scale and bias go to the stem's conv (resnet3d.InputNorm).
      norm = self.input_norm
      x_hat = F.batch_norm(
          x.to(torch.promote_types(x.dtype, torch.float32)),
          norm.running_mean,
          norm.running_var,
          training=self.training,
          momentum=_BN_MOMENTUM,
          eps=_BN_EPSILON,
      )
      x = self.stem(x_hat, input_affine=(norm.weight, norm.bias))
    for name in resnet3d.STAGE_NAMES:
      x = getattr(self, name)(x)
    return x.mean(dim=(2, 3, 4), dtype=torch.promote_types(x.dtype, torch.float32))


class IMRReference(nn.Module):
  """IMRNet(connections='none') in PyTorch: streams i, m, r, features concatenated in that order."""

  def __init__(
      self,
      depth: int = 18,
      widths: Sequence[int] = (),
      streams: str = imrnet.STREAMS,
      i_temporal_strides: Sequence[int] = (1, 1, 1, 1, 1),
      p_temporal_strides: Sequence[int] = (1, 1, 1, 1, 1),
  ):
    super().__init__()
    self.streams = streams
    for stream in streams:
      network = ResNet3D(
          imrnet.INPUT_CHANNELS[stream],
          depth,
          widths,
          i_temporal_strides if stream == 'i' else p_temporal_strides,
          normalize_input=stream != 'i',
      )
      self.add_module(f'{stream}_stream', network)
    self.out_channels = sum(getattr(self, f'{s}_stream').out_channels for s in streams)

  @classmethod
  def from_model_config(cls, model_config: Any) -> 'IMRReference':
    """The reference of the network config.model describes (its connections are left out)."""
    return cls(
        model_config.depth,
        tuple(model_config.widths),
        model_config.streams,
        tuple(model_config.i_temporal_strides),
        tuple(model_config.p_temporal_strides),
    )

  def forward(self, iframes=None, motion_vectors=None, residuals=None) -> torch.Tensor:
    inputs = {'i': iframes, 'm': motion_vectors, 'r': residuals}
    return torch.cat([getattr(self, f'{s}_stream')(inputs[s]) for s in self.streams], dim=-1)


class ThreeStreams(nn.Module):
  """Any per-stream networks mapping (B, C, T, H, W) to (B, D), features concatenated in order i, m, r."""

  def __init__(self, networks: Mapping[str, nn.Module], out_channels: int):
    super().__init__()
    self.streams = ''.join(networks)
    for stream, network in networks.items():
      self.add_module(f'{stream}_stream', network)
    self.out_channels = out_channels

  def forward(self, iframes=None, motion_vectors=None, residuals=None) -> torch.Tensor:
    inputs = {'i': iframes, 'm': motion_vectors, 'r': residuals}
    return torch.cat([getattr(self, f'{s}_stream')(inputs[s]) for s in self.streams], dim=-1)


def torchvision_r3d_18_streams(streams: str = imrnet.STREAMS) -> ThreeStreams:
  """torchvision's r3d_18 per stream (fc removed; the MV stream's stem takes 2 channels)."""
  from torchvision.models.video import r3d_18  # only this row needs torchvision

  networks = {}
  for stream in streams:
    network = r3d_18()
    network.fc = nn.Identity()
    channels = imrnet.INPUT_CHANNELS[stream]
    if channels != 3:
      old = network.stem[0]
      network.stem[0] = nn.Conv3d(
          channels, old.out_channels, old.kernel_size, old.stride, padding=old.padding, bias=False
      )
    networks[stream] = network
  return ThreeStreams(networks, out_channels=512 * len(streams))


# --- Flax parameters in, PyTorch gradients out ------------------------------------------------------

_PARAM_NAMES = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias', 'mean': 'running_mean', 'var': 'running_var'}


def _flat(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()):
  for key, value in tree.items():
    if isinstance(value, Mapping):
      yield from _flat(value, prefix + (key,))
    else:
      yield prefix + (key,), value


def torch_name(flax_path: Sequence[str]) -> str:
  """('i_stream', 'res2', 'block1', 'conv1', 'kernel') -> 'i_stream.res2.block1.conv1.weight'."""
  return '.'.join((*flax_path[:-1], _PARAM_NAMES[flax_path[-1]]))


def to_torch_layout(flax_path: Sequence[str], value: np.ndarray) -> np.ndarray:
  """A Flax conv kernel (k_t, k_h, k_w, in, out) as PyTorch's (out, in, k_t, k_h, k_w); others as they are."""
  value = np.asarray(value)
  return value.transpose(4, 3, 0, 1, 2) if flax_path[-1] == 'kernel' and value.ndim == 5 else value


def from_torch_layout(flax_path: Sequence[str], value: np.ndarray) -> np.ndarray:
  value = np.asarray(value)
  return value.transpose(2, 3, 4, 1, 0) if flax_path[-1] == 'kernel' and value.ndim == 5 else value


def load_flax_variables(module: nn.Module, variables: Mapping[str, Any]) -> None:
  """Copies {'params', 'batch_stats'} of the matching Flax backbone into `module`, every tensor checked."""
  state = module.state_dict()
  loaded = set()
  for collection in ('params', 'batch_stats'):
    for path, value in _flat(variables.get(collection, {})):
      name = torch_name(path)
      if name not in state:
        raise KeyError(f'Flax {collection} {"/".join(path)} has no PyTorch counterpart {name!r}.')
      value = torch.as_tensor(to_torch_layout(path, value).copy())
      if tuple(value.shape) != tuple(state[name].shape):
        raise ValueError(f'{name}: Flax gives {tuple(value.shape)}, PyTorch has {tuple(state[name].shape)}.')
      state[name] = value.to(state[name].dtype)
      loaded.add(name)
  missing = [n for n in state if n not in loaded and not n.endswith('num_batches_tracked')]
  if missing:
    raise KeyError(f'PyTorch tensors with no Flax counterpart: {missing}.')
  module.load_state_dict(state)


def gradients_as_flax(module: nn.Module, params: Mapping[str, Any]) -> dict[str, Any]:
  """The `.grad` of each PyTorch parameter, laid out as the Flax `params` tree."""
  named = dict(module.named_parameters())
  out: dict[str, Any] = {}
  for path, _ in _flat(params):
    node = out
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = from_torch_layout(path, named[torch_name(path)].grad.detach().cpu().numpy())
  return out


# --- the training step the benchmark times -----------------------------------------------------------


def stream_inputs(
    batch_size: int, num_gops: int, p_per_gop: int, crop: int, device, streams: str = imrnet.STREAMS, seed: int = 0
) -> dict[str, torch.Tensor]:
  """Random (B, C, T, H, W) inputs of train_step_bench's shapes, keyed as IMRReference.forward's arguments."""
  generator = torch.Generator().manual_seed(seed)
  lengths = {'i': num_gops, 'm': num_gops * p_per_gop, 'r': num_gops * p_per_gop}
  return {
      imrnet.INPUT_NAMES[s]: torch.randn(
          (batch_size, imrnet.INPUT_CHANNELS[s], lengths[s], crop, crop), generator=generator
      ).to(device)
      for s in streams
  }


class Classifier(nn.Module):
  """A backbone's concatenated features -> dropout -> linear logits (as the classification task's head)."""

  def __init__(self, backbone: nn.Module, num_classes: int, dropout_rate: float = 0.5):
    super().__init__()
    self.backbone = backbone
    self.dropout = nn.Dropout(dropout_rate)
    self.head = nn.Linear(backbone.out_channels, num_classes)

  def forward(self, **inputs) -> torch.Tensor:
    return self.head(self.dropout(self.backbone(**inputs)))


def make_train_step(
    model: Classifier,
    *,
    learning_rate: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    grad_clip_norm: float = 10.0,
    bfloat16: bool = False,
    compiled: bool = False,
) -> Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]:
  """One SGD step as train.make_optimizer's: weight decay on kernels only, momentum, global-norm clipping.

  bfloat16: autocast (convolutions and matrix products in bfloat16, batch norm statistics in float32).
  compiled: `torch.compile` of the model (forward and, through AOTAutograd, backward).
  """
  device = next(model.parameters()).device
  kernels = [p for p in model.parameters() if p.ndim > 1]
  others = [p for p in model.parameters() if p.ndim <= 1]
  fused = {'fused': True} if device.type == 'cuda' else {'foreach': True}
  optimizer = torch.optim.SGD(
      [{'params': kernels, 'weight_decay': weight_decay}, {'params': others, 'weight_decay': 0.0}],
      lr=learning_rate,
      momentum=momentum,
      **fused,
  )
  forward = torch.compile(model) if compiled else model
  model.train()

  def step(inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
      logits = forward(**inputs)
    loss = F.cross_entropy(logits.float(), labels)
    loss.backward()
    if grad_clip_norm > 0:
      nn.utils.clip_grad_norm_(model.parameters(), grad_clip_norm, foreach=True)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()

  return step


def count_step_flops(model: Classifier, inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> float:
  """`torch.utils.flop_counter`'s count of one eager forward + backward (2 per multiply-add, every tap)."""
  from torch.utils.flop_counter import FlopCounterMode

  with FlopCounterMode(display=False) as counter:
    F.cross_entropy(model(**inputs).float(), labels).backward()
  model.zero_grad(set_to_none=True)
  return float(counter.get_total_flops())


def synchronize(device: torch.device) -> None:
  if device.type == 'cuda':
    torch.cuda.synchronize(device)


def time_train_step(step, inputs, labels, steps: int) -> dict[str, float]:
  """Seconds of the first step (compilation, autotuning) and the mean of `steps` after one more warm-up."""
  device = labels.device
  start = time.perf_counter()
  loss = step(inputs, labels)
  synchronize(device)
  first_s = time.perf_counter() - start
  step(inputs, labels)  # a second warm-up: compiled graphs may specialise once more
  synchronize(device)
  start = time.perf_counter()
  for _ in range(steps):
    loss = step(inputs, labels)
  synchronize(device)
  step_s = (time.perf_counter() - start) / steps
  if not math.isfinite(float(loss)):
    raise RuntimeError('The timed PyTorch steps produced a non-finite loss.')
  return {'compile_s': first_s, 'step_s': step_s}


def matmul_rate(size: int, dtype: torch.dtype, device, repeats: int = 10) -> float:
  """FLOP/s of a square matmul in `dtype` on `device`, best of `repeats` (as train_step_bench's JAX one)."""
  a = torch.ones((size, size), dtype=dtype, device=device)
  torch.matmul(a, a)
  synchronize(torch.device(device))
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    torch.matmul(a, a)
    synchronize(torch.device(device))
    best = min(best, time.perf_counter() - start)
  return 2 * size**3 / best
