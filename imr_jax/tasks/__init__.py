"""Training objectives: labels, input transforms and losses as pure, jit-able functions.

`build_task(config, num_classes=...)` returns the task named by `config.task.name`; every task has
`heads()`, `batch_requirements`, `prepare(batch, rng)`, `loss_and_metrics(outputs, targets, mask)` and
`class_logits(outputs)` (DESIGN.md section 5).
"""

import ml_collections

from imr_jax.tasks.base import ConfigError
from imr_jax.tasks.base import Task
from imr_jax.tasks.baselines import AOTTask
from imr_jax.tasks.baselines import InfoNCETask
from imr_jax.tasks.baselines import RotationTask
from imr_jax.tasks.classification import ClassificationTask
from imr_jax.tasks.ctp import CTPTask
from imr_jax.tasks.multitask import PMSPCTPTask
from imr_jax.tasks.pmsp import PMSPTask
from imr_jax.tasks import pmsp as _pmsp

TASK_NAMES = ('pmsp', 'ctp', 'ctp_binary', 'pmsp_ctp', 'aot', 'rotation', 'infonce', 'classification')


def build_task(config: ml_collections.ConfigDict, num_classes: int | None = None) -> Task:
  """Builds the task named by config.task.name.

  Args:
    config: the experiment config (configs/default.py); only the named task's keys are read.
    num_classes: number of action classes, from the dataset's manifest at run time; required by
      'classification', ignored by the pretext tasks.

  Raises:
    ConfigError: an unknown task name, or a config value the task cannot work with.
  """
  name = config.task.name
  if name == 'pmsp':
    return _build_pmsp(config)
  if name in ('ctp', 'ctp_binary'):
    return _build_ctp(config, binary=name == 'ctp_binary')
  if name == 'pmsp_ctp':
    return PMSPCTPTask(
        _build_pmsp(config),
        _build_ctp(config, binary=False),
        pmsp_weight=config.pmsp.loss_weight,
        ctp_weight=config.ctp.loss_weight,
    )
  if name == 'aot':
    return AOTTask(hidden_dim=config.aot.hidden_dim)
  if name == 'rotation':
    return RotationTask(hidden_dim=config.rotation.hidden_dim)
  if name == 'infonce':
    return InfoNCETask(
        temperature=config.infonce.temperature, dim=config.infonce.dim, hidden_dim=config.infonce.hidden_dim
    )
  if name == 'classification':
    if num_classes is None:
      raise ConfigError(
          'The classification task needs num_classes: pass '
          "build_task(config, num_classes=len(manifest['label_names']))."
      )
    coviar = config.model.name == 'coviar'
    if coviar and config.model.num_classes not in (-1, num_classes):
      raise ConfigError(
          f'config.model.num_classes = {config.model.num_classes}, but the data set has '
          f"{num_classes} classes; CoViAR's own logits are the class scores, so leave it "
          "at -1 (the data set's count)."
      )
    return ClassificationTask(
        num_classes=num_classes, dropout_rate=config.classification.dropout_rate, backbone_logits=coviar
    )
  raise ConfigError(f'config.task.name = {name!r} is not a task; choose from {TASK_NAMES}.')


def _build_pmsp(config: ml_collections.ConfigDict) -> PMSPTask:
  levels = _pmsp.pyramid(config.pmsp.grid_sizes, config.pmsp.temporal_bins, config.data.num_gops)
  return PMSPTask(
      levels, hidden_dim=config.pmsp.hidden_dim, label_mode=config.pmsp.label_mode, num_gops=config.data.num_gops
  )


def _build_ctp(config: ml_collections.ConfigDict, binary: bool) -> CTPTask:
  return CTPTask(
      classes=config.ctp.classes, hidden_dim=config.ctp.hidden_dim, num_gops=config.data.num_gops, binary=binary
  )
