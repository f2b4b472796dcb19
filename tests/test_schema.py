"""The record schema: write a record, read it back, compare with the arrays that went in."""

import numpy as np
import pytest
import tensorflow as tf

from imr_jax.data import schema

HEIGHT, WIDTH = 12, 16


def _gop(rng, num_pframes):
  """A GOP of codec-like arrays with values that probe the encodings' edges."""
  iframe = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
  motion_vectors = rng.integers(-20, 21, (num_pframes, HEIGHT, WIDTH, 2)).astype(np.int16)
  # Residual-like: smooth structure plus noise, with the extremes of the int16 range at one pixel.
  yy, xx = np.mgrid[:HEIGHT, :WIDTH]
  smooth = 90 * np.sin(xx / 5.0 + yy / 7.0)[None, :, :, None] * rng.uniform(-1, 1, (num_pframes, 1, 1, 3))
  residuals = np.round(smooth + rng.normal(0, 3, (num_pframes, HEIGHT, WIDTH, 3))).astype(np.int16)
  residuals[:, 0, 0] = (-255, 255, 0)
  frame_motion_vectors = rng.integers(-6, 7, (num_pframes, HEIGHT, WIDTH, 2)).astype(np.int16)
  if num_pframes:
    motion_vectors[0, 0, 0] = (25, -33)  # Beyond the +-20 px the default encoding keeps.
  return dict(
      iframe=iframe, motion_vectors=motion_vectors, residuals=residuals, frame_motion_vectors=frame_motion_vectors
  )


def _round_trip(encoding, gops):
  encoded = [schema.encode_gop(encoding=encoding, **gop) for gop in gops]
  num_frames = sum(1 + len(gop['motion_vectors']) for gop in gops)
  serialized = schema.serialize_example(
      video_id='class/video.avi', label=3, num_frames=num_frames, height=HEIGHT, width=WIDTH, gop_size=4, gops=encoded
  )
  features = schema.parse_example(serialized)
  # Height and width as the pipeline has them: tensors parsed from the record.
  size = dict(height=features[schema.VIDEO_HEIGHT], width=features[schema.VIDEO_WIDTH])
  decoded = {
      'iframes': schema.decode_iframes(features[schema.GOP_IFRAME], **size),
      'motion_energy': schema.decode_motion_energy(features[schema.GOP_MOTION_ENERGY], **size),
      'motion_vectors': schema.decode_motion_vectors(features[schema.PFRAME_MOTION_VECTORS], encoding=encoding, **size),
      'residuals': schema.decode_residuals(features[schema.PFRAME_RESIDUALS], encoding=encoding, **size),
  }
  return features, {k: v.numpy() for k, v in decoded.items()}


@pytest.mark.parametrize('encoding', schema.ENCODINGS)
def test_round_trip(encoding):
  rng = np.random.default_rng(0)
  gops = [_gop(rng, 3), _gop(rng, 3), _gop(rng, 0)]  # The last GOP of a video may hold only its I-frame.
  features, decoded = _round_trip(encoding, gops)

  assert features[schema.VIDEO_ID].numpy() == b'class/video.avi'
  assert features[schema.VIDEO_LABEL].numpy() == 3
  assert features[schema.VIDEO_NUM_FRAMES].numpy() == 9
  assert features[schema.VIDEO_NUM_GOPS].numpy() == 3
  assert features[schema.GOP_NUM_PFRAMES].numpy().tolist() == [3, 3, 0]

  iframes = np.stack([g['iframe'] for g in gops])
  motion_vectors = np.concatenate([g['motion_vectors'] for g in gops]).astype(np.float32)
  residuals = np.concatenate([g['residuals'] for g in gops]).astype(np.float32)
  energy = np.stack(
      [schema.motion_energy_map(g['frame_motion_vectors']) for g in gops[:2]] + [np.zeros((HEIGHT, WIDTH), np.uint16)]
  )
  assert decoded['iframes'].dtype == np.uint8 and decoded['iframes'].shape == (3, HEIGHT, WIDTH, 3)
  assert decoded['motion_vectors'].dtype == np.float32 and decoded['motion_vectors'].shape == (6, HEIGHT, WIDTH, 2)
  assert decoded['residuals'].dtype == np.float32 and decoded['residuals'].shape == (6, HEIGHT, WIDTH, 3)
  np.testing.assert_array_equal(decoded['motion_energy'], energy.astype(np.float32))
  if encoding == 'lossless':
    np.testing.assert_array_equal(decoded['iframes'], iframes)
    np.testing.assert_array_equal(decoded['motion_vectors'], motion_vectors)
    np.testing.assert_array_equal(decoded['residuals'], residuals)
  else:
    # MVs are exact inside the network's +-20 px range, clipped outside; residuals are clipped to what
    # the network sees and then JPEG-coded; I-frames (here random noise, JPEG's worst case) too.
    np.testing.assert_array_equal(decoded['motion_vectors'], np.clip(motion_vectors, -20, 20))
    assert decoded['motion_vectors'][0, 0, 0].tolist() == [20, -20]
    assert np.abs(decoded['residuals'] - np.clip(residuals, -128, 127)).mean() < 5
    assert np.abs(decoded['iframes'].astype(int) - iframes).mean() < 9


@pytest.mark.parametrize('encoding', schema.ENCODINGS)
@pytest.mark.parametrize('crop', [(0, 0, HEIGHT, WIDTH), (3, 5, 7, 9), (4, 8, 8, 8), (1, 0, 11, 16)])
def test_crop_equals_whole_frame_decoding_then_slicing(encoding, crop):
  # Random (textured) frames, so that any JPEG block or PNG row misalignment would show.
  features, whole = _round_trip(encoding, [_gop(np.random.default_rng(1), 3)])
  size = dict(height=features[schema.VIDEO_HEIGHT], width=features[schema.VIDEO_WIDTH])
  top, left, height, width = crop
  for box in (crop, tf.constant(crop, tf.int32)):  # Python ints, and a tensor as the pipeline has it.
    cropped = {
        'iframes': schema.decode_iframes(features[schema.GOP_IFRAME], crop=box, **size),
        'motion_energy': schema.decode_motion_energy(features[schema.GOP_MOTION_ENERGY], crop=box, **size),
        'motion_vectors': schema.decode_motion_vectors(
            features[schema.PFRAME_MOTION_VECTORS], encoding=encoding, crop=box, **size
        ),
        'residuals': schema.decode_residuals(features[schema.PFRAME_RESIDUALS], encoding=encoding, crop=box, **size),
    }
    for name, value in cropped.items():
      expected = whole[name][:, top : top + height, left : left + width]
      assert value.dtype == expected.dtype, name
      np.testing.assert_array_equal(value.numpy(), expected, err_msg=name)


def test_crop_outside_the_frame_is_rejected():
  features, _ = _round_trip('default', [_gop(np.random.default_rng(0), 1)])
  with pytest.raises(ValueError, match='inside'):
    schema.decode_iframes(features[schema.GOP_IFRAME], height=HEIGHT, width=WIDTH, crop=(4, 8, 9, 8))


def test_default_residual_is_close_on_smooth_content():
  yy, xx = np.mgrid[:48, :64]
  residual = np.stack([xx - 32, yy - 24, (xx + yy) // 2 - 50], -1).astype(np.int16)[None]
  features = schema.parse_example(
      schema.serialize_example(
          video_id='v',
          label=0,
          num_frames=2,
          height=48,
          width=64,
          gop_size=2,
          gops=[
              schema.encode_gop(
                  iframe=np.zeros((48, 64, 3), np.uint8),
                  motion_vectors=np.zeros((1, 48, 64, 2), np.int16),
                  residuals=residual,
                  frame_motion_vectors=np.zeros((1, 48, 64, 2), np.int16),
                  encoding='default',
              )
          ],
      )
  )
  decoded = schema.decode_residuals(features[schema.PFRAME_RESIDUALS], encoding='default', height=48, width=64)
  assert np.abs(decoded.numpy() - residual).mean() < 1.5


def test_motion_vector_quantisation_is_the_networks():
  v = np.arange(-30, 31, dtype=np.int16)
  codes = schema.quantize_motion_vectors(v)
  # METHOD.md: the network sees clip(v * 127.5 / 20 + 128, 0, 255); the stored code is that, rounded.
  np.testing.assert_array_equal(codes, np.clip(np.round(v * 127.5 / 20 + 128), 0, 255))
  np.testing.assert_array_equal(schema.dequantize_motion_vectors(codes), np.clip(v, -20, 20))


def test_motion_energy_map_by_hand():
  vectors = np.zeros((2, 2, 3, 2), np.int16)
  vectors[0, 0, 0] = (3, 4)  # |v| = 5
  vectors[1, 0, 0] = (0, -1)  # + 1
  vectors[0, 1, 2] = (1, 1)  # sqrt 2 + sqrt 2 = 2.83 -> 3: summed, then rounded
  vectors[1, 1, 2] = (-1, 1)
  vectors[:, 0, 1] = (-3000, 3000)  # 2 * 4243 = 8485
  energy = schema.motion_energy_map(vectors)
  assert energy.dtype == np.uint16
  np.testing.assert_array_equal(energy, [[6, 8485, 0], [0, 0, 3]])
  huge = np.full((12, 1, 1, 2), 32767, np.int16)
  assert schema.motion_energy_map(huge)[0, 0] == 65535


def test_serialization_is_deterministic_and_standard():
  rng = np.random.default_rng(1)
  encoded = [schema.encode_gop(encoding='default', **_gop(rng, 2))]
  kwargs = dict(video_id='x', label=-1, num_frames=3, height=HEIGHT, width=WIDTH, gop_size=3, gops=encoded)
  first, second = schema.serialize_example(**kwargs), schema.serialize_example(**kwargs)
  assert first == second
  example = tf.train.Example.FromString(first)
  assert sorted(example.features.feature) == sorted(schema.feature_spec())
  assert example.features.feature[schema.VIDEO_LABEL].int64_list.value == [-1]


def test_tfds_features_match_the_parsing_spec():
  def flatten(tree, prefix=''):
    for key, value in tree.items():
      if isinstance(value, dict):
        yield from flatten(value, f'{prefix}{key}/')
      else:
        yield f'{prefix}{key}', value

  serialized = dict(flatten(schema.tfds_features(['a', 'b']).get_serialized_info()))
  spec = schema.feature_spec()
  assert sorted(serialized) == sorted(spec)
  for name, info in serialized.items():
    assert tf.as_dtype(info.dtype) == spec[name].dtype, name
    # Scalars are FixedLenFeature([]), lists FixedLenSequenceFeature: TFDS shape () vs (None,).
    assert (info.shape == ()) == isinstance(spec[name], tf.io.FixedLenFeature), name


@pytest.mark.parametrize(
    'bad',
    [
        dict(iframe=np.zeros((HEIGHT, WIDTH, 3), np.float32)),
        dict(motion_vectors=np.zeros((1, HEIGHT, WIDTH, 2), np.int32)),
        dict(residuals=np.zeros((2, HEIGHT, WIDTH, 3), np.int16)),
        dict(encoding='jpeg'),
    ],
)
def test_encode_rejects_wrong_inputs(bad):
  arrays = dict(
      iframe=np.zeros((HEIGHT, WIDTH, 3), np.uint8),
      motion_vectors=np.zeros((1, HEIGHT, WIDTH, 2), np.int16),
      residuals=np.zeros((1, HEIGHT, WIDTH, 3), np.int16),
      frame_motion_vectors=np.zeros((1, HEIGHT, WIDTH, 2), np.int16),
      encoding='default',
  )
  with pytest.raises(ValueError):
    schema.encode_gop(**{**arrays, **bad})


def test_downscale_maps_by_hand():
  """2x2 blocks: means rounded half away from zero (also for negative MVs and residuals), energy sums."""
  iframe = np.zeros((2, 4, 3), np.uint8)
  iframe[:, :2] = [[[1, 2, 255]] * 2, [[2, 2, 254]] * 2]  # block means 1.5, 2, 254.5
  motion_vectors = np.zeros((1, 2, 4, 2), np.int16)
  motion_vectors[0, :, 2:] = [[[-3, 4], [-4, 4]], [[-3, 5], [-4, 4]]]  # means -3.5, 4.25
  residuals = np.zeros((1, 2, 4, 3), np.int16)
  residuals[0, :, :2] = [[[-255, 1, -1]] * 2, [[-254, 1, 0]] * 2]  # means -254.5, 1, -0.5
  energy = np.array([[65535, 1, 2, 3], [5, 6, 7, 8]], np.uint16)
  small_iframe, small_mvs, small_residuals, small_energy = schema.downscale_maps(
      iframe=iframe, motion_vectors=motion_vectors, residuals=residuals, energy=energy, factor=2
  )
  np.testing.assert_array_equal(small_iframe, [[[2, 2, 255], [0, 0, 0]]])
  np.testing.assert_array_equal(small_mvs, [[[[0, 0], [-4, 4]]]])
  np.testing.assert_array_equal(small_residuals, [[[[-255, 1, -1], [0, 0, 0]]]])
  np.testing.assert_array_equal(small_energy, [[65535, 20]])  # 65547 clipped
  assert (small_iframe.dtype, small_mvs.dtype, small_residuals.dtype, small_energy.dtype) == (
      np.uint8,
      np.int16,
      np.int16,
      np.uint16,
  )
  same = schema.downscale_maps(
      iframe=iframe, motion_vectors=motion_vectors, residuals=residuals, energy=energy, factor=1
  )
  assert same[0] is iframe and same[3] is energy
  with pytest.raises(ValueError, match='multiples'):
    schema.downscale_maps(iframe=iframe, motion_vectors=motion_vectors, residuals=residuals, energy=energy, factor=3)


def test_motion_vectors_stored_as_png_before_2026_12_02_still_decode():
  """The default encoding's MVs were a 2-channel PNG of the same codes; the reader takes both forms."""
  motion_vectors = np.random.default_rng(0).integers(-25, 26, (2, 6, 10, 2)).astype(np.int16)
  current = [schema.encode_motion_vectors(mv, 'default') for mv in motion_vectors]
  old = [schema._png(schema.quantize_motion_vectors(mv)) for mv in motion_vectors]  # pylint: disable=protected-access
  assert old[0].startswith(b'\x89PNG') and not current[0].startswith(b'\x89PNG')
  size = dict(encoding='default', height=6, width=10)
  expected = np.clip(motion_vectors, -20, 20)
  for encoded in (current, old, [current[0], old[1]]):
    np.testing.assert_array_equal(schema.decode_motion_vectors(tf.constant(encoded), **size), expected)
