"""PMSP: pyramidal motion statistics prediction (METHOD.md sections 1 and 3).

A pyramid level r = ([s x s], t) cuts the clip's motion energy into an s x s spatial grid and t
temporal bins; its label is, per temporal bin, the cell with the most motion energy. Cells are
numbered in raster order (row-major, top-left first), 0-based here; the paper numbers them 1...

Boundaries. n pixels (or GOPs) are split into k contiguous segments with segment i covering
[floor(i * n / k), floor((i + 1) * n / k)). That is the even split when k divides n (112 pixels into
4 cells of 28); otherwise segment sizes differ by at most one (7 pixels into 2 cells: [0, 3) and
[3, 7); 5 GOPs into 2 bins: {0, 1} and {2, 3, 4}). Ties go to the first cell in raster order. A horizontal flip of
the energy maps moves the label of cell (r, c) to (r, s - 1 - c) whenever s divides the crop size
and the bin has no tie (an odd split cannot be mirror-symmetric).

Bins with no motion at all have no answer: they are left out of the loss and the accuracy.
"""

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from imr_jax.tasks import base

LABEL_MODES = ('argmax', 'distribution')


@dataclasses.dataclass(frozen=True)
class Level:
  """One pyramid level ([grid_size x grid_size], temporal_bins)."""

  grid_size: int
  temporal_bins: int

  @property
  def name(self) -> str:
    """The key of the level's logits in PMSPHead's output, e.g. '2x2_5'."""
    return f'{self.grid_size}x{self.grid_size}_{self.temporal_bins}'

  @property
  def num_cells(self) -> int:
    return self.grid_size * self.grid_size


def pyramid(grid_sizes: Sequence[int], temporal_bins: Sequence[int], num_gops: int) -> tuple[Level, ...]:
  """The levels grid_sizes x temporal_bins, validated.

  A 1 x 1 grid has one cell, so its label is always that cell, at any number of temporal bins: its
  loss is 0 and its accuracy 1 whatever the network does. METHOD.md drops only ([1x1], 1); ([1x1], t)
  is just as constant, so grid size 1 is refused rather than silently trained on.

  Raises:
    base.ConfigError: a grid size below 2, a bin count outside [1, num_gops], or an empty pyramid.
  """
  grid_sizes, temporal_bins = tuple(grid_sizes), tuple(temporal_bins)
  if not grid_sizes or not temporal_bins:
    raise base.ConfigError(
        'config.pmsp.grid_sizes and config.pmsp.temporal_bins must be non-empty, '
        f'got {grid_sizes} and {temporal_bins}.'
    )
  for s in grid_sizes:
    if s < 2:
      raise base.ConfigError(
          f'config.pmsp.grid_sizes = {grid_sizes} holds {s}: a {s}x{s} grid has a single cell, so its '
          'PMSP label is constant and teaches nothing. Use grid sizes >= 2, e.g. (2, 4).'
      )
  for t in temporal_bins:
    if not 1 <= t <= num_gops:
      raise base.ConfigError(
          f'config.pmsp.temporal_bins = {temporal_bins} holds {t}, but a clip has config.data.num_gops '
          f'= {num_gops} GOPs and every bin needs at least one: use 1 <= t <= {num_gops}.'
      )
  if len(set(grid_sizes)) != len(grid_sizes) or len(set(temporal_bins)) != len(temporal_bins):
    raise base.ConfigError(
        f'config.pmsp.grid_sizes {grid_sizes} and temporal_bins {temporal_bins} must not repeat a value.'
    )
  return tuple(Level(s, t) for s in grid_sizes for t in temporal_bins)


def segment_starts(size: int, num_segments: int) -> np.ndarray:
  """int (num_segments + 1,): boundaries floor(i * size / num_segments), i = 0..num_segments."""
  if not 1 <= num_segments <= size:
    raise base.ConfigError(f'Cannot cut {size} pixels or GOPs into {num_segments} non-empty segments.')
  return np.array([i * size // num_segments for i in range(num_segments + 1)])


def segment_matrix(size: int, num_segments: int) -> np.ndarray:
  """float32 (num_segments, size): row i is the 0/1 indicator of segment i (see `segment_starts`)."""
  starts = segment_starts(size, num_segments)
  positions = np.arange(size)
  return ((positions >= starts[:-1, None]) & (positions < starts[1:, None])).astype(np.float32)


def cell_energy(motion_energy: jax.Array, level: Level) -> jax.Array:
  """Motion energy summed over the cells and temporal bins of one level.

  Args:
    motion_energy: float (B, G, H, W), per-GOP motion energy (>= 0) of the crop the network sees.
    level: the level; needs temporal_bins <= G and grid_size <= min(H, W).

  Returns:
    float32 (B, t, s * s): energy per temporal bin and cell, cells in raster order.
  """
  _, num_gops, height, width = motion_energy.shape
  time = segment_matrix(num_gops, level.temporal_bins)
  rows = segment_matrix(height, level.grid_size)
  cols = segment_matrix(width, level.grid_size)
  # HIGHEST: on GPU/TPU a float32 matmul may otherwise run in TF32/bfloat16 and flip near-ties.
  energy = jnp.einsum(
      'bghw,tg,ih,jw->btij',
      jnp.asarray(motion_energy, jnp.float32),
      time,
      rows,
      cols,
      precision=jax.lax.Precision.HIGHEST,
  )
  return energy.reshape(*energy.shape[:2], level.num_cells)


def level_targets(motion_energy: jax.Array, level: Level) -> dict[str, jax.Array]:
  """PMSP targets of one level.

  Args:
    motion_energy: float (B, G, H, W), per-GOP motion energy (>= 0).
    level: the pyramid level ([s x s], t).

  Returns:
    'label': int32 (B, t), the cell (0-based, raster order) with the most energy per bin, the first
      on ties; 0 where the bin has no motion.
    'valid': float32 (B, t), 1 where the bin has any motion, else 0.
    'distribution': float32 (B, t, s * s), each cell's share of the bin's energy (0 where invalid).
  """
  energy = cell_energy(motion_energy, level)
  total = jnp.sum(energy, axis=-1)
  valid = total > 0
  return {
      'label': jnp.argmax(energy, axis=-1).astype(jnp.int32),
      'valid': valid.astype(jnp.float32),
      'distribution': energy / jnp.where(valid, total, 1.0)[..., None],
  }


def targets(
    motion_energy: jax.Array, levels: Sequence[Level], example_valid: jax.Array | None = None
) -> dict[str, dict[str, jax.Array]]:
  """`level_targets` of every level, keyed by level name; `example_valid` (B,) zeroes whole examples."""
  result = {}
  for level in levels:
    level_result = level_targets(motion_energy, level)
    if example_valid is not None:
      level_result['valid'] = level_result['valid'] * example_valid.astype(jnp.float32)[:, None]
    result[level.name] = level_result
  return result


def loss_and_metrics(
    logits: dict[str, jax.Array],
    pmsp_targets: dict[str, dict[str, jax.Array]],
    mask: jax.Array,
    levels: Sequence[Level],
    label_mode: str = 'argmax',
) -> tuple[jax.Array, base.Metrics]:
  """PMSP loss: the mean over levels of the per-bin cross-entropy, averaged over valid bins.

  Args:
    logits: {level name: float (B, t, s * s)}, PMSPHead's output.
    pmsp_targets: `targets(...)`.
    mask: float (B,), 1 for real examples.
    levels: the pyramid.
    label_mode: 'argmax' (one-hot target, the paper) or 'distribution' (soft target: each cell's
      share of the bin's energy).

  Returns:
    The scalar loss, and per-example metrics: 'accuracy' (mean over levels), 'accuracy/<level>'
    (fraction of the example's valid bins whose top cell is right) and 'loss'. An example with no
    motion in any bin of a level scores accuracy 0 there.
  """
  if label_mode not in LABEL_MODES:
    raise base.ConfigError(f'config.pmsp.label_mode = {label_mode!r}; choose from {LABEL_MODES}.')
  level_losses, per_example_losses, accuracies = [], [], {}
  for level in levels:
    level_logits = logits[level.name].astype(jnp.float32)
    expected = (level_logits.shape[0], level.temporal_bins, level.num_cells)
    if level_logits.shape != expected:
      raise ValueError(f'PMSP logits {level.name!r} have shape {level_logits.shape}, expected {expected}.')
    target = pmsp_targets[level.name]
    if label_mode == 'argmax':
      bin_loss = base.cross_entropy(level_logits, target['label'])
    else:
      bin_loss = -jnp.sum(target['distribution'] * jax.nn.log_softmax(level_logits), axis=-1)
    valid = target['valid']
    level_losses.append(base.weighted_mean(bin_loss, valid * mask[:, None]))
    valid_bins = jnp.maximum(jnp.sum(valid, axis=1), 1.0)
    per_example_losses.append(jnp.sum(bin_loss * valid, axis=1) / valid_bins)
    accuracies[f'accuracy/{level.name}'] = (
        jnp.sum(base.correct(level_logits, target['label']) * valid, axis=1) / valid_bins
    )
  metrics = {
      'loss': jnp.mean(jnp.stack(per_example_losses), axis=0),
      'accuracy': jnp.mean(jnp.stack(list(accuracies.values())), axis=0),
      **accuracies,
  }
  return jnp.mean(jnp.stack(level_losses)), metrics


class PMSPTask(base.Task):
  """PMSP on the batch's motion energy; the streams go to the network unchanged."""

  def __init__(self, levels: Sequence[Level], hidden_dim: int, label_mode: str, num_gops: int):
    if label_mode not in LABEL_MODES:
      raise base.ConfigError(f'config.pmsp.label_mode = {label_mode!r}; choose from {LABEL_MODES}.')
    self.levels = tuple(levels)
    self.hidden_dim = hidden_dim
    self.label_mode = label_mode
    self.num_gops = num_gops

  def heads(self) -> dict[str, Any]:
    from imr_jax.models import heads  # pylint: disable=g-import-not-at-top

    return {
        'pmsp': heads.PMSPHead(
            levels=tuple((level.grid_size, level.temporal_bins) for level in self.levels), hidden_dim=self.hidden_dim
        )
    }

  def prepare(self, batch: base.Batch, rng: jax.Array):
    del rng  # PMSP applies no transform
    base.check_num_gops(batch, self.num_gops)
    return base.streams(batch), targets(jnp.asarray(batch['motion_energy']), self.levels)

  def loss_and_metrics(self, outputs, pmsp_targets, mask):
    return loss_and_metrics(outputs['pmsp'], pmsp_targets, jnp.asarray(mask, jnp.float32), self.levels, self.label_mode)


def one_based_raster_cell(label: Any, grid_size: int) -> tuple[int, int, int]:
  """(paper's 1-based cell number, row, column) of a 0-based raster cell index (for figures)."""
  label = int(label)
  return label + 1, label // grid_size, label % grid_size


def horizontal_flip_cell(label: Any, grid_size: int) -> Any:
  """The cell a 0-based raster cell index moves to under a horizontal flip: (r, c) -> (r, s - 1 - c)."""
  return (label // grid_size) * grid_size + (grid_size - 1 - label % grid_size)
