"""PMSP + CTP trained jointly on one forward pass.

CTP replaces the P-frames of some clips, so PMSP's labels must follow the P-frames the network now
sees: the per-GOP motion energy is moved with them (permuted with a shuffled clip's GOPs, taken from
the other example for a mismatched one). A shifted clip's energy comes from the batch's
batch['shifted']['motion_energy'] when the input pipeline provides it; otherwise those clips are left out of
the PMSP loss (their energy is unknown), and still count for CTP.
"""

from typing import Any

import jax

from imr_jax.tasks import base
from imr_jax.tasks import ctp
from imr_jax.tasks import pmsp


class PMSPCTPTask(base.Task):
  """loss = pmsp_weight * PMSP loss + ctp_weight * CTP loss; metrics prefixed 'pmsp/' and 'ctp/'."""

  def __init__(self, pmsp_task: pmsp.PMSPTask, ctp_task: ctp.CTPTask, pmsp_weight: float, ctp_weight: float):
    self.pmsp = pmsp_task
    self.ctp = ctp_task
    self.pmsp_weight = pmsp_weight
    self.ctp_weight = ctp_weight
    self.batch_requirements = ctp_task.batch_requirements

  def heads(self) -> dict[str, Any]:
    return {**self.pmsp.heads(), **self.ctp.heads()}

  def prepare(self, batch: base.Batch, rng: jax.Array):
    inputs, ctp_targets, moved = self.ctp.transform(batch, rng, with_motion_energy=True)
    pmsp_targets = pmsp.targets(moved['motion_energy'], self.pmsp.levels, example_valid=moved['motion_energy_valid'])
    return inputs, {'pmsp': pmsp_targets, 'ctp': ctp_targets}

  def loss_and_metrics(self, outputs, targets, mask):
    pmsp_loss, pmsp_metrics = self.pmsp.loss_and_metrics(outputs, targets['pmsp'], mask)
    ctp_loss, ctp_metrics = self.ctp.loss_and_metrics(outputs, targets['ctp'], mask)
    metrics = {**{f'pmsp/{k}': v for k, v in pmsp_metrics.items()}, **{f'ctp/{k}': v for k, v in ctp_metrics.items()}}
    metrics['loss'] = self.pmsp_weight * metrics['pmsp/loss'] + self.ctp_weight * metrics['ctp/loss']
    return self.pmsp_weight * pmsp_loss + self.ctp_weight * ctp_loss, metrics
