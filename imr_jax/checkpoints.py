"""Checkpoints through orbax: periodic async saves, keep-N, restore-or-init, strict pretrained loading.

A run's checkpoints live in WORKDIR/checkpoints/<step>/. A killed run restarts from its latest complete
checkpoint (orbax writes to a temporary directory and renames it when complete, so a half-written save is
never restored). Fine-tuning loads another run's weights with `load_pretrained`, which is strict: every
parameter or batch statistic that differs in name, shape or dtype raises, except the paths matched by
explicit `dont_load` patterns (the pretext heads).

Preemption: TPU VMs, SLURM and Kubernetes send SIGTERM some seconds before they take a machine.
`PreemptionWatch` tells the training loop at which step to save and stop, the same step on every host.
"""

import logging as python_logging
import re
import signal
import threading
from typing import Any

import flax
import jax
from etils import epath
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.sharding import Sharding

from imr_jax import preflight

CHECKPOINT_SUBDIR = preflight.CHECKPOINT_SUBDIR


def make_manager(workdir: str, *, keep: int, read_only: bool = False) -> ocp.CheckpointManager:
  """A CheckpointManager for WORKDIR/checkpoints keeping the `keep` latest steps, saving asynchronously."""
  directory = epath.Path(preflight.absolute(workdir)) / CHECKPOINT_SUBDIR
  if read_only and not directory.is_dir():
    raise FileNotFoundError(
        f'No checkpoints in {workdir!r} (expected {directory}); pass the workdir of a finished or running '
        'training run.'
    )
  if read_only:
    options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0)
  else:
    # A process killed mid-save leaves a temporary folder; the next start removes it.
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, enable_async_checkpointing=True, cleanup_tmp_directories=True
    )
  return ocp.CheckpointManager(directory, options=options, item_handlers=ocp.StandardCheckpointHandler())


def save(manager: ocp.CheckpointManager, step: int, state: Any) -> None:
  """Starts an asynchronous save of `state` at `step` (call `manager.wait_until_finished()` before exit)."""
  manager.save(step, args=ocp.args.StandardSave(state), force=True)


def restore_or_init(manager: ocp.CheckpointManager, init_state: Any) -> tuple[Any, int]:
  """Restores the latest checkpoint into the structure, shardings and dtypes of `init_state`.

  Args:
    manager: the run's checkpoint manager.
    init_state: a freshly initialised state (concrete or jax.ShapeDtypeStruct leaves with shardings);
      it is the abstract target of the restore, and the return value when there is no checkpoint.
  Returns:
    (state, step): the restored state and its step, or (init_state, 0).
  """
  step = manager.latest_step()
  if step is None:
    return init_state, 0
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, init_state)
  return manager.restore(step, args=ocp.args.StandardRestore(abstract)), step


def restore_raw(workdir: str, sharding: Sharding, step: int | None = None) -> tuple[dict[str, Any], int]:
  """Restores a checkpoint without knowing its structure (nested dicts), every array on `sharding`.

  Used to read another run's weights, whatever its task and optimizer were.
  """
  manager = make_manager(workdir, keep=1, read_only=True)
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f'{workdir!r} holds no complete checkpoint; did its training run save one?')
  metadata = manager.item_metadata(step)
  metadata = getattr(metadata, 'tree', metadata)
  abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding), metadata)
  restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
  manager.close()
  return restored, step


class Preempted(Exception):
  """The run was told to stop (SIGTERM) and saved a checkpoint at `step`; rerunning it continues."""

  def __init__(self, step: int, workdir: str):
    super().__init__(
        f'Preempted (SIGTERM): saved a checkpoint at step {step} in {workdir}; run the same '
        'command again to continue from it.'
    )
    self.step = step


class PreemptionWatch:
  """Whether the run has been told to stop, at the same step on every host.

  Multi-host (jax.distributed initialised): JAX's preemption service, through orbax's
  `CheckpointManager.reached_preemption`. The notice (SIGTERM by default) reaching any host is
  propagated to all, and each returns True at the same step (the step after the largest any host had
  reached), so every host saves that step. One process has no one to agree with: a SIGTERM handler
  sets a flag, read at the next step. Use as a context manager; the previous handler is restored.
  """

  def __init__(self):
    self._notice = False
    self._previous = None

  def __enter__(self) -> 'PreemptionWatch':
    if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
    return self

  def __exit__(self, *exc_info) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None

  def _on_sigterm(self, signum, frame) -> None:
    del signum, frame
    self._notice = True

  def reached(self, step: int, manager: ocp.CheckpointManager) -> bool:
    """True when the run must save `step` and stop; call it at every step, on every host."""
    if jax.process_count() > 1:
      return manager.reached_preemption(step)
    return self._notice


def flatten(tree: Any) -> dict[str, Any]:
  """{'a': {'b': x}} -> {'a/b': x}."""
  return {'/'.join(path): value for path, value in flax.traverse_util.flatten_dict(flax.core.unfreeze(tree)).items()}


def merge_strict(target: Any, source: Any, dont_load: tuple[str, ...], what: str) -> Any:
  """Replaces `target`'s leaves by `source`'s; raises on any mismatch not matched by `dont_load`.

  Args:
    target: nested dict of arrays: the freshly initialised tree (it fixes structure and dtypes).
    source: nested dict of arrays: the pretrained tree.
    dont_load: regular expressions; a path (e.g. 'heads/pmsp/Dense_0/kernel') that fully matches one
      keeps its initial value in target and is ignored in source.
    what: name of the collection for error messages ('params', 'batch_stats').
  Returns:
    target with every loadable leaf taken from source.
  """
  patterns = [re.compile(p) for p in dont_load]
  skipped = lambda path: any(p.fullmatch(path) for p in patterns)
  target_flat, source_flat = flatten(target), flatten(source)
  missing = sorted(p for p in target_flat if p not in source_flat and not skipped(p))
  unexpected = sorted(p for p in source_flat if p not in target_flat and not skipped(p))
  mismatched = sorted(
      f'{p}: checkpoint {source_flat[p].shape} {source_flat[p].dtype}, '
      f'model {target_flat[p].shape} {target_flat[p].dtype}'
      for p in target_flat
      if p in source_flat
      and not skipped(p)
      and (source_flat[p].shape != target_flat[p].shape or source_flat[p].dtype != target_flat[p].dtype)
  )
  if missing or unexpected or mismatched:
    lines = [f'Pretrained {what} do not match the model (config.dont_load={tuple(dont_load)}):']
    lines += [f'  missing from checkpoint: {p}' for p in missing]
    lines += [f'  not in model: {p}' for p in unexpected]
    lines += [f'  shape/dtype: {m}' for m in mismatched]
    lines.append(
        'Use the same config.model as the pretraining run, or add a dont_load pattern for '
        'parameters that are meant to be re-initialised.'
    )
    raise ValueError('\n'.join(lines))
  merged = {p: (value if skipped(p) else source_flat[p]) for p, value in target_flat.items()}
  return flax.traverse_util.unflatten_dict({tuple(p.split('/')): v for p, v in merged.items()})


def load_pretrained(
    init_from: str, params: Any, batch_stats: Any, dont_load: tuple[str, ...], sharding: Sharding
) -> tuple[Any, Any, int]:
  """Loads the latest checkpoint of workdir `init_from` into (params, batch_stats), strictly.

  Returns:
    (params, batch_stats, pretraining step). Leaves matched by `dont_load` keep their given values.
  """
  restored, step = restore_raw(init_from, sharding)
  for key in ('params', 'batch_stats'):
    if key not in restored:
      raise ValueError(f'Checkpoint of {init_from!r} holds no {key!r}; is it a training workdir of this project?')
  params = merge_strict(params, restored['params'], dont_load, 'params')
  batch_stats = merge_strict(batch_stats, restored['batch_stats'] or {}, dont_load, 'batch_stats')
  return params, batch_stats, step


def checksum(tree: Any) -> float:
  """Sum of all leaves in float64 (a cheap fingerprint for logs and tests)."""
  return float(sum(np.asarray(x, np.float64).sum() for x in jax.tree.leaves(tree)))


def quiet_orbax_logging() -> None:
  """Drops orbax's INFO lines (a dozen per save) from the absl log; its warnings and errors stay."""
  logging.get_absl_logger().addFilter(
      lambda record: record.levelno > python_logging.INFO or '/orbax/' not in record.pathname
  )
