"""Models: 3D-ResNet streams, the IMR network, the CoViAR baseline, and the heads.

`build_backbone(config.model)` is the entry point the trainer uses; it checks every key it reads and
raises ValueError naming the key and its allowed values.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from imr_jax.models import imrnet as _imrnet
from imr_jax.models import resnet3d as _resnet3d
from imr_jax.models.coviar import CoViAR
from imr_jax.models.heads import ClassifierHead
from imr_jax.models.heads import CTPHead
from imr_jax.models.heads import pmsp_level_name
from imr_jax.models.heads import PMSPHead
from imr_jax.models.heads import ProjectionHead
from imr_jax.models.imrnet import IMRNet
from imr_jax.models.multihead import MultiHeadModel
from imr_jax.models.resnet3d import ResNet3D

__all__ = [
    'build_backbone',
    'ClassifierHead',
    'CoViAR',
    'CTPHead',
    'IMRNet',
    'MultiHeadModel',
    'pmsp_level_name',
    'PMSPHead',
    'ProjectionHead',
    'ResNet3D',
]

NAMES = ('imrnet', 'coviar')
# float64 is for numerical checks on the CPU (it needs jax_enable_x64): tests compare two programs
# there, where rounding is 2^29 times smaller than in float32.
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16, 'float64': jnp.float64}
# The keys each model reads from config.model; all must be present (none has a silent default).
KEYS = {
    'imrnet': (
        'name',
        'depth',
        'widths',
        'streams',
        'connections',
        'connection_conv',
        'connection_attention',
        'i_temporal_strides',
        'p_temporal_strides',
        'dtype',
        'strided_conv',
    ),
    'coviar': (
        'name',
        'streams',
        'widths',
        'num_classes',
        'coviar_iframe_depth',
        'coviar_pframe_depth',
        'coviar_stream_weights',
        'dtype',
    ),
}


def _invalid(key: str, value: Any, allowed: str) -> ValueError:
  return ValueError(f'config.model.{key}={value!r} is not valid; allowed: {allowed}.')


def _choice(key: str, value: Any, allowed: Sequence[Any]) -> Any:
  if isinstance(value, bool) or value not in allowed:
    raise _invalid(key, value, ', '.join(repr(a) for a in allowed))
  return value


def _depth(key: str, value: Any) -> int:
  """10, 18, 34, 50, 101 or 152."""
  if value == 'tiny':  # the name of depth 10 before (runs trained then store it)
    raise _invalid(
        key,
        value,
        f'{", ".join(map(str, _resnet3d.DEPTHS))}; \'tiny\' is now depth 10 with '
        'config.model.widths=(8, 16, 32, 64)',
    )
  if not isinstance(value, int):
    raise _invalid(key, value, ', '.join(map(str, _resnet3d.DEPTHS)))
  return _choice(key, value, tuple(_resnet3d.DEPTHS))


def _bool(key: str, value: Any) -> bool:
  if not isinstance(value, bool):
    raise _invalid(key, value, 'True, False')
  return value


def _streams(value: Any) -> str:
  """The streams in canonical order: 'mi' -> 'im'."""
  if not isinstance(value, str) or not value or not set(value) <= set(_imrnet.STREAMS) or len(set(value)) != len(value):
    raise _invalid('streams', value, "a non-empty string of distinct letters of 'imr', e.g. 'imr', 'i', 'im'")
  return ''.join(stream for stream in _imrnet.STREAMS if stream in value)


def _widths(value: Any) -> tuple[int, ...]:
  """() (the standard widths) or four positive ints for res2..res5."""
  widths = tuple(value)
  if widths and (len(widths) != 4 or not all(isinstance(w, int) and w > 0 for w in widths)):
    raise _invalid(
        'widths',
        value,
        '() for the standard (64, 128, 256, 512), or four positive ints for res2..res5, e.g. (8, 16, 32, 64)',
    )
  return widths


def _temporal_strides(key: str, value: Any) -> tuple[int, ...]:
  strides = tuple(value)
  if len(strides) != 5 or not all(isinstance(s, int) and s >= 1 for s in strides):
    raise _invalid(
        key,
        value,
        'five positive ints, the temporal strides of (stem pool, res2, res3, res4, res5), e.g. (1, 1, 1, 1, 1)',
    )
  return strides


def _coviar_from_config(model_config: Any, dtype: Any, streams: str, data_classes: int | None) -> CoViAR:
  num_classes = model_config.num_classes
  if num_classes == -1 and data_classes is not None:  # -1: the data set's class count
    num_classes = data_classes
  if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
    raise _invalid(
        'num_classes',
        num_classes,
        "a positive int, the dataset's number of classes, or -1 "
        "for the data set's (build_backbone(..., num_classes=N))",
    )
  weights = tuple(model_config.coviar_stream_weights)
  if len(weights) != 3 or not all(isinstance(w, (int, float)) for w in weights):
    raise _invalid(
        'coviar_stream_weights', weights, 'three numbers, the fusion weights of (i, m, r), e.g. (2.0, 1.0, 1.0)'
    )
  return CoViAR(
      num_classes=num_classes,
      streams=streams,
      iframe_depth=_depth('coviar_iframe_depth', model_config.coviar_iframe_depth),
      pframe_depth=_depth('coviar_pframe_depth', model_config.coviar_pframe_depth),
      widths=_widths(model_config.widths),
      stream_weights=tuple(float(w) for w in weights),
      dtype=dtype,
  )


def _imrnet_from_config(model_config: Any, dtype: Any, streams: str) -> IMRNet:
  depth = _depth('depth', model_config.depth)
  return IMRNet(
      depth=depth,
      widths=_widths(model_config.widths),
      streams=streams,
      connections=_choice('connections', model_config.connections, _imrnet.CONNECTION_MODES),
      connection_conv=_bool('connection_conv', model_config.connection_conv),
      connection_attention=_bool('connection_attention', model_config.connection_attention),
      i_temporal_strides=_temporal_strides('i_temporal_strides', model_config.i_temporal_strides),
      p_temporal_strides=_temporal_strides('p_temporal_strides', model_config.p_temporal_strides),
      dtype=dtype,
      strided_conv=_choice('strided_conv', model_config.strided_conv, _resnet3d.STRIDED_CONV_MODES),
  )


def build_backbone(model_config: Any, num_classes: int | None = None) -> nn.Module:
  """IMRNet or CoViAR from `config.model` (an ml_collections.ConfigDict).

  Reads the keys KEYS[config.model.name] lists. `num_classes` is the data set's class count: CoViAR,
  which has its own classifiers, uses it where config.model.num_classes is -1; IMRNet ignores it.
  Returns an unbound module, called as
  `module.apply(variables, iframes=..., motion_vectors=..., residuals=..., train=...)`.
  """
  name = _choice('name', model_config.name, NAMES)
  missing = [key for key in KEYS[name] if key not in model_config]
  if missing:
    raise ValueError(
        f'config.model lacks {missing}, which name={name!r} needs; add them '
        '(configs/default.py lists every key with a comment).'
    )
  dtype = DTYPES[_choice('dtype', model_config.dtype, tuple(DTYPES))]
  streams = _streams(model_config.streams)
  if name == 'coviar':
    return _coviar_from_config(model_config, dtype, streams, num_classes)
  return _imrnet_from_config(model_config, dtype, streams)
