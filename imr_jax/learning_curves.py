"""Draws the learning curves of one or more training runs into a PNG, straight from their event files.

  python -m imr_jax.learning_curves runs/pmsp runs/ctp --out=curves.png [--metrics='loss|accuracy']

Reads every TensorBoard event file under each WORKDIR (the trainer's `clu.metric_writers` writes
them there), and draws one panel per metric with one line per run: the colour is the run (legend:
the WORKDIR's name), the line style the split (train solid, eval dashed with a marker per
evaluation), x is the training step. A tag `train/loss` and a tag `eval/loss` are one metric,
`loss`, in two splits; so is a tag `loss` in event files under `WORKDIR/train/` and `WORKDIR/eval/`.
Tags with no split (`steps_per_sec`, `uptime`) get a panel of their own, drawn solid.
`--metrics` is a regular expression searched in `split/metric` (`eval/` keeps the eval curves only);
by default the loss and accuracy panels are drawn. A metric means different things for runs of
different tasks (a PMSP run's accuracy is not a classifier's): when the runs' config.json files name
different tasks, each task gets its own panels.

Drawn with matplotlib.
"""

from __future__ import annotations

import collections
import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from absl import flags
from etils import epath
import numpy as np

from imr_jax import cli, preflight

FLAGS = flags.FLAGS

# A tag's first component, or the folder an event file sits in, names the split when it is one of these.
SPLITS = ('train', 'eval', 'valid', 'validation', 'val', 'test')
EVENT_FILE_MARKER = 'tfevents'
DEFAULT_METRICS = r'(^|/)(loss|accuracy|clip_accuracy|video_accuracy)$'

PANEL_SIZE_IN = (4.4, 3.0)  # inches; 100 dpi
MAX_COLUMNS = 3
# Tableau 10 (matplotlib's default cycle): distinct for the common forms of colour blindness.
RUN_COLORS = (
    '#1f77b4',
    '#ff7f0e',
    '#2ca02c',
    '#d62728',
    '#9467bd',
    '#8c564b',
    '#e377c2',
    '#7f7f7f',
    '#bcbd22',
    '#17becf',
)
# split -> (line style, marker): evaluations are sparse and each one counts, so they get markers.
SPLIT_STYLES = {
    '': ('-', None),
    'train': ('-', None),
    'eval': ('--', 'o'),
    'valid': ('--', 'o'),
    'validation': ('--', 'o'),
    'val': ('--', 'o'),
    'test': (':', 's'),
}


class Curve(NamedTuple):
  """One scalar's history: int64 (N,) strictly increasing steps and their float64 (N,) values."""

  steps: np.ndarray
  values: np.ndarray


class NoCurvesError(ValueError):
  """A workdir that is missing, holds no event files, or whose event files hold no scalars."""


def find_event_files(workdir: str | os.PathLike[str]) -> list[epath.Path]:
  """Every TensorBoard event file under `workdir` (recursively), sorted by path.

  Raises:
    NoCurvesError: `workdir` does not exist, is not a directory, or holds no event file.
  """
  root = epath.Path(workdir)
  if not root.exists():
    raise NoCurvesError(
        f'Workdir {str(workdir)!r} does not exist; pass the --workdir a training run wrote (main.py --workdir=...).'
    )
  if not root.is_dir():
    raise NoCurvesError(f"Workdir {str(workdir)!r} is a file, not a directory; pass the run's --workdir.")
  files = sorted(folder / name for folder, _, names in root.walk() for name in names if EVENT_FILE_MARKER in name)
  if not files:
    raise NoCurvesError(
        f'Workdir {str(workdir)!r} holds no TensorBoard event files '
        f'(events.out.{EVENT_FILE_MARKER}.*); has its run logged a step yet? The trainer '
        'writes them every config.log_every_steps.'
    )
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

  root = epath.Path(workdir)
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
    raise NoCurvesError(
        f'The event files under workdir {str(workdir)!r} hold no scalar summaries; has its run logged a step yet?'
    )

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
  parts = [preflight.absolute(os.fspath(workdir)).rstrip('/').split('/') for workdir in workdirs]
  names = []
  for own in parts:
    for depth in range(1, len(own) + 1):
      name = '/'.join(own[-depth:])
      if sum('/'.join(other[-depth:]) == name for other in parts) == 1 or depth == len(own):
        break
    names.append(name)
  return names


def task_of(workdir: str | os.PathLike[str]) -> str:
  """The task a run trained (its config.json's config.task.name), or '' when it has no config.json."""
  path = epath.Path(workdir) / 'config.json'
  try:
    return json.loads(path.read_text())['config']['task']['name']
  except (OSError, ValueError, KeyError, TypeError):
    return ''


def plot_curves(
    curves_by_run: Mapping[str, Mapping[str, Curve]],
    out_path: str | os.PathLike[str],
    metrics: str | None = None,
    tasks: Mapping[str, str] | None = None,
) -> list[dict[str, object]]:
  """Draws one panel per metric (and task), one line per run and split, into a PNG.

  Args:
    curves_by_run: legend name -> `read_scalars` output, in legend (and colour) order.
    out_path: the PNG to write; its folder must exist.
    metrics: a regular expression; only tags (`split/metric`) where `re.search` finds it are drawn.
      None: everything.
    tasks: legend name -> the run's task; runs of different tasks get separate panels per metric.

  Returns:
    The panels as drawn, in order: [{'title': str, 'lines': [(run, split, colour, line style)]}].

  Raises:
    NoCurvesError: no tag matches `metrics`.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  pattern = re.compile(metrics) if metrics else None
  tasks = tasks or {}
  several_tasks = len({tasks.get(run, '') for run in curves_by_run}) > 1
  panels: dict[str, list[tuple[int, str, str, Curve]]] = collections.defaultdict(list)
  available = set()
  for run_index, (run, curves) in enumerate(curves_by_run.items()):
    for tag, curve in curves.items():
      split, metric = split_tag(tag)
      available.add(tag)
      if pattern is None or pattern.search(tag):
        title = f'{metric} ({tasks.get(run) or "task unknown"})' if several_tasks else metric
        panels[title].append((run_index, run, split, curve))
  if not panels:
    raise NoCurvesError(f'No tag matches --metrics={metrics!r}; the runs logged {sorted(available)}.')

  columns = min(len(panels), MAX_COLUMNS)
  rows = -(-len(panels) // columns)
  figure, axes = plt.subplots(
      rows, columns, squeeze=False, dpi=100, figsize=(PANEL_SIZE_IN[0] * columns, PANEL_SIZE_IN[1] * rows + 0.5)
  )
  drawn = []
  for axis, title in zip(axes.flat, sorted(panels)):
    lines = []
    for run_index, run, split, curve in sorted(panels[title], key=lambda line: (_split_order(line[2]), line[0])):
      style, marker = SPLIT_STYLES.get(split, ('-', None))
      color = RUN_COLORS[run_index % len(RUN_COLORS)]
      # NaN / Inf points (a diverged step) leave a gap instead of stretching the axis.
      values = np.where(np.isfinite(curve.values), curve.values, np.nan)
      axis.plot(
          curve.steps,
          values,
          linestyle=style,
          marker=marker,
          markersize=3,
          color=color,
          linewidth=1.5,
          label=f'{run} {split}'.strip(),
      )
      lines.append((run, split, color, style))
    axis.set_title(title, fontsize=10)
    axis.set_xlabel('step', fontsize=8)
    axis.tick_params(labelsize=8)
    axis.grid(True, color='#e4e4e4')
    drawn.append({'title': title, 'lines': lines})
  for axis in list(axes.flat)[len(panels) :]:
    axis.set_visible(False)
  # One legend for the figure: a colour per run, a style per split drawn.
  from matplotlib.lines import Line2D  # pylint: disable=g-import-not-at-top

  handles = [Line2D([], [], color=RUN_COLORS[i % len(RUN_COLORS)], label=run) for i, run in enumerate(curves_by_run)]
  splits = sorted({line[1] for panel in drawn for line in panel['lines']} - {''}, key=_split_order)
  if len({SPLIT_STYLES.get(split, ('-', None)) for split in splits}) > 1:
    handles += [
        Line2D(
            [],
            [],
            color='#6e6e6e',
            linestyle=SPLIT_STYLES[split][0],
            marker=SPLIT_STYLES[split][1],
            markersize=3,
            label=split,
        )
        for split in splits
    ]
  figure.legend(handles=handles, loc='upper center', ncols=min(len(handles), 6), fontsize=8, frameon=False)
  figure.tight_layout(rect=(0, 0, 1, 1 - 0.45 / figure.get_figheight()))
  with epath.Path(out_path).open('wb') as f:  # any file system
    figure.savefig(f, format='png')
  plt.close(figure)
  return drawn


def _split_order(split: str) -> tuple[int, str]:
  return (SPLITS.index(split) if split in SPLITS else len(SPLITS), split)


def define_flags() -> None:
  """Defines the CLI flags; called by the entry point only, so importing this module defines none."""
  flags.DEFINE_string('out', 'curves.png', 'PNG file to write.')
  flags.DEFINE_string(
      'metrics',
      DEFAULT_METRICS,
      'Regular expression; draw only tags (split/metric) it '
      "matches, for example 'loss' or '^eval/' ('.' draws everything); default: the loss "
      'and accuracy panels.',
  )


def main(argv: Sequence[str]) -> None:
  workdirs = argv[1:]
  if not workdirs:
    raise cli.UserError(
        'Pass one or more workdirs: python -m imr_jax.learning_curves WORKDIR [WORKDIR ...] --out=curves.png'
    )
  names = run_names(workdirs)
  if len(set(names)) < len(names):
    raise cli.UserError(f'A workdir is given twice in {workdirs}; pass each run once.')
  if FLAGS.metrics:
    try:
      re.compile(FLAGS.metrics)
    except re.error as error:
      raise cli.UserError(f'--metrics={FLAGS.metrics!r} is not a regular expression: {error}.') from None
  cli.import_tensorflow()  # TensorBoard's event reader loads it: without its start-up lines
  try:
    curves_by_run = {name: read_scalars(workdir) for name, workdir in zip(names, workdirs)}
    panels = plot_curves(
        curves_by_run,
        FLAGS.out,
        FLAGS.metrics,
        tasks={name: task_of(workdir) for name, workdir in zip(names, workdirs)},
    )
  except NoCurvesError as error:
    raise SystemExit(f'error: {error}') from None
  print(
      f'Wrote {FLAGS.out} ({len(panels)} panels: {", ".join(panel["title"] for panel in panels)}): '
      f'{", ".join(curves_by_run)}.'
  )


if __name__ == '__main__':
  define_flags()
  cli.run(main)
