r"""Draws one sampled training clip, as the network sees it, with its PMSP labels; writes a PNG.

  python -m data_prep.visualize_clip --data_dir=/tmp/imr/synthetic --output=/tmp/clip.png
  python -m data_prep.visualize_clip --data_dir=DIR --config=configs/pmsp.py:demo --seed=3 --output=clip.png

The clip comes from the real training pipeline (imr_jax.data.pipeline.train_dataset: window sampling,
multi-scale crop, flip), mapped back to pixels. One column per GOP; rows, top to bottom:
  I-frame        the GOP's I-frame; outlined: the PMSP answer of every per-GOP level ([s x s], G)
  PMSP rows      one per pyramid level: the motion energy (the sum of MV magnitudes over the GOP's
                 P-frames, as a heat map) with the level's grid and its answer per temporal bin outlined
                 and numbered as in the paper (cells 1..s*s in raster order); '-' for a bin with no motion
  MV j           the j-th sampled P-frame's accumulated motion vectors, colour-coded
                 (imr_jax.visualization.flow_to_rgb): hue = direction, saturation = length, one
                 scale for the whole clip; white = no motion; under the row name, the key (a colour
                 wheel whose rim is that scale, printed beside it)
  residual j     its accumulated residual, 128 + 2 r (grey = 0)
"""

import os
from collections.abc import Sequence

from absl import flags
from ml_collections import config_flags
import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

from imr_jax import cli  # noqa: E402
from imr_jax import visualization  # noqa: E402
from imr_jax.data import normalization  # noqa: E402
from imr_jax.data import pipeline  # noqa: E402
from imr_jax.tasks import pmsp  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file('config', 'configs/default.py', 'Config: clip and PMSP pyramid.')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Output directory of data_prep.convert.', required=True)
_SPLIT = flags.DEFINE_string('split', None, 'Split to draw from (default config.dataset.train_split).')
_SEED = flags.DEFINE_integer('seed', 0, 'Data seed: picks the video, window, crop and flip.')
_INDEX = flags.DEFINE_integer('index', 0, 'Draw the index-th clip of the seeded training stream.')
_OUTPUT = flags.DEFINE_string('output', 'clip.png', 'Where the PNG goes.')

LABEL_WIDTH = 110  # px of the row-name column
HEADER_HEIGHT = 24
LEVEL_COLOURS = ((255, 220, 0), (0, 230, 255), (255, 60, 200), (120, 255, 80), (255, 140, 0))
BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)


def _heat(energy: np.ndarray, scale: float) -> np.ndarray:
  """float (H, W) >= 0 -> uint8 (H, W, 3), black -> red -> yellow -> white, full at `scale`."""
  x = np.clip(energy / max(scale, 1e-6), 0, 1)[..., None]
  return (255 * np.clip(np.concatenate([3 * x, 3 * x - 1, 3 * x - 2], axis=-1), 0, 1)).astype(np.uint8)


def _tile(image: np.ndarray, zoom: int) -> Image.Image:
  return Image.fromarray(image).resize((image.shape[1] * zoom, image.shape[0] * zoom), Image.NEAREST)


def _cell_box(cell: int, level: pmsp.Level, size: int, zoom: int) -> tuple[int, int, int, int]:
  """Pixel box (x0, y0, x1, y1) of a 0-based raster cell of a level, with pmsp's segment boundaries."""
  starts = pmsp.segment_starts(size, level.grid_size) * zoom
  row, col = divmod(cell, level.grid_size)
  return starts[col], starts[row], starts[col + 1] - 1, starts[row + 1] - 1


def _draw_level(
    draw: ImageDraw.ImageDraw,
    origin: tuple[int, int],
    level: pmsp.Level,
    cell: int | None,
    size: int,
    zoom: int,
    colour,
    font,
    grid: bool,
) -> None:
  x, y = origin
  if grid:
    for start in pmsp.segment_starts(size, level.grid_size)[1:-1] * zoom:
      draw.line([(x + start, y), (x + start, y + size * zoom - 1)], fill=(90, 90, 90))
      draw.line([(x, y + start), (x + size * zoom - 1, y + start)], fill=(90, 90, 90))
  if cell is None:
    draw.text((x + 3, y + 2), '-', fill=colour, font=font)
    return
  x0, y0, x1, y1 = _cell_box(cell, level, size, zoom)
  draw.rectangle([x + x0, y + y0, x + x1, y + y1], outline=colour, width=2)
  if grid:
    draw.text((x + x0 + 3, y + y0 + 2), str(cell + 1), fill=colour, font=font)


def draw_clip(clip: dict[str, np.ndarray], levels: Sequence[pmsp.Level], p_per_gop: int, title: str) -> Image.Image:
  """The picture of one clip (pixel units, one example, no batch axis); see the module docstring.

  Args:
    clip: 'iframes' (G, S, S, 3) in [0, 255], 'motion_vectors' (T_P, S, S, 2) px, 'residuals'
      (T_P, S, S, 3), 'motion_energy' (G, S, S).
    levels: the PMSP pyramid.
    p_per_gop: P-frames per GOP (T_P = G * p_per_gop, GOP-major).
    title: the header line.
  """
  num_gops, size = clip['iframes'].shape[:2]
  zoom = max(1, 112 // size)
  tile = size * zoom
  labels = {level: pmsp.level_targets(clip['motion_energy'][None], level) for level in levels}
  bins = {
      level: np.searchsorted(pmsp.segment_starts(num_gops, level.temporal_bins), np.arange(num_gops), side='right') - 1
      for level in levels
  }  # GOP -> temporal bin

  def answer(level, gop):
    target = labels[level]
    b = bins[level][gop]
    return int(target['label'][0, b]) if target['valid'][0, b] else None

  rows = [('I-frame', [np.clip(f, 0, 255).astype(np.uint8) for f in clip['iframes']])]
  energy_scale = float(clip['motion_energy'].max())
  for level in levels:
    rows.append(
        (
            f'PMSP ([{level.grid_size}x{level.grid_size}], {level.temporal_bins})',
            [_heat(e, energy_scale) for e in clip['motion_energy']],
        )
    )
  # One saturation scale for the whole clip, so that frames compare.
  mv_scale = max(float(np.hypot(*np.moveaxis(clip['motion_vectors'], -1, 0)).max()), 1.0)
  for j in range(p_per_gop):
    rows.append(
        (
            f'MV {j + 1}',
            [
                visualization.flow_to_rgb(clip['motion_vectors'][g * p_per_gop + j], max_magnitude=mv_scale)
                for g in range(num_gops)
            ],
        )
    )
  for j in range(p_per_gop):
    rows.append(
        (
            f'residual {j + 1}',
            [visualization.residual_to_rgb(clip['residuals'][g * p_per_gop + j], gain=2.0) for g in range(num_gops)],
        )
    )

  gap = 4
  image = Image.new(
      'RGB', (LABEL_WIDTH + num_gops * (tile + gap), HEADER_HEIGHT + len(rows) * (tile + gap)), BACKGROUND
  )
  draw = ImageDraw.Draw(image)
  font = ImageFont.load_default(size=12)
  draw.text((4, 5), title, fill=TEXT, font=font)
  for r, (name, tiles) in enumerate(rows):
    y = HEADER_HEIGHT + r * (tile + gap)
    draw.text((4, y + tile // 2 - 6), name, fill=TEXT, font=font)
    if name == 'MV 1':  # the colour key of the MV rows, under its name: rim = the clip's longest MV
      key = max(16, min(tile // 2 - 10, LABEL_WIDTH - 60))
      image.paste(Image.fromarray(visualization.colour_wheel(key, key)), (4, y + tile // 2 + 10))
      draw.text((key + 8, y + tile // 2 + 10 + key // 2 - 6), f'{mv_scale:.0f} px', fill=TEXT, font=font)
    for g, array in enumerate(tiles):
      x = LABEL_WIDTH + g * (tile + gap)
      image.paste(_tile(array, zoom), (x, y))
      if r == 0:  # the per-GOP answers on the I-frame
        for i, level in enumerate(levels):
          if level.temporal_bins == num_gops:
            _draw_level(
                draw,
                (x, y),
                level,
                answer(level, g),
                size,
                zoom,
                LEVEL_COLOURS[i % len(LEVEL_COLOURS)],
                font,
                grid=False,
            )
      elif r <= len(levels):
        i = r - 1
        _draw_level(
            draw,
            (x, y),
            levels[i],
            answer(levels[i], g),
            size,
            zoom,
            LEVEL_COLOURS[i % len(LEVEL_COLOURS)],
            font,
            grid=True,
        )
  return image


def main(argv: Sequence[str]) -> None:
  del argv
  config = _CONFIG.value
  with config.unlocked():
    config.dataset.data_dir = _DATA_DIR.value
    config.dataset.train_split = _SPLIT.value or config.dataset.train_split
    config.data.shuffle_buffer = min(config.data.shuffle_buffer, 64)
  levels = pmsp.pyramid(config.pmsp.grid_sizes, config.pmsp.temporal_bins, config.data.num_gops)
  dataset = pipeline.train_dataset(config, host_batch_size=1, seed=_SEED.value, process_index=0, process_count=1)
  for batch, _ in zip(tfds.as_numpy(dataset), range(_INDEX.value + 1)):
    pass
  clip = {
      'iframes': normalization.denormalize_iframes(batch['iframes'][0]),
      'motion_vectors': normalization.denormalize_motion_vectors(batch['motion_vectors'][0]),
      'residuals': normalization.denormalize_residuals(batch['residuals'][0]),
      'motion_energy': batch['motion_energy'][0],
  }
  label_names = pipeline.dataset_info(_DATA_DIR.value)['label_names']
  label = int(batch['label'][0])
  title = (
      f'{os.path.basename(os.path.normpath(_DATA_DIR.value))}: class '
      f'{label_names[label] if label >= 0 else "unlabelled"}, seed {_SEED.value}, clip {_INDEX.value}; '
      'PMSP cells numbered 1.. in raster order'
  )
  image = draw_clip(clip, levels, config.data.p_per_gop, title)
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  image.save(_OUTPUT.value)
  print(f'Wrote {_OUTPUT.value} ({image.width} x {image.height}).')


if __name__ == '__main__':
  cli.run(main)
