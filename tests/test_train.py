"""Tests of the training loop, sharding, checkpoints and metrics, on tiny stand-ins (seconds each).

The loop is exercised with a stand-in model, task and input pipeline defined here (and only here), so
these tests pin down the loop's own behaviour: exact resume, 1 vs 4 devices, two processes, strict
loading, the NaN guard. tests/test_main.py runs the real main.py on the real modules.
"""

import fcntl
import functools
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from configs import default
from imr_jax import checkpoints, cli, learning_curves, metrics as metrics_lib, models, parallel, train
from imr_jax.data import pipeline
from tests import numerics

REPO = pathlib.Path(__file__).resolve().parents[1]
NUM_CLASSES = 3
TRAIN_SIZE = 16
EVAL_SIZE = 5


# ---------------------------------------------------------------------------------------------------
# Stand-ins: a tiny model, a classification task and an input pipeline whose batch s is a pure
# function of (seed, s), as the real one's is, so a resumed run sees exactly the batches it would have.


class StandInBackbone(nn.Module):
  """Pools each stream, BatchNorm (so batch statistics and their cross-device mean matter), Dense."""

  @nn.compact
  def __call__(self, iframes, motion_vectors, residuals, train, return_stages=False):
    pooled = jnp.concatenate([x.mean(axis=(1, 2, 3)) for x in (iframes, motion_vectors, residuals)], -1)
    # Parameters in the inputs' dtype: float64 for the device and process comparisons below.
    pooled = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=pooled.dtype, param_dtype=pooled.dtype)(
        pooled
    )
    return {'features': nn.relu(nn.Dense(8, param_dtype=pooled.dtype)(pooled))}


class StandInHead(nn.Module):
  num_classes: int

  @nn.compact
  def __call__(self, features, train):
    del train
    return nn.Dense(self.num_classes, param_dtype=features.dtype)(features)


class StandInTask:
  batch_requirements = frozenset()

  def heads(self):
    return {'classifier': StandInHead(NUM_CLASSES)}

  def prepare(self, batch, rng):
    del rng
    inputs = {k: jnp.asarray(batch[k]) for k in ('iframes', 'motion_vectors', 'residuals')}
    return inputs, batch['label']

  def loss_and_metrics(self, outputs, labels, mask):
    logits = outputs['classifier']
    log_probs = jax.nn.log_softmax(logits)
    per_example = -jnp.take_along_axis(log_probs, jnp.maximum(labels, 0)[:, None], 1)[:, 0]
    loss = jnp.sum(per_example * mask) / jnp.maximum(mask.sum(), 1)
    return loss, {'loss': per_example, 'accuracy': (logits.argmax(-1) == labels).astype(jnp.float32)}

  def class_logits(self, outputs):
    return outputs['classifier']


def fake_batch(
    seed: int | tuple[int, ...], batch_size: int, config: ml_collections.ConfigDict
) -> dict[str, np.ndarray]:
  """A batch with the keys and shapes of DESIGN.md section 3, random values from `seed`."""
  rng = np.random.default_rng(seed)
  g, t_p, s = config.data.num_gops, config.data.num_gops * config.data.p_per_gop, config.data.crop_size
  label = rng.integers(0, NUM_CLASSES, batch_size).astype(np.int32)
  iframes = rng.normal(size=(batch_size, g, s, s, 3)).astype(np.float32)
  iframes += label[:, None, None, None, None]  # learnable signal
  return {
      'iframes': iframes,
      'motion_vectors': rng.normal(size=(batch_size, t_p, s, s, 2)).astype(np.float32),
      'residuals': rng.normal(size=(batch_size, t_p, s, s, 3)).astype(np.float32),
      'motion_energy': rng.random((batch_size, g, s, s)).astype(np.float32),
      'label': label,
      'mask': np.ones(batch_size, np.float32),
      'video_index': np.full(batch_size, -1, np.int32),
  }


class FakePipeline:
  """train_iterator / eval_iterator / dataset_info with the contract's signatures."""

  def __init__(self, fail_after: int | None = None, nan_at: int | None = None, sigterm_after: int | None = None):
    self.fail_after, self.nan_at, self.sigterm_after = fail_after, nan_at, sigterm_after

  def dataset_info(self, data_dir):
    del data_dir
    return {
        'label_names': [f'class{i}' for i in range(NUM_CLASSES)],
        'splits': {'train': TRAIN_SIZE, 'test': EVAL_SIZE},
    }

  def train_iterator(self, config, *, host_batch_size, seed, start_step=0, extras=frozenset()):
    del extras
    for i in range(10**9):
      if self.fail_after is not None and i == self.fail_after:
        raise KeyboardInterrupt('simulated kill')
      if self.sigterm_after is not None and i == self.sigterm_after:
        os.kill(os.getpid(), signal.SIGTERM)  # what a scheduler sends before it takes the machine
      batch = fake_batch((seed, start_step + i), host_batch_size, config)
      if self.nan_at is not None and start_step + i == self.nan_at:
        batch['iframes'][0, 0, 0, 0, 0] = np.nan
      yield batch

  def eval_iterator(self, config, *, host_batch_size, split=None, extras=frozenset()):
    """EVAL_SIZE videos x 2 views, the last batch padded with mask 0."""
    del split, extras
    views = [(video, view) for video in range(EVAL_SIZE) for view in range(2)]
    for start in range(0, len(views), host_batch_size):
      chunk = views[start : start + host_batch_size]
      batch = fake_batch(1000 + start, host_batch_size, config)
      batch['label'] = np.array([v % NUM_CLASSES for v, _ in chunk] + [-1] * (host_batch_size - len(chunk)), np.int32)
      batch['video_index'] = np.array([v for v, _ in chunk] + [-1] * (host_batch_size - len(chunk)), np.int32)
      batch['mask'] = (batch['video_index'] >= 0).astype(np.float32)
      yield batch


def stand_in_model_and_task(config, num_classes):
  del config, num_classes
  task = StandInTask()
  return models.MultiHeadModel(backbone=StandInBackbone(), heads=task.heads()), task


def tiny_config(**overrides) -> ml_collections.ConfigDict:
  config = default.get_config('tiny')
  config.task.name = 'classification'
  config.optimizer.name = 'sgd'
  config.optimizer.learning_rate = 0.1
  config.optimizer.warmup_epochs = 1.0
  config.num_train_steps = 4
  config.eval_every_steps = 4
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split('.')
    for parent in parents:
      node = node[parent]
    node[leaf] = value
  return config


@pytest.fixture
def stand_ins(monkeypatch):
  """Replaces model/task construction and the input pipeline by the stand-ins; returns a setter."""
  monkeypatch.setattr(train, 'build_model_and_task', stand_in_model_and_task)

  def use(fake: FakePipeline) -> FakePipeline:
    for name in ('dataset_info', 'train_iterator', 'eval_iterator'):
      monkeypatch.setattr(pipeline, name, getattr(fake, name), raising=False)
    return fake

  use(FakePipeline())
  return use


def final_params(workdir) -> dict[str, np.ndarray]:
  restored, _ = checkpoints.restore_raw(str(workdir), parallel.replicated(parallel.make_mesh()))
  return {
      k: np.asarray(v)
      for k, v in checkpoints.flatten({'params': restored['params'], 'batch_stats': restored['batch_stats']}).items()
  }


# ---------------------------------------------------------------------------------------------------
# The loop.


def test_run_writes_checkpoint_metrics_and_final_json(stand_ins, tmp_path):
  final = train.train_and_evaluate(tiny_config(), str(tmp_path))
  assert final['step'] == 4
  assert 0.0 <= final['clip_accuracy'] <= 1.0 and 0.0 <= final['video_accuracy'] <= 1.0
  assert final['num_videos'] == EVAL_SIZE
  assert json.loads((tmp_path / train.FINAL_METRICS_FILE).read_text()) == final  # JSON floats round-trip
  checkpoint_dir = tmp_path / checkpoints.CHECKPOINT_SUBDIR
  steps = sorted(int(p.name) for p in checkpoint_dir.iterdir() if p.name.isdigit())
  assert steps == [3, 4]  # keep_checkpoints = 2 of the tiny variant
  assert list(tmp_path.glob('events.out.tfevents.*'))


def test_interrupted_run_resumes_to_the_same_parameters(stand_ins, tmp_path):
  config = tiny_config(num_train_steps=5, eval_every_steps=100)
  train.train_and_evaluate(config, str(tmp_path / 'straight'))

  stand_ins(FakePipeline(fail_after=3))  # killed while fetching the 4th batch
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  assert (tmp_path / 'resumed' / checkpoints.CHECKPOINT_SUBDIR / '3').is_dir()
  assert not (tmp_path / 'resumed' / checkpoints.CHECKPOINT_SUBDIR / '5').exists()
  stand_ins(FakePipeline())
  final = train.train_and_evaluate(config, str(tmp_path / 'resumed'))
  assert final['step'] == 5

  straight, resumed = final_params(tmp_path / 'straight'), final_params(tmp_path / 'resumed')
  assert straight.keys() == resumed.keys()
  for name in straight:
    np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)


def test_sigterm_saves_the_current_step_and_a_rerun_ends_where_an_uninterrupted_run_does(stand_ins, tmp_path):
  config = tiny_config(num_train_steps=6, eval_every_steps=100, checkpoint_every_steps=4)
  train.train_and_evaluate(config, str(tmp_path / 'straight'))

  stand_ins(FakePipeline(sigterm_after=2))  # while the 3rd batch (step 2) is fetched
  with pytest.raises(checkpoints.Preempted, match='saved a checkpoint at step 3') as preempted:
    train.train_and_evaluate(config, str(tmp_path / 'preempted'))
  assert preempted.value.step == 3  # step 2's update, done after the notice, then saved
  saved = tmp_path / 'preempted' / checkpoints.CHECKPOINT_SUBDIR
  assert sorted(p.name for p in saved.iterdir() if p.name.isdigit()) == ['3']
  assert not (tmp_path / 'preempted' / train.FINAL_METRICS_FILE).exists()
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the run's handler is gone with it

  stand_ins(FakePipeline())
  assert train.train_and_evaluate(config, str(tmp_path / 'preempted'))['step'] == 6
  straight, resumed = final_params(tmp_path / 'straight'), final_params(tmp_path / 'preempted')
  for name in straight:
    np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)


def test_a_second_run_on_a_busy_workdir_refuses(stand_ins, tmp_path):
  (tmp_path / train.LOCK_FILE).touch()
  with open(tmp_path / train.LOCK_FILE) as held:  # what a running main.py holds
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with pytest.raises(cli.UserError, match='Another training process is using --workdir='):
      train.train_and_evaluate(tiny_config(), str(tmp_path))
  assert train.train_and_evaluate(tiny_config(), str(tmp_path))['step'] == 4  # free again


def test_steps_logged_again_after_a_resume_appear_once(stand_ins, tmp_path):
  """A run killed after step 3 but checkpointed at 2 logs step 3 twice; both readers show it once."""
  from tensorboard.backend.event_processing import plugin_event_accumulator  # pylint: disable=g-import-not-at-top

  config = tiny_config(num_train_steps=5, eval_every_steps=100, log_every_steps=1, checkpoint_every_steps=2)
  stand_ins(FakePipeline(fail_after=3))
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config, str(tmp_path))
  stand_ins(FakePipeline())
  train.train_and_evaluate(config, str(tmp_path))
  # TensorBoard purges a tag's values at and after a step that is written again (a restart).
  accumulator = plugin_event_accumulator.EventAccumulator(str(tmp_path))
  accumulator.Reload()
  steps = [event.step for event in accumulator.Tensors('train/loss')]
  assert steps == [1, 2, 3, 4, 5], steps
  assert learning_curves.read_scalars(tmp_path)['train/loss'].steps.tolist() == [1, 2, 3, 4, 5]


def test_a_restart_marker_sorts_between_the_earlier_and_the_new_event_files(tmp_path):
  """Even when the earlier start wrote its events in this very second (a quick test run does)."""
  import time  # pylint: disable=g-import-not-at-top

  # A name that sorts after any other file of its second.
  earlier = tmp_path / f'events.out.tfevents.{int(time.time()):010d}.~.v2'
  earlier.write_bytes(b'')
  train.mark_session_start(str(tmp_path), start_step=2)
  names = sorted(path.name for path in tmp_path.iterdir())
  assert names[0] == earlier.name and names[1].endswith('.restart'), names
  marked_second = int(names[1].split('.')[3])
  assert int(time.time()) > marked_second  # the new writer's file sorts after the marker


def test_finetune_config_without_init_from_refuses_to_train_from_scratch(stand_ins, tmp_path):
  from configs import finetune, supervised  # pylint: disable=g-import-not-at-top

  assert finetune.get_config('synthetic:tiny').require_init_from
  assert not supervised.get_config('synthetic:tiny').require_init_from
  with pytest.raises(ValueError, match=r'--config.init_from=PRETRAIN_WORKDIR.*configs/supervised.py'):
    train.train_and_evaluate(tiny_config(require_init_from=True), str(tmp_path))
  assert not (tmp_path / checkpoints.CHECKPOINT_SUBDIR).exists()


def _quick_jit(function):
  """jax.jit with XLA's cheap CPU pipeline: these tiny programs spend their time compiling."""
  compiled = {}

  def call(*args):
    if 'program' not in compiled:
      compiled['program'] = (
          jax.jit(function)
          .lower(*args)
          .compile(compiler_options={'xla_backend_optimization_level': 0, 'xla_llvm_disable_expensive_passes': True})
      )
    return compiled['program'](*args)

  return call


@pytest.mark.numerics
def test_coviar_trains_each_stream_and_evaluates_the_fused_logits():
  """The real CoViAR with the classification task: per-stream losses summed, fused scores evaluated."""
  config = tiny_config(**{'model.name': 'coviar', 'model.connections': 'none'})
  model, task = train.build_model_and_task(config, NUM_CLASSES)
  assert task.heads() == {}  # CoViAR classifies by itself; no head on its concatenated features
  batch = fake_batch(0, 4, config)
  inputs, targets = task.prepare(batch, None)
  tx, schedule = train.make_optimizer(config, steps_per_epoch=1, total_steps=4)
  state = _quick_jit(lambda rng: train.init_state(model, tx, inputs, rng))(jax.random.key(0))
  variables = {'params': state.params, 'batch_stats': state.batch_stats}

  def scores(variables, batch):
    _, views = train.eval_step(variables, batch, jax.random.key(1), model=model, task=task)
    return views['scores'], jax.nn.softmax(model.apply(variables, **inputs, train=False)['logits'])

  # Exact: eval_step's scores are the softmax of the fused logits, in one program.
  eval_scores, fused_scores = _quick_jit(scores)(variables, batch)
  np.testing.assert_array_equal(eval_scores, fused_scores)

  def loss_fn(params):
    outputs, _ = train.apply_model(model, params, state.batch_stats, inputs, train=True, rng=jax.random.key(2))
    return task.loss_and_metrics(outputs, targets, batch['mask'])[0], outputs

  (loss, outputs), grads = _quick_jit(jax.value_and_grad(loss_fn, has_aux=True))(state.params)
  per_stream = [
      optax.softmax_cross_entropy_with_integer_labels(outputs['stream_logits'][s], batch['label']).mean() for s in 'imr'
  ]
  # Three 3-class cross-entropies of logits below 10 in magnitude (the tiny network's), each within
  # its bound, added (u of the sum each).
  numerics.assert_within(
      loss, sum(per_stream), 3 * numerics.cross_entropy_bound(3, 10.0, float(loss)) + numerics.gamma(2) * float(loss)
  )
  assert float(jnp.abs(outputs['logits']).max()) < 10.0
  for stream in 'imr':  # every stream's own classifier is trained
    assert np.abs(grads['backbone'][f'{stream}_classifier']['kernel']).sum() > 0
  _, step_metrics, finite = _quick_jit(functools.partial(train.train_step, model=model, task=task, schedule=schedule))(
      state, batch, jax.random.key(3)
  )
  assert np.all(finite) and {'accuracy', 'accuracy/i', 'loss/m'} <= set(metrics_lib.compute(step_metrics))


def test_nan_in_the_loss_stops_the_run_naming_the_step(stand_ins, tmp_path):
  stand_ins(FakePipeline(nan_at=2))
  with pytest.raises(train.NonFiniteError, match=r'loss and gradients .* at training step 2'):
    train.train_and_evaluate(tiny_config(), str(tmp_path))
  saved = [p.name for p in (tmp_path / checkpoints.CHECKPOINT_SUBDIR).iterdir() if p.name.isdigit()]
  assert sorted(saved) == ['1', '2']  # steps 1 and 2 completed; the state after step 3 never saved


def test_nan_guard_names_gradients_alone():
  guard = train.NonFiniteGuard()
  guard.check(6, jnp.array([True, True]))
  guard.check(7, jnp.array([True, False]))  # checks step 6 (fine), holds step 7
  with pytest.raises(train.NonFiniteError, match=r'Non-finite gradients .* step 7'):
    guard.flush()


def test_steps_come_from_epochs_and_dataset_size():
  info = {'splits': {'train': 100}}
  config = tiny_config(num_train_steps=-1, num_epochs=3.0, batch_size=8)
  assert train.steps_from_config(config, info) == (12, 36)
  config.dataset.train_split = 'nope'
  with pytest.raises(ValueError, match="train_split='nope'"):
    train.steps_from_config(config, info)


@pytest.mark.numerics
def test_optimizer_schedule_warms_up_then_decays_to_zero():
  for name in ('sgd', 'adamw'):
    config = tiny_config(**{'optimizer.name': name, 'optimizer.warmup_epochs': 2.0})
    _, schedule = train.make_optimizer(config, steps_per_epoch=5, total_steps=50)
    assert float(schedule(0)) == 0.0
    # optax's schedules in float32: the peak and the end of a cosine within a few u of exact.
    numerics.assert_within(
        schedule(10), config.optimizer.learning_rate, numerics.gamma(8) * config.optimizer.learning_rate
    )
    numerics.assert_within(schedule(50), 0.0, numerics.gamma(8) * config.optimizer.learning_rate)
  with pytest.raises(ValueError, match='optimizer.name'):
    train.make_optimizer(tiny_config(**{'optimizer.name': 'lamb'}), 5, 50)


# ---------------------------------------------------------------------------------------------------
# Devices and processes: one step computed three ways must agree.

STEP_SCRIPT = r"""
import os, sys, json
import numpy as np
sys.path[:0] = [{repo!r}, os.path.join({repo!r}, 'tests')]
import jax
if {distributed}:
  jax.distributed.initialize('127.0.0.1:{port}', num_processes=2, process_id=int(sys.argv[1]))
jax.config.update('jax_enable_x64', True)
import test_train
params = test_train.one_step_params(np.float64)
np.savez(sys.argv[2], **params)
"""


def one_step_params(dtype=np.float32) -> dict[str, np.ndarray]:
  """Two train steps of the stand-in model on a fixed global batch of 8, over all devices of all
  processes; each process feeds its own contiguous share of the batch. Inputs and parameters in
  `dtype` (float64 needs jax_enable_x64)."""
  config = tiny_config(batch_size=8)
  mesh = parallel.make_mesh()
  model, task = stand_in_model_and_task(config, NUM_CLASSES)
  tx, schedule = train.make_optimizer(config, steps_per_epoch=1, total_steps=4)
  full = {
      key: value.astype(dtype) if value.dtype == np.float32 else value
      for key, value in fake_batch(7, config.batch_size, config).items()
  }
  host_batch_size = parallel.host_batch_size(config.batch_size, mesh)
  start = jax.process_index() * host_batch_size
  batch = parallel.global_batch({k: v[start : start + host_batch_size] for k, v in full.items()}, mesh)
  replicated = parallel.replicated(mesh)
  inputs, _ = task.prepare(full, None)
  state = jax.jit(lambda r: train.init_state(model, tx, inputs, r), out_shardings=replicated)(jax.random.key(0))
  step = jax.jit(
      lambda s, b, r: train.train_step(s, b, r, model=model, task=task, schedule=schedule),
      in_shardings=(replicated, parallel.data_sharding(mesh), replicated),
      out_shardings=replicated,
  )
  for _ in range(2):  # two steps: the second sees momentum and updated batch statistics
    state, _, _ = step(state, batch, jax.random.key(1))
  return {
      k: np.asarray(v)
      for k, v in checkpoints.flatten({'params': state.params, 'batch_stats': state.batch_stats}).items()
  }


def _run(args, env_extra=None, timeout=240):
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', **(env_extra or {})}
  return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _check(process, timeout=240):
  output, _ = process.communicate(timeout=timeout)
  assert process.returncode == 0, output[-3000:]


# One vs four devices and two processes sum the batch in other orders (per device, then across), so
# these comparisons run in float64, to numerics.FLOAT64_RTOL of each array's magnitude.


@pytest.mark.numerics
def test_four_fake_devices_match_one_device(tmp_path):
  assert jax.device_count() == 1
  with jax.enable_x64(True):
    reference = one_step_params(np.float64)
  script = STEP_SCRIPT.format(repo=str(REPO), distributed=False, port=0)
  process = _run(
      [sys.executable, '-c', script, '0', str(tmp_path / 'four.npz')],
      {'XLA_FLAGS': os.environ.get('XLA_FLAGS', '') + ' --xla_force_host_platform_device_count=4'},
  )
  _check(process)
  four = np.load(tmp_path / 'four.npz')
  assert set(four.files) == set(reference)
  for name, value in reference.items():
    assert four[name].dtype == value.dtype == np.float64, name
    numerics.relative_to_magnitude(four[name], value, numerics.FLOAT64_RTOL, name)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.mark.numerics
def test_two_processes_train_a_step_and_agree(tmp_path):
  with jax.enable_x64(True):
    reference = one_step_params(np.float64)
  script = STEP_SCRIPT.format(repo=str(REPO), distributed=True, port=_free_port())
  processes = [_run([sys.executable, '-c', script, str(i), str(tmp_path / f'p{i}.npz')]) for i in (0, 1)]
  for process in processes:
    _check(process)
  p0, p1 = np.load(tmp_path / 'p0.npz'), np.load(tmp_path / 'p1.npz')
  for name, value in reference.items():
    np.testing.assert_array_equal(p0[name], p1[name], err_msg=name)  # one program, replicated result
    numerics.relative_to_magnitude(p0[name], value, numerics.FLOAT64_RTOL, name)


# ---------------------------------------------------------------------------------------------------
# Strict loading of pretrained weights.


def _tree(**leaves):
  return checkpoints.flax.traverse_util.unflatten_dict(
      {tuple(k.split('/')): np.full(shape, 1.0, np.float32) for k, shape in leaves.items()}
  )


def test_strict_merge_loads_all_but_dont_load():
  target = _tree(**{'backbone/conv/kernel': (3, 2), 'heads/classifier/kernel': (2, 5)})
  source = _tree(**{'backbone/conv/kernel': (3, 2), 'heads/pmsp/kernel': (2, 9)})
  source['backbone']['conv']['kernel'][:] = 7.0
  merged = checkpoints.merge_strict(target, source, ('heads/.*',), 'params')
  assert np.all(merged['backbone']['conv']['kernel'] == 7.0)
  assert np.all(merged['heads']['classifier']['kernel'] == 1.0)  # re-initialised, not loaded


def test_strict_merge_raises_on_renamed_and_reshaped_parameters():
  target = _tree(**{'backbone/conv/kernel': (3, 2), 'backbone/dense/bias': (4,)})
  renamed = _tree(**{'backbone/conv2/kernel': (3, 2), 'backbone/dense/bias': (4,)})
  with pytest.raises(ValueError) as error:
    checkpoints.merge_strict(target, renamed, ('heads/.*',), 'params')
  assert 'missing from checkpoint: backbone/conv/kernel' in str(error.value)
  assert 'not in model: backbone/conv2/kernel' in str(error.value)
  reshaped = _tree(**{'backbone/conv/kernel': (3, 3), 'backbone/dense/bias': (4,)})
  with pytest.raises(ValueError, match=r'shape/dtype: backbone/conv/kernel'):
    checkpoints.merge_strict(target, reshaped, ('heads/.*',), 'params')


def test_fine_tuning_loads_a_pretraining_checkpoint_strictly(stand_ins, tmp_path, monkeypatch):
  train.train_and_evaluate(tiny_config(num_train_steps=2), str(tmp_path / 'pretrain'))
  pretrained = final_params(tmp_path / 'pretrain')
  # Fine-tuning with lr 0: the loaded backbone must come through unchanged; the head is fresh.
  config = tiny_config(num_train_steps=1, init_from=str(tmp_path / 'pretrain'), **{'optimizer.learning_rate': 0.0})
  train.train_and_evaluate(config, str(tmp_path / 'finetune'))
  finetuned = final_params(tmp_path / 'finetune')
  np.testing.assert_array_equal(
      finetuned['params/backbone/Dense_0/kernel'], pretrained['params/backbone/Dense_0/kernel']
  )
  assert not np.array_equal(
      finetuned['params/heads/classifier/Dense_0/kernel'], pretrained['params/heads/classifier/Dense_0/kernel']
  )

  # A renamed parameter in the fine-tuning model is an error, not a silent re-initialisation.
  class RenamedBackbone(StandInBackbone):

    @nn.compact
    def __call__(self, iframes, motion_vectors, residuals, train, return_stages=False):
      pooled = jnp.concatenate([x.mean(axis=(1, 2, 3)) for x in (iframes, motion_vectors, residuals)], -1)
      pooled = nn.BatchNorm(use_running_average=not train)(pooled)
      return {'features': nn.Dense(8, name='renamed')(pooled)}

  monkeypatch.setattr(
      train,
      'build_model_and_task',
      lambda config, num_classes: (
          models.MultiHeadModel(backbone=RenamedBackbone(), heads=StandInTask().heads()),
          StandInTask(),
      ),
  )
  with pytest.raises(ValueError, match='missing from checkpoint: backbone/renamed/kernel'):
    train.train_and_evaluate(config, str(tmp_path / 'renamed'))


# ---------------------------------------------------------------------------------------------------
# Metrics.


def test_video_accuracy_averages_views_per_video():
  scores = np.array(
      [
          [0.9, 0.1],
          [0.2, 0.8],
          [0.3, 0.7],  # video 0: mean favours class 1
          [0.6, 0.4],
          [0.5, 0.5],  # video 1: class 0
          [0.0, 1.0],
      ]
  )  # padding
  video_index = np.array([0, 0, 0, 1, 1, -1])
  labels = np.array([1, 1, 1, 1, 1, 0])
  mask = np.array([1, 1, 1, 1, 1, 0], np.float32)
  accuracy, num_videos = metrics_lib.video_accuracy(scores, video_index, labels, mask)
  assert (accuracy, num_videos) == (0.5, 2)


def test_collection_averages_over_real_examples_only():
  collection = metrics_lib.make_collection(
      {'accuracy': jnp.array([1.0, 0.0, 1.0, 1.0])}, jnp.array([1.0, 1.0, 1.0, 0.0]), {'loss': jnp.array(2.0)}
  )
  collection = collection.merge(
      metrics_lib.make_collection(
          {'accuracy': jnp.array([0.0, 0.0, 0.0, 0.0])}, jnp.array([1.0, 0.0, 0.0, 0.0]), {'loss': jnp.array(4.0)}
      )
  )
  # loss: 2.0 for 3 real examples, 4.0 for 1 -> 2.5.
  assert metrics_lib.compute(collection, 'eval/') == {'eval/accuracy': 0.5, 'eval/loss': 2.5}


def test_a_coviar_checkpoint_loads_into_coviar_of_another_class_count():
  """Kinetics-style CoViAR (400 classes) fine-tuned to 101: the per-stream classifiers are re-made."""
  from configs import finetune  # pylint: disable=g-import-not-at-top

  config = finetune.get_config('ucf101:1:coviar:tiny')
  inputs = {
      name: jnp.zeros((1, 2, 16, 16, channels))
      for name, channels in (('iframes', 3), ('motion_vectors', 2), ('residuals', 3))
  }

  def params(num_classes):
    model, _ = train.build_model_and_task(config, num_classes)
    return jax.eval_shape(lambda: model.init(jax.random.key(0), **inputs, train=False))['params']

  kinetics, ucf = params(400), params(101)
  merged = checkpoints.merge_strict(ucf, kinetics, tuple(config.dont_load), 'params')
  assert merged['backbone']['i_classifier']['kernel'].shape[-1] == 101  # kept: fresh for 101 classes
  stem = lambda tree: tree['backbone']['i_stream']['stem']['conv']['kernel']
  assert stem(merged) is stem(kinetics)  # loaded
  with pytest.raises(ValueError, match='i_classifier/kernel: checkpoint'):
    checkpoints.merge_strict(ucf, kinetics, ('heads/.*',), 'params')


def test_workdir_describes_itself_and_a_resume_says_so(stand_ins, tmp_path, capsys):
  config = tiny_config(num_train_steps=3, eval_every_steps=100)
  train.train_and_evaluate(config, str(tmp_path))
  saved = json.loads((tmp_path / train.CONFIG_FILE).read_text())
  assert saved['config'] == json.loads(config.to_json_best_effort()) and isinstance(saved['command'], list)
  assert 'Training steps 0..3' in (tmp_path / train.LOG_FILE).read_text()
  capsys.readouterr()

  longer = tiny_config(num_train_steps=5, eval_every_steps=100)
  train.train_and_evaluate(longer, str(tmp_path))
  assert f'resumed from step 3 of {tmp_path}' in capsys.readouterr().out
  log = (tmp_path / train.LOG_FILE).read_text()
  assert 'Training steps 0..3' in log and f'Resumed from step 3 of {tmp_path}' in log  # appended
  assert "changes config keys ['num_train_steps'] (was {'num_train_steps': 3})" in log
  assert json.loads((tmp_path / train.CONFIG_FILE).read_text())['config']['num_train_steps'] == 5


PREEMPTION_SCRIPT = """
import os, signal, sys, time
sys.path.insert(0, {repo!r})
import jax
process_id, workdir = int(sys.argv[1]), sys.argv[2]
jax.distributed.initialize('127.0.0.1:{port}', num_processes=2, process_id=process_id)
from imr_jax import checkpoints
manager = checkpoints.make_manager(workdir, keep=1)
with checkpoints.PreemptionWatch() as watch:
  for step in range(1, 3000):
    if process_id == 1 and step == 10:
      os.kill(os.getpid(), signal.SIGTERM)  # the notice reaches one host only
    if watch.reached(step, manager):
      print('save and stop at step', step, flush=True)
      break
    time.sleep(0.01)  # a training step
"""


def test_a_sigterm_to_one_host_stops_every_host_at_the_same_step(tmp_path):
  """Multi-host: JAX's preemption service propagates the notice; all hosts agree on the step to save."""
  script = PREEMPTION_SCRIPT.format(repo=str(REPO), port=_free_port())
  processes = [_run([sys.executable, '-c', script, str(i), str(tmp_path)]) for i in (0, 1)]
  outputs = [process.communicate(timeout=240)[0] for process in processes]
  steps = []
  for process, output in zip(processes, outputs):
    assert process.returncode == 0, output[-3000:]
    steps += re.findall(r'save and stop at step (\d+)', output)
  assert len(steps) == 2 and steps[0] == steps[1] and int(steps[0]) >= 10, outputs


def test_the_three_official_splits_are_evaluated_each_on_its_own_test_split(monkeypatch):
  from configs import finetune  # pylint: disable=g-import-not-at-top
  from imr_jax import evaluate  # pylint: disable=g-import-not-at-top

  seen = []

  def fake_evaluate(config, workdir, step=None):
    seen.append((workdir, config.dataset.train_split, config.dataset.eval_split, step))
    number = int(workdir[-1])
    return {
        'step': 10,
        'split': config.dataset.eval_split,
        'video_accuracy': number / 10,
        'clip_accuracy': number / 20,
        'num_videos': 100 + number,
    }

  monkeypatch.setattr(evaluate, 'evaluate_checkpoint', fake_evaluate)
  config = finetune.get_config('ucf101')
  results = evaluate.evaluate_official_splits(config, 'runs/ft_ucf101_{split}')
  assert seen == [(f'runs/ft_ucf101_{n}', f'train{n}', f'test{n}', None) for n in (1, 2, 3)]
  assert config.dataset.eval_split == 'test1'  # the caller's config is left alone
  assert results['2']['video_accuracy'] == 0.2
  numerics.assert_within(results['mean']['video_accuracy'], 0.2, numerics.gamma(3))
  assert set(results['mean']) == {'video_accuracy', 'clip_accuracy', 'num_videos'}
