r"""Frozen backbone features per video, for retrieval and linear probes (imr_jax.frozen_eval).

  python -m imr_jax.features --config=configs/pmsp.py:demo --workdir=runs/pmsp --split=train \
      --output=runs/pmsp/features_train.npz
  python -m imr_jax.features --config=configs/pmsp.py:demo --random_init --split=train \
      --output=random_features_train.npz                     # the reference row: an untrained network

Each video of the split is seen as evaluation views (config.data.eval_num_clips uniformly spaced
clips x config.data.eval_num_crops crops, as `imr_jax.evaluate`); the backbone's pooled features
(`features`, the concatenation of the streams' global average pools; BatchNorm with its running
statistics) are averaged over a video's views. The output is a plain `.npz` that needs nothing of this
project to read:

  features    float32 (num_videos, D)   video order: the split's order (shards, then records)
  labels      int64 (num_videos,)       class indices of manifest.json's label_names
  video_ids   str (num_videos,)         the records' video ids
  label_names str (num_classes,)

Only the backbone is loaded, strictly, from the run's latest checkpoint (or --step): the run may be a
pretraining run of any pretext task or a fine-tuning run.
"""

import functools
import itertools
import io
from typing import Any

import ml_collections
import numpy as np
from absl import flags, logging
from etils import epath
from ml_collections import config_flags

from imr_jax import cli, preflight

# JAX, TensorFlow and the model are imported where they are used, so that the command line checks its
# flags and inputs first (a quarter of a second) rather than after their start-up (tens of seconds).
# pylint: disable=g-import-not-at-top

BACKBONE = 'backbone'  # the backbone's name in MultiHeadModel's parameter tree


def _backbone_inputs(batch: dict[str, Any], streams: str) -> dict[str, Any]:
  from imr_jax.models import imrnet

  return {imrnet.INPUT_NAMES[stream]: batch[imrnet.INPUT_NAMES[stream]] for stream in streams}


def video_ids(data_dir: str, split: str) -> list[str]:
  """The video ids of a split in the order the evaluation pipeline indexes them (shards, records)."""
  import tensorflow as tf
  from imr_jax.data import pipeline, schema

  files, _ = pipeline.split_files(data_dir, split)
  spec = {schema.VIDEO_ID: tf.io.FixedLenFeature([], tf.string)}
  dataset = tf.data.TFRecordDataset(files).map(lambda r: tf.io.parse_single_example(r, spec))
  return [record[schema.VIDEO_ID].decode('utf-8') for record in dataset.as_numpy_iterator()]


def extract(
    config: ml_collections.ConfigDict, split: str, workdir: str | None = None, *, step: int | None = None
) -> dict[str, np.ndarray]:
  """Backbone features of every video of `split`, averaged over its evaluation views.

  Args:
    config: the run's config (model, data, dataset); config.task is not used.
    split: the split of config.dataset.data_dir to read.
    workdir: a training run whose checkpoint (latest, or `step`) gives the backbone's weights; None
      for a random initialisation from config.seed (the reference).
    step: the checkpoint step; default the latest.
  Returns:
    {'features': float32 (N, D), 'labels': int64 (N,), 'video_ids': str (N,), 'label_names': str (C,),
     'step': int (the checkpoint's step, -1 for a random initialisation)}.
  """
  import jax
  from imr_jax import checkpoints, parallel, train
  from imr_jax.data import pipeline

  mesh = parallel.make_mesh()
  replicated = parallel.replicated(mesh)
  info = pipeline.dataset_info(config.dataset.data_dir)
  # The backbone as training builds it (CoViAR's class count comes from the data set).
  backbone = train.build_model_and_task(config, num_classes=len(info['label_names']))[0].backbone
  streams = config.model.streams
  batch_size = parallel.host_batch_size(config.eval_batch_size, mesh, 'eval_batch_size')
  batches = pipeline.eval_iterator(config, host_batch_size=batch_size, split=split)
  first = next(batches)
  example = _backbone_inputs(parallel.global_batch(first, mesh), streams)
  init = jax.jit(lambda rng: backbone.init(rng, **example, train=False), out_shardings=replicated)
  rng = jax.random.key(config.seed)
  # As train.initialize: XLA's default optimisation spends ~30 s on init's random-number kernels.
  variables = init.lower(rng).compile(compiler_options={'xla_backend_optimization_level': 0})(rng)
  variables = {'params': variables['params'], 'batch_stats': variables.get('batch_stats', {})}
  checkpoint_step = -1
  if workdir is not None:
    restored, checkpoint_step = checkpoints.restore_raw(workdir, replicated, step)
    for collection in ('params', 'batch_stats'):
      source = (restored.get(collection) or {}).get(BACKBONE)
      if source is None and variables[collection]:
        raise ValueError(
            f'The checkpoint of {workdir!r} has no {collection}/{BACKBONE}; is it a training run of this project?'
        )
      variables[collection] = checkpoints.merge_strict(
          variables[collection], source or {}, (), f'{collection} of the backbone'
      )

  # Outputs replicated, with each view's video index, label and mask: every process sees the whole
  # global batch and computes the same per-video means (as imr_jax.train.eval_step does).
  @functools.partial(jax.jit, out_shardings=replicated)
  def features_of(variables, batch):
    features = backbone.apply(variables, **_backbone_inputs(batch, streams), train=False)['features']
    return features, batch['video_index'], batch['label'], batch['mask']

  num_videos = info['splits'][split]
  sums, counts = None, np.zeros(num_videos, np.int64)
  labels = np.full(num_videos, -1, np.int64)
  for host_batch in itertools.chain([first], batches):
    values, index, label, mask = jax.device_get(features_of(variables, parallel.global_batch(host_batch, mesh)))
    if sums is None:
      sums = np.zeros((num_videos, values.shape[1]), np.float64)
    real = (mask > 0) & (index >= 0)
    np.add.at(sums, index[real], values[real].astype(np.float64))
    np.add.at(counts, index[real], 1)
    labels[index[real]] = label[real]
  if np.any(counts == 0):
    raise ValueError(
        f'{int(np.sum(counts == 0))} videos of split {split!r} got no evaluation view; '
        'the data directory is inconsistent (python -m data_prep.verify DIR).'
    )
  return {
      'features': (sums / counts[:, None]).astype(np.float32),
      'labels': labels,
      'video_ids': np.asarray(video_ids(config.dataset.data_dir, split)),
      'label_names': np.asarray(info['label_names']),
      'step': np.asarray(checkpoint_step),
  }


def save(path: str, features: dict[str, np.ndarray]) -> None:
  """Writes the features as a plain .npz (np.load reads it; no pickled objects)."""
  path = epath.Path(preflight.absolute(path))
  path.parent.mkdir(parents=True, exist_ok=True)
  buffer = io.BytesIO()  # np.savez seeks, which object stores do not offer
  np.savez(buffer, **features)
  path.write_bytes(buffer.getvalue())


def main(argv):
  if len(argv) > 1:
    raise cli.UserError(f'Unexpected arguments {argv[1:]}; options are --flags (see --help).')
  flags_ = flags.FLAGS
  if bool(flags_.workdir) == flags_.random_init:
    raise cli.UserError('Give exactly one of --workdir=RUN (its checkpoint) and --random_init.')
  if flags_.workdir:
    preflight.check_checkpoint(flags_.workdir)
  preflight.check_data(flags_.config.dataset.data_dir, (flags_.split,))
  tf = cli.import_tensorflow()
  import jax

  tf.config.set_visible_devices([], 'GPU')
  result = extract(flags_.config, flags_.split, None if flags_.random_init else flags_.workdir, step=flags_.step)
  if jax.process_index() == 0:
    save(flags_.output, result)
    logging.info('Wrote %s', flags_.output)
    print(
        f'{len(result["labels"])} videos x {result["features"].shape[1]} features of split '
        f'{flags_.split!r} -> {flags_.output}'
    )


def define_flags() -> None:
  config_flags.DEFINE_config_file('config', None, 'The config the run was trained with.', lock_config=True)
  flags.DEFINE_string('workdir', None, 'A training run (its latest checkpoint is read).')
  flags.DEFINE_bool('random_init', False, 'A randomly initialised backbone (config.seed) instead.')
  flags.DEFINE_string('split', 'train', 'The split of config.dataset.data_dir to read.')
  flags.DEFINE_string('output', None, 'The .npz file to write.')
  flags.DEFINE_integer('step', None, 'Checkpoint step; default the latest.')
  flags.mark_flags_as_required(['config', 'output'])


if __name__ == '__main__':
  define_flags()
  cli.run(main)
