"""The PyTorch reference (benchmarks/torch_reference.py) is the same network as IMRNet(connections='none').

Skipped where PyTorch is not installed (the quick start's set-up does not install it: several GB);
.ci/run installs requirements-torch.txt and runs this file.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import re

from benchmarks import flops
from benchmarks import train_step_bench
from configs import default
from imr_jax import models
from imr_jax import train
from tests import numerics
from tests.test_benchmarks import WITHOUT_TENSORFLOW
from tests.test_main import _run

torch = pytest.importorskip('torch')
torch_reference = pytest.importorskip('benchmarks.torch_reference')


def _model_config(depth, widths, p_temporal_strides, i_temporal_strides=(1, 1, 1, 1, 1), dtype='float32'):
  config = default.base_config().model
  config.update(
      depth=depth,
      widths=widths,
      connections='none',
      p_temporal_strides=p_temporal_strides,
      i_temporal_strides=i_temporal_strides,
      dtype=dtype,
  )
  return config


def _random_variables(module, inputs, seed):
  """Variables of the right shapes, every tensor random (a swapped or mis-laid tensor changes the outputs)."""
  shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), **inputs, train=False))
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = path[-1].key
    if name == 'kernel':
      return rng.normal(size=leaf.shape) * np.sqrt(2 / np.prod(leaf.shape[:-1]))
    if name in ('scale', 'var'):
      return rng.uniform(0.5, 1.5, leaf.shape)
    return rng.normal(scale=0.1, size=leaf.shape)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def _torch_inputs(inputs):
  """(B, T, H, W, C) arrays -> (B, C, T, H, W) float64 tensors."""
  return {name: torch.from_numpy(np.asarray(x).transpose(0, 4, 1, 2, 3).copy()) for name, x in inputs.items()}


@pytest.mark.numerics
@pytest.mark.parametrize(
    'depth, widths, p_temporal_strides, i_temporal_strides',
    [
        (10, (4, 4, 8, 8), (1, 1, 2, 2, 2), (1, 1, 1, 1, 1)),  # basic blocks, IMR-R18's P-stream striding
        (50, (2, 2, 2, 4), (2, 1, 1, 2, 1), (1, 2, 1, 1, 1)),  # bottlenecks, a temporally strided stem pool
    ],
)
def test_same_features_and_gradients_as_the_flax_network(depth, widths, p_temporal_strides, i_temporal_strides):
  """Flax parameters copied into the reference: features (training and evaluation) and every gradient agree.

  In float64, to FLOAT64_RTOL of each array's magnitude (tests/numerics.py): two implementations of the
  same function through many layers, as the strided-conv comparison in test_models.py.
  """
  config = _model_config(depth, widths, p_temporal_strides, i_temporal_strides, dtype='float64')
  rng = np.random.default_rng(0)
  shapes = {'iframes': (2, 3, 33, 30, 3), 'motion_vectors': (2, 7, 33, 30, 2), 'residuals': (2, 7, 33, 30, 3)}
  inputs = {name: rng.normal(size=shape) for name, shape in shapes.items()}
  weights = rng.normal(size=(2, 3 * models.resnet3d.stage_output_channels(depth, widths)[-1]))

  reference = torch_reference.IMRReference.from_model_config(config).double()
  with jax.enable_x64(True):
    backbone = models.build_backbone(config)
    variables = _random_variables(backbone, {k: jnp.asarray(v) for k, v in inputs.items()}, seed=1)
    torch_reference.load_flax_variables(reference, variables)

    def loss(params, train):
      out = backbone.apply(
          {'params': params, 'batch_stats': variables['batch_stats']}, **inputs, train=train, mutable=['batch_stats']
      )[0]
      return jnp.sum(out['features'] * weights), out['features']

    (_, train_features), grads = jax.jit(jax.value_and_grad(lambda p: loss(p, True), has_aux=True))(variables['params'])
    _, eval_features = jax.jit(lambda p: loss(p, False))(variables['params'])

  reference.train()
  features = reference(**_torch_inputs(inputs))
  torch.sum(features * torch.from_numpy(weights)).backward()
  numerics.relative_to_magnitude(features.detach().numpy(), train_features, numerics.FLOAT64_RTOL, 'train features')
  torch_grads = torch_reference.gradients_as_flax(reference, variables['params'])
  # Each gradient to FLOAT64_RTOL of its own magnitude, or of 1e-3 of the largest gradient's where its own is
  # smaller: some are zero analytically and hold only rounding noise of their terms (a stem norm's bias,
  # when every max-pool window's maximum is positive: a shift passes the pool unchanged, and the batch
  # norms after it remove it). A wrong layout or mapping shows at the scale of the values themselves.
  grads = jax.tree.map(np.asarray, grads)
  largest = max(np.abs(g).max() for g in jax.tree.leaves(grads))
  jax.tree_util.tree_map_with_path(
      lambda path, e, a: numerics.assert_within(
          a, e, numerics.FLOAT64_RTOL * max(np.abs(e).max(), 1e-3 * largest), jax.tree_util.keystr(path)
      ),
      grads,
      torch_grads,
  )
  torch_reference.load_flax_variables(reference, variables)  # the training pass moved the running averages
  reference.eval()
  with torch.no_grad():
    features = reference(**_torch_inputs(inputs))
  numerics.relative_to_magnitude(features.numpy(), eval_features, numerics.FLOAT64_RTOL, 'eval features')
  # The comparison is not empty: both modes differ, and the features are far from zero.
  assert np.abs(np.asarray(train_features) - np.asarray(eval_features)).max() > 1e-3
  assert train_features.shape == (2, weights.shape[1])


def test_a_flax_tensor_with_no_counterpart_is_refused():
  reference = torch_reference.IMRReference(10, (2, 2, 2, 2), 'i')
  with pytest.raises(KeyError, match='m_stream/stem/conv/kernel'):
    torch_reference.load_flax_variables(reference, {'params': {'m_stream': {'stem': {'conv': {'kernel': np.ones(1)}}}}})


def _jax_reference_step_flops(config, batch_size, num_classes):
  """Every-tap FLOPs of our real train step of the reference network (classification, no connections), traced only."""
  reference = train_step_bench.reference_config(config)
  model, task = train.build_model_and_task(reference, num_classes)
  batch = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype),
      train_step_bench.random_batch(reference, batch_size, num_classes),
  )
  example_inputs, _ = jax.eval_shape(task.prepare, batch, jax.random.key(0))
  tx, schedule = train.make_optimizer(reference, steps_per_epoch=10, total_steps=100)
  state = jax.eval_shape(
      lambda inputs, rng: train.init_state(model, tx, inputs, rng), example_inputs, jax.random.key(0)
  )
  step = lambda state, batch, rng: train.train_step(state, batch, rng, model=model, task=task, schedule=schedule)
  return flops.every_tap_flops(step, state, batch, jax.random.key(1))


@pytest.mark.parametrize('variant', ['tiny', 'default'])
def test_flop_counter_of_the_reference_step_equals_our_every_tap_count(variant):
  """torch.utils.flop_counter on the reference's forward + backward == benchmarks.flops on our step.

  'default' is IMR-R18 at 112 px (T_I 5, T_P 25), counted on PyTorch's meta device (shapes only).
  """
  config = default.get_config('tiny' if variant == 'tiny' else None)
  config.model.strided_conv = 'native'  # 'subsample' (the CPU sizes') computes more taps for the same function
  num_classes, batch_size = 11, 2
  device = 'cpu' if variant == 'tiny' else 'meta'
  with torch.device(device):
    model = torch_reference.Classifier(torch_reference.IMRReference.from_model_config(config.model), num_classes)
  data = config.data
  inputs = torch_reference.stream_inputs(batch_size, data.num_gops, data.p_per_gop, data.crop_size, device)
  labels = torch.zeros(batch_size, dtype=torch.long, device=device)
  ours = _jax_reference_step_flops(config, batch_size, num_classes)
  assert torch_reference.count_step_flops(model, inputs, labels) == ours
  if variant == 'default':  # 87.8 GFLOPs forward per clip with connections (README); less without
    assert 3 * 80e9 < ours / batch_size < 3 * 87.8e9


def test_torchvision_r3d_18_three_streams_cost_what_the_issue_says():
  """torchvision's r3d_18 x 3 at 112 px, 5 I + 25 P frames: 292.7 GFLOPs per clip forward (no max-pool)."""
  pytest.importorskip('torchvision')
  from torch.utils.flop_counter import FlopCounterMode

  with torch.device('meta'):
    model = torch_reference.torchvision_r3d_18_streams()
  inputs = torch_reference.stream_inputs(1, 5, 5, 112, 'meta')
  with FlopCounterMode(display=False) as counter, torch.no_grad():
    features = model(**inputs)
  assert features.shape == (1, 3 * 512)
  assert round(counter.get_total_flops() / 1e9, 1) == 292.7


def test_train_step_bench_times_ours_and_the_reference_side_by_side():
  """The benchmark's table on the CPU at tiny sizes: our reference-network step, PyTorch's, equal FLOPs."""
  output = _run(
      [
          '-c',
          WITHOUT_TENSORFLOW,
          'benchmarks.train_step_bench',
          '--config=configs/pmsp_ctp.py:tiny',
          '--config.model.strided_conv=native',
          '--rows=imr_reference,torch_reference',
          '--batch_sizes=2',
          '--dtypes=float32',
          '--steps=1',
          '--peak_matmul_size=64',
      ]
  )
  assert re.search(r'float32 JAX [0-9.]+, PyTorch [0-9.]+ TFLOP/s', output), output
  figures = {}
  for row in ('imr_reference', 'torch_reference'):
    match = re.search(
        rf'^{row}\s+float32\s+2\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+(\S+)\s+([0-9.e-]+)\s+([0-9.]+)%$', output, re.M
    )
    assert match, (row, output)
    figures[row] = match.groups()
  assert figures['torch_reference'][3] == '-'  # no XLA count for PyTorch
  assert figures['imr_reference'][4] == figures['torch_reference'][4]
  assert 'FLOP check: our every-tap count of the reference step and torch.utils.flop_counter: equal' in output
