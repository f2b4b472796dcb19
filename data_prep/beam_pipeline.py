r"""The conversion as an Apache Beam pipeline, for datasets too big for one machine.

  python -m data_prep.beam_pipeline --dataset=kinetics400 --source=/shared/kinetics \
      --output_dir=/shared/imr/kinetics400 -- --runner=FlinkRunner --parallelism=64 ...

The pipeline runs the very functions of data_prep.convert: `convert_video` per video, then
`write_shard` per shard (videos grouped by shard and put back in their planned order), so it writes the
same shards, byte for byte, as the multiprocessing path, and it resumes the same way (finished shards are
skipped). The driver checks inputs and plans the shards before the pipeline starts and writes the TFDS
metadata and manifest.json after it ends. Everything after `--` goes to Beam's PipelineOptions (default:
the local FnApiRunner, the engine of Beam's Python DirectRunner; add --direct_num_workers=N
--direct_running_mode=multi_processing for N local processes). On a cluster, the workers need the source
videos on a shared file system (NFS, Lustre, a FUSE mount of a bucket); the output may be one too, or
cloud storage (gs://...: each shard is written beside its final name, then renamed, a copy there).
Exit status as data_prep.convert.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

from absl import app, flags
import apache_beam as beam
from apache_beam.options import pipeline_options as options_lib

from data_prep import convert as convert_lib
from data_prep import datasets


def _convert_one(
    item: tuple[str, int, datasets.Video], settings: convert_lib.Settings
) -> tuple[str, tuple[int, convert_lib.VideoResult]]:
  shard_key, position, video = item
  # Scratch space in the worker's own temporary folder: re-encoded streams never leave the machine.
  return shard_key, (position, convert_lib.convert_video(video, settings, scratch_dir=None))


def _write_one(
    item: tuple[str, Iterable[tuple[int, convert_lib.VideoResult]]],
    shards: dict[str, convert_lib.Shard],
    output_dir: str,
) -> dict[str, Any]:
  shard_key, results = item
  ordered = [result for _, result in sorted(results, key=lambda pair: pair[0])]
  return convert_lib.write_shard(output_dir, shards[shard_key], ordered)


def build_pipeline(
    pipeline: beam.Pipeline, shards: Sequence[convert_lib.Shard], settings: convert_lib.Settings, output_dir: str
) -> beam.PCollection:
  """Adds the conversion of `shards` to `pipeline`; returns the PCollection of the written shards' records."""
  items = [(shard.key, position, video) for shard in shards for position, video in enumerate(shard.videos)]
  by_key = {shard.key: shard for shard in shards}
  return (
      pipeline
      | 'ListVideos' >> beam.Create(items)
      # One video per element: the runner balances videos, not shards, over the workers.
      | 'Reshuffle' >> beam.Reshuffle()
      | 'ConvertVideo' >> beam.Map(_convert_one, settings=settings)
      | 'GroupByShard' >> beam.GroupByKey()
      | 'WriteShard' >> beam.Map(_write_one, shards=by_key, output_dir=output_dir)
  )


def run(
    listing: datasets.Listing,
    output_dir: str,
    *,
    settings: convert_lib.Settings = convert_lib.Settings(),
    videos_per_shard: int = 32,
    strict: bool = False,
    beam_options: Sequence[str] = (),
    extra_manifest: dict[str, Any] | None = None,
    log=print,
) -> dict[str, Any]:
  """Converts `listing` into `output_dir` with Beam; the arguments and result are those of convert.convert.

  With `strict`, any failed video raises VideoFailedError after the pipeline (the runner does not stop
  early); its shard is written with the video's failure recorded, so a rerun without --strict finishes.
  """
  with convert_lib.Job(listing, output_dir, settings, videos_per_shard) as job:
    pending = job.pending
    # Shards without videos (an empty split) need no pipeline.
    for shard in pending:
      if not shard.videos:
        job.records[shard.key] = convert_lib.write_shard(job.output_dir, shard, [])
    pending = [shard for shard in pending if shard.videos]
    log(f'{listing.name}: {len(pending)} of {len(job.shards)} shards to write with Beam.')
    if pending:
      beam_options = list(beam_options)
      if not any(option.startswith('--runner') for option in beam_options):
        # The local engine behind Beam's Python DirectRunner, without its attempt to fetch Prism first.
        beam_options.append('--runner=FnApiRunner')
      with beam.Pipeline(options=options_lib.PipelineOptions(beam_options)) as pipeline:
        build_pipeline(pipeline, pending, settings, str(job.output_dir))
    job.refresh()
    if strict:
      failures = [f for shard in pending for f in (job.records[shard.key] or {}).get('failures', [])]
      if failures:
        raise convert_lib.VideoFailedError(
            f'{failures[0]["path"]}: {failures[0]["reason"]} ({len(failures)} failed videos in all)'
        )
    return job.finish(extra_manifest, log)


def main(argv: Sequence[str]) -> int:
  try:
    listing, settings, extra = convert_lib.listing_from_flags()
    manifest = run(
        listing,
        convert_lib.FLAGS.output_dir,
        settings=settings,
        videos_per_shard=convert_lib.FLAGS.videos_per_shard,
        strict=convert_lib.FLAGS.strict,
        beam_options=argv[1:],
        extra_manifest=extra,
    )
  except (convert_lib.SetupError, datasets.DatasetError) as e:
    print(f'error: {e}', file=sys.stderr)
    return convert_lib.EXIT_SETUP_ERROR
  except convert_lib.VideoFailedError as e:
    print(f'error (--strict): {e}', file=sys.stderr)
    return convert_lib.EXIT_VIDEO_FAILURES
  return convert_lib.EXIT_VIDEO_FAILURES if manifest['failures'] else convert_lib.EXIT_OK


if __name__ == '__main__':
  # The importable module's main, so that runners pickle its functions by module name, not __main__.
  from data_prep import beam_pipeline as beam_module  # pylint: disable=g-import-not-at-top

  convert_lib.define_flags()
  flags.adopt_module_key_flags(convert_lib)  # --help lists them
  app.run(beam_module.main)
