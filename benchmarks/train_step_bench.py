r"""Times training steps on in-memory batches: ours against a PyTorch reference of the same network, one table.

  python -m benchmarks.train_step_bench                       # IMR-R18 PMSP+CTP, 112 px, f32 + bf16, batch 32/64/128
  python -m benchmarks.train_step_bench --config=configs/pmsp_ctp.py:r50 --batch_sizes=32,64
  python -m benchmarks.train_step_bench --rows=imr --profile_dir=/tmp/step_trace   # + a jax.profiler trace
  python -m benchmarks.train_step_bench --config=configs/pmsp_ctp.py:tiny --batch_sizes=2 --dtypes=float32 \
      --steps=1 --peak_matmul_size=64 --rows=imr,imr_reference,torch_reference   # a CPU smoke run (tested)

Rows (`--rows`, default all; the PyTorch rows need `pip install -r requirements-torch.txt`):
  imr                      our real jitted step: the config's model (IMRNet with its connections) and task
                           heads, train.make_optimizer, sharding over all local devices, train.train_step;
  imr_reference            the same, for the reference network: IMRNet(connections='none') and the
                           classification head (dropout + linear, cross-entropy), what the PyTorch rows run;
  torch_reference[_compiled]  benchmarks/torch_reference.py: that network in PyTorch (the same stem with its
                           max-pool, temporal strides, widths and input norms; tests/test_torch_reference.py
                           checks it computes our features and gradients), channels_last_3d, bfloat16 by
                           autocast, the same SGD (momentum, weight decay on kernels, global-norm clipping),
                           eager or under torch.compile;
  torchvision_r3d_18[_compiled]  torchvision's r3d_18 per stream (no stem max-pool: 292.7 GFLOPs per clip
                           forward for the three streams), the network people run today, same step.

Only the input pipeline is replaced by one random batch of the shapes of docs/DESIGN.md section 3 (so the
figure is the accelerator's rate, not the input pipeline's: compare it with benchmarks/input_bench.py to
size the CPU side). The first step (compilation, autotuning) is timed separately and excluded.

FLOPs per clip are the whole step's (forward, backward, optimizer) counted two ways (benchmarks/flops.py):
XLA's count of the compiled step, and every tap (convolutions and matrix products only, every kernel tap
counted: PyTorch's `flop_counter` convention, which the PyTorch rows report; on the reference network both
counts agree exactly, tested). MFU = every-tap FLOPs per second / the device's matmul rate, measured in the
same run by timing a square matmul in the row's dtype (`--peak_matmul_size`; the best of JAX's and
PyTorch's), so it is not a datasheet figure. Per-device figures: the rate and MFU are per device, the
clips/s of all; the PyTorch rows use one device. float32 rows run each framework's default precision
(both use TF32 for float32 convolutions on NVIDIA GPUs since Ampere).

The import path needs jax, flax, optax, orbax, clu and ml_collections (pure Python), and torch for its rows:
no TensorFlow or PyAV (tested). Both frameworks share the GPU in one process, so JAX does not preallocate
its memory here (XLA_PYTHON_CLIENT_PREALLOCATE=false unless set); a row that fails (out of memory, a
non-finite loss) prints as failed and the table goes on. Run fewer `--rows` per process if memory is short.
For a machine lent for minutes, `--time_budget_s` starts no row past that time and `--results` keeps every
row timed so far as JSON lines; benchmarks/gpu_check.sh is the whole GPU check in one command.
"""

import functools
import json
import os
import time

# JAX and PyTorch share the GPU in one process: JAX must not take 75% of its memory up front.
os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from etils import epath  # noqa: E402
import jax  # noqa: E402
from ml_collections import config_flags  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import flops  # noqa: E402
from benchmarks import profile_summary  # noqa: E402
from imr_jax import parallel  # noqa: E402
from imr_jax import train  # noqa: E402

ROWS = (
    'imr',
    'imr_reference',
    'torch_reference',
    'torch_reference_compiled',
    'torchvision_r3d_18',
    'torchvision_r3d_18_compiled',
)

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/pmsp_ctp.py', 'Experiment config (with variants).')
_BATCH_SIZES = flags.DEFINE_list('batch_sizes', ['32', '64', '128'], 'Global batch sizes to time.')
_NUM_CLASSES = flags.DEFINE_integer('num_classes', 101, 'Classes, for classification configs and the reference rows.')
_STEPS = flags.DEFINE_integer('steps', 10, 'Timed steps (after one compile step and one warm-up step).')
_DTYPES = flags.DEFINE_list('dtypes', ['float32', 'bfloat16'], "Compute dtypes to time; empty = the config's own.")
_PEAK_MATMUL_SIZE = flags.DEFINE_integer('peak_matmul_size', 8192, 'Side of the square matmul timed for MFU.')
_ROWS = flags.DEFINE_list('rows', list(ROWS), f'Which rows to time, of {ROWS}.')
_CHANNELS_LAST = flags.DEFINE_bool('torch_channels_last', True, 'PyTorch rows in channels_last_3d memory format.')
_PROFILE_DIR = flags.DEFINE_string(
    'profile_dir', None, "Write a jax.profiler trace of the first imr row's timed steps here (TensorBoard / Perfetto)."
)
_RESULTS = flags.DEFINE_string(
    'results',
    None,
    'Append each row as one JSON line to this file as soon as it is timed (kept if the run is cut off).',
)
_TIME_BUDGET_S = flags.DEFINE_float(
    'time_budget_s',
    None,
    'Start no row after this many seconds (rows left print as skipped), to end inside a time limit.',
)


def reference_config(config):
  """The config of the network the PyTorch rows run: no connections, the classification task's head."""
  reference = config.copy_and_resolve_references()
  with reference.unlocked():
    reference.model.connections = 'none'
    reference.task.name = 'classification'
  return reference


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


def time_step(config, batch_size: int, num_classes: int, steps: int, profile_dir: str | None = None) -> dict:
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
  start = time.perf_counter()
  step = step.lower(state, batch, jax.random.key(1)).compile()
  compile_s = time.perf_counter() - start
  xla = step.cost_analysis()
  xla = (xla[0] if isinstance(xla, (list, tuple)) else xla)['flops']
  state, _, finite = step(state, batch, jax.random.key(1))  # warm-up
  jax.block_until_ready(state)

  def run():
    nonlocal state, finite
    start = time.perf_counter()
    for _ in range(steps):
      state, _, finite = step(state, batch, jax.random.key(1))
    jax.block_until_ready(state)
    return (time.perf_counter() - start) / steps

  step_s = run()
  if profile_dir:
    with jax.profiler.trace(profile_dir):
      run()
    print(f'jax.profiler trace of {steps} steps written under {profile_dir} (tensorboard --logdir, or Perfetto):')
    totals = profile_summary.summarise(profile_dir, step.as_text())
    print(profile_summary.format_table(totals, steps))
    traced_s = sum(totals.values()) / 1e6 / steps
    print(f'The trace accounts for {traced_s:.3f} s of the {step_s:.3f} s step ({traced_s / step_s:.0%}).', end=' ')
    if jax.default_backend() == 'cpu':
      # XLA:CPU's thunk runtime launches convolutions and matrix products on its Eigen pool and records
      # only the launch: at 112 px 3.6 s of a 24.4 s step were accounted for (2026-12-03).
      print('On the CPU, asynchronous operations (large convolutions, matrix products) appear as their launch only.')
    else:
      print()
  if not bool(np.all(np.asarray(finite))):
    raise RuntimeError('The timed steps produced a non-finite loss or gradient.')
  return {
      'compile_s': compile_s,
      'step_s': step_s,
      # XLA's count of a jitted step sharded over n devices is one device's share.
      'xla_flops': xla * mesh.size,
      'every_tap_flops': every_tap,
      'devices': mesh.size,
  }


def time_torch_step(row: str, config, dtype: str, batch_size: int, num_classes: int, steps: int) -> dict:
  """Times one PyTorch row (benchmarks/torch_reference.py) on the first CUDA device, or the CPU."""
  import torch  # the PyTorch rows only

  from benchmarks import torch_reference

  device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
  with torch.device(device):
    if row.startswith('torch_reference'):
      backbone = torch_reference.IMRReference.from_model_config(config.model)
    else:
      backbone = torch_reference.torchvision_r3d_18_streams(config.model.streams)
    model = torch_reference.Classifier(backbone, num_classes, config.classification.dropout_rate)
  data = config.data
  inputs = torch_reference.stream_inputs(batch_size, data.num_gops, data.p_per_gop, data.crop_size, device)
  labels = torch.randint(0, num_classes, (batch_size,), generator=torch.Generator().manual_seed(0)).to(device)
  every_tap = torch_reference.count_step_flops(model, inputs, labels)
  if _CHANNELS_LAST.value:
    model = model.to(memory_format=torch.channels_last_3d)
    inputs = {k: v.contiguous(memory_format=torch.channels_last_3d) for k, v in inputs.items()}
  opt = config.optimizer
  step = torch_reference.make_train_step(
      model,
      learning_rate=opt.learning_rate,
      momentum=opt.momentum,
      weight_decay=opt.weight_decay,
      grad_clip_norm=opt.grad_clip_norm,
      bfloat16=dtype == 'bfloat16',
      compiled=row.endswith('_compiled'),
  )
  try:
    timing = torch_reference.time_train_step(step, inputs, labels, steps)
  finally:
    del model, step, inputs
    if device.type == 'cuda':
      torch.cuda.empty_cache()  # hand the memory back for the JAX rows that follow
  return {
      'compile_s': timing['compile_s'],
      'step_s': timing['step_s'],
      'xla_flops': None,
      'every_tap_flops': every_tap,
      'devices': 1,
  }


def _torch_or_none():
  try:
    import torch  # noqa: F401

    return torch
  except ImportError:
    return None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments {argv[1:]}.')
  config = _CONFIG.value
  rows = list(_ROWS.value)
  unknown = [row for row in rows if row not in ROWS]
  if unknown:
    raise app.UsageError(f'--rows: {unknown} are not rows; use some of {ROWS}.')
  torch = _torch_or_none() if any(not row.startswith('imr') for row in rows) else None
  if torch is None and any(not row.startswith('imr') for row in rows):
    print('PyTorch is not installed: its rows are skipped (pip install -r requirements-torch.txt).')
    rows = [row for row in rows if row.startswith('imr')]
  devices = jax.devices()
  model = config.model
  print(
      f'{len(devices)} x {devices[0].device_kind}; task={config.task.name} model={model.name} depth={model.depth} '
      f'connections={model.connections} crop={config.data.crop_size} T_I={config.data.num_gops} '
      f'T_P={config.data.num_gops * config.data.p_per_gop} P temporal strides={tuple(model.p_temporal_strides)}'
  )
  dtypes = _DTYPES.value or [config.model.dtype]
  size = _PEAK_MATMUL_SIZE.value
  peak = {dtype: {'JAX': matmul_rate(size, dtype)} for dtype in dtypes}
  if torch is not None:
    from benchmarks import torch_reference

    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    print(f'PyTorch {torch.__version__} on {torch.cuda.get_device_name() if device == "cuda" else "the CPU"}')
    for dtype in dtypes:
      peak[dtype]['PyTorch'] = torch_reference.matmul_rate(size, getattr(torch, dtype), device)
  print(
      f'Measured matmul rate per device ({size}^2 operands, best of 10): '
      + '; '.join(
          f'{dtype} ' + ', '.join(f'{name} {rate / 1e12:.2f}' for name, rate in rates.items()) + ' TFLOP/s'
          for dtype, rates in peak.items()
      )
  )
  print(
      f'{"row":<29}{"dtype":<10}{"batch":>6}{"compile s":>11}{"ms/step":>10}{"clips/s":>10}'
      f'{"GFLOPs/clip XLA":>17}{"every tap":>11}{"MFU":>8}'
  )
  profile_dir = _PROFILE_DIR.value
  start = time.perf_counter()
  for dtype in dtypes:
    with config.unlocked():
      config.model.dtype = dtype
    for batch_size in map(int, _BATCH_SIZES.value):
      every_tap_of = {}
      for row in rows:
        record = {
            'row': row,
            'dtype': dtype,
            'batch_size': batch_size,
            'device': devices[0].device_kind,
            'depth': model.depth,
            'crop_size': config.data.crop_size,
        }
        budget = _TIME_BUDGET_S.value
        if budget is not None and time.perf_counter() - start > budget:
          print(f'{row:<29}{dtype:<10}{batch_size:>6}  skipped: past --time_budget_s={budget:g}', flush=True)
          continue
        try:
          if row == 'imr':
            result = time_step(config, batch_size, _NUM_CLASSES.value, _STEPS.value, profile_dir)
            profile_dir = None  # one trace
          elif row == 'imr_reference':
            result = time_step(reference_config(config), batch_size, _NUM_CLASSES.value, _STEPS.value)
          else:
            result = time_torch_step(row, config, dtype, batch_size, _NUM_CLASSES.value, _STEPS.value)
        except (RuntimeError, ValueError) as error:  # one failing row leaves the rest of the table
          print(f'{row:<29}{dtype:<10}{batch_size:>6}  failed: {error}', flush=True)
          _append_result(record | {'error': str(error)})
          continue
        clips_per_s = batch_size / result['step_s']
        every_tap = every_tap_of[row] = result['every_tap_flops'] / batch_size
        mfu = every_tap * clips_per_s / result['devices'] / max(peak[dtype].values())
        xla = None if result['xla_flops'] is None else result['xla_flops'] / batch_size
        print(
            f'{row:<29}{dtype:<10}{batch_size:>6}{result["compile_s"]:>11.1f}{1e3 * result["step_s"]:>10.1f}'
            f'{clips_per_s:>10.1f}{"-" if xla is None else f"{xla / 1e9:.4g}":>17}{every_tap / 1e9:>11.4g}{mfu:>8.1%}',
            flush=True,
        )
        _append_result(
            record
            | result
            | {'clips_per_s': clips_per_s, 'xla_flops_per_clip': xla, 'every_tap_flops_per_clip': every_tap, 'mfu': mfu}
        )
      ours, theirs = every_tap_of.get('imr_reference'), every_tap_of.get('torch_reference')
      if ours is not None and theirs is not None and config.model.strided_conv == 'native':
        verdict = 'equal' if ours == theirs else f'DIFFERENT by {ours - theirs:+.6g}'
        print(f'  FLOP check: our every-tap count of the reference step and torch.utils.flop_counter: {verdict}')


def _append_result(record: dict) -> None:
  if _RESULTS.value:
    with epath.Path(_RESULTS.value).open('a') as f:
      f.write(json.dumps(record) + '\n')


if __name__ == '__main__':
  app.run(main)
