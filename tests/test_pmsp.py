"""PMSP labels and loss on hand-made motion energy with known answers (cells 0-based, raster order)."""

import importlib.util

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from imr_jax import tasks
from imr_jax.tasks import base
from imr_jax.tasks import pmsp
from tests import numerics

pytestmark = pytest.mark.numerics


def cell_slice(cell, grid_size, size):
  """Pixel rows and columns of a 0-based raster cell, when grid_size divides size."""
  side = size // grid_size
  row, col = divmod(cell, grid_size)
  return slice(row * side, (row + 1) * side), slice(col * side, (col + 1) * side)


def make_config(grid_sizes=(2, 4), temporal_bins=(1, 5), num_gops=5, label_mode='argmax'):
  config = ml_collections.ConfigDict()
  config.task = ml_collections.ConfigDict({'name': 'pmsp'})
  config.data = ml_collections.ConfigDict({'num_gops': num_gops, 'p_per_gop': 1})
  config.pmsp = ml_collections.ConfigDict(
      {'grid_sizes': grid_sizes, 'temporal_bins': temporal_bins, 'hidden_dim': 8, 'label_mode': label_mode}
  )
  return config


def make_batch(motion_energy, p_per_gop=1):
  batch_size, num_gops, size, _ = motion_energy.shape
  rng = np.random.default_rng(0)
  batch = {
      'iframes': rng.normal(size=(batch_size, num_gops, size, size, 3)),
      'motion_vectors': rng.normal(size=(batch_size, num_gops * p_per_gop, size, size, 2)),
      'residuals': rng.normal(size=(batch_size, num_gops * p_per_gop, size, size, 3)),
      'motion_energy': motion_energy,
  }
  return {key: value.astype(np.float32) for key, value in batch.items()}


def test_paper_example_2x2_grid_5_bins():
  """r = ([2x2], 5) -> [4, 2, 2, 4, 1] in the paper's 1-based numbering."""
  answer_one_based = [4, 2, 2, 4, 1]
  energy = np.ones((1, 5, 4, 4), np.float32)  # some motion everywhere
  for gop, cell in enumerate(answer_one_based):
    rows, cols = cell_slice(cell - 1, 2, 4)
    energy[0, gop, rows, cols] += 10.0
  result = pmsp.level_targets(jnp.asarray(energy), pmsp.Level(2, 5))
  np.testing.assert_array_equal(np.asarray(result['label'])[0] + 1, answer_one_based)
  np.testing.assert_array_equal(result['valid'], np.ones((1, 5)))


def test_paper_example_4x4_grid_1_bin():
  """r = ([4x4], 1) -> 7: the most energy summed over all GOPs, not the strongest single GOP."""
  energy = np.random.default_rng(0).uniform(0, 1, (1, 5, 8, 8)).astype(np.float32)
  rows, cols = cell_slice(7 - 1, 4, 8)  # cell 7 = row 1, column 2
  energy[0, 1:, rows, cols] += 25.0 / 4  # 4 pixels x 4 GOPs x 6.25 = 100 in total
  rows0, cols0 = cell_slice(0, 4, 8)
  energy[0, 0, rows0, cols0] += 90.0 / 4  # the strongest cell of GOP 0 alone
  result = pmsp.level_targets(jnp.asarray(energy), pmsp.Level(4, 1))
  assert int(result['label'][0, 0]) + 1 == 7
  assert pmsp.one_based_raster_cell(result['label'][0, 0], 4) == (7, 1, 2)  # (number, row, column)
  per_gop = pmsp.level_targets(jnp.asarray(energy), pmsp.Level(4, 5))['label']
  assert int(per_gop[0, 0]) == 0 and np.all(np.asarray(per_gop[0, 1:]) == 6)


@pytest.mark.parametrize('grid_size', [2, 4])
def test_horizontal_flip_maps_cell_r_c_to_r_mirrored(grid_size):
  energy = np.random.default_rng(1).uniform(0, 1, (3, 5, 8, 8)).astype(np.float32)
  level = pmsp.Level(grid_size, 5)
  labels = np.asarray(pmsp.level_targets(jnp.asarray(energy), level)['label'])
  flipped = np.asarray(pmsp.level_targets(jnp.asarray(energy[..., ::-1]), level)['label'])
  np.testing.assert_array_equal(flipped, pmsp.horizontal_flip_cell(labels, grid_size))
  # The mapping itself, for a 4x4 grid: cell 7 (1-based; row 1, column 2) -> row 1, column 1 = cell 6.
  assert pmsp.horizontal_flip_cell(6, 4) == 5
  assert [pmsp.horizontal_flip_cell(c, 2) for c in range(4)] == [1, 0, 3, 2]


def test_segments_of_a_non_divisible_size():
  """7 pixels into 2 cells: boundaries floor(i * 7 / 2) = 0, 3, 7, so the cells are [0, 3) and [3, 7)."""
  np.testing.assert_array_equal(pmsp.segment_starts(7, 2), [0, 3, 7])
  np.testing.assert_array_equal(pmsp.segment_matrix(7, 2), [[1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1, 1]])
  np.testing.assert_array_equal(pmsp.segment_starts(5, 2), [0, 2, 5])  # GOPs into temporal bins
  level = pmsp.Level(2, 1)
  for (row, col), cell in [((0, 2), 0), ((0, 3), 1), ((2, 3), 1), ((3, 2), 2), ((3, 3), 3)]:
    energy = np.zeros((1, 1, 7, 7), np.float32)
    energy[0, 0, row, col] = 1.0
    assert int(pmsp.level_targets(jnp.asarray(energy), level)['label'][0, 0]) == cell, (row, col)


def test_temporal_bins_of_a_non_divisible_gop_count():
  """5 GOPs into 2 bins: GOPs {0, 1} and {2, 3, 4}."""
  energy = np.zeros((1, 5, 2, 2), np.float32)
  energy[0, :, 0, 0] = [1, 2, 0, 0, 0]
  energy[0, :, 1, 1] = [0, 0, 3, 4, 5]
  # Exact: sums of small integers.
  np.testing.assert_array_equal(
      pmsp.cell_energy(jnp.asarray(energy), pmsp.Level(2, 2)), [[[3, 0, 0, 0], [0, 0, 0, 12]]]
  )


def test_ties_go_to_the_first_cell_and_still_bins_are_masked():
  energy = np.zeros((1, 2, 4, 4), np.float32)
  energy[0, 0, 0, 2] = energy[0, 0, 2, 0] = 5.0  # cells 1 and 2 tie in GOP 0; GOP 1 has no motion
  result = pmsp.level_targets(jnp.asarray(energy), pmsp.Level(2, 2))
  np.testing.assert_array_equal(result['label'], [[1, 0]])
  np.testing.assert_array_equal(result['valid'], [[1, 0]])
  np.testing.assert_array_equal(result['distribution'], [[[0, 0.5, 0.5, 0], [0, 0, 0, 0]]])  # 5 / 10


def test_loss_and_metrics_known_values():
  levels = (pmsp.Level(2, 2), pmsp.Level(4, 1))
  energy = np.zeros((2, 2, 4, 4), np.float32)
  energy[0, 0, 0, 0] = 1.0  # example 0: GOP 0 has motion in cell 0 (2x2) = cell 0 (4x4); GOP 1 none
  energy[1, :, 3, 3] = 1.0  # example 1: cell 3 (2x2) in both GOPs, cell 15 (4x4)
  targets = pmsp.targets(jnp.asarray(energy), levels)
  logits = {'2x2_2': jnp.zeros((2, 2, 4)), '4x4_1': jnp.zeros((2, 1, 16))}
  # Uniform logits: every valid bin costs log(cells); argmax picks cell 0 (the first).
  loss, metrics = pmsp.loss_and_metrics(logits, targets, jnp.ones(2), levels)
  expected = (np.log(4) + np.log(16)) / 2
  numerics.assert_within(loss, expected, numerics.cross_entropy_bound(16, 0, expected))
  # Accuracies are exact: counts of right bins over counts of valid bins, small integers.
  np.testing.assert_array_equal(metrics['accuracy/2x2_2'], [1.0, 0.0])  # the empty bin is not counted
  np.testing.assert_array_equal(metrics['accuracy/4x4_1'], [1.0, 0.0])
  np.testing.assert_array_equal(metrics['accuracy'], [1.0, 0.0])
  numerics.assert_within(metrics['loss'], [expected] * 2, numerics.cross_entropy_bound(16, 0, expected))
  # The empty bin's logits (99) do not matter; a margin of 9 costs log(1 + (cells - 1) e^-9).
  logits = {
      '2x2_2': jnp.array([[[9.0, 0, 0, 0], [0, 0, 0, 99]], [[0, 0, 0, 9], [0, 0, 0, 9]]]),
      '4x4_1': 9.0 * jax.nn.one_hot(jnp.array([[0], [15]]), 16),
  }
  loss, metrics = pmsp.loss_and_metrics(logits, targets, jnp.ones(2), levels)
  expected = (np.log1p(3 * np.exp(-9.0)) + np.log1p(15 * np.exp(-9.0))) / 2
  numerics.assert_within(loss, expected, numerics.cross_entropy_bound(16, 9, expected))
  np.testing.assert_array_equal(metrics['accuracy'], [1.0, 1.0])
  # Masked examples do not count: only example 1 (all right) is scored.
  loss_masked, _ = pmsp.loss_and_metrics(
      {'2x2_2': logits['2x2_2'], '4x4_1': jnp.zeros((2, 1, 16))}, targets, jnp.array([0.0, 1.0]), levels
  )
  expected = (np.log1p(3 * np.exp(-9.0)) + np.log(16)) / 2
  numerics.assert_within(loss_masked, expected, numerics.cross_entropy_bound(16, 9, expected))


def test_distribution_label_mode():
  level = pmsp.Level(2, 1)
  energy = np.zeros((1, 1, 2, 2), np.float32)
  energy[0, 0] = [[1, 3], [0, 0]]
  targets = pmsp.targets(jnp.asarray(energy), (level,))
  logits = {'2x2_1': jnp.log(jnp.array([[[0.25, 0.25, 0.25, 0.25]]]))}
  loss, _ = pmsp.loss_and_metrics(logits, targets, jnp.ones(1), (level,), label_mode='distribution')
  numerics.assert_within(loss, np.log(4), numerics.cross_entropy_bound(4, np.log(4), np.log(4)))
  logits = {'2x2_1': jnp.log(jnp.array([[[0.25, 0.75, 1e-9, 1e-9]]]))}
  loss, _ = pmsp.loss_and_metrics(logits, targets, jnp.ones(1), (level,), label_mode='distribution')
  # The logits log(p) are rounded once more (u |log p| <= u 20.8) and the target weights too.
  expected = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))
  numerics.assert_within(loss, expected, numerics.cross_entropy_bound(4, -np.log(1e-9), expected))


def test_pyramid_and_config_errors():
  names = [level.name for level in pmsp.pyramid((2, 4), (1, 5), num_gops=5)]
  assert names == ['2x2_1', '2x2_5', '4x4_1', '4x4_5']
  with pytest.raises(base.ConfigError, match='single cell'):
    pmsp.pyramid((1, 2), (1, 5), num_gops=5)
  with pytest.raises(base.ConfigError, match='num_gops'):
    pmsp.pyramid((2,), (1, 6), num_gops=5)
  with pytest.raises(base.ConfigError, match='label_mode'):
    tasks.build_task(make_config(label_mode='soft'))


def test_task_prepare_is_jittable_and_labels_follow_the_energy():
  energy = np.zeros((2, 5, 8, 8), np.float32)
  energy[0, :, 0:4, 4:8] = 1.0  # example 0: top-right quadrant (2x2 cell 1)
  energy[1, 2, 6, 0] = 1.0  # example 1: only GOP 2, bottom-left (2x2 cell 2, 4x4 cell 12)
  batch = make_batch(energy)
  task = tasks.build_task(make_config())
  assert task.batch_requirements == frozenset()
  inputs, targets = jax.jit(task.prepare)(batch, jax.random.key(0))
  np.testing.assert_array_equal(inputs['motion_vectors'], batch['motion_vectors'])
  np.testing.assert_array_equal(targets['2x2_1']['label'], [[1], [2]])
  np.testing.assert_array_equal(targets['4x4_5']['label'][1], [0, 0, 12, 0, 0])
  np.testing.assert_array_equal(targets['4x4_5']['valid'], [[1] * 5, [0, 0, 1, 0, 0]])
  with pytest.raises(base.ConfigError, match='num_gops'):
    tasks.build_task(make_config(num_gops=4)).prepare(batch, jax.random.key(0))


@pytest.mark.skipif(
    importlib.util.find_spec('imr_jax.models.heads') is None, reason='imr_jax.models.heads is not written yet'
)
def test_heads_end_to_end():
  task = tasks.build_task(make_config())
  head = task.heads()['pmsp']
  features = jnp.ones((2, 6))
  params = head.init(jax.random.key(0), features, train=False)
  logits = head.apply(params, features, train=False)
  energy = np.random.default_rng(0).uniform(0, 1, (2, 5, 8, 8))
  _, targets = task.prepare(make_batch(energy), jax.random.key(1))
  loss, metrics = jax.jit(task.loss_and_metrics)({'pmsp': logits}, targets, jnp.ones(2))
  assert np.isfinite(loss)
  assert set(metrics) == {'loss', 'accuracy', 'accuracy/2x2_1', 'accuracy/2x2_5', 'accuracy/4x4_1', 'accuracy/4x4_5'}
  assert all(m.shape == (2,) for m in metrics.values())
