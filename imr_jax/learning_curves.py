"""Draws the learning curves of one or more training runs into a PNG, straight from their event files.

  python -m imr_jax.learning_curves runs/pmsp runs/ctp --out=curves.png [--metrics='loss|accuracy']

Reads every TensorBoard event file under each WORKDIR (the trainer's `clu.metric_writers` writes
them there), and draws one panel per metric with one line per run: the colour is the run (legend:
the WORKDIR's name), the line style the split (train solid, eval dashed with a marker per
evaluation), x is the training step. A tag `train/loss` and a tag `eval/loss` are one metric,
`loss`, in two splits; so is a tag `loss` in event files under `WORKDIR/train/` and `WORKDIR/eval/`.
Tags with no split (`steps_per_sec`, `uptime`) get a panel of their own, drawn solid.
`--metrics` is a regular expression searched in `split/metric` (`eval/` keeps the eval curves only).

Drawn with Pillow alone (no matplotlib), supersampled for smooth lines.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import os
import pathlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from absl import app
from absl import flags
import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

# A tag's first component, or the folder an event file sits in, names the split when it is one of these.
SPLITS = ('train', 'eval', 'valid', 'validation', 'val', 'test')
EVENT_FILE_MARKER = 'tfevents'

# Layout in output pixels; everything is drawn at SUPERSAMPLE times this and then downsampled.
PANEL_WIDTH = 440
PANEL_HEIGHT = 300
MAX_COLUMNS = 3
LEGEND_SAMPLE_WIDTH = 36  # the line sample and the space before its label
LEGEND_GAP = 24  # between entries, and at the left edge
LEGEND_LABEL_MAX_WIDTH = 260
LEGEND_ROW_HEIGHT = 22
LEGEND_MARGIN = 8  # above and below the legend rows
FONT_SIZE = 12
SUPERSAMPLE = 2

BACKGROUND = (255, 255, 255)
AXES_COLOR = (90, 90, 90)
GRID_COLOR = (228, 228, 228)
TEXT_COLOR = (30, 30, 30)
STYLE_KEY_COLOR = (110, 110, 110)
# Tableau 10: distinct for the common forms of colour blindness and on white.
RUN_COLORS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
              (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


@dataclasses.dataclass(frozen=True)
class LineStyle:
  dash_px: tuple[int, int] | None  # (on, off) lengths in output pixels; None draws a solid line
  marker: bool                     # a dot on every point: evaluations are sparse and each one counts


SOLID = LineStyle(dash_px=None, marker=False)
SPLIT_STYLES = {
    '': SOLID,
    'train': SOLID,
    'eval': LineStyle(dash_px=(7, 4), marker=True),
    'valid': LineStyle(dash_px=(7, 4), marker=True),
    'validation': LineStyle(dash_px=(7, 4), marker=True),
    'val': LineStyle(dash_px=(7, 4), marker=True),
    'test': LineStyle(dash_px=(2, 3), marker=True),
}


class Curve(NamedTuple):
  """One scalar's history: int64 (N,) strictly increasing steps and their float64 (N,) values."""
  steps: np.ndarray
  values: np.ndarray


class NoCurvesError(ValueError):
  """A workdir that is missing, holds no event files, or whose event files hold no scalars."""


def find_event_files(workdir: str | os.PathLike[str]) -> list[pathlib.Path]:
  """Every TensorBoard event file under `workdir` (recursively), sorted by path.

  Raises:
    NoCurvesError: `workdir` does not exist, is not a directory, or holds no event file.
  """
  root = pathlib.Path(workdir)
  if not root.exists():
    raise NoCurvesError(f'Workdir {str(workdir)!r} does not exist; pass the --workdir a training run '
                        'wrote (main.py --workdir=...).')
  if not root.is_dir():
    raise NoCurvesError(f'Workdir {str(workdir)!r} is a file, not a directory; pass the run\'s --workdir.')
  files = sorted(path for path in root.rglob(f'*{EVENT_FILE_MARKER}*') if path.is_file())
  if not files:
    raise NoCurvesError(f'Workdir {str(workdir)!r} holds no TensorBoard event files '
                        f'(events.out.{EVENT_FILE_MARKER}.*); has its run logged a step yet? The trainer '
                        'writes them every config.log_every_steps.')
  return files


def read_scalars(workdir: str | os.PathLike[str]) -> dict[str, Curve]:
  """Reads every scalar in every event file under `workdir`.

  Scalars are told apart as TensorBoard's scalars dashboard does: TensorBoard's loader upgrades TF1
  `simple_value`s to tensors and marks a tag's first value with its data class; the tags marked
  scalar are kept (what `clu.metric_writers` writes), others (hparams, text, images) are skipped.

  Returns:
    `{tag: Curve}` with tags prefixed by the event file's folder relative to `workdir`
    (`WORKDIR/eval/events...` tag `loss` -> `eval/loss`; `WORKDIR/events...` tag `train/loss` stays).
    Values are the logged numbers as float64 (a float32 summary converts exactly). When a step was
    logged twice (a run resumed from an earlier checkpoint logs those steps again), the later write wins.

  Raises:
    NoCurvesError: `workdir` is missing, holds no event files, or its event files hold no scalar.
  """
  # Imported here: TensorBoard's loader pulls in TensorFlow, which costs seconds at import.
  from tensorboard.backend.event_processing import event_file_loader  # pylint: disable=g-import-not-at-top
  from tensorboard.compat.proto import summary_pb2  # pylint: disable=g-import-not-at-top
  from tensorboard.util import tensor_util  # pylint: disable=g-import-not-at-top

  root = pathlib.Path(workdir)
  writes: dict[str, list[tuple[float, int, float]]] = collections.defaultdict(list)
  for path in find_event_files(root):
    folder = path.parent.relative_to(root).as_posix()
    prefix = '' if folder == '.' else folder + '/'
    data_class_of_tag = {}  # writers attach the metadata to a tag's first value only
    for event in event_file_loader.EventFileLoader(str(path)).Load():
      for value in event.summary.value:
        if value.HasField('metadata'):
          data_class_of_tag.setdefault(value.tag, value.metadata.data_class)
        if data_class_of_tag.get(value.tag) == summary_pb2.DATA_CLASS_SCALAR:
          number = float(tensor_util.make_ndarray(value.tensor).item())
          writes[prefix + value.tag].append((event.wall_time, event.step, number))
  if not writes:
    raise NoCurvesError(f'The event files under workdir {str(workdir)!r} hold no scalar summaries; '
                        'has its run logged a step yet?')

  curves = {}
  for tag, tag_writes in writes.items():
    by_step = {}
    for _, step, number in sorted(tag_writes, key=lambda write: write[0]):  # stable: file order on ties
      by_step[step] = number
    steps = np.array(sorted(by_step), dtype=np.int64)
    curves[tag] = Curve(steps, np.array([by_step[step] for step in steps], dtype=np.float64))
  return curves


def split_tag(tag: str) -> tuple[str, str]:
  """'train/accuracy/2x2_5' -> ('train', 'accuracy/2x2_5'); 'steps_per_sec' -> ('', 'steps_per_sec')."""
  first, slash, rest = tag.partition('/')
  if slash and rest and first in SPLITS:
    return first, rest
  return '', tag


def run_names(workdirs: Sequence[str | os.PathLike[str]]) -> list[str]:
  """Short distinct legend names: each workdir's last path components, as few as tell them apart.

  ['runs/a/pmsp', 'runs/b/pmsp', 'runs/ctp'] -> ['a/pmsp', 'b/pmsp', 'ctp'].
  """
  parts = [pathlib.Path(os.path.abspath(workdir)).parts for workdir in workdirs]
  names = []
  for own in parts:
    for depth in range(1, len(own) + 1):
      name = '/'.join(own[-depth:])
      if sum('/'.join(other[-depth:]) == name for other in parts) == 1 or depth == len(own):
        break
    names.append(name)
  return names


class _Line(NamedTuple):
  run_index: int
  split: str
  curve: Curve


def plot_curves(curves_by_run: Mapping[str, Mapping[str, Curve]], out_path: str | os.PathLike[str],
                metrics: str | None = None) -> tuple[int, int]:
  """Draws one panel per metric (sorted by name), one line per run and split, into a PNG.

  Args:
    curves_by_run: legend name -> `read_scalars` output, in legend (and colour) order.
    out_path: the PNG to write; its folder must exist.
    metrics: if given, a regular expression; only tags (`split/metric`) where `re.search` finds it
      are drawn.

  Returns:
    The (width, height) of the image written, in pixels: min(panels, 3) panels of 440 x 300 across,
    under the legend: the runs, then (when the splits drawn differ in style) a key per split, packed
    into rows 22 px high as wide as the image, with 8 px above and below.

  Raises:
    NoCurvesError: no tag matches `metrics`.
  """
  pattern = re.compile(metrics) if metrics else None
  panels: dict[str, list[_Line]] = collections.defaultdict(list)
  available = set()
  for run_index, curves in enumerate(curves_by_run.values()):
    for tag, curve in curves.items():
      split, metric = split_tag(tag)
      available.add(tag)
      if pattern is None or pattern.search(tag):
        panels[metric].append(_Line(run_index, split, curve))
  if not panels:
    raise NoCurvesError(f'No tag matches --metrics={metrics!r}; the runs logged {sorted(available)}.')

  legend = [(name, RUN_COLORS[index % len(RUN_COLORS)], SOLID)
            for index, name in enumerate(curves_by_run)]
  splits = sorted({line.split for lines in panels.values() for line in lines} - {''}, key=_split_order)
  if len({SPLIT_STYLES[split] for split in splits} | {SOLID}) > 1:  # a key only when styles differ
    legend += [(split, STYLE_KEY_COLOR, SPLIT_STYLES[split]) for split in splits]

  columns = min(len(panels), MAX_COLUMNS)
  rows = math.ceil(len(panels) / columns)
  width = columns * PANEL_WIDTH
  legend_positions = _flow([label for label, _, _ in legend], width)
  legend_height = 2 * LEGEND_MARGIN + LEGEND_ROW_HEIGHT * (legend_positions[-1][1] + 1)
  height = legend_height + rows * PANEL_HEIGHT

  canvas = _Canvas(width, height)
  for (label, color, style), (x, row) in zip(legend, legend_positions):
    canvas.legend_entry(x, LEGEND_MARGIN + (row + 0.5) * LEGEND_ROW_HEIGHT, label, color, style)
  for index, metric in enumerate(sorted(panels)):
    row, column = divmod(index, columns)
    lines = sorted(panels[metric], key=lambda line: (_split_order(line.split), line.run_index))
    canvas.panel(column * PANEL_WIDTH, legend_height + row * PANEL_HEIGHT, metric, lines)
  canvas.save(out_path)
  return width, height


def _flow(labels: Sequence[str], width: int) -> list[tuple[float, int]]:
  """(x, row) of each legend entry, packed left to right and wrapped at `width`."""
  positions, x, row = [], LEGEND_GAP, 0
  for label in labels:
    entry_width = LEGEND_SAMPLE_WIDTH + _text_width(_ellipsize(label))
    if x > LEGEND_GAP and x + entry_width > width:
      x, row = LEGEND_GAP, row + 1
    positions.append((x, row))
    x += entry_width + LEGEND_GAP
  return positions


def _split_order(split: str) -> tuple[int, str]:
  return (0 if split in ('', 'train') else 1 if split != 'test' else 2, split)


def nice_ticks(low: float, high: float, max_ticks: int = 6, integer: bool = False,
               inside: bool = False) -> np.ndarray:
  """At most `max_ticks` evenly spaced round ticks for the range [low, high].

  By default they reach from one at or below `low` to one at or above `high` (the axis ends on a
  tick); with `inside`, they are the multiples of the spacing within [low, high] (the axis ends on
  the data). The spacing is the smallest of 1, 2, 2.5 or 5 times a power of ten that needs no more
  ticks (and a whole number if `integer`); an empty range [v, v] is widened to v +- 10% (+- 1 for 0).
  """
  if not high > low:
    spread = abs(low) * 0.1 or 1.0
    low, high = low - spread, high + spread
  magnitude = 10.0 ** math.floor(math.log10((high - low) / (max_ticks - 1)))
  if integer:
    magnitude = max(magnitude, 1.0)
  for step in (m * magnitude * 10 ** e for e in range(3) for m in (1, 2, 2.5, 5)):
    if integer and step != round(step):
      continue
    if inside:
      first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
    else:
      first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    if last - first + 1 <= max_ticks:
      return np.arange(first, last + 1) * step
  raise AssertionError(f'no tick spacing for [{low}, {high}]')  # unreachable: 10x magnitude always fits


def tick_labels(ticks: np.ndarray) -> list[str]:
  """Labels for evenly spaced `ticks`, as short as their spacing allows, in one notation per axis.

  [0, 0.25, 0.5] -> ['0', '0.25', '0.50']; [0, 50000, 100000] -> ['0', '50k', '100k'];
  [0, 1e-4, 2e-4] -> ['0', '1e-04', '2e-04'].
  """
  largest = float(np.abs(ticks).max())
  step = float(ticks[1] - ticks[0]) if len(ticks) > 1 else largest or 1.0
  if largest >= 1e4 and step >= 1e2:
    unit, suffix = (1e6, 'M') if largest >= 1e6 else (1e3, 'k')
    labels = [f'{tick / unit:.{_decimals(step / unit)}f}{suffix}' for tick in ticks]
  elif largest < 1e-3:
    labels = [f'{tick:.{_decimals(step / 10 ** math.floor(math.log10(abs(tick) or step)))}e}'
              for tick in ticks]
  else:
    labels = [f'{tick:.{_decimals(step)}f}' for tick in ticks]
  # A zero tick reads '0' in every notation; '-0' (from float error) never shows.
  return ['0' if abs(tick) < step * 1e-6 else label for tick, label in zip(ticks, labels)]


def _decimals(step: float) -> int:
  """Fewest decimals that write every multiple of `step` exactly (0.25 -> 2, 500 -> 0)."""
  return next(d for d in range(12) if abs(round(step, d) - step) <= 1e-9 * step)


class _Canvas:
  """An RGB image drawn at SUPERSAMPLE times the output size; coordinates are in output pixels."""

  def __init__(self, width: int, height: int):
    self.size = (width, height)
    self.image = Image.new('RGB', (width * SUPERSAMPLE, height * SUPERSAMPLE), BACKGROUND)
    self.draw = ImageDraw.Draw(self.image)

  def save(self, path: str | os.PathLike[str]) -> None:
    self.image.resize(self.size, Image.Resampling.LANCZOS).save(path, format='PNG')

  def text(self, x: float, y: float, text: str, anchor: str, color=TEXT_COLOR) -> None:
    """`anchor` is Pillow's two-letter text anchor, for example 'mm' (centred) or 'rm'."""
    self.draw.text((x * SUPERSAMPLE, y * SUPERSAMPLE), text, fill=color, font=_font(), anchor=anchor)

  def polyline(self, points: Sequence[tuple[float, float]], color, style: LineStyle, width: float) -> None:
    scaled = [(x * SUPERSAMPLE, y * SUPERSAMPLE) for x, y in points]
    if len(scaled) > 1:
      for segment in (_dashes(scaled, [d * SUPERSAMPLE for d in style.dash_px]) if style.dash_px
                      else [scaled]):
        self.draw.line(segment, fill=color, width=round(width * SUPERSAMPLE), joint='curve')
    if style.marker or len(scaled) == 1:
      radius = 2.5 * SUPERSAMPLE
      for x, y in scaled:
        self.draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=color)

  def legend_entry(self, x: float, y: float, label: str, color, style: LineStyle) -> None:
    self.polyline([(x, y), (x + 28, y)], color, style, width=2)
    if style.marker:
      self.polyline([(x + 14, y)], color, style, width=2)
    self.text(x + LEGEND_SAMPLE_WIDTH, y, _ellipsize(label), anchor='lm')

  def panel(self, left: float, top: float, title: str, lines: Sequence[_Line]) -> None:
    """Title, axes, grid, ticks and the lines of one metric in the PANEL_WIDTH x PANEL_HEIGHT box."""
    finite_steps = [line.curve.steps[np.isfinite(line.curve.values)] for line in lines]
    finite_values = [line.curve.values[np.isfinite(line.curve.values)] for line in lines]
    all_steps = np.concatenate(finite_steps)
    all_values = np.concatenate(finite_values)
    self.text(left + PANEL_WIDTH / 2, top + 14, title, anchor='mm')
    if all_values.size == 0:
      self.text(left + PANEL_WIDTH / 2, top + PANEL_HEIGHT / 2, 'no finite values', anchor='mm',
                color=AXES_COLOR)
      return
    # x spans the steps logged (a fine-tuning run may start at step 50k); y ends on round ticks.
    x_low, x_high = float(all_steps.min()), float(all_steps.max())
    if x_low == x_high:
      x_low, x_high = x_low - 1, x_high + 1
    x_ticks = nice_ticks(x_low, x_high, integer=True, inside=True)
    y_ticks = nice_ticks(float(all_values.min()), float(all_values.max()))
    y_labels = tick_labels(y_ticks)

    plot_left = left + 14 + max(_text_width(label) for label in y_labels)
    plot_right = left + PANEL_WIDTH - 18
    plot_top, plot_bottom = top + 30, top + PANEL_HEIGHT - 40

    def to_pixel(step: float, value: float) -> tuple[float, float]:
      x = plot_left + (step - x_low) / (x_high - x_low) * (plot_right - plot_left)
      y = plot_bottom - (value - y_ticks[0]) / (y_ticks[-1] - y_ticks[0]) * (plot_bottom - plot_top)
      return x, y

    for tick, label in zip(x_ticks, tick_labels(x_ticks)):
      x, _ = to_pixel(tick, y_ticks[0])
      self.polyline([(x, plot_top), (x, plot_bottom)], GRID_COLOR, SOLID, width=1)
      self.polyline([(x, plot_bottom), (x, plot_bottom + 4)], AXES_COLOR, SOLID, width=1)
      self.text(x, plot_bottom + 7, label, anchor='mt')
    for tick, label in zip(y_ticks, y_labels):
      _, y = to_pixel(x_low, tick)
      self.polyline([(plot_left, y), (plot_right, y)], GRID_COLOR, SOLID, width=1)
      self.polyline([(plot_left - 4, y), (plot_left, y)], AXES_COLOR, SOLID, width=1)
      self.text(plot_left - 7, y, label, anchor='rm')
    self.polyline([(plot_left, plot_top), (plot_right, plot_top), (plot_right, plot_bottom),
                   (plot_left, plot_bottom), (plot_left, plot_top)], AXES_COLOR, SOLID, width=1)
    self.text((plot_left + plot_right) / 2, plot_bottom + 27, 'step', anchor='mt', color=AXES_COLOR)

    for line in lines:
      color = RUN_COLORS[line.run_index % len(RUN_COLORS)]
      # A non-finite value (a diverged step) breaks the line rather than dragging it off the axes.
      for run in _finite_runs(line.curve):
        self.polyline([to_pixel(step, value) for step, value in run], color, SPLIT_STYLES[line.split],
                      width=1.6)


def _finite_runs(curve: Curve) -> Iterable[list[tuple[float, float]]]:
  run = []
  for step, value in zip(curve.steps.tolist(), curve.values.tolist()):
    if math.isfinite(value):
      run.append((step, value))
    elif run:
      yield run
      run = []
  if run:
    yield run


def _dashes(points: Sequence[tuple[float, float]],
            pattern: Sequence[float]) -> list[list[tuple[float, float]]]:
  """Cuts a polyline into the 'on' pieces of an (on, off) dash pattern that runs on across vertices."""
  on_length, off_length = pattern
  pieces, current = [], [points[0]]
  drawing, left_in_dash = True, on_length
  for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
    length, travelled = math.hypot(x1 - x0, y1 - y0), 0.0
    while length - travelled > left_in_dash:
      travelled += left_in_dash
      point = (x0 + (x1 - x0) * travelled / length, y0 + (y1 - y0) * travelled / length)
      if drawing:
        pieces.append(current + [point])
      current = [point]
      drawing = not drawing
      left_in_dash = on_length if drawing else off_length
    left_in_dash -= length - travelled
    if drawing:
      current.append((x1, y1))
    else:
      current = [(x1, y1)]
  if drawing and len(current) > 1:
    pieces.append(current)
  return pieces


@functools.cache
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
  return ImageFont.load_default(size=FONT_SIZE * SUPERSAMPLE)


def _text_width(text: str) -> float:
  """Width of `text` in output pixels."""
  return _font().getlength(text) / SUPERSAMPLE


def _ellipsize(text: str, max_width: float = LEGEND_LABEL_MAX_WIDTH) -> str:
  if _text_width(text) <= max_width:
    return text
  while text and _text_width('…' + text) > max_width:
    text = text[1:]  # keep the end: the run's own folder name is the telling part
  return '…' + text


FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines the CLI flags; called by the entry point only, so importing this module defines none."""
  flags.DEFINE_string('out', 'curves.png', 'PNG file to write.')
  flags.DEFINE_string('metrics', None, 'Regular expression; draw only tags (split/metric) it matches, '
                      "for example 'loss' or '^eval/'.")


def main(argv: Sequence[str]) -> None:
  workdirs = argv[1:]
  if not workdirs:
    raise app.UsageError('Pass one or more workdirs: python -m imr_jax.learning_curves WORKDIR [WORKDIR ...] '
                         '--out=curves.png')
  names = run_names(workdirs)
  if len(set(names)) < len(names):
    raise app.UsageError(f'A workdir is given twice in {workdirs}; pass each run once.')
  if FLAGS.metrics:
    try:
      re.compile(FLAGS.metrics)
    except re.error as error:
      raise app.UsageError(f'--metrics={FLAGS.metrics!r} is not a regular expression: {error}.') from None
  try:
    curves_by_run = {name: read_scalars(workdir) for name, workdir in zip(names, workdirs)}
    width, height = plot_curves(curves_by_run, FLAGS.out, FLAGS.metrics)
  except NoCurvesError as error:
    raise SystemExit(f'error: {error}') from None
  print(f'Wrote {FLAGS.out} ({width}x{height}): {", ".join(curves_by_run)}.')


if __name__ == '__main__':
  define_flags()
  app.run(main)
