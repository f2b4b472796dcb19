"""The FLOP counts behind the cost table and MFU (benchmarks/flops.py), and the train-step benchmark on the CPU."""

import json
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
from jax import lax
import pytest

from benchmarks import flops
from tests.test_main import _env
from tests.test_main import _run
from tests.test_main import REPO

DIMENSIONS = ('NTHWC', 'THWIO', 'NTHWC')


def conv(x, w, stride=1, padding='SAME'):
  return lax.conv_general_dilated(x, w, (stride,) * 3, padding, dimension_numbers=DIMENSIONS)


def test_every_tap_counts_a_convolution_by_hand():
  x, w = jnp.ones((2, 4, 8, 8, 3)), jnp.ones((3, 3, 3, 3, 5))
  # SAME, stride 1: every output (2 x 4 x 8 x 8 x 5) takes 3 x 3 x 3 taps of 3 channels, 2 FLOPs each.
  assert flops.every_tap_flops(conv, x, w) == 2 * (2 * 4 * 8 * 8 * 5) * 27 * 3
  # Stride 2: 2 x 2 x 4 x 4 x 5 outputs.
  assert flops.every_tap_flops(lambda x, w: conv(x, w, 2), x, w) == 2 * (2 * 2 * 4 * 4 * 5) * 27 * 3
  # XLA skips the taps on padding; with none (VALID) it counts the same.
  assert flops.xla_flops(conv, x, w) < flops.every_tap_flops(conv, x, w)
  valid = lambda x, w: conv(x, w, padding='VALID')
  assert flops.xla_flops(valid, x, w) == flops.every_tap_flops(valid, x, w) == 2 * (2 * 2 * 6 * 6 * 5) * 27 * 3


@pytest.mark.parametrize('stride, size', [(1, 8), (2, 8), (2, 7)])
def test_a_gradient_counts_as_its_forward(stride, size):
  # size 7 with stride 2: 4 outputs per axis, not 7 / 2 (PyTorch's flop_counter counts the forward's).
  x, w = jnp.ones((1, size, size, size, 2)), jnp.ones((3, 3, 3, 2, 5))
  forward = flops.every_tap_flops(lambda x, w: conv(x, w, stride), x, w)
  # The forward again, then the input and kernel gradients: two convolutions of the forward's cost each
  # (PyTorch counts the same), the strided one's input gradient counted without the zeros it inserts.
  both = jax.jit(jax.grad(lambda x, w: conv(x, w, stride).sum(), argnums=(0, 1)))
  assert flops.every_tap_flops(both, x, w) == 3 * forward
  kernel_only = jax.grad(lambda w, x: conv(x, w, stride).sum())
  assert flops.every_tap_flops(kernel_only, w, x) == 2 * forward


def test_every_tap_counts_matrix_products_inside_nested_programs():
  a, b = jnp.ones((3, 7, 11)), jnp.ones((11, 13))
  nested = jax.jit(lambda a, b: jax.jit(jnp.dot)(a, b) + jax.checkpoint(jnp.dot)(a, b))
  assert flops.every_tap_flops(nested, a, b) == 2 * (2 * 3 * 7 * 13 * 11)
  scanned = lambda a, b: lax.scan(lambda c, x: (c, jnp.dot(x, b)), 0.0, a)[1]
  assert flops.every_tap_flops(scanned, a, b) == 2 * 3 * 7 * 13 * 11


# Runs a module with TensorFlow, PyAV and Beam unimportable, as on the GPU machine (jax, flax, optax, torch).
WITHOUT_TENSORFLOW = (
    'import runpy, sys\n'
    'for name in ("tensorflow", "tensorflow_datasets", "av", "apache_beam"):\n'
    '  sys.modules[name] = None\n'
    'sys.argv = sys.argv[1:]\n'
    'runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)\n'
)


def test_train_step_bench_prints_its_table_on_the_cpu_without_tensorflow(tmp_path):
  output = _run(
      [
          '-c',
          WITHOUT_TENSORFLOW,
          'benchmarks.train_step_bench',
          '--config=configs/pmsp_ctp.py:tiny',
          '--rows=imr',
          '--batch_sizes=2',
          '--dtypes=float32',
          '--steps=1',
          '--peak_matmul_size=64',
          f'--profile_dir={tmp_path}',
      ]
  )
  # The profile's summary: the step's time by part of the network, the stem's convolutions among it.
  stem = re.search(r'^stem(\s+[0-9.]+)+\s+([0-9.]+)%$', output, re.M)
  assert stem and float(stem.group(2)) > 0, output
  assert re.search(r'^all: [0-9.]+ ms/step of XLA operations; .*convolution [0-9.]+%', output, re.M), output
  traced = re.search(r'^The trace accounts for ([0-9.]+) s of the ([0-9.]+) s step \(\d+%\)\. On the CPU', output, re.M)
  assert traced and 0 < float(traced.group(1)), output
  assert 'task=pmsp_ctp' in output and 'connections=bidirectional' in output, output
  assert re.search(r'Measured matmul rate per device \(64\^2 operands, best of 10\): float32 JAX [0-9.]+', output)
  row = re.search(
      r'^imr\s+float32\s+2\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+\s+([0-9.e-]+)\s+([0-9.e-]+)\s+([0-9.]+)%$', output, re.M
  )
  assert row, output
  xla, every_tap, mfu = map(float, row.groups())
  assert 0 < xla <= every_tap and mfu > 0


def test_gpu_check_runs_its_three_benchmarks_and_keeps_every_row(tmp_path):
  """benchmarks/gpu_check.sh, its runs shrunk to one tiny CPU row each by GPU_CHECK_ARGS."""
  tiny = '--config=configs/pmsp_ctp.py:tiny --rows=imr --batch_sizes=2 --dtypes=float32 --steps=1 --peak_matmul_size=64'
  env = _env() | {'PYTHON': sys.executable, 'GPU_CHECK_ARGS': tiny}
  result = subprocess.run(
      ['bash', 'benchmarks/gpu_check.sh', str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
  )
  log = (tmp_path / 'bench.log').read_text()
  assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
  assert log.count('+ train_step_bench') == 3 and 'jax.profiler trace of 1 steps' in log, log
  rows = [json.loads(line) for line in (tmp_path / 'rows.jsonl').read_text().splitlines()]
  assert [(row['row'], row['dtype'], row['batch_size']) for row in rows] == [('imr', 'float32', 2)] * 3, rows
  for row in rows:
    assert row['clips_per_s'] == pytest.approx(2 / row['step_s'])
    assert 0 < row['xla_flops_per_clip'] <= row['every_tap_flops_per_clip'] and row['mfu'] > 0
  assert (tmp_path / 'machine.txt').exists()


def test_train_step_bench_starts_no_row_past_its_time_budget(tmp_path):
  output = _run(
      [
          '-m',
          'benchmarks.train_step_bench',
          '--config=configs/pmsp_ctp.py:tiny',
          '--rows=imr,imr_reference',
          '--batch_sizes=2',
          '--dtypes=float32',
          '--peak_matmul_size=64',
          '--time_budget_s=0',
          f'--results={tmp_path / "rows.jsonl"}',
      ]
  )
  assert re.search(r'^imr\s+float32\s+2\s+skipped: past --time_budget_s=0$', output, re.M), output
  assert re.search(r'^imr_reference\s+float32\s+2\s+skipped', output, re.M), output
  assert not (tmp_path / 'rows.jsonl').exists()


def test_conv_bench_checks_and_times_both_formulations():
  output = _run(['-m', 'benchmarks.conv_bench', '--shapes=2x5x8x8x16', '--repeats=1'])
  for row in ('xla_conv3d', 'xla_2d_per_tap'):
    assert re.search(rf'^2x5x8x8x16\s+{row}\s+[0-9.]+ \([0-9]+\)\s+[0-9.]+ \([0-9]+\)$', output, re.M), output


def test_runtime_table_prints_every_row_on_the_cpu():
  output = _run(['-m', 'benchmarks.runtime_table', '--variant=tiny', '--repeats=1', '--batch_size=2', '--clips=1'])
  assert re.search(r're-encode to MPEG-4 \(one-off\) [0-9.]+, compressed-domain extraction [0-9.]+, RGB', output)
  for label in ('IMR R18', 'IMR R50', 'CoViAR (R152 + 2x R18)', 'RGB 3D-ResNet-18, 16 fr.'):
    row = re.search(re.escape(label) + r'\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.e-]+)\s', output)
    assert row and all(float(value) > 0 for value in row.groups()), (label, output)


def test_input_bench_compares_data_sets_side_by_side(tmp_path):
  """Two conversions of the same tiny videos, full-size and --map_downscale=2 maps, timed and compared."""
  data_dirs = []
  for factor in (1, 2):
    data_dirs.append(tmp_path / f'data_{factor}')
    _run(
        [
            '-m',
            'data_prep.convert',
            '--dataset=synthetic',
            f'--source={tmp_path / "videos"}',
            f'--output_dir={data_dirs[-1]}',
            '--synthetic_width=32',
            '--synthetic_height=32',
            '--synthetic_num_frames=24',
            '--synthetic_train_per_class=1',
            '--synthetic_test_per_class=1',
            '--synthetic_classes=rise,fall',
            '--workers=1',
            f'--map_downscale={factor}',
        ]
    )
  output = _run(
      [
          '-m',
          'benchmarks.input_bench',
          f'--data_dirs={",".join(map(str, data_dirs))}',
          '--batch_size=2',
          '--num_batches=1',
          '--warmup_batches=1',
          '--rounds=1',
          '--shuffle_buffer=2',
      ]
  )
  for data_dir, maps, ratio in ((data_dirs[0], '32x32', r'1\.00x'), (data_dirs[1], '16x16', r'[0-9.]+x')):
    row = re.escape(str(data_dir)) + rf'\s+{maps}\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+\s+{ratio}  \([0-9.]+\)$'
    assert re.search(row, output, re.M), output
  compared = re.search(re.escape(str(data_dirs[1])) + r': iframes ([0-9.]+) .* motion_energy ([0-9.]+) ', output)
  assert compared and all(float(value) > 0 for value in compared.groups()), output


def test_bitstream_bench_decodes_every_gop_alone_as_the_codec_does(real_clips, tmp_path):
  """A GOP decoded from its own packets with a fresh decoder equals codec.iter_gops's, bit for bit."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  from benchmarks import bitstream_bench  # pylint: disable=g-import-not-at-top
  from imr_jax import codec  # pylint: disable=g-import-not-at-top

  clip = next(p for p in real_clips if p.name == 'carphone_distorted.mp4')
  codec.reencode(clip, tmp_path / 'clip.m4v', width=64, height=48, gop_size=12)
  packets = bitstream_bench.gop_packets(str(tmp_path / 'clip.m4v'))
  builder = codec.GopBuilder(48, 64)
  seconds = dict.fromkeys(('decode', 'rgb', 'kernels'), 0.0)
  references = list(codec.iter_gops(tmp_path / 'clip.m4v'))
  assert [len(p) for p in packets] == [1 + g.num_pframes for g in references] and len(references) == 10
  for gop_packets, reference in zip(packets[::-1], references[::-1]):  # later GOPs first: no state carried
    gop = bitstream_bench.decode_gop(gop_packets, builder, seconds)
    for name in ('iframe', 'motion_vectors', 'residuals', 'frame_motion_vectors'):
      np.testing.assert_array_equal(getattr(gop, name), getattr(reference, name))
  assert all(value > 0 for value in seconds.values())
