"""CTP transforms on P-frames that carry their own identity (example, GOP, frame) as pixel values."""

import itertools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from imr_jax import tasks
from imr_jax.tasks import base
from imr_jax.tasks import ctp
from imr_jax.tasks import pmsp
from tests import numerics

pytestmark = pytest.mark.numerics

SHIFTED_ID = 10_000_000  # above every id of the batch (1000 b + ...), exact in float32


def make_config(name='ctp', classes=ctp.CLASSES, num_gops=3):
  config = ml_collections.ConfigDict()
  config.task = ml_collections.ConfigDict({'name': name})
  config.data = ml_collections.ConfigDict({'num_gops': num_gops, 'p_per_gop': 2})
  config.ctp = ml_collections.ConfigDict({'classes': classes, 'hidden_dim': 8, 'loss_weight': 1.0})
  config.pmsp = ml_collections.ConfigDict(
      {'grid_sizes': (2,), 'temporal_bins': (1, num_gops), 'hidden_dim': 8, 'label_mode': 'argmax', 'loss_weight': 0.5}
  )
  return config


def frame_ids(batch_size, num_gops, p_per_gop, offset=0):
  """float32 (B, G * p): id = offset + 1000 b + 10 g + j of P-frame j of GOP g of example b."""
  b, g, j = np.meshgrid(np.arange(batch_size), np.arange(num_gops), np.arange(p_per_gop), indexing='ij')
  return (offset + 1000 * b + 10 * g + j).reshape(batch_size, -1).astype(np.float32)


def make_batch(batch_size, num_gops=3, p_per_gop=2, size=2, shifted=True):
  """Every pixel of a P-frame holds its id (MV channels id, -id; residual channels id, id + 1, id + 2)."""
  ids = frame_ids(batch_size, num_gops, p_per_gop)[:, :, None, None, None]
  ones = np.ones((1, 1, size, size, 1), np.float32)
  batch = {
      'iframes': np.random.default_rng(0).normal(size=(batch_size, num_gops, size, size, 3)).astype(np.float32),
      'motion_vectors': np.concatenate([ids, -ids], axis=-1) * ones,
      'residuals': np.concatenate([ids, ids + 1, ids + 2], axis=-1) * ones,
      'motion_energy': np.zeros((batch_size, num_gops, size, size), np.float32),
  }
  if shifted:
    batch['shifted'] = {
        'motion_vectors': batch['motion_vectors'] + SHIFTED_ID * np.array([1, -1], np.float32),
        'residuals': batch['residuals'] + SHIFTED_ID,
    }
  return batch


def decode(inputs):
  """(B, T_P) ids of the P-frames the network sees; checks MVs and residuals agree pixel by pixel."""
  ids = np.asarray(inputs['motion_vectors'][..., 0])
  np.testing.assert_array_equal(inputs['motion_vectors'][..., 1], -ids)
  for channel in range(3):
    np.testing.assert_array_equal(inputs['residuals'][..., channel], ids + channel)
  assert np.all(ids == ids[:, :, :1, :1])
  return ids[:, :, 0, 0]


def check_correspondence(ids, original, kinds):
  """Checks every example's P-frames against the rule of its kind; returns the mismatch offsets."""
  batch_size, num_frames = ids.shape
  per_gop = ids.reshape(batch_size, 3, -1)
  offsets = set()
  for b, kind in enumerate(kinds):
    if kind == ctp.ALIGNED:
      np.testing.assert_array_equal(ids[b], original[b])
    elif kind == ctp.SHIFTED:
      np.testing.assert_array_equal(ids[b], original[b] + SHIFTED_ID)
    elif kind == ctp.SHUFFLED:
      gop_order = (per_gop[b, :, 0] - 1000 * b) // 10
      assert sorted(gop_order) == [0, 1, 2] and list(gop_order) != [0, 1, 2], gop_order
      np.testing.assert_array_equal(per_gop[b], original[b].reshape(3, -1)[gop_order.astype(int)])
    else:
      source = int(ids[b, 0] // 1000)
      offsets.add((source - b) % batch_size)
      np.testing.assert_array_equal(ids[b], original[source])
  assert 0 not in offsets and len(offsets) <= 1
  return offsets


def test_permutation_from_index_is_a_bijection_starting_at_the_identity():
  permutations = np.asarray(ctp.permutation_from_index(jnp.arange(24), 4))
  assert [tuple(p) for p in permutations] == list(itertools.permutations(range(4)))


def test_shuffled_orders_are_uniform_over_the_non_identity_permutations():
  sample = jax.jit(ctp.sample_nonidentity_permutations, static_argnums=(1, 2))
  orders = sample(jax.random.key(0), 5000, 3)
  assert np.all(np.sort(orders, axis=1) == np.arange(3))
  counts = np.bincount(np.asarray(orders) @ np.array([9, 3, 1]), minlength=27)
  # Lexicographic codes of the 6 permutations of 0..2; the identity (0, 1, 2) has code 5.
  codes = [int(np.dot(p, [9, 3, 1])) for p in itertools.permutations(range(3))]
  assert counts[codes[0]] == 0 and counts.sum() == 5000
  assert all(800 < counts[c] < 1200 for c in codes[1:]), counts  # 1000 expected each
  np.testing.assert_array_equal(sample(jax.random.key(1), 3, 2), [[1, 0]] * 3)  # the only one


def test_correspond_on_hand_made_indices():
  per_gop = {'x': jnp.array([[0, 1, 2], [10, 11, 12], [20, 21, 22], [30, 31, 32]])}
  shifted = {'x': per_gop['x'] + 100}
  kinds = jnp.array([ctp.ALIGNED, ctp.SHIFTED, ctp.SHUFFLED, ctp.MISMATCHED])
  orders = jnp.array([[2, 1, 0]] * 4)
  moved = ctp.correspond(per_gop, shifted, kinds, orders, jnp.array(3))
  np.testing.assert_array_equal(moved['x'], [[0, 1, 2], [110, 111, 112], [22, 21, 20], [20, 21, 22]])


def test_prepare_applies_each_kind_and_keeps_iframes():
  task = tasks.build_task(make_config())
  assert task.batch_requirements == frozenset({'shifted'})
  batch = make_batch(batch_size=64)
  inputs, targets = jax.jit(task.prepare)(batch, jax.random.key(0))
  np.testing.assert_array_equal(inputs['iframes'], batch['iframes'])
  kinds, labels = np.asarray(targets['kind']), np.asarray(targets['label'])
  np.testing.assert_array_equal(labels, kinds)  # classes in CLASSES order: label = kind
  assert set(kinds) == {0, 1, 2, 3}
  check_correspondence(decode(inputs), frame_ids(64, 3, 2), kinds)


def test_classes_are_uniform_and_labels_index_the_configured_classes():
  classes = ('mismatched', 'aligned', 'shuffled')
  task = tasks.build_task(make_config(classes=classes))
  assert task.batch_requirements == frozenset()
  batch = make_batch(batch_size=600, size=1, shifted=False)
  inputs, targets = jax.jit(task.prepare)(batch, jax.random.key(1))
  kinds, labels = np.asarray(targets['kind']), np.asarray(targets['label'])
  np.testing.assert_array_equal(kinds, np.array([ctp.MISMATCHED, ctp.ALIGNED, ctp.SHUFFLED])[labels])
  assert all(150 < np.sum(labels == c) < 250 for c in range(3))  # 200 expected each
  check_correspondence(decode(inputs), frame_ids(600, 3, 2), kinds)


def test_binary_is_half_aligned_and_negatives_cover_the_other_kinds():
  task = tasks.build_task(make_config(name='ctp_binary'))
  batch = make_batch(batch_size=800, size=1)
  inputs, targets = jax.jit(task.prepare)(batch, jax.random.key(2))
  kinds, labels = np.asarray(targets['kind']), np.asarray(targets['label'])
  np.testing.assert_array_equal(labels, kinds != ctp.ALIGNED)
  assert 340 < np.sum(labels == 0) < 460  # 400 expected
  assert all(90 < np.sum(kinds == k) < 180 for k in (1, 2, 3))  # 133 expected each
  check_correspondence(decode(inputs), frame_ids(800, 3, 2), kinds)


def test_impossible_configs_raise_clear_errors():
  with pytest.raises(base.ConfigError, match='num_gops'):
    tasks.build_task(make_config(num_gops=1))
  tasks.build_task(make_config(classes=('aligned', 'mismatched'), num_gops=1))  # no shuffling: fine
  with pytest.raises(base.ConfigError, match='at least 2'):
    tasks.build_task(make_config()).prepare(make_batch(batch_size=1), jax.random.key(0))
  with pytest.raises(base.ConfigError, match='aligned'):
    tasks.build_task(make_config(name='ctp_binary', classes=('shifted', 'shuffled')))
  with pytest.raises(base.ConfigError, match='classes'):
    tasks.build_task(make_config(classes=('aligned', 'reversed')))
  with pytest.raises(KeyError, match=r"batch\['shifted'\]"):
    tasks.build_task(make_config()).prepare(make_batch(batch_size=2, shifted=False), jax.random.key(0))


def test_loss_and_metrics():
  task = tasks.build_task(make_config())
  logits = jnp.log(jnp.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.2, 0.3, 0.4]]))
  loss, metrics = task.loss_and_metrics({'ctp': logits}, {'label': jnp.array([0, 2])}, jnp.ones(2))
  # Logits log(p), at most |log 0.1| = 2.3.
  expected = [-np.log(0.7), -np.log(0.3)]
  numerics.assert_within(loss, np.mean(expected), numerics.cross_entropy_bound(4, 2.31, max(expected)))
  np.testing.assert_array_equal(metrics['accuracy'], [1.0, 0.0])
  numerics.assert_within(metrics['loss'], expected, numerics.cross_entropy_bound(4, 2.31, max(expected)))


@pytest.mark.parametrize('with_shifted_energy', [False, True])
def test_pmsp_ctp_labels_follow_the_p_frames_shown(with_shifted_energy):
  task = tasks.build_task(make_config(name='pmsp_ctp'))
  batch = make_batch(batch_size=16)
  rng = np.random.default_rng(3)
  batch['motion_energy'] = rng.uniform(0, 1, (16, 3, 2, 2)).astype(np.float32)
  if with_shifted_energy:
    batch['shifted']['motion_energy'] = rng.uniform(0, 1, (16, 3, 2, 2)).astype(np.float32)
  inputs, targets = jax.jit(task.prepare)(batch, jax.random.key(4))
  kinds = np.asarray(targets['ctp']['kind'])
  # The energy the labels come from, rebuilt from the P-frame ids the network sees.
  ids = decode(inputs).reshape(16, 3, 2)[:, :, 0]
  shown = np.zeros_like(batch['motion_energy'])
  for b in range(16):
    for g in range(3):
      # Without the pipeline's shifted energy, shifted clips get zero energy (and are masked below).
      shifted_energy = batch['shifted'].get('motion_energy', np.zeros_like(batch['motion_energy']))
      source = shifted_energy if ids[b, g] >= SHIFTED_ID else batch['motion_energy']
      example, rest = divmod(int(ids[b, g] % SHIFTED_ID), 1000)
      gop = rest // 10
      shown[b, g] = source[example, gop]
  expected = pmsp.level_targets(jnp.asarray(shown), pmsp.Level(2, 3))
  np.testing.assert_array_equal(targets['pmsp']['2x2_3']['label'], expected['label'])
  valid = np.ones(16) if with_shifted_energy else (kinds != ctp.SHIFTED).astype(np.float32)
  np.testing.assert_array_equal(targets['pmsp']['2x2_3']['valid'], valid[:, None] * np.ones(3))
  outputs = {'pmsp': {'2x2_1': jnp.zeros((16, 1, 4)), '2x2_3': jnp.zeros((16, 3, 4))}, 'ctp': jnp.zeros((16, 4))}
  loss, metrics = task.loss_and_metrics(outputs, targets, jnp.ones(16))
  # Two uniform-logit losses of 4 classes, weighted 0.5 and 1 (exact) and added (u of the sum).
  bound = 2 * numerics.cross_entropy_bound(4, 0, np.log(4)) + numerics.gamma(1) * 1.5 * np.log(4)
  numerics.assert_within(loss, 1.5 * np.log(4), bound)
  assert {'loss', 'pmsp/loss', 'pmsp/accuracy/2x2_3', 'ctp/accuracy'} <= set(metrics)
  numerics.assert_within(metrics['loss'][0], 1.5 * np.log(4), bound)
