r"""The paper's claims in kind: every pretext task, baseline and connection ablation, several seeds.

  python -m benchmarks.study --workdir=runs/study                     # 3 seeds, on a 2-core CPU
  python -m benchmarks.study --workdir=runs/study --seeds=0,1,2,3,4 --scale=4
  python -m benchmarks.study --workdir=runs/mine --pretrain_data=data/unlabelled \
      --labelled_data=data/mine                                       # any converted data sets

Table 1 (pretext tasks and baselines): every pretext task pretrains IMRNet on the pretraining set
(whose labels it never reads), then the network is fine-tuned on the labelled set with the budget and
hyperparameters of the scratch row; the CoViAR baseline (three separate per-frame streams) trains from
scratch. Columns: fine-tuned video accuracy on the test split, and the frozen-feature evaluations of
the network before fine-tuning (imr_jax.frozen_eval: linear-probe accuracy, retrieval R@1 and R@5;
the scratch and CoViAR rows read a random initialisation, the reference). Table 2 (connection
ablations): IMRNet trained from scratch with each connection switch. Every row runs with each seed
(parameter init, data order, and for pretrained rows the pretraining too); tables give the mean and
the standard error over seeds.

Honesty rules, built in: the one hyperparameter tuned (the fine-tuning learning rate) is chosen on the
labelled set's validation split (carved from its training videos by data_prep.convert
--validation_fraction), by the scratch row, before any test number exists; the probe's L2 strength
is chosen on a validation split carved from the training features. The test split is read only for
the final numbers. Pretraining hyperparameters are the demo's, not tuned.

Steps, each skipped when its output exists (a rerun resumes, also after kill -9: every run resumes
from its last checkpoint):
  1. data: the synthetic pretraining set (unlabelled use) and labelled set (train / validation /
     test), generated and converted with data_prep (unless --pretrain_data / --labelled_data);
  2. tuning: scratch runs on train, scored on validation, one per candidate learning rate;
  3. pretraining runs, fine-tuning runs, frozen features and their evaluations;
  4. WORKDIR/results.json, results.md (both tables), table1.png, table2.png, curves.png.

`--diagnose` runs, instead of the tables, the checks docs/results.md uses to explain them (the tuning
runs first, if not done): each stream alone from scratch (can the label be read from one stream?), and
bidirectional vs no connection vs unidirectional with LONG_BUDGET x the fine-tuning epochs, first two
seeds (is the ablations' lead a matter of budget?), and the scratch and CoViAR rows at every candidate
learning rate, read on test (how much of a row's lead is the one learning rate it was given? reported,
never used to choose), writing WORKDIR/diagnostics.md and diagnostics.json.
"""

import dataclasses
import glob
import json
import os
import platform
import re
import subprocess
import sys
import time
from typing import Any, Sequence

from absl import flags, logging
import numpy as np

from imr_jax import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The paper's numbers (UCF101 / HMDB51 top-1, Kinetics-400 pretraining, 3D-ResNet-18; METHOD.md).
PAPER = {
    'scratch': '74.1 / 43.7',
    'pmsp': '76.0 / 44.9',
    'ctp': '76.7 / 44.8',
    'ctp_binary': '-',
    'pmsp_ctp': '76.8 / 45.0',
    'aot': '74.6 / 44.0',
    'rotation': '75.1 / 44.3',
    'infonce': '73.9 / 43.7',
    'coviar': '-',
    'no_connection': '52.7 / 34.6',
    'unidirectional': '69.7 / 40.8',
    'no_conv': '71.7 / 42.6',
    'no_attention': '73.2 / 43.5',
    'bidirectional': '74.1 / 43.7',
}


@dataclasses.dataclass(frozen=True)
class Row:
  name: str  # also the runs' directory names
  title: str
  pretext: str | None = None  # a configs/ module (and variant) to pretrain with, or None
  variant: str = ''  # extra variants of configs/supervised.py (ablations, coviar)


TABLE1 = (
    Row('scratch', 'Scratch'),
    Row('pmsp', 'PMSP', pretext='pmsp'),
    Row('ctp', 'CTP', pretext='ctp'),
    Row('ctp_binary', 'CTP (Binary)', pretext='ctp:binary'),
    Row('pmsp_ctp', 'PMSP + CTP', pretext='pmsp_ctp'),
    Row('aot', 'AOT', pretext='aot'),
    Row('rotation', 'Rotation', pretext='rotation'),
    Row('infonce', 'InfoNCE', pretext='infonce'),
    Row('coviar', 'CoViAR (from scratch)', variant='coviar'),
)
TABLE2 = (
    Row('no_connection', 'No connection', variant='no_connection'),
    Row('unidirectional', 'Unidirectional (P -> I)', variant='unidirectional'),
    Row('no_conv', 'No conv', variant='no_conv'),
    Row('no_attention', 'No attention', variant='no_attention'),
    Row('bidirectional', 'Bidirectional (full)'),  # the scratch row of Table 1
)

# --diagnose: one stream alone (config.model.streams), the long-budget comparison, and the
# learning-rate sensitivity of two rows.
SINGLE_STREAMS = (
    ('i_only', 'I-frames only', 'i'),
    ('m_only', 'Motion vectors only', 'm'),
    ('r_only', 'Residuals only', 'r'),
)
LONG_BUDGET = 3  # x finetune_epochs
LONG_BUDGET_SEEDS = 2  # the first seeds only: these runs cost LONG_BUDGET times as much
LONG_BUDGET_ROWS = (
    ('scratch', 'Bidirectional (full)', ''),
    ('no_connection', 'No connection', 'no_connection'),
    ('unidirectional', 'Unidirectional (P -> I)', 'unidirectional'),
)
# Learning-rate sensitivity, read on test and reported, never used to choose: rows run at every
# candidate rate (the chosen one's runs are the study's own).
LEARNING_RATE_ROWS = (
    ('scratch', 'Bidirectional (full)', ''),
    ('coviar', 'CoViAR (from scratch)', 'coviar'),
)

# The study's scale at --scale=1 (sized for a 2-core CPU; see docs/results.md for why these values).
PRETRAIN_VIDEOS_PER_CLASS = 32
LABELLED_TRAIN_PER_CLASS = 20  # before 20% of each class moves to the validation split
LABELLED_TEST_PER_CLASS = 15
VALIDATION_FRACTION = 0.2
FRAMES_PER_VIDEO = 72  # 6 GOPs: clips of 4 GOPs start at 3 places
LEARNING_RATES = (1e-3, 3e-3, 1e-2)  # fine-tuning / scratch AdamW peak rates tried on validation


def study_config(config, *, data_dir: str, epochs: float, seed: int):
  """The study's overrides of a ':demo' config.

  The demo's network and clips (tiny 3D-ResNet streams of widths 8..64; 4 GOPs of 1 I-frame and 1
  P-frame, 32 px crops; 3 clips per video at evaluation): measured here, 2 P-frames per GOP or 48 px
  crops cost 2-4x the time per step, which the 2-hour budget cannot pay for 60 runs.
  """
  config.dataset.data_dir = data_dir
  config.num_epochs = float(epochs)
  config.seed = seed
  config.eval_every_steps = 1_000_000  # only at the end
  config.checkpoint_every_steps = 100
  config.log_every_steps = 10
  return config


class Study:
  """Runs (or resumes) every run of the study and collects their metrics."""

  def __init__(
      self,
      workdir: str,
      seeds: Sequence[int],
      scale: float,
      pretrain_epochs: float,
      finetune_epochs: float,
      pretrain_data: str | None,
      labelled_data: str | None,
  ):
    self.workdir = os.path.abspath(workdir)
    self.seeds, self.scale = tuple(seeds), scale
    self.pretrain_epochs, self.finetune_epochs = pretrain_epochs, finetune_epochs
    self.pretrain_data, self.labelled_data = pretrain_data, labelled_data
    self.minutes: dict[str, float] = {}
    self.started = time.time()
    self.done_runs, self.total_runs = 0, 0

  # --- data ---------------------------------------------------------------------------------------

  def _convert(self, name: str, train_per_class: int, test_per_class: int, seed: int, validation: bool) -> str:
    output_dir = os.path.join(self.workdir, 'data', name)
    if os.path.exists(os.path.join(output_dir, 'manifest.json')):
      return output_dir
    command = [
        sys.executable,
        '-m',
        'data_prep.convert',
        '--dataset=synthetic',
        f'--source={os.path.join(self.workdir, "videos", name)}',
        f'--output_dir={output_dir}',
        f'--synthetic_train_per_class={train_per_class}',
        f'--synthetic_test_per_class={test_per_class}',
        f'--synthetic_seed={seed}',
        f'--synthetic_num_frames={FRAMES_PER_VIDEO}',
        f'--workers={max(1, os.cpu_count() or 1)}',
    ]
    if validation:
      command.append(f'--validation_fraction={VALIDATION_FRACTION}')
    print(f'== Generating and converting the {name} set', flush=True)
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
      raise RuntimeError(f'Converting the {name} set failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}')
    return output_dir

  def prepare_data(self) -> None:
    begin = time.time()
    if self.pretrain_data is None:
      self.pretrain_data = self._convert(
          'pretrain', round(PRETRAIN_VIDEOS_PER_CLASS * self.scale), 2, seed=1, validation=False
      )
    if self.labelled_data is None:
      self.labelled_data = self._convert(
          'labelled',
          round(LABELLED_TRAIN_PER_CLASS * self.scale),
          round(LABELLED_TEST_PER_CLASS * self.scale),
          seed=0,
          validation=True,
      )
    self.minutes['data'] = (time.time() - begin) / 60
    from imr_jax.data import pipeline  # pylint: disable=g-import-not-at-top

    self.labelled_info = pipeline.dataset_info(self.labelled_data)
    self.pretrain_splits = pipeline.dataset_info(self.pretrain_data)['splits']
    if 'train' not in self.pretrain_splits:
      raise ValueError(f'--pretrain_data={self.pretrain_data!r} has no train split.')
    for split in ('train', 'test'):
      if split not in self.labelled_info['splits']:
        raise ValueError(f'--labelled_data={self.labelled_data!r} has no {split!r} split.')

  # --- runs ---------------------------------------------------------------------------------------

  def _run(self, key: str, config) -> dict[str, Any]:
    """train_and_evaluate in WORKDIR/runs/KEY unless its final_metrics.json exists."""
    from imr_jax import train  # pylint: disable=g-import-not-at-top

    workdir = os.path.join(self.workdir, 'runs', key)
    path = os.path.join(workdir, train.FINAL_METRICS_FILE)
    self.done_runs += 1
    if os.path.exists(path):
      with open(path) as f:
        return json.load(f)
    begin = time.time()
    self._progress(f'{key}')
    final = train.train_and_evaluate(config, workdir)
    self.minutes[key] = (time.time() - begin) / 60
    return final

  def _progress(self, what: str) -> None:
    elapsed = (time.time() - self.started) / 60
    print(f'\n== [{self.done_runs}/{self.total_runs}] {what} ({elapsed:.1f} min so far)', flush=True)

  def _classification_config(
      self, variant: str, *, finetune: bool, learning_rate: float, seed: int, eval_split: str = 'test'
  ):
    from configs import finetune as finetune_config, supervised  # pylint: disable=g-import-not-at-top

    module = finetune_config if finetune else supervised
    config = module.get_config(':'.join(filter(None, ['synthetic', 'demo', variant])))
    config = study_config(config, data_dir=self.labelled_data, epochs=self.finetune_epochs, seed=seed)
    config.optimizer.learning_rate = learning_rate
    config.dataset.eval_split = eval_split
    return config

  def tune(self) -> float:
    """The fine-tuning learning rate: the scratch row's best validation video accuracy (seed 0)."""
    if 'validation' not in self.labelled_info['splits']:
      print(
          f'{self.labelled_data} has no validation split: keeping learning rate {LEARNING_RATES[1]} '
          '(convert with --validation_fraction to tune it).'
      )
      return LEARNING_RATES[1]
    scores = {}
    for rate in LEARNING_RATES:
      config = self._classification_config(
          '', finetune=False, learning_rate=rate, seed=self.seeds[0], eval_split='validation'
      )
      scores[rate] = self._run(f'tuning/scratch_lr{rate:g}', config)['video_accuracy']
    best = max(LEARNING_RATES, key=lambda rate: (scores[rate], -rate))
    self.tuning = {'validation_video_accuracy': {f'{r:g}': s for r, s in scores.items()}, 'learning_rate': best}
    print(f'Learning rate chosen on validation: {best:g} ({scores})', flush=True)
    return best

  def pretrain(self, row: Row, seed: int) -> tuple[str, dict[str, Any]]:
    """(the pretraining run's workdir, its final metrics: the pretext task's eval accuracy)."""
    import importlib  # pylint: disable=g-import-not-at-top

    module, _, variant = row.pretext.partition(':')
    config = importlib.import_module(f'configs.{module}').get_config(':'.join(filter(None, [variant, 'demo'])))
    config = study_config(config, data_dir=self.pretrain_data, epochs=self.pretrain_epochs, seed=seed)
    # The pretext task's own evaluation reads a held-out split of the pretraining set if it has one.
    config.dataset.eval_split = next(
        split for split in ('test', 'validation', 'train') if split in self.pretrain_splits
    )
    final = self._run(f'pretrain/{row.name}_seed{seed}', config)
    return os.path.join(self.workdir, 'runs', 'pretrain', f'{row.name}_seed{seed}'), final

  def frozen(self, row: Row, seed: int, workdir: str | None, config) -> dict[str, Any]:
    """Frozen-feature metrics of `workdir`'s backbone (None: a random initialisation)."""
    from imr_jax import features, frozen_eval  # pylint: disable=g-import-not-at-top

    out_dir = os.path.join(self.workdir, 'frozen', f'{row.name}_seed{seed}')
    path = os.path.join(out_dir, frozen_eval.METRICS_FILE)
    if os.path.exists(path):
      with open(path) as f:
        return json.load(f)
    self._progress(f'frozen features: {row.name}, seed {seed}')
    config = config.copy_and_resolve_references()
    with config.unlocked():
      config.dataset.data_dir = self.labelled_data
    extracted = {split: features.extract(config, split, workdir) for split in ('train', 'test')}
    for split, values in extracted.items():
      features.save(os.path.join(out_dir, f'features_{split}.npz'), values)
    results = frozen_eval.evaluate(extracted['train'], extracted['test'], seed=seed)
    with open(path, 'w') as f:
      json.dump(results, f, indent=2, sort_keys=True)
    return results

  def run_all(self) -> dict[str, Any]:
    pretrained_rows = [row for row in TABLE1 if row.pretext]
    per_seed = len(TABLE1) + len(pretrained_rows) + len(TABLE2) - 1
    self.total_runs = len(LEARNING_RATES) + per_seed * len(self.seeds)
    learning_rate = self.tune()
    results: dict[str, dict[int, dict[str, Any]]] = {}
    for seed in self.seeds:
      for row in TABLE1 + TABLE2:
        if row.name == 'bidirectional':
          results[row.name] = results['scratch']
          continue
        pretrained, entry = None, {}
        if row.pretext:
          pretrained, pretext_final = self.pretrain(row, seed)
          entry['pretext_accuracy'] = pretext_accuracy(pretext_final)
        config = self._classification_config(
            row.variant, finetune=pretrained is not None, learning_rate=learning_rate, seed=seed
        )
        if pretrained:
          config.init_from = pretrained
        final = self._run(f'finetune/{row.name}_seed{seed}', config)
        entry.update(video_accuracy=final['video_accuracy'], clip_accuracy=final['clip_accuracy'])
        if row in TABLE1:
          frozen = self.frozen(row, seed, pretrained, config)
          entry.update(
              probe_accuracy=frozen['linear_probe']['accuracy'],
              probe_C=frozen['linear_probe']['C'],
              **frozen['retrieval'],
          )
        results.setdefault(row.name, {})[seed] = entry
    return {'rows': results, 'learning_rate': learning_rate, 'tuning': getattr(self, 'tuning', None)}

  def diagnose(self) -> dict[str, Any]:
    """The checks behind docs/results.md's discussion; video accuracies per row and seed."""
    learning_rate = self.tune()
    long_seeds = self.seeds[:LONG_BUDGET_SEEDS]
    self.total_runs = (
        len(LEARNING_RATES)
        + len(self.seeds) * (len(SINGLE_STREAMS) + len(LEARNING_RATE_ROWS) * len(LEARNING_RATES))
        + len(long_seeds) * len(LONG_BUDGET_ROWS)
    )
    rows: dict[str, dict[int, dict[str, Any]]] = {}
    for seed in self.seeds:
      for name, _, streams in SINGLE_STREAMS:
        config = self._classification_config('', finetune=False, learning_rate=learning_rate, seed=seed)
        config.model.streams = streams
        final = self._run(f'diagnostics/{name}_seed{seed}', config)
        rows.setdefault(name, {})[seed] = {'video_accuracy': final['video_accuracy']}
      for name, _, variant in LONG_BUDGET_ROWS if seed in long_seeds else ():
        config = self._classification_config(variant, finetune=False, learning_rate=learning_rate, seed=seed)
        config.num_epochs = self.finetune_epochs * LONG_BUDGET
        final = self._run(f'diagnostics/{name}_x{LONG_BUDGET}_seed{seed}', config)
        rows.setdefault(f'{name}_x{LONG_BUDGET}', {})[seed] = {'video_accuracy': final['video_accuracy']}
    for seed in self.seeds:
      for name, _, variant in LEARNING_RATE_ROWS:
        for rate in LEARNING_RATES:
          config = self._classification_config(variant, finetune=False, learning_rate=rate, seed=seed)
          # At the chosen rate this is the study's own run (the same config and key): not run twice.
          key = f'finetune/{name}_seed{seed}' if rate == learning_rate else f'diagnostics/{name}_lr{rate:g}_seed{seed}'
          final = self._run(key, config)
          rows.setdefault(f'{name}_lr{rate:g}', {})[seed] = {'video_accuracy': final['video_accuracy']}
    return {'rows': rows, 'learning_rate': learning_rate}


def diagnostics_markdown(rows: dict[str, dict[int, dict[str, Any]]], finetune_epochs: float) -> str:
  lines = ['| run (from scratch) | video accuracy, % (mean ± SE over seeds) | per seed |', '| --- | --- | --- |']
  titles = {name: f'{title}, {finetune_epochs:g} epochs' for name, title, _ in SINGLE_STREAMS}
  titles.update(
      {
          f'{name}_x{LONG_BUDGET}': f'{title}, {LONG_BUDGET * finetune_epochs:g} epochs'
          for name, title, _ in LONG_BUDGET_ROWS
      }
  )
  titles.update(
      {
          f'{name}_lr{rate:g}': f'{title}, {finetune_epochs:g} epochs, learning rate {rate:g} (test)'
          for name, title, _ in LEARNING_RATE_ROWS
          for rate in LEARNING_RATES
      }
  )
  for name, title in titles.items():
    if name not in rows:
      continue
    values = [rows[name][seed]['video_accuracy'] for seed in sorted(rows[name])]
    mean, error = mean_and_error(values)
    lines.append(f'| {title} | {100 * mean:.1f} ± {100 * error:.1f} | {" / ".join(f"{100 * v:.1f}" for v in values)} |')
  return '\n'.join(lines) + '\n'


def pretext_accuracy(final: dict[str, Any]) -> float:
  """A pretext run's own eval accuracy; PMSP + CTP: the mean of its two tasks' accuracies."""
  if 'accuracy' in final:
    return final['accuracy']
  parts = [value for name, value in final.items() if name.count('/') == 1 and name.endswith('/accuracy')]
  if not parts:
    raise ValueError(f'No accuracy among the pretext metrics {sorted(final)}.')
  return float(np.mean(parts))


# --- tables and pictures ----------------------------------------------------------------------------


def mean_and_error(values: Sequence[float]) -> tuple[float, float]:
  """Mean and standard error over seeds (0 for one seed)."""
  values = np.asarray(values, np.float64)
  error = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
  return float(values.mean()), float(error)


def summarize(rows: dict[str, dict[int, dict[str, Any]]]) -> dict[str, dict[str, list[float]]]:
  """row -> metric -> [mean, standard error over seeds].

  Besides each row's own metrics, 'gain': the row's video accuracy minus the scratch row's (Table 1)
  or the bidirectional row's (Table 2) with the same seed, whose data order they share: a paired
  difference, whose standard error is smaller than the two rows' errors combined.
  """
  summary = {}
  for name, by_seed in rows.items():
    metrics = sorted(set.intersection(*(set(v) for v in by_seed.values())))
    summary[name] = {m: list(mean_and_error([by_seed[s][m] for s in sorted(by_seed)])) for m in metrics}
  for table, reference in ((TABLE1, 'scratch'), (TABLE2, 'bidirectional')):
    for row in table:
      if row.name in rows and reference in rows and row.name != reference:
        seeds = sorted(set(rows[row.name]) & set(rows[reference]))
        summary[row.name]['gain'] = list(
            mean_and_error([rows[row.name][s]['video_accuracy'] - rows[reference][s]['video_accuracy'] for s in seeds])
        )
  return summary


def _cell(summary_row: dict[str, list[float]], metric: str) -> str:
  if metric not in summary_row:
    return '-'
  mean, error = summary_row[metric]
  if metric == 'gain':
    return f'{100 * mean:+.1f} ± {100 * error:.1f}'
  return f'{100 * mean:.1f} ± {100 * error:.1f}'


def markdown_tables(summary: dict[str, Any], num_seeds: int) -> str:
  lines = [
      f'Table 1: pretext tasks and baselines (video accuracy / R@k in %, mean ± standard error over '
      f'{num_seeds} seeds; frozen columns: the network before fine-tuning).',
      '',
      '| row | fine-tuned | vs scratch, paired by seed | linear probe | R@1 | R@5 | '
      "pretext task's own accuracy | paper (UCF101 / HMDB51) |",
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ]
  for row in TABLE1:
    s = summary[row.name]
    lines.append(
        f'| {row.title} | {_cell(s, "video_accuracy")} | {_cell(s, "gain")} | '
        f'{_cell(s, "probe_accuracy")} | {_cell(s, "R@1")} | {_cell(s, "R@5")} | '
        f'{_cell(s, "pretext_accuracy")} | {PAPER[row.name]} |'
    )
  lines += [
      '',
      f'Table 2: connection ablations, from scratch (video accuracy in %, mean ± standard '
      f'error over {num_seeds} seeds).',
      '',
      '| connections | from scratch | vs bidirectional, paired by seed | paper (UCF101 / HMDB51) |',
      '| --- | --- | --- | --- |',
  ]
  for row in TABLE2:
    s = summary[row.name]
    lines.append(f'| {row.title} | {_cell(s, "video_accuracy")} | {_cell(s, "gain")} | {PAPER[row.name]} |')
  return '\n'.join(lines) + '\n'


def bar_chart(
    summary: dict[str, Any],
    table: Sequence[Row],
    metrics: Sequence[tuple[str, str]],
    title: str,
    path: str,
    chance: float,
) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  figure, axis = plt.subplots(figsize=(1.1 * len(table) + 2.5, 3.6), dpi=120)
  width = 0.8 / len(metrics)
  positions = np.arange(len(table))
  for index, (metric, label) in enumerate(metrics):
    values = [summary[row.name].get(metric, [np.nan, 0]) for row in table]
    axis.bar(
        positions + (index - (len(metrics) - 1) / 2) * width,
        [100 * v[0] for v in values],
        width,
        yerr=[100 * v[1] for v in values],
        capsize=3,
        label=label,
    )
  axis.axhline(100 * chance, color='grey', linestyle=':', linewidth=1, label='chance')
  axis.set_xticks(positions, [row.title for row in table], rotation=20, ha='right', fontsize=8)
  axis.set_ylabel('accuracy (%)')
  axis.set_title(title, fontsize=10)
  axis.legend(fontsize=8, ncols=len(metrics) + 1, loc='upper left')
  axis.set_ylim(0, 105)
  figure.tight_layout()
  figure.savefig(path)
  plt.close(figure)


def machine() -> str:
  model = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      model = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
  except (OSError, StopIteration):
    pass
  return f'{model}, {os.cpu_count()} cores visible'


def main(argv):
  if len(argv) > 1:
    raise cli.UserError(f'Unexpected arguments {argv[1:]}.')
  flags_ = flags.FLAGS
  import jax  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  tf.config.set_visible_devices([], 'GPU')
  workdir = os.path.abspath(flags_.workdir)
  os.makedirs(workdir, exist_ok=True)
  # Runs of one config differ in seed only: they compile the same programs once.
  jax.config.update('jax_compilation_cache_dir', os.path.join(workdir, 'jax_cache'))
  from imr_jax import checkpoints  # pylint: disable=g-import-not-at-top

  checkpoints.quiet_orbax_logging()
  logging.set_verbosity(logging.WARNING)

  study = Study(
      workdir,
      [int(s) for s in flags_.seeds],
      flags_.scale,
      flags_.pretrain_epochs,
      flags_.finetune_epochs,
      flags_.pretrain_data,
      flags_.labelled_data,
  )
  study.prepare_data()
  if flags_.diagnose:
    diagnosed = study.diagnose()
    summary = summarize(diagnosed['rows'])
    table = diagnostics_markdown(diagnosed['rows'], study.finetune_epochs)
    with open(os.path.join(workdir, 'diagnostics.json'), 'w') as f:
      json.dump({**diagnosed, 'summary': summary, 'run_minutes': run_minutes(workdir)}, f, indent=2, sort_keys=True)
    with open(os.path.join(workdir, 'diagnostics.md'), 'w') as f:
      f.write(
          f'# Study diagnostics\n\n`python -m benchmarks.study {" ".join(argv_flags())}` on {machine()}.\n\n' + table
      )
    print('\n' + table)
    return
  collected = study.run_all()
  summary = summarize(collected['rows'])
  info = study.labelled_info
  chance = 1.0 / len(info['label_names'])
  tables = markdown_tables(summary, len(study.seeds))
  minutes = (time.time() - study.started) / 60
  from data_prep import verify  # pylint: disable=g-import-not-at-top

  fingerprints = {
      'pretrain': verify.fingerprint(study.pretrain_data),
      'labelled': verify.fingerprint(study.labelled_data),
  }
  results = {
      **collected,
      'summary': summary,
      'seeds': list(study.seeds),
      'scale': study.scale,
      'data_fingerprints': fingerprints,
      'pretrain_epochs': study.pretrain_epochs,
      'finetune_epochs': study.finetune_epochs,
      'pretrain_data': study.pretrain_data,
      'labelled_data': study.labelled_data,
      'labelled_splits': info['splits'],
      'chance': chance,
      'machine': machine(),
      'minutes_this_invocation': minutes,
      'run_minutes': run_minutes(workdir),
  }
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump(results, f, indent=2, sort_keys=True, default=str)
  command = 'python -m benchmarks.study ' + ' '.join(argv_flags())
  with open(os.path.join(workdir, 'results.md'), 'w') as f:
    f.write(
        f'# Study results\n\n`{command}` on {machine()}; this invocation took {minutes:.1f} min.\n'
        f'Labelled set: {info["splits"]} videos, {len(info["label_names"])} classes (chance '
        f'{100 * chance:.1f}%). Fine-tuning learning rate {collected["learning_rate"]:g}, chosen on '
        f'validation. Data fingerprints (the same on any machine): {fingerprints}.\n\n' + tables
    )
  bar_chart(
      summary,
      TABLE1,
      (('video_accuracy', 'fine-tuned'), ('probe_accuracy', 'linear probe'), ('R@1', 'retrieval R@1')),
      'Table 1: pretext tasks and baselines',
      os.path.join(workdir, 'table1.png'),
      chance,
  )
  bar_chart(
      summary,
      TABLE2,
      (('video_accuracy', 'from scratch'),),
      'Table 2: connection ablations',
      os.path.join(workdir, 'table2.png'),
      chance,
  )
  draw_curves(workdir, study.seeds[0])
  print(
      '\n' + tables + f'\nTotal {minutes:.1f} min. Results: {workdir}/results.md, results.json, '
      'table1.png, table2.png, curves.png'
  )


def run_minutes(workdir: str) -> dict[str, float]:
  """Wall minutes of every finished run, also of runs an earlier invocation did.

  A run starts when its first event file is written (the file is named by that Unix time) and ends with
  its final_metrics.json; a run resumed after a kill counts its downtime too.
  """
  minutes = {}
  for path in sorted(glob.glob(os.path.join(workdir, 'runs', '*', '*', 'final_metrics.json'))):
    run_dir = os.path.dirname(path)
    starts = [
        int(m.group(1)) for name in os.listdir(run_dir) if (m := re.match(r'events\.out\.tfevents\.(\d+)\.', name))
    ]
    if starts:
      minutes[os.path.relpath(run_dir, os.path.join(workdir, 'runs'))] = (os.path.getmtime(path) - min(starts)) / 60
  return minutes


def draw_curves(workdir: str, seed: int) -> None:
  """Fine-tuning curves of a few rows (seed `seed`) with imr_jax.learning_curves."""
  from imr_jax import learning_curves  # pylint: disable=g-import-not-at-top

  runs = {
      name: os.path.join(workdir, 'runs', 'finetune', f'{name}_seed{seed}')
      for name in ('scratch', 'pmsp', 'ctp', 'no_connection')
  }
  curves = {name: learning_curves.read_scalars(path) for name, path in runs.items() if os.path.isdir(path)}
  learning_curves.plot_curves(curves, os.path.join(workdir, 'curves.png'), metrics='^train/(loss|accuracy)$')


def argv_flags() -> list[str]:
  flags_ = flags.FLAGS
  names = (
      'workdir',
      'seeds',
      'scale',
      'pretrain_epochs',
      'finetune_epochs',
      'pretrain_data',
      'labelled_data',
      'diagnose',
  )
  return [
      f'--{name}={",".join(map(str, value)) if isinstance(value, list) else value}'
      for name in names
      if (value := getattr(flags_, name)) is not None and flags_[name].present
  ]


def define_flags() -> None:
  flags.DEFINE_string('workdir', 'runs/study', 'Where data, runs and results go; a rerun resumes.')
  cli.define_seeds((0, 1, 2), 'Seeds: every row runs once per seed.')
  flags.DEFINE_float('scale', 1.0, "Multiplies the synthetic sets' sizes (and so the training steps).")
  flags.DEFINE_float('pretrain_epochs', 5.0, 'Epochs of every pretraining run over the pretraining set.')
  flags.DEFINE_float('finetune_epochs', 8.0, 'Epochs of every fine-tuning / scratch run.')
  flags.DEFINE_string(
      'pretrain_data',
      None,
      'A converted data set to pretrain on instead of the synthetic one (its labels are never read).',
  )
  flags.DEFINE_bool(
      'diagnose',
      False,
      'Run the diagnostic checks (single streams, a longer budget) instead of the tables; see docs/results.md.',
  )
  flags.DEFINE_string(
      'labelled_data',
      None,
      'A converted labelled data set (train, test and ideally validation splits) instead of the synthetic one.',
  )


if __name__ == '__main__':
  define_flags()
  cli.run(main)
