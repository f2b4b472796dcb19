"""The Task interface (DESIGN.md section 5) and the pieces every task shares.

A task turns a batch (DESIGN.md section 3) into network inputs and targets, names the heads it needs,
and scores the heads' outputs. Every method is a pure function of its arguments and traces under
`jax.jit`: shapes are static, randomness comes only from the `rng` argument.
"""

import abc
from typing import Any, Mapping

import jax
import jax.numpy as jnp

Array = jax.Array
Batch = Mapping[str, Any]  # numpy or jax arrays, keys as in DESIGN.md section 3
Streams = dict[str, Array]  # {'iframes', 'motion_vectors', 'residuals'}
Metrics = dict[str, Array]  # metric name -> per-example (B,) float32

STREAM_KEYS = ('iframes', 'motion_vectors', 'residuals')
P_STREAM_KEYS = ('motion_vectors', 'residuals')


class ConfigError(ValueError):
  """A config value (or a batch shape it implies) that a task cannot work with."""


class Task(abc.ABC):
  """A training objective: labels and input transforms, the heads it needs, its loss."""

  # Optional batch keys the input pipeline must add: a subset of {'shifted', 'view2'}.
  batch_requirements: frozenset[str] = frozenset()

  @abc.abstractmethod
  def heads(self) -> dict[str, Any]:
    """The heads the task reads, name -> flax module; the names key the model's outputs."""

  @abc.abstractmethod
  def prepare(self, batch: Batch, rng: Array) -> tuple[Any, Any]:
    """Returns (inputs, targets): network inputs (a Streams dict) and what the loss compares with."""

  @abc.abstractmethod
  def loss_and_metrics(self, outputs: Any, targets: Any, mask: Array) -> tuple[Array, Metrics]:
    """Returns (scalar loss over the examples with mask 1, per-example (B,) metrics)."""

  def class_logits(self, outputs: Any) -> Array | None:
    """The (B, num_classes) action class scores (logits) in the model's outputs; None for a task
    that does not classify actions (the pretext tasks). Evaluation averages their softmax per video."""
    del outputs
    return None


def streams(batch: Batch, extra: str | None = None) -> Streams:
  """The three network input streams of a batch, or of its optional part `extra` ('view2'), as float32."""
  fields = batch.get(extra, {}) if extra else batch
  missing = [key for key in STREAM_KEYS if key not in fields]
  if missing:
    where = f'batch[{extra!r}]' if extra else 'The batch'
    raise KeyError(
        f'{where} has no {missing}; the batch has {sorted(batch)}. Ask the input pipeline '
        'for them (task.batch_requirements lists the optional parts a task needs).'
    )
  return {key: jnp.asarray(fields[key], jnp.float32) for key in STREAM_KEYS}


def cross_entropy(logits: Array, labels: Array) -> Array:
  """Softmax cross-entropy with integer labels.

  Args:
    logits: float (..., K).
    labels: int (...), in [0, K); out-of-range labels (e.g. -1 for unlabelled padding) give a
      finite but meaningless value, so callers weight them by 0.

  Returns:
    float32 (...), -log softmax(logits)[label].
  """
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  safe_labels = jnp.clip(labels, 0, logits.shape[-1] - 1)
  return -jnp.take_along_axis(log_probs, safe_labels[..., None], axis=-1)[..., 0]


def correct(logits: Array, labels: Array) -> Array:
  """float32 (...): 1 where the top-scoring class (the first on ties) is the label, else 0."""
  return (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)


def weighted_mean(values: Array, weights: Array) -> Array:
  """sum(values * weights) / sum(weights), and 0 when all weights are 0 (an all-padding batch)."""
  weights = jnp.broadcast_to(weights.astype(jnp.float32), values.shape)
  return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1e-12)


def classification_loss_and_metrics(logits: Array, labels: Array, mask: Array) -> tuple[Array, Metrics]:
  """Cross-entropy loss and per-example {'loss', 'accuracy'} of (B, K) logits vs (B,) labels."""
  per_example_loss = cross_entropy(logits, labels)
  metrics = {'loss': per_example_loss, 'accuracy': correct(logits, labels)}
  return weighted_mean(per_example_loss, mask), metrics


def p_stream_gops(p_stream: Array, num_gops: int) -> Array:
  """(B, T_P, ...) GOP-major P-stream -> (B, num_gops, T_P // num_gops, ...)."""
  batch_size, num_pframes = p_stream.shape[:2]
  if num_pframes % num_gops:
    raise ConfigError(
        f'A P-stream of {num_pframes} frames does not split into {num_gops} GOPs; the '
        'batch must hold num_gops * p_per_gop P-frames (DESIGN.md section 3).'
    )
  return p_stream.reshape(batch_size, num_gops, num_pframes // num_gops, *p_stream.shape[2:])


def check_num_gops(batch: Batch, num_gops: int) -> None:
  """Raises ConfigError unless the batch's I-stream holds config.data.num_gops frames."""
  found = batch['iframes'].shape[1]
  if found != num_gops:
    raise ConfigError(
        f'The batch holds {found} GOPs per clip (iframes {batch["iframes"].shape}) but '
        f'config.data.num_gops = {num_gops}; build the task and the input pipeline from '
        'the same config.'
    )
