"""Checks of what a run will read and write, done before TensorFlow and JAX start (milliseconds, not a minute).

Each check raises `cli.UserError` naming the input and the fix; `cli.run` prints it as one line. None of
them creates anything, so a failed start leaves no empty directory behind.
"""

import json
import os

from absl import logging
import ml_collections

from imr_jax.cli import UserError

CHECKPOINT_SUBDIR = 'checkpoints'  # WORKDIR/checkpoints/<step>/ (imr_jax.checkpoints)
CONFIG_FILE = 'config.json'  # WORKDIR/config.json, the resolved config (imr_jax.train)
# The data set's facts config.json keeps besides the config: class names and the frame format of the records.
DATA_SET_FACTS = ('label_names', 'width', 'height', 'gop_size', 'encoding', 'map_downscale')
# Config keys that decide the network's parameters: a pretrained run must agree on all of them.
ARCHITECTURE_KEYS = (
    'name',
    'depth',
    'widths',
    'streams',
    'connections',
    'connection_conv',
    'connection_attention',
    'coviar_iframe_depth',
    'coviar_pframe_depth',
)


def is_remote(path: str) -> bool:
  """gs://, s3://, ram://...: checked by TensorFlow / orbax when they open it, not here."""
  return '://' in str(path)


def absolute(path: str) -> str:
  """A local path made absolute (what every host of a run, and the logs, should name); a URI as given."""
  return str(path) if is_remote(path) else os.path.abspath(path)


def check_workdir(workdir: str) -> None:
  """`workdir` is a directory we can create or write to."""
  if not workdir:
    raise UserError('--workdir is empty; name a directory for checkpoints and logs (it is created).')
  if is_remote(workdir):
    return
  path = os.path.abspath(workdir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise UserError(f'--workdir={workdir} is a file, not a directory; name a directory.')
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
    raise UserError(f'--workdir={workdir}: cannot write to {existing}; choose a directory you can write to.')


def check_data(data_dir: str, splits: tuple[str, ...], key: str = 'config.dataset.data_dir') -> dict:
  """`data_dir` is a converted data set with every shard of `splits` present and non-empty; its manifest."""
  if not data_dir:
    raise UserError(f'{key} is empty; pass --{key}=DIR, an output directory of `python -m data_prep.convert`.')
  if is_remote(data_dir):
    return {}
  if not os.path.isdir(data_dir):
    raise UserError(
        f'{key}={data_dir} does not exist; convert a data set there with '
        '`python -m data_prep.convert` or point at one.'
    )
  manifest_path = os.path.join(data_dir, 'manifest.json')
  if not os.path.exists(manifest_path):
    raise UserError(
        f'{key}={data_dir} has no manifest.json, so it is not an output of '
        '`python -m data_prep.convert`; point at one, or convert your videos there first.'
    )
  try:
    with open(manifest_path) as f:
      manifest = json.load(f)
  except json.JSONDecodeError as e:
    raise UserError(f'{manifest_path} is not valid JSON ({e}); reconvert with `python -m data_prep.convert`.') from e
  unions = manifest.get('split_unions', {})
  for named in splits:
    if named not in manifest.get('splits', {}) and named not in unions:
      have = sorted(manifest.get('splits', {})) + sorted(unions)
      raise UserError(
          f'{key}={data_dir} has no split {named!r} (it has {have}); '
          'set config.dataset.train_split / eval_split to one of them.'
      )
    _check_shards(data_dir, manifest, unions.get(named, [named]), key)
  return manifest


def _check_shards(data_dir: str, manifest: dict, splits: list[str], key: str) -> None:
  for split in splits:
    num_shards = manifest.get('num_shards', {}).get(split, 0)
    names = [f'{manifest["dataset"]}-{split}.tfrecord-{i:05d}-of-{num_shards:05d}' for i in range(num_shards)]
    bad = [
        name
        for name in names
        if not os.path.exists(os.path.join(data_dir, name)) or os.path.getsize(os.path.join(data_dir, name)) == 0
    ]
    if not names or bad:
      what = f'shard {bad[0]} is missing or empty' if bad else 'the manifest lists no shards'
      raise UserError(
          f'{key}={data_dir}: {what} (split {split!r}, {len(bad)} of {num_shards} shards bad). '
          f'Check with `python -m data_prep.verify {data_dir}`, then reconvert.'
      )
    expected_bytes = manifest.get('shard_bytes', {})  # written by data_prep.convert since 2026-12
    for name in names:
      size = os.path.getsize(os.path.join(data_dir, name))
      if name in expected_bytes and size != expected_bytes[name]:
        raise UserError(
            f'{key}={data_dir}: shard {name} is {size} bytes but was written with '
            f'{expected_bytes[name]} (truncated or replaced since). Check with '
            f'`python -m data_prep.verify {data_dir}`, then reconvert it.'
        )


def check_checkpoint(workdir: str, key: str = '--workdir') -> None:
  """`workdir` is a training run's workdir holding at least one checkpoint."""
  if is_remote(workdir):
    return
  if not os.path.isdir(workdir):
    raise UserError(f'{key}={workdir} does not exist; pass the workdir of a training run.')
  if os.path.basename(os.path.normpath(workdir)) == CHECKPOINT_SUBDIR:
    raise UserError(
        f"{key}={workdir} is the checkpoints/ folder; pass the run's workdir, "
        f'{os.path.dirname(os.path.normpath(workdir))}.'
    )
  directory = os.path.join(workdir, CHECKPOINT_SUBDIR)
  steps = [name for name in os.listdir(directory) if name.isdigit()] if os.path.isdir(directory) else []
  if not steps:
    raise UserError(
        f'{key}={workdir} holds no checkpoint ({directory} has no saved step); pass the workdir '
        'of a run that has saved one (runs save every config.checkpoint_every_steps and at the end).'
    )


def check_init_from(config: ml_collections.ConfigDict) -> None:
  """config.init_from, when set, is a finished run of the same architecture."""
  if config.get('require_init_from') and not config.get('init_from'):
    raise UserError(
        'This config fine-tunes a pretrained network but config.init_from is empty, so it '
        'would silently train from scratch. Pass --config.init_from=PRETRAIN_WORKDIR, or use '
        'configs/supervised.py for a from-scratch baseline.'
    )
  if not config.get('init_from'):
    return
  check_checkpoint(config.init_from, key='--config.init_from')
  saved_path = os.path.join(config.init_from, CONFIG_FILE)
  if is_remote(saved_path) or not os.path.exists(saved_path):
    return  # a run from before config.json existed: the strict loader still checks every shape
  with open(saved_path) as f:
    saved = json.load(f).get('config', {}).get('model', {})
  now = json.loads(config.model.to_json_best_effort())
  differ = [key for key in ARCHITECTURE_KEYS if key in saved and _canonical(saved[key]) != _canonical(now.get(key))]
  if differ:
    pairs = ', '.join(f'model.{key}: {saved[key]!r} there, {now.get(key)!r} here' for key in differ)
    raise UserError(
        f'--config.init_from={config.init_from} trained another network ({pairs}); fine-tune '
        'with the same model settings (the same config variant) as the pretraining run.'
    )


def _canonical(value):
  return tuple(value) if isinstance(value, list) else value


def check_training(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Everything main.py checks before start-up."""
  check_workdir(workdir)
  splits = tuple(dict.fromkeys([config.dataset.train_split, config.dataset.eval_split]))
  warn_of_upsampling(config, check_data(config.dataset.data_dir, splits))
  check_init_from(config)


def warn_of_upsampling(config: ml_collections.ConfigDict, manifest: dict) -> str | None:
  """Warns (and returns the warning) when even a whole-frame crop must be enlarged to the crop size.

  That is the sign of maps stored smaller than the training resolution wants (`data_prep.convert
  --map_downscale=2` data under a 224-px config): it trains, on blurred inputs.
  """
  if 'height' not in manifest:
    return None
  factor = manifest.get('map_downscale', 1)
  short_side = min(manifest['height'], manifest['width']) // factor
  crop = max(config.data.crop_size, config.data.eval_crop_size)
  if crop <= short_side:
    return None
  message = (
      f'{config.dataset.data_dir} stores {manifest["width"] // factor}x{manifest["height"] // factor} maps '
      f'(map_downscale {factor}) but the config crops {crop} px: every clip is enlarged. Convert with '
      f'--map_downscale={max(1, min(manifest["height"], manifest["width"]) // crop)} for {crop}-px crops.'
  )
  logging.warning(message)
  return message
