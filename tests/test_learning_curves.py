"""Tests of imr_jax.learning_curves: event files written as the trainer writes them, read back exactly."""

import json
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
  write_run(
      tmp_path,
      [
          (10, {'train/loss': 2.5, 'train/accuracy/2x2_5': 0.1, 'steps_per_sec': 7.3}),
          (20, {'train/loss': 1.7, 'train/accuracy/2x2_5': 0.3, 'steps_per_sec': 7.9}),
          (20, {'eval/loss': 1.9}),  # a second write at the same step, as the trainer's eval does
          (30, {'train/loss': 0.9, 'train/accuracy/2x2_5': 0.45}),
      ],
  )

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


def color_near(image, color, tolerance=40):
  """How many pixels lie within `tolerance` (max abs difference per channel) of `color` ('#rrggbb')."""
  rgb = np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])
  pixels = np.asarray(image.convert('RGB'), np.int32)
  return int((np.abs(pixels - rgb).max(axis=-1) <= tolerance).sum())


def test_plot_curves_draws_one_panel_per_metric_in_rows_of_three(tmp_path):
  steps = np.arange(1, 41, dtype=np.int64)
  loss = learning_curves.Curve(steps, np.exp(-steps / 10.0))
  diverged = learning_curves.Curve(steps, np.where(steps == 20, np.nan, 1.0 / steps))
  curves = {
      'train/loss': loss,
      'eval/loss': learning_curves.Curve(steps[::10], loss.values[::10]),
      'train/a': diverged,
      'train/b': loss,
      'train/c': loss,
  }
  out = tmp_path / 'curves.png'

  panels = learning_curves.plot_curves({'pmsp': curves}, out)

  assert [panel['title'] for panel in panels] == ['a', 'b', 'c', 'loss']
  blue = learning_curves.RUN_COLORS[0]
  assert panels[3]['lines'] == [('pmsp', 'train', blue, '-'), ('pmsp', 'eval', blue, '--')]
  with Image.open(out) as image:
    # 4 panels, 3 across: two rows of 4.4 x 3 inches at 100 dpi, and half an inch of legend.
    assert image.format == 'PNG' and image.size == (3 * 440, 2 * 300 + 50)
    bottom_left_panel = image.crop((0, 350, 440, 650))
    assert color_near(bottom_left_panel, blue) > 200  # the 'loss' lines
    assert color_near(bottom_left_panel, learning_curves.RUN_COLORS[1]) == 0


def test_runs_of_different_tasks_get_their_own_panels(tmp_path):
  curve = learning_curves.Curve(np.arange(1, 4), np.array([0.2, 0.4, 0.5]))
  curves = {'pretraining': {'train/accuracy': curve}, 'finetuning': {'train/accuracy': curve}}
  panels = learning_curves.plot_curves(
      curves, tmp_path / 'a.png', tasks={'pretraining': 'pmsp', 'finetuning': 'classification'}
  )
  assert [panel['title'] for panel in panels] == ['accuracy (classification)', 'accuracy (pmsp)']
  assert [len(panel['lines']) for panel in panels] == [1, 1]
  same = learning_curves.plot_curves(curves, tmp_path / 'b.png', tasks={'pretraining': 'pmsp', 'finetuning': 'pmsp'})
  assert [(panel['title'], len(panel['lines'])) for panel in same] == [('accuracy', 2)]


def test_plot_curves_with_no_matching_metric_lists_what_there_is(tmp_path):
  curves = {'train/loss': learning_curves.Curve(np.array([1]), np.array([0.5]))}
  with pytest.raises(learning_curves.NoCurvesError, match=r"--metrics='top5'.*'train/loss'"):
    learning_curves.plot_curves({'pmsp': curves}, tmp_path / 'curves.png', metrics='top5')


def run_cli(*args):
  return subprocess.run(
      [sys.executable, '-m', 'imr_jax.learning_curves', *map(str, args)],
      cwd=REPO_ROOT,
      capture_output=True,
      text=True,
      timeout=120,
      check=False,
  )


def test_cli_draws_every_run_into_one_png(tmp_path):
  for name, scale, task in (('pmsp', 1.0, 'pmsp'), ('ctp', 2.0, 'ctp')):
    write_run(
        tmp_path / 'runs' / name,
        [
            (
                step,
                {
                    'train/loss': scale / step,
                    'train/accuracy': 1 - scale / step,
                    'steps_per_sec': 3.0,
                    **({'eval/loss': 1.5 * scale / step} if step % 4 == 0 else {}),
                },
            )
            for step in range(1, 13)
        ],
    )
    (tmp_path / 'runs' / name / 'config.json').write_text(
        json.dumps({'command': [], 'config': {'task': {'name': task}}})
    )
  out = tmp_path / 'curves.png'

  result = run_cli(tmp_path / 'runs' / 'pmsp', tmp_path / 'runs' / 'ctp', f'--out={out}')

  assert result.returncode == 0, result.stderr
  # By default loss and accuracy only (no steps_per_sec); the two tasks' accuracies kept apart.
  assert (
      '4 panels: accuracy (ctp), accuracy (pmsp), loss (ctp), loss (pmsp)): pmsp, ctp' in result.stdout
  ), result.stdout
  with Image.open(out) as image:
    legend = image.crop((0, 0, image.size[0], 50))
    for color in learning_curves.RUN_COLORS[:2]:
      assert color_near(legend, color) > 20


def test_cli_names_a_missing_workdir(tmp_path):
  result = run_cli(tmp_path / 'no_such_run', f'--out={tmp_path / "curves.png"}')

  assert result.returncode != 0
  assert str(tmp_path / 'no_such_run') in result.stderr and 'does not exist' in result.stderr
  assert 'Traceback' not in result.stderr
  assert not (tmp_path / 'curves.png').exists()
