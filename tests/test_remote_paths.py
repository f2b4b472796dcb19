"""The training path on a file system that is not the local disk: what gs:// users get.

Data and run directories live on TensorFlow's in-memory file system (`ram://`), reached the way a
`gs://` path is: through `etils.epath` backed by `tf.io.gfile` (epath knows gs://, s3://, az://, hf://;
the test registers ram:// beside them, with the same backend) and through tf.data / TFDS / TensorBoard.

Not covered here: orbax stores arrays with TensorStore, which reads gs:// natively but has no counterpart
of ram://, so the runs' checkpoints/ folders are mapped to local disk (`checkpoints.make_manager`
patched); and `data_prep.convert --source`, whose videos FFmpeg reads from a local folder (the output
may be a URI: the conversion below writes to ram:// and is resumed there).
"""

import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from etils import epath
from etils.epath import backend as epath_backend
from etils.epath import gpath, register

from configs import finetune, supervised
from data_prep import convert, datasets, synthetic, verify
from imr_jax import checkpoints, evaluate, features, frozen_eval, learning_curves, train
from tests import test_train

REPO = pathlib.Path(__file__).resolve().parents[1]
QUIET = lambda *args: None


@pytest.fixture
def ram_paths(monkeypatch, tmp_path):
  """epath understands ram:// as it does gs:// (tf.io.gfile backend); checkpoints go to tmp_path."""
  monkeypatch.setattr(gpath, '_URI_SCHEMES', gpath._URI_SCHEMES | {'ram'})
  monkeypatch.setattr(gpath, '_URI_PREFIXES', gpath._URI_PREFIXES + ('ram://',))
  monkeypatch.setitem(gpath._URI_MAP_ROOT, 'ram://', '/ram/')
  monkeypatch.setitem(gpath._PREFIX_TO_BACKEND, 'ram', epath_backend.tf_backend)
  monkeypatch.setitem(register._URI_PREFIXES_TO_CLS, 'ram://', gpath.PosixGPath)

  # TensorFlow's ram:// appends when it opens an existing file for writing (GCS and disks replace it).
  class GFile(tf.io.gfile.GFile):

    def __init__(self, name, mode='r'):
      if 'w' in mode and tf.io.gfile.exists(name):
        tf.io.gfile.remove(name)
      super().__init__(name, mode)

  monkeypatch.setattr(tf.io.gfile, 'GFile', GFile)
  make_manager = checkpoints.make_manager

  def local_checkpoints(workdir, **kwargs):
    assert str(workdir).startswith('ram://')
    return make_manager(str(tmp_path / 'checkpoints_of' / str(workdir).removeprefix('ram://')), **kwargs)

  monkeypatch.setattr(checkpoints, 'make_manager', local_checkpoints)


def _tiny(config, data_dir, **overrides):
  config.dataset.data_dir = data_dir
  config.update(num_train_steps=2, eval_every_steps=2, checkpoint_every_steps=2, log_every_steps=1, **overrides)
  return config


def test_train_finetune_evaluate_and_curves_with_data_and_runs_on_a_uri(ram_paths, tmp_path, monkeypatch):
  # The real input pipeline, loop, checkpoints, writers and readers; test_train's stand-in network
  # (compiled in a second rather than a minute: the paths are what is tested).
  monkeypatch.setattr(train, 'build_model_and_task', test_train.stand_in_model_and_task)
  videos = synthetic.generate(
      synthetic.SyntheticConfig(
          width=32, height=32, num_frames=24, train_per_class=2, test_per_class=1, classes=('rise', 'fall')
      ),
      tmp_path / 'videos',
  )
  listing, settings = datasets.folder(videos, name='synthetic'), convert.Settings(width=32, height=32)
  local, data = tmp_path / 'data', 'ram://bucket/data'
  convert.convert(listing, local, settings=settings, videos_per_shard=2, log=QUIET)
  convert.convert(listing, data, settings=settings, videos_per_shard=2, log=QUIET)
  assert verify.verify(data, log=QUIET) == []
  assert verify.fingerprint(data) == verify.fingerprint(local)  # the same bytes as a local conversion
  lines = []
  convert.convert(listing, data, settings=settings, videos_per_shard=2, log=lines.append)  # resumes
  assert '3 shards already finished, 0 videos to go' in lines[0], lines

  first = train.train_and_evaluate(_tiny(supervised.get_config('synthetic:tiny'), data), 'ram://bucket/runs/a')
  assert first['step'] == 2
  runs = epath.Path('ram://bucket/runs')
  for name in ('config.json', 'final_metrics.json', 'log.txt'):
    assert (runs / 'a' / name).exists(), name
  assert json.loads((runs / 'a' / 'final_metrics.json').read_text()) == first
  assert 'Training steps 0..2' in (runs / 'a' / 'log.txt').read_text()
  assert not pathlib.Path('ram:').exists() and not (REPO / 'ram:').exists()  # no local stand-in folder

  config = _tiny(finetune.get_config('synthetic:tiny'), data, init_from='ram://bucket/runs/a')
  assert train.train_and_evaluate(config, 'ram://bucket/runs/b')['step'] == 2
  results = evaluate.evaluate_checkpoint(config, 'ram://bucket/runs/b')
  assert 0 <= results['video_accuracy'] <= 1
  assert (runs / 'b' / f'eval_{config.dataset.eval_split}_step2.json').exists()

  curves = learning_curves.read_scalars('ram://bucket/runs/b')
  assert curves['train/loss'].steps.tolist() == [1, 2]
  assert learning_curves.task_of('ram://bucket/runs/b') == 'classification'
  learning_curves.plot_curves({'b': curves}, 'ram://bucket/curves.png')
  assert epath.Path('ram://bucket/curves.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'

  vectors = {'features': np.eye(3, dtype=np.float32), 'labels': np.arange(3), 'label_names': np.array(['a', 'b', 'c'])}
  features.save('ram://bucket/features/test.npz', vectors)
  saved = frozen_eval.load('ram://bucket/features/test.npz')
  for name, value in vectors.items():
    np.testing.assert_array_equal(saved[name], value)
