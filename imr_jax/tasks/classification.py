"""Supervised action classification: fine-tuning after pretraining, and training from scratch."""

from typing import Any

import jax
import jax.numpy as jnp

from imr_jax.tasks import base


class ClassificationTask(base.Task):
  """Cross-entropy on the batch's `label`; streams go to the network unchanged."""

  def __init__(self, num_classes: int, dropout_rate: float):
    if not isinstance(num_classes, int) or num_classes < 2:
      raise base.ConfigError(f'Classification needs num_classes >= 2 (the manifest\'s label_names), '
                             f'got {num_classes!r}.')
    if not 0.0 <= dropout_rate < 1.0:
      raise base.ConfigError(f'config.classification.dropout_rate = {dropout_rate}; use [0, 1).')
    self.num_classes = num_classes
    self.dropout_rate = dropout_rate

  def heads(self) -> dict[str, Any]:
    from imr_jax.models import heads  # pylint: disable=g-import-not-at-top
    return {'classifier': heads.ClassifierHead(num_classes=self.num_classes,
                                               dropout_rate=self.dropout_rate)}

  def prepare(self, batch: base.Batch, rng: jax.Array):
    del rng  # no task transform: augmentation happened in the input pipeline
    return base.streams(batch), {'label': jnp.asarray(batch['label'], jnp.int32)}

  def loss_and_metrics(self, outputs, targets, mask):
    """Unlabelled examples (label -1) must carry mask 0; they are not scored."""
    return base.classification_loss_and_metrics(outputs['classifier'], targets['label'],
                                                jnp.asarray(mask, jnp.float32))
