"""benchmarks.study's bookkeeping: means and standard errors over seeds, and the tables.

Every comparison of a computed mean or error is float64 arithmetic on three values (rounding near
1e-16): pytest.approx's default relative tolerance of 1e-6, or abs=1e-15, is far above it.
"""

import os

import numpy as np
import pytest

from benchmarks import study


def test_mean_and_standard_error_over_seeds():
  mean, error = study.mean_and_error([0.5, 0.7, 0.6])
  assert mean == pytest.approx(0.6, abs=1e-15)
  assert error == pytest.approx(0.1 / np.sqrt(3), abs=1e-15)  # sample std 0.1, 3 seeds
  assert study.mean_and_error([0.4]) == (0.4, 0.0)


def test_tables_have_every_row_with_mean_and_error():
  rows = {}
  for row in study.TABLE1 + study.TABLE2:
    rows[row.name] = {seed: {'video_accuracy': 0.5 + 0.1 * seed} for seed in range(3)}
    if row in study.TABLE1:
      for seed in range(3):
        rows[row.name][seed].update({'probe_accuracy': 0.25, 'R@1': 0.5, 'R@5': 1.0})
  rows['pmsp'][2]['video_accuracy'] = 0.9  # seeds 0, 1, 2: gains over scratch 0, 0, +0.2
  summary = study.summarize(rows)
  assert summary['scratch']['video_accuracy'] == pytest.approx([0.6, 0.1 / np.sqrt(3)])
  assert summary['pmsp']['gain'] == pytest.approx([0.2 / 3, np.std([0, 0, 0.2], ddof=1) / np.sqrt(3)])
  assert 'gain' not in summary['scratch'] and summary['no_connection']['gain'] == [0.0, 0.0]
  tables = study.markdown_tables(summary, num_seeds=3)
  for row in study.TABLE1 + study.TABLE2:
    if row.name != 'pmsp':
      assert f'| {row.title} | 60.0 ± 5.8 |' in tables
  assert '| PMSP | 66.7 ± 12.0 | +6.7 ± 6.7 | 25.0 ± 0.0 | 50.0 ± 0.0 | 100.0 ± 0.0 | - | 76.0 / 44.9 |' in tables
  assert '| No connection | 60.0 ± 5.8 | +0.0 ± 0.0 | 52.7 / 34.6 |' in tables


def test_bar_chart_draws_a_png(tmp_path):
  summary = {row.name: {'video_accuracy': [0.5, 0.05]} for row in study.TABLE2}
  path = tmp_path / 'table2.png'
  study.bar_chart(summary, study.TABLE2, (('video_accuracy', 'from scratch'),), 'Table 2', str(path), chance=1 / 6)
  from PIL import Image  # pylint: disable=g-import-not-at-top

  with Image.open(path) as picture:
    assert picture.size[0] > 400 and picture.size[1] > 300


def test_diagnostics_table_and_run_minutes(tmp_path):
  rows = {name: {0: {'video_accuracy': 0.5}, 1: {'video_accuracy': 0.7}} for name, _, _ in study.SINGLE_STREAMS}
  rows.update({f'{name}_x{study.LONG_BUDGET}': {0: {'video_accuracy': 0.25}} for name, _, _ in study.LONG_BUDGET_ROWS})
  rows['coviar_lr0.01'] = {0: {'video_accuracy': 0.4}, 1: {'video_accuracy': 0.6}, 2: {'video_accuracy': 0.5}}
  table = study.diagnostics_markdown(rows, finetune_epochs=8)
  assert '| Motion vectors only, 8 epochs | 60.0 ± 10.0 | 50.0 / 70.0 |' in table
  assert '| CoViAR (from scratch), 8 epochs, learning rate 0.01 (test) | 50.0 ± 5.8 | 40.0 / 60.0 / 50.0 |' in table
  assert 'learning rate 0.001' not in table  # rows not run are left out
  assert f'| No connection, {8 * study.LONG_BUDGET} epochs | 25.0 ± 0.0 | 25.0 |' in table
  # A run's minutes: from its first event file's name (Unix seconds) to its final_metrics.json.
  run = tmp_path / 'runs' / 'finetune' / 'pmsp_seed0'
  run.mkdir(parents=True)
  (run / 'events.out.tfevents.1000.host.1.0.v2').write_text('')
  (run / 'events.out.tfevents.1600.host.2.0.v2').write_text('')  # a resumed start
  (run / 'final_metrics.json').write_text('{}')
  os.utime(run / 'final_metrics.json', (1900, 1900))
  assert study.run_minutes(str(tmp_path)) == {'finetune/pmsp_seed0': 15.0}
