"""The tf.data input pipeline: records of `schema` -> batches of DESIGN.md section 3.

Phases, per record: parse (`schema.parse_example`, still encoded) -> sample a clip on the GOP structure
(`sampling`) -> decode only the sampled frames, in physical units (`schema.decode_*`; at training only
the crop box's region) -> one crop box and one flip for every stream (`augment`) -> network space
(`normalization`) -> batch -> numpy.

Reading: `tfds.builder_from_directory(data_dir)` supplies the split's shard files and sizes from the TFDS
metadata data_prep writes; the shards are read with `tf.data.TFRecordDataset` and parsed with
`schema.parse_example`. (TFDS's own `as_dataset` would decode every frame of every video; the raw
records let us decode only the sampled ones.)

Determinism: the order of a host's training records (`train_records`) and every random choice of an
example are stateless functions of (seed, process index, the example's position in the host's stream),
and tf.data keeps order (`deterministic=True`): the same seed gives the same batches however many
threads run, and a run resumed at step s starts at batch s by skipping, not by replaying or reseeding.

Multi-host: each host reads every process_count-th shard file. Evaluation numbers videos by their
position in the split (from the shard lengths in the metadata) and pads every host to the same number
of full batches (mask 0, label -1, video_index -1), so every video is counted exactly once.
"""

from collections.abc import Iterator, Sequence
import json
import math
import os
from typing import Any

import jax
import ml_collections
import numpy as np
import tensorflow as tf
from etils import epath
import tensorflow_datasets as tfds

from imr_jax.data import augment
from imr_jax.data import normalization
from imr_jax.data import sampling
from imr_jax.data import schema

Batch = dict[str, np.ndarray]
EXTRAS = frozenset({'shifted', 'view2'})
# Shard files a training host reads at once (their records riffled); each is one sequential stream.
MAX_INTERLEAVED_FILES = 16
# Stateless seed streams of one example; a fixed position per random choice keeps runs reproducible
# when a choice is switched off.
_WINDOW, _CROP, _FLIP, _JITTER, _SHIFTED, _VIEW2, _NUM_SEEDS = range(7)
_ALL_STREAMS = frozenset({'iframes', 'motion_vectors', 'residuals', 'motion_energy'})


def dataset_info(data_dir: str) -> dict[str, Any]:
  """The dataset's manifest.json (label_names, encoding, width, height, gop_size, splits, failures).

  'splits' (name -> number of videos) also counts the unions of other splits the manifest names
  ('split_unions': the official splits of UCF101 / HMDB51 converted together, e.g. 'train2').

  Raises:
    FileNotFoundError: `data_dir` holds no manifest.json (it is not an output of data_prep.convert).
  """
  path = epath.Path(data_dir) / 'manifest.json'
  if not path.exists():
    raise FileNotFoundError(
        f'No manifest.json in config.dataset.data_dir={data_dir!r}. Point it at an output directory '
        'of `python -m data_prep.convert`, or run that first.'
    )
  info = json.loads(path.read_text())
  for name, parts in info.get('split_unions', {}).items():
    info['splits'][name] = sum(info['splits'][part] for part in parts)
  return info


def split_files(data_dir: str, split: str) -> tuple[list[str], list[int]]:
  """The shard files of a split, in order, and the number of videos in each (TFDS metadata).

  A union of splits (manifest 'split_unions') is its parts' files, part after part.
  """
  parts = dataset_info(data_dir).get('split_unions', {}).get(split)
  if parts is not None:
    files, lengths = [], []
    for part in parts:
      part_files, part_lengths = split_files(data_dir, part)
      files += part_files
      lengths += part_lengths
    return files, lengths
  try:
    builder = tfds.builder_from_directory(data_dir)
  except Exception as e:  # TFDS raises several types for a missing or broken dataset_info.json.
    raise FileNotFoundError(
        f'No TFDS metadata (dataset_info.json) in {data_dir!r}: {e}. Re-run `python -m data_prep.convert`, '
        'which writes it beside the shards.'
    ) from e
  if split not in builder.info.splits:
    raise ValueError(
        f'Split {split!r} is not in {data_dir!r}; it has {sorted(builder.info.splits)}. '
        'Set config.dataset.train_split / eval_split to one of them.'
    )
  info = builder.info.splits[split]
  return [os.fspath(path) for path in info.filepaths], [int(n) for n in info.shard_lengths]


# --------------------------------------------------------------------------------------------------
# Per-record phases (inside the tf.data graph).


def _check_has_pframes(features: dict[str, tf.Tensor]) -> tf.Tensor:
  """The number of usable GOPs, asserting there is at least one (a clip needs P-frames)."""
  num_usable = tf.size(sampling.usable_gops(features[schema.GOP_NUM_PFRAMES]))
  check = tf.debugging.Assert(
      num_usable > 0,
      [
          'Video',
          features[schema.VIDEO_ID],
          'has no P-frames, so no clip can be sampled from it. Re-run data_prep.convert, which rejects such videos.',
      ],
  )
  with tf.control_dependencies([check]):
    return tf.identity(num_usable)


def _decode(
    features: dict[str, tf.Tensor],
    indices: sampling.ClipIndices,
    encoding: str,
    streams: frozenset[str],
    box: tf.Tensor | None = None,
) -> dict[str, tf.Tensor]:
  """Decodes the sampled frames of one clip into float32 physical units (see `augment`).

  Args:
    features: a parsed record.
    indices: the clip's frames.
    encoding: the dataset's record encoding.
    streams: which of 'iframes', 'motion_vectors', 'residuals', 'motion_energy' to decode.
    box: int32 (4,) top, left, height, width: decode only this region (the training crop; the schema
      crops before the conversion to float, which is what makes training clips cheap); None: whole
      frames.

  Returns:
    name -> float32 (T, h, w, C), or (G, h, w) for 'motion_energy'; (h, w) is the box's or the frame's.
  """
  size = dict(height=features[schema.VIDEO_HEIGHT], width=features[schema.VIDEO_WIDTH], crop=box)
  clip = {}
  if 'iframes' in streams:
    clip['iframes'] = tf.cast(
        schema.decode_iframes(tf.gather(features[schema.GOP_IFRAME], indices.gops), **size), tf.float32
    )
  if 'motion_vectors' in streams:
    clip['motion_vectors'] = schema.decode_motion_vectors(
        tf.gather(features[schema.PFRAME_MOTION_VECTORS], indices.pframes), encoding=encoding, **size
    )
  if 'residuals' in streams:
    clip['residuals'] = schema.decode_residuals(
        tf.gather(features[schema.PFRAME_RESIDUALS], indices.pframes), encoding=encoding, **size
    )
  if 'motion_energy' in streams:
    clip['motion_energy'] = schema.decode_motion_energy(
        tf.gather(features[schema.GOP_MOTION_ENERGY], indices.gops), **size
    )
  return clip


def _random_flip(clip: dict[str, tf.Tensor], seed: tf.Tensor) -> dict[str, tf.Tensor]:
  """Flips the whole clip with probability 1/2."""
  flip = tf.random.stateless_uniform([], seed) < 0.5
  return tf.cond(flip, lambda: augment.flip_left_right(clip), lambda: clip)


_NORMALIZE = {
    'iframes': normalization.normalize_iframes,
    'motion_vectors': normalization.normalize_motion_vectors,
    'residuals': normalization.normalize_residuals,
}


def _normalize(clip: dict[str, Any]) -> dict[str, Any]:
  """Physical units -> network space (DESIGN.md section 3); motion energy stays in pixels."""
  return augment.map_streams(lambda name, value: _NORMALIZE.get(name, tf.identity)(value), clip)


def _training_clip(
    features: dict[str, tf.Tensor],
    num_usable: tf.Tensor,
    data: ml_collections.ConfigDict,
    encoding: str,
    seeds: tf.Tensor,
    streams: frozenset[str],
    shifted: bool,
) -> dict[str, tf.Tensor]:
  """A random window, one multi-scale crop box and one flip for all its streams, I-frame jitter.

  With `shifted`, the P-streams of another window of the video and its motion energy (under
  'shifted': {'motion_vectors', 'residuals', 'motion_energy'}) share the crop and the flip.
  Returns network-space tensors, crop_size square.
  """
  start = sampling.random_window_start(num_usable, data.num_gops, seeds[_WINDOW])
  indices = sampling.clip_indices(features[schema.GOP_NUM_PFRAMES], start, data.num_gops, data.p_per_gop)
  box = augment.multi_scale_crop_box(
      features[schema.VIDEO_HEIGHT], features[schema.VIDEO_WIDTH], tuple(data.crop_scales), seeds[_CROP]
  )
  clip = _decode(features, indices, encoding, streams, box)
  if shifted:
    clip.update(_shifted_streams(features, num_usable, start, data, encoding, seeds[_SHIFTED], box))
  clip = augment.resize_clip(clip, data.crop_size)
  if data.flip:
    clip = _random_flip(clip, seeds[_FLIP])
  if data.color_jitter:
    clip['iframes'] = augment.color_jitter(clip['iframes'], seeds[_JITTER])
  return _normalize(clip)


def _video_fields(features: dict[str, tf.Tensor], video_index: tf.Tensor) -> dict[str, tf.Tensor]:
  return {
      'label': tf.cast(features[schema.VIDEO_LABEL], tf.int32),
      'mask': tf.constant(1.0, tf.float32),
      'video_index': tf.cast(video_index, tf.int32),
  }


def _shifted_streams(features, num_usable, start, data, encoding, seed, box=None) -> dict[str, tf.Tensor]:
  """{'shifted': the P-streams of another window of the same video (CTP's 'shifted' class)}, not yet
  augmented.

  Its motion energy comes along: PMSP + CTP scores the motion of the P-frames the network is shown,
  which for a shifted clip are these.
  """
  shifted_start = sampling.shifted_window_start(num_usable, data.num_gops, start, seed)
  indices = sampling.clip_indices(features[schema.GOP_NUM_PFRAMES], shifted_start, data.num_gops, data.p_per_gop)
  clip = _decode(features, indices, encoding, frozenset({'motion_vectors', 'residuals', 'motion_energy'}), box)
  return {'shifted': clip}


def _view2(features, num_usable, data, encoding, seed) -> dict[str, tf.Tensor]:
  """{'view2': a second, independently sampled and augmented clip of the same video (InfoNCE)}."""
  clip = _training_clip(
      features,
      num_usable,
      data,
      encoding,
      tf.random.experimental.stateless_split(seed, _NUM_SEEDS),
      frozenset({'iframes', 'motion_vectors', 'residuals'}),
      shifted=False,
  )
  return {'view2': clip}


def _static_shapes(example: dict[str, Any], data: ml_collections.ConfigDict, size: int) -> dict[str, Any]:
  """Pins the static shape of every field, so batches have fully known shapes.

  `size` is the side of the main views; 'view2' is always a training view (crop_size).
  """

  def shape(stream, side):
    num_frames = data.num_gops if stream in ('iframes', 'motion_energy') else data.num_gops * data.p_per_gop
    channels = {'iframes': [3], 'motion_vectors': [2], 'residuals': [3], 'motion_energy': []}
    return [num_frames, side, side] + channels[stream] if stream in channels else []

  def pinned(fields, side):
    return {
        name: pinned(value, data.crop_size if name == 'view2' else side)
        if isinstance(value, dict)
        else tf.ensure_shape(value, shape(name, side))
        for name, value in fields.items()
    }

  return pinned(example, size)


def _train_example(
    serialized: tf.Tensor,
    position: tf.Tensor,
    *,
    data: ml_collections.ConfigDict,
    encoding: str,
    extras: frozenset[str],
    seed: tf.Tensor,
) -> dict[str, tf.Tensor]:
  """One training example: a random clip of the record, augmented, in network space."""
  features = schema.parse_example(serialized)
  seeds = tf.random.experimental.stateless_split(tf.random.experimental.stateless_fold_in(seed, position), _NUM_SEEDS)
  num_usable = _check_has_pframes(features)
  example = _training_clip(features, num_usable, data, encoding, seeds, _ALL_STREAMS, shifted='shifted' in extras)
  if 'view2' in extras:
    example.update(_view2(features, num_usable, data, encoding, seeds[_VIEW2]))
  # Training has no split-wide order; a stable hash of the id still tells clips of one video apart.
  video_index = tf.strings.to_hash_bucket_fast(features[schema.VIDEO_ID], 2**31 - 1)
  example.update(_video_fields(features, video_index))
  return _static_shapes(example, data, data.crop_size)


def _eval_clips(serialized: tf.Tensor, video_index: tf.Tensor, *, data: ml_collections.ConfigDict) -> tf.data.Dataset:
  """The eval_num_clips uniformly spaced windows of one video: (features, index, clip number, start)."""
  features = schema.parse_example(serialized)
  starts = sampling.eval_window_starts(_check_has_pframes(features), data.num_gops, data.eval_num_clips)
  return tf.data.Dataset.from_tensor_slices((starts, tf.range(data.eval_num_clips))).map(
      lambda start, clip_number: (features, video_index, clip_number, start)
  )


def _eval_views(
    features: dict[str, tf.Tensor],
    video_index: tf.Tensor,
    clip_number: tf.Tensor,
    start: tf.Tensor,
    *,
    data: ml_collections.ConfigDict,
    encoding: str,
    extras: frozenset[str],
    seed: tf.Tensor,
) -> dict[str, tf.Tensor]:
  """The eval_num_crops views of one evaluation clip, stacked on a leading axis."""
  indices = sampling.clip_indices(features[schema.GOP_NUM_PFRAMES], start, data.num_gops, data.p_per_gop)
  clip = _decode(features, indices, encoding, _ALL_STREAMS)
  # Extras at evaluation are random but fixed per (video, clip): pretext metrics are reproducible.
  seeds = tf.random.experimental.stateless_split(
      tf.random.experimental.stateless_fold_in(
          tf.random.experimental.stateless_fold_in(seed, video_index), clip_number
      ),
      _NUM_SEEDS,
  )
  num_usable = tf.size(sampling.usable_gops(features[schema.GOP_NUM_PFRAMES]))
  if 'shifted' in extras:
    clip.update(_shifted_streams(features, num_usable, start, data, encoding, seeds[_SHIFTED]))
  boxes = augment.eval_crop_boxes(features[schema.VIDEO_HEIGHT], features[schema.VIDEO_WIDTH], data.eval_num_crops)
  views = [
      _normalize(augment.crop_and_resize_clip(clip, boxes[i], data.eval_crop_size)) for i in range(data.eval_num_crops)
  ]
  if 'view2' in extras:
    view2 = _view2(features, num_usable, data, encoding, seeds[_VIEW2])
    for view in views:
      view.update(view2)
  for view in views:
    view.update(_video_fields(features, video_index))
  views = [_static_shapes(view, data, data.eval_crop_size) for view in views]
  return tf.nest.map_structure(lambda *fields: tf.stack(fields), *views)


# --------------------------------------------------------------------------------------------------
# Datasets and iterators.


def _check_config(data: ml_collections.ConfigDict, extras: frozenset[str]) -> None:
  unknown = set(extras) - EXTRAS
  if unknown:
    raise ValueError(f'Unknown batch extras {sorted(unknown)}; the pipeline offers {sorted(EXTRAS)}.')
  for key in ('num_gops', 'p_per_gop', 'crop_size', 'eval_num_clips', 'eval_num_crops', 'eval_crop_size'):
    if data[key] < 1:
      raise ValueError(f'config.data.{key}={data[key]} must be a positive integer.')


def _options(num_threads: int | None) -> tf.data.Options:
  options = tf.data.Options()
  options.deterministic = True
  if num_threads is not None:
    options.threading.private_threadpool_size = num_threads
    options.threading.max_intra_op_parallelism = 1
  return options


def _host(process_index: int | None, process_count: int | None) -> tuple[int, int]:
  if process_index is None or process_count is None:
    return jax.process_index(), jax.process_count()
  return process_index, process_count


def _epoch_order(lengths: Sequence[int], key: tf.Tensor, group: int) -> tf.Tensor:
  """One epoch of a host's records, as the shard index of each position (int64 (sum(lengths),)).

  The shards are permuted; consecutive groups of `group` shards are read together, their records
  riffled at random, each shard's in file order (so at most `group` files are open, each read
  sequentially), and the groups follow one another.
  """
  lengths = tf.constant(lengths, tf.int64)
  file_key, riffle_key = tf.unstack(tf.random.experimental.stateless_split(key, 2))
  order = tf.random.experimental.stateless_shuffle(
      tf.range(tf.size(lengths, out_type=tf.int64)), file_key, alg='philox'
  )
  group_of_shard = tf.math.invert_permutation(order) // group
  shard_of_slot = tf.repeat(tf.range(tf.size(lengths, out_type=tf.int64)), lengths)
  sort_key = tf.cast(tf.gather(group_of_shard, shard_of_slot), tf.float64) + tf.random.stateless_uniform(
      tf.shape(shard_of_slot), riffle_key, dtype=tf.float64, alg='philox'
  )
  return tf.gather(shard_of_slot, tf.argsort(sort_key, stable=True))


def _epoch_records(
    files: Sequence[str], lengths: Sequence[int], key: tf.Tensor, epoch: tf.Tensor, start: tf.Tensor, window: int
) -> tf.data.Dataset:
  """The encoded records of one epoch of a host, from its position `start` on.

  Shards are read in `_epoch_order`; consecutive windows of `window` records are then permuted at
  random. Both are stateless functions of (key, epoch), so the records from any position are found by
  skipping: whole records per shard (reading only their length headers), then at most one window.
  """
  epoch_key = tf.random.experimental.stateless_fold_in(key, epoch)
  order_key, window_key = tf.unstack(tf.random.experimental.stateless_split(epoch_key, 2))
  shard_of_position = _epoch_order(lengths, order_key, MAX_INTERLEAVED_FILES)
  first_window = start // window
  window_start = first_window * window
  done = tf.math.bincount(shard_of_position[:window_start], minlength=len(files), maxlength=len(files), dtype=tf.int64)
  shards = [tf.data.TFRecordDataset(path).skip(done[i]) for i, path in enumerate(files)]
  records = tf.data.Dataset.choose_from_datasets(
      shards, tf.data.Dataset.from_tensor_slices(shard_of_position[window_start:])
  )

  def permute(index, records):
    shuffled = tf.random.experimental.stateless_shuffle(
        tf.range(tf.size(records)), tf.random.experimental.stateless_fold_in(window_key, index), alg='philox'
    )
    return tf.gather(records, shuffled)

  records = records.batch(window).enumerate(first_window).map(permute).unbatch()
  return records.skip(start - window_start)


def train_records(
    files: Sequence[str], lengths: Sequence[int], *, key: tf.Tensor, window: int, start: int = 0
) -> tf.data.Dataset:
  """A host's infinite stream of encoded training records, from its position `start` on.

  Epoch after epoch, every record once per epoch, in an order that is a stateless function of
  (key, epoch): a resumed run skips to its position instead of replaying or reseeding.
  """
  per_epoch = sum(lengths)
  first_epoch, start_in_epoch = divmod(start, per_epoch)
  return tf.data.Dataset.range(first_epoch, 2**62).flat_map(
      lambda epoch: _epoch_records(
          files,
          lengths,
          key,
          epoch,
          tf.where(epoch == first_epoch, tf.constant(start_in_epoch, tf.int64), tf.constant(0, tf.int64)),
          window,
      )
  )


def train_dataset(
    config: ml_collections.ConfigDict,
    *,
    host_batch_size: int,
    seed: int,
    start_step: int = 0,
    extras: frozenset[str] = frozenset(),
    process_index: int | None = None,
    process_count: int | None = None,
    num_threads: int | None = None,
) -> tf.data.Dataset:
  """The infinite, shuffled, augmented training batches of this host, from batch `start_step` on.

  Batch s is a pure function of (seed, process index, s): the records come from `train_records` and
  every random choice of an example is keyed by its position in the host's stream. A run resumed at
  step s therefore trains on exactly the batches the uninterrupted run would have, and runs with
  different seeds share no random stream.

  Args:
    config: the experiment config; reads config.dataset.{data_dir, train_split} and config.data.*.
    host_batch_size: examples per batch on this host.
    seed: the data seed; equal seeds give equal batches.
    start_step: the first batch to yield (a resumed run's step).
    extras: subset of {'shifted', 'view2'}: optional batch keys (DESIGN.md section 3).
    process_index, process_count: this host and the number of hosts (default: jax's).
    num_threads: size of tf.data's private thread pool (None: TensorFlow's default); benchmarks use 1.

  Returns:
    A dataset of batch dicts (DESIGN.md section 3) with a leading axis of host_batch_size.
  """
  data = config.data
  extras = frozenset(extras)
  _check_config(data, extras)
  if host_batch_size < 1:
    raise ValueError(f'host_batch_size={host_batch_size} must be >= 1.')
  if start_step < 0:
    raise ValueError(f'start_step={start_step} must be >= 0.')
  process_index, process_count = _host(process_index, process_count)
  encoding = dataset_info(config.dataset.data_dir)['encoding']
  files, lengths = split_files(config.dataset.data_dir, config.dataset.train_split)
  if len(files) < process_count:
    raise ValueError(
        f'Split {config.dataset.train_split!r} of {config.dataset.data_dir!r} has {len(files)} shard files, '
        f'fewer than the {process_count} hosts; re-run data_prep.convert with at least that many shards.'
    )
  host_key = tf.constant([seed, process_index], tf.int64)
  records_key, example_key = tf.unstack(tf.random.experimental.stateless_split(host_key, 2))
  start = start_step * host_batch_size
  records = train_records(
      files[process_index::process_count],
      lengths[process_index::process_count],
      key=records_key,
      window=data.shuffle_buffer,
      start=start,
  )
  dataset = records.enumerate(start).map(
      lambda position, serialized: _train_example(
          serialized, position, data=data, encoding=encoding, extras=extras, seed=example_key
      ),
      num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True,
  )
  dataset = dataset.batch(host_batch_size, drop_remainder=True)
  return dataset.prefetch(tf.data.AUTOTUNE).with_options(_options(num_threads))


def num_eval_batches(
    shard_lengths: Sequence[int], views_per_video: int, host_batch_size: int, process_count: int
) -> int:
  """Batches every host yields in one evaluation pass: enough for the host with the most videos."""
  most_videos = max(sum(shard_lengths[host::process_count]) for host in range(process_count))
  return math.ceil(most_videos * views_per_video / host_batch_size)


def eval_dataset(
    config: ml_collections.ConfigDict,
    *,
    host_batch_size: int,
    split: str | None = None,
    extras: frozenset[str] = frozenset(),
    seed: int = 0,
    process_index: int | None = None,
    process_count: int | None = None,
    num_threads: int | None = None,
) -> tf.data.Dataset:
  """One evaluation pass over this host's videos, as a tf.data.Dataset of batch dicts.

  Host h reads shard files h, h + process_count, ...; video_index is the video's position in the
  split (shard order). Each video becomes eval_num_clips x eval_num_crops consecutive views
  (clip-major): squares of the frame's short side placed along its long side (`augment.eval_crop_boxes`),
  resized to eval_crop_size. The last batches are padded with mask 0, label -1, video_index -1 so that
  every host yields exactly `num_eval_batches(...)` full batches.

  Args:
    config: the experiment config; reads config.dataset.{data_dir, eval_split} and config.data.*.
    host_batch_size: views per batch on this host.
    split: the split to read (default config.dataset.eval_split).
    extras: subset of {'shifted', 'view2'}, drawn at random but fixed per video and clip.
    seed: seeds the extras' random choices.
    process_index, process_count: this host and the number of hosts (default: jax's).
    num_threads: size of tf.data's private thread pool (None: TensorFlow's default).
  """
  data = config.data
  if host_batch_size < 1:
    raise ValueError(f'host_batch_size={host_batch_size} must be >= 1.')
  process_index, process_count = _host(process_index, process_count)
  split = split or config.dataset.eval_split
  encoding = dataset_info(config.dataset.data_dir)['encoding']
  files, shard_lengths = split_files(config.dataset.data_dir, split)
  views_per_video = data.eval_num_clips * data.eval_num_crops
  host_videos = sum(shard_lengths[process_index::process_count])
  num_batches = num_eval_batches(shard_lengths, views_per_video, host_batch_size, process_count)

  # Sequential reading of this host's files; the index of a video is its position in the split.
  first_index = np.cumsum([0] + shard_lengths[:-1]).tolist()
  dataset = tf.data.Dataset.from_tensor_slices(
      (
          tf.constant(files[process_index::process_count], tf.string),
          tf.constant(first_index[process_index::process_count], tf.int64),
      )
  )
  dataset = dataset.flat_map(
      lambda path, first: tf.data.TFRecordDataset(path)
      .enumerate()
      .map(lambda position, serialized: (first + position, serialized))
  )
  return eval_batches_of_records(
      dataset,
      host_videos,
      config,
      encoding=encoding,
      host_batch_size=host_batch_size,
      num_batches=num_batches,
      extras=extras,
      seed=seed,
      num_threads=num_threads,
  )


def eval_batches_of_records(
    records: tf.data.Dataset,
    num_videos: int,
    config: ml_collections.ConfigDict,
    *,
    encoding: str,
    host_batch_size: int,
    num_batches: int,
    extras: frozenset[str] = frozenset(),
    seed: int = 0,
    num_threads: int | None = None,
) -> tf.data.Dataset:
  """The evaluation views of `records`, batched and padded: `eval_dataset`'s second half.

  Also what `imr_jax.predict` feeds with records built in memory from video files.

  Args:
    records: (video_index int64, serialized record) pairs, `num_videos` of them.
    num_videos: how many records there are.
    config: reads config.data.*.
    encoding: the records' encoding (the manifest's).
    host_batch_size: views per batch.
    num_batches: batches to yield; the last are padded with mask 0, label -1, video_index -1.
    extras, seed, num_threads: as for `eval_dataset`.
  """
  data = config.data
  extras = frozenset(extras)
  _check_config(data, extras)
  extras_seed = tf.constant([seed, 1], tf.int64)
  dataset = records.flat_map(lambda index, serialized: _eval_clips(serialized, index, data=data))
  dataset = dataset.map(
      lambda features, index, clip_number, start: _eval_views(
          features, index, clip_number, start, data=data, encoding=encoding, extras=extras, seed=extras_seed
      ),
      num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True,
  )
  dataset = dataset.unbatch()

  def padding_view(spec):
    return tf.zeros(spec.shape, spec.dtype)

  padding = tf.nest.map_structure(padding_view, dataset.element_spec)
  padding.update(label=tf.constant(-1, tf.int32), video_index=tf.constant(-1, tf.int32))
  num_padding = num_batches * host_batch_size - num_videos * data.eval_num_clips * data.eval_num_crops
  dataset = dataset.concatenate(tf.data.Dataset.from_tensors(padding).repeat(num_padding))
  dataset = dataset.batch(host_batch_size, drop_remainder=True)
  return dataset.prefetch(tf.data.AUTOTUNE).with_options(_options(num_threads))


class DamagedDataError(ValueError):
  """A shard could not be read or a record did not parse; the message names the data and the fix."""


def _checked(batches: Iterator[Batch], data_dir: str, split: str) -> Iterator[Batch]:
  """`batches`, with TensorFlow's errors on damaged shards turned into one DamagedDataError."""
  try:
    yield from batches
  except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
    raise DamagedDataError(
        f'Split {split!r} of {data_dir} is damaged: {e.message.splitlines()[0]}. Find the shard with '
        f'`python -m data_prep.verify {data_dir}`, then reconvert (data_prep.convert keeps the sound '
        'shards); checkpoints already written are kept.'
    ) from None


def train_iterator(
    config: ml_collections.ConfigDict,
    *,
    host_batch_size: int,
    seed: int,
    start_step: int = 0,
    extras: frozenset[str] = frozenset(),
) -> Iterator[Batch]:
  """Infinite numpy training batches of this host from batch `start_step` on (see `train_dataset`)."""
  dataset = train_dataset(config, host_batch_size=host_batch_size, seed=seed, start_step=start_step, extras=extras)
  return _checked(iter(tfds.as_numpy(dataset)), config.dataset.data_dir, config.dataset.train_split)


def eval_iterator(
    config: ml_collections.ConfigDict,
    *,
    host_batch_size: int,
    split: str | None = None,
    extras: frozenset[str] = frozenset(),
) -> Iterator[Batch]:
  """One pass of numpy evaluation batches of this host (see `eval_dataset`)."""
  dataset = eval_dataset(config, host_batch_size=host_batch_size, split=split, extras=extras, seed=config.seed)
  return _checked(iter(tfds.as_numpy(dataset)), config.dataset.data_dir, split or config.dataset.eval_split)
