"""Tests of imr_jax.learning_curves: event files written as the trainer writes them, read back exactly."""

import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from clu import metric_writers
from PIL import Image
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.summary.writer import event_file_writer

from imr_jax import learning_curves

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def write_run(workdir, writes, subdir=''):
  """Writes [(step, {tag: value})] the way imr_jax.train does: clu's default writer, hparams first."""
  writer = metric_writers.create_default_writer(str(pathlib.Path(workdir) / subdir))
  writer.write_hparams({'learning_rate': 0.1, 'task': 'pmsp'})
  for step, scalars in writes:
    writer.write_scalars(step, scalars)
  writer.write_texts(1, {'note': 'text summaries are not curves'})
  writer.close()


def write_simple_values(folder, tag_values):
  """Writes TF1-style `simple_value` summaries (TensorBoard's loader upgrades them): [(step, tag, value)]."""
  writer = event_file_writer.EventFileWriter(str(folder))
  for step, tag, value in tag_values:
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
    writer.add_event(event_pb2.Event(step=step, wall_time=1.0 + step, summary=summary))
  writer.close()


def as_float32(values):
  return np.asarray(values, np.float32).astype(np.float64)  # what a float32 summary holds exactly


def test_read_scalars_returns_exactly_the_logged_values(tmp_path):
  write_run(tmp_path, [
      (10, {'train/loss': 2.5, 'train/accuracy/2x2_5': 0.1, 'steps_per_sec': 7.3}),
      (20, {'train/loss': 1.7, 'train/accuracy/2x2_5': 0.3, 'steps_per_sec': 7.9}),
      (20, {'eval/loss': 1.9}),  # a second write at the same step, as the trainer's eval does
      (30, {'train/loss': 0.9, 'train/accuracy/2x2_5': 0.45}),
  ])

  curves = learning_curves.read_scalars(tmp_path)

  assert sorted(curves) == ['eval/loss', 'steps_per_sec', 'train/accuracy/2x2_5', 'train/loss']
  np.testing.assert_array_equal(curves['train/loss'].steps, [10, 20, 30])
  np.testing.assert_array_equal(curves['train/loss'].values, as_float32([2.5, 1.7, 0.9]))
  np.testing.assert_array_equal(curves['train/accuracy/2x2_5'].values, as_float32([0.1, 0.3, 0.45]))
  np.testing.assert_array_equal(curves['steps_per_sec'].steps, [10, 20])
  np.testing.assert_array_equal(curves['steps_per_sec'].values, as_float32([7.3, 7.9]))
  np.testing.assert_array_equal(curves['eval/loss'].steps, [20])
  np.testing.assert_array_equal(curves['eval/loss'].values, as_float32([1.9]))
  assert curves['train/loss'].steps.dtype == np.int64


def test_read_scalars_takes_the_split_from_the_folder_and_reads_simple_values(tmp_path):
  write_run(tmp_path, [(5, {'loss': 3.0}), (6, {'loss': 2.0})], subdir='train')
  write_simple_values(tmp_path / 'eval', [(6, 'loss', 2.25), (12, 'loss', 1.5)])

  curves = learning_curves.read_scalars(tmp_path)

  assert sorted(curves) == ['eval/loss', 'train/loss']
  np.testing.assert_array_equal(curves['train/loss'].values, [3.0, 2.0])
  np.testing.assert_array_equal(curves['eval/loss'].steps, [6, 12])
  np.testing.assert_array_equal(curves['eval/loss'].values, [2.25, 1.5])


def test_a_resumed_run_that_logs_a_step_again_keeps_the_later_value(tmp_path):
  write_simple_values(tmp_path, [(1, 'train/loss', 4.0), (2, 'train/loss', 3.0), (3, 'train/loss', 2.0)])
  write_run(tmp_path, [(2, {'train/loss': 2.5}), (4, {'train/loss': 1.0})])  # resumed from step 1, later

  curve = learning_curves.read_scalars(tmp_path)['train/loss']

  np.testing.assert_array_equal(curve.steps, [1, 2, 3, 4])
  np.testing.assert_array_equal(curve.values, [4.0, 2.5, 2.0, 1.0])


@pytest.mark.parametrize('layout', ['missing', 'empty', 'no scalars', 'a file'])
def test_a_workdir_without_curves_is_named_in_the_error(tmp_path, layout):
  workdir = tmp_path / 'runs' / 'pmsp'
  if layout == 'empty':
    workdir.mkdir(parents=True)
  elif layout == 'no scalars':
    writer = metric_writers.create_default_writer(str(workdir))
    writer.write_hparams({'learning_rate': 0.1})
    writer.close()
  elif layout == 'a file':
    workdir.parent.mkdir(parents=True)
    workdir.write_text('not a workdir')

  with pytest.raises(learning_curves.NoCurvesError, match=re.escape(repr(str(workdir)))):
    learning_curves.read_scalars(workdir)


def test_run_names_are_the_shortest_distinct_path_endings():
  assert learning_curves.run_names(['runs/a/pmsp', 'runs/b/pmsp', 'runs/ctp']) == ['a/pmsp', 'b/pmsp', 'ctp']


@pytest.mark.parametrize('low, high, expected_ticks, expected_labels', [
    (0, 2000, [0, 500, 1000, 1500, 2000], ['0', '500', '1000', '1500', '2000']),
    (0.14, 0.9, [0, 0.2, 0.4, 0.6, 0.8, 1.0], ['0', '0.2', '0.4', '0.6', '0.8', '1.0']),
    (0.1, 1.1, [0, 0.25, 0.5, 0.75, 1.0, 1.25], ['0', '0.25', '0.50', '0.75', '1.00', '1.25']),
    (1e-5, 3e-4, [0, 1e-4, 2e-4, 3e-4], ['0', '1e-04', '2e-04', '3e-04']),
    (0, 2.4e6, [0, 5e5, 1e6, 1.5e6, 2e6, 2.5e6], ['0', '0.5M', '1.0M', '1.5M', '2.0M', '2.5M']),
    (-3, -1, [-3, -2.5, -2, -1.5, -1], ['-3.0', '-2.5', '-2.0', '-1.5', '-1.0']),
])
def test_nice_ticks_and_their_labels(low, high, expected_ticks, expected_labels):
  ticks = learning_curves.nice_ticks(low, high)
  # float64 tick positions from a few operations on values <= 1e4: within 1e-12 (u = 1.1e-16).
  np.testing.assert_allclose(ticks, expected_ticks, atol=1e-12)
  assert learning_curves.tick_labels(ticks) == expected_labels


def test_step_ticks_are_whole_numbers_within_the_steps_logged():
  np.testing.assert_array_equal(learning_curves.nice_ticks(1, 12, integer=True, inside=True),
                                [2, 4, 6, 8, 10, 12])
  np.testing.assert_array_equal(learning_curves.nice_ticks(1, 3, integer=True, inside=True), [1, 2, 3])
  np.testing.assert_array_equal(learning_curves.nice_ticks(50_000, 61_000, integer=True, inside=True),
                                [50_000, 52_000, 54_000, 56_000, 58_000, 60_000])


def color_near(image, color, tolerance=40):
  """How many pixels lie within `tolerance` (max abs difference per channel) of `color`."""
  pixels = np.asarray(image.convert('RGB'), np.int32)
  return int((np.abs(pixels - np.array(color)).max(axis=-1) <= tolerance).sum())


def test_plot_curves_draws_one_panel_per_metric_in_rows_of_three(tmp_path):
  steps = np.arange(1, 41, dtype=np.int64)
  loss = learning_curves.Curve(steps, np.exp(-steps / 10.0))
  diverged = learning_curves.Curve(steps, np.where(steps == 20, np.nan, 1.0 / steps))
  curves = {'train/loss': loss, 'eval/loss': learning_curves.Curve(steps[::10], loss.values[::10]),
            'train/a': diverged, 'train/b': loss, 'train/c': loss}
  out = tmp_path / 'curves.png'

  size = learning_curves.plot_curves({'pmsp': curves}, out)

  # 4 panels (a, b, c, loss): 3 across, 2 rows of 300 px, under one legend row (8 + 22 + 8 px).
  assert size == (3 * 440, 38 + 2 * 300)
  with Image.open(out) as image:
    assert image.format == 'PNG' and image.size == size
    bottom_left_panel = image.crop((0, 38 + 300, 440, 38 + 600))
    assert color_near(bottom_left_panel, learning_curves.RUN_COLORS[0]) > 200  # the 'loss' lines
    assert color_near(bottom_left_panel, learning_curves.RUN_COLORS[1]) == 0


def test_plot_curves_with_no_matching_metric_lists_what_there_is(tmp_path):
  curves = {'train/loss': learning_curves.Curve(np.array([1]), np.array([0.5]))}
  with pytest.raises(learning_curves.NoCurvesError, match=r"--metrics='top5'.*'train/loss'"):
    learning_curves.plot_curves({'pmsp': curves}, tmp_path / 'curves.png', metrics='top5')


def run_cli(*args):
  return subprocess.run([sys.executable, '-m', 'imr_jax.learning_curves', *map(str, args)],
                        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_cli_draws_every_run_into_one_png(tmp_path):
  for name, scale in (('pmsp', 1.0), ('ctp', 2.0)):
    write_run(tmp_path / 'runs' / name, [
        (step, {'train/loss': scale / step, 'train/accuracy': 1 - scale / step,
                **({'eval/loss': 1.5 * scale / step} if step % 4 == 0 else {})})
        for step in range(1, 13)])
  out = tmp_path / 'curves.png'

  result = run_cli(tmp_path / 'runs' / 'pmsp', tmp_path / 'runs' / 'ctp', f'--out={out}',
                   '--metrics=loss|accuracy')

  assert result.returncode == 0, result.stderr
  assert 'Wrote' in result.stdout and 'pmsp, ctp' in result.stdout
  with Image.open(out) as image:
    # 2 panels (accuracy, loss) side by side under one legend row: pmsp, ctp, train, eval.
    assert image.size == (2 * 440, 38 + 300)
    legend = image.crop((0, 0, 880, 38))
    loss_panel = image.crop((440, 38, 880, 338))
    for color in learning_curves.RUN_COLORS[:2]:
      assert color_near(legend, color) > 20
      assert color_near(loss_panel, color) > 100


def test_cli_names_a_missing_workdir(tmp_path):
  result = run_cli(tmp_path / 'no_such_run', f'--out={tmp_path / "curves.png"}')

  assert result.returncode != 0
  assert str(tmp_path / 'no_such_run') in result.stderr and 'does not exist' in result.stderr
  assert 'Traceback' not in result.stderr
  assert not (tmp_path / 'curves.png').exists()
