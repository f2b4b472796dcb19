r"""Converts a video dataset into sharded TFRecords of compressed-domain tensors.

  python -m data_prep.convert --dataset=ucf101 --source=/data/UCF-101 \
      --output_dir=/data/imr/ucf101 --workers=16   # all three official splits, each video once
  python -m data_prep.convert --dataset=synthetic --output_dir=/tmp/imr/synthetic   # demo data

Every video is re-encoded to CoViAR's MPEG-4 stream (imr_jax.codec), decoded into I-frames, accumulated
motion vectors and residuals, and stored as one record (imr_jax.data.schema). Output, in --output_dir:

  <dataset>-<split>.tfrecord-00000-of-00004 ...   the shards, in the TFDS naming
  dataset_info.json, features.json                 TFDS metadata: tfds.builder_from_directory(OUT) loads
  manifest.json                                    label_names, encoding, sizes, per-split counts, failures
  .prep/                                           the job's state (plan, finished shards, scratch space)

The job is exact and resumable. Videos are sorted by id and cut into shards of --videos_per_shard; each
shard is written to a hidden temporary file and renamed when complete, and then a small record of its
count and failures is written beside the plan. A rerun (after a crash or kill -9 at any moment) skips
the finished shards and redoes the others, so no video is lost or duplicated; the bytes of every shard
depend only on the inputs and settings, never on --workers or on interruptions.

Exit status: 0 every video written; 2 bad arguments or inputs (nothing was done); 3 the job finished but
some videos failed (listed in manifest.json with their reasons), or --strict stopped at the first one;
1 an unexpected error.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import fcntl
import functools
import hashlib
import itertools
import json
import multiprocessing
import os
import pathlib
import shutil
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from absl import flags
from absl import logging
import av
import tensorflow as tf
import tqdm
from etils import epath

from data_prep import datasets
from data_prep import synthetic
from imr_jax import cli
from imr_jax import codec
from imr_jax.data import schema

# Workers started for `python -m data_prep.convert` re-run this module as __mp_main__, which runpy warns
# about; it is expected and harmless (flags are defined by the entry point only). The forkserver imports
# this module first, so its workers inherit the filter.
warnings.filterwarnings('ignore', message="'data_prep.convert' found in sys.modules", category=RuntimeWarning)

EXIT_OK = 0
EXIT_SETUP_ERROR = 2
EXIT_VIDEO_FAILURES = 3

STATE_DIR = '.prep'
MANIFEST = 'manifest.json'
SYNTHETIC_SOURCE = '_source'
FORMAT_VERSION = 1
# FFmpeg decodes what it can of a cut-off file without complaint; a video that decodes to less than this
# fraction of the frames its container declares is reported as truncated (headers are often a few off).
TRUNCATION_FRACTION = 0.9


class SetupError(ValueError):
  """The job cannot start: bad arguments, inputs or output folder. Raised before any video is converted."""


class VideoFailedError(RuntimeError):
  """--strict: a video could not be converted."""


@dataclasses.dataclass(frozen=True)
class Settings:
  """What a record depends on, besides the source video.

  Attributes:
    width, height: re-encoded frame size in pixels (CoViAR: 340x256).
    gop_size: frames per GOP of the re-encoding (CoViAR: 12).
    encoding: record encoding, 'default' or 'lossless' (imr_jax.data.schema).
    map_downscale: the maps are stored at (width, height) / map_downscale (schema.downscale_maps). 2 (the
      default) stores 170x128 maps of CoViAR's 340x256 codec, matched to the 112-px crops of every config
      but r50: a 3x cheaper input pipeline and 0.4x the bytes (README, Measured numbers). 1 stores the
      codec's maps as they are (for r50's 224-px crops).
  """

  width: int = 340
  height: int = 256
  gop_size: int = 12
  encoding: str = 'default'
  map_downscale: int = 2

  @property
  def map_size(self) -> tuple[int, int]:
    """(width, height) of the stored maps."""
    return self.width // self.map_downscale, self.height // self.map_downscale

  def check(self) -> None:
    for name in ('width', 'height'):
      value = getattr(self, name)
      if not isinstance(value, int) or value < 16 or value % 2:
        raise SetupError(f'--{name}={value!r}: must be an even number of pixels, at least 16.')
    if not isinstance(self.gop_size, int) or self.gop_size < 2:
      raise SetupError(f'--gop_size={self.gop_size!r}: must be at least 2 (CoViAR uses 12).')
    if self.encoding not in schema.ENCODINGS:
      raise SetupError(f'--encoding={self.encoding!r}: use one of {schema.ENCODINGS}.')
    factor = self.map_downscale
    if not isinstance(factor, int) or factor < 1 or self.width % factor or self.height % factor:
      raise SetupError(
          f'--map_downscale={factor!r}: must be a positive int that divides --width={self.width} and '
          f'--height={self.height} (2 for 340x256).'
      )
    if min(self.map_size) < 8:
      raise SetupError(f'--map_downscale={factor}: maps of {self.map_size} px are too small; use a smaller factor.')


@dataclasses.dataclass(frozen=True)
class Shard:
  """A fixed set of consecutive videos of one split, written as one file.

  Attributes:
    split: split name.
    index: shard number within the split.
    num_shards: shards in the split.
    videos: the shard's videos, in order.
    file_name: the TFDS file name, '<dataset>-<split>.tfrecord-<index>-of-<num_shards>'.
  """

  split: str
  index: int
  num_shards: int
  videos: tuple[datasets.Video, ...]
  file_name: str

  @property
  def key(self) -> str:
    return f'{self.split}-{self.index:05d}'


@dataclasses.dataclass(frozen=True)
class VideoResult:
  """What converting one video gave: its record, or why there is none."""

  video: datasets.Video
  record: bytes | None = None
  failure: str | None = None


def plan_shards(listing: datasets.Listing, videos_per_shard: int) -> list[Shard]:
  """Cuts every split's sorted videos into consecutive shards of `videos_per_shard` (the last may be short)."""
  shards = []
  for split, videos in listing.splits.items():
    num_shards = max(1, -(-len(videos) // videos_per_shard))
    for index in range(num_shards):
      chunk = videos[index * videos_per_shard : (index + 1) * videos_per_shard]
      file_name = f'{listing.name}-{split}.tfrecord-{index:05d}-of-{num_shards:05d}'
      shards.append(Shard(split, index, num_shards, tuple(chunk), file_name))
  return shards


# --------------------------------------------------------------------------------------------------
# The per-video function (the same in the multiprocessing and the Beam paths).


def _declared_num_frames(path: str) -> int:
  """The frame count the container's header declares (0 when it does not say)."""
  try:
    with av.open(path) as container:
      return container.streams.video[0].frames if container.streams.video else 0
  except (av.error.FFmpegError, OSError):
    return 0


def convert_video(
    video: datasets.Video,
    settings: Settings,
    scratch_dir: str | os.PathLike | None = None,
    timings: dict[str, float] | None = None,
) -> VideoResult:
  """Re-encodes one video and builds its record.

  Args:
    video: the source video.
    settings: re-encoding size, GOP and record encoding.
    scratch_dir: an existing local folder for the re-encoded stream (None: the system's temporary
      folder); emptied again before returning.
    timings: if given, seconds spent are added to its 'reencode' and 'extract' (decoding the compressed
      domain and encoding the record) entries.

  Returns:
    The serialized record, or, for a video that cannot be converted (corrupt, truncated, empty, no video
    stream, ...), the reason. A bad video never raises: a long job must finish and report it.
  """
  try:
    with tempfile.TemporaryDirectory(dir=scratch_dir, prefix='video-') as scratch:
      stream_path = os.path.join(scratch, 'video.m4v')
      start = time.perf_counter()
      info = codec.reencode(
          video.path, stream_path, width=settings.width, height=settings.height, gop_size=settings.gop_size
      )
      declared = _declared_num_frames(video.path)
      if info.num_frames < TRUNCATION_FRACTION * declared:
        return VideoResult(
            video,
            failure=f'truncated or corrupt: the container declares {declared} frames, '
            f'only {info.num_frames} decode; re-download or repair the file',
        )
      reencoded = time.perf_counter()
      gops, num_frames = [], 0
      # Encoded GOP by GOP: only one GOP's int16 tensors are in memory at a time.
      for gop in codec.iter_gops(stream_path, accumulate=True):
        gops.append(
            schema.encode_gop(
                iframe=gop.iframe,
                motion_vectors=gop.motion_vectors,
                residuals=gop.residuals,
                frame_motion_vectors=gop.frame_motion_vectors,
                encoding=settings.encoding,
                downscale=settings.map_downscale,
            )
        )
        num_frames += 1 + gop.num_pframes
      if num_frames == len(gops):  # Also catches an empty stream.
        return VideoResult(
            video,
            failure=f'no P-frames: the video has {num_frames} frame(s) at GOP '
            f'{settings.gop_size}, and a clip needs motion; give a longer video',
        )
      record = schema.serialize_example(
          video_id=video.video_id,
          label=video.label,
          num_frames=num_frames,
          width=settings.map_size[0],
          height=settings.map_size[1],
          gop_size=settings.gop_size,
          gops=gops,
      )
      if timings is not None:
        timings['reencode'] = timings.get('reencode', 0.0) + reencoded - start
        timings['extract'] = timings.get('extract', 0.0) + time.perf_counter() - reencoded
    return VideoResult(video, record=record)
  except codec.CodecError as e:
    return VideoResult(video, failure=str(e))
  except Exception as e:  # pylint: disable=broad-except
    # Not a known bad-input case, but one odd file must not end a job of many hours; it is reported.
    return VideoResult(video, failure=f'unexpected {type(e).__name__}: {e}')


# --------------------------------------------------------------------------------------------------
# Job state: the plan, finished shards, atomic writes.


def _is_remote(path: epath.Path) -> bool:
  return '://' in os.fspath(path)


def _write_atomically(path: epath.Path, data: bytes) -> None:
  temporary = path.with_name(f'.{path.name}.tmp')
  if _is_remote(path):  # object stores write whole objects; the rename is what publishes it
    temporary.write_bytes(data)
  else:
    with open(temporary, 'wb') as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
  temporary.replace(path)


def _write_json(path: epath.Path, value: Any) -> None:
  _write_atomically(path, (json.dumps(value, indent=2, sort_keys=True) + '\n').encode('utf-8'))


class JobState:
  """The job's folder OUT/.prep: plan.json, one <split>-<index>.json per finished shard, scratch/.

  Holding a JobState holds an exclusive lock on a local output folder (released when the process
  ends, however it ends), so two jobs never write one output. An output on cloud storage (gs://...)
  keeps its plan and shard records there too, so any machine can resume it, but has no lock (object
  stores offer none that every file system here supports) and its scratch space is a local temporary
  folder.
  """

  def __init__(self, output_dir: epath.Path):
    self.output_dir = output_dir
    self.dir = output_dir / STATE_DIR
    self.dir.mkdir(parents=True, exist_ok=True)
    if _is_remote(output_dir):
      self.scratch = pathlib.Path(tempfile.mkdtemp(prefix='imr_convert_scratch_'))
      self._lock = None
      logging.warning('%s is on remote storage: no lock guards it; run one conversion into it at a time.', output_dir)
      return
    self.scratch = pathlib.Path(self.dir / 'scratch')
    self._lock = open(self.dir / 'lock', 'w')  # pylint: disable=consider-using-with
    try:
      fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      self._lock.close()
      raise SetupError(f'Another conversion is writing {str(output_dir)!r}; wait for it or stop it.') from None

  def close(self) -> None:
    """Releases the output folder."""
    if self._lock is not None:
      self._lock.close()

  def clean(self) -> None:
    """Removes what an interrupted run leaves: scratch space and unfinished temporary files."""
    shutil.rmtree(self.scratch, ignore_errors=True)
    self.scratch.mkdir(parents=True)
    for folder in (self.output_dir, self.dir):
      for path in folder.glob('.*.tmp'):
        path.unlink()

  def check_plan(self, plan: dict[str, Any]) -> None:
    """Records the plan, or checks that it is the plan of the run being resumed."""
    path = self.dir / 'plan.json'
    if path.exists():
      existing = json.loads(path.read_text())
      if existing != plan:
        differing = sorted(k for k in set(plan) | set(existing) if plan.get(k) != existing.get(k))
        raise SetupError(
            f'{str(self.output_dir)!r} holds a conversion with other inputs or settings '
            f'(differing: {", ".join(differing)}). Rerun with the same flags to resume it, or use '
            'a new --output_dir (or delete this one).'
        )
    else:
      _write_json(path, plan)

  def finished(self, shard: Shard) -> dict[str, Any] | None:
    """The record of a finished shard, or None if it must be (re)done."""
    record_path = self.dir / f'{shard.key}.json'
    if not (record_path.is_file() and (self.output_dir / shard.file_name).is_file()):
      return None
    return json.loads(record_path.read_text())


def write_shard(output_dir: str | os.PathLike, shard: Shard, results: Sequence[VideoResult]) -> dict[str, Any]:
  """Writes a finished shard atomically, then its record in OUT/.prep (count, bytes, failures).

  Args:
    output_dir: the job's output folder.
    shard: the shard.
    results: the conversion results of exactly `shard.videos`, in order.

  Returns:
    The shard's record. Its file is what marks the shard finished: a kill before it is written only
    costs redoing the shard.
  """
  if [r.video for r in results] != list(shard.videos):
    raise ValueError(f'Results of shard {shard.key} are not its videos in order.')
  out = epath.Path(output_dir)
  final = out / shard.file_name
  temporary = final.with_name(f'.{final.name}.tmp')
  with tf.io.TFRecordWriter(os.fspath(temporary)) as writer:
    for result in results:
      if result.record is not None:
        writer.write(result.record)
  if not _is_remote(temporary):
    with open(temporary, 'rb') as f:
      os.fsync(f.fileno())
  temporary.replace(final)
  record = {
      'file_name': shard.file_name,
      'num_examples': sum(r.record is not None for r in results),
      'num_bytes': final.stat().length,
      'failures': [
          {'split': shard.split, 'video_id': r.video.video_id, 'path': r.video.path, 'reason': r.failure}
          for r in results
          if r.failure is not None
      ],
  }
  _write_json(out / STATE_DIR / f'{shard.key}.json', record)
  return record


def make_plan(listing: datasets.Listing, settings: Settings, videos_per_shard: int) -> dict[str, Any]:
  """Everything the shards' bytes depend on; a resumed run must have the same plan."""
  digest = hashlib.sha256()
  for split, videos in sorted(listing.splits.items()):
    for video in videos:
      digest.update(f'{split}\t{video.video_id}\t{video.label}\n'.encode('utf-8'))
  return {
      'format_version': FORMAT_VERSION,
      'dataset': listing.name,
      'settings': dataclasses.asdict(settings),
      'videos_per_shard': videos_per_shard,
      'label_names': list(listing.label_names),
      'num_videos': {split: len(videos) for split, videos in listing.splits.items()},
      'videos_sha256': digest.hexdigest(),
      **({'split_unions': {name: list(parts) for name, parts in listing.unions.items()}} if listing.unions else {}),
  }


# --------------------------------------------------------------------------------------------------
# Running the videos of unfinished shards, in parallel.


def _die_with_parent() -> None:
  """Worker initialiser: a worker whose parent was killed (even by kill -9) is killed too, not orphaned."""
  if sys.platform.startswith('linux'):
    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)
  # Ctrl-C goes to the whole process group; the parent alone handles it.
  signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_videos(
    videos: Sequence[datasets.Video], settings: Settings, scratch_dir: pathlib.Path, workers: int
) -> Iterator[VideoResult]:
  """Converts `videos` on `workers` processes; yields the results in the order of `videos`."""
  convert = functools.partial(convert_video, settings=settings, scratch_dir=str(scratch_dir))
  if workers <= 1 or len(videos) <= 1:
    yield from map(convert, videos)
    return
  # forkserver, not fork: a process that has run TensorFlow holds locks in its threads that a forked
  # child inherits locked (workers hung on them). The server imports this module once, in a clean
  # process, and forks the workers from there.
  context = multiprocessing.get_context('forkserver')
  context.set_forkserver_preload(['data_prep.convert'])
  with context.Pool(min(workers, len(videos)), initializer=_die_with_parent) as pool:
    yield from pool.imap(convert, videos, chunksize=1)


def write_metadata(
    output_dir: pathlib.Path, listing: datasets.Listing, shards: Sequence[Shard], records: dict[str, dict[str, Any]]
) -> None:
  """Writes the TFDS metadata (dataset_info.json, features.json) so tfds.builder_from_directory loads it."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  split_infos = []
  for split in listing.splits:
    split_shards = [s for s in shards if s.split == split]
    split_infos.append(
        tfds.core.SplitInfo(
            name=split,
            shard_lengths=[records[s.key]['num_examples'] for s in split_shards],
            num_bytes=sum(records[s.key]['num_bytes'] for s in split_shards),
        )
    )
  tfds.folder_dataset.write_metadata(
      data_dir=str(output_dir),
      features=schema.tfds_features(listing.label_names),
      split_infos=split_infos,
      filename_template='{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}',
      check_data=False,
      description=f'{listing.name} as compressed-domain tensors (I-frames, accumulated MVs and residuals); '
      'see imr_jax/data/schema.py and manifest.json.',
  )


def finalize(
    output_dir: pathlib.Path,
    listing: datasets.Listing,
    settings: Settings,
    shards: Sequence[Shard],
    records: dict[str, dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
  """Writes the TFDS metadata and manifest.json once every shard is finished; returns the manifest."""
  write_metadata(output_dir, listing, shards, records)
  failures = [dict(f, split=split) for split, missing in listing.missing.items() for f in missing]
  failures += [f for shard in shards for f in records[shard.key]['failures']]
  manifest = {
      'dataset': listing.name,
      'label_names': list(listing.label_names),
      'encoding': settings.encoding,
      'width': settings.width,
      'height': settings.height,
      'gop_size': settings.gop_size,
      'map_downscale': settings.map_downscale,
      'qscale': 1,
      'splits': {
          split: sum(records[s.key]['num_examples'] for s in shards if s.split == split) for split in listing.splits
      },
      'num_shards': {split: sum(s.split == split for s in shards) for split in listing.splits},
      # Byte size of every shard: a training run checks them before it starts (a truncated copy).
      'shard_bytes': {shard.file_name: records[shard.key]['num_bytes'] for shard in shards},
      # Splits made of others (the official splits of UCF101 / HMDB51 over their parts), read by the pipeline.
      **({'split_unions': {name: list(parts) for name, parts in listing.unions.items()}} if listing.unions else {}),
      'failures': failures,
      'format_version': FORMAT_VERSION,
      **(extra or {}),
  }
  _write_json(output_dir / MANIFEST, manifest)
  return manifest


def prepare_output(output_dir: str | os.PathLike) -> epath.Path:
  """Creates the output folder (local, or on any file system tf.io.gfile reaches) and proves it writable."""
  if '://' in os.fspath(output_dir):
    path = epath.Path(output_dir)
    try:
      path.mkdir(parents=True, exist_ok=True)
      probe = path / '.write-test'
      probe.write_text('')
      probe.unlink()
    except Exception as e:  # pylint: disable=broad-except  (each file system raises its own types)
      raise SetupError(
          f'Cannot write to --output_dir {os.fspath(path)!r} ({e}); check the URI and its credentials.'
      ) from None
    return path
  path = epath.Path(pathlib.Path(output_dir).resolve())
  try:
    path.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix='.write-test-'):
      pass
  except OSError as e:
    raise SetupError(f'Cannot write to --output_dir {str(path)!r} ({e.strerror}); choose a writable folder.') from None
  return path


class Job:
  """A conversion in progress: its output folder (locked), plan, shards and the records of finished shards."""

  def __init__(
      self, listing: datasets.Listing, output_dir: str | os.PathLike, settings: Settings, videos_per_shard: int
  ):
    settings.check()
    if videos_per_shard < 1:
      raise SetupError(f'--videos_per_shard={videos_per_shard}: must be at least 1.')
    self.listing, self.settings = listing, settings
    self.output_dir = prepare_output(output_dir)
    self.state = JobState(self.output_dir)
    try:
      self.state.check_plan(make_plan(listing, settings, videos_per_shard))
      self.state.clean()
    except BaseException:
      self.state.close()
      raise
    self.shards = plan_shards(listing, videos_per_shard)
    self.records = {}
    self.refresh()

  def __enter__(self) -> Job:
    return self

  def __exit__(self, *exc_info) -> None:
    shutil.rmtree(self.state.scratch, ignore_errors=True)
    self.state.close()

  def refresh(self) -> None:
    """Re-reads which shards are finished (after other processes wrote some)."""
    self.records = {shard.key: self.state.finished(shard) for shard in self.shards}

  @property
  def pending(self) -> list[Shard]:
    return [shard for shard in self.shards if self.records[shard.key] is None]

  def finish(self, extra_manifest: dict[str, Any] | None = None, log=print) -> dict[str, Any]:
    """Writes the TFDS metadata and manifest.json once every shard is finished; returns the manifest."""
    unfinished = [shard.file_name for shard in self.pending]
    if unfinished:
      raise RuntimeError(f'Shards {unfinished[:3]} ({len(unfinished)} in all) are not finished; rerun the job.')
    manifest = finalize(self.output_dir, self.listing, self.settings, self.shards, self.records, extra_manifest)
    written = ', '.join(f'{split} {count}' for split, count in manifest['splits'].items())
    log(f'Wrote {written} videos to {self.output_dir}.')
    empty = [split for split, count in manifest['splits'].items() if not count]
    if empty:
      log(f'Splits {empty} have no videos (TFDS lists them but will not read them).')
    if manifest['failures']:
      first = manifest['failures'][0]
      log(
          f'{len(manifest["failures"])} videos FAILED and are not in the shards; see "failures" in '
          f'{self.output_dir / MANIFEST}. First: {first["path"]}: {first["reason"]}'
      )
    return manifest


def convert(
    listing: datasets.Listing,
    output_dir: str | os.PathLike,
    *,
    settings: Settings = Settings(),
    videos_per_shard: int = 32,
    workers: int = 1,
    strict: bool = False,
    extra_manifest: dict[str, Any] | None = None,
    log=print,
) -> dict[str, Any]:
  """Converts (or finishes converting) every split of `listing` into `output_dir`.

  Args:
    listing: the dataset's videos (data_prep.datasets).
    output_dir: where the shards, metadata and manifest go (created if needed).
    settings: re-encoding and record encoding.
    videos_per_shard: videos per shard file; part of the plan, fixed for a given output.
    workers: processes converting videos in parallel (1: in this process).
    strict: stop at the first video that fails (VideoFailedError) instead of recording it.
    extra_manifest: more entries for manifest.json.
    log: where the summary lines go.

  Returns:
    The manifest (also written to OUT/manifest.json); its 'failures' list the videos not written.

  Raises:
    SetupError: before any work, for bad settings, an unwritable output folder or a different plan.
    VideoFailedError: with `strict`, for the first failed video; finished shards are kept.
  """
  with Job(listing, output_dir, settings, videos_per_shard) as job:
    pending = job.pending
    videos = [video for shard in pending for video in shard.videos]
    skipped = len(job.shards) - len(pending)
    log(
        f'{listing.name}: {sum(map(len, listing.splits.values()))} videos in {len(job.shards)} shards'
        + (f'; {skipped} shards already finished, {len(videos)} videos to go' if skipped else '')
        + f'; {workers} worker{"s" if workers != 1 else ""}.'
    )
    # Counts, rate and ETA; redrawn in place on a terminal, every 10 s in a log file.
    interactive = sys.stderr.isatty()
    bar = tqdm.tqdm(
        total=len(videos),
        desc=listing.name,
        unit='video',
        file=sys.stderr,
        mininterval=0.2 if interactive else 10.0,
        ascii=not interactive,
    )
    failed = 0
    with contextlib.closing(run_videos(videos, settings, job.state.scratch, workers)) as results:
      try:
        for shard in pending:
          collected = []
          for result in itertools.islice(results, len(shard.videos)):
            if result.failure is not None and strict:
              raise VideoFailedError(f'{result.video.video_id}: {result.failure}')
            collected.append(result)
            if result.failure is not None:
              failed += 1
              bar.set_postfix(failed=failed, refresh=False)
            bar.update()
          job.records[shard.key] = write_shard(job.output_dir, shard, collected)
      finally:
        bar.close()
    return job.finish(extra_manifest, log)


# --------------------------------------------------------------------------------------------------
# Command line.

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines the command-line flags (shared with data_prep.beam_pipeline).

  Called by the entry points, not at import: the multiprocessing workers import this module again, and
  absl allows each flag to be defined once.
  """
  flags.DEFINE_enum('dataset', 'synthetic', datasets.DATASETS, 'Which dataset adapter reads --source.')
  flags.DEFINE_string(
      'source',
      None,
      'Dataset root (see data_prep/datasets.py). synthetic: where to generate it (default OUT/_source).',
  )
  flags.DEFINE_string('output_dir', None, 'Where the shards, TFDS metadata and manifest.json go.')
  flags.DEFINE_enum(
      'split',
      'all',
      ['all', '1', '2', '3'],
      'ucf101 / hmdb51: all official splits in one --output_dir, each video stored once (splits '
      'train1, test1, ..., test3), or one split N (splits train, test).',
  )
  flags.DEFINE_string('splits_dir', None, 'ucf101 / hmdb51: folder of the official split files.')
  flags.DEFINE_string('annotations_dir', None, 'kinetics400: folder of train.csv, validate.csv (, test.csv).')
  flags.DEFINE_integer('workers', max(1, os.cpu_count() or 1), 'Processes converting videos in parallel.')
  flags.DEFINE_integer('width', None, 'Re-encoded width in px (default 340; synthetic: its own frame width).')
  flags.DEFINE_integer('height', None, 'Re-encoded height in px (default 256; synthetic: its own height).')
  flags.DEFINE_integer('gop_size', 12, 'Frames per GOP of the re-encoding.')
  flags.DEFINE_enum('encoding', 'default', schema.ENCODINGS, 'Record encoding (imr_jax/data/schema.py).')
  flags.DEFINE_integer(
      'map_downscale',
      Settings.map_downscale,
      "Store the maps at 1/N of the re-encoded size: 2 (170x128 of 340x256) for 112-px crops, the configs' "
      "default, a 3x cheaper input pipeline; 1 (the codec's own 340x256) for r50's 224-px crops.",
  )
  flags.DEFINE_integer('videos_per_shard', 32, 'Videos per shard file.')
  flags.DEFINE_bool('strict', False, 'Stop at the first video that fails instead of recording it.')
  flags.DEFINE_integer('synthetic_width', 128, 'synthetic: frame width of the generated videos.')
  flags.DEFINE_integer('synthetic_height', 96, 'synthetic: frame height of the generated videos.')
  flags.DEFINE_integer('synthetic_num_frames', 48, 'synthetic: frames per video.')
  flags.DEFINE_integer('synthetic_train_per_class', 8, 'synthetic: train videos per class.')
  flags.DEFINE_integer('synthetic_test_per_class', 3, 'synthetic: test videos per class.')
  flags.DEFINE_list('synthetic_classes', list(synthetic.CLASSES), 'synthetic: motion classes.')
  flags.DEFINE_integer('synthetic_seed', 0, 'synthetic: seed of the generator.')
  flags.DEFINE_float(
      'validation_fraction',
      0.0,
      'If > 0, move this share of each class of the train '
      "split into a 'validation' split (by a hash of the video id), to choose "
      'hyperparameters on without reading the test split.',
  )


def listing_from_flags() -> tuple[datasets.Listing, Settings, dict[str, Any]]:
  """Resolves the flags into what to convert, how, and what the manifest should say about it."""
  if not FLAGS.output_dir:
    raise SetupError('--output_dir is required.')
  extra: dict[str, Any] = {}
  width, height = FLAGS.width or 340, FLAGS.height or 256
  if FLAGS.dataset == 'synthetic':
    try:
      config = synthetic.SyntheticConfig(
          width=FLAGS.synthetic_width,
          height=FLAGS.synthetic_height,
          num_frames=FLAGS.synthetic_num_frames,
          train_per_class=FLAGS.synthetic_train_per_class,
          test_per_class=FLAGS.synthetic_test_per_class,
          classes=tuple(FLAGS.synthetic_classes),
          seed=FLAGS.synthetic_seed,
      )
      if not FLAGS.source and '://' in FLAGS.output_dir:
        raise SetupError(
            '--dataset=synthetic with a remote --output_dir needs a local --source to generate the videos in.'
        )
      source = FLAGS.source or os.path.join(prepare_output(FLAGS.output_dir), SYNTHETIC_SOURCE)
      synthetic.generate(config, source)
    except ValueError as e:
      raise SetupError(str(e)) from None
    width, height = FLAGS.width or config.width, FLAGS.height or config.height
    extra['synthetic'] = dataclasses.asdict(config)
  else:
    if not FLAGS.source:
      raise SetupError(f'--source is required for --dataset={FLAGS.dataset}.')
    source = FLAGS.source
  split = FLAGS.split if FLAGS.split == 'all' else int(FLAGS.split)
  listing = datasets.load(
      FLAGS.dataset, source, split=split, splits_dir=FLAGS.splits_dir, annotations_dir=FLAGS.annotations_dir
  )
  if FLAGS.validation_fraction:
    listing = datasets.hold_out_validation(listing, FLAGS.validation_fraction)
    extra['validation_fraction'] = FLAGS.validation_fraction
  extra['source'] = str(pathlib.Path(source).resolve())
  if FLAGS.dataset in ('ucf101', 'hmdb51'):
    extra['official_split'] = split
  settings = Settings(
      width=width, height=height, gop_size=FLAGS.gop_size, encoding=FLAGS.encoding, map_downscale=FLAGS.map_downscale
  )
  return listing, settings, extra


def main(argv: Sequence[str]) -> int:
  if len(argv) > 1:
    raise cli.UserError(f'Unexpected arguments: {argv[1:]}')
  if '://' in (FLAGS.source or ''):
    raise cli.UserError(
        f'--source={FLAGS.source}: the videos are decoded by FFmpeg from a local folder; copy them to '
        'local disk (gsutil -m cp -r ...) or mount the bucket (gcsfuse). --output_dir may be gs://.'
    )
  try:
    listing, settings, extra = listing_from_flags()
    manifest = convert(
        listing,
        FLAGS.output_dir,
        settings=settings,
        videos_per_shard=FLAGS.videos_per_shard,
        workers=FLAGS.workers,
        strict=FLAGS.strict,
        extra_manifest=extra,
    )
  except (SetupError, datasets.DatasetError) as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_SETUP_ERROR
  except VideoFailedError as e:
    print(f'error (--strict): {e}\nFinished shards are kept; rerun to resume.', file=sys.stderr)
    return EXIT_VIDEO_FAILURES
  return EXIT_VIDEO_FAILURES if manifest['failures'] else EXIT_OK


if __name__ == '__main__':
  # Run the importable module's main, not this __main__ copy's: workers unpickle functions by module name.
  from data_prep import convert as convert_module  # pylint: disable=g-import-not-at-top

  convert_module.define_flags()
  flags.adopt_module_key_flags(convert_module)  # --help lists them (they are defined in that module)
  cli.run(convert_module.main)
