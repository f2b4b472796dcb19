"""A user's mistakes on the command lines end in one clean message, before TensorFlow / JAX start-up."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_data(root, *, splits=(('train', 2), ('test', 1)), empty_shard=None, missing_shard=None):
  """A converted-data-set look-alike: a manifest and non-empty shards named as data_prep.convert names them."""
  os.makedirs(root, exist_ok=True)
  manifest = {
      'dataset': 'synthetic',
      'splits': {s: 4 for s, _ in splits},
      'num_shards': {s: n for s, n in splits},
      'label_names': ['a', 'b'],
  }
  with open(os.path.join(root, 'manifest.json'), 'w') as f:
    json.dump(manifest, f)
  for split, num_shards in splits:
    for i in range(num_shards):
      name = f'synthetic-{split}.tfrecord-{i:05d}-of-{num_shards:05d}'
      if name == missing_shard:
        continue
      with open(os.path.join(root, name), 'wb') as f:
        f.write(b'' if name == empty_shard else b'records')
  return str(root)


def make_run(root, *, depth=18, with_checkpoint=True):
  """A training workdir look-alike: checkpoints/<step>/ and the config.json train.py writes."""
  os.makedirs(os.path.join(root, 'checkpoints', '10' if with_checkpoint else 'tmp'), exist_ok=True)
  with open(os.path.join(root, 'config.json'), 'w') as f:
    json.dump({'command': ['main.py'], 'config': {'model': {'name': 'imrnet', 'depth': depth}}}, f)
  return str(root)


def run_cli(*args):
  result = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=120)
  return result.returncode, result.stdout + result.stderr


def assert_clean_failure(returncode, output, *expected):
  assert returncode == 1, output
  assert 'Traceback' not in output, output
  assert len([line for line in output.splitlines() if 'error:' in line]) == 1, output
  for text in expected:
    assert text in output, output


MAIN = ('main.py', '--config=configs/pmsp.py:demo')


def test_wrong_config_path_lists_the_configs(tmp_path):
  code, output = run_cli('main.py', '--config=configs/pmspp.py', f'--workdir={tmp_path}/run')
  assert_clean_failure(
      code, output, "no file 'configs/pmspp.py'", 'Did you mean configs/pmsp.py?', 'configs/supervised.py'
  )
  assert not os.path.exists(tmp_path / 'run')


def test_unknown_config_key_suggests_the_close_match_once(tmp_path):
  code, output = run_cli(*MAIN, '--config.batchsize=3', f'--workdir={tmp_path}/run')
  assert_clean_failure(code, output, "--config.batchsize: the config has no key 'batchsize'")
  assert output.count("'batch_size'") == 1, output


def test_bad_value_unknown_variant_and_unknown_flag(tmp_path):
  for args, expected in (
      (('--config.batch_size=x',), '--config.batch_size=x'),
      (('--nosuchflag=1',), "Unknown command line flag 'nosuchflag'"),
  ):
    assert_clean_failure(*run_cli(*MAIN, *args, f'--workdir={tmp_path}/run'), expected)
  code, output = run_cli('main.py', '--config=configs/pmsp.py:nosuch', f'--workdir={tmp_path}/run')
  assert_clean_failure(code, output, "Unknown config variant 'nosuch'")


def test_verbosity_shows_the_traceback(tmp_path):
  code, output = run_cli(*MAIN, '--config.batchsize=3', f'--workdir={tmp_path}/run', '--verbosity=1')
  assert code != 0 and 'Traceback' in output


@pytest.mark.parametrize('case', ['no_dir', 'no_manifest', 'missing_shard', 'empty_shard', 'no_split'])
def test_data_dir_mistakes(tmp_path, case):
  data = tmp_path / 'data'
  if case == 'no_manifest':
    os.makedirs(data)
  elif case == 'missing_shard':
    make_data(data, missing_shard='synthetic-train.tfrecord-00001-of-00002')
  elif case == 'empty_shard':
    make_data(data, empty_shard='synthetic-train.tfrecord-00000-of-00002')
  elif case == 'no_split':
    make_data(data, splits=(('train', 1),))
  expected = {
      'no_dir': 'does not exist',
      'no_manifest': 'has no manifest.json',
      'missing_shard': 'shard synthetic-train.tfrecord-00001-of-00002 is missing or empty',
      'empty_shard': 'shard synthetic-train.tfrecord-00000-of-00002 is missing or empty',
      'no_split': "has no split 'test'",
  }[case]
  code, output = run_cli(*MAIN, f'--config.dataset.data_dir={data}', f'--workdir={tmp_path}/run')
  assert_clean_failure(code, output, f'config.dataset.data_dir={data}', expected)
  if case in ('missing_shard', 'empty_shard'):
    assert 'python -m data_prep.verify' in output
  assert not os.path.exists(tmp_path / 'run')


def test_unwritable_workdir(tmp_path):
  data = make_data(tmp_path / 'data')
  (tmp_path / 'a_file').write_text('x')
  code, output = run_cli(*MAIN, f'--config.dataset.data_dir={data}', f'--workdir={tmp_path}/a_file/run')
  assert_clean_failure(code, output, f'--workdir={tmp_path}/a_file/run: cannot write')


@pytest.mark.parametrize('case', ['empty', 'missing', 'checkpoints_folder', 'no_checkpoint', 'other_network'])
def test_init_from_mistakes(tmp_path, case):
  data = make_data(tmp_path / 'data')
  pretrained = tmp_path / 'pretrain'
  if case == 'checkpoints_folder':
    make_run(pretrained)
    pretrained = pretrained / 'checkpoints'
  elif case == 'no_checkpoint':
    make_run(pretrained, with_checkpoint=False)
  elif case == 'other_network':
    make_run(pretrained, depth=50)
  args = [] if case == 'empty' else [f'--config.init_from={pretrained}']
  code, output = run_cli(
      'main.py',
      '--config=configs/finetune.py:synthetic:demo',
      f'--config.dataset.data_dir={data}',
      f'--workdir={tmp_path}/run',
      *args,
  )
  expected = {
      'empty': 'config.init_from is empty',
      'missing': 'does not exist',
      'checkpoints_folder': f"pass the run's workdir, {tmp_path / 'pretrain'}",
      'no_checkpoint': 'holds no checkpoint',
      'other_network': 'model.depth: 50 there, 10 here',
  }[case]
  assert_clean_failure(code, output, expected)
  assert not os.path.exists(tmp_path / 'run')


def test_init_from_of_the_same_network_passes(tmp_path):
  from configs import finetune  # pylint: disable=g-import-not-at-top
  from imr_jax import preflight  # pylint: disable=g-import-not-at-top

  config = finetune.get_config('synthetic:demo')
  config.init_from = make_run(tmp_path / 'pretrain', depth=10)
  config.dataset.data_dir = make_data(tmp_path / 'data')
  preflight.check_training(config, str(tmp_path / 'run'))  # raises nothing
  assert not os.path.exists(tmp_path / 'run')


def test_maps_stored_smaller_than_the_crops_get_a_warning():
  from configs import default  # pylint: disable=g-import-not-at-top
  from imr_jax import preflight  # pylint: disable=g-import-not-at-top

  manifest = {'width': 340, 'height': 256, 'map_downscale': 2}
  r18, r50 = default.base_config(), default.base_config()
  default.apply_common_variants(r50, ['r50'])
  assert preflight.warn_of_upsampling(r18, manifest) is None  # 112-px crops of 170x128 maps
  warning = preflight.warn_of_upsampling(r50, manifest)
  assert 'stores 170x128 maps (map_downscale 2) but the config crops 224 px' in warning
  assert 'Convert with --map_downscale=1' in warning
  assert preflight.warn_of_upsampling(r50, {**manifest, 'map_downscale': 1}) is None
  assert preflight.warn_of_upsampling(r50, {}) is None  # a remote data set: no manifest read


def test_evaluate_without_a_checkpoint(tmp_path):
  data = make_data(tmp_path / 'data')
  code, output = run_cli(
      '-m',
      'imr_jax.evaluate',
      '--config=configs/pmsp.py:demo',
      f'--config.dataset.data_dir={data}',
      f'--workdir={tmp_path}',
  )
  assert_clean_failure(code, output, f'--workdir={tmp_path} holds no checkpoint')
  assert 'oneDNN' not in output  # refused before TensorFlow's start-up (it prints that line)
  code, output = run_cli(
      '-m',
      'imr_jax.features',
      '--config=configs/pmsp.py:demo',
      f'--workdir={tmp_path}',
      f'--config.dataset.data_dir={data}',
      f'--output={tmp_path}/f.npz',
  )
  assert_clean_failure(code, output, f'--workdir={tmp_path} holds no checkpoint')
  assert 'oneDNN' not in output


def test_frozen_eval_missing_features(tmp_path):
  code, output = run_cli(
      '-m',
      'imr_jax.frozen_eval',
      f'--train={tmp_path}/train.npz',
      f'--test={tmp_path}/test.npz',
      f'--output_dir={tmp_path}/out',
  )
  assert_clean_failure(code, output, f'{tmp_path}/train.npz does not exist')


def test_help_lists_the_commands_own_flags():
  # data_prep.convert defines its flags in the importable module, not in __main__: --help must adopt them.
  for args, expected in ((('main.py',), '  --workdir:'), (('-m', 'data_prep.convert'), '  --output_dir:')):
    _, output = run_cli(*args, '--help')  # absl's --help exits with status 1
    assert expected in output, output


def test_convert_from_a_bucket_says_how(tmp_path):
  code, output = run_cli(
      '-m', 'data_prep.convert', '--dataset=folder', '--source=gs://bucket/videos', f'--output_dir={tmp_path}/out'
  )
  assert_clean_failure(
      code,
      output,
      '--source=gs://bucket/videos: the videos are decoded by FFmpeg from a local folder',
      'gsutil -m cp -r',
  )
  assert not os.path.exists(tmp_path / 'out')


def test_tensorflow_start_up_lines_are_not_printed(tmp_path):
  data = make_data(tmp_path / 'data')
  # As a user runs it: without the suite's TF_CPP_MIN_LOG_LEVEL (it hides some of the lines).
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}

  def verify(*flags_):  # loads TensorFlow, then refuses the (fake) manifest
    result = subprocess.run(
        [sys.executable, '-m', 'data_prep.verify', data, *flags_],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env=env,
    )
    assert 'manifest.json' in result.stderr + result.stdout
    return result.stdout + result.stderr

  # Which lines TensorFlow prints depends on the CPU (oneDNN's only on CPUs with AVX-512 VNNI and newer).
  start_up_lines = ('oneDNN', 'This TensorFlow binary', 'absl::InitializeLog')
  output = verify()
  assert not any(line in output for line in start_up_lines), output
  output = verify('--verbosity=1')  # asked for: kept
  assert any(line in output for line in start_up_lines), output


def test_predict_refuses_a_pretext_run_and_no_videos(tmp_path):
  run = make_run(tmp_path / 'run')
  with open(os.path.join(run, 'config.json'), 'w') as f:
    json.dump({'config': {'task': {'name': 'pmsp'}}}, f)
  code, output = run_cli('-m', 'imr_jax.predict', f'--workdir={run}', 'video.mp4')
  assert_clean_failure(code, output, "is a 'pmsp' run, which predicts no classes", 'configs/finetune.py')
  code, output = run_cli('-m', 'imr_jax.predict', f'--workdir={run}')
  assert_clean_failure(code, output, 'Name the videos to classify')


def test_predict_reads_the_data_set_facts_from_the_run_or_its_manifest(tmp_path):
  from imr_jax import predict  # pylint: disable=g-import-not-at-top

  facts = {'label_names': ['a', 'b'], 'width': 64, 'height': 48, 'gop_size': 12, 'encoding': 'default'}
  data = make_data(tmp_path / 'data')
  with open(os.path.join(data, 'manifest.json')) as f:
    manifest = json.load(f)
  with open(os.path.join(data, 'manifest.json'), 'w') as f:
    json.dump({**manifest, **facts, 'label_names': ['from', 'manifest']}, f)
  config = {'task': {'name': 'classification'}, 'dataset': {'data_dir': data}}
  run = tmp_path / 'run'
  run.mkdir()
  (run / 'config.json').write_text(json.dumps({'config': config, 'data': facts}))
  # Data converted before --map_downscale existed stored full-size maps.
  assert predict.load_run(str(run))[1] == {**facts, 'map_downscale': 1}
  (run / 'config.json').write_text(json.dumps({'config': config, 'data': {**facts, 'map_downscale': 2}}))
  assert predict.load_run(str(run))[1] == {**facts, 'map_downscale': 2}
  # A run from before config.json kept them: its data set's manifest has them.
  (run / 'config.json').write_text(json.dumps({'config': config}))
  assert predict.load_run(str(run))[1] == {**facts, 'label_names': ['from', 'manifest'], 'map_downscale': 1}
