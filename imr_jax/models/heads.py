"""Heads that read the backbone's pooled features (B, D) and return float32 logits or embeddings.

All heads are called as `head(features, train)`; only ClassifierHead uses `train` (its dropout then
needs a 'dropout' rng). They compute in float32: they are tiny, and losses read their outputs.
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp


def pmsp_level_name(grid_size: int, temporal_bins: int) -> str:
  """The output key of PMSP level ([s x s], t), e.g. '2x2_5'."""
  return f'{grid_size}x{grid_size}_{temporal_bins}'


class MLP(nn.Module):
  """Dense(hidden_dim) -> ReLU -> Dense(out_dim)."""

  hidden_dim: int
  out_dim: int

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    x = nn.relu(nn.Dense(self.hidden_dim, name='hidden')(x))
    return nn.Dense(self.out_dim, name='output')(x)


class ClassifierHead(nn.Module):
  """Dropout then a linear layer: (B, D) -> logits (B, num_classes)."""

  num_classes: int
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, features: jnp.ndarray, train: bool) -> jnp.ndarray:
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(features.astype(jnp.float32))
    return nn.Dense(self.num_classes, name='output')(x)


class PMSPHead(nn.Module):
  """One 2-layer MLP per pyramid level ([s x s], t): (B, D) -> {'sxs_t': logits (B, t, s * s)}.

  Cell k of a bin's logits is the grid cell in raster order (row-major, 0-based).

  Attributes:
    levels: (grid_size s, temporal_bins t) pairs.
    hidden_dim: hidden units of each level's MLP.
  """

  levels: Sequence[tuple[int, int]]
  hidden_dim: int = 512

  @nn.compact
  def __call__(self, features: jnp.ndarray, train: bool) -> dict[str, jnp.ndarray]:
    del train  # no dropout or batch norm
    x = features.astype(jnp.float32)
    outputs = {}
    for grid_size, temporal_bins in self.levels:
      name = pmsp_level_name(grid_size, temporal_bins)
      if name in outputs:
        raise ValueError(
            f'PMSP level ({grid_size}, {temporal_bins}) is listed twice in '
            f'{self.levels}; list each (grid_size, temporal_bins) once.'
        )
      logits = MLP(self.hidden_dim, temporal_bins * grid_size * grid_size, name=name)(x)
      outputs[name] = logits.reshape(x.shape[0], temporal_bins, grid_size * grid_size)
    return outputs


class CTPHead(nn.Module):
  """2-layer MLP: (B, D) -> logits (B, num_classes) over correspondence types."""

  num_classes: int
  hidden_dim: int = 512

  @nn.compact
  def __call__(self, features: jnp.ndarray, train: bool) -> jnp.ndarray:
    del train
    return MLP(self.hidden_dim, self.num_classes, name='mlp')(features.astype(jnp.float32))


class ProjectionHead(nn.Module):
  """2-layer MLP: (B, D) -> embedding (B, dim), not normalised (the contrastive loss does that)."""

  dim: int = 128
  hidden_dim: int = 512

  @nn.compact
  def __call__(self, features: jnp.ndarray, train: bool) -> jnp.ndarray:
    del train
    return MLP(self.hidden_dim, self.dim, name='mlp')(features.astype(jnp.float32))
