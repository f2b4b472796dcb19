r"""The embedded demo: does PMSP pretraining help? On a CPU, in about ten minutes.

  python demo.py                      # everything under runs/demo
  python demo.py --workdir=/tmp/demo  # elsewhere; a rerun reuses finished steps

1. Generates two synthetic motion data sets (data_prep/synthetic.py: six classes defined by how an
   object moves) and converts them with the real data_prep job: a larger pretraining set whose
   labels PMSP never reads (288 training videos), and a small labelled set (24 training and 120
   test videos), the setting where pretraining should help most.
2. Pretrains IMRNet with PMSP on the pretraining set (configs/pmsp.py:demo).
3. Fine-tunes it on the labelled set (configs/finetune.py:synthetic:demo), once per seed.
4. Trains the same network from scratch with the same budget (configs/supervised.py:synthetic:demo),
   once per seed.
5. Prints scratch vs PMSP-pretrained clip and video accuracy on the test split per seed and their
   mean, and writes them to WORKDIR/demo_results.json. Every run is an ordinary workdir:
   `tensorboard --logdir WORKDIR`.
"""

import json
import os
import subprocess
import sys
import time

from absl import flags
import numpy as np

from configs import demo as demo_sizes
from imr_jax import cli

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', 'runs/demo', 'Where the data sets, the three runs and the results go.')
flags.DEFINE_integer('pretrain_videos_per_class', 48, 'Training videos per class of the pretraining set.')
flags.DEFINE_integer('labelled_videos_per_class', 4, 'Training videos per class of the labelled set.')
flags.DEFINE_integer('test_videos_per_class', 20, 'Test videos per class of the labelled set.')
flags.DEFINE_integer(
    'labelled_epochs', demo_sizes.LABELLED_EPOCHS, 'Epochs of fine-tuning and of training from scratch.'
)
cli.define_seeds((0, 1), 'Seeds of the fine-tuning and scratch runs (init, data order).')
flags.DEFINE_integer('frames_per_video', 72, 'Frames per synthetic video: 6 GOPs, so clips of 4 GOPs differ.')
flags.DEFINE_integer('map_downscale', 2, 'data_prep.convert --map_downscale (its default 2: 64x48 maps of 128x96).')

DATA_SEEDS = {'pretrain': 1, 'labelled': 0}  # different seeds: different videos in the two sets


def convert(name: str, train_per_class: int, test_per_class: int, workdir: str) -> str:
  """Generates and converts one synthetic set with the data_prep CLI; returns its data directory."""
  output_dir = os.path.join(workdir, 'data', name)
  if os.path.exists(os.path.join(output_dir, 'manifest.json')):
    return output_dir
  command = [
      sys.executable,
      '-m',
      'data_prep.convert',
      '--dataset=synthetic',
      f'--source={os.path.join(workdir, "videos", name)}',
      f'--output_dir={output_dir}',
      f'--synthetic_train_per_class={train_per_class}',
      f'--synthetic_test_per_class={test_per_class}',
      f'--synthetic_seed={DATA_SEEDS[name]}',
      f'--synthetic_num_frames={FLAGS.frames_per_video}',
      f'--workers={max(1, os.cpu_count() or 1)}',
      f'--map_downscale={FLAGS.map_downscale}',
  ]
  result = subprocess.run(command, capture_output=True, text=True, cwd=os.path.dirname(os.path.abspath(__file__)))
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
    raise cli.UserError(f'Unexpected arguments {argv[1:]}.')
  if '://' in FLAGS.workdir:
    raise cli.UserError(
        f'--workdir={FLAGS.workdir}: the demo converts its videos into the workdir, and the '
        'conversion writes to a local folder; pass a local --workdir.'
    )
  import jax  # pylint: disable=g-import-not-at-top

  tf = cli.import_tensorflow()
  tf.config.set_visible_devices([], 'GPU')
  workdir = os.path.abspath(FLAGS.workdir)
  # The fine-tuning and scratch runs compile the same steps: compile them once.
  jax.config.update('jax_compilation_cache_dir', os.path.join(workdir, 'jax_cache'))
  from configs import finetune, pmsp, supervised  # pylint: disable=g-import-not-at-top
  from imr_jax import checkpoints  # pylint: disable=g-import-not-at-top

  checkpoints.quiet_orbax_logging()

  begin = time.time()
  print('== Generating and converting the synthetic data sets', flush=True)
  pretrain_data = convert('pretrain', FLAGS.pretrain_videos_per_class, 2, workdir)
  labelled_data = convert('labelled', FLAGS.labelled_videos_per_class, FLAGS.test_videos_per_class, workdir)
  data_minutes = (time.time() - begin) / 60
  from data_prep import verify  # pylint: disable=g-import-not-at-top

  fingerprints = {
      name: verify.fingerprint(path) for name, path in (('pretrain', pretrain_data), ('labelled', labelled_data))
  }

  config = pmsp.get_config('demo')
  config.dataset.data_dir = pretrain_data
  pretrain_final, pretrain_minutes = run('PMSP pretraining', config, os.path.join(workdir, 'pmsp'))

  results = {'scratch': {}, 'pmsp_pretrained': {}}
  minutes = {'data': data_minutes, 'pretraining': pretrain_minutes}
  for seed in (int(s) for s in FLAGS.seeds):
    for name, config_module, title in (
        ('pmsp_pretrained', finetune, 'Fine-tuning the PMSP-pretrained network'),
        ('scratch', supervised, 'Training the same network from scratch'),
    ):
      config = config_module.get_config('synthetic:demo')
      config.dataset.data_dir = labelled_data
      config.num_epochs = float(FLAGS.labelled_epochs)
      config.seed = seed
      if name == 'pmsp_pretrained':
        config.init_from = os.path.join(workdir, 'pmsp')
      run_name = f'{name}_seed{seed}'
      results[name][seed], minutes[run_name] = run(f'{title}, seed {seed}', config, os.path.join(workdir, run_name))

  any_run = next(iter(results['scratch'].values()))
  num_videos = any_run['num_videos']
  print(
      f'\nIMRNet on the synthetic motion set: {num_videos} test videos, '
      f'{any_run["step"]} training steps per run; PMSP pretraining: {pretrain_final["step"]} steps, '
      f'{pretrain_minutes:.1f} min (its eval accuracy over all levels {pretrain_final["accuracy"]:.3f}).'
  )
  print(f'Data fingerprints (machine-independent: compare them across machines): {fingerprints}.')
  print(f'{"":26s}{"clip accuracy":>15s}{"video accuracy":>16s}{"+- SE":>8s}{"minutes":>9s}')
  for name, label in (('scratch', 'scratch'), ('pmsp_pretrained', 'PMSP-pretrained')):
    for seed, final in results[name].items():
      accuracy = final['video_accuracy']
      # The binomial standard error of an accuracy measured on num_videos test videos.
      error = np.sqrt(accuracy * (1 - accuracy) / num_videos)
      print(
          f'{label + f" (seed {seed})":26s}{final["clip_accuracy"]:15.3f}'
          f'{accuracy:16.3f}{error:8.3f}{minutes[f"{name}_seed{seed}"]:9.1f}'
      )
  means = {}
  for name, label in (('scratch', 'scratch'), ('pmsp_pretrained', 'PMSP-pretrained')):
    finals = list(results[name].values())
    means[name] = np.mean([f['video_accuracy'] for f in finals])
    print(f'{label + " (mean)":26s}{np.mean([f["clip_accuracy"] for f in finals]):15.3f}{means[name]:16.3f}')
  print(
      f'Gain of PMSP pretraining in video accuracy: {means["pmsp_pretrained"] - means["scratch"]:+.3f}. '
      "On another CPU the digits differ (see the README: the network's arithmetic rounds by the\n"
      "CPU's instruction set and core count, and training amplifies it like a change of seed); "
      'compare against the standard errors above.'
  )
  print(
      f'Total {(time.time() - begin) / 60:.1f} min (data {data_minutes:.1f}). '
      f'TensorBoard: tensorboard --logdir {workdir}'
  )
  with open(os.path.join(workdir, 'demo_results.json'), 'w') as f:
    json.dump(
        {
            'pmsp_pretraining': pretrain_final,
            **{name: {str(seed): final for seed, final in runs.items()} for name, runs in results.items()},
            'data_fingerprints': fingerprints,
            'minutes': minutes,
        },
        f,
        indent=2,
        sort_keys=True,
    )


if __name__ == '__main__':
  cli.run(main)
