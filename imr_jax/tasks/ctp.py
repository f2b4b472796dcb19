"""CTP: correspondence type prediction (METHOD.md sections 1 and 3).

The I-frames of a clip are kept; its P-frames (motion vectors and residuals, always together) are
replaced according to a correspondence type sampled uniformly per example, and the network
classifies which type it sees:

  aligned     the clip's own P-frames.
  shifted     the P-frames of another window of the same video, num_gops GOPs starting at least one
              GOP away (the input pipeline supplies them as batch['shifted']).
  shuffled    the clip's own P-frames with the GOPs in a random order that is never the identity
              (the order inside a GOP is kept); needs num_gops >= 2.
  mismatched  the aligned P-frames of another example of the batch: example b takes those of
              (b + offset) mod B for one random offset in [1, B) per batch; needs a batch of >= 2.

CTP (Binary) asks only aligned or not: aligned with probability 1/2, otherwise one of the other
configured types, uniformly.
"""

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from imr_jax.tasks import base

CLASSES = ('aligned', 'shifted', 'shuffled', 'mismatched')
ALIGNED, SHIFTED, SHUFFLED, MISMATCHED = range(4)
MAX_SHUFFLED_GOPS = 12  # 12! < 2**31: permutation indices stay int32


def permutation_from_index(index: jax.Array, n: int) -> jax.Array:
  """Decodes permutation numbers (Lehmer code, lexicographic order) into permutations.

  Args:
    index: int (B,), values in [0, n!); 0 is the identity, n! - 1 the reversal.
    n: permutation length.

  Returns:
    int32 (B, n): the index-th permutation of 0..n-1 in lexicographic order (a bijection).
  """
  index = jnp.asarray(index, jnp.int32)
  available = jnp.ones((index.shape[0], n), bool)
  positions = jnp.arange(n)
  permutation = []
  for i in range(n):
    digit = (index // math.factorial(n - 1 - i)) % (n - i)
    rank = jnp.cumsum(available, axis=1) - 1  # rank of each element among those still available
    choice = jnp.argmax(available & (rank == digit[:, None]), axis=1)
    permutation.append(choice)
    available = available & (positions != choice[:, None])
  return jnp.stack(permutation, axis=1).astype(jnp.int32)


def sample_nonidentity_permutations(rng: jax.Array, batch_size: int, n: int) -> jax.Array:
  """int32 (batch_size, n): permutations drawn uniformly from the n! - 1 that are not the identity."""
  if not 2 <= n <= MAX_SHUFFLED_GOPS:
    raise base.ConfigError(f'CTP shuffled needs 2 <= num_gops <= {MAX_SHUFFLED_GOPS}, got {n}.')
  return permutation_from_index(jax.random.randint(rng, (batch_size,), 1, math.factorial(n)), n)


def sample_mismatch_offset(rng: jax.Array, batch_size: int) -> jax.Array:
  """int32 scalar in [1, batch_size): example b is mismatched with example (b + offset) mod B."""
  if batch_size < 2:
    raise base.ConfigError(
        'CTP mismatched takes P-frames from another example of the batch, but the batch has one '
        'example: use a per-device batch of at least 2, or drop "mismatched" from config.ctp.classes.'
    )
  return jax.random.randint(rng, (), 1, batch_size)


def correspond(
    per_gop: dict[str, jax.Array],
    shifted_per_gop: dict[str, jax.Array] | None,
    kinds: jax.Array,
    gop_orders: jax.Array,
    mismatch_offset: jax.Array,
) -> dict[str, jax.Array]:
  """Applies each example's correspondence type to GOP-major arrays, all keys alike.

  Args:
    per_gop: {key: (B, G, ...)} P-frame data split by GOP (MVs, residuals, motion energy, ...).
    shifted_per_gop: the same keys for the shifted window, or None when no example is shifted.
    kinds: int (B,), a type per example (ALIGNED, SHIFTED, SHUFFLED or MISMATCHED).
    gop_orders: int (B, G), GOP order used by shuffled examples (ignored by the others).
    mismatch_offset: int scalar in [1, B), used by mismatched examples.

  Returns:
    {key: (B, G, ...)}: out[b, g] = per_gop[source_b, order_b[g]] (source_b = b, or (b + offset)
    mod B when mismatched; order_b = gop_orders[b] when shuffled, else the identity), and
    out[b] = shifted_per_gop[b] when shifted.
  """
  batch_size, num_gops = gop_orders.shape
  examples = jnp.arange(batch_size)
  source = jnp.where(kinds == MISMATCHED, (examples + mismatch_offset) % batch_size, examples)
  order = jnp.where((kinds == SHUFFLED)[:, None], gop_orders, jnp.arange(num_gops)[None, :])
  result = {}
  for key, value in per_gop.items():
    result[key] = value[source[:, None], order]  # one gather for aligned, shuffled and mismatched
    if shifted_per_gop is not None:
      is_shifted = (kinds == SHIFTED).reshape(-1, *[1] * (value.ndim - 1))
      result[key] = jnp.where(is_shifted, shifted_per_gop[key], result[key])
  return result


class CTPTask(base.Task):
  """CTP over the configured types (label = index in `classes`), or CTP (Binary) (1 = not aligned)."""

  def __init__(self, classes: Sequence[str], hidden_dim: int, num_gops: int, binary: bool):
    classes = tuple(classes)
    unknown = [c for c in classes if c not in CLASSES]
    if unknown or len(set(classes)) != len(classes) or len(classes) < 2:
      raise base.ConfigError(f'config.ctp.classes = {classes}: use at least two distinct names from {CLASSES}.')
    if binary and 'aligned' not in classes:
      raise base.ConfigError(
          f'CTP (Binary) asks "aligned or not", but config.ctp.classes = {classes} has no "aligned".'
      )
    if 'shuffled' in classes and not 2 <= num_gops <= MAX_SHUFFLED_GOPS:
      raise base.ConfigError(
          f'CTP "shuffled" permutes the GOPs of a clip, impossible with config.data.num_gops = '
          f'{num_gops}: use 2 <= num_gops <= {MAX_SHUFFLED_GOPS} or drop "shuffled" from '
          'config.ctp.classes.'
      )
    self.classes = classes
    self.hidden_dim = hidden_dim
    self.num_gops = num_gops
    self.binary = binary
    self.batch_requirements = frozenset({'shifted'} if 'shifted' in classes else ())

  @property
  def num_classes(self) -> int:
    return 2 if self.binary else len(self.classes)

  def heads(self) -> dict[str, Any]:
    from imr_jax.models import heads  # pylint: disable=g-import-not-at-top

    return {'ctp': heads.CTPHead(num_classes=self.num_classes, hidden_dim=self.hidden_dim)}

  def sample_kinds(self, rng: jax.Array, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """Returns (kinds, labels), int32 (B,) each: the type applied and the class the head must predict."""
    kind_of_class = jnp.array([CLASSES.index(c) for c in self.classes], jnp.int32)
    if not self.binary:
      labels = jax.random.randint(rng, (batch_size,), 0, len(self.classes))
      return kind_of_class[labels], labels.astype(jnp.int32)
    others = jnp.array([CLASSES.index(c) for c in self.classes if c != 'aligned'], jnp.int32)
    rng_aligned, rng_other = jax.random.split(rng)
    not_aligned = jax.random.bernoulli(rng_aligned, 0.5, (batch_size,))
    other = others[jax.random.randint(rng_other, (batch_size,), 0, others.shape[0])]
    return jnp.where(not_aligned, other, ALIGNED).astype(jnp.int32), not_aligned.astype(jnp.int32)

  def transform(self, batch: base.Batch, rng: jax.Array, with_motion_energy: bool = False):
    """Samples and applies the correspondence types.

    Returns:
      (streams, targets, extra): the network inputs; {'label', 'kind'} int32 (B,); and, with
      `with_motion_energy`, {'motion_energy': (B, G, S, S) energy of the P-frames now shown,
      'motion_energy_valid': float32 (B,), 0 for shifted examples when the batch has no
      batch['shifted']['motion_energy']}.
    """
    base.check_num_gops(batch, self.num_gops)
    inputs = base.streams(batch)
    batch_size = inputs['iframes'].shape[0]
    rng_kinds, rng_orders, rng_offset = jax.random.split(rng, 3)
    kinds, labels = self.sample_kinds(rng_kinds, batch_size)
    if 'shuffled' in self.classes:
      gop_orders = sample_nonidentity_permutations(rng_orders, batch_size, self.num_gops)
    else:
      gop_orders = jnp.broadcast_to(jnp.arange(self.num_gops), (batch_size, self.num_gops))
    offset = (
        sample_mismatch_offset(rng_offset, batch_size) if 'mismatched' in self.classes else jnp.zeros((), jnp.int32)
    )

    per_gop = {k: base.p_stream_gops(inputs[k], self.num_gops) for k in base.P_STREAM_KEYS}
    shifted = None
    shifted_batch = batch.get('shifted', {})
    if 'shifted' in self.classes:
      missing = [k for k in base.P_STREAM_KEYS if k not in shifted_batch]
      if missing:
        raise KeyError(
            f"CTP 'shifted' needs batch['shifted'][{missing}]: build the input pipeline with "
            "extras=task.batch_requirements (it holds 'shifted')."
        )
      shifted = {
          k: base.p_stream_gops(jnp.asarray(shifted_batch[k], jnp.float32), self.num_gops) for k in base.P_STREAM_KEYS
      }
    extra = {}
    if with_motion_energy:
      per_gop['motion_energy'] = jnp.asarray(batch['motion_energy'], jnp.float32)
      has_shifted_energy = 'motion_energy' in shifted_batch
      if shifted is not None:
        shifted['motion_energy'] = (
            jnp.asarray(shifted_batch['motion_energy'], jnp.float32)
            if has_shifted_energy
            else jnp.zeros_like(per_gop['motion_energy'])
        )
      unknown_energy = (kinds == SHIFTED) & (not has_shifted_energy)
      extra['motion_energy_valid'] = jnp.where(unknown_energy, 0.0, 1.0)
    moved = correspond(per_gop, shifted, kinds, gop_orders, offset)
    for key in base.P_STREAM_KEYS:
      inputs[key] = moved[key].reshape(inputs[key].shape)
    if with_motion_energy:
      extra['motion_energy'] = moved['motion_energy']
    return inputs, {'label': labels, 'kind': kinds}, extra

  def prepare(self, batch: base.Batch, rng: jax.Array):
    inputs, targets, _ = self.transform(batch, rng)
    return inputs, targets

  def loss_and_metrics(self, outputs, targets, mask):
    return base.classification_loss_and_metrics(outputs['ctp'], targets['label'], jnp.asarray(mask, jnp.float32))
