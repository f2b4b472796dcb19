"""Supervised action classification: fine-tuning after pretraining, and training from scratch.

With IMRNet the task adds a classifier head on the backbone's pooled features. CoViAR classifies by
itself (imr_jax/models/coviar.py): each stream has its own classifier ('stream_logits') and the class
scores are their weighted sum ('logits'). As in CoViAR's reference code, where each stream is a
separately trained network, every stream is trained with its own cross-entropy (the loss is their
sum), and accuracy is measured on the fused scores.
"""

from typing import Any

import jax
import jax.numpy as jnp

from imr_jax.tasks import base


class ClassificationTask(base.Task):
  """Cross-entropy on the batch's `label`; streams go to the network unchanged.

  Attributes:
    num_classes: number of action classes.
    dropout_rate: dropout before the classifier head (IMRNet only; CoViAR's classifiers are its own).
    backbone_logits: the backbone classifies by itself (CoViAR): no head is added, the loss is the sum
      of the per-stream cross-entropies on outputs['stream_logits'], and outputs['logits'] (the fused
      scores) are the class scores.
  """

  def __init__(self, num_classes: int, dropout_rate: float, backbone_logits: bool = False):
    if not isinstance(num_classes, int) or num_classes < 2:
      raise base.ConfigError(
          f"Classification needs num_classes >= 2 (the manifest's label_names), " f'got {num_classes!r}.'
      )
    if not 0.0 <= dropout_rate < 1.0:
      raise base.ConfigError(f'config.classification.dropout_rate = {dropout_rate}; use [0, 1).')
    self.num_classes = num_classes
    self.dropout_rate = dropout_rate
    self.backbone_logits = backbone_logits

  def heads(self) -> dict[str, Any]:
    if self.backbone_logits:
      return {}
    from imr_jax.models import heads  # pylint: disable=g-import-not-at-top

    return {'classifier': heads.ClassifierHead(num_classes=self.num_classes, dropout_rate=self.dropout_rate)}

  def class_logits(self, outputs: dict[str, Any]) -> jax.Array:
    """(B, num_classes): the fused CoViAR logits, or the classifier head's."""
    return outputs['logits'] if self.backbone_logits else outputs['classifier']

  def prepare(self, batch: base.Batch, rng: jax.Array):
    del rng  # no task transform: augmentation happened in the input pipeline
    return base.streams(batch), {'label': jnp.asarray(batch['label'], jnp.int32)}

  def loss_and_metrics(self, outputs, targets, mask):
    """Unlabelled examples (label -1) must carry mask 0; they are not scored.

    CoViAR adds per-stream metrics 'loss/<stream>' and 'accuracy/<stream>' (stream in 'i', 'm', 'r');
    its per-example 'loss' is the sum of the streams' and 'accuracy' is that of the fused logits.
    """
    mask = jnp.asarray(mask, jnp.float32)
    labels = targets['label']
    if not self.backbone_logits:
      return base.classification_loss_and_metrics(outputs['classifier'], labels, mask)
    metrics = {'accuracy': base.correct(outputs['logits'], labels)}
    loss, per_example_loss = 0.0, 0.0
    for stream, logits in outputs['stream_logits'].items():
      stream_loss, stream_metrics = base.classification_loss_and_metrics(logits, labels, mask)
      loss += stream_loss
      per_example_loss += stream_metrics['loss']
      metrics[f'loss/{stream}'] = stream_metrics['loss']
      metrics[f'accuracy/{stream}'] = stream_metrics['accuracy']
    metrics['loss'] = per_example_loss
    return loss, metrics
