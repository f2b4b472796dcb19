"""Runs the real entry points (main.py, imr_jax.evaluate) on a tiny synthetic data set, as a user would."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


# These 2-step runs spend their time compiling, not computing: XLA's cheap CPU pipeline compiles the
# same programs 2-4x faster (the default optimisation level is for real runs).
QUICK_COMPILE = ' --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true'


def _env() -> dict[str, str]:
  return {
      **os.environ,
      'JAX_PLATFORMS': 'cpu',
      'CUDA_VISIBLE_DEVICES': '',
      'XLA_FLAGS': os.environ.get('XLA_FLAGS', '') + QUICK_COMPILE,
  }


def _run(args: list[str], timeout: int = 300) -> str:
  result = subprocess.run(
      [sys.executable, *args], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout
  )
  output = result.stdout + result.stderr
  assert result.returncode == 0, output[-4000:]
  return output


@pytest.fixture(scope='module')
def synthetic_data(tmp_path_factory) -> pathlib.Path:
  """6 tiny videos (2 classes, 32x32, 24 frames = 2 GOPs) converted by the real data_prep job."""
  root = tmp_path_factory.mktemp('synthetic')
  _run(
      [
          '-m',
          'data_prep.convert',
          '--dataset=synthetic',
          f'--source={root / "videos"}',
          f'--output_dir={root / "data"}',
          '--synthetic_width=32',
          '--synthetic_height=32',
          '--synthetic_num_frames=24',
          '--synthetic_train_per_class=2',
          '--synthetic_test_per_class=1',
          '--synthetic_classes=rise,fall',
          '--workers=1',
      ]
  )
  return root / 'data'


def _scalar_tags(workdir: pathlib.Path) -> set[str]:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  tags = set()
  for path in workdir.glob('events.out.tfevents.*'):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      tags.update(value.tag for value in event.summary.value)
  return tags


@pytest.fixture(scope='module')
def pretrained(synthetic_data, tmp_path_factory) -> pathlib.Path:
  """A 2-step PMSP run of main.py (the tiny config)."""
  workdir = tmp_path_factory.mktemp('runs') / 'pmsp'
  output = _run(
      [
          'main.py',
          '--config=configs/pmsp.py:tiny',
          f'--workdir={workdir}',
          f'--config.dataset.data_dir={synthetic_data}',
      ]
  )
  assert 'compiling, this can take a minute' in output
  return workdir


def test_two_step_pretraining_run_writes_metrics_and_checkpoint(pretrained):
  final = json.loads((pretrained / 'final_metrics.json').read_text())
  assert final['step'] == 2
  pmsp_accuracies = [name for name in final if name.startswith('accuracy')]
  assert pmsp_accuracies and all(0.0 <= final[name] <= 1.0 for name in pmsp_accuracies)
  assert (pretrained / 'checkpoints' / '2').is_dir()
  tags = _scalar_tags(pretrained)
  assert {'train/loss', 'train/learning_rate', 'eval/loss', 'steps_per_sec'} <= tags


def _checkpoint_leaves(workdir: pathlib.Path, step: int) -> dict:
  """Every array of a checkpoint (parameters, BatchNorm statistics, optimizer state, step) by path."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from imr_jax import checkpoints, parallel  # pylint: disable=g-import-not-at-top

  restored, _ = checkpoints.restore_raw(str(workdir), parallel.replicated(parallel.make_mesh()), step)
  return {
      jax.tree_util.keystr(path): np.asarray(value) for path, value in jax.tree_util.tree_leaves_with_path(restored)
  }


def test_preempted_then_killed_run_ends_with_the_parameters_of_an_uninterrupted_one(synthetic_data, tmp_path):
  """SIGTERM (saves its step, exits 143), rerun, kill -9 between checkpoints, rerun: bit-identical."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  steps = 14
  args = [
      'main.py',
      '--config=configs/pmsp.py:tiny',
      f'--config.dataset.data_dir={synthetic_data}',
      f'--config.num_train_steps={steps}',
      '--config.checkpoint_every_steps=4',
      '--config.log_every_steps=1',
      '--config.eval_every_steps=1000',
  ]
  straight, interrupted = tmp_path / 'straight', tmp_path / 'interrupted'
  _run(args + [f'--workdir={straight}'])

  def start(stdout=subprocess.PIPE):
    return subprocess.Popen(
        [sys.executable, *args, f'--workdir={interrupted}'],
        cwd=REPO,
        env=_env(),
        stdout=stdout,
        stderr=subprocess.STDOUT,
        text=True,
    )

  # A preemption notice during start-up: the run saves the step it is at and exits with 143.
  process = start()
  for line in process.stdout:
    if 'compiling' in line:
      process.send_signal(signal.SIGTERM)
      break
  output = process.communicate(timeout=300)[0]
  assert process.returncode == 143, output[-4000:]
  saved = re.search(r'Preempted \(SIGTERM\): saved a checkpoint at step (\d+)', output)
  assert saved and 1 <= int(saved.group(1)) < steps, output[-4000:]
  assert (interrupted / 'checkpoints' / saved.group(1)).is_dir()

  # The rerun resumes; kill -9 once it has logged step 6 or 7 (checkpoints at 4 and 8): no chance to save.
  with open(tmp_path / 'killed.txt', 'w') as output_file:  # not a pipe: nobody reads it while we wait
    process = start(output_file)
  log = interrupted / 'log.txt'
  deadline = time.time() + 300
  while not re.search(r'INFO \[(6|7)\] train/', log.read_text()) and time.time() < deadline:
    assert process.poll() is None, (tmp_path / 'killed.txt').read_text()[-4000:]
    time.sleep(0.02)
  process.kill()
  process.wait(timeout=60)
  assert not (interrupted / 'final_metrics.json').exists()
  assert not (interrupted / 'checkpoints' / str(steps)).exists()

  output = _run(args + [f'--workdir={interrupted}'])
  # From the preempted step or a checkpoint the killed run completed (a save in flight is lost).
  resumed = re.search(r'resumed from step (\d+) of', output)
  assert resumed and int(resumed.group(1)) in (int(saved.group(1)), 4, 8), output[-4000:]
  want, got = _checkpoint_leaves(straight, steps), _checkpoint_leaves(interrupted, steps)
  assert want.keys() == got.keys()
  for name in want:
    np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_fine_tuning_from_the_pretraining_run_then_evaluating_it(pretrained, synthetic_data, tmp_path):
  workdir = tmp_path / 'finetune'
  _run(
      [
          'main.py',
          '--config=configs/finetune.py:synthetic:tiny',
          f'--workdir={workdir}',
          f'--config.dataset.data_dir={synthetic_data}',
          f'--config.init_from={pretrained}',
      ]
  )
  final = json.loads((workdir / 'final_metrics.json').read_text())
  assert final['step'] == 2
  assert 0.0 <= final['clip_accuracy'] <= 1.0 and 0.0 <= final['video_accuracy'] <= 1.0
  assert final['num_videos'] == 2  # the test split: 2 classes x 1 video

  output = _run(
      [
          '-m',
          'imr_jax.evaluate',
          '--config=configs/finetune.py:synthetic:tiny',
          f'--workdir={workdir}',
          f'--config.dataset.data_dir={synthetic_data}',
          '--config.data.eval_num_clips=3',
      ]
  )
  evaluation = json.loads((workdir / 'eval_test_step2.json').read_text())
  assert evaluation['num_videos'] == 2 and 'video_accuracy' in output
  assert 0.0 <= evaluation['video_accuracy'] <= 1.0
  _check_predict(workdir, synthetic_data, final, tmp_path)


def _check_predict(workdir, synthetic_data, final, tmp_path):
  """imr_jax.predict on the test split's source videos and a broken file, against the run's own evaluation."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from imr_jax import features, predict  # pylint: disable=g-import-not-at-top
  from imr_jax.data import pipeline, schema  # pylint: disable=g-import-not-at-top

  ids = features.video_ids(str(synthetic_data), 'test')  # the source paths relative to the videos folder
  videos = [str(synthetic_data.parent / 'videos' / video_id) for video_id in ids]
  broken = tmp_path / 'broken.mp4'
  broken.write_bytes(b'not a video')
  result = subprocess.run(
      [
          sys.executable,
          '-m',
          'imr_jax.predict',
          f'--workdir={workdir}',
          f'--json={tmp_path / "p.json"}',
          '--videos_per_call=2',  # two groups, [video, broken] and [video]: one compile, answers per group
          videos[0],
          str(broken),
          videos[1],
      ],
      cwd=REPO,
      env=_env(),
      capture_output=True,
      text=True,
      timeout=300,
  )
  output = result.stdout + result.stderr
  assert result.returncode == 1 and 'Traceback' not in output, output  # 1: one video could not be classified
  assert f'{broken}: cannot classify: {broken}: not a video FFmpeg can read' in output, output
  assert re.search(r'2 of 3 videos classified in .* re-encoding .* extraction .* network', output), output
  predictions = json.loads((tmp_path / 'p.json').read_text())
  assert [p['video'] for p in predictions] == [videos[0], str(broken), videos[1]] and 'error' in predictions[1]
  del predictions[1]
  config, data_set = predict.load_run(str(workdir))  # config.json holds the label names
  labels = [data_set['label_names'].index(video_id.split('/')[1]) for video_id in ids]  # test/<class>/...
  scores = np.array([[p['probabilities'][name] for name in data_set['label_names']] for p in predictions[:2]])
  # float32 probabilities averaged in float64: a sum of 2 terms is 1 within 2 u of float32.
  np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=0, atol=2 * np.finfo(np.float32).eps)
  # The same views of the same videos as the run's final evaluation: the same video accuracy.
  assert np.mean(np.argmax(scores, axis=1) == labels) == final['video_accuracy']

  # The records built in memory hold exactly what data_prep.convert stored, but for id and label.
  records, seconds = predict.records_of(videos, data_set)
  assert seconds['reencode'] > 0 and seconds['extract'] > 0
  files, _ = pipeline.split_files(str(synthetic_data), 'test')
  stored = list(tf.data.TFRecordDataset(files).as_numpy_iterator())
  for built, kept in zip(records, stored, strict=True):
    built, kept = (tf.train.Example.FromString(r).features.feature for r in (built, kept))
    assert built.keys() == kept.keys()
    differ = {key for key in kept.keys() if built[key] != kept[key]}
    assert differ == {schema.VIDEO_ID, schema.VIDEO_LABEL}, differ  # what predict does not know


CONFIGS = [
    ('pmsp', ''),
    ('pmsp', 'demo'),
    ('pmsp', 'r50:bf16'),
    ('ctp', ''),
    ('ctp', 'binary:demo'),
    ('pmsp_ctp', 'demo'),
    ('aot', 'tiny'),
    ('rotation', 'tiny'),
    ('infonce', 'tiny'),
    ('supervised', 'ucf101:1'),
    ('supervised', 'hmdb51:3:r50'),
    ('supervised', 'synthetic:demo'),
    ('supervised', 'ucf101:1:no_connection'),
    ('supervised', 'ucf101:1:unidirectional'),
    ('supervised', 'ucf101:1:no_conv'),
    ('supervised', 'ucf101:1:no_attention'),
    ('supervised', 'ucf101:1:coviar:tiny'),
    ('finetune', 'hmdb51:2'),
    ('finetune', 'synthetic:tiny'),
]


@pytest.mark.parametrize('name,arg', CONFIGS)
def test_every_config_builds_its_model_and_task(name, arg):
  """Every experiment config holds every key the model and task read (no compile, no data)."""
  import importlib  # pylint: disable=g-import-not-at-top
  from imr_jax import train  # pylint: disable=g-import-not-at-top

  config = importlib.import_module(f'configs.{name}').get_config(arg)
  model, task = train.build_model_and_task(config, num_classes=5)
  assert model.backbone is not None
  # Every task adds its heads, except classification with CoViAR, whose own logits are the scores.
  coviar_classification = config.task.name == 'classification' and config.model.name == 'coviar'
  assert set(task.heads()) or coviar_classification
  assert (task.heads() == {}) == coviar_classification


def test_config_variants_are_checked():
  from configs import ctp, supervised  # pylint: disable=g-import-not-at-top

  with pytest.raises(ValueError, match="Unknown config variant 'ucf'"):
    supervised.get_config('ucf:1')
  with pytest.raises(ValueError, match='more than one data set'):
    supervised.get_config('ucf101:hmdb51')
  assert ctp.get_config('binary').task.name == 'ctp_binary'
  config = supervised.get_config('hmdb51:2:no_attention')
  assert (
      config.dataset.data_dir,
      config.dataset.train_split,
      config.dataset.eval_split,
      config.model.connection_attention,
  ) == ('data/hmdb51', 'train2', 'test2', False)
  # A named data set survives :tiny / :demo (only the network and clips shrink); none named: synthetic.
  config = supervised.get_config('ucf101:1:tiny')
  assert (config.dataset.name, config.dataset.data_dir, config.dataset.eval_split, config.model.depth) == (
      'ucf101',
      'data/ucf101',
      'test1',
      10,
  )
  assert supervised.get_config('tiny').dataset.name == 'synthetic'
  assert supervised.get_config('synthetic:demo').dataset.data_dir == 'data/synthetic'
  assert supervised.get_config('synthetic:2').dataset.train_split == 'train'  # one split only


def test_every_config_docstring_gives_a_run_command_that_loads():
  import importlib  # pylint: disable=g-import-not-at-top
  import re  # pylint: disable=g-import-not-at-top
  from imr_jax import cli  # pylint: disable=g-import-not-at-top

  configs = cli.available_configs()
  assert 'configs/demo.py' not in configs and 'configs/pmsp.py' in configs  # sizes, not a config
  for path in configs:
    name = os.path.splitext(os.path.basename(path))[0]
    module = importlib.import_module(f'configs.{name}')
    commands = re.findall(rf'python main\.py --config=configs/{name}\.py(\S*) --workdir=', module.__doc__)
    assert commands, f'{path} gives no run command in its docstring'
    for variants in commands:
      module.get_config(variants.lstrip(':') or None)


def test_demo_sizes_are_the_demos():
  from configs import demo, finetune, pmsp  # pylint: disable=g-import-not-at-top

  assert finetune.get_config('synthetic:demo').num_epochs == demo.LABELLED_EPOCHS
  config = pmsp.get_config('demo')
  assert (config.model.depth, tuple(config.model.widths), config.dataset.data_dir) == (
      10,
      (8, 16, 32, 64),
      demo.DATA_DIR,
  )


def test_clip_picture_command_draws_the_pmsp_grid(synthetic_data, tmp_path):
  output = tmp_path / 'clip.png'
  printed = _run(
      [
          '-m',
          'data_prep.visualize_clip',
          f'--data_dir={synthetic_data}',
          '--config=configs/pmsp.py:tiny',
          '--seed=3',
          f'--output={output}',
      ]
  )
  from PIL import Image  # pylint: disable=g-import-not-at-top

  with Image.open(output) as picture:
    width, height = picture.size
    assert picture.mode == 'RGB'
  assert f'({width} x {height})' in printed
  # One column per GOP of the tiny clip beside the row-name column; rows for I, PMSP levels, MVs, residuals.
  assert width > 110 and height > width


def test_frozen_features_of_a_run_and_of_a_random_init(pretrained, synthetic_data, tmp_path):
  """imr_jax.features reads the pretraining run's backbone; frozen_eval scores the .npz files."""
  _run(
      [
          '-m',
          'imr_jax.features',
          '--config=configs/pmsp.py:tiny',
          f'--workdir={pretrained}',
          f'--config.dataset.data_dir={synthetic_data}',
          '--split=train',
          f'--output={tmp_path / "train.npz"}',
      ]
  )
  import numpy as np  # pylint: disable=g-import-not-at-top
  from configs import pmsp  # pylint: disable=g-import-not-at-top
  from imr_jax import features, frozen_eval  # pylint: disable=g-import-not-at-top

  trained = frozen_eval.load(tmp_path / 'train.npz')
  manifest = json.loads((synthetic_data / 'manifest.json').read_text())
  assert trained['features'].shape == (4, 3 * 4) and trained['features'].dtype == np.float32
  assert list(trained['label_names']) == manifest['label_names'] and sorted(trained['labels']) == [0, 0, 1, 1]
  assert len(set(trained['video_ids'])) == 4 and int(trained['step']) == 2
  assert np.all(np.isfinite(trained['features']))
  config = pmsp.get_config('tiny')
  config.dataset.data_dir = str(synthetic_data)
  random = features.extract(config, 'train')
  assert int(random['step']) == -1 and random['features'].shape == trained['features'].shape
  assert list(random['video_ids']) == list(trained['video_ids'])
  assert not np.allclose(random['features'], trained['features'])  # other weights, other features
  test = features.extract(config, 'test', str(pretrained))
  assert test['features'].shape == (2, 12) and int(test['step']) == 2
  results = frozen_eval.evaluate(trained, test)
  assert set(results['retrieval']) == {'R@1', 'R@5', 'R@10', 'R@20'} and results['num_test'] == 2
