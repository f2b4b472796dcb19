"""Frozen-feature evaluations on hand-made features with known answers, and the features CLI."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from imr_jax import frozen_eval

REPO = pathlib.Path(__file__).resolve().parents[1]


def clustered(num_classes=4, per_class=10, dim=16, spread=0.05, seed=0):
  """Features in tight clusters around one random direction per class."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(num_classes, dim))
  labels = np.repeat(np.arange(num_classes), per_class)
  return centres[labels] + spread * rng.normal(size=(len(labels), dim)), labels


def test_retrieval_by_hand():
  gallery = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
  gallery_labels = np.array([0, 1, 2])
  # Query 0 points along x: nearest gallery video 0 (right), then 2, then 1.
  # Query 1 points mostly along y, labelled 2: order 1, 2, 0 -> first hit at rank 2.
  queries = np.array([[2.0, 0.1], [0.1, 1.0]])
  result = frozen_eval.retrieval(queries, np.array([0, 2]), gallery, gallery_labels, ks=(1, 2, 3))
  assert result == {'R@1': 0.5, 'R@2': 1.0, 'R@3': 1.0}
  # Cosine similarity ignores length.
  assert frozen_eval.retrieval(queries * 7, np.array([0, 2]), gallery, gallery_labels, ks=(1,)) == {'R@1': 0.5}


def test_clustered_features_retrieve_their_class_first():
  train, train_labels = clustered(seed=0)
  test, test_labels = clustered(seed=0, per_class=3)
  result = frozen_eval.retrieval(test, test_labels, train, train_labels)
  assert result == {'R@1': 1.0, 'R@5': 1.0, 'R@10': 1.0, 'R@20': 1.0}


def test_shuffled_labels_give_chance():
  rng = np.random.default_rng(1)
  train, train_labels = clustered(num_classes=4, per_class=50, seed=2)
  test, test_labels = clustered(num_classes=4, per_class=50, seed=2)
  shuffled = rng.permutation(test_labels)
  r1 = frozen_eval.retrieval(test, shuffled, train, train_labels, ks=(1,))['R@1']
  probe = frozen_eval.linear_probe(train, train_labels, test, shuffled)['accuracy']
  # 200 queries at chance 1/4: the standard error is 0.031; 4 of them either side.
  for value in (r1, probe):
    assert abs(value - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 200), value


def test_linear_probe_separates_clusters_and_chooses_c_on_validation_only():
  train, train_labels = clustered(num_classes=3, per_class=20, dim=8, spread=0.3, seed=3)
  test, test_labels = clustered(num_classes=3, per_class=10, dim=8, spread=0.3, seed=3)
  result = frozen_eval.linear_probe(train, train_labels, test, test_labels)
  assert result['accuracy'] == 1.0 and result['validation_accuracy'] == 1.0
  assert result['C'] in frozen_eval.PROBE_C_GRID
  # The test labels play no part in the choice: scrambling them changes the score, not C.
  scrambled = frozen_eval.linear_probe(train, train_labels, test, (test_labels + 1) % 3)
  assert scrambled['C'] == result['C'] and scrambled['validation'] == result['validation']
  assert scrambled['accuracy'] == 0.0


def test_stratified_split_holds_out_each_class():
  labels = np.array([0] * 10 + [1] * 5 + [2] * 2)
  fit, validation = frozen_eval.stratified_split(labels, 0.2, seed=0)
  assert sorted(np.concatenate([fit, validation])) == list(range(17))
  assert list(np.bincount(labels[validation])) == [2, 1, 1]
  with pytest.raises(ValueError, match='validation'):
    frozen_eval.linear_probe(np.ones((2, 3)), np.array([0, 1]), np.ones((2, 3)), np.array([0, 1]))


def test_cli_writes_frozen_metrics(tmp_path):
  for split, per_class in (('train', 10), ('test', 3)):
    features, labels = clustered(per_class=per_class)
    np.savez(
        tmp_path / f'{split}.npz',
        features=features.astype(np.float32),
        labels=labels,
        label_names=np.array(['a', 'b', 'c', 'd']),
        video_ids=np.array([f'v{i}' for i in labels]),
    )
  output = subprocess.run(
      [
          sys.executable,
          '-m',
          'imr_jax.frozen_eval',
          f'--train={tmp_path / "train.npz"}',
          f'--test={tmp_path / "test.npz"}',
          f'--output_dir={tmp_path / "out"}',
      ],
      cwd=REPO,
      capture_output=True,
      text=True,
      check=True,
  ).stdout
  metrics = json.loads((tmp_path / 'out' / frozen_eval.METRICS_FILE).read_text())
  assert metrics['retrieval']['R@1'] == 1.0 and metrics['linear_probe']['accuracy'] == 1.0
  assert metrics['num_test'] == 12 and metrics['chance'] == 0.25
  assert 'R@1 1.000' in output
