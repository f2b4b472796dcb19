"""The training path on a file system that is not the local disk: what gs:// users get.

Data and run directories live on TensorFlow's in-memory file system (`ram://`), reached the way a
`gs://` path is: through `etils.epath` backed by `tf.io.gfile` (epath knows gs://, s3://, az://, hf://;
the test registers ram:// beside them, with the same backend) and through tf.data / TFDS / TensorBoard.

Not covered here: orbax stores arrays with TensorStore, which reads gs:// natively but has no counterpart
of ram://, so the runs' checkpoints/ folders are mapped to local disk (`checkpoints.make_manager`
patched); and `data_prep.convert`, which writes locally (it refuses a URI; copy its output to the
bucket, as this test copies it to ram://).
"""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from etils import epath
from etils.epath import backend as epath_backend
from etils.epath import gpath, register

from configs import finetune, supervised
from data_prep import verify
from imr_jax import checkpoints, evaluate, features, frozen_eval, learning_curves, train
from tests import test_train

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def ram_paths(monkeypatch, tmp_path):
  """epath understands ram:// as it does gs:// (tf.io.gfile backend); checkpoints go to tmp_path."""
  monkeypatch.setattr(gpath, '_URI_SCHEMES', gpath._URI_SCHEMES | {'ram'})
  monkeypatch.setattr(gpath, '_URI_PREFIXES', gpath._URI_PREFIXES + ('ram://',))
  monkeypatch.setitem(gpath._URI_MAP_ROOT, 'ram://', '/ram/')
  monkeypatch.setitem(gpath._PREFIX_TO_BACKEND, 'ram', epath_backend.tf_backend)
  monkeypatch.setitem(register._URI_PREFIXES_TO_CLS, 'ram://', gpath.PosixGPath)
  make_manager = checkpoints.make_manager

  def local_checkpoints(workdir, **kwargs):
    assert str(workdir).startswith('ram://')
    return make_manager(str(tmp_path / 'checkpoints_of' / str(workdir).removeprefix('ram://')), **kwargs)
  monkeypatch.setattr(checkpoints, 'make_manager', local_checkpoints)


def _copy_tree(source: pathlib.Path, destination: str) -> None:
  for path in source.rglob('*'):
    target = f'{destination}/{path.relative_to(source).as_posix()}'
    if path.is_dir():
      tf.io.gfile.makedirs(target)
    else:
      tf.io.gfile.makedirs(target.rsplit('/', 1)[0])
      tf.io.gfile.copy(str(path), target, overwrite=True)


def _tiny(config, data_dir, **overrides):
  config.dataset.data_dir = data_dir
  config.update(num_train_steps=2, eval_every_steps=2, checkpoint_every_steps=2, log_every_steps=1,
                **overrides)
  return config


def test_train_finetune_evaluate_and_curves_with_data_and_runs_on_a_uri(ram_paths, tmp_path, monkeypatch):
  # The real input pipeline, loop, checkpoints, writers and readers; test_train's stand-in network
  # (compiled in a second rather than a minute: the paths are what is tested).
  monkeypatch.setattr(train, 'build_model_and_task', test_train.stand_in_model_and_task)
  local = tmp_path / 'data'
  subprocess.run([sys.executable, '-m', 'data_prep.convert', '--dataset=synthetic',
                  f'--source={tmp_path / "videos"}', f'--output_dir={local}', '--synthetic_width=32',
                  '--synthetic_height=32', '--synthetic_num_frames=24', '--synthetic_train_per_class=2',
                  '--synthetic_test_per_class=1', '--synthetic_classes=rise,fall', '--workers=1'],
                 cwd=REPO, check=True, capture_output=True)
  data = 'ram://bucket/data'
  _copy_tree(local, data)
  assert verify.verify(data, log=lambda *_: None) == []
  assert verify.fingerprint(data) == verify.fingerprint(local)

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

  vectors = {'features': np.eye(3, dtype=np.float32), 'labels': np.arange(3),
             'label_names': np.array(['a', 'b', 'c'])}
  features.save('ram://bucket/features/test.npz', vectors)
  saved = frozen_eval.load('ram://bucket/features/test.npz')
  for name, value in vectors.items():
    np.testing.assert_array_equal(saved[name], value)
