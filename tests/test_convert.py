"""Conversion: output format, failures, determinism and resumption, on tiny synthetic sets and a real clip."""

import hashlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import av
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from data_prep import convert
from data_prep import datasets
from data_prep import synthetic
from data_prep import verify
from imr_jax import codec
from imr_jax import features
from imr_jax import preflight
from imr_jax.data import pipeline
from imr_jax.data import schema

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = synthetic.SyntheticConfig(
    width=64, height=48, num_frames=30, train_per_class=2, test_per_class=1, classes=('rise', 'circle')
)
SETTINGS = convert.Settings(width=64, height=48, gop_size=12)
QUIET = lambda *args: None


def _shards(out: pathlib.Path) -> dict[str, str]:
  """Shard file name -> sha256 of its bytes."""
  return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob('*.tfrecord-*'))}


def _records(out: pathlib.Path) -> list[bytes]:
  return [r.numpy() for p in sorted(out.glob('*.tfrecord-*')) for r in tf.data.TFRecordDataset(str(p))]


@pytest.fixture(scope='module')
def source(tmp_path_factory):
  return synthetic.generate(TINY, tmp_path_factory.mktemp('tiny') / 'source')


@pytest.fixture(scope='module')
def reference(source, tmp_path_factory):
  """An uninterrupted single-process conversion, 2 videos per shard."""
  out = tmp_path_factory.mktemp('reference')
  manifest = convert.convert(
      datasets.folder(source, name='synthetic'), out, settings=SETTINGS, videos_per_shard=2, log=QUIET
  )
  return out, manifest


def test_output_loads_and_verifies(reference):
  out, manifest = reference
  assert manifest['label_names'] == ['circle', 'rise']
  assert manifest['splits'] == {'test': 2, 'train': 4}
  assert manifest['num_shards'] == {'test': 1, 'train': 2}
  assert (manifest['encoding'], manifest['width'], manifest['height'], manifest['gop_size']) == ('default', 64, 48, 12)
  assert manifest['failures'] == []
  assert json.loads((out / 'manifest.json').read_text()) == manifest
  assert sorted(_shards(out)) == [
      'synthetic-test.tfrecord-00000-of-00001',
      'synthetic-train.tfrecord-00000-of-00002',
      'synthetic-train.tfrecord-00001-of-00002',
  ]
  builder = tfds.builder_from_directory(str(out))
  assert {name: split.num_examples for name, split in builder.info.splits.items()} == {'test': 2, 'train': 4}
  examples = list(builder.as_dataset(split='train'))
  assert sorted(e['video']['id'].numpy().decode() for e in examples) == [
      'train/circle/circle_000.avi',
      'train/circle/circle_001.avi',
      'train/rise/rise_000.avi',
      'train/rise/rise_001.avi',
  ]
  for example in examples:
    assert example['video']['num_frames'] == 30
    assert example['gop']['num_pframes'].numpy().tolist() == [11, 11, 5]
    label = 'circle' if '/circle/' in example['video']['id'].numpy().decode() else 'rise'
    assert manifest['label_names'][example['video']['label']] == label
  assert verify.verify(out, log=QUIET) == []
  assert not (out / '.prep' / 'scratch').exists() or not any((out / '.prep' / 'scratch').iterdir())


def test_records_hold_exactly_the_codec_output(real_clips, tmp_path):
  """Lossless records of a real H.264 clip decode to the codec's own arrays, bit for bit."""
  clip = next(p for p in real_clips if p.name == 'carphone_distorted.mp4')
  (tmp_path / 'source/test/phone').mkdir(parents=True)
  shutil.copy(clip, tmp_path / 'source/test/phone/carphone.mp4')
  settings = convert.Settings(width=64, height=48, gop_size=12, encoding='lossless', map_downscale=1)
  convert.convert(datasets.folder(tmp_path / 'source'), tmp_path / 'out', settings=settings, log=QUIET)
  (serialized,) = _records(tmp_path / 'out')
  features = schema.parse_example(serialized)
  size = dict(height=48, width=64)
  motion_vectors = schema.decode_motion_vectors(features[schema.PFRAME_MOTION_VECTORS], encoding='lossless', **size)
  residuals = schema.decode_residuals(features[schema.PFRAME_RESIDUALS], encoding='lossless', **size)
  iframes = schema.decode_iframes(features[schema.GOP_IFRAME], **size)
  energy = schema.decode_motion_energy(features[schema.GOP_MOTION_ENERGY], **size)

  codec.reencode(clip, tmp_path / 'clip.m4v', width=64, height=48, gop_size=12)
  gops = list(codec.iter_gops(tmp_path / 'clip.m4v'))
  assert features[schema.VIDEO_NUM_FRAMES] == 120 and len(gops) == 10
  np.testing.assert_array_equal(iframes, np.stack([g.iframe for g in gops]))
  np.testing.assert_array_equal(motion_vectors, np.concatenate([g.motion_vectors for g in gops]))
  np.testing.assert_array_equal(residuals, np.concatenate([g.residuals for g in gops]))
  np.testing.assert_array_equal(energy, np.stack([schema.motion_energy_map(g.frame_motion_vectors) for g in gops]))
  assert np.abs(motion_vectors.numpy()).max() > 0  # A real clip: there is motion to get right.
  assert verify.verify(tmp_path / 'out', log=QUIET) == []


def test_map_downscale_stores_the_codec_output_in_blocks(real_clips, tmp_path):
  """--map_downscale=2: every stored map is the codec's full-size map in 2x2 blocks (schema.downscale_maps)."""
  clip = next(p for p in real_clips if p.name == 'carphone_distorted.mp4')
  (tmp_path / 'source/test/phone').mkdir(parents=True)
  shutil.copy(clip, tmp_path / 'source/test/phone/carphone.mp4')
  settings = convert.Settings(width=64, height=48, gop_size=12, encoding='lossless', map_downscale=2)
  manifest = convert.convert(datasets.folder(tmp_path / 'source'), tmp_path / 'out', settings=settings, log=QUIET)
  assert (manifest['width'], manifest['height'], manifest['map_downscale']) == (64, 48, 2)
  (serialized,) = _records(tmp_path / 'out')
  features = schema.parse_example(serialized)
  assert (features[schema.VIDEO_WIDTH], features[schema.VIDEO_HEIGHT]) == (32, 24)
  size = dict(height=24, width=32)
  codec.reencode(clip, tmp_path / 'clip.m4v', width=64, height=48, gop_size=12)
  small = [
      schema.downscale_maps(
          iframe=gop.iframe,
          motion_vectors=gop.motion_vectors,
          residuals=gop.residuals,
          energy=schema.motion_energy_map(gop.frame_motion_vectors),
          factor=2,
      )
      for gop in codec.iter_gops(tmp_path / 'clip.m4v')
  ]
  iframes, energy = np.stack([s[0] for s in small]), np.stack([s[3] for s in small])
  motion_vectors, residuals = np.concatenate([s[1] for s in small]), np.concatenate([s[2] for s in small])
  stored = schema.decode_motion_vectors(features[schema.PFRAME_MOTION_VECTORS], encoding='lossless', **size)
  np.testing.assert_array_equal(stored, motion_vectors)
  stored = schema.decode_residuals(features[schema.PFRAME_RESIDUALS], encoding='lossless', **size)
  np.testing.assert_array_equal(stored, residuals)
  np.testing.assert_array_equal(schema.decode_iframes(features[schema.GOP_IFRAME], **size), iframes)
  np.testing.assert_array_equal(schema.decode_motion_energy(features[schema.GOP_MOTION_ENERGY], **size), energy)
  assert np.abs(motion_vectors).max() > 0  # A real clip: there is motion to get right.
  assert verify.verify(tmp_path / 'out', log=QUIET) == []


def test_workers_do_not_change_the_bytes(source, reference, tmp_path):
  convert.convert(
      datasets.folder(source, name='synthetic'), tmp_path, settings=SETTINGS, videos_per_shard=2, workers=2, log=QUIET
  )
  assert _shards(tmp_path) == _shards(reference[0])
  fingerprint = verify.fingerprint(tmp_path)
  assert fingerprint == verify.fingerprint(reference[0]) and len(fingerprint) == 12
  assert fingerprint != verify.fingerprint(tmp_path / 'empty')  # an empty folder: the empty digest


def test_resume_redoes_only_unfinished_shards(reference, source, tmp_path):
  out = tmp_path / 'out'
  shutil.copytree(reference[0], out)
  # An interrupted run: one shard never renamed into place, one renamed but without its record, debris.
  (out / 'synthetic-train.tfrecord-00001-of-00002').rename(out / '.synthetic-train.tfrecord-00001-of-00002.tmp')
  (out / '.prep' / 'test-00000.json').unlink()
  (out / '.prep' / 'scratch' / 'video-junk').mkdir(parents=True)
  (out / 'manifest.json').unlink()
  lines = []
  manifest = convert.convert(
      datasets.folder(source, name='synthetic'), out, settings=SETTINGS, videos_per_shard=2, log=lines.append
  )
  assert '1 shards already finished, 4 videos to go' in lines[0]
  assert manifest == reference[1]
  assert _shards(out) == _shards(reference[0])
  assert not list(out.glob('.*.tmp')) and not (out / '.prep' / 'scratch').exists()


def test_resume_after_kill_9(source, tmp_path):
  """A real SIGKILL of the command-line job at a random point; the rerun gives the uninterrupted output."""
  expected = tmp_path / 'expected'
  convert.convert(datasets.folder(source), expected, settings=SETTINGS, videos_per_shard=1, log=QUIET)
  out = tmp_path / 'out'
  command = [
      sys.executable,
      '-m',
      'data_prep.convert',
      '--dataset=folder',
      f'--source={source}',
      f'--output_dir={out}',
      '--width=64',
      '--height=48',
      '--videos_per_shard=1',
      '--workers=2',
  ]
  job = subprocess.Popen(
      command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
  )
  deadline = time.monotonic() + 60
  while not (out / '.prep' / 'train-00000.json').exists() and job.poll() is None and time.monotonic() < deadline:
    time.sleep(0.005)
  os.killpg(job.pid, signal.SIGKILL)  # The job and its workers, as an out-of-memory killer would.
  job.wait()
  assert job.returncode == -signal.SIGKILL
  assert not (out / 'manifest.json').exists(), 'the job finished before it was killed'
  convert.convert(datasets.folder(source), out, settings=SETTINGS, videos_per_shard=1, log=QUIET)
  assert _shards(out) == _shards(expected)
  assert json.loads((out / 'manifest.json').read_text()) == json.loads((expected / 'manifest.json').read_text())


def _write_audio_only(path):
  with av.open(str(path), 'w') as container:
    stream = container.add_stream('pcm_s16le', rate=8000)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format='s16', layout='mono')
    frame.sample_rate = 8000
    for packet in [*stream.encode(frame), *stream.encode()]:
      container.mux(packet)


@pytest.fixture
def bad_source(source, tmp_path):
  """Two good videos among a corrupt, a truncated, an empty, a 1-frame, an audio-only and a text file."""
  root = tmp_path / 'bad_source'
  shutil.copytree(source / 'test', root / 'train')
  good = root / 'train' / 'rise' / 'rise_000.avi'
  (root / 'train/rise/corrupt.avi').write_bytes(np.random.default_rng(0).bytes(5000))
  (root / 'train/rise/truncated.avi').write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
  (root / 'train/rise/empty.avi').write_bytes(b'')
  synthetic.write_video(np.zeros((1, 48, 64, 3), np.uint8), root / 'train/rise/one_frame.avi')  # No P-frames.
  _write_audio_only(root / 'train/circle/audio_only.wav')
  (root / 'train/circle/readme.txt').write_text('not a video')
  return root


def test_bad_videos_are_reported_not_fatal(bad_source, tmp_path):
  lines = []
  manifest = convert.convert(datasets.folder(bad_source), tmp_path, settings=SETTINGS, log=lines.append)
  reasons = {pathlib.Path(f['path']).name: f['reason'] for f in manifest['failures']}
  assert sorted(reasons) == [
      'audio_only.wav',
      'corrupt.avi',
      'empty.avi',
      'one_frame.avi',
      'readme.txt',
      'truncated.avi',
  ]
  assert 'no P-frames' in reasons['one_frame.avi']
  assert 'no video stream' in reasons['audio_only.wav']
  assert 'truncated' in reasons['truncated.avi']
  assert all(f['split'] == 'train' and f['video_id'].startswith('train/') for f in manifest['failures'])
  assert manifest['splits'] == {'train': 2}
  assert any('6 videos FAILED' in line for line in lines)
  assert verify.verify(tmp_path, log=QUIET) == []
  # Failures are part of the finished shards' records, so a rerun (nothing left to do) still has them.
  rerun = convert.convert(datasets.folder(bad_source), tmp_path, settings=SETTINGS, log=QUIET)
  assert rerun['failures'] == manifest['failures']


def test_strict_stops_at_the_first_failure(bad_source, tmp_path):
  with pytest.raises(convert.VideoFailedError, match='audio_only.wav: .*no video stream'):
    convert.convert(
        datasets.folder(bad_source), tmp_path, settings=SETTINGS, videos_per_shard=1, strict=True, log=QUIET
    )
  assert not (tmp_path / 'manifest.json').exists()


def test_command_line_exit_status(bad_source, tmp_path):
  def run(*flags):
    return subprocess.run(
        [sys.executable, '-m', 'data_prep.convert', *flags], cwd=REPO, capture_output=True, text=True, timeout=120
    )

  result = run(
      '--dataset=folder',
      f'--source={bad_source}',
      f'--output_dir={tmp_path / "out"}',
      '--width=64',
      '--height=48',
      '--workers=2',
  )
  assert result.returncode == convert.EXIT_VIDEO_FAILURES, result.stderr
  assert '6 videos FAILED' in result.stdout
  result = run('--dataset=ucf101', f'--source={tmp_path / "missing"}', f'--output_dir={tmp_path / "out2"}')
  assert result.returncode == convert.EXIT_SETUP_ERROR
  assert 'is not a folder' in result.stderr and not (tmp_path / 'out2').exists()


def test_setup_errors_come_before_any_work(source, tmp_path):
  listing = datasets.folder(source, name='synthetic')
  (tmp_path / 'a_file').write_text('')
  with pytest.raises(convert.SetupError, match='Cannot write to --output_dir'):
    convert.convert(listing, tmp_path / 'a_file' / 'out', settings=SETTINGS, log=QUIET)
  with pytest.raises(convert.SetupError, match='--width=63'):
    convert.convert(listing, tmp_path / 'out', settings=convert.Settings(width=63, height=48), log=QUIET)
  with pytest.raises(convert.SetupError, match='--encoding'):
    convert.convert(listing, tmp_path / 'out', settings=convert.Settings(encoding='png'), log=QUIET)
  with pytest.raises(convert.SetupError, match='--map_downscale=3: must be a positive int that divides'):
    convert.convert(listing, tmp_path / 'out', settings=convert.Settings(map_downscale=3), log=QUIET)
  assert not (tmp_path / 'out').exists()
  # Two jobs never write one folder at once.
  state = convert.JobState(tmp_path / 'busy')
  try:
    with pytest.raises(convert.SetupError, match='Another conversion is writing'):
      convert.convert(listing, tmp_path / 'busy', settings=SETTINGS, log=QUIET)
  finally:
    state.close()
  # A folder holding another conversion is never mixed into.
  convert.convert(listing, tmp_path / 'out', settings=SETTINGS, videos_per_shard=6, log=QUIET)
  with pytest.raises(convert.SetupError, match='differing: settings'):
    convert.convert(
        listing,
        tmp_path / 'out',
        settings=convert.Settings(width=64, height=48, gop_size=6),
        videos_per_shard=6,
        log=QUIET,
    )


def test_verify_reports_damage(reference, tmp_path):
  out = tmp_path / 'out'
  shutil.copytree(reference[0], out)
  shard = out / 'synthetic-train.tfrecord-00000-of-00002'
  shard.write_bytes(shard.read_bytes()[:-100])
  manifest = json.loads((out / 'manifest.json').read_text())
  manifest['height'] = 50
  (out / 'manifest.json').write_text(json.dumps(manifest))
  problems = verify.verify(out, log=QUIET)
  assert any('unreadable after 1 records' in p for p in problems)
  assert any('video/height is 24, the manifest says 25 (50 / map_downscale 2)' in p for p in problems)
  assert any('train: 3 records, the manifest says 4' in p for p in problems)
  with pytest.raises(verify.NotADatasetError):
    verify.verify(tmp_path / 'nothing')


def test_a_split_with_no_videos_still_loads(source, tmp_path):
  """Kinetics with every clip of a split missing: an empty shard, a count of 0, the failures listed."""
  full = datasets.folder(source, name='kinetics400')
  missing = ({'path': 'abc_000001_000011', 'reason': 'missing: no file abc_000001_000011.*'},)
  listing = datasets.Listing(
      'kinetics400',
      full.label_names,
      {'train': full.splits['test'], 'validation': ()},
      {'train': (), 'validation': missing},
  )
  manifest = convert.convert(listing, tmp_path, settings=SETTINGS, log=QUIET)
  assert manifest['splits'] == {'train': 2, 'validation': 0}
  assert manifest['failures'] == [dict(missing[0], split='validation')]
  assert verify.verify(tmp_path, log=QUIET) == []
  # TFDS lists the split (its as_dataset refuses to read an empty one).
  assert tfds.builder_from_directory(str(tmp_path)).info.splits['validation'].num_examples == 0


def test_damaged_shards_stop_training_before_it_starts_or_at_the_first_bad_read(reference, tmp_path):
  """Truncated: the start-up check compares sizes with the manifest. Corrupt in place: the reader names the fix."""
  from configs import default  # pylint: disable=g-import-not-at-top
  from imr_jax import cli, preflight  # pylint: disable=g-import-not-at-top
  from imr_jax.data import pipeline  # pylint: disable=g-import-not-at-top

  out, manifest = reference
  shard = 'synthetic-train.tfrecord-00000-of-00002'
  assert manifest['shard_bytes'][shard] == (out / shard).stat().st_size
  preflight.check_data(str(out), ('train', 'test'))  # sound: passes

  truncated = tmp_path / 'truncated'
  shutil.copytree(out, truncated)
  data = (truncated / shard).read_bytes()
  (truncated / shard).write_bytes(data[: len(data) // 2])
  with pytest.raises(
      cli.UserError,
      match=rf'shard {shard} is {len(data) // 2} bytes but was written with '
      rf'{len(data)}.*python -m data_prep.verify {truncated}',
  ):
    preflight.check_data(str(truncated), ('train',))

  corrupt = tmp_path / 'corrupt'
  shutil.copytree(out, corrupt)
  flipped = bytearray(data)
  flipped[len(data) // 2] ^= 0xFF  # same size, a record's CRC no longer matches
  (corrupt / shard).write_bytes(bytes(flipped))
  preflight.check_data(str(corrupt), ('train',))  # sizes agree: only reading finds it
  config = default.base_config()
  config.dataset.data_dir = str(corrupt)
  config.data.update(num_gops=1, p_per_gop=2, crop_size=32, shuffle_buffer=2)
  with pytest.raises(pipeline.DamagedDataError, match=rf"Split 'train' of {corrupt} is damaged.*data_prep.verify"):
    for _ in zip(pipeline.train_iterator(config, host_batch_size=2, seed=0), range(20)):
      pass


def test_the_three_official_splits_in_one_directory_store_each_video_once(source, tmp_path):
  from tests import test_datasets  # pylint: disable=g-import-not-at-top

  ucf, videos = test_datasets._ucf101_three_splits(tmp_path)  # pylint: disable=protected-access
  clips = sorted(source.rglob('[!.]*.avi'))
  for i, path in enumerate(sorted(ucf.rglob('*.avi'))):  # real videos under UCF101's names
    shutil.copyfile(clips[i % len(clips)], path)
  out = tmp_path / 'ucf101'
  manifest = convert.convert(datasets.load('ucf101', ucf, split='all'), out, settings=SETTINGS, log=QUIET)
  assert len(_records(out)) == 8 and sum(manifest['splits'].values()) == 8
  assert verify.verify(str(out), log=QUIET) == []
  builder = tfds.builder_from_directory(str(out))
  for number in (1, 2, 3):
    preflight.check_data(str(out), (f'train{number}', f'test{number}'))
    assert pipeline.dataset_info(str(out))['splits'][f'train{number}'] == 6
    assert features.video_ids(str(out), f'test{number}') == videos[number]
    # TFDS reads an official split as the sum of its parts.
    test_parts = '+'.join(manifest['split_unions'][f'test{number}'])
    assert len(list(builder.as_dataset(split=test_parts))) == 2
