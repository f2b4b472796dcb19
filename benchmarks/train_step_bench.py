r"""Times the real jitted training step on in-memory batches: milliseconds per step and clips per second.

  python -m benchmarks.train_step_bench                                  # IMR-R18 PMSP, 112 px, batch 32
  python -m benchmarks.train_step_bench --config=configs/supervised.py:ucf101:1 --num_classes=101
  python -m benchmarks.train_step_bench --config=configs/pmsp.py:tiny --batch_size=4   # a CPU smoke run
  python -m benchmarks.train_step_bench --dtypes=float32,bfloat16        # both, in one run

The model, task, optimizer, sharding over all local devices and `train.train_step` are the real ones; only
the input pipeline is replaced by one random batch of the shapes of docs/DESIGN.md section 3 (so the
figure is the accelerator's rate, not the input pipeline's: compare it with benchmarks/input_bench.py to
size the CPU side). Compilation is timed separately and excluded from the step time.
"""

import functools
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags
import numpy as np

from imr_jax import parallel
from imr_jax import train

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/pmsp.py', 'Experiment config (with variants).')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 32, 'Global batch size.')
_NUM_CLASSES = flags.DEFINE_integer('num_classes', 101, 'Classes, for classification configs.')
_STEPS = flags.DEFINE_integer('steps', 10, 'Timed steps (after one compile step and one warm-up step).')
_DTYPES = flags.DEFINE_list('dtypes', [], "Compute dtypes to time; empty = the config's own.")


def random_batch(config, batch_size: int, num_classes: int, seed: int = 0) -> dict[str, np.ndarray]:
  """One batch of the DESIGN.md section 3 shapes, with the extras every task may ask for."""
  rng = np.random.default_rng(seed)
  g, s = config.data.num_gops, config.data.crop_size
  t_p = g * config.data.p_per_gop
  streams = lambda: {
      'iframes': rng.standard_normal((batch_size, g, s, s, 3), np.float32),
      'motion_vectors': 0.1 * rng.standard_normal((batch_size, t_p, s, s, 2), np.float32),
      'residuals': rng.standard_normal((batch_size, t_p, s, s, 3), np.float32),
  }
  batch = streams()
  batch['motion_energy'] = rng.random((batch_size, g, s, s), np.float32)
  batch['shifted'] = {key: batch[key][::-1].copy() for key in ('motion_vectors', 'residuals', 'motion_energy')}
  batch['view2'] = streams()
  batch['label'] = rng.integers(0, max(num_classes, 1), batch_size).astype(np.int32)
  batch['mask'] = np.ones(batch_size, np.float32)
  batch['video_index'] = np.arange(batch_size, dtype=np.int32)
  return batch


def time_step(config, batch_size: int, num_classes: int, steps: int) -> dict[str, float]:
  """Compiles and times train.train_step; returns seconds and rates."""
  model, task = train.build_model_and_task(config, num_classes)
  mesh = parallel.make_mesh()
  batch = parallel.global_batch(random_batch(config, batch_size, num_classes), mesh)
  example_inputs, _ = jax.eval_shape(task.prepare, batch, jax.random.key(0))
  tx, schedule = train.make_optimizer(config, steps_per_epoch=100, total_steps=1000)
  state = train.initialize(model, tx, example_inputs, jax.random.key(0), parallel.replicated(mesh))
  step = jax.jit(functools.partial(train.train_step, model=model, task=task, schedule=schedule), donate_argnums=0)
  print('compiling, this can take a minute', flush=True)
  start = time.perf_counter()
  state, _, finite = step(state, batch, jax.random.key(1))
  jax.block_until_ready(state)
  compile_s = time.perf_counter() - start
  state, _, finite = step(state, batch, jax.random.key(1))  # warm-up
  jax.block_until_ready(state)
  start = time.perf_counter()
  for _ in range(steps):
    state, _, finite = step(state, batch, jax.random.key(1))
  jax.block_until_ready(state)
  step_s = (time.perf_counter() - start) / steps
  if not bool(np.all(np.asarray(finite))):
    raise RuntimeError('The timed steps produced a non-finite loss or gradient.')
  return {'compile_s': compile_s, 'step_ms': 1e3 * step_s, 'clips_per_s': batch_size / step_s}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments {argv[1:]}.')
  config = _CONFIG.value
  devices = jax.devices()
  print(
      f'{len(devices)} x {devices[0].device_kind}; config task={config.task.name} '
      f'model={config.model.name} depth={config.model.depth} crop={config.data.crop_size} '
      f'T_I={config.data.num_gops} T_P={config.data.num_gops * config.data.p_per_gop} '
      f'batch={_BATCH_SIZE.value}'
  )
  print(f'{"dtype":<10} {"compile s":>10} {"ms/step":>10} {"clips/s":>10}')
  for dtype in _DTYPES.value or [config.model.dtype]:
    with config.unlocked():
      config.model.dtype = dtype
    result = time_step(config, _BATCH_SIZE.value, _NUM_CLASSES.value, _STEPS.value)
    print(
        f'{dtype:<10} {result["compile_s"]:>10.1f} {result["step_ms"]:>10.1f} {result["clips_per_s"]:>10.1f}',
        flush=True,
    )


if __name__ == '__main__':
  app.run(main)
