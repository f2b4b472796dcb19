"""Re-reads a converted dataset and checks it against its manifest and the record schema.

  python -m data_prep.verify /data/imr/ucf101 [--quick]

Checks: manifest.json is complete; every split has exactly its shards and its number of videos, with no
video twice; every record parses, has consistent GOP and P-frame counts, the manifest's frame size, GOP
size and a valid label, and decodes (imr_jax.data.schema) to tensors of the right shapes, dtypes and
value ranges (--quick decodes only the first GOP of each video); TFDS loads every split with the same
counts. Prints a report; exit status 0 when all is well, 1 when anything is off, 2 when OUT is not a
converted dataset at all.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from absl import flags
from absl import logging
from etils import epath
import numpy as np
import tensorflow as tf

from imr_jax import cli
from imr_jax.data import schema

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_NOT_A_DATASET = 2

REQUIRED_MANIFEST_KEYS = (
    'dataset',
    'label_names',
    'encoding',
    'width',
    'height',
    'gop_size',
    'splits',
    'num_shards',
    'failures',
)


class NotADatasetError(ValueError):
  """The folder has no readable manifest.json."""


def _reason(error: tf.errors.OpError) -> str:
  """The line of a TensorFlow error that says what went wrong (not where in the graph)."""
  for line in error.message.splitlines():
    line = re.sub(r'\s*\[Op:.*$', '', re.sub(r'^\{\{.*?\}\}\s*', '', line.strip()))
    if line and not line.startswith(('Graph execution error', 'Detected at node', 'File ', '[[')):
      return line
  return error.message.strip()


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def _parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
  return schema.parse_example(serialized)


def _decoder(encoding: str, height: int, width: int, quick: bool):
  """A compiled function: serialized record -> its decoded tensors (quick: the first GOP's only)."""

  @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
  def decode(serialized):
    features = schema.parse_example(serialized)
    iframes, energy = features[schema.GOP_IFRAME], features[schema.GOP_MOTION_ENERGY]
    motion_vectors, residuals = features[schema.PFRAME_MOTION_VECTORS], features[schema.PFRAME_RESIDUALS]
    if quick:
      first = tf.reduce_sum(features[schema.GOP_NUM_PFRAMES][:1])
      iframes, energy = iframes[:1], energy[:1]
      motion_vectors, residuals = motion_vectors[:first], residuals[:first]
    size = dict(height=height, width=width)
    return {
        'iframes': schema.decode_iframes(iframes, **size),
        'motion_energy': schema.decode_motion_energy(energy, **size),
        'motion_vectors': schema.decode_motion_vectors(motion_vectors, encoding=encoding, **size),
        'residuals': schema.decode_residuals(residuals, encoding=encoding, **size),
    }

  return decode


def stored_size(manifest: dict[str, Any]) -> tuple[int, int]:
  """(height, width) of the stored maps: the re-encoded size over the manifest's map_downscale."""
  factor = manifest.get('map_downscale', 1)
  return manifest['height'] // factor, manifest['width'] // factor


def _check_structure(features: dict[str, np.ndarray], manifest: dict[str, Any]) -> list[str]:
  """Problems of one parsed record's sizes, counts and label (empty when it is fine)."""
  problems = []
  (height, width), gop_size = stored_size(manifest), manifest['gop_size']
  factor = manifest.get('map_downscale', 1)
  for key, expected, said in (
      (schema.VIDEO_HEIGHT, height, manifest['height']),
      (schema.VIDEO_WIDTH, width, manifest['width']),
      (schema.VIDEO_GOP_SIZE, gop_size, gop_size),
  ):
    if features[key] != expected:
      scaled = f' ({said} / map_downscale {factor})' if expected != said else ''
      problems.append(f'{key} is {features[key]}, the manifest says {expected}{scaled}')
  label = int(features[schema.VIDEO_LABEL])
  if not -1 <= label < len(manifest['label_names']):
    problems.append(f'label {label} is outside [-1, {len(manifest["label_names"])})')
  num_pframes = features[schema.GOP_NUM_PFRAMES]
  num_gops = int(features[schema.VIDEO_NUM_GOPS])
  counts = {
      schema.GOP_NUM_PFRAMES: len(num_pframes),
      schema.GOP_IFRAME: len(features[schema.GOP_IFRAME]),
      schema.GOP_MOTION_ENERGY: len(features[schema.GOP_MOTION_ENERGY]),
  }
  for key, count in counts.items():
    if count != num_gops:
      problems.append(f'{key} has {count} entries for {num_gops} GOPs')
  if num_gops < 1:
    problems.append('no GOPs')
  for key in (schema.PFRAME_MOTION_VECTORS, schema.PFRAME_RESIDUALS):
    if len(features[key]) != num_pframes.sum():
      problems.append(f'{key} has {len(features[key])} entries for {num_pframes.sum()} P-frames')
  if features[schema.VIDEO_NUM_FRAMES] != num_gops + num_pframes.sum():
    problems.append(f'num_frames {features[schema.VIDEO_NUM_FRAMES]} != GOPs + P-frames {num_gops + num_pframes.sum()}')
  # Every GOP but the last is full; the last holds 0..gop_size - 1 P-frames.
  if len(num_pframes) and (np.any(num_pframes[:-1] != gop_size - 1) or not 0 <= num_pframes[-1] < gop_size):
    problems.append(f'P-frames per GOP {num_pframes.tolist()} do not fit GOPs of {gop_size}')
  return problems


def _check_tensors(
    features: dict[str, np.ndarray], decoded: dict[str, np.ndarray], manifest: dict[str, Any], quick: bool
) -> list[str]:
  """Problems of one structurally sound record's decoded tensors: shapes, dtypes, value ranges."""
  height, width = stored_size(manifest)
  num_pframes = features[schema.GOP_NUM_PFRAMES]
  num_gops = 1 if quick else len(num_pframes)
  total_pframes = int(num_pframes[:1].sum()) if quick else int(num_pframes.sum())
  expected = {
      'iframes': ((num_gops, height, width, 3), np.uint8, 0, 255),
      'motion_energy': ((num_gops, height, width), np.float32, 0, schema.MOTION_ENERGY_MAX),
      'motion_vectors': ((total_pframes, height, width, 2), np.float32, -max(height, width), max(height, width)),
      'residuals': ((total_pframes, height, width, 3), np.float32, -255, 255),
  }
  problems = []
  for key, (shape, dtype, low, high) in expected.items():
    array = decoded[key]
    if array.shape != shape or array.dtype != dtype:
      problems.append(f'{key} decodes to {array.dtype.name} {array.shape}, expected {np.dtype(dtype).name} {shape}')
    elif array.size and (array.min() < low or array.max() > high):
      problems.append(f'{key} values [{array.min()}, {array.max()}] outside [{low}, {high}]')
  return problems


def fingerprint(output_dir: str | os.PathLike) -> str:
  """The first 12 hex digits of the SHA-256 of a converted set's shards, in name order.

  Conversion is byte-exact on any machine (imr_jax/codec/stream.py pins FFmpeg's exact code), so two
  machines that converted the same videos with the same settings print the same fingerprint.
  """
  import hashlib  # pylint: disable=g-import-not-at-top

  digest = hashlib.sha256()
  for path in sorted(epath.Path(output_dir).glob('*.tfrecord-*')):
    digest.update(path.read_bytes())
  return digest.hexdigest()[:12]


def load_manifest(output_dir: str | os.PathLike) -> dict[str, Any]:
  path = epath.Path(output_dir) / 'manifest.json'
  try:
    manifest = json.loads(path.read_text())
  except (OSError, json.JSONDecodeError) as e:
    raise NotADatasetError(
        f'{str(path)!r} is missing or unreadable ({e}); is {str(output_dir)!r} the '
        '--output_dir of a finished data_prep.convert run?'
    ) from None
  missing = [key for key in REQUIRED_MANIFEST_KEYS if key not in manifest]
  if missing:
    raise NotADatasetError(f'{str(path)!r} lacks {missing}; rerun data_prep.convert to finish it.')
  return manifest


def verify(output_dir: str | os.PathLike, *, quick: bool = False, log=print) -> list[str]:
  """Checks a converted dataset; returns the problems found (empty when it is fine).

  Raises:
    NotADatasetError: when `output_dir` has no usable manifest.json.
  """
  out = epath.Path(output_dir)
  manifest = load_manifest(out)
  problems = []
  decode = _decoder(manifest['encoding'], *stored_size(manifest), quick)
  for split, expected_count in manifest['splits'].items():
    num_shards = manifest['num_shards'][split]
    pattern = re.compile(rf'^{re.escape(manifest["dataset"])}-{re.escape(split)}\.tfrecord-\d{{5}}-of-\d{{5}}$')
    files = sorted(p for p in out.iterdir() if pattern.match(p.name))
    expected_files = [f'{manifest["dataset"]}-{split}.tfrecord-{i:05d}-of-{num_shards:05d}' for i in range(num_shards)]
    if [p.name for p in files] != expected_files:
      problems.append(f'{split}: shard files {[p.name for p in files]} differ from the expected {expected_files}')
    count, ids = 0, set()
    for path in files:
      index = -1
      try:
        for index, serialized in enumerate(tf.data.TFRecordDataset(str(path))):
          count += 1
          where = f'{path.name} record {index}'
          try:
            features = {k: v.numpy() for k, v in _parse(serialized).items()}
          except tf.errors.OpError as e:
            problems.append(f'{where}: does not parse: {_reason(e)}')
            continue
          video_id = features[schema.VIDEO_ID].decode('utf-8', errors='replace')
          if video_id in ids:
            problems.append(f'{where}: video {video_id!r} appears twice in {split}')
          ids.add(video_id)
          record_problems = _check_structure(features, manifest)
          if not record_problems:
            try:
              decoded = {k: v.numpy() for k, v in decode(serialized).items()}
            except tf.errors.OpError as e:
              record_problems.append(f'does not decode: {_reason(e)}')
            else:
              record_problems += _check_tensors(features, decoded, manifest, quick)
          problems += [f'{where} ({video_id}): {p}' for p in record_problems]
      except tf.errors.OpError as e:  # A truncated or corrupted shard file.
        problems.append(f'{path.name}: unreadable after {index + 1} records: {_reason(e)}')
    if count != expected_count:
      problems.append(f'{split}: {count} records, the manifest says {expected_count}')
    log(f'{split}: {count} videos in {len(files)} shards checked')
  for union, parts in manifest.get('split_unions', {}).items():
    unknown = [part for part in parts if part not in manifest['splits']]
    if unknown:
      problems.append(f'split {union!r} is made of {unknown}, which the manifest does not list')
  problems += _check_tfds(out, manifest)
  return problems


def _check_tfds(out: epath.Path, manifest: dict[str, Any]) -> list[str]:
  """TFDS must load every split with the manifest's counts."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  try:
    builder = tfds.builder_from_directory(str(out))
    counts = {name: info.num_examples for name, info in builder.info.splits.items()}
    if counts != manifest['splits']:
      return [f'TFDS metadata counts {counts} differ from the manifest {manifest["splits"]}']
    for split, count in counts.items():
      if count:
        next(iter(builder.as_dataset(split=split).take(1)))
  except Exception as e:  # pylint: disable=broad-except
    return [f'TFDS cannot load {str(out)!r}: {type(e).__name__}: {e}']
  return []


FLAGS = flags.FLAGS
flags.DEFINE_bool('quick', False, 'Decode only the first GOP of every video (counts are still all checked).')


def main(argv: Sequence[str]) -> int:
  if len(argv) != 2:
    raise cli.UserError('Usage: python -m data_prep.verify OUTPUT_DIR [--quick]')
  logging.set_verbosity(logging.WARNING)  # TFDS narrates every dataset it opens at INFO.
  try:
    problems = verify(argv[1], quick=FLAGS.quick)
  except NotADatasetError as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_NOT_A_DATASET
  manifest = load_manifest(argv[1])
  if manifest['failures']:
    print(
        f'note: {len(manifest["failures"])} source videos failed conversion and are not in the shards '
        '(manifest.json "failures").'
    )
  if problems:
    print(f'FAILED: {len(problems)} problems in {argv[1]}:', file=sys.stderr)
    for problem in problems[:50]:
      print(f'  {problem}', file=sys.stderr)
    if len(problems) > 50:
      print(f'  ... and {len(problems) - 50} more', file=sys.stderr)
    return EXIT_PROBLEMS
  print(f'OK: {argv[1]} matches its manifest and the record schema.')
  return EXIT_OK


if __name__ == '__main__':
  cli.run(main)
