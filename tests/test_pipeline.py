"""The input pipeline end to end on tiny datasets written with the schema's encoders.

The exact checks read a 'lossless' dataset; the 'default' (JPEG / quantised) one must give the same
clips up to its coding error.

Every frame carries its own coordinates in its values, so a batch can be checked for stream alignment:
  I-frame of GOP g:        left half (columns < W / 2) = 40 + 20 g, right half = 10 (grey)
  P-frame k of GOP g (k = 0-based among the GOP's P-frames), left half only, zero on the right:
    accumulated MV (x, y) = (g + 1, k + 1) px; residual (R, G, B) = (g + 1, k + 1, video number + 1)
  motion energy of GOP g: from the same MVs, so it is non-zero on the left half only.
A crop keeps part of the left half; a flip moves it to the right and makes the MV x negative.
"""

import json

import flax
import jax
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from configs import default as default_config
from imr_jax.data import normalization
from imr_jax.data import pipeline
from imr_jax.data import sampling
from imr_jax.data import schema
from tests import numerics

# Rounding of the clips the checks below read back in pixel units: a bilinear resize (2 blends, each a
# product and a sum), the normalisation (3 operations) and the test's denormalisation (3): at most 16
# float32 roundings per value, each within u of a quantity that maps to at most 255 pixel levels.
PIXEL_ROUNDING = 16 * numerics.unit_roundoff(np.float32) * 255

HEIGHT, WIDTH, GOP_SIZE = 24, 32, 4
# Frames per video: full GOPs; a last GOP with 1 P-frame; one GOP only (loops); a lone trailing
# I-frame (its GOP is never used); six GOPs.
NUM_FRAMES = (16, 10, 4, 13, 24)
LABELS = (0, 1, 2, 0, 1)
LABEL_NAMES = ('a', 'b', 'c')
NUM_GOPS, P_PER_GOP, CROP = 2, 2, 16


def _gop_sizes(num_frames):
  return [min(GOP_SIZE, num_frames - start) for start in range(0, num_frames, GOP_SIZE)]


def _record(video, num_frames, encoding):
  left = np.arange(WIDTH) < WIDTH // 2
  gops = []
  for g, size in enumerate(_gop_sizes(num_frames)):
    iframe = np.where(left[None, :, None], 40 + 20 * g, 10) * np.ones((HEIGHT, WIDTH, 3))
    mvs = np.zeros((size - 1, HEIGHT, WIDTH, 2), np.int16)
    residuals = np.zeros((size - 1, HEIGHT, WIDTH, 3), np.int16)
    for k in range(size - 1):
      mvs[k, :, left] = (g + 1, k + 1)
      residuals[k, :, left] = (g + 1, k + 1, video + 1)
    gops.append(
        schema.encode_gop(
            iframe=iframe.astype(np.uint8),
            motion_vectors=mvs,
            residuals=residuals,
            frame_motion_vectors=mvs,
            encoding=encoding,
        )
    )
  return schema.serialize_example(
      video_id=f'video{video}',
      label=LABELS[video],
      num_frames=num_frames,
      height=HEIGHT,
      width=WIDTH,
      gop_size=GOP_SIZE,
      gops=gops,
  )


def _write_dataset(root, encoding):
  records = [_record(v, n, encoding) for v, n in enumerate(NUM_FRAMES)]
  shards = (records[:3], records[3:])  # two shard files per split
  for split in ('train', 'test'):
    for i, shard in enumerate(shards):
      with tf.io.TFRecordWriter(str(root / f'tiny-{split}.tfrecord-{i:05d}-of-00002')) as writer:
        for record in shard:
          writer.write(record)
  tfds.folder_dataset.write_metadata(data_dir=root, features=schema.tfds_features(LABEL_NAMES))
  manifest = dict(
      label_names=LABEL_NAMES,
      encoding=encoding,
      width=WIDTH,
      height=HEIGHT,
      gop_size=GOP_SIZE,
      splits={'train': 5, 'test': 5},
      failures=[],
  )
  (root / 'manifest.json').write_text(json.dumps(manifest))
  return str(root)


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return _write_dataset(tmp_path_factory.mktemp('lossless'), 'lossless')


@pytest.fixture(scope='module')
def default_data_dir(tmp_path_factory):
  return _write_dataset(tmp_path_factory.mktemp('default'), 'default')


def _config(data_dir, **data):
  config = default_config.base_config()
  config.dataset.data_dir = data_dir
  config.dataset.eval_split = 'test'
  config.data.update(
      num_gops=NUM_GOPS,
      p_per_gop=P_PER_GOP,
      crop_size=CROP,
      crop_scales=(1.0, 0.875),
      shuffle_buffer=8,
      eval_num_clips=2,
      eval_num_crops=3,
      eval_crop_size=CROP,
  )
  config.data.update(data)
  return config


def _batches(dataset, count):
  return [batch for batch, _ in zip(tfds.as_numpy(dataset), range(count))]


def _num_pframes(video):
  return [size - 1 for size in _gop_sizes(NUM_FRAMES[video])]


def _check_clip(iframes, mvs, residuals, energy, label):
  """Checks one clip (physical units) against the record's coordinates; returns (gops, flipped).

  Spatial alignment: bilinear resizing blends the marker and the background with the same weights in
  every stream, so each column's marker weight must agree between the streams.
  """
  gops = np.round((iframes[..., 0].max(axis=(1, 2)) - 40) / 20).astype(int)
  video = int(round(residuals[..., 2].max())) - 1
  assert LABELS[video] == label
  num_pframes = _num_pframes(video)
  usable = [g for g, n in enumerate(num_pframes) if n > 0]
  assert all(g in usable for g in gops)
  position = usable.index(gops[0])
  assert [usable[(position + t) % len(usable)] for t in range(NUM_GOPS)] == gops.tolist()
  # Marker weight per column (G, S): 1 inside the marker, 0 outside; JPEG noise is a few levels.
  weight = (iframes[..., 0].mean(axis=1) - 10) / (30 + 20 * gops[:, None])
  # Grey: no channel mix-up (R and B pass through different means and stds).
  numerics.assert_within(iframes[..., 0], iframes[..., 2], 2 * PIXEL_ROUNDING)
  flipped = weight[0, -1] > 0.5
  assert (weight[0, 0] > 0.5) != flipped
  for t, g in enumerate(gops):
    expected_k = sampling.evenly_spaced(tf.constant(num_pframes[g]), P_PER_GOP).numpy()
    for j in range(P_PER_GOP):
      mv, residual = mvs[t * P_PER_GOP + j], residuals[t * P_PER_GOP + j]
      x = mv[..., 0].ravel()[np.abs(mv[..., 0]).argmax()]
      # Rounding to 3 decimals tolerates 5e-4; the values are within PIXEL_ROUNDING (1.2e-4).
      assert round(x, 3) == (-(g + 1) if flipped else g + 1)
      assert round(mv[..., 1].max(), 3) == expected_k[j] + 1
      assert round(residual[..., 0].max(), 3) == g + 1
      assert round(residual[..., 1].max(), 3) == expected_k[j] + 1
      mv_weight = np.abs(mv[..., 0]).mean(axis=0) / (g + 1)
      # Weights from the I-frame are off by PIXEL_ROUNDING / 30 at most (the marker's contrast is
      # 30 + 20 g levels), from the MVs and residuals by PIXEL_ROUNDING / (g + 1) and
      # PIXEL_ROUNDING / (video + 1); the means over rows add at most gamma(16) of values <= 1.
      tolerance = 2 * PIXEL_ROUNDING + numerics.gamma(16)
      numerics.assert_within(mv_weight, weight[t], tolerance)
      numerics.assert_within(residual[..., 2].mean(axis=0) / (video + 1), mv_weight, tolerance)
    if energy is not None:
      assert energy[t][:, weight[t] > 0.5].sum() > 0.9 * energy[t].sum() > 0
  return gops, flipped


def _gop_energy(video, g):
  """The stored motion energy of GOP g's marker pixels: sum over its P-frames of |(g + 1, k + 1)|."""
  return round(sum(np.hypot(g + 1, k + 1) for k in range(_num_pframes(video)[g])))


def _physical(streams):
  return (
      normalization.denormalize_iframes(streams['iframes']),
      normalization.denormalize_motion_vectors(streams['motion_vectors']),
      normalization.denormalize_residuals(streams['residuals']),
  )


def test_train_batches_shapes_dtypes_and_ranges(default_data_dir):
  config = _config(default_data_dir)
  (batch,) = _batches(pipeline.train_dataset(config, host_batch_size=3, seed=0, extras={'shifted', 'view2'}), 1)
  t_p = NUM_GOPS * P_PER_GOP
  expected = {
      'iframes': (np.float32, (3, NUM_GOPS, CROP, CROP, 3)),
      'motion_vectors': (np.float32, (3, t_p, CROP, CROP, 2)),
      'residuals': (np.float32, (3, t_p, CROP, CROP, 3)),
      'motion_energy': (np.float32, (3, NUM_GOPS, CROP, CROP)),
      'shifted/motion_vectors': (np.float32, (3, t_p, CROP, CROP, 2)),
      'shifted/residuals': (np.float32, (3, t_p, CROP, CROP, 3)),
      'shifted/motion_energy': (np.float32, (3, NUM_GOPS, CROP, CROP)),
      'view2/iframes': (np.float32, (3, NUM_GOPS, CROP, CROP, 3)),
      'view2/motion_vectors': (np.float32, (3, t_p, CROP, CROP, 2)),
      'view2/residuals': (np.float32, (3, t_p, CROP, CROP, 3)),
      'label': (np.int32, (3,)),
      'mask': (np.float32, (3,)),
      'video_index': (np.int32, (3,)),
  }
  fields = flax.traverse_util.flatten_dict(batch, sep='/')  # {'shifted': {'residuals'}} -> 'shifted/residuals'
  assert {k: (v.dtype, v.shape) for k, v in fields.items()} == {k: (np.dtype(d), s) for k, (d, s) in expected.items()}
  for name in ('motion_vectors', 'shifted/motion_vectors', 'view2/motion_vectors'):
    assert -0.5 <= fields[name].min() and fields[name].max() <= 0.5
  iframes = normalization.denormalize_iframes(batch['iframes'])
  assert iframes.min() > -1 and iframes.max() < 256
  assert batch['motion_energy'].min() >= 0
  np.testing.assert_array_equal(batch['mask'], 1.0)
  assert set(batch['label']) <= set(LABELS)


def test_train_streams_are_aligned_in_time_and_space(data_dir):
  config = _config(data_dir)
  batches = _batches(pipeline.train_dataset(config, host_batch_size=5, seed=1, extras={'shifted', 'view2'}), 4)
  flips, same_view2 = set(), 0
  for batch in batches:
    iframes, mvs, residuals = _physical(batch)
    view2 = _physical(batch['view2'])
    _, shifted_mvs, shifted_residuals = _physical({'iframes': batch['iframes'], **batch['shifted']})
    for b in range(5):
      gops, flipped = _check_clip(iframes[b], mvs[b], residuals[b], batch['motion_energy'][b], batch['label'][b])
      flips.add(bool(flipped))
      # The shifted P-streams share the crop and the flip, and come from another window.
      video = int(round(residuals[b][..., 2].max())) - 1
      usable = [g for g, n in enumerate(_num_pframes(video)) if n > 0]
      shifted_gops = np.abs(shifted_mvs[b][::P_PER_GOP, ..., 0]).max(axis=(1, 2)) - 1
      left = shifted_mvs[b][..., 0].sum() > 0
      assert left != flipped
      if len(usable) > 1:
        assert shifted_gops[0] != gops[0]
      # Its motion energy is that of the shifted GOPs, under the same crop and flip. The crop's
      # area scale is shared with the clip's own energy, so per-GOP maxima compare exactly.
      for t, g in enumerate(np.round(shifted_gops).astype(int)):
        energy = batch['shifted']['motion_energy'][b][t]
        mv_weight = np.abs(shifted_mvs[b][t * P_PER_GOP][..., 0]).mean(axis=0) / (g + 1)
        assert energy[:, mv_weight > 0.5].sum() > 0.9 * energy.sum() > 0
        # Each maximum is an area-weighted sum of at most 3 x 3 energies, scaled twice (gamma(13)
        # relative, augment tests); the ratio rounds once more.
        expected_ratio = _gop_energy(video, g) / _gop_energy(video, gops[0])
        numerics.assert_within(
            energy.max() / batch['motion_energy'][b][0].max(),
            expected_ratio,
            (2 * numerics.gamma(13) + numerics.unit_roundoff(np.float32)) * expected_ratio,
        )
      # The second view is a clip of the same video with its own window, crop and flip.
      _check_clip(view2[0][b], view2[1][b], view2[2][b], None, batch['label'][b])
      assert round(view2[2][b][..., 2].max()) - 1 == video
      same_view2 += np.allclose(view2[0][b], iframes[b])  # a count of near-identical views, no bound
  assert flips == {True, False}
  assert same_view2 < 5


def test_same_seed_same_batches(data_dir):
  config = _config(data_dir, color_jitter=True)
  first = _batches(pipeline.train_dataset(config, host_batch_size=2, seed=7), 3)
  again = _batches(pipeline.train_dataset(config, host_batch_size=2, seed=7), 3)
  other = _batches(pipeline.train_dataset(config, host_batch_size=2, seed=8), 3)
  for a, b in zip(first, again):
    for name in a:
      np.testing.assert_array_equal(a[name], b[name], err_msg=name)
  assert any(not np.array_equal(a['iframes'], c['iframes']) for a, c in zip(first, other))


def test_a_resumed_stream_trains_on_the_batches_of_the_uninterrupted_one(data_dir):
  """Batch s from start_step=s equals batch s of a run from 0, across epochs and shuffle windows."""
  config = _config(data_dir, color_jitter=True, shuffle_buffer=2)
  extras = frozenset({'shifted', 'view2'})
  # 5 videos, batches of 2: epochs end mid-batch, windows of 2 end mid-epoch.
  straight = _batches(pipeline.train_dataset(config, host_batch_size=2, seed=3, extras=extras), 9)
  for start_step in (1, 2, 5):
    resumed = _batches(
        pipeline.train_dataset(config, host_batch_size=2, seed=3, start_step=start_step, extras=extras), 9 - start_step
    )
    for step, (want, got) in enumerate(zip(straight[start_step:], resumed), start_step):
      want, got = (flax.traverse_util.flatten_dict(b, sep='/') for b in (want, got))
      assert want.keys() == got.keys() and 'shifted/residuals' in want
      for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=f'{name} of batch {step}')


def _write_shards(root, lengths):
  files = []
  for shard, length in enumerate(lengths):
    files.append(str(root / f'shard{shard}.tfrecord'))
    with tf.io.TFRecordWriter(files[-1]) as writer:
      for record in range(length):
        writer.write(f'{shard}/{record}'.encode())
  return files


def test_training_records_each_once_per_epoch_in_shard_order_and_reproducible(tmp_path):
  lengths = (7, 5, 9, 3, 6)
  files = _write_shards(tmp_path, lengths)
  key = tf.constant([1, 2], tf.int64)
  read = lambda start, count, key=key: [
      r.decode()
      for r in pipeline.train_records(files, lengths, key=key, window=4, start=start).take(count).as_numpy_iterator()
  ]
  stream = read(0, 3 * sum(lengths))
  every_record = sorted(f'{shard}/{record}' for shard, n in enumerate(lengths) for record in range(n))
  epochs = [stream[e * sum(lengths) : (e + 1) * sum(lengths)] for e in range(3)]
  for epoch in epochs:
    assert sorted(epoch) == every_record
  assert epochs[0] != epochs[1] != epochs[2]  # a new order each epoch
  for start in (1, 4, 6, 30, 31, 57):
    assert read(start, len(stream) - start) == stream[start:], start
  assert read(0, len(stream), key=tf.constant([1, 3], tf.int64)) != stream


def test_epoch_order_reads_shards_in_groups_each_in_file_order():
  lengths = [4, 1, 3, 5, 2, 6, 2]
  order = pipeline._epoch_order(lengths, tf.constant([5, 0], tf.int64), group=2).numpy()  # pylint: disable=protected-access
  assert np.bincount(order, minlength=len(lengths)).tolist() == lengths
  # Shards are read two at a time: once a shard is started, every shard started before the one
  # before it is finished.
  first = {shard: order.tolist().index(shard) for shard in range(len(lengths))}
  last = {shard: len(order) - 1 - order[::-1].tolist().index(shard) for shard in range(len(lengths))}
  by_start = sorted(first, key=first.get)
  for earlier, later in zip(by_start[::2], by_start[2::2]):
    for shard in (earlier, by_start[by_start.index(earlier) + 1]):
      assert last[shard] < first[later], (order, earlier, later)


def test_eval_views_are_uniform_clips_times_three_crops(data_dir):
  config = _config(data_dir)
  batches = list(tfds.as_numpy(pipeline.eval_dataset(config, host_batch_size=4, process_index=0, process_count=1)))
  views = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
  real = views['mask'] == 1
  assert real.sum() == 5 * 2 * 3
  np.testing.assert_array_equal(views['video_index'][real], np.repeat(np.arange(5), 6))
  iframes, mvs, residuals = _physical(views)
  bright_columns = []
  for i in np.nonzero(real)[0]:
    gops, flipped = _check_clip(iframes[i], mvs[i], residuals[i], views['motion_energy'][i], views['label'][i])
    assert not flipped
    bright_columns.append(int((iframes[i][0, ..., 0].mean(axis=0) > 30).sum()))
    if views['video_index'][i] == 4:  # six usable GOPs: starts 0..4, clips at 1 and 3
      assert gops.tolist() == ([1, 2] if (i % 6) < 3 else [3, 4])
    if views['video_index'][i] == 2:  # one GOP: the clip loops
      assert gops.tolist() == [0, 0]
  # Left / centre / right crops of a 24 x 32 frame (lefts 0, 4, 8; marker columns 0..15).
  assert bright_columns[:3] == [11, 8, 5]


# Three hosts for two shard files: the third host reads nothing and yields padding only.
@pytest.mark.parametrize('process_count,batch_size', [(1, 4), (2, 4), (2, 7), (3, 5)])
def test_eval_counts_every_video_once_on_any_number_of_hosts(data_dir, process_count, batch_size):
  config = _config(data_dir, eval_num_clips=1, eval_num_crops=1)
  seen, batch_counts = [], []
  for host in range(process_count):
    batches = list(
        tfds.as_numpy(
            pipeline.eval_dataset(config, host_batch_size=batch_size, process_index=host, process_count=process_count)
        )
    )
    batch_counts.append(len(batches))
    for batch in batches:
      assert batch['mask'].shape == (batch_size,)
      padding = batch['mask'] == 0
      assert np.all(batch['video_index'][padding] == -1) and np.all(batch['label'][padding] == -1)
      seen.extend(batch['video_index'][~padding].tolist())
  assert sorted(seen) == list(range(5))
  assert batch_counts == [pipeline.num_eval_batches([3, 2], 1, batch_size, process_count)] * process_count


def test_train_split_across_hosts_reads_disjoint_files(data_dir):
  config = _config(data_dir)
  ids = []
  for host in range(2):
    batches = _batches(
        pipeline.train_dataset(config, host_batch_size=3, seed=0, process_index=host, process_count=2), 2
    )
    videos = {int(round(r[..., 2].max())) - 1 for b in batches for r in _physical(b)[2]}
    ids.append(videos)
  assert ids[0] == {0, 1, 2} and ids[1] == {3, 4}
  with pytest.raises(ValueError, match='fewer than the 3 hosts'):
    pipeline.train_dataset(config, host_batch_size=3, seed=0, process_index=0, process_count=3)


def test_user_errors_name_the_fix(data_dir, tmp_path):
  with pytest.raises(FileNotFoundError, match='data_prep.convert'):
    pipeline.dataset_info(str(tmp_path))
  with pytest.raises(ValueError, match='train_split'):
    pipeline.split_files(data_dir, 'validation')
  with pytest.raises(ValueError, match='extras'):
    pipeline.train_dataset(_config(data_dir), host_batch_size=1, seed=0, extras={'bogus'})


def test_default_encoding_gives_the_lossless_clips_up_to_coding_error(data_dir, default_data_dir):
  (lossless,) = _batches(pipeline.train_dataset(_config(data_dir), host_batch_size=5, seed=3), 1)
  (default,) = _batches(pipeline.train_dataset(_config(default_data_dir), host_batch_size=5, seed=3), 1)
  np.testing.assert_array_equal(default['label'], lossless['label'])  # same records, same crops
  np.testing.assert_array_equal(default['motion_vectors'], lossless['motion_vectors'])  # exact codes
  np.testing.assert_array_equal(default['motion_energy'], lossless['motion_energy'])
  # JPEG error (intensity levels): I-frames at quality 90, residuals at 80 with 4:2:0 chroma.
  iframes = [normalization.denormalize_iframes(b['iframes']) for b in (default, lossless)]
  residuals = [normalization.denormalize_residuals(b['residuals']) for b in (default, lossless)]
  assert np.abs(iframes[0] - iframes[1]).mean() < 1.0
  assert np.abs(residuals[0] - residuals[1]).mean() < 1.0


@pytest.mark.parametrize('box', [(0, 0, 24, 32), (3, 5, 17, 21), (7, 9, 16, 16), (8, 16, 16, 16)])
def test_region_decoding_equals_whole_frame_decoding_then_crop(box):
  # Textured frames, so that any JPEG block or PNG row misalignment would show.
  rng = np.random.default_rng(0)
  mvs = rng.integers(-20, 21, size=(3, HEIGHT, WIDTH, 2)).astype(np.int16)
  gop = schema.encode_gop(
      iframe=rng.integers(0, 256, size=(HEIGHT, WIDTH, 3)).astype(np.uint8),
      motion_vectors=mvs,
      residuals=rng.integers(-60, 60, size=(3, HEIGHT, WIDTH, 3)).astype(np.int16),
      frame_motion_vectors=mvs,
      encoding='default',
  )
  record = schema.serialize_example(
      video_id='texture', label=0, num_frames=4, height=HEIGHT, width=WIDTH, gop_size=GOP_SIZE, gops=[gop]
  )
  features = schema.parse_example(record)
  indices = sampling.clip_indices(features[schema.GOP_NUM_PFRAMES], tf.constant(0), 1, 3)
  streams = frozenset({'iframes', 'motion_vectors', 'residuals', 'motion_energy'})
  region = pipeline._decode(features, indices, 'default', streams, tf.constant(box))
  whole = pipeline._decode(features, indices, 'default', streams)
  top, left, height, width = box
  for name in streams:
    expected = whole[name].numpy()[:, top : top + height, left : left + width]
    np.testing.assert_array_equal(region[name].numpy(), expected, err_msg=name)


def test_eval_extras_keep_their_own_sizes(data_dir):
  config = _config(data_dir, eval_num_clips=1, eval_num_crops=1, eval_crop_size=8)
  batch = next(
      iter(
          tfds.as_numpy(
              pipeline.eval_dataset(
                  config, host_batch_size=2, extras={'shifted', 'view2'}, process_index=0, process_count=1
              )
          )
      )
  )
  t_p = NUM_GOPS * P_PER_GOP
  assert batch['iframes'].shape == (2, NUM_GOPS, 8, 8, 3)
  assert batch['shifted']['residuals'].shape == (2, t_p, 8, 8, 3)
  assert batch['shifted']['motion_energy'].shape == (2, NUM_GOPS, 8, 8)
  assert batch['view2']['motion_vectors'].shape == (2, t_p, CROP, CROP, 2)


def test_pmsp_ctp_scores_shifted_clips_with_the_pipelines_energy(data_dir):
  """With 'shifted', the batch carries the shifted window's energy: no clip leaves the PMSP loss."""
  from imr_jax import tasks  # pylint: disable=g-import-not-at-top
  from imr_jax.tasks import ctp  # pylint: disable=g-import-not-at-top

  config = _config(data_dir)
  config.task.name = 'pmsp_ctp'
  config.pmsp.update(grid_sizes=(2,), temporal_bins=(1, NUM_GOPS))
  task = tasks.build_task(config)
  (batch,) = _batches(pipeline.train_dataset(config, host_batch_size=8, seed=0, extras=task.batch_requirements), 1)
  _, targets = task.prepare(batch, jax.random.key(0))
  kinds = np.asarray(targets['ctp']['kind'])
  assert np.any(kinds == ctp.SHIFTED)  # some clips show another window's P-frames
  level = f'2x2_{NUM_GOPS}'
  # Every bin of this data has motion (the marker), so every bin of every clip is scored.
  np.testing.assert_array_equal(targets['pmsp'][level]['valid'], 1.0)


def test_pretext_evaluation_sees_every_video_once_with_fixed_extras(data_dir):
  """train.eval_batches for a pretext task: one view per video, padded, the same batches each time."""
  from imr_jax import tasks, train  # pylint: disable=g-import-not-at-top

  config = _config(data_dir)  # eval_num_clips=2, eval_num_crops=3: for classification only
  config.task.name = 'ctp'
  task = tasks.build_task(config)
  first = list(train.eval_batches(config, task, host_batch_size=4))
  again = list(train.eval_batches(config, task, host_batch_size=4))
  assert len(first) == 2  # 5 videos, one view each, in batches of 4
  video_index = np.concatenate([batch['video_index'] for batch in first])
  mask = np.concatenate([batch['mask'] for batch in first])
  assert sorted(video_index[mask > 0]) == [0, 1, 2, 3, 4]
  np.testing.assert_array_equal(video_index[mask == 0], -1)
  assert first[0]['shifted']['motion_vectors'].shape == (4, NUM_GOPS * P_PER_GOP, CROP, CROP, 2)
  for batch, repeat in zip(first, again):
    batch, repeat = (flax.traverse_util.flatten_dict(b, sep='/') for b in (batch, repeat))
    for name in batch:
      np.testing.assert_array_equal(batch[name], repeat[name], err_msg=name)
  config.num_eval_steps = 1
  assert len(list(train.eval_batches(config, task, host_batch_size=4))) == 1
