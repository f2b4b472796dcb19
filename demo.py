r"""The embedded demo: does PMSP pretraining help? On a CPU, in about ten minutes.

  python demo.py                      # everything under runs/demo
  python demo.py --workdir=/tmp/demo  # elsewhere; a rerun reuses finished steps

1. Generates two synthetic motion data sets (data_prep/synthetic.py: six classes defined by how an
   object moves) and converts them with the real data_prep job: an unlabelled-in-spirit pretraining
   set, and a small labelled set (48 training and 60 test videos).
2. Pretrains IMRNet with PMSP on the pretraining set (configs/pmsp.py:demo).
3. Fine-tunes it on the labelled set (configs/finetune.py:synthetic:demo).
4. Trains the same network from scratch with the same budget (configs/supervised.py:synthetic:demo).
5. Prints scratch vs PMSP-pretrained clip and video accuracy on the test split, and writes them to
   WORKDIR/demo_results.json. Every run is an ordinary workdir: `tensorboard --logdir WORKDIR`.
"""

import json
import os
import subprocess
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', 'runs/demo', 'Where the data sets, the three runs and the results go.')
flags.DEFINE_integer('pretrain_videos_per_class', 30, 'Training videos per class of the pretraining set.')
flags.DEFINE_integer('labelled_videos_per_class', 8, 'Training videos per class of the labelled set.')
flags.DEFINE_integer('test_videos_per_class', 10, 'Test videos per class of the labelled set.')
flags.DEFINE_integer('frames_per_video', 72, 'Frames per synthetic video: 6 GOPs, so clips of 4 GOPs differ.')

DATA_SEEDS = {'pretrain': 1, 'labelled': 0}  # different seeds: different videos in the two sets


def convert(name: str, train_per_class: int, test_per_class: int, workdir: str) -> str:
  """Generates and converts one synthetic set with the data_prep CLI; returns its data directory."""
  output_dir = os.path.join(workdir, 'data', name)
  if os.path.exists(os.path.join(output_dir, 'manifest.json')):
    return output_dir
  command = [sys.executable, '-m', 'data_prep.convert', '--dataset=synthetic',
             f'--source={os.path.join(workdir, "videos", name)}', f'--output_dir={output_dir}',
             f'--synthetic_train_per_class={train_per_class}',
             f'--synthetic_test_per_class={test_per_class}',
             f'--synthetic_seed={DATA_SEEDS[name]}', f'--synthetic_num_frames={FLAGS.frames_per_video}',
             f'--workers={max(1, os.cpu_count() or 1)}']
  result = subprocess.run(command, capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.abspath(__file__)))
  if result.returncode != 0:
    raise RuntimeError(f'Converting the {name} set failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}')
  return output_dir


def run(title: str, config, workdir: str) -> tuple[dict, float]:
  """train_and_evaluate with a banner; returns (final metrics, minutes)."""
  from imr_jax import train  # pylint: disable=g-import-not-at-top
  print(f'\n== {title}: {workdir}', flush=True)
  start = time.time()
  final = train.train_and_evaluate(config, workdir)
  return final, (time.time() - start) / 60


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments {argv[1:]}.')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  from configs import finetune, pmsp, supervised  # pylint: disable=g-import-not-at-top
  from imr_jax import checkpoints  # pylint: disable=g-import-not-at-top
  checkpoints.quiet_orbax_logging()

  workdir = os.path.abspath(FLAGS.workdir)
  begin = time.time()
  print('== Generating and converting the synthetic data sets', flush=True)
  pretrain_data = convert('pretrain', FLAGS.pretrain_videos_per_class, 2, workdir)
  labelled_data = convert('labelled', FLAGS.labelled_videos_per_class, FLAGS.test_videos_per_class, workdir)
  data_minutes = (time.time() - begin) / 60

  config = pmsp.get_config('demo')
  config.dataset.data_dir = pretrain_data
  pretrain_final, pretrain_minutes = run('PMSP pretraining', config, os.path.join(workdir, 'pmsp'))

  config = finetune.get_config('synthetic:demo')
  config.dataset.data_dir = labelled_data
  config.init_from = os.path.join(workdir, 'pmsp')
  pretrained, pretrained_minutes = run('Fine-tuning the PMSP-pretrained network', config,
                                       os.path.join(workdir, 'finetune_pmsp'))

  config = supervised.get_config('synthetic:demo')
  config.dataset.data_dir = labelled_data
  scratch, scratch_minutes = run('Training the same network from scratch', config,
                                 os.path.join(workdir, 'scratch'))

  rows = [('scratch', scratch, scratch_minutes), ('PMSP-pretrained', pretrained, pretrained_minutes)]
  print(f'\nIMRNet on the synthetic motion set: {scratch["num_videos"]} test videos, '
        f'{scratch["step"]} training steps per row; PMSP pretraining: {pretrain_final["step"]} steps, '
        f'{pretrain_minutes:.1f} min (its eval accuracy over all levels {pretrain_final["accuracy"]:.3f}).')
  print(f'{"":18s}{"clip accuracy":>15s}{"video accuracy":>16s}{"minutes":>9s}')
  for name, final, minutes in rows:
    print(f'{name:18s}{final["clip_accuracy"]:15.3f}{final["video_accuracy"]:16.3f}{minutes:9.1f}')
  print(f'Total {(time.time() - begin) / 60:.1f} min (data {data_minutes:.1f}). '
        f'TensorBoard: tensorboard --logdir {workdir}')
  with open(os.path.join(workdir, 'demo_results.json'), 'w') as f:
    json.dump({'pmsp_pretraining': pretrain_final, 'scratch': scratch, 'pmsp_pretrained': pretrained,
               'minutes': {'data': data_minutes, 'pretraining': pretrain_minutes,
                           'scratch': scratch_minutes, 'fine_tuning': pretrained_minutes}},
              f, indent=2, sort_keys=True)


if __name__ == '__main__':
  app.run(main)
