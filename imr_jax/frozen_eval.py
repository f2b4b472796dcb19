r"""Frozen-feature evaluations: nearest-neighbour video retrieval and a linear probe.

  python -m imr_jax.frozen_eval --train=runs/pmsp/features_train.npz \
      --test=runs/pmsp/features_test.npz --output_dir=runs/pmsp

Reads two feature files of `imr_jax.features` (the training and test videos of one labelled data set)
and writes OUTPUT_DIR/frozen_metrics.json:

  retrieval     as in the self-supervised video literature (VCOP, Xu et al. 2019; MVCGC, Huo et al.
                2021): every test video queries the training videos by cosine similarity of its
                features; R@k is the fraction of queries with a video of their own class among their k
                nearest training videos (k = 1, 5, 10, 20).
  linear probe  a multinomial logistic regression on the frozen features, standardised with the
                training set's mean and standard deviation, L2-regularised. Its strength is chosen on a
                validation split carved from the training videos (stratified, `validation_fraction`,
                seeded), never on the test videos; the probe is then refitted on all training videos
                with that strength and scored once on the test videos (video accuracy).
"""

import io
import json
from typing import Any, Sequence

import numpy as np
from absl import flags
from etils import epath

from imr_jax import cli

RECALL_AT = (1, 5, 10, 20)
# Inverse L2 strengths C of scikit-learn's LogisticRegression tried on the validation split.
PROBE_C_GRID = tuple(float(c) for c in 10.0 ** np.arange(-3, 3.5, 0.5))
METRICS_FILE = 'frozen_metrics.json'


def retrieval(
    query_features: np.ndarray,
    query_labels: np.ndarray,
    gallery_features: np.ndarray,
    gallery_labels: np.ndarray,
    ks: Sequence[int] = RECALL_AT,
) -> dict[str, float]:
  """R@k of every query against the gallery by cosine similarity.

  Args:
    query_features: float (Q, D); query_labels: int (Q,).
    gallery_features: float (G, D); gallery_labels: int (G,).
    ks: the k of R@k; a k larger than the gallery counts the whole gallery.
  Returns:
    {'R@1': ..., ...}: fractions in [0, 1]. Ties in similarity go to the gallery's order.
  """

  def unit(x):
    x = np.asarray(x, np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)

  similarity = unit(query_features) @ unit(gallery_features).T  # (Q, G)
  order = np.argsort(-similarity, axis=1, kind='stable')
  hits = np.asarray(gallery_labels)[order] == np.asarray(query_labels)[:, None]  # (Q, G) by rank
  first_hit = np.where(hits.any(axis=1), hits.argmax(axis=1), hits.shape[1])
  return {f'R@{k}': float(np.mean(first_hit < k)) for k in ks}


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(fit indices, validation indices): `fraction` of each class (at least one, if it has two) held out."""
  rng = np.random.default_rng(seed)
  fit, validation = [], []
  for label in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == label))
    held = min(len(members) - 1, max(1, int(round(fraction * len(members))))) if len(members) > 1 else 0
    validation.extend(members[:held])
    fit.extend(members[held:])
  return np.sort(np.asarray(fit, np.int64)), np.sort(np.asarray(validation, np.int64))


def _standardise(fit: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
  mean, std = fit.mean(axis=0), fit.std(axis=0)
  std = np.where(std > 0, std, 1.0)  # a constant feature stays 0
  return [(x - mean) / std for x in (fit, *others)]


def _probe(train_x, train_y, c: float):
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top

  return LogisticRegression(C=c, max_iter=5000, tol=1e-6).fit(train_x, train_y)


def linear_probe(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    *,
    validation_fraction: float = 0.2,
    seed: int = 0,
    c_grid: Sequence[float] = PROBE_C_GRID,
) -> dict[str, Any]:
  """A standardised, L2-regularised logistic-regression probe; strength chosen on validation.

  Returns:
    {'accuracy': test accuracy of the probe refitted on all training videos with the chosen C,
     'C': the chosen inverse strength, 'validation_accuracy': its accuracy on the validation split,
     'validation': {C: accuracy} for every C tried}.
  """
  train_features = np.asarray(train_features, np.float64)
  test_features = np.asarray(test_features, np.float64)
  fit_index, validation_index = stratified_split(np.asarray(train_labels), validation_fraction, seed)
  if not len(validation_index):
    raise ValueError(
        'The training set is too small to hold out a validation split (each class needs at least two videos).'
    )
  fit_x, validation_x = _standardise(train_features[fit_index], train_features[validation_index])
  scores = {}
  for c in c_grid:
    probe = _probe(fit_x, train_labels[fit_index], c)
    scores[c] = float(np.mean(probe.predict(validation_x) == train_labels[validation_index]))
  # The best validation accuracy; among ties the strongest regularisation (the smallest C).
  best = min(c_grid, key=lambda c: (-scores[c], c))
  all_x, test_x = _standardise(train_features, test_features)
  probe = _probe(all_x, train_labels, best)
  return {
      'accuracy': float(np.mean(probe.predict(test_x) == test_labels)),
      'C': best,
      'validation_accuracy': scores[best],
      'validation': {str(c): a for c, a in scores.items()},
  }


def evaluate(
    train: dict[str, np.ndarray], test: dict[str, np.ndarray], *, validation_fraction: float = 0.2, seed: int = 0
) -> dict[str, Any]:
  """Retrieval and the linear probe of two feature dicts (as `imr_jax.features.extract` returns)."""
  if list(train['label_names']) != list(test['label_names']):
    raise ValueError('The training and test features come from data sets with different label names.')
  if train['features'].shape[1] != test['features'].shape[1]:
    raise ValueError(
        f'Feature sizes differ: train {train["features"].shape[1]}, test '
        f'{test["features"].shape[1]}; extract both with the same config and run.'
    )
  results = {
      'retrieval': retrieval(test['features'], test['labels'], train['features'], train['labels']),
      'linear_probe': linear_probe(
          train['features'],
          train['labels'],
          test['features'],
          test['labels'],
          validation_fraction=validation_fraction,
          seed=seed,
      ),
  }
  results.update(
      num_train=int(len(train['labels'])),
      num_test=int(len(test['labels'])),
      num_classes=int(len(train['label_names'])),
      chance=float(np.max(np.bincount(test['labels'])) / len(test['labels'])),
  )
  return results


def load(path: str) -> dict[str, np.ndarray]:
  """A feature file of imr_jax.features (plain .npz)."""
  if not epath.Path(path).exists():
    raise cli.UserError(f'{path} does not exist; write it with `python -m imr_jax.features ... --output={path}`.')
  with np.load(io.BytesIO(epath.Path(path).read_bytes()), allow_pickle=False) as data:  # any file system
    missing = {'features', 'labels', 'label_names'} - set(data.files)
    if missing:
      raise ValueError(f'{path} lacks {sorted(missing)}; write it with python -m imr_jax.features.')
    return {name: data[name] for name in data.files}


def main(argv):
  if len(argv) > 1:
    raise cli.UserError(f'Unexpected arguments {argv[1:]}; options are --flags (see --help).')
  flags_ = flags.FLAGS
  results = evaluate(
      load(flags_.train), load(flags_.test), validation_fraction=flags_.validation_fraction, seed=flags_.seed
  )
  output_dir = epath.Path(flags_.output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  path = output_dir / METRICS_FILE
  path.write_text(json.dumps(results, indent=2, sort_keys=True))
  retrieval_line = ', '.join(f'{k} {v:.3f}' for k, v in results['retrieval'].items())
  print(f'Retrieval ({results["num_test"]} test queries, {results["num_train"]} training videos): {retrieval_line}')
  probe = results['linear_probe']
  print(
      f'Linear probe: test accuracy {probe["accuracy"]:.3f} (C = {probe["C"]:g} chosen on validation, '
      f'{probe["validation_accuracy"]:.3f} there; chance {results["chance"]:.3f}) -> {path}'
  )


def define_flags() -> None:
  flags.DEFINE_string('train', None, 'Features of the training videos (imr_jax.features --split=train).')
  flags.DEFINE_string('test', None, 'Features of the test videos (imr_jax.features --split=test).')
  flags.DEFINE_string('output_dir', None, f'Where {METRICS_FILE} goes.')
  flags.DEFINE_float(
      'validation_fraction',
      0.2,
      "Share of each class of the training videos held out to choose the probe's L2 strength.",
  )
  flags.DEFINE_integer('seed', 0, 'Seed of the validation split.')
  flags.mark_flags_as_required(['train', 'test', 'output_dir'])


if __name__ == '__main__':
  define_flags()
  cli.run(main)
