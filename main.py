"""Trains and evaluates IMRNet: pretext pretraining or action classification, as the config says.

  python main.py --config=configs/pmsp.py --workdir=runs/pmsp
  python main.py --config=configs/finetune.py:ucf101:1 --workdir=runs/pmsp_ucf101_1 \
      --config.init_from=runs/pmsp
Any key can be overridden: --config.batch_size=64. Running again with the same workdir resumes; on
SIGTERM (a preemption notice) the run saves a checkpoint of its current step and exits with status 143.
Multi-host (TPU pods, SLURM, or explicit): --multihost (and, off a managed cluster,
--coordinator_address=HOST:PORT --num_processes=N --process_id=I).
"""

import sys

from absl import flags, logging
from ml_collections import config_flags

from imr_jax import cli, preflight

FLAGS = flags.FLAGS
# 128 + SIGTERM, as if the signal had ended the process: schedulers that requeue preempted jobs see it.
PREEMPTED_EXIT_STATUS = 143
config_flags.DEFINE_config_file('config', None, 'Experiment config file (see configs/).', lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, TensorBoard logs and final_metrics.json.')
flags.DEFINE_bool('multihost', False, 'Join the other processes with jax.distributed.initialize().')
flags.DEFINE_string('coordinator_address', None, 'HOST:PORT of process 0 (multi-host, unmanaged clusters).')
flags.DEFINE_integer('num_processes', None, 'Number of processes (multi-host, unmanaged clusters).')
flags.DEFINE_integer('process_id', None, "This process's index (multi-host, unmanaged clusters).")
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise cli.UserError(f'Unexpected arguments {argv[1:]}; options are --flags (see --help).')
  preflight.check_training(FLAGS.config, FLAGS.workdir)  # before the minute of TensorFlow / JAX start-up
  # The input pipeline uses TensorFlow on the host; keep it off the accelerators JAX owns.
  tf = cli.import_tensorflow()
  tf.config.set_visible_devices([], 'GPU')

  import jax  # pylint: disable=g-import-not-at-top

  if FLAGS.multihost or FLAGS.coordinator_address:
    jax.distributed.initialize(
        coordinator_address=FLAGS.coordinator_address, num_processes=FLAGS.num_processes, process_id=FLAGS.process_id
    )
  logging.info(
      'Process %d of %d; local devices %s; global device count %d.',
      jax.process_index(),
      jax.process_count(),
      jax.local_devices(),
      jax.device_count(),
  )

  from imr_jax import checkpoints, train  # pylint: disable=g-import-not-at-top

  checkpoints.quiet_orbax_logging()
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except checkpoints.Preempted as preempted:
    logging.warning('%s', preempted)
    print(preempted, flush=True)
    sys.exit(PREEMPTED_EXIT_STATUS)


if __name__ == '__main__':
  cli.run(main)
