"""The pretext baselines of the paper on the same network: AOT, Rotation, InfoNCE (METHOD.md section 3).

Image axes: arrays are (..., H, W, C) with row index y growing downwards and column index x growing
to the right, as displayed; MV channel 0 is the x displacement, channel 1 the y displacement, in the
same axes. "Rotate by 90 degrees" means counter-clockwise as displayed (numpy's `rot90` on the
(H, W) axes): the pixel at (y, x) moves to (S - 1 - x, y), and a displacement (dx, dy) becomes
(dy, -dx), so an object moving right (+x) moves up (-y) after the rotation.
"""

from typing import Any

import jax
import jax.numpy as jnp

from imr_jax.data import normalization
from imr_jax.tasks import base

NUM_ROTATIONS = 4


def reverse_time(inputs: base.Streams, reverse: jax.Array) -> base.Streams:
  """Plays the examples selected by `reverse` backwards: every stream's frames in reverse order.

  The P-streams are reversed as a whole (GOP order and order inside each GOP), and the motion
  vectors are negated, since motion played backwards goes the other way.

  Args:
    inputs: network streams, (B, T, H, W, C) each.
    reverse: bool (B,), which examples to reverse.

  Returns:
    The streams, reversed where `reverse` is set, unchanged elsewhere.
  """
  result = {}
  for key, value in inputs.items():
    backwards = jnp.flip(value, axis=1)
    if key == 'motion_vectors':
      backwards = normalization.negate_motion_vectors(backwards)
    result[key] = jnp.where(reverse.reshape(-1, *[1] * (value.ndim - 1)), backwards, value)
  return result


def rotate_motion_vector_components(motion_vectors: jax.Array, quarter_turns: jax.Array) -> jax.Array:
  """Rotates network MV vectors (not their positions) by quarter_turns * 90 degrees counter-clockwise.

  Per quarter turn (dx, dy) -> (dy, -dx), so 0..3 turns give (dx, dy), (dy, -dx), (-dx, -dy), (-dy, dx).

  Args:
    motion_vectors: float32 (B, ..., 2) network MVs.
    quarter_turns: int (B,) in [0, 4).

  Returns:
    float32 (B, ..., 2).
  """
  dx, dy = motion_vectors[..., 0], motion_vectors[..., 1]
  minus_dx, minus_dy = (normalization.negate_motion_vectors(dx), normalization.negate_motion_vectors(dy))
  turns = quarter_turns.reshape(-1, *[1] * (dx.ndim - 1))
  new_dx = jnp.select([turns == 0, turns == 1, turns == 2], [dx, dy, minus_dx], minus_dy)
  new_dy = jnp.select([turns == 0, turns == 1, turns == 2], [dy, minus_dx, minus_dy], dx)
  return jnp.stack([new_dx, new_dy], axis=-1)


def rotate(inputs: base.Streams, quarter_turns: jax.Array) -> base.Streams:
  """Rotates every stream of each example by quarter_turns * 90 degrees counter-clockwise.

  Args:
    inputs: network streams, (B, T, S, S, C) each (square frames).
    quarter_turns: int (B,) in [0, 4), one per example, shared by its streams.

  Returns:
    The rotated streams; motion vectors are also rotated as vectors.

  Raises:
    base.ConfigError: frames that are not square (a rotation by 90 degrees would change the shape).
  """
  result = {}
  for key, value in inputs.items():
    height, width = value.shape[2:4]
    if height != width:
      raise base.ConfigError(
          f'Rotation needs square frames, but {key} has shape {value.shape}: use '
          'square crops (config.data.crop_size).'
      )
    # All four rotations, then a per-example choice: transposes and flips are cheaper than a
    # per-example gather (measured 5.6 vs 26 ms for 8 clips of 25 112x112 frames on CPU).
    candidates = [jnp.rot90(value, k, axes=(2, 3)) for k in range(NUM_ROTATIONS)]
    turns = quarter_turns.reshape(-1, *[1] * (value.ndim - 1))
    rotated = jnp.select([turns == k for k in range(NUM_ROTATIONS - 1)], candidates[:-1], candidates[-1])
    if key == 'motion_vectors':
      rotated = rotate_motion_vector_components(rotated, quarter_turns)
    result[key] = rotated
  return result


class AOTTask(base.Task):
  """Arrow of time: label 0 = played forwards, 1 = played backwards, 50/50 per example."""

  def __init__(self, hidden_dim: int):
    self.hidden_dim = hidden_dim

  def heads(self) -> dict[str, Any]:
    from imr_jax.models import heads  # pylint: disable=g-import-not-at-top

    return {'aot': heads.CTPHead(num_classes=2, hidden_dim=self.hidden_dim)}

  def prepare(self, batch, rng):
    inputs = base.streams(batch)
    backwards = jax.random.bernoulli(rng, 0.5, (inputs['iframes'].shape[0],))
    return reverse_time(inputs, backwards), {'label': backwards.astype(jnp.int32)}

  def loss_and_metrics(self, outputs, targets, mask):
    return base.classification_loss_and_metrics(outputs['aot'], targets['label'], jnp.asarray(mask, jnp.float32))


class RotationTask(base.Task):
  """Rotation: label k = the clip was rotated by k * 90 degrees counter-clockwise, k uniform in 0..3."""

  def __init__(self, hidden_dim: int):
    self.hidden_dim = hidden_dim

  def heads(self) -> dict[str, Any]:
    from imr_jax.models import heads  # pylint: disable=g-import-not-at-top

    return {'rotation': heads.CTPHead(num_classes=NUM_ROTATIONS, hidden_dim=self.hidden_dim)}

  def prepare(self, batch, rng):
    inputs = base.streams(batch)
    quarter_turns = jax.random.randint(rng, (inputs['iframes'].shape[0],), 0, NUM_ROTATIONS)
    return rotate(inputs, quarter_turns), {'label': quarter_turns.astype(jnp.int32)}

  def loss_and_metrics(self, outputs, targets, mask):
    return base.classification_loss_and_metrics(outputs['rotation'], targets['label'], jnp.asarray(mask, jnp.float32))


def info_nce(
    embeddings_1: jax.Array, embeddings_2: jax.Array, mask: jax.Array, temperature: float
) -> tuple[jax.Array, base.Metrics]:
  """Symmetric InfoNCE with in-batch negatives.

  Example b's two views are the positive pair; every other real example of the batch (mask 1) is a
  negative, in both directions (view 1 -> view 2 and view 2 -> view 1).

  Args:
    embeddings_1, embeddings_2: float (B, D), projections of the two views (L2-normalised here).
    mask: float (B,), 1 for real examples; padding is neither scored nor used as a negative.
    temperature: softmax temperature (> 0) of the cosine-similarity logits.

  Returns:
    The scalar loss (mean over real examples of the two directions' mean cross-entropy), and
    per-example 'loss' and 'accuracy' (top-1 retrieval of the positive, averaged over directions).
  """
  z1 = _l2_normalize(embeddings_1.astype(jnp.float32))
  z2 = _l2_normalize(embeddings_2.astype(jnp.float32))
  # similarity[i, j] = cos(view 1 of i, view 2 of j) / temperature; rows of its transpose go 2 -> 1.
  similarity = jnp.einsum('id,jd->ij', z1, z2, precision=jax.lax.Precision.HIGHEST) / temperature
  # Padding columns get a large finite negative, not -inf: an all-padding batch must not give NaN.
  is_candidate = mask[None, :] > 0
  logits_1_to_2 = jnp.where(is_candidate, similarity, -1e9)
  logits_2_to_1 = jnp.where(is_candidate, similarity.T, -1e9)
  positives = jnp.arange(z1.shape[0])
  per_example_loss = 0.5 * (base.cross_entropy(logits_1_to_2, positives) + base.cross_entropy(logits_2_to_1, positives))
  accuracy = 0.5 * (base.correct(logits_1_to_2, positives) + base.correct(logits_2_to_1, positives))
  return base.weighted_mean(per_example_loss, mask), {'loss': per_example_loss, 'accuracy': accuracy}


def _l2_normalize(x: jax.Array) -> jax.Array:
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-12))


class InfoNCETask(base.Task):
  """InfoNCE between two independently sampled and augmented clips of each video."""

  batch_requirements = frozenset({'view2'})

  def __init__(self, temperature: float, dim: int, hidden_dim: int):
    if not temperature > 0:
      raise base.ConfigError(f'config.infonce.temperature = {temperature}; it must be > 0 (e.g. 0.1).')
    self.temperature = temperature
    self.dim = dim
    self.hidden_dim = hidden_dim

  def heads(self) -> dict[str, Any]:
    from imr_jax.models import heads  # pylint: disable=g-import-not-at-top

    return {'projection': heads.ProjectionHead(dim=self.dim, hidden_dim=self.hidden_dim)}

  def prepare(self, batch, rng):
    del rng  # both views were sampled and augmented by the input pipeline
    return [base.streams(batch), base.streams(batch, 'view2')], {}

  def loss_and_metrics(self, outputs, targets, mask):
    del targets  # the positives are the diagonal
    return info_nce(
        outputs[0]['projection'], outputs[1]['projection'], jnp.asarray(mask, jnp.float32), self.temperature
    )
