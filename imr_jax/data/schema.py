"""The record schema: one `tf.train.Example` per video (DESIGN.md section 2).

This module is the single source of truth for the feature names, their encodings and their decodings.
The writer (`data_prep`) builds records with `encode_gop` and `serialize_example`; the input pipeline
parses them with `parse_example` and turns the encoded bytes into tensors in physical units with the
`decode_*` functions (whole frames, or only a crop box of them). A record holds, per video:

  video/id, video/label, video/num_frames, video/num_gops, video/height, video/width, video/gop_size
  gop/num_pframes      int64 [num_gops]
  gop/iframe           bytes [num_gops]          RGB uint8 (H, W, 3)
  gop/motion_energy    bytes [num_gops]          uint16 (H, W): sum over the GOP's P-frames of |mv| (px)
  pframe/motion_vectors  bytes [sum num_pframes]  accumulated MVs (H, W, 2), x then y, px, GOP-major
  pframe/residuals       bytes [sum num_pframes]  accumulated residuals (H, W, 3), RGB, [-255, 255]

Two encodings, a property of the whole dataset (stored in its manifest.json):

  'default'   I-frame: JPEG quality 90, 4:4:4. MV: zlib (level 9) of the raw uint8 (H, W, 2) codes
              clip(round(v * 6.375 + 128), 0, 255), the network's own quantisation (6.375 = 127.5 / 20),
              exact for integer v in [-20, 20] px and clipped beyond (data sets written before
              2026-12-02 hold the same codes as a 2-channel PNG, which the reader still takes).
              Residual: JPEG quality 75, 4:2:0, of uint8 clip(r + 128, 0, 255) (the network clips the
              same way; JPEG adds a mean absolute error of about 2 intensity levels). Motion energy:
              16-bit PNG. About 2-4x the bytes of the re-encoded MPEG-4 stream at full size, about 1x
              at the default half size (benchmarks/prep_bench.py); lossless PNG residuals would be
              10-20x.
  'lossless'  I-frame PNG; MV and residual: zlib (level 1) of raw little-endian int16; motion energy:
              16-bit PNG.

The maps may be stored smaller than the codec's frames (data_prep.convert --map_downscale, manifest
'map_downscale'; `downscale_maps`): video/height and video/width are always the stored size.
"""

from __future__ import annotations

import dataclasses
import io
import zlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
from PIL import Image
import tensorflow as tf

Encoding = Literal['default', 'lossless']
ENCODINGS: tuple[str, ...] = ('default', 'lossless')

# Feature names (the keys of the tf.train.Example).
VIDEO_ID = 'video/id'
VIDEO_LABEL = 'video/label'
VIDEO_NUM_FRAMES = 'video/num_frames'
VIDEO_NUM_GOPS = 'video/num_gops'
VIDEO_HEIGHT = 'video/height'
VIDEO_WIDTH = 'video/width'
VIDEO_GOP_SIZE = 'video/gop_size'
GOP_NUM_PFRAMES = 'gop/num_pframes'
GOP_IFRAME = 'gop/iframe'
GOP_MOTION_ENERGY = 'gop/motion_energy'
PFRAME_MOTION_VECTORS = 'pframe/motion_vectors'
PFRAME_RESIDUALS = 'pframe/residuals'

INT_SCALARS = (VIDEO_LABEL, VIDEO_NUM_FRAMES, VIDEO_NUM_GOPS, VIDEO_HEIGHT, VIDEO_WIDTH, VIDEO_GOP_SIZE)
BYTES_LISTS = (GOP_IFRAME, GOP_MOTION_ENERGY, PFRAME_MOTION_VECTORS, PFRAME_RESIDUALS)

UNLABELLED = -1
# The network's MV quantisation (METHOD.md section 2): code = v * MV_CODE_SCALE + 128, about +-20 px.
MV_CODE_SCALE = 127.5 / 20.0
MV_CODE_ZERO = 128
RESIDUAL_CODE_ZERO = 128
MOTION_ENERGY_MAX = np.iinfo(np.uint16).max
MV_ZLIB_LEVEL = 9
_PNG_SIGNATURE = b'\x89PNG'
IFRAME_JPEG_QUALITY = 90
RESIDUAL_JPEG_QUALITY = 75


@dataclasses.dataclass(frozen=True)
class EncodedGop:
  """One GOP's features as encoded bytes, ready for `serialize_example`.

  Attributes:
    iframe: the encoded I-frame.
    motion_energy: the encoded per-pixel motion energy map.
    motion_vectors: one encoded accumulated MV map per P-frame.
    residuals: one encoded accumulated residual per P-frame.
  """

  iframe: bytes
  motion_energy: bytes
  motion_vectors: tuple[bytes, ...]
  residuals: tuple[bytes, ...]

  @property
  def num_pframes(self) -> int:
    return len(self.motion_vectors)


def _check_encoding(encoding: str) -> None:
  if encoding not in ENCODINGS:
    raise ValueError(f'Unknown record encoding {encoding!r}; use one of {ENCODINGS}.')


def _check_array(name: str, array: np.ndarray, dtype, channels: int | None) -> None:
  if array.dtype != dtype:
    raise ValueError(f'{name} must be {np.dtype(dtype).name}, got {array.dtype}.')
  expected_ndim = 2 if channels is None else 3
  if array.ndim != expected_ndim or (channels is not None and array.shape[-1] != channels):
    raise ValueError(f'{name} must have shape (H, W{"" if channels is None else f", {channels}"}), got {array.shape}.')


def _png(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format='PNG')
  return buffer.getvalue()


def _zlib_int16(array: np.ndarray) -> bytes:
  # Level 1: 5x faster than the default 6 on residuals, for 20% more bytes (measured at 340x256).
  return zlib.compress(np.ascontiguousarray(array, dtype='<i2').tobytes(), level=1)


# --------------------------------------------------------------------------------------------------
# numpy -> bytes (the writer).


def motion_energy_map(frame_motion_vectors: np.ndarray) -> np.ndarray:
  """The PMSP motion energy of one GOP.

  Args:
    frame_motion_vectors: int16 (P, H, W, 2), the per-frame (not accumulated) MV maps in pixels.

  Returns:
    uint16 (H, W): per pixel, the sum over the P-frames of the MV magnitude in pixels, rounded and
    clipped to 65535. All zeros when P = 0.
  """
  if frame_motion_vectors.ndim != 4 or frame_motion_vectors.shape[-1] != 2:
    raise ValueError(f'frame_motion_vectors must have shape (P, H, W, 2), got {frame_motion_vectors.shape}.')
  vectors = frame_motion_vectors.astype(np.float64)
  energy = np.sqrt(vectors[..., 0] ** 2 + vectors[..., 1] ** 2).sum(axis=0)
  return np.clip(np.round(energy), 0, MOTION_ENERGY_MAX).astype(np.uint16)


def encode_iframe(iframe: np.ndarray, encoding: Encoding) -> bytes:
  """uint8 (H, W, 3) RGB -> JPEG ('default', quality 90, 4:4:4) or PNG ('lossless') bytes."""
  _check_encoding(encoding)
  _check_array('iframe', iframe, np.uint8, 3)
  if encoding == 'lossless':
    return _png(iframe)
  buffer = io.BytesIO()
  # 4:4:4 chroma: colour edges of I-frames are what the I-stream sees at full resolution.
  Image.fromarray(iframe).save(buffer, format='JPEG', quality=IFRAME_JPEG_QUALITY, subsampling=0)
  return buffer.getvalue()


def encode_motion_energy(energy: np.ndarray) -> bytes:
  """uint16 (H, W) motion energy -> 16-bit grey PNG bytes (the same in both encodings)."""
  _check_array('motion energy', energy, np.uint16, None)
  return _png(energy)


def quantize_motion_vectors(motion_vectors: np.ndarray) -> np.ndarray:
  """int16 (..., 2) MVs in px -> uint8 codes clip(round(v * 6.375 + 128), 0, 255)."""
  codes = np.round(motion_vectors.astype(np.float64) * MV_CODE_SCALE + MV_CODE_ZERO)
  return np.clip(codes, 0, 255).astype(np.uint8)


def dequantize_motion_vectors(codes: np.ndarray) -> np.ndarray:
  """uint8 MV codes -> float32 px, round((code - 128) / 6.375); inverse of the quantisation for |v| <= 20."""
  # No ties: (code - 128) / 6.375 = 8 k / 51 is never a half-integer, so every rounding mode agrees.
  return np.round((codes.astype(np.float32) - MV_CODE_ZERO) / np.float32(MV_CODE_SCALE))


def encode_motion_vectors(motion_vectors: np.ndarray, encoding: Encoding) -> bytes:
  """int16 (H, W, 2) accumulated MV map (px, x then y) -> bytes (see the module docstring)."""
  _check_encoding(encoding)
  _check_array('motion_vectors', motion_vectors, np.int16, 2)
  if encoding == 'lossless':
    return _zlib_int16(motion_vectors)
  # zlib level 9 of the raw codes: 1.6x faster to decode than the 2-channel PNG used before 2026-12-02,
  # with 19% fewer bytes, and as fast to write (measured on 170x128 maps of the four real clips).
  return zlib.compress(quantize_motion_vectors(motion_vectors).tobytes(), level=MV_ZLIB_LEVEL)


def encode_residuals(residuals: np.ndarray, encoding: Encoding) -> bytes:
  """int16 (H, W, 3) accumulated residual (RGB, [-255, 255]) -> bytes (see the module docstring)."""
  _check_encoding(encoding)
  _check_array('residuals', residuals, np.int16, 3)
  if encoding == 'lossless':
    return _zlib_int16(residuals)
  codes = np.clip(residuals.astype(np.int32) + RESIDUAL_CODE_ZERO, 0, 255).astype(np.uint8)
  buffer = io.BytesIO()
  # JPEG, not PNG: residuals are noise-like and PNG would store them at 5x the bytes (measured).
  Image.fromarray(codes).save(buffer, format='JPEG', quality=RESIDUAL_JPEG_QUALITY, subsampling=2)
  return buffer.getvalue()


def _block_sums(maps: np.ndarray, factor: int, leading: int) -> np.ndarray:
  """int32 sums over factor x factor pixel blocks of maps (*lead, H, W, ...) with `leading` axes before H."""
  # factor^2 strided slices added up: 3.8x faster than summing a (H/f, f, W/f, f) reshape (measured on
  # one 340x256 GOP: 38 vs 145 ms).
  lead = (slice(None),) * leading
  total = None
  for dy in range(factor):
    for dx in range(factor):
      part = maps[lead + (slice(dy, None, factor), slice(dx, None, factor))].astype(np.int32)
      total = part if total is None else total + part
  return total


def _block_means(maps: np.ndarray, factor: int, leading: int, dtype) -> np.ndarray:
  """Block means rounded half away from zero (integer arithmetic: no float ties), cast to dtype."""
  sums, area = _block_sums(maps, factor, leading), factor * factor
  return np.where(sums >= 0, (sums + area // 2) // area, -((area // 2 - sums) // area)).astype(dtype)


def downscale_maps(
    *, iframe: np.ndarray, motion_vectors: np.ndarray, residuals: np.ndarray, energy: np.ndarray, factor: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """One GOP's maps at 1 / factor of the codec's size: every stored pixel is a factor x factor block.

  I-frames, MVs and residuals take the block mean rounded half away from zero (MVs stay in the codec's
  pixels: a vector is a displacement, the same whatever the storage grid); the motion energy takes the
  block sum clipped to 65535, so the energy of any region of whole blocks is unchanged. H and W must be
  multiples of `factor`. factor 1 returns the inputs.
  """
  if factor == 1:
    return iframe, motion_vectors, residuals, energy
  height, width = iframe.shape[:2]
  if height % factor or width % factor:
    raise ValueError(f'A {width}x{height} frame cannot be stored at 1/{factor}: both sides must be multiples of it.')
  return (
      _block_means(iframe, factor, 0, np.uint8),
      _block_means(motion_vectors, factor, 1, np.int16),
      _block_means(residuals, factor, 1, np.int16),
      np.minimum(_block_sums(energy, factor, 0), MOTION_ENERGY_MAX).astype(np.uint16),
  )


def encode_gop(
    *,
    iframe: np.ndarray,
    motion_vectors: np.ndarray,
    residuals: np.ndarray,
    frame_motion_vectors: np.ndarray,
    encoding: Encoding,
    downscale: int = 1,
) -> EncodedGop:
  """Encodes one GOP of codec output (imr_jax.codec's Gop fields).

  Args:
    iframe: uint8 (H, W, 3) RGB.
    motion_vectors: int16 (P, H, W, 2), accumulated MVs in px.
    residuals: int16 (P, H, W, 3), accumulated residuals.
    frame_motion_vectors: int16 (P, H, W, 2), per-frame MVs in px (for the motion energy).
    encoding: 'default' or 'lossless'.
    downscale: store every map at (H / downscale, W / downscale) (`downscale_maps`; the motion energy is
      computed at full size first).

  Returns:
    The GOP's encoded features.
  """
  num_pframes = len(motion_vectors)
  if len(residuals) != num_pframes or len(frame_motion_vectors) != num_pframes:
    raise ValueError(
        f'GOP arrays disagree on the number of P-frames: motion_vectors {motion_vectors.shape}, '
        f'residuals {residuals.shape}, frame_motion_vectors {frame_motion_vectors.shape}.'
    )
  height, width = iframe.shape[:2]
  for name, array in (
      ('motion_vectors', motion_vectors),
      ('residuals', residuals),
      ('frame_motion_vectors', frame_motion_vectors),
  ):
    if array.shape[1:3] != (height, width):
      raise ValueError(f'{name} has frame size {array.shape[1:3]}, the I-frame {(height, width)}.')
  if num_pframes:
    energy = motion_energy_map(frame_motion_vectors)
  else:
    energy = np.zeros((height, width), np.uint16)
  iframe, motion_vectors, residuals, energy = downscale_maps(
      iframe=iframe, motion_vectors=motion_vectors, residuals=residuals, energy=energy, factor=downscale
  )
  return EncodedGop(
      iframe=encode_iframe(iframe, encoding),
      motion_energy=encode_motion_energy(energy),
      motion_vectors=tuple(encode_motion_vectors(mv, encoding) for mv in motion_vectors),
      residuals=tuple(encode_residuals(r, encoding) for r in residuals),
  )


def _int64(values: Sequence[int]) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _bytes(values: Sequence[bytes]) -> tf.train.Feature:
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def serialize_example(
    *, video_id: str, label: int, num_frames: int, height: int, width: int, gop_size: int, gops: Sequence[EncodedGop]
) -> bytes:
  """Builds the serialized `tf.train.Example` of one video.

  Args:
    video_id: stable id (path relative to the dataset root, or a youtube id).
    label: class index into the manifest's label_names, or UNLABELLED (-1).
    num_frames: number of frames of the re-encoded video (= sum of 1 + num_pframes over the GOPs).
    height, width: frame size in pixels of every stored map.
    gop_size: the GOP length the video was re-encoded with.
    gops: the encoded GOPs in order.

  Returns:
    The serialized record. Serialization is deterministic (map keys sorted), so equal inputs give
    equal bytes.
  """
  num_pframes = [gop.num_pframes for gop in gops]
  if num_frames != sum(num_pframes) + len(gops):
    raise ValueError(f'{video_id}: num_frames={num_frames} but the GOPs hold {sum(num_pframes) + len(gops)}.')
  features = {
      VIDEO_ID: _bytes([video_id.encode('utf-8')]),
      VIDEO_LABEL: _int64([label]),
      VIDEO_NUM_FRAMES: _int64([num_frames]),
      VIDEO_NUM_GOPS: _int64([len(gops)]),
      VIDEO_HEIGHT: _int64([height]),
      VIDEO_WIDTH: _int64([width]),
      VIDEO_GOP_SIZE: _int64([gop_size]),
      GOP_NUM_PFRAMES: _int64(num_pframes),
      GOP_IFRAME: _bytes([gop.iframe for gop in gops]),
      GOP_MOTION_ENERGY: _bytes([gop.motion_energy for gop in gops]),
      PFRAME_MOTION_VECTORS: _bytes([data for gop in gops for data in gop.motion_vectors]),
      PFRAME_RESIDUALS: _bytes([data for gop in gops for data in gop.residuals]),
  }
  example = tf.train.Example(features=tf.train.Features(feature=features))
  return example.SerializeToString(deterministic=True)


# --------------------------------------------------------------------------------------------------
# bytes -> tensors (the reader).


def feature_spec() -> dict[str, tf.io.FixedLenFeature | tf.io.FixedLenSequenceFeature]:
  """The parsing spec of a record for `tf.io.parse_single_example` / `tf.io.parse_example`."""
  spec = {VIDEO_ID: tf.io.FixedLenFeature([], tf.string)}
  spec.update({name: tf.io.FixedLenFeature([], tf.int64) for name in INT_SCALARS})
  spec[GOP_NUM_PFRAMES] = tf.io.FixedLenSequenceFeature([], tf.int64, allow_missing=True)
  spec.update({name: tf.io.FixedLenSequenceFeature([], tf.string, allow_missing=True) for name in BYTES_LISTS})
  return spec


def parse_example(serialized: tf.Tensor | bytes) -> dict[str, tf.Tensor]:
  """Parses one serialized record into its (still encoded) features: scalars, int64 and string vectors."""
  return tf.io.parse_single_example(serialized, feature_spec())


# Decoding a string vector of static length up to this many elements unrolls into one op per element.
_MAX_UNROLLED = 64

Crop = tuple[int | tf.Tensor, int | tf.Tensor, int | tf.Tensor, int | tf.Tensor] | tf.Tensor


def _crop_window(crop: Crop | None, height, width):
  """The (top, left, height, width) to slice: the crop box, or the whole frame when `crop` is None."""
  if crop is None:
    return 0, 0, height, width
  if tf.is_tensor(crop):
    return tuple(tf.unstack(tf.cast(crop, tf.int32), num=4))
  if len(crop) != 4:
    raise ValueError(f'crop must be (top, left, height, width), got {crop!r}.')
  top, left, crop_height, crop_width = crop
  if all(isinstance(v, int) for v in (top, left, crop_height, crop_width, height, width)) and not (
      0 <= top and 0 <= left and 0 < crop_height <= height - top and 0 < crop_width <= width - left
  ):
    raise ValueError(
        f'crop {crop!r} (top, left, height, width) is not a non-empty box inside the {height} x {width} frame.'
    )
  return tuple(crop)


def _map_decode(fn, encoded: tf.Tensor, crop: Crop | None, height, width, channels: int | None, dtype) -> tf.Tensor:
  """Decodes every element of a string vector [N] into its codes, cropped: dtype [N, h, w(, channels)].

  `fn(data)` decodes one element to dtype (H, W, C); the crop slices it before anything else is done with
  it, so the caller's conversion to physical units only touches the kept pixels. (The whole image is still
  decoded: `decode_and_crop_jpeg` with 4:2:0 chroma gives other pixels at the box edges than a whole-frame
  decode.)
  """
  top, left, crop_height, crop_width = _crop_window(crop, height, width)

  def decode(data):
    codes = fn(data)[top : top + crop_height, left : left + crop_width]
    return codes if channels is not None else codes[..., 0]

  shape = [d if isinstance(d, int) else None for d in (crop_height, crop_width)]
  shape += [] if channels is None else [channels]
  encoded = tf.convert_to_tensor(encoded, tf.string)
  count = encoded.shape[0]
  if count is not None and count <= _MAX_UNROLLED:
    # A clip's frame count is static: one decode op per frame, without map_fn's loop machinery.
    if count == 0:
      return tf.zeros([0] + [d if d is not None else 0 for d in shape], dtype)
    frames = tf.stack([decode(encoded[i]) for i in range(count)])
    frames.set_shape([count] + shape)
    return frames
  return tf.map_fn(decode, encoded, fn_output_signature=tf.TensorSpec(shape, dtype))


def _decode_int16(data: tf.Tensor, height, width, channels: int) -> tf.Tensor:
  raw = tf.io.decode_raw(tf.io.decode_compressed(data, compression_type='ZLIB'), tf.int16, little_endian=True)
  return tf.reshape(raw, tf.stack([height, width, channels]))


def _decode_image(data: tf.Tensor, channels: int, dtype=tf.uint8) -> tf.Tensor:
  if dtype == tf.uint16:
    return tf.io.decode_png(data, channels=channels, dtype=tf.uint16)
  return tf.io.decode_image(data, channels=channels, dtype=dtype, expand_animations=False)


# Every decoder takes `crop`: None for whole frames, or a box (top, left, height, width) of ints or an
# int32 (4,) tensor, inside the frame. Cropping at decode time equals decoding whole frames and slicing,
# and is cheaper: the 8-bit codes are sliced before their conversion to float, which costs more than the
# image decoding itself (a training crop keeps half the frame or less).


def decode_iframes(
    encoded: tf.Tensor, *, height: int | tf.Tensor, width: int | tf.Tensor, crop: Crop | None = None
) -> tf.Tensor:
  """Encoded I-frames, string [N] -> uint8 [N, h, w, 3] RGB (JPEG or PNG, either encoding).

  (h, w) is (height, width), or the crop box's size.
  """
  return _map_decode(lambda data: _decode_image(data, 3), encoded, crop, height, width, 3, tf.uint8)


def decode_motion_vectors(
    encoded: tf.Tensor, *, encoding: Encoding, height: int | tf.Tensor, width: int | tf.Tensor, crop: Crop | None = None
) -> tf.Tensor:
  """Encoded accumulated MV maps, string [N] -> float32 [N, h, w, 2] in pixels (x then y).

  'default' gives integer pixels round((code - 128) / 6.375): the stored vector itself for |v| <= 20 px,
  +-20 beyond (the network's input is clipped there anyway). 'lossless' gives the stored int16 exactly.
  (h, w) is (height, width), or the crop box's size.
  """
  _check_encoding(encoding)
  if encoding == 'lossless':
    vectors = _map_decode(lambda data: _decode_int16(data, height, width, 2), encoded, crop, height, width, 2, tf.int16)
    return tf.cast(vectors, tf.float32)

  def fn(data):
    shape = tf.stack([height, width, 2])
    # Grey + alpha PNG (data sets written before 2026-12-02): decode_png cannot be asked for 2 channels,
    # so take what it stores and check.
    return tf.cond(
        tf.equal(tf.strings.substr(data, 0, len(_PNG_SIGNATURE)), _PNG_SIGNATURE),
        lambda: tf.reshape(tf.io.decode_png(data, channels=0), shape),
        lambda: tf.reshape(tf.io.decode_raw(tf.io.decode_compressed(data, compression_type='ZLIB'), tf.uint8), shape),
    )

  codes = tf.cast(_map_decode(fn, encoded, crop, height, width, 2, tf.uint8), tf.float32)
  return tf.round((codes - MV_CODE_ZERO) / MV_CODE_SCALE)


def decode_residuals(
    encoded: tf.Tensor, *, encoding: Encoding, height: int | tf.Tensor, width: int | tf.Tensor, crop: Crop | None = None
) -> tf.Tensor:
  """Encoded accumulated residuals, string [N] -> float32 [N, h, w, 3] RGB intensity differences.

  'default' gives clip(r, -128, 127) (what the network sees after its own clip(r + 128, 0, 255)) up to
  the JPEG error (mean absolute about 2 levels); 'lossless' gives r in [-255, 255] exactly.
  (h, w) is (height, width), or the crop box's size.
  """
  _check_encoding(encoding)
  if encoding == 'lossless':
    residuals = _map_decode(
        lambda data: _decode_int16(data, height, width, 3), encoded, crop, height, width, 3, tf.int16
    )
    return tf.cast(residuals, tf.float32)
  codes = _map_decode(lambda data: _decode_image(data, 3), encoded, crop, height, width, 3, tf.uint8)
  return tf.cast(codes, tf.float32) - RESIDUAL_CODE_ZERO


def decode_motion_energy(
    encoded: tf.Tensor, *, height: int | tf.Tensor, width: int | tf.Tensor, crop: Crop | None = None
) -> tf.Tensor:
  """Encoded motion energy maps, string [N] -> float32 [N, h, w] (sum of MV magnitudes, px).

  (h, w) is (height, width), or the crop box's size.
  """
  energy = _map_decode(lambda data: _decode_image(data, 1, tf.uint16), encoded, crop, height, width, None, tf.uint16)
  return tf.cast(energy, tf.float32)


def tfds_features(label_names: Sequence[str]):
  """The `tfds.features.FeaturesDict` matching `feature_spec` (for the TFDS metadata beside the shards).

  The encoded maps stay bytes in TFDS; `decode_*` above turns them into tensors.
  """
  # Imported here: only the writer's metadata step needs TFDS, and it is slow to import.
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  scalar = lambda doc: tfds.features.Tensor(shape=(), dtype=np.int64, doc=doc)
  encoded = lambda doc: tfds.features.Tensor(shape=(None,), dtype=np.object_, doc=doc)
  return tfds.features.FeaturesDict(
      {
          'video': {
              'id': tfds.features.Text(doc='Stable id: path relative to the dataset root, or youtube id.'),
              'label': tfds.features.ClassLabel(names=list(label_names), doc='Class index, -1 unlabelled.'),
              'num_frames': scalar('Frames of the re-encoded video.'),
              'num_gops': scalar('GOPs of the re-encoded video.'),
              'height': scalar('Frame height of every map, px.'),
              'width': scalar('Frame width of every map, px.'),
              'gop_size': scalar('GOP length of the re-encoding.'),
          },
          'gop': {
              'num_pframes': tfds.features.Tensor(shape=(None,), dtype=np.int64, doc='P-frames per GOP.'),
              'iframe': encoded('Encoded RGB I-frame per GOP (imr_jax.data.schema.decode_iframes).'),
              'motion_energy': encoded('16-bit PNG motion energy per GOP (schema.decode_motion_energy).'),
          },
          'pframe': {
              'motion_vectors': encoded('Accumulated MVs per P-frame, GOP-major (schema.decode_motion_vectors).'),
              'residuals': encoded('Accumulated residuals per P-frame, GOP-major (schema.decode_residuals).'),
          },
      }
  )
