"""A backbone with named heads on its pooled features, in one module (one forward pass for all)."""

from typing import Any, Mapping, Optional

import flax.linen as nn
import jax.numpy as jnp


class _Heads(nn.Module):
  """Holds the heads so that their parameters sit under 'heads/{name}'."""

  heads: Mapping[str, nn.Module]

  @nn.compact
  def __call__(self, features: jnp.ndarray, train: bool) -> dict[str, Any]:
    # Re-created under this scope with the user's names (Flax would otherwise name dict entries
    # 'heads_{name}' at the parent's level).
    return {name: head.clone(parent=self, name=name)(features, train) for name, head in self.heads.items()}


class MultiHeadModel(nn.Module):
  """backbone + heads. Parameters: {'backbone': ..., 'heads': {name: ...}}.

  Attributes:
    backbone: IMRNet or CoViAR (anything returning a dict with 'features' (B, D)).
    heads: name -> head module, each called as head(features, train).
  """

  backbone: nn.Module
  heads: Mapping[str, nn.Module]

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
    """Returns the backbone's outputs ('features', per-stream, ...) plus {name: head output}."""
    outputs = dict(
        self.backbone(
            iframes=iframes,
            motion_vectors=motion_vectors,
            residuals=residuals,
            train=train,
            return_stages=return_stages,
        )
    )
    clashes = set(self.heads) & set(outputs)
    if clashes:
      raise ValueError(f'Head names {sorted(clashes)} clash with backbone outputs {sorted(outputs)}; rename the heads.')
    unbound = {name: head.clone(parent=None) for name, head in self.heads.items()}
    outputs.update(_Heads(unbound, name='heads')(outputs['features'], train))
    return outputs
