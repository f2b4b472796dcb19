"""The Beam pipeline (local runner) writes the same records and shards as the multiprocessing path."""

import hashlib
import json

import tensorflow as tf

from data_prep import beam_pipeline
from data_prep import convert
from data_prep import datasets
from data_prep import synthetic

TINY = synthetic.SyntheticConfig(
    width=64, height=48, num_frames=26, train_per_class=2, test_per_class=1, classes=('fall', 'zoom')
)
SETTINGS = convert.Settings(width=64, height=48, gop_size=12)
QUIET = lambda *args: None


def _shard_bytes(out):
  return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob('*.tfrecord-*'))}


def _records(out):
  return sorted(r.numpy() for p in out.glob('*.tfrecord-*') for r in tf.data.TFRecordDataset(str(p)))


def test_beam_matches_multiprocessing(tmp_path):
  source = synthetic.generate(TINY, tmp_path / 'source')
  (source / 'train' / 'zoom' / 'broken.avi').write_bytes(b'not a video')  # Failures travel the same way.
  listing = datasets.folder(source, name='synthetic')
  local = convert.convert(listing, tmp_path / 'local', settings=SETTINGS, videos_per_shard=2, log=QUIET)
  beam = beam_pipeline.run(listing, str(tmp_path / 'beam'), settings=SETTINGS, videos_per_shard=2, log=QUIET)

  assert len(_records(tmp_path / 'local')) == 6
  assert _records(tmp_path / 'beam') == _records(tmp_path / 'local')
  assert _shard_bytes(tmp_path / 'beam') == _shard_bytes(tmp_path / 'local')
  assert beam == local
  assert [f['video_id'] for f in beam['failures']] == ['train/zoom/broken.avi']
  assert json.loads((tmp_path / 'beam' / 'manifest.json').read_text()) == beam

  # Resuming with Beam after a lost shard redoes just that shard.
  (tmp_path / 'beam' / 'synthetic-train.tfrecord-00001-of-00003').unlink()
  lines = []
  beam_pipeline.run(listing, str(tmp_path / 'beam'), settings=SETTINGS, videos_per_shard=2, log=lines.append)
  assert lines[0].startswith('synthetic: 1 of 4 shards')
  assert _shard_bytes(tmp_path / 'beam') == _shard_bytes(tmp_path / 'local')
