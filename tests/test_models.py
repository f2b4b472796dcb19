"""Tests of imr_jax.models: shapes, ablation switches, gradient paths, dtypes, heads, CoViAR."""

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from imr_jax import models
from imr_jax.models import connections
from imr_jax.models import resnet3d
from tests import numerics

# A tiny model: one basic block per stage, widths 8..64. H = W = 32 leaves 1x1 at res5.
SIZE = 32


def model_config(**overrides) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict(
      dict(
          name='imrnet',
          depth=10,
          widths=(8, 16, 32, 64),
          streams='imr',
          connections='bidirectional',
          connection_conv=True,
          connection_attention=True,
          i_temporal_strides=(1, 1, 1, 1, 1),
          p_temporal_strides=(1, 1, 2, 2, 2),
          dtype='float32',
          num_classes=7,
          coviar_iframe_depth=10,
          coviar_pframe_depth=10,
          coviar_stream_weights=(2.0, 1.0, 1.0),
          strided_conv='native',
      )
  )
  config.update(overrides)
  return config


def clip_inputs(batch=2, t_i=2, t_p=5, height=SIZE, width=SIZE, seed=0):
  keys = jax.random.split(jax.random.key(seed), 3)
  return dict(
      iframes=jax.random.normal(keys[0], (batch, t_i, height, width, 3)),
      motion_vectors=jax.random.normal(keys[1], (batch, t_p, height, width, 2)),
      residuals=jax.random.normal(keys[2], (batch, t_p, height, width, 3)),
  )


def quick_jit(function, *args):
  """jax.jit(function) compiled for `args` by XLA's cheap CPU pipeline (compiles 2-4x faster)."""
  return (
      jax.jit(function)
      .lower(*args)
      .compile(compiler_options={'xla_backend_optimization_level': 0, 'xla_llvm_disable_expensive_passes': True})
  )


def abstract_params(module, inputs):
  """Parameter shapes, from tracing only (no compute)."""
  variables = jax.eval_shape(lambda: module.init(jax.random.key(0), **inputs, train=False))
  return variables['params']


def synthetic_variables(module, inputs, seed=0):
  """Variables of the right shapes without compiling `init` (XLA:CPU takes ~30 s for its RNG).

  Kernels are He-normal, biases and batch-norm shifts and means 0, scales and variances 1 (so no
  block starts as the identity, unlike the real init's zero-initialised last scales).
  """
  shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), **inputs, train=False))
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = path[-1].key
    if name == 'kernel':
      fan_in = int(np.prod(leaf.shape[:-1]))
      return jnp.asarray(rng.normal(size=leaf.shape) * np.sqrt(2 / fan_in), leaf.dtype)
    return (jnp.ones if name in ('scale', 'var') else jnp.zeros)(leaf.shape, leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, flax.core.unfreeze(shapes))


def count(tree) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(tree))


def connection_params(params):
  return {name: value for name, value in params.items() if '_to_' in name}


# --- temporal alignment -------------------------------------------------------------------------


def test_alignment_matrix_pools_repeats_and_interpolates():
  # Each entry is an integer overlap divided by source_length in float64, one rounding (u = 1.1e-16),
  # as are the expected fractions: assert_allclose's default rtol of 1e-7 is far above both.
  np.testing.assert_allclose(
      connections.alignment_matrix(6, 2), [[1 / 3, 1 / 3, 1 / 3, 0, 0, 0], [0, 0, 0, 1 / 3, 1 / 3, 1 / 3]]
  )
  np.testing.assert_allclose(connections.alignment_matrix(2, 4), [[1, 0], [1, 0], [0, 1], [0, 1]])
  # 3 -> 2: target step 0 covers source [0, 1.5).
  np.testing.assert_allclose(connections.alignment_matrix(3, 2), [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])
  # 2 -> 3: the middle target step straddles both source steps equally.
  np.testing.assert_allclose(connections.alignment_matrix(2, 3), [[1, 0], [0.5, 0.5], [0, 1]])
  np.testing.assert_allclose(connections.alignment_matrix(4, 4), np.eye(4))
  # GOP-major P-frames: P-frame j of GOP g lands on I-frame g.
  np.testing.assert_allclose(connections.alignment_matrix(25, 5), np.kron(np.eye(5), np.full((1, 5), 1 / 5)))


@pytest.mark.numerics
@pytest.mark.parametrize('source_length, target_length', [(25, 5), (5, 25), (7, 5), (5, 7), (4, 4)])
def test_align_time_matches_matrix(source_length, target_length):
  x = jax.random.normal(jax.random.key(1), (2, source_length, 3, 2, 4))
  matrix = connections.alignment_matrix(source_length, target_length)
  expected = np.einsum('ts,bshwc->bthwc', matrix, np.asarray(x, np.float64))
  actual = connections.align_time(x, target_length)
  # float32: a weighted sum of at most source_length terms, each weight rounded to float32 once (or
  # a mean: a sum and one division), and the float64 reference exact to 1e-15: within
  # gamma(source_length + 1) of sum |w x| (tests/numerics.py).
  bound = numerics.gamma(source_length + 1) * np.einsum('ts,bshwc->bthwc', matrix, np.abs(np.asarray(x, np.float64)))
  numerics.assert_within(actual, expected, bound)


@pytest.mark.numerics
@pytest.mark.parametrize('source_length, target_length', [(6, 2), (2, 6), (5, 3)])
def test_connection_conv_commutes_with_alignment(source_length, target_length):
  source = jax.random.normal(jax.random.key(2), (1, source_length, 3, 3, 4))
  target = jnp.zeros((1, target_length, 3, 3, 6))
  connection = connections.DynamicConnection(use_conv=True, use_attention=False)
  variables = connection.init(jax.random.key(3), source, target)
  message = connection.apply(variables, source, target)
  kernel = variables['params']['conv']['kernel'][0, 0, 0]  # (4, 6)
  matrix = connections.alignment_matrix(source_length, target_length)
  expected = np.einsum('ts,bshwc,cd->bthwd', matrix, np.asarray(source, np.float64), np.asarray(kernel, np.float64))
  # float32: sums over source steps and channels (n = T_s * C_s terms), each term a product of
  # three factors (the rounded weight, the source, the kernel): within gamma(n + 2) of sum |terms|.
  bound = numerics.gamma(source_length * source.shape[-1] + 2) * np.einsum(
      'ts,bshwc,cd->bthwd', matrix, np.abs(np.asarray(source, np.float64)), np.abs(np.asarray(kernel, np.float64))
  )
  numerics.assert_within(message, expected, bound)


# --- shapes -------------------------------------------------------------------------------------


@pytest.mark.parametrize('t_i, t_p, height, width', [(5, 25, 32, 32), (2, 5, 32, 48), (3, 7, 40, 24), (1, 1, 16, 16)])
def test_imrnet_output_shapes(t_i, t_p, height, width):
  module = models.build_backbone(model_config())
  inputs = clip_inputs(2, t_i, t_p, height, width)
  out = jax.eval_shape(lambda: module.init_with_output(jax.random.key(0), **inputs, train=False, return_stages=True)[0])
  assert out['features'].shape == (2, 3 * 64) and out['features'].dtype == jnp.float32
  for stream in 'imr':
    assert out[stream].shape == (2, 64)
  expected_t = {'i': [t_i] * 5, 'm': [t_p]}
  for stride in (1, 1, 2, 2, 2)[1:]:
    expected_t['m'].append((expected_t['m'][-1] - 1) // stride + 1)
  expected_t['r'] = expected_t['m']
  # Stride 2 with k // 2 padding maps n to ceil(n / 2).
  expected_h = [-(-height // factor) for factor in (4, 4, 8, 16, 32)]
  for stream in 'imr':
    for index, stage in enumerate(('stem',) + resnet3d.STAGE_NAMES):
      shape = out['stages'][stream][stage].shape
      assert shape[:3] == (2, expected_t[stream][index], expected_h[index]), (stream, stage, shape)
      assert shape[4] == (8, 8, 16, 32, 64)[index]


def test_training_mode_updates_every_batch_norm():
  module = models.build_backbone(model_config())
  inputs = clip_inputs()
  variables = jax.eval_shape(lambda: module.init(jax.random.key(0), **inputs, train=False))
  _, updates = jax.eval_shape(lambda v: module.apply(v, **inputs, train=True, mutable=['batch_stats']), variables)
  assert set(variables) == {'params', 'batch_stats'}
  assert jax.tree_util.tree_structure(updates['batch_stats']) == jax.tree_util.tree_structure(variables['batch_stats'])


def test_stream_subsets_and_order():
  module = models.build_backbone(model_config(streams='mi'))
  inputs = clip_inputs()
  out = jax.eval_shape(
      lambda: module.init_with_output(
          jax.random.key(0), iframes=inputs['iframes'], motion_vectors=inputs['motion_vectors'], train=False
      )[0]
  )
  assert set(out) == {'i', 'm', 'features'} and out['features'].shape == (2, 128)
  with pytest.raises(ValueError, match='motion_vectors'):
    module.init(jax.random.key(0), iframes=inputs['iframes'], train=False)
  i_only = abstract_params(models.build_backbone(model_config(streams='i')), inputs)
  assert list(i_only) == ['i_stream']


# --- ablation switches --------------------------------------------------------------------------


def test_connection_switches_change_the_parameter_tree_exactly():
  inputs = clip_inputs()
  full = abstract_params(models.build_backbone(model_config()), inputs)
  stream_params = {name: value for name, value in full.items() if '_to_' not in name}
  assert set(stream_params) == {'i_stream', 'm_stream', 'r_stream'}
  # The P-streams batch-normalise their raw input; the I-stream's input is already normalised.
  assert full['m_stream']['input_norm']['scale'].shape == (2,)
  assert full['r_stream']['input_norm']['scale'].shape == (3,)
  assert 'input_norm' not in full['i_stream']
  full_connections = connection_params(full)
  stages = ('stem', 'res2', 'res3', 'res4')
  assert set(full_connections) == {
      f'{stage}_{a}_to_{b}' for stage in stages for a, b in (('m', 'i'), ('i', 'm'), ('r', 'i'), ('i', 'r'))
  }

  none = abstract_params(models.build_backbone(model_config(connections='none')), inputs)
  assert connection_params(none) == {} and none == stream_params

  uni = abstract_params(models.build_backbone(model_config(connections='unidirectional')), inputs)
  assert set(connection_params(uni)) == {n for n in full_connections if n.endswith('_to_i')}
  assert 2 * count(connection_params(uni)) == count(full_connections)
  assert {n: v for n, v in uni.items() if '_to_' not in n} == stream_params

  no_conv = abstract_params(models.build_backbone(model_config(connection_conv=False)), inputs)
  assert no_conv == {
      **stream_params,
      **{name: {k: v for k, v in value.items() if k != 'conv'} for name, value in full_connections.items()},
  }
  no_attention = abstract_params(models.build_backbone(model_config(connection_attention=False)), inputs)
  assert no_attention == {
      **stream_params,
      **{name: {'conv': value['conv']} for name, value in full_connections.items()},
  }
  # Neither conv nor gate: connections are parameter-free (align and add).
  bare = abstract_params(models.build_backbone(model_config(connection_conv=False, connection_attention=False)), inputs)
  assert bare == stream_params


# --- gradients through the connections ----------------------------------------------------------


@pytest.mark.parametrize('mode', ['bidirectional', 'unidirectional', 'none'])
def test_gradient_reaches_p_stream_only_through_connections(mode):
  module = models.build_backbone(model_config(connections=mode, streams='im'))
  inputs = clip_inputs(batch=1, t_i=2, t_p=4, height=16, width=16)
  del inputs['residuals']
  variables = synthetic_variables(module, inputs)
  direction = jax.random.normal(jax.random.key(5), (64,))

  def grads(params):
    def loss(params):
      # train=False: the same gradient paths, and a quicker compile than batch statistics.
      out = module.apply({**variables, 'params': params}, **inputs, train=False)
      return jnp.sum(out['i'] @ direction)

    return jax.grad(loss)(params)

  m_grads = quick_jit(grads, variables['params'])(variables['params'])['m_stream']
  is_zero = lambda tree: all(np.all(g == 0) for g in jax.tree_util.tree_leaves(tree))
  if mode == 'none':
    assert is_zero(m_grads)
  else:
    for stage in ('input_norm', 'stem', 'res2', 'res3', 'res4'):
      assert not is_zero(m_grads[stage]), stage
    # res5 has no connection, so nothing of it reaches the I-stream.
    assert is_zero(m_grads['res5'])


# --- the input norm's affine part, folded into the stem's conv ------------------------------------


class _InputNormThenConv(nn.Module):
  """The stem's first layers as nn.BatchNorm followed by the conv (the reference), or folded."""

  folded: bool
  kernel: tuple[int, int, int] = (3, 7, 7)
  strides: tuple[int, int, int] = (1, 2, 2)

  @nn.compact
  def __call__(self, x, train):
    if self.folded:
      x_hat, scale, bias = resnet3d.InputNorm(name='input_norm')(x, train)
      return resnet3d.AffineInputConv(5, self.kernel, self.strides, x.dtype, name='conv')(x_hat, scale, bias)
    x = nn.BatchNorm(
        use_running_average=not train,
        momentum=0.9,
        epsilon=1e-5,
        dtype=x.dtype,
        param_dtype=jnp.float32,
        name='input_norm',
    )(x)
    return _xla_conv(5, self.kernel, self.strides, x.dtype, 'conv')(x)


def _xla_conv(features, kernel, strides, dtype, name):
  """flax.linen.Conv, XLA's 3-D convolution on every backend: the reference for resnet3d.Conv."""
  return nn.Conv(
      features,
      kernel,
      strides,
      padding=[(k // 2, k // 2) for k in kernel],
      use_bias=False,
      dtype=dtype,
      param_dtype=jnp.float32,
      kernel_init=resnet3d._conv_init,  # pylint: disable=protected-access
      name=name,
  )


def _conv_forward_and_gradients(module, variables, x, cotangent):
  y, vjp = jax.vjp(module.apply, variables, x)
  grad_variables, grad_x = vjp(cotangent)
  return y, grad_variables['params']['conv']['kernel'], grad_x


def _assert_same_conv_within_rounding(reference, other, variables, x, cotangent, terms):
  """`other`'s output, kernel gradient and input gradient against `reference`'s; returns `other`'s.

  A conv and both its gradients are sums of products, so each result lies within gamma(n) of the
  exact value times the same sum over |products|, whatever the summation order (numerics.py); the sums
  of |products| are the same maps applied to |x|, |kernel| and |cotangent|. `terms` gives n for the
  output (taps times input channels), the kernel gradient (the output positions it sums over) and the
  input gradient (taps times output channels). The absolute sums are computed in float32 too, hence
  the factor (1 + gamma(n)).
  """
  run = jax.jit(_conv_forward_and_gradients, static_argnums=0)
  expected, actual = run(reference, variables, x, cotangent), run(other, variables, x, cotangent)
  absolute = run(reference, jax.tree.map(jnp.abs, variables), jnp.abs(x), jnp.abs(cotangent))
  for name, e, a, bound_of, n in zip(
      ('output', 'kernel gradient', 'input gradient'), expected, actual, absolute, terms
  ):
    g = numerics.gamma(n)
    numerics.assert_within(a, e, 2 * g * (1 + g) * np.asarray(bound_of), name)
  return actual


class _OneConv(nn.Module):
  """One conv of 4 features: 'flax' (nn.Conv), 'ours' (resnet3d.Conv), or resnet3d's strided conv
  computed 'native' or 'subsample'."""

  kernel: tuple[int, int, int]
  strides: tuple[int, int, int]
  kind: str

  @nn.compact
  def __call__(self, x):
    if self.kind == 'flax':
      return _xla_conv(4, self.kernel, self.strides, x.dtype, 'conv')(x)
    if self.kind == 'ours':
      return resnet3d.Conv(4, self.kernel, self.strides, x.dtype, name='conv')(x)
    return resnet3d._strided_conv(  # pylint: disable=protected-access
        x, 4, self.kernel, self.strides, mode=self.kind, dtype=x.dtype, name='conv'
    )


@pytest.mark.numerics
@pytest.mark.parametrize(
    'kernel, strides, shape',
    [
        ((3, 7, 7), (1, 2, 2), (2, 3, 13, 10, 3)),
        ((3, 3, 3), (2, 2, 2), (2, 7, 9, 7, 4)),
        ((3, 3, 3), (1, 1, 1), (1, 4, 2, 2, 5)),  # maps smaller than the kernel, as res5's at small crops
        ((1, 1, 1), (2, 2, 2), (2, 7, 9, 7, 4)),
        ((1, 3, 3), (1, 2, 2), (2, 3, 8, 8, 4)),
    ],
)
def test_conv_is_flax_conv_within_rounding(kernel, strides, shape):
  """resnet3d.Conv (2-D convs per temporal tap on the CPU) against nn.Conv: same parameters, init, outputs
  and gradients, each within 2 gamma(n) of the sum of |products| (tests/numerics.py), n its terms."""
  x = jax.random.normal(jax.random.key(3), shape)
  ours, reference = _OneConv(kernel, strides, 'ours'), _OneConv(kernel, strides, 'flax')
  variables = reference.init(jax.random.key(4), x)
  jax.tree.map(np.testing.assert_array_equal, ours.init(jax.random.key(4), x), variables)
  cotangent = jax.random.normal(jax.random.key(5), jax.eval_shape(reference.apply, variables, x).shape)
  taps = int(np.prod(kernel))
  terms = (taps * shape[-1], int(np.prod(cotangent.shape[:-1])), taps * 4)
  _assert_same_conv_within_rounding(reference, ours, variables, x, cotangent, terms)


def test_inside_taps_by_hand():
  # 5 positions, kernel 3 padded by 1, stride 2: outputs centred on 0, 2, 4 read -1..1, 1..3, 3..5.
  np.testing.assert_array_equal(resnet3d.inside_taps(5, 3, 2), [[0, 1, 1], [1, 1, 1], [1, 1, 0]])
  np.testing.assert_array_equal(resnet3d.inside_taps(2, 7, 2), [[0, 0, 0, 1, 1, 0, 0]])
  np.testing.assert_array_equal(resnet3d.inside_taps(3, 1, 1), [[1], [1], [1]])


def test_folded_input_norm_has_batch_norms_variables_and_initial_values():
  x = jax.random.normal(jax.random.key(0), (2, 3, 9, 8, 3))
  reference, folded = (_InputNormThenConv(f).init(jax.random.key(1), x, train=False) for f in (False, True))
  jax.tree.map(np.testing.assert_array_equal, flax.core.unfreeze(folded), flax.core.unfreeze(reference))


@pytest.mark.numerics
@pytest.mark.parametrize(
    'kernel, strides, shape',
    [
        ((3, 7, 7), (1, 2, 2), (2, 3, 13, 10, 3)),
        ((1, 7, 7), (1, 2, 2), (3, 2, 9, 9, 2)),
        ((3, 3, 3), (2, 1, 2), (2, 5, 4, 3, 2)),
    ],
)
def test_folded_input_norm_computes_batch_norm_then_conv(kernel, strides, shape):
  """Outputs, updated statistics and the gradients of scale, bias and kernel, in both modes.

  In float64, to FLOAT64_RTOL of each array's magnitude (tests/numerics.py): the two differ only in
  the order of their roundings (scale * (W x) against (scale W) x).
  """
  with jax.enable_x64(True):
    x = 3.0 + 2.0 * jax.random.normal(jax.random.key(2), shape, jnp.float64)  # off-centre, as raw MVs can be
    modules = {f: _InputNormThenConv(f, kernel, strides) for f in (False, True)}
    variables = jax.tree.map(lambda a: a.astype(jnp.float64), modules[False].init(jax.random.key(3), x, train=False))
    rng = np.random.default_rng(4)
    channels = shape[-1]
    variables['params']['input_norm'] = {'scale': rng.uniform(0.5, 2, channels), 'bias': rng.normal(size=channels)}
    variables['batch_stats']['input_norm'] = {'mean': rng.normal(size=channels), 'var': rng.uniform(0.5, 2, channels)}
    variables = jax.tree.map(jnp.asarray, variables)

    def run(folded, train):
      def loss(params):
        y, updates = modules[folded].apply({**variables, 'params': params}, x, train=train, mutable=['batch_stats'])
        return jnp.sum(jnp.sin(y)), (y, updates)

      return jax.grad(loss, has_aux=True)(variables['params'])

    for train in (True, False):
      expected, actual = run(False, train), run(True, train)
      jax.tree_util.tree_map_with_path(
          lambda path, e, a: numerics.relative_to_magnitude(a, e, numerics.FLOAT64_RTOL, jax.tree_util.keystr(path)),
          expected,
          actual,
      )
      assert float(jnp.abs(actual[0]['input_norm']['bias']).max()) > 0


# --- strided_conv='subsample' -------------------------------------------------------------------


# Every strided conv of the networks: the stem, a stage's first conv with and without a temporal
# stride, and a projection shortcut; odd sizes check that stride 2 keeps floor((n - 1) / 2) + 1
# positions both ways.
@pytest.mark.numerics
@pytest.mark.parametrize(
    'kernel, strides, shape',
    [
        ((3, 7, 7), (1, 2, 2), (2, 3, 33, 30, 3)),
        ((3, 3, 3), (2, 2, 2), (2, 7, 17, 15, 4)),
        ((3, 3, 3), (1, 2, 2), (2, 4, 16, 16, 4)),
        ((1, 1, 1), (2, 2, 2), (2, 7, 17, 15, 4)),
    ],
)
def test_subsampled_strided_conv_matches_native_within_rounding(kernel, strides, shape):
  x = jax.random.normal(jax.random.key(3), shape)
  native, subsample = (_OneConv(kernel, strides, mode) for mode in ('native', 'subsample'))
  variables = native.init(jax.random.key(4), x)
  out_shape = jax.eval_shape(native.apply, variables, x).shape
  cotangent = jax.random.normal(jax.random.key(5), out_shape)
  taps = int(np.prod(kernel))
  # The kernel gradient of the stride-1 conv sums over its every output position.
  terms = (taps * shape[-1], int(np.prod(shape[:-1])), taps * 4)
  subsampled = _assert_same_conv_within_rounding(native, subsample, variables, x, cotangent, terms)
  assert float(jnp.abs(subsampled[2]).max()) > 0


def _outputs_and_gradients(module, variables, inputs):
  """Features, every stage's output and d(sum sin(features)) / d(params, inputs), in training mode."""

  def loss(params, inputs):
    outputs, _ = module.apply(
        {**variables, 'params': params}, **inputs, train=True, return_stages=True, mutable=['batch_stats']
    )
    return jnp.sum(jnp.sin(outputs['features'])), outputs

  grad = jax.grad(loss, argnums=(0, 1), has_aux=True)
  return quick_jit(grad, variables['params'], inputs)(variables['params'], inputs)


@pytest.mark.numerics
def test_subsampled_strided_convs_give_the_same_network():
  """The whole IMR network (stages, features, every gradient) is the same function either way.

  In float64, to FLOAT64_RTOL of each array's magnitude (tests/numerics.py).
  """
  with jax.enable_x64(True):
    # Streams I and M: the R-stream is built as the M-stream is, so it would add compile time only.
    inputs = clip_inputs(t_i=3, t_p=7, height=33, width=30, seed=3)
    inputs = {key: inputs[key].astype(jnp.float64) for key in ('iframes', 'motion_vectors')}
    native = models.build_backbone(model_config(widths=(4, 4, 8, 8), dtype='float64', streams='im'))
    subsample = models.build_backbone(
        model_config(widths=(4, 4, 8, 8), dtype='float64', streams='im', strided_conv='subsample')
    )
    assert jax.tree.map(jnp.shape, abstract_params(subsample, inputs)) == jax.tree.map(
        jnp.shape, abstract_params(native, inputs)
    )
    variables = jax.tree.map(lambda a: a.astype(jnp.float64), synthetic_variables(native, inputs))
    (native_params, native_inputs), native_out = _outputs_and_gradients(native, variables, inputs)
    (sub_params, sub_inputs), sub_out = _outputs_and_gradients(subsample, variables, inputs)
  assert native_out['features'].dtype == jnp.float64
  assert jax.tree.map(jnp.shape, sub_out['stages']) == jax.tree.map(jnp.shape, native_out['stages'])
  for expected, actual in ((native_out, sub_out), (native_params, sub_params), (native_inputs, sub_inputs)):
    jax.tree_util.tree_map_with_path(
        lambda path, e, a: numerics.relative_to_magnitude(a, e, numerics.FLOAT64_RTOL, jax.tree_util.keystr(path)),
        expected,
        actual,
    )
  # The inputs' gradients are what the option speeds up; they must not vanish.
  assert np.abs(np.asarray(sub_inputs['motion_vectors'])).max() > 0


@pytest.mark.numerics
def test_subsampled_bottleneck_block_matches_native():
  with jax.enable_x64(True):
    x = jax.random.normal(jax.random.key(4), (2, 5, 9, 9, 8), jnp.float64)
    blocks = [
        resnet3d.BottleneckBlock(4, (2, 2, 2), dtype=jnp.float64, strided_conv=mode) for mode in ('native', 'subsample')
    ]
    variables = jax.tree.map(lambda a: a.astype(jnp.float64), synthetic_variables(blocks[0], {'x': x}))
    outputs = [quick_jit(lambda v, x, b=b: b.apply(v, x, train=False), variables, x)(variables, x) for b in blocks]
  assert outputs[0].shape == (2, 3, 5, 5, 16) and outputs[0].dtype == jnp.float64
  numerics.relative_to_magnitude(outputs[1], outputs[0], numerics.FLOAT64_RTOL)  # as above


# --- dtypes -------------------------------------------------------------------------------------


@pytest.mark.numerics
def test_bfloat16_agrees_with_float32():
  inputs = clip_inputs(batch=2, t_i=2, t_p=4)
  f32 = models.build_backbone(model_config(dtype='float32'))
  bf16 = models.build_backbone(model_config(dtype='bfloat16'))
  variables = synthetic_variables(f32, inputs)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(abstract_params(bf16, inputs)))
  run = lambda module: quick_jit(lambda v, x: module.apply(v, **x, train=False), variables, inputs)(variables, inputs)
  expected, actual = run(f32)['features'], run(bf16)['features']
  assert actual.dtype == jnp.float32
  relative_error = float(jnp.linalg.norm(actual - expected) / jnp.linalg.norm(expected))
  # Norm-wise: bfloat16 (u = 2^-8) rounds each of about 2L = 20 tensors on the way (the inputs and
  # kernels of L = 10 layers) by a relative rms of u / sqrt(3); independent roundings add in
  # quadrature through the normalised layers, sqrt(2L / 3) u = 1.0e-2; 2e-2 is twice that (measured
  # 7.4e-3). Exactly 0 would mean no bfloat16 compute at all.
  assert 0 < relative_error < 2e-2, relative_error


# --- depths -------------------------------------------------------------------------------------


@pytest.mark.parametrize('depth, torchvision_params', [(18, 11_689_512), (50, 25_557_032)])
def test_per_frame_resnet_matches_torchvision_parameter_count(depth, torchvision_params):
  # torchvision's ResNet-18/50 minus its 1000-way fc layer: same convs and batch norms.
  network = resnet3d.ResNet3D(depth=depth, temporal_kernel_size=1)
  params = jax.eval_shape(lambda: network.init(jax.random.key(0), jnp.zeros((1, 1, 64, 64, 3)), train=False))['params']
  fc = resnet3d.stage_output_channels(depth, resnet3d.STANDARD_WIDTHS)[-1] * 1000 + 1000
  assert count(params) == torchvision_params - fc


# --- CoViAR -------------------------------------------------------------------------------------


@pytest.mark.numerics
def test_coviar_is_per_frame_and_fuses_weighted_scores():
  with jax.enable_x64(True):
    module = models.build_backbone(model_config(name='coviar', dtype='float64'))
    inputs = jax.tree.map(lambda a: a.astype(jnp.float64), clip_inputs(batch=2, t_i=2, t_p=4))
    variables = jax.tree.map(lambda a: a.astype(jnp.float64), synthetic_variables(module, inputs))
    apply = quick_jit(lambda x: module.apply(variables, **x, train=False), inputs)
    out = apply(inputs)
    # Per frame: reversing the frames changes nothing but the order of the mean over frames.
    reversed_logits = apply({k: v[:, ::-1] for k, v in inputs.items()})['logits']
  assert out['logits'].shape == (2, 7) and out['features'].shape == (2, 3 * 64)
  logits = {stream: np.asarray(value) for stream, value in out['stream_logits'].items()}
  # Exact: 2 x is exact and the model adds in this order (i, m, r).
  np.testing.assert_array_equal(out['logits'], 2 * logits['i'] + logits['m'] + logits['r'])
  assert variables['params']['i_stream']['stem']['conv']['kernel'].shape == (1, 7, 7, 3, 8)
  # float64: another summation order of the frame means (tests/numerics.py).
  numerics.relative_to_magnitude(reversed_logits, out['logits'], numerics.FLOAT64_RTOL)


# --- heads and the multi-head model -------------------------------------------------------------


def test_heads_output_shapes():
  features = jnp.ones((3, 20))
  levels = ((1, 5), (2, 1), (2, 5), (4, 1), (4, 5))
  pmsp = models.PMSPHead(levels=levels, hidden_dim=16)
  out = pmsp.apply(pmsp.init(jax.random.key(0), features, False), features, False)
  assert {k: v.shape for k, v in out.items()} == {
      '1x1_5': (3, 5, 1),
      '2x2_1': (3, 1, 4),
      '2x2_5': (3, 5, 4),
      '4x4_1': (3, 1, 16),
      '4x4_5': (3, 5, 16),
  }
  for head, shape in [
      (models.CTPHead(num_classes=4, hidden_dim=16), (3, 4)),
      (models.ProjectionHead(dim=8, hidden_dim=16), (3, 8)),
      (models.ClassifierHead(num_classes=5, dropout_rate=0.5), (3, 5)),
  ]:
    variables = head.init(jax.random.key(0), features, False)
    assert head.apply(variables, features, False).shape == shape
  classifier = models.ClassifierHead(num_classes=5, dropout_rate=0.5)
  variables = classifier.init(jax.random.key(0), features, False)
  dropped = classifier.apply(variables, features, True, rngs={'dropout': jax.random.key(1)})
  assert not np.allclose(dropped, classifier.apply(variables, features, False))


def test_multihead_model_parameter_tree_and_outputs():
  backbone = models.build_backbone(model_config(streams='im'))
  heads = {
      'pmsp': models.PMSPHead(levels=((2, 2),), hidden_dim=16),
      'ctp': models.CTPHead(num_classes=4, hidden_dim=16),
  }
  model = models.MultiHeadModel(backbone=backbone, heads=heads)
  inputs = clip_inputs()
  inputs = dict(iframes=inputs['iframes'], motion_vectors=inputs['motion_vectors'])
  variables, out = jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), **inputs, train=False)[::-1])
  params = variables['params']
  assert set(params) == {'backbone', 'heads'} and set(params['heads']) == {'pmsp', 'ctp'}
  assert params['backbone'] == abstract_params(backbone, inputs)
  assert set(out) == {'i', 'm', 'features', 'pmsp', 'ctp'}
  assert out['pmsp']['2x2_2'].shape == (2, 2, 4) and out['ctp'].shape == (2, 4)
  assert set(variables['batch_stats']) == {'backbone'}


# --- configuration errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    'name, key, value',
    [
        ('imrnet', 'name', 'slowfast'),
        ('imrnet', 'depth', 19),
        ('imrnet', 'depth', True),
        ('imrnet', 'streams', 'imx'),
        ('imrnet', 'streams', ''),
        ('imrnet', 'streams', 'ii'),
        ('imrnet', 'connections', 'both'),
        ('imrnet', 'connection_conv', 'yes'),
        ('imrnet', 'connection_attention', 1),
        ('imrnet', 'dtype', 'float16'),
        ('imrnet', 'widths', (8, 16)),
        ('imrnet', 'p_temporal_strides', (1, 2, 2)),
        ('imrnet', 'i_temporal_strides', (1, 0, 1, 1, 1)),
        ('imrnet', 'strided_conv', 'slice'),
        ('coviar', 'num_classes', 0),
        ('coviar', 'coviar_stream_weights', (1.0, 1.0)),
        ('coviar', 'coviar_iframe_depth', 'huge'),
    ],
)
def test_bad_config_values_name_the_key(name, key, value):
  config = model_config(name=name)
  with config.unlocked():
    del config[key]
    config[key] = value
  with pytest.raises(ValueError, match=f'config.model.{key}='):
    models.build_backbone(config)


def test_depth_is_an_int_and_missing_keys_are_named():
  assert models.build_backbone(model_config(depth=18)).depth == 18

  def with_depth(depth):  # any type, as a config.json of a run would hold
    config = model_config()
    with config.unlocked():
      del config['depth']
      config['depth'] = depth
    return config

  for depth in ('18', 18.0, True, 11):
    with pytest.raises(ValueError, match='config.model.depth='):
      models.build_backbone(with_depth(depth))
  # A run trained when depth 10 was called 'tiny' is told the new name.
  with pytest.raises(ValueError, match=r"'tiny' is now depth 10 with config.model.widths=\(8, 16, 32, 64\)"):
    models.build_backbone(with_depth('tiny'))
  config = model_config()
  del config['p_temporal_strides']
  with pytest.raises(ValueError, match='p_temporal_strides'):
    models.build_backbone(config)


def test_coviar_takes_the_data_sets_class_count_from_the_builder():
  # num_classes=-1 in the config: the data set's count, passed by the trainer; IMRNet ignores it.
  assert models.build_backbone(model_config(name='coviar', num_classes=-1), num_classes=5).num_classes == 5
  assert models.build_backbone(model_config(name='coviar', num_classes=7), num_classes=5).num_classes == 7
  with pytest.raises(ValueError, match='num_classes'):
    models.build_backbone(model_config(name='coviar', num_classes=-1))
  assert models.build_backbone(model_config(), num_classes=5).depth == 10
