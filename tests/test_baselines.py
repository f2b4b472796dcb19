"""AOT, Rotation, InfoNCE and classification on hand-made inputs; build_task for every task name."""

import importlib.util

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from imr_jax import tasks
from imr_jax.data import normalization
from imr_jax.tasks import baselines
from imr_jax.tasks import base
from tests import numerics

pytestmark = pytest.mark.numerics

# MVs compared in pixels: normalisation (3 float32 roundings), negation or rotation (at most 2) and
# denormalisation (3) on each side, each within u of a code value <= 255, at 6.375 codes per pixel.
MV_PX_ROUNDING = 2 * 8 * numerics.unit_roundoff(np.float32) * 255 / normalization.MV_CODE_PER_PX


def make_config(name):
  config = ml_collections.ConfigDict()
  config.task = ml_collections.ConfigDict({'name': name})
  config.data = ml_collections.ConfigDict({'num_gops': 2, 'p_per_gop': 2})
  config.pmsp = ml_collections.ConfigDict(
      {'grid_sizes': (2,), 'temporal_bins': (1, 2), 'hidden_dim': 8, 'label_mode': 'argmax', 'loss_weight': 1.0}
  )
  config.ctp = ml_collections.ConfigDict(
      {'classes': ('aligned', 'shifted', 'shuffled', 'mismatched'), 'hidden_dim': 8, 'loss_weight': 1.0}
  )
  config.aot = ml_collections.ConfigDict({'hidden_dim': 8})
  config.rotation = ml_collections.ConfigDict({'hidden_dim': 8})
  config.infonce = ml_collections.ConfigDict({'temperature': 0.1, 'dim': 4, 'hidden_dim': 8})
  config.classification = ml_collections.ConfigDict({'dropout_rate': 0.0})
  config.model = ml_collections.ConfigDict({'name': 'imrnet', 'num_classes': -1})
  return config


def make_batch(batch_size=3, size=4, num_gops=2, p_per_gop=2, seed=0):
  rng = np.random.default_rng(seed)
  mv_px = rng.integers(-19, 20, (batch_size, num_gops * p_per_gop, size, size, 2))
  batch = {
      'iframes': rng.normal(size=(batch_size, num_gops, size, size, 3)).astype(np.float32),
      'motion_vectors': normalization.normalize_motion_vectors(mv_px),
      'residuals': rng.normal(size=(batch_size, num_gops * p_per_gop, size, size, 3)).astype(np.float32),
      'motion_energy': rng.uniform(0, 1, (batch_size, num_gops, size, size)).astype(np.float32),
      'label': np.arange(batch_size, dtype=np.int32),
      'mask': np.ones(batch_size, np.float32),
  }
  for key in base.P_STREAM_KEYS:
    batch.setdefault('shifted', {})[key] = batch[key] + 1.0
  for key in base.STREAM_KEYS:
    batch.setdefault('view2', {})[key] = batch[key][::-1].copy()
  return batch


def test_aot_reverses_every_stream_and_negates_motion_vectors():
  task = tasks.build_task(make_config('aot'))
  batch = make_batch(batch_size=16)
  inputs, targets = jax.jit(task.prepare)(batch, jax.random.key(0))
  backwards = np.asarray(targets['label']).astype(bool)
  assert 0 < backwards.sum() < 16
  for b in range(16):
    if backwards[b]:
      np.testing.assert_array_equal(inputs['iframes'][b], batch['iframes'][b, ::-1])
      np.testing.assert_array_equal(inputs['residuals'][b], batch['residuals'][b, ::-1])
      numerics.assert_within(
          normalization.denormalize_motion_vectors(inputs['motion_vectors'][b]),
          -normalization.denormalize_motion_vectors(batch['motion_vectors'][b, ::-1]),
          MV_PX_ROUNDING,
      )
    else:
      for key in base.STREAM_KEYS:
        np.testing.assert_array_equal(inputs[key][b], batch[key][b])


def test_aot_labels_are_balanced():
  labels = np.asarray(jax.random.bernoulli(jax.random.key(0), 0.5, (2000,)))
  task = tasks.build_task(make_config('aot'))
  _, targets = jax.jit(task.prepare)(make_batch(batch_size=2000, size=1), jax.random.key(0))
  np.testing.assert_array_equal(targets['label'], labels)  # the rng alone decides
  assert 900 < labels.sum() < 1100


def test_rotation_of_the_image_streams_matches_numpy_rot90():
  batch = make_batch(batch_size=4)
  inputs = base.streams(batch)
  turns = jnp.array([0, 1, 2, 3])
  rotated = jax.jit(baselines.rotate)(inputs, turns)
  for b in range(4):
    for key in ('iframes', 'residuals'):
      np.testing.assert_array_equal(rotated[key][b], np.rot90(batch[key][b], k=b, axes=(1, 2)))


def test_rotating_a_rightward_motion_by_90_degrees_makes_it_move_up():
  """An object at rows 1-2, columns 0-1 of a 6x6 frame moves 3 px right (+x; image y points down)."""
  mv_px = np.zeros((1, 1, 6, 6, 2), np.float32)
  mv_px[0, 0, 1:3, 0:2] = [3.0, 0.0]
  inputs = {'motion_vectors': normalization.normalize_motion_vectors(jnp.asarray(mv_px))}
  expected_px = np.zeros_like(mv_px)
  # 90 degrees counter-clockwise: pixel (y, x) -> (5 - x, y); so rows 4-5, columns 1-2; and
  # (dx, dy) = (3, 0) -> (dy, -dx) = (0, -3): it now moves up.
  expected_px[0, 0, 4:6, 1:3] = [0.0, -3.0]
  for turns, expected in [
      (1, expected_px),
      (2, np.rot90(-mv_px, 2, axes=(2, 3))),  # (-dx, -dy): moves left
      (3, np.rot90(mv_px[..., ::-1] * [-1, 1], 3, axes=(2, 3))),
  ]:  # (-dy, dx): down
    rotated = baselines.rotate(inputs, jnp.array([turns]))['motion_vectors']
    numerics.assert_within(normalization.denormalize_motion_vectors(rotated), expected, MV_PX_ROUNDING)
  moved_down = baselines.rotate(inputs, jnp.array([3]))['motion_vectors']
  numerics.assert_within(normalization.denormalize_motion_vectors(moved_down)[0, 0, 0, 4, 1], 3.0, MV_PX_ROUNDING)


def test_rotating_four_times_returns_the_input():
  inputs = base.streams(make_batch(batch_size=4))
  rotate = jax.jit(baselines.rotate)
  for turns in ([1, 1, 1, 1], [0, 1, 2, 3], [3, 2, 1, 0]):
    result = inputs
    for _ in range(4):
      result = rotate(result, jnp.array(turns))
    np.testing.assert_array_equal(result['iframes'], inputs['iframes'])
    np.testing.assert_array_equal(result['residuals'], inputs['residuals'])
    # MVs: each component negated twice, 2 * MV_ZERO - (2 * MV_ZERO - n), exact up to float32
    # rounding (at most one unit in the last place).
    np.testing.assert_allclose(
        result['motion_vectors'], inputs['motion_vectors'], rtol=0, atol=float(np.spacing(np.float32(0.5)))
    )


def test_rotation_task_labels_are_the_turns_and_frames_must_be_square():
  task = tasks.build_task(make_config('rotation'))
  batch = make_batch(batch_size=400, size=2)
  inputs, targets = jax.jit(task.prepare)(batch, jax.random.key(0))
  turns = np.asarray(targets['label'])
  assert all(70 < np.sum(turns == k) < 130 for k in range(4))  # 100 expected each
  expected = jax.jit(baselines.rotate)(base.streams(batch), jnp.asarray(turns))
  for key in base.STREAM_KEYS:
    np.testing.assert_array_equal(inputs[key], expected[key])
  batch['iframes'] = batch['iframes'][:, :, :1]
  with pytest.raises(base.ConfigError, match='square'):
    task.prepare(batch, jax.random.key(0))


def test_info_nce_known_values():
  tau = 0.5
  z = jnp.eye(3) * 7.0  # orthogonal, not yet normalised: similarity 1 with itself, 0 with others
  loss, metrics = baselines.info_nce(z, z, jnp.ones(3), tau)
  expected = -np.log(np.exp(2.0) / (np.exp(2.0) + 2.0))
  # Logits are cosine similarities / tau: at most 2; normalising rounds them by a few u more.
  bound = numerics.cross_entropy_bound(3, 2.0, expected) + numerics.gamma(4) * 2.0
  numerics.assert_within(loss, expected, bound)
  numerics.assert_within(metrics['loss'], [expected] * 3, bound)
  np.testing.assert_array_equal(metrics['accuracy'], [1, 1, 1])
  # Padding (mask 0) is no negative: two real examples leave one negative each.
  loss, _ = baselines.info_nce(z, z, jnp.array([1.0, 1.0, 0.0]), tau)
  expected = -np.log(np.exp(2.0) / (np.exp(2.0) + 1.0))
  numerics.assert_within(loss, expected, bound)
  # Views 2 of examples 0 and 1 swapped: both retrieve the other clip, in both directions.
  z2 = jnp.array([[0.0, 1, 0], [1, 0, 0], [0, 0, 1]])
  _, metrics = baselines.info_nce(z, z2, jnp.ones(3), tau)
  np.testing.assert_array_equal(metrics['accuracy'], [0.0, 0.0, 1.0])
  # Views 2 of examples 0 and 1 both equal view 1 of example 1. Example 0: its view 1 is orthogonal
  # to every view 2, a tie that argmax gives to the first index (right); its view 2 retrieves view 1
  # of example 1 (wrong). Example 1: its view 1 ties views 2 of 0 and 1 and takes 0 (wrong); its view
  # 2 retrieves its own view 1 (right).
  z2 = jnp.array([[0.0, 1, 0], [0, 1, 0], [0, 0, 1]])
  _, metrics = baselines.info_nce(z, z2, jnp.ones(3), tau)
  np.testing.assert_array_equal(metrics['accuracy'], [0.5, 0.5, 1.0])  # means of 0s and 1s


def test_info_nce_task_views_and_loss_are_symmetric():
  task = tasks.build_task(make_config('infonce'))
  assert task.batch_requirements == frozenset({'view2'})
  batch = make_batch()
  views, targets = jax.jit(task.prepare)(batch, jax.random.key(0))
  np.testing.assert_array_equal(views[1]['iframes'], batch['view2']['iframes'])
  np.testing.assert_array_equal(views[0]['residuals'], batch['residuals'])
  e1, e2 = jax.random.normal(jax.random.key(1), (2, 3, 4))
  loss_12, _ = task.loss_and_metrics([{'projection': e1}, {'projection': e2}], targets, jnp.ones(3))
  loss_21, _ = task.loss_and_metrics([{'projection': e2}, {'projection': e1}], targets, jnp.ones(3))
  # The same terms summed in another order: both within the cross-entropy bound of the exact loss
  # (logits: cosine similarities / temperature, at most 1 / 0.1 = 10 in magnitude).
  numerics.assert_within(loss_12, loss_21, 2 * numerics.cross_entropy_bound(3, 10.0, float(loss_12)))
  with pytest.raises(KeyError, match=r"batch\['view2'\] has no \['iframes'"):
    task.prepare({k: v for k, v in batch.items() if k != 'view2'}, jax.random.key(0))


def test_classification_loss_accuracy_and_padding():
  task = tasks.build_task(make_config('classification'), num_classes=3)
  batch = make_batch()
  inputs, targets = jax.jit(task.prepare)(batch, jax.random.key(0))
  np.testing.assert_array_equal(inputs['iframes'], batch['iframes'])
  logits = jnp.log(jnp.array([[0.5, 0.25, 0.25], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]))
  loss, metrics = task.loss_and_metrics({'classifier': logits}, targets, jnp.ones(3))
  # Logits log(p), at most |log 0.1| = 2.3.
  expected = -(np.log(0.5) + np.log(0.3) + np.log(0.6)) / 3
  numerics.assert_within(loss, expected, numerics.cross_entropy_bound(3, 2.31, -np.log(0.3)))
  np.testing.assert_array_equal(metrics['accuracy'], [1, 0, 1])
  padded = {'label': jnp.array([0, 1, -1])}  # evaluation padding: label -1, mask 0
  loss, _ = task.loss_and_metrics({'classifier': logits}, padded, jnp.array([1.0, 1.0, 0.0]))
  expected = -(np.log(0.5) + np.log(0.3)) / 2
  numerics.assert_within(loss, expected, numerics.cross_entropy_bound(3, 2.31, -np.log(0.3)))
  with pytest.raises(base.ConfigError, match='num_classes'):
    tasks.build_task(make_config('classification'))


def test_class_logits_name_the_class_scores_of_each_model():
  logits = jnp.ones((3, 5))
  assert tasks.build_task(make_config('classification'), num_classes=5).class_logits({'classifier': logits}) is logits
  for name in ('pmsp', 'ctp', 'aot', 'rotation', 'infonce'):
    assert tasks.build_task(make_config(name)).class_logits({'features': logits}) is None


def test_classification_with_coviar_sums_stream_losses_and_scores_fused_logits():
  config = make_config('classification')
  config.model.name = 'coviar'
  task = tasks.build_task(config, num_classes=3)
  assert task.heads() == {}
  labels = jnp.array([0, 1, 2])
  stream_logits = {
      'i': jnp.log(jnp.array([[0.5, 0.25, 0.25], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])),
      'm': jnp.log(jnp.array([[0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])),
  }
  # Fused scores that disagree with both streams on example 0: accuracy must come from them alone.
  fused = jnp.array([[0.0, 0.0, 9.0], [0.0, 9.0, 0.0], [0.0, 0.0, 9.0]])
  outputs = {'logits': fused, 'stream_logits': stream_logits, 'features': jnp.ones((3, 4))}
  assert task.class_logits(outputs) is fused
  loss, metrics = task.loss_and_metrics(outputs, {'label': labels}, jnp.array([1.0, 1.0, 0.0]))
  i_loss = -np.log([0.5, 0.3, 0.6])
  m_loss = -np.log([0.1, 0.7, 0.8])
  # Two streams' losses (logits log(p), at most |log 0.1| = 2.3), each within the bound, then added.
  bound = 2 * numerics.cross_entropy_bound(3, 2.31, 2.31) + numerics.gamma(1) * 4.7
  numerics.assert_within(loss, i_loss[:2].mean() + m_loss[:2].mean(), bound)
  numerics.assert_within(metrics['loss'], i_loss + m_loss, bound)
  np.testing.assert_array_equal(metrics['accuracy'], [0, 1, 1])
  np.testing.assert_array_equal(metrics['accuracy/i'], [1, 0, 1])
  numerics.assert_within(metrics['loss/m'], m_loss, numerics.cross_entropy_bound(3, 2.31, 2.31))
  config.model.num_classes = 7
  with pytest.raises(base.ConfigError, match='model.num_classes'):
    tasks.build_task(config, num_classes=3)


def test_unknown_task_name():
  with pytest.raises(base.ConfigError, match='pmsp'):
    tasks.build_task(make_config('jigsaw'))


@pytest.mark.skipif(
    importlib.util.find_spec('imr_jax.models.heads') is None, reason='imr_jax.models.heads is not written yet'
)
@pytest.mark.parametrize('name', tasks.TASK_NAMES)
def test_every_task_end_to_end_with_its_heads(name):
  """prepare -> heads on stand-in features -> loss, under one jit: a finite loss and (B,) metrics."""
  task = tasks.build_task(make_config(name), num_classes=5)
  heads = task.heads()
  features = jnp.ones((3, 6))
  params = {n: h.init(jax.random.key(0), features, train=False) for n, h in heads.items()}

  @jax.jit
  def step(batch, rng):
    inputs, targets = task.prepare(batch, rng)
    views = inputs if isinstance(inputs, list) else [inputs]
    outputs = [
        {
            n: h.apply(params[n], jnp.mean(v['iframes'], axis=(1, 2, 3)).repeat(2, axis=-1), train=False)
            for n, h in heads.items()
        }
        for v in views
    ]
    return task.loss_and_metrics(outputs if isinstance(inputs, list) else outputs[0], targets, batch['mask'])

  loss, metrics = step(make_batch(), jax.random.key(1))
  assert np.isfinite(loss)
  assert metrics and all(m.shape == (3,) and np.all(np.isfinite(m)) for m in metrics.values())


@pytest.mark.parametrize('variant', ['', 'tiny', 'demo'])
def test_every_task_builds_from_the_project_configs(variant):
  """configs/default.py holds every key build_task reads, for every task, in every shared variant."""
  from configs import default  # pylint: disable=g-import-not-at-top

  for name in tasks.TASK_NAMES:
    config = default.get_config(variant)
    config.task.name = name
    task = tasks.build_task(config, num_classes=4)
    assert set(task.heads()) and task.batch_requirements <= {'shifted', 'view2'}
