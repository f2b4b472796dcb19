"""Training and evaluation metrics as `clu.metrics.Collection`s, built inside the jitted steps.

The metric names depend on the task (a PMSP run reports one accuracy per pyramid level, CTP one
accuracy, classification a clip accuracy), so the Collection class is made from the names the task
returns, once per name set (cached, so every step of a run merges into the same class).
Only `Average` is used: `clu.metrics.Std` is broken on the pinned jax.
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
from clu import metrics as clu_metrics


@functools.cache
def collection_class(names: tuple[str, ...]) -> type[clu_metrics.Collection]:
  """A Collection with one masked `Average` per name (cached: the same names give the same class).

  Task metric names may hold characters a dataclass field cannot ('accuracy/2x2_5'); fields get
  identifier-safe names and `metric_names` maps them back.
  """
  fields = {re.sub(r'\W', '_', name): clu_metrics.Average.from_output(name) for name in names}
  if len(fields) != len(names):
    raise ValueError(f'Metric names {names} collide once made identifiers; rename them.')
  cls = clu_metrics.Collection.create(**fields)
  cls.metric_names = {re.sub(r'\W', '_', name): name for name in names}
  return cls


def make_collection(
    per_example: dict[str, jax.Array], mask: jax.Array, scalars: dict[str, jax.Array] | None = None
) -> clu_metrics.Collection:
  """Averages per-example metrics over the real examples (jit-able).

  Args:
    per_example: name -> float (B,) values (for example 0/1 correctness, or per-example losses).
    mask: float (B,), 1 for real examples and 0 for padding; padding is left out of the averages.
    scalars: name -> float () per-batch values (loss, learning rate, gradient norm); each counts once
      per real example of its batch, so a padded last evaluation batch weighs what it holds.
  Returns:
    A Collection whose `.compute()` gives each metric's mean; merge steps with `.merge()`.
  """
  scalars = scalars or {}
  overlap = set(per_example) & set(scalars)
  if overlap:
    raise ValueError(f'Metric names {sorted(overlap)} are both per-example and scalar.')
  values = {name: jnp.asarray(value, jnp.float32) for name, value in per_example.items()}
  values.update(
      {name: jnp.broadcast_to(jnp.asarray(value, jnp.float32), mask.shape) for name, value in scalars.items()}
  )
  return collection_class(tuple(sorted(values))).single_from_model_output(mask=mask, **values)


def compute(collection: clu_metrics.Collection, prefix: str = '') -> dict[str, float]:
  """The collection's means as Python floats, names prefixed (e.g. 'train_', 'eval_')."""
  names = type(collection).metric_names
  return {prefix + names[field]: float(np.asarray(value)) for field, value in collection.compute().items()}


def video_accuracy(
    scores: np.ndarray, video_index: np.ndarray, labels: np.ndarray, mask: np.ndarray
) -> tuple[float, int]:
  """Video-level accuracy: each video's class scores averaged over all its views, then argmax.

  Args:
    scores: float (N, num_classes) per-view class probabilities (N views of all videos, any order).
    video_index: int (N,) which video each view belongs to (-1 for padding).
    labels: int (N,) the view's video label.
    mask: float (N,) 1 for real views, 0 for padding.
  Returns:
    (accuracy in [0, 1], number of videos).
  """
  real = (mask > 0) & (video_index >= 0)
  scores, video_index, labels = scores[real], video_index[real], labels[real]
  if not len(video_index):
    raise ValueError('Evaluation saw no real examples; is the eval split empty?')
  videos, inverse = np.unique(video_index, return_inverse=True)
  summed = np.zeros((len(videos), scores.shape[1]), np.float64)
  np.add.at(summed, inverse, scores)
  video_labels = np.full(len(videos), -1, np.int64)
  video_labels[inverse] = labels
  # All views of a video carry its label; a disagreement means the pipeline mixed up video indices.
  if np.any(video_labels[inverse] != labels):
    raise ValueError('Views of one video_index carry different labels; the eval pipeline is inconsistent.')
  return float(np.mean(summed.argmax(axis=1) == video_labels)), len(videos)
