r"""Evaluates a training run's checkpoint: video-level accuracy (N clips x crops averaged per video).

  python -m imr_jax.evaluate --config=configs/finetune.py:ucf101:1 --workdir=runs/pmsp_ucf101_1
  python -m imr_jax.evaluate --config=configs/finetune.py:ucf101:1 --workdir=runs/pmsp_ucf101_1 \
      --config.data.eval_num_clips=25 --step=12000
  python -m imr_jax.evaluate --config=configs/finetune.py:ucf101 --workdir='runs/pmsp_ucf101_{split}'

A workdir with `{split}` evaluates the runs of the three official splits (UCF101 / HMDB51 converted
with all splits in one data directory: run N on its split 'testN'), and prints each and their mean, as
the papers report them.

Each video of config.dataset.eval_split is seen as config.data.eval_num_clips uniformly spaced clips x
config.data.eval_num_crops crops; class probabilities are averaged over a video's views. Prints and
writes WORKDIR/eval_<split>_step<step>.json: clip_accuracy (per view), video_accuracy, num_videos, loss.
For a pretext run it reports the pretext metrics on the eval split instead.
"""

import json
from typing import Any

import ml_collections
from absl import flags, logging
from etils import epath
from ml_collections import config_flags

from imr_jax import cli, preflight

# JAX, TensorFlow and the model are imported where they are used, so that the command line checks its
# flags and inputs first (a quarter of a second) rather than after their start-up (tens of seconds).
# pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The CLI's flags; defined by the entry point only, so importing this module defines none."""
  config_flags.DEFINE_config_file('config', None, 'The config the run was trained with.', lock_config=True)
  flags.DEFINE_string('workdir', None, "The training run's workdir (its checkpoints are read).")
  flags.DEFINE_integer('step', None, 'Checkpoint step to evaluate; default: the latest.')
  flags.mark_flags_as_required(['config', 'workdir'])


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str, step: int | None = None) -> dict[str, Any]:
  """Restores `workdir`'s checkpoint (latest, or `step`) strictly and evaluates it.

  Returns:
    The metrics, with 'step' and 'split'; also written to WORKDIR/eval_<split>_step<step>.json.
  """
  import jax
  from imr_jax import parallel, train
  from imr_jax.data import pipeline

  mesh = parallel.make_mesh()
  info = pipeline.dataset_info(config.dataset.data_dir)
  model, task = train.build_model_and_task(config, num_classes=len(info['label_names']))

  batch_size = parallel.host_batch_size(config.eval_batch_size, mesh, 'eval_batch_size')
  first = next(iter(train.eval_batches(config, task, batch_size)))
  variables, step = restore(workdir, model, task, first, mesh, step)
  results = train.evaluate(variables, config, task, train.make_eval_step(model, task, mesh), mesh)
  results = {'step': step, 'split': config.dataset.eval_split, **results}
  if jax.process_index() == 0:
    path = epath.Path(workdir) / f'eval_{config.dataset.eval_split}_step{step}.json'
    path.write_text(json.dumps(results, indent=2, sort_keys=True))
    logging.info('Wrote %s', path)
  return results


def restore(workdir: str, model, task, host_batch: dict[str, Any], mesh, step: int | None = None):
  """The model's variables for `host_batch`'s shapes, with the checkpoint's values loaded strictly.

  Nothing is skipped: a config that does not match the run is an error, not a silent re-initialisation.

  Returns:
    ({'params', 'batch_stats'}, the checkpoint's step).
  """
  import jax
  import optax
  from imr_jax import checkpoints, parallel, train

  replicated = parallel.replicated(mesh)
  example_inputs, _ = jax.eval_shape(task.prepare, parallel.global_batch(host_batch, mesh), jax.random.key(0))
  state = train.initialize(model, optax.identity(), example_inputs, jax.random.key(0), replicated)
  restored, step = checkpoints.restore_raw(workdir, replicated, step)
  variables = {
      'params': checkpoints.merge_strict(state.params, restored['params'], (), 'params'),
      'batch_stats': checkpoints.merge_strict(state.batch_stats, restored['batch_stats'] or {}, (), 'batch_stats'),
  }
  return variables, step


OFFICIAL_SPLITS = ('1', '2', '3')
SPLIT_FIELD = '{split}'


def split_config(config: ml_collections.ConfigDict, number: str) -> ml_collections.ConfigDict:
  """`config` reading official split `number` ('trainN' / 'testN' of the same data directory)."""
  config = config.copy_and_resolve_references()
  config.dataset.train_split, config.dataset.eval_split = f'train{number}', f'test{number}'
  return config


def evaluate_official_splits(
    config: ml_collections.ConfigDict, workdir_template: str, step: int | None = None
) -> dict[str, dict[str, Any]]:
  """Evaluates the run of each official split (`workdir_template` with {split} = 1, 2, 3) on its test split.

  Returns:
    {'1': metrics, '2': metrics, '3': metrics, 'mean': the mean of each numeric metric over the splits}.
  """
  results = {
      number: evaluate_checkpoint(split_config(config, number), workdir_template.replace(SPLIT_FIELD, number), step)
      for number in OFFICIAL_SPLITS
  }
  numeric = [name for name, value in results['1'].items() if isinstance(value, (int, float)) and name != 'step']
  results['mean'] = {name: sum(results[n][name] for n in OFFICIAL_SPLITS) / len(OFFICIAL_SPLITS) for name in numeric}
  return results


def main(argv):
  if len(argv) > 1:
    raise cli.UserError(f'Unexpected arguments {argv[1:]}; options are --flags (see --help).')
  if SPLIT_FIELD in FLAGS.workdir:
    for number in OFFICIAL_SPLITS:
      preflight.check_checkpoint(FLAGS.workdir.replace(SPLIT_FIELD, number))
      preflight.check_data(FLAGS.config.dataset.data_dir, (f'test{number}',))
  else:
    preflight.check_checkpoint(FLAGS.workdir)
    preflight.check_data(FLAGS.config.dataset.data_dir, (FLAGS.config.dataset.eval_split,))
  tf = cli.import_tensorflow()
  tf.config.set_visible_devices([], 'GPU')  # the input pipeline stays on the host
  if SPLIT_FIELD not in FLAGS.workdir:
    results = evaluate_checkpoint(FLAGS.config, FLAGS.workdir, FLAGS.step)
    for name, value in sorted(results.items()):
      print(f'{name:>20s}: {value}')
    return
  results = evaluate_official_splits(FLAGS.config, FLAGS.workdir, FLAGS.step)
  names = sorted(results['mean'])
  print(f'{"split":>6s} ' + ' '.join(f'{name:>16s}' for name in names))
  for split, metrics in results.items():
    print(f'{split:>6s} ' + ' '.join(f'{metrics[name]:16.4f}' for name in names))


if __name__ == '__main__':
  define_flags()
  cli.run(main)
