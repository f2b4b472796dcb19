r"""Times the real jitted training step on in-memory batches: ms per step, clips per second, FLOPs and MFU.

  python -m benchmarks.train_step_bench                       # IMR-R18 PMSP, 112 px, f32 + bf16, batch 32/64/128
  python -m benchmarks.train_step_bench --config=configs/pmsp.py:r50 --batch_sizes=32,64
  python -m benchmarks.train_step_bench --config=configs/supervised.py:ucf101:1 --num_classes=101
  python -m benchmarks.train_step_bench --config=configs/pmsp.py:tiny --batch_sizes=4 --dtypes=float32 \
      --peak_matmul_size=512                                  # a CPU smoke run (what the tests run)

The model, task, optimizer, sharding over all local devices and `train.train_step` are the real ones; only
the input pipeline is replaced by one random batch of the shapes of docs/DESIGN.md section 3 (so the
figure is the accelerator's rate, not the input pipeline's: compare it with benchmarks/input_bench.py to
size the CPU side). Compilation is timed separately and excluded from the step time.

FLOPs per clip are the whole step's (forward, backward, optimizer) counted two ways (benchmarks/flops.py):
XLA's count of the compiled step, and every tap (convolutions and matrix products only, every kernel tap
counted: PyTorch's `flop_counter` convention). MFU = every-tap FLOPs per second / the device's matmul
rate, measured in the same run by timing a square matmul in the row's dtype (`--peak_matmul_size`), so it
is not a datasheet figure. Per-device figures: the rate and MFU are per device, the clips/s of all.
"""

import functools
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags
import numpy as np

from benchmarks import flops
from imr_jax import parallel
from imr_jax import train

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/pmsp.py', 'Experiment config (with variants).')
_BATCH_SIZES = flags.DEFINE_list('batch_sizes', ['32', '64', '128'], 'Global batch sizes to time.')
_NUM_CLASSES = flags.DEFINE_integer('num_classes', 101, 'Classes, for classification configs.')
_STEPS = flags.DEFINE_integer('steps', 10, 'Timed steps (after one compile step and one warm-up step).')
_DTYPES = flags.DEFINE_list('dtypes', ['float32', 'bfloat16'], "Compute dtypes to time; empty = the config's own.")
_PEAK_MATMUL_SIZE = flags.DEFINE_integer('peak_matmul_size', 8192, 'Side of the square matmul timed for MFU.')


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


def matmul_rate(size: int, dtype: str, repeats: int = 10) -> float:
  """FLOP/s of one device on a square matmul in `dtype` (float32 accumulation), best of `repeats`."""
  a = jax.device_put(np.ones((size, size), np.float32)).astype(dtype)
  matmul = jax.jit(lambda x, y: jax.lax.dot(x, y, preferred_element_type=jax.numpy.float32))
  jax.block_until_ready(matmul(a, a))
  best = float('inf')
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(matmul(a, a))
    best = min(best, time.perf_counter() - start)
  return 2 * size**3 / best


def time_step(config, batch_size: int, num_classes: int, steps: int) -> dict[str, float]:
  """Compiles and times train.train_step; returns seconds, rates and FLOPs per clip."""
  model, task = train.build_model_and_task(config, num_classes)
  mesh = parallel.make_mesh()
  batch = parallel.global_batch(random_batch(config, batch_size, num_classes), mesh)
  example_inputs, _ = jax.eval_shape(task.prepare, batch, jax.random.key(0))
  tx, schedule = train.make_optimizer(config, steps_per_epoch=100, total_steps=1000)
  state = train.initialize(model, tx, example_inputs, jax.random.key(0), parallel.replicated(mesh))
  step_fn = functools.partial(train.train_step, model=model, task=task, schedule=schedule)
  step = jax.jit(step_fn, donate_argnums=0)
  every_tap = flops.every_tap_flops(step_fn, state, batch, jax.random.key(1))
  print(f'compiling (batch {batch_size}), this can take a minute', flush=True)
  start = time.perf_counter()
  step = step.lower(state, batch, jax.random.key(1)).compile()
  compile_s = time.perf_counter() - start
  xla = step.cost_analysis()
  xla = (xla[0] if isinstance(xla, (list, tuple)) else xla)['flops']
  state, _, finite = step(state, batch, jax.random.key(1))  # warm-up
  jax.block_until_ready(state)
  start = time.perf_counter()
  for _ in range(steps):
    state, _, finite = step(state, batch, jax.random.key(1))
  jax.block_until_ready(state)
  step_s = (time.perf_counter() - start) / steps
  if not bool(np.all(np.asarray(finite))):
    raise RuntimeError('The timed steps produced a non-finite loss or gradient.')
  return {
      'compile_s': compile_s,
      'step_ms': 1e3 * step_s,
      'clips_per_s': batch_size / step_s,
      # XLA's count of a jitted step sharded over n devices is one device's share.
      'xla_gflops_per_clip': xla * mesh.size / batch_size / 1e9,
      'every_tap_gflops_per_clip': every_tap / batch_size / 1e9,
  }


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments {argv[1:]}.')
  config = _CONFIG.value
  devices = jax.devices()
  model = config.model
  print(
      f'{len(devices)} x {devices[0].device_kind}; task={config.task.name} model={model.name} depth={model.depth} '
      f'crop={config.data.crop_size} T_I={config.data.num_gops} T_P={config.data.num_gops * config.data.p_per_gop} '
      f'P temporal strides={tuple(model.p_temporal_strides)}'
  )
  dtypes = _DTYPES.value or [config.model.dtype]
  peak = {dtype: matmul_rate(_PEAK_MATMUL_SIZE.value, dtype) for dtype in dtypes}
  print(
      'Measured matmul rate per device ('
      + ', '.join(f'{dtype} {rate / 1e12:.2f} TFLOP/s' for dtype, rate in peak.items())
      + f', {_PEAK_MATMUL_SIZE.value}^2 operands, best of 10)'
  )
  print(
      f'{"dtype":<10}{"batch":>6}{"compile s":>11}{"ms/step":>10}{"clips/s":>10}'
      f'{"GFLOPs/clip XLA":>17}{"every tap":>11}{"MFU":>8}'
  )
  for dtype in dtypes:
    with config.unlocked():
      config.model.dtype = dtype
    for batch_size in map(int, _BATCH_SIZES.value):
      result = time_step(config, batch_size, _NUM_CLASSES.value, _STEPS.value)
      rate = result['every_tap_gflops_per_clip'] * 1e9 * result['clips_per_s'] / len(devices)
      print(
          f'{dtype:<10}{batch_size:>6}{result["compile_s"]:>11.1f}{result["step_ms"]:>10.1f}'
          f'{result["clips_per_s"]:>10.1f}{result["xla_gflops_per_clip"]:>17.4g}'
          f'{result["every_tap_gflops_per_clip"]:>11.4g}{rate / peak[dtype]:>8.1%}',
          flush=True,
      )


if __name__ == '__main__':
  app.run(main)
