r"""Classifies video files with a trained run: the top classes per video, straight from the files.

  python -m imr_jax.predict --workdir=runs/pmsp_ucf101_1 v_Archery_g01_c01.avi clip.mp4
  python -m imr_jax.predict --workdir=runs/pmsp_ucf101_1 --step=12000 --top=3 --json=out.json videos/*.avi

Any file PyAV reads is re-encoded exactly as `data_prep.convert` does (MPEG-4 Part 2 at the run's data set's
frame size, GOP and record encoding) into a temporary folder removed before the next video, and its
compressed-domain record is built in memory; no conversion step, nothing left on disk. Each video is then
seen as evaluation sees it (config.data.eval_num_clips clips x eval_num_crops crops, the same tf.data code
as `imr_jax.evaluate`) and its class probabilities are averaged over the views. The run's config.json
gives the config and the label names (a run older than that file's `data` entry reads them from its
config.dataset.data_dir). A file that cannot be read gets the codec's reason; the others still get
answers, and the exit status is 1. Videos go --videos_per_call at a time (re-encoded, then classified; the
answers print per group and memory holds one group's records); the network compiles once. Prints a
timing line: re-encoding, extraction (decoding the compressed domain and encoding the record) and the
network, with its compilation apart.
"""

import json
import math
import time
from typing import Any, Sequence

import ml_collections
import numpy as np
from absl import flags, logging
from etils import epath

from imr_jax import cli, preflight

# JAX, TensorFlow and the model are imported where they are used, so that the command line checks its
# flags and inputs first rather than after their start-up.
# pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The CLI's flags; defined by the entry point only, so importing this module defines none."""
  flags.DEFINE_string('workdir', None, 'A classification run (supervised.py or finetune.py): its workdir.')
  flags.DEFINE_integer('step', None, 'Checkpoint step to use; default: the latest.')
  flags.DEFINE_integer('top', 5, 'Classes printed per video, most probable first.')
  flags.DEFINE_integer('batch_size', 0, "Views per network call; 0: the run's eval_batch_size (fewer for few videos).")
  flags.DEFINE_integer('videos_per_call', 32, 'Videos re-encoded, then classified, per group (bounds memory).')
  flags.DEFINE_string('json', None, 'Also write the predictions (all class probabilities) to this JSON file.')
  flags.mark_flags_as_required(['workdir'])


def load_run(workdir: str) -> tuple[ml_collections.ConfigDict, dict[str, Any]]:
  """The run's config and its data set's facts (label_names, width, height, gop_size, encoding)."""
  path = epath.Path(workdir) / preflight.CONFIG_FILE
  try:
    saved = json.loads(path.read_text())
  except (OSError, ValueError) as e:
    raise cli.UserError(f'{path} is missing or unreadable ({e}); pass the workdir of a training run.') from e
  config = ml_collections.ConfigDict(saved['config'])
  if config.task.name != 'classification':
    raise cli.UserError(
        f'--workdir={workdir} is a {config.task.name!r} run, which predicts no classes; pass a run of '
        'configs/supervised.py or configs/finetune.py.'
    )
  data_set = saved.get('data')
  if data_set is None:  # a run from before train.py wrote it
    data_set = preflight.check_data(config.dataset.data_dir, ())
    if not data_set:
      raise cli.UserError(
          f'{path} names no label names and its data set {config.dataset.data_dir} cannot be read '
          'here; run predict where the data set is, or rerun a step of the run to rewrite config.json.'
      )
  missing = [key for key in preflight.DATA_SET_FACTS if key not in data_set and key != 'map_downscale']
  if missing:
    raise cli.UserError(
        f"{path} (or its data set's manifest.json) lacks {missing}; convert the data set with data_prep.convert "
        'and train on it.'
    )
  # Data sets converted before --map_downscale existed store full-size maps.
  return config, {'map_downscale': 1} | {key: data_set[key] for key in preflight.DATA_SET_FACTS if key in data_set}


def records_of(paths: Sequence[str], data_set: dict[str, Any]) -> tuple[list[bytes | str], dict[str, float]]:
  """Each video's serialized record, or for a video that cannot be converted the reason (a str)."""
  from data_prep import convert, datasets

  settings = convert.Settings(
      width=data_set['width'],
      height=data_set['height'],
      gop_size=data_set['gop_size'],
      encoding=data_set['encoding'],
      map_downscale=data_set['map_downscale'],
  )
  results, seconds = [], {'reencode': 0.0, 'extract': 0.0}
  for index, path in enumerate(paths):
    result = convert.convert_video(datasets.Video(str(index), str(path), -1), settings, timings=seconds)
    results.append(result.record if result.failure is None else result.failure)
  return results, seconds


class Predictor:
  """A run's network, restored once, scoring serialized records as evaluation does.

  Its batch has a fixed size, so the network compiles once for any number of calls.
  """

  def __init__(
      self,
      config: ml_collections.ConfigDict,
      workdir: str,
      data_set: dict[str, Any],
      *,
      videos_per_call: int,
      step: int | None = None,
      batch_size: int = 0,
  ):
    from imr_jax import parallel, train

    self.config, self.workdir, self.step, self.encoding = config, workdir, step, data_set['encoding']
    self.num_classes = len(data_set['label_names'])
    self.mesh = parallel.make_mesh()
    self.model, self.task = train.build_model_and_task(config, num_classes=self.num_classes)
    self.views_per_video = config.data.eval_num_clips * config.data.eval_num_crops
    devices = self.mesh.size
    # The run's eval batch, or fewer views when there are few videos (a multiple of the device count).
    batch_size = batch_size or min(
        config.eval_batch_size, math.ceil(videos_per_call * self.views_per_video / devices) * devices
    )
    self.host_batch_size = parallel.host_batch_size(batch_size, self.mesh, '--batch_size')
    self.eval_step = train.make_eval_step(self.model, self.task, self.mesh)
    self.variables = None  # restored with the first batch's shapes
    self.seconds = {'compile': 0.0, 'network': 0.0}

  def __call__(self, records: Sequence[bytes]) -> np.ndarray:
    """Class probabilities (len(records), num_classes), averaged over each video's evaluation views."""
    import jax
    import tensorflow as tf
    from imr_jax import evaluate, parallel
    from imr_jax.data import pipeline

    num_batches = pipeline.num_eval_batches([len(records)], self.views_per_video, self.host_batch_size, 1)
    serialized = tf.data.Dataset.from_tensor_slices((np.arange(len(records), dtype=np.int64), list(records)))
    batches = pipeline.eval_batches_of_records(
        serialized,
        len(records),
        self.config,
        encoding=self.encoding,
        host_batch_size=self.host_batch_size,
        num_batches=num_batches,
        extras=self.task.batch_requirements,
    ).as_numpy_iterator()
    sums = np.zeros((len(records), self.num_classes), np.float64)
    for batch in batches:
      if self.variables is None:
        self.variables, _ = evaluate.restore(self.workdir, self.model, self.task, batch, self.mesh, self.step)
      start = time.perf_counter()
      _, views = self.eval_step(self.variables, parallel.global_batch(batch, self.mesh), jax.random.key(0))
      scores, index, mask = (np.asarray(views[key]) for key in ('scores', 'video_index', 'mask'))
      first = self.seconds['compile'] == 0.0
      self.seconds['compile' if first else 'network'] += time.perf_counter() - start
      real = mask > 0
      np.add.at(sums, index[real], scores[real])
    return sums / self.views_per_video


def main(argv):
  paths = argv[1:]
  if not paths:
    raise cli.UserError(
        'Name the videos to classify after the flags: python -m imr_jax.predict --workdir=RUN VIDEO ...'
    )
  if FLAGS.top < 1 or FLAGS.videos_per_call < 1:
    raise cli.UserError(f'--top={FLAGS.top}, --videos_per_call={FLAGS.videos_per_call}: give at least 1.')
  preflight.check_checkpoint(FLAGS.workdir)
  config, data_set = load_run(FLAGS.workdir)
  if not FLAGS['verbosity'].present:  # the answers, not the libraries' INFO lines (--verbosity=0 shows them)
    logging.set_verbosity(logging.WARNING)
  label_names = data_set['label_names']
  begin = time.perf_counter()
  tf = cli.import_tensorflow()
  tf.config.set_visible_devices([], 'GPU')  # the input pipeline stays on the host
  videos_per_call = min(FLAGS.videos_per_call, len(paths))
  predictor = Predictor(
      config, FLAGS.workdir, data_set, videos_per_call=videos_per_call, step=FLAGS.step, batch_size=FLAGS.batch_size
  )
  output, seconds = [], {'reencode': 0.0, 'extract': 0.0}
  # Videos a group at a time: answers as they come, and memory bounded by one group's records.
  for first in range(0, len(paths), videos_per_call):
    group = paths[first : first + videos_per_call]
    records, group_seconds = records_of(group, data_set)
    for key, value in group_seconds.items():
      seconds[key] += value
    good = [i for i, record in enumerate(records) if isinstance(record, bytes)]
    probabilities = dict(zip(good, predictor([records[i] for i in good]))) if good else {}
    for i, path in enumerate(group):
      if i not in probabilities:
        print(f'{path}: cannot classify: {records[i]}', flush=True)
        output.append({'video': path, 'error': records[i]})
        continue
      order = np.argsort(-probabilities[i], kind='stable')[: FLAGS.top]
      print(f'{path}: ' + ', '.join(f'{label_names[c]} {probabilities[i][c]:.3f}' for c in order), flush=True)
      output.append({'video': path, 'probabilities': dict(zip(label_names, map(float, probabilities[i])))})
  classified = sum('probabilities' in entry for entry in output)
  print(
      f'{classified} of {len(paths)} videos classified in {time.perf_counter() - begin:.1f} s: re-encoding '
      f'{seconds["reencode"]:.2f} s, extraction {seconds["extract"]:.2f} s, network '
      f'{predictor.seconds["network"]:.2f} s (+ {predictor.seconds["compile"]:.1f} s compiling and running '
      'the first batch).'
  )
  if FLAGS.json:
    epath.Path(FLAGS.json).write_text(json.dumps(output, indent=2))
  return 0 if classified == len(paths) else 1


if __name__ == '__main__':
  define_flags()
  cli.run(main)
