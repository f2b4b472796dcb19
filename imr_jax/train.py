"""The training loop: pretext pretraining and action classification share it.

`train_and_evaluate(config, workdir)` reads top to bottom: build the model and task, restore-or-init,
then one loop over steps with periodic logging, evaluation and checkpoints. The step functions are pure
and jitted once over a device mesh (batch split on 'data', state replicated). The input pipeline and
CLU's metric writers (TensorFlow) are imported inside the functions that use them, so the model, task,
optimizer and step functions import without TensorFlow (benchmarks/train_step_bench.py on a GPU machine).
"""

import contextlib
import copy
import fcntl
import functools
import itertools
import json
import logging as python_logging
import os
import sys
import time
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from etils import epath
from flax import traverse_util
from flax.training import train_state

from imr_jax import checkpoints, cli, metrics as metrics_lib, models, parallel, preflight, tasks

FINAL_METRICS_FILE = 'final_metrics.json'
CONFIG_FILE = preflight.CONFIG_FILE
LOG_FILE = 'log.txt'
LOCK_FILE = 'lock'


class TrainState(train_state.TrainState):
  """Parameters, optimizer state and BatchNorm statistics; `step` counts applied updates."""

  batch_stats: Any = None


class NonFiniteError(FloatingPointError):
  """The loss or the gradients became NaN or Inf; the run stops rather than train on garbage."""


# ---------------------------------------------------------------------------------------------------
# Building blocks.


def build_model_and_task(config: ml_collections.ConfigDict, num_classes: int):
  """The task (from config.task) and the model: the backbone with the task's heads on top."""
  task = tasks.build_task(config, num_classes)
  backbone = models.build_backbone(config.model, num_classes=num_classes)
  model = models.MultiHeadModel(backbone=backbone, heads=task.heads())
  return model, task


def make_optimizer(
    config: ml_collections.ConfigDict, steps_per_epoch: int, total_steps: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Optimizer from config.optimizer: clipping, weight decay on kernels, warm-up + cosine schedule."""
  opt = config.optimizer
  warmup_steps = min(int(opt.warmup_epochs * steps_per_epoch), total_steps)
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0,
      peak_value=opt.learning_rate,
      warmup_steps=warmup_steps,
      decay_steps=max(total_steps, warmup_steps + 1),
      end_value=0.0,
  )
  # Biases and normalisation scales (1-D) are not decayed.
  kernels = lambda params: jax.tree.map(lambda p: p.ndim > 1, params)
  if opt.name == 'sgd':
    update = optax.chain(
        optax.add_decayed_weights(opt.weight_decay, mask=kernels),
        optax.sgd(schedule, momentum=opt.momentum, nesterov=opt.nesterov),
    )
  elif opt.name == 'adamw':
    update = optax.adamw(schedule, b1=opt.b1, b2=opt.b2, weight_decay=opt.weight_decay, mask=kernels)
  else:
    raise ValueError(f'config.optimizer.name={opt.name!r} is not an optimizer; use "sgd" or "adamw".')
  clip = [optax.clip_by_global_norm(opt.grad_clip_norm)] if opt.grad_clip_norm > 0 else []
  return optax.chain(*clip, update), schedule


def apply_model(model, params, batch_stats, inputs, *, train: bool, rng: jax.Array | None = None):
  """Runs the model on one clip view (a streams dict) or several (a list: InfoNCE's two views).

  Returns:
    (outputs, new batch_stats): outputs as MultiHeadModel returns them (a list for a list of views);
    batch_stats updated in training (views in order), unchanged in evaluation.
  """
  if isinstance(inputs, (list, tuple)):
    outputs = []
    for index, view in enumerate(inputs):
      view_rng = None if rng is None else jax.random.fold_in(rng, index)
      output, batch_stats = apply_model(model, params, batch_stats, view, train=train, rng=view_rng)
      outputs.append(output)
    return outputs, batch_stats
  variables = {'params': params, 'batch_stats': batch_stats}
  if not train:
    return model.apply(variables, **inputs, train=False), batch_stats
  outputs, updates = model.apply(variables, **inputs, train=True, mutable=['batch_stats'], rngs={'dropout': rng})
  return outputs, updates.get('batch_stats', batch_stats)


def init_state(model, tx, inputs, rng: jax.Array) -> TrainState:
  """A fresh TrainState; `inputs` fixes the input shapes (values are not used)."""
  first_view = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
  variables = model.init({'params': rng, 'dropout': rng}, **first_view, train=False)
  return TrainState.create(
      apply_fn=model.apply, params=variables['params'], tx=tx, batch_stats=variables.get('batch_stats', {})
  )


def initialize(model, tx, example_inputs, rng: jax.Array, sharding) -> TrainState:
  """init_state, jitted with its output placed on `sharding`; `example_inputs` may be abstract."""
  inputs = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), example_inputs)
  init = jax.jit(functools.partial(init_state, model, tx), out_shardings=sharding)
  # Initialisation runs once, so its speed does not matter; at the default optimisation level LLVM
  # spends ~30 s on its many random-number kernels on CPU, against ~5 s at level 0.
  compiled = init.lower(inputs, rng).compile(compiler_options={'xla_backend_optimization_level': 0})
  return compiled(inputs, rng)


def train_step(
    state: TrainState, batch: dict[str, jax.Array], rng: jax.Array, *, model, task, schedule: optax.Schedule
):
  """One update. Pure; jitted once.

  Args:
    state: the replicated train state.
    batch: a global batch (DESIGN.md section 3), split over devices on its leading axis.
    rng: the run's base key; the step's key is rng folded with state.step, so a resumed run
      draws the same task randomness (CTP types, rotations, dropout) as an uninterrupted one.
  Returns:
    (new state, metrics Collection, bool (2,) [loss is finite, gradients are finite]).
  """
  prepare_rng, dropout_rng = jax.random.split(jax.random.fold_in(rng, state.step))
  inputs, targets = task.prepare(batch, prepare_rng)

  def loss_fn(params):
    outputs, batch_stats = apply_model(model, params, state.batch_stats, inputs, train=True, rng=dropout_rng)
    loss, per_example = task.loss_and_metrics(outputs, targets, batch['mask'])
    return loss, (per_example, batch_stats)

  (loss, (per_example, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  grads_finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
  finite = jnp.stack([jnp.isfinite(loss), grads_finite])
  new_state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  scalars = {'loss': loss, 'learning_rate': schedule(state.step), 'grad_norm': optax.global_norm(grads)}
  # A per-example 'loss' repeats the scalar loss (its masked mean); the scalar is what was optimised.
  per_example = {name: value for name, value in per_example.items() if name not in scalars}
  return new_state, metrics_lib.make_collection(per_example, batch['mask'], scalars), finite


def eval_step(variables: dict[str, Any], batch: dict[str, jax.Array], rng: jax.Array, *, model, task):
  """Scores one evaluation batch. Pure; jitted once.

  Args:
    variables: {'params', 'batch_stats'} of the model (BatchNorm uses the running statistics).
    batch: a global evaluation batch, padded examples with mask 0.
    rng: fixed key for the task's transforms (the same views at every evaluation).
  Returns:
    (metrics Collection, views): for classification, views = {'scores': float (B, num_classes) class
    probabilities, 'video_index', 'label', 'mask'} (returned replicated, so every host can average
    per video); None for pretext tasks.
  """
  inputs, targets = task.prepare(batch, rng)
  outputs, _ = apply_model(model, variables['params'], variables['batch_stats'], inputs, train=False)
  loss, per_example = task.loss_and_metrics(outputs, targets, batch['mask'])
  per_example = {name: value for name, value in per_example.items() if name != 'loss'}
  collection = metrics_lib.make_collection(per_example, batch['mask'], {'loss': loss})
  logits = task.class_logits(outputs)
  if logits is None:  # a pretext task
    return collection, None
  views = {
      'scores': jax.nn.softmax(logits.astype(jnp.float32)),
      **{key: batch[key] for key in ('video_index', 'label', 'mask')},
  }
  return collection, views


class NonFiniteGuard:
  """Stops the run on a non-finite loss or gradient, checking each step one step late.

  Reading the flags right away would make the host wait for every step; reading them after the next
  step is dispatched keeps the device busy and still names the exact step. `flush()` checks the last
  one (before a checkpoint is written, and at the end).
  """

  def __init__(self):
    self._pending: tuple[int, jax.Array] | None = None

  def check(self, step: int, finite: jax.Array) -> None:
    self.flush()
    self._pending = (step, finite)

  def flush(self) -> None:
    if self._pending is None:
      return
    step, finite = self._pending
    self._pending = None
    loss_finite, grads_finite = np.asarray(finite)
    if not (loss_finite and grads_finite):
      what = 'loss and gradients' if not (loss_finite or grads_finite) else ('loss' if not loss_finite else 'gradients')
      raise NonFiniteError(
          f'Non-finite {what} (NaN or Inf) at training step {step} (the update to step {step + 1}); '
          'stopping. The last checkpoint holds a state before it. Try a lower '
          'config.optimizer.learning_rate, a longer warm-up, gradient clipping '
          '(config.optimizer.grad_clip_norm) or float32 compute.'
      )


# ---------------------------------------------------------------------------------------------------
# Evaluation.


def eval_batches(config: ml_collections.ConfigDict, task, host_batch_size: int) -> Iterator[Any]:
  """One deterministic pass over config.dataset.eval_split (DESIGN.md section 6).

  Classification: every video as eval_num_clips x eval_num_crops views. Pretext tasks: every video
  once (its middle window, centre crop), with the task's extras fixed per video, and at most
  config.num_eval_steps batches when that is > 0. One view per video keeps a batch's examples distinct
  videos, as CTP's mismatched clips and InfoNCE's negatives need; padding carries mask 0.
  """
  from imr_jax.data import pipeline  # TensorFlow: imported where used (see the module docstring)

  eval_config = config
  if config.task.name != 'classification':
    eval_config = copy.deepcopy(config)
    eval_config.data.eval_num_clips = 1
    eval_config.data.eval_num_crops = 1
  batches = pipeline.eval_iterator(
      eval_config, host_batch_size=host_batch_size, split=config.dataset.eval_split, extras=task.batch_requirements
  )
  if config.task.name != 'classification' and config.num_eval_steps > 0:
    batches = itertools.islice(batches, config.num_eval_steps)
  return batches


def evaluate(
    variables: dict[str, Any], config: ml_collections.ConfigDict, task, jitted_eval_step: Callable, mesh
) -> dict[str, float]:
  """Evaluates on config.dataset.eval_split, the batches of `eval_batches`.

  Classification: clip_accuracy (per view) and video_accuracy (class probabilities, the softmax of
  task.class_logits, averaged per video). Pretext tasks: the task's own metrics.
  """
  batch_size = parallel.host_batch_size(config.eval_batch_size, mesh, 'eval_batch_size')
  rng = jax.random.key(config.seed + 1)
  classification = config.task.name == 'classification'
  batches = eval_batches(config, task, batch_size)
  collection, views = None, []
  for host_batch in batches:
    batch = parallel.global_batch(host_batch, mesh)
    step_metrics, step_views = jitted_eval_step(variables, batch, rng)
    collection = step_metrics if collection is None else collection.merge(step_metrics)
    if classification:
      views.append(jax.device_get(step_views))
  if collection is None:
    raise ValueError(
        f'The eval split {config.dataset.eval_split!r} of {config.dataset.data_dir!r} gave no '
        'batches; check config.dataset.eval_split.'
    )
  results = metrics_lib.compute(collection)
  if classification:
    views = {key: np.concatenate([v[key] for v in views]) for key in views[0]}
    results['clip_accuracy'] = results.pop('accuracy')
    results['video_accuracy'], results['num_videos'] = metrics_lib.video_accuracy(
        views['scores'], views['video_index'], views['label'], views['mask']
    )
  return results


def make_eval_step(model, task, mesh) -> Callable:
  replicated = parallel.replicated(mesh)
  return jax.jit(
      functools.partial(eval_step, model=model, task=task),
      in_shardings=(replicated, parallel.data_sharding(mesh), replicated),
      out_shardings=replicated,
  )


# ---------------------------------------------------------------------------------------------------
# The loop.


def steps_from_config(config: ml_collections.ConfigDict, info: dict[str, Any]) -> tuple[int, int]:
  """(steps per epoch, total steps), derived from the train split size at run time."""
  split = config.dataset.train_split
  if split not in info['splits']:
    raise ValueError(
        f'config.dataset.train_split={split!r} is not a split of {config.dataset.data_dir!r} '
        f'(it has {sorted(info["splits"])}).'
    )
  steps_per_epoch = max(1, info['splits'][split] // config.batch_size)
  if config.num_train_steps > 0:
    return steps_per_epoch, config.num_train_steps
  return steps_per_epoch, max(1, int(config.num_epochs * steps_per_epoch))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Trains (resuming from workdir's latest checkpoint), evaluates, writes final_metrics.json.

  The workdir describes itself: config.json (the resolved config, the command line of the latest
  start and the data set's label names and frame format, what `imr_jax.predict` needs), log.txt (this
  module's log lines, appended across restarts), the event files and checkpoints.

  Returns:
    The last evaluation's metrics (also in WORKDIR/final_metrics.json).
  Raises:
    checkpoints.Preempted: after a SIGTERM, once the checkpoint of the step it stopped at is saved.
  """
  from imr_jax.data import pipeline  # TensorFlow: imported where used

  preflight.check_init_from(config)
  workdir = preflight.absolute(workdir)
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  # SIGTERM (a preemption notice) from here on saves a checkpoint and stops the run cleanly.
  with _exclusive(workdir), _log_file(epath.Path(workdir) / LOG_FILE), checkpoints.PreemptionWatch() as preemption:
    if jax.process_index() == 0:
      write_config(config, workdir, pipeline.dataset_info(config.dataset.data_dir))
    return _train_and_evaluate(config, workdir, preemption)


@contextlib.contextmanager
def _exclusive(workdir: str) -> Iterator[None]:
  """Holds WORKDIR/lock, so that a second single-process run on the same workdir refuses to start.

  The hosts of a multi-host run share their workdir, and a lock on a remote file system is not
  reliable, so neither takes it.
  """
  if jax.process_count() > 1 or preflight.is_remote(workdir):
    yield
    return
  with open(os.path.join(workdir, LOCK_FILE), 'w') as lock:
    try:
      fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise cli.UserError(
          f'Another training process is using --workdir={workdir} (it holds {lock.name}). Wait for it to '
          'finish or stop it, or choose another --workdir; the hosts of one multi-host run share a '
          'workdir with --multihost.'
      ) from None
    yield  # the lock goes with the file's closing, or with the process


@contextlib.contextmanager
def _log_file(path: epath.Path) -> Iterator[None]:
  """Appends INFO and above of the absl log to `path` (any file system), whatever the console's verbosity."""
  absl_logger, console = logging.get_absl_logger(), logging.get_absl_handler()
  level = absl_logger.level
  console_threshold = absl_logger.getEffectiveLevel()
  quieter_console = lambda record: record.levelno >= console_threshold
  with path.open('a') as stream:
    handler = python_logging.StreamHandler(stream)
    handler.setFormatter(python_logging.Formatter('%(asctime)s %(levelname)s %(message)s'))
    handler.setLevel(python_logging.INFO)
    # Not orbax's dozen INFO lines per checkpoint (its warnings and errors stay).
    handler.addFilter(lambda record: record.levelno > python_logging.INFO or '/orbax/' not in record.pathname)
    absl_logger.addHandler(handler)
    if console_threshold > python_logging.INFO:  # let INFO through to the file only
      console.addFilter(quieter_console)
      absl_logger.setLevel(python_logging.INFO)
    try:
      yield
    finally:
      absl_logger.setLevel(level)
      console.removeFilter(quieter_console)
      absl_logger.removeHandler(handler)
      handler.close()


def mark_session_start(workdir: str, start_step: int) -> None:
  """Tells TensorBoard where this start of the run begins, so that steps logged again show once.

  TensorBoard treats every SessionLog START event after a run's first as a restart and drops the values
  it read at and after that event's step (TF2 event files get no other restart handling): a run resumed
  from step s, whose earlier start had logged steps after s before it was killed, shows each step once.
  The event goes in a file of its own that sorts after the earlier start's files and before the new
  writer's (event files are read in name order, and names start with the Unix second; within one second
  they sort by counters that say nothing of order), hence a wait for the next second before and after it
  on a resume (a restart within the second of the earlier start's writer once showed its steps twice).
  """
  from tensorboard.compat.proto import event_pb2  # pylint: disable=g-import-not-at-top
  from tensorboard.summary.writer import event_file_writer  # pylint: disable=g-import-not-at-top

  def next_second():
    time.sleep(1.0 - time.time() % 1.0 + 0.01)

  if start_step:
    next_second()
  writer = event_file_writer.EventFileWriter(workdir, filename_suffix='.restart')
  writer.add_event(
      event_pb2.Event(
          step=start_step + 1,
          wall_time=time.time(),
          session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START),
      )
  )
  writer.close()
  if start_step:  # a first start's event may sort anywhere: it only marks the session's beginning
    next_second()


def write_config(config: ml_collections.ConfigDict, workdir: str, data_info: dict[str, Any]) -> None:
  """WORKDIR/config.json: the resolved config, the command line and the data set's facts (preflight.DATA_SET_FACTS).

  Warns when a restart changed the config.
  """
  path = epath.Path(workdir) / CONFIG_FILE
  resolved = json.loads(config.to_json_best_effort())
  if path.exists():
    previous = json.loads(path.read_text()).get('config', {})
    before, now = (traverse_util.flatten_dict(tree, sep='.') for tree in (previous, resolved))
    changed = sorted(key for key in set(before) | set(now) if before.get(key) != now.get(key))
    if changed:
      logging.warning(
          'This restart of %s changes config keys %s (was %s).',
          workdir,
          changed,
          {key: before.get(key) for key in changed},
      )
  data_set = {key: data_info[key] for key in preflight.DATA_SET_FACTS if key in data_info}
  path.write_text(json.dumps({'command': sys.argv, 'config': resolved, 'data': data_set}, indent=2, sort_keys=True))


def _train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, preemption: checkpoints.PreemptionWatch
) -> dict[str, float]:
  from clu import metric_writers, periodic_actions  # TensorFlow: imported where used
  from imr_jax.data import pipeline

  mesh = parallel.make_mesh()
  replicated, data_sharding = parallel.replicated(mesh), parallel.data_sharding(mesh)
  info = pipeline.dataset_info(config.dataset.data_dir)
  steps_per_epoch, total_steps = steps_from_config(config, info)
  model, task = build_model_and_task(config, num_classes=len(info['label_names']))
  tx, schedule = make_optimizer(config, steps_per_epoch, total_steps)

  manager = checkpoints.make_manager(workdir, keep=config.keep_checkpoints)
  start_step = manager.latest_step() or 0
  # Batch s is a pure function of (seed, host, s): a resumed run trains on the batches it would have.
  batches = pipeline.train_iterator(
      config,
      host_batch_size=parallel.host_batch_size(config.batch_size, mesh),
      seed=config.seed,
      start_step=start_step,
      extras=task.batch_requirements,
  )
  first_batch = next(batches)
  batches = itertools.chain([first_batch], batches)

  rng = jax.random.key(config.seed)
  init_rng, step_rng = jax.random.split(rng)
  example_inputs, _ = jax.eval_shape(task.prepare, parallel.global_batch(first_batch, mesh), init_rng)
  state = initialize(model, tx, example_inputs, init_rng, replicated)
  if start_step == 0 and config.init_from:
    params, batch_stats, pretrain_step = checkpoints.load_pretrained(
        config.init_from, state.params, state.batch_stats, tuple(config.dont_load), replicated
    )
    state = state.replace(params=params, batch_stats=batch_stats)
    logging.info('Loaded step %d of %s (all but %s).', pretrain_step, config.init_from, config.dont_load)
  state, start_step = checkpoints.restore_or_init(manager, state)
  if start_step:
    logging.info('Resumed from step %d of %s.', start_step, workdir)
    print(f'resumed from step {start_step} of {workdir}', flush=True)

  p_train_step = jax.jit(
      functools.partial(train_step, model=model, task=task, schedule=schedule),
      in_shardings=(replicated, data_sharding, replicated),
      out_shardings=replicated,
      donate_argnums=0,
  )
  p_eval_step = make_eval_step(model, task, mesh)
  if jax.process_index() == 0:
    mark_session_start(workdir, start_step)
  writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
  if start_step == 0:
    writer.write_hparams({k: str(v) for k, v in traverse_util.flatten_dict(config.to_dict(), sep='.').items()})
  report_progress = periodic_actions.ReportProgress(num_train_steps=total_steps, writer=writer)
  hooks = [report_progress]
  if config.profile and jax.process_index() == 0:
    hooks.append(periodic_actions.Profile(num_profile_steps=5, logdir=workdir))
  guard, train_metrics, eval_metrics = NonFiniteGuard(), None, None

  logging.info(
      'Training steps %d..%d (%d per epoch); compiling, this can take a minute.',
      start_step,
      total_steps,
      steps_per_epoch,
  )
  print('compiling, this can take a minute', flush=True)
  preempted = False
  try:
    for step, batch in zip(range(start_step, total_steps), batches):
      state, step_metrics, finite = p_train_step(state, parallel.global_batch(batch, mesh), step_rng)
      guard.check(step, finite)
      train_metrics = step_metrics if train_metrics is None else train_metrics.merge(step_metrics)
      done = step + 1
      for hook in hooks:
        hook(done)
      if done % config.log_every_steps == 0 or done == total_steps:
        writer.write_scalars(done, _prefixed(metrics_lib.compute(train_metrics), 'train/'))
        train_metrics = None
      if done % config.eval_every_steps == 0 or done == total_steps:
        with report_progress.timed('eval'):
          eval_metrics = evaluate(_variables(state), config, task, p_eval_step, mesh)
        writer.write_scalars(done, _prefixed(eval_metrics, 'eval/'))
      preempted = preemption.reached(done, manager)
      if done % config.checkpoint_every_steps == 0 or done == total_steps or preempted:
        guard.flush()  # never save a state that a non-finite update produced
        checkpoints.save(manager, done, state)
      if preempted:
        break
    guard.flush()
  finally:  # also on Ctrl-C or an error: let the save in flight complete
    manager.wait_until_finished()
  if preempted:
    writer.flush()
    manager.close()
    raise checkpoints.Preempted(done, workdir)

  if eval_metrics is None:  # nothing left to train (a finished run restarted): evaluate its state
    eval_metrics = evaluate(_variables(state), config, task, p_eval_step, mesh)
  final = {'step': int(jax.device_get(state.step)), **eval_metrics}
  if jax.process_index() == 0:
    (epath.Path(workdir) / FINAL_METRICS_FILE).write_text(json.dumps(final, indent=2, sort_keys=True))
  writer.flush()
  manager.close()
  return final


def _variables(state: TrainState) -> dict[str, Any]:
  return {'params': state.params, 'batch_stats': state.batch_stats}


def _prefixed(values: dict[str, float], prefix: str) -> dict[str, float]:
  return {prefix + name: value for name, value in values.items()}
