"""Dataset adapters: an official layout and its split files -> the sorted videos of every split.

Each adapter returns a `Listing`: the label names (identical across splits and reruns), and per split the
videos sorted by id, so that the conversion can assign them to shards deterministically. Everything a user
can get wrong (a missing folder or split file, a class the label map does not know, a split file naming a
video that is not there) raises `DatasetError` here, before any work starts.

Layouts (what the official downloads unpack to):

  ucf101       SOURCE/<Class>/v_<Class>_gXX_cYY.avi; split files in ucfTrainTestlist/ (inside SOURCE or
               beside it, or --splits_dir): classInd.txt ("1 ApplyEyeMakeup"), trainlist0N.txt
               ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"), testlist0N.txt (path only).
               Splits 'train' and 'test' of official split N in {1, 2, 3}, or all three (see below);
               labels from classInd.txt.
  hmdb51       SOURCE/<class>/<video>.avi; split files testTrainMulti_7030_splits/<class>_test_splitN.txt
               ("<video>.avi 1"; 1 train, 2 test, 0 unused). Labels: sorted class names.
  kinetics400  annotation CSVs (label,youtube_id,time_start,time_end,split) train.csv, validate.csv
               (or val.csv), optional test.csv, in SOURCE/annotations, SOURCE or --annotations_dir; clips
               <youtube_id>_<start:06d>_<end:06d>.<ext> anywhere under SOURCE (class folders or flat).
               Splits 'train', 'validation' (and 'test' when its CSV is there). Labels: sorted train
               labels. Clips named by the CSVs but absent are reported (Listing.missing), not fatal.
  folder       SOURCE/<split>/<class>/<video> for anyone's own data. Labels: sorted union of the class
               folder names of all splits. Every non-hidden file in a class folder is a video (a file
               that is not one is reported as a failure by the conversion).
  synthetic    the procedural dataset of data_prep.synthetic, generated into SOURCE, then read as a folder.

All three official splits of UCF101 or HMDB51 at once (split='all', what data_prep.convert does by
default): every video is stored once. Videos are grouped by their roles in splits 1, 2, 3 into parts
named after them ('part_train_train_test': train in splits 1 and 2, test in split 3; HMDB51 also has
'none', a video a split does not use), and `Listing.unions` names each official split as the parts it
reads: 'train2' = every part whose second role is 'train'. UCF101 has three parts, HMDB51 up to 27.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import pathlib
import re
from collections.abc import Iterable

DATASETS = ('ucf101', 'hmdb51', 'kinetics400', 'folder', 'synthetic')
OFFICIAL_SPLITS = (1, 2, 3)


class DatasetError(ValueError):
  """A dataset's files do not match the layout its adapter expects; the message names the file and the fix."""


@dataclasses.dataclass(frozen=True, order=True)
class Video:
  """One source video.

  Attributes:
    video_id: stable id, the path relative to the dataset root (Kinetics: the clip name).
    path: absolute path of the file.
    label: index into the listing's label_names, or -1 when unlabelled.
  """

  video_id: str
  path: str
  label: int


@dataclasses.dataclass(frozen=True)
class Listing:
  """What an adapter found.

  Attributes:
    name: dataset name (names the TFRecord files).
    label_names: class names; a video's label indexes this.
    splits: split name -> videos sorted by id.
    missing: split name -> [{'path', 'reason'}] for videos the annotations name but the source lacks.
    unions: split name -> the splits (of `splits`) it is made of, for splits that share videos
      ('train1', 'test1', ... of all official splits); empty otherwise.
  """

  name: str
  label_names: tuple[str, ...]
  splits: dict[str, tuple[Video, ...]]
  missing: dict[str, tuple[dict[str, str], ...]] = dataclasses.field(default_factory=dict)
  unions: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


def _require_dir(path: pathlib.Path, what: str, fix: str) -> pathlib.Path:
  if not path.is_dir():
    raise DatasetError(f'{what} {str(path)!r} is not a folder. {fix}')
  return path


def _find_dir(candidates: Iterable[pathlib.Path], what: str, flag: str) -> pathlib.Path:
  candidates = list(candidates)
  for candidate in candidates:
    if candidate.is_dir():
      return candidate
  looked = ', '.join(repr(str(c)) for c in candidates)
  raise DatasetError(f'Cannot find the {what}: looked in {looked}. Pass its folder with {flag}.')


def _read_lines(path: pathlib.Path, fix: str) -> list[str]:
  if not path.is_file():
    raise DatasetError(f'Split file {str(path)!r} does not exist. {fix}')
  with open(path, encoding='utf-8') as f:
    return [line.strip() for line in f if line.strip()]


def _check_present(videos: Iterable[Video], dataset: str, source: pathlib.Path) -> None:
  absent = [v.path for v in videos if not os.path.isfile(v.path)]
  if absent:
    shown = ', '.join(repr(p) for p in absent[:3])
    raise DatasetError(
        f'{len(absent)} {dataset} videos named by the split files are not under {str(source)!r} '
        f'(e.g. {shown}). Point --source at the folder of class folders of the complete '
        f'download, or check --split.'
    )


def _check_split_number(dataset: str, split: int) -> None:
  if split not in OFFICIAL_SPLITS:
    raise DatasetError(f'{dataset} has official splits {OFFICIAL_SPLITS} (or all); got --split={split}.')


def _all_official_splits(one_split, dataset: str) -> Listing:
  """The official splits 1, 2, 3 (`one_split(n)`, each 'train' and 'test') as parts and unions."""
  listings = [one_split(number) for number in OFFICIAL_SPLITS]
  if any(listing.label_names != listings[0].label_names for listing in listings):
    raise DatasetError(
        f'The {dataset} split files name different classes in different splits; use the split files of one release.'
    )
  roles: dict[Video, list[str]] = {}
  for number, listing in enumerate(listings):
    for role, videos in listing.splits.items():
      for video in videos:
        roles.setdefault(video, ['none'] * len(listings))[number] = role
  parts: dict[str, list[Video]] = {}
  for video, video_roles in roles.items():
    parts.setdefault('part_' + '_'.join(video_roles), []).append(video)
  unions = {
      f'{role}{number}': tuple(sorted(part for part in parts if part.split('_')[number] == role))
      for number in OFFICIAL_SPLITS
      for role in ('train', 'test')
  }
  return Listing(
      dataset,
      listings[0].label_names,
      {part: tuple(sorted(videos)) for part, videos in sorted(parts.items())},
      unions=unions,
  )


def ucf101(source: str | os.PathLike, *, split: int | str = 1, splits_dir: str | os.PathLike | None = None) -> Listing:
  """UCF101, official split `split` (1..3: 'train' and 'test'; 'all': see the module docstring)."""
  if split == 'all':
    return _all_official_splits(lambda number: ucf101(source, split=number, splits_dir=splits_dir), 'ucf101')
  _check_split_number('ucf101', split)
  root = _require_dir(pathlib.Path(source).resolve(), 'UCF101 source', 'Point --source at the UCF-101 folder.')
  if splits_dir is not None:
    lists = _require_dir(
        pathlib.Path(splits_dir).resolve(),
        'UCF101 splits folder',
        'Point --splits_dir at the unpacked ucfTrainTestlist folder.',
    )
  else:
    lists = _find_dir(
        [root / 'ucfTrainTestlist', root.parent / 'ucfTrainTestlist'],
        'UCF101 split files (ucfTrainTestlist)',
        '--splits_dir',
    )
  fix = 'Unpack UCF101TrainTestSplits-RecognitionTask.zip into the splits folder.'

  label_names = []
  for number, line in enumerate(_read_lines(lists / 'classInd.txt', fix), start=1):
    fields = line.split()
    if len(fields) != 2 or fields[0] != str(number):
      raise DatasetError(f'{str(lists / "classInd.txt")!r} line {number} is {line!r}; expected "{number} ClassName".')
    label_names.append(fields[1])
  by_name = {name.lower(): index for index, name in enumerate(label_names)}

  splits = {}
  for split_name, list_name in (('train', f'trainlist0{split}.txt'), ('test', f'testlist0{split}.txt')):
    list_path = lists / list_name
    videos = []
    for line in _read_lines(list_path, fix):
      fields = line.split()
      relative = fields[0].replace('\\', '/')
      class_name = relative.split('/')[0]
      # The official lists and folders disagree on case for a few classes (HandstandPushups).
      label = by_name.get(class_name.lower())
      if label is None:
        raise DatasetError(
            f'{str(list_path)!r} names {relative!r}, whose class {class_name!r} is not in '
            f'classInd.txt. Use the split files of the same UCF101 release.'
        )
      if len(fields) > 1 and int(fields[1]) - 1 != label:
        raise DatasetError(
            f'{str(list_path)!r}: {relative!r} has class index {fields[1]} but classInd.txt '
            f'gives {class_name!r} index {label + 1}.'
        )
      videos.append(Video(relative, str(root / relative), label))
    _check_present(videos, 'UCF101', root)
    splits[split_name] = tuple(sorted(videos))
  return Listing('ucf101', tuple(label_names), splits)


_HMDB_SPLIT_FILE = re.compile(r'^(?P<class_name>.+)_test_split(?P<split>[123])\.txt$')


def hmdb51(source: str | os.PathLike, *, split: int | str = 1, splits_dir: str | os.PathLike | None = None) -> Listing:
  """HMDB51, official split `split` (1..3: 'train' and 'test'; 'all': see the module docstring)."""
  if split == 'all':
    return _all_official_splits(lambda number: hmdb51(source, split=number, splits_dir=splits_dir), 'hmdb51')
  _check_split_number('hmdb51', split)
  root = _require_dir(
      pathlib.Path(source).resolve(),
      'HMDB51 source',
      'Point --source at the folder of unpacked class folders (hmdb51_org).',
  )
  if splits_dir is not None:
    lists = _require_dir(
        pathlib.Path(splits_dir).resolve(),
        'HMDB51 splits folder',
        'Point --splits_dir at the unpacked testTrainMulti_7030_splits folder.',
    )
  else:
    lists = _find_dir(
        [root / 'testTrainMulti_7030_splits', root.parent / 'testTrainMulti_7030_splits'],
        'HMDB51 split files (testTrainMulti_7030_splits)',
        '--splits_dir',
    )
  split_files = {}
  for path in lists.iterdir():
    match = _HMDB_SPLIT_FILE.match(path.name)
    if match and int(match['split']) == split:
      split_files[match['class_name']] = path
  if not split_files:
    raise DatasetError(
        f'No HMDB51 split files <class>_test_split{split}.txt in {str(lists)!r}. Unpack test_train_splits.rar there.'
    )
  label_names = tuple(sorted(split_files))
  splits = {'train': [], 'test': []}
  for label, class_name in enumerate(label_names):
    for line in _read_lines(split_files[class_name], ''):
      fields = line.split()
      if len(fields) != 2 or fields[1] not in ('0', '1', '2'):
        raise DatasetError(f'{str(split_files[class_name])!r} has line {line!r}; expected "<video>.avi 0|1|2".')
      if fields[1] == '0':  # Not used in this split.
        continue
      relative = f'{class_name}/{fields[0]}'
      splits['train' if fields[1] == '1' else 'test'].append(Video(relative, str(root / relative), label))
  for videos in splits.values():
    _check_present(videos, 'HMDB51', root)
  return Listing('hmdb51', label_names, {name: tuple(sorted(v)) for name, v in splits.items()})


_KINETICS_CSVS = (
    ('train', ('train.csv',)),
    ('validation', ('validate.csv', 'val.csv', 'validation.csv')),
    ('test', ('test.csv',)),
)


def kinetics_clip_name(youtube_id: str, time_start: str, time_end: str) -> str:
  """The clip file stem of the official downloader: '<youtube_id>_<start:06d>_<end:06d>'."""
  return f'{youtube_id}_{int(float(time_start)):06d}_{int(float(time_end)):06d}'


def _read_kinetics_csv(path: pathlib.Path) -> list[dict[str, str]]:
  with open(path, encoding='utf-8', newline='') as f:
    rows = list(csv.DictReader(f))
  required = {'youtube_id', 'time_start', 'time_end'}
  if rows and not required <= set(rows[0]):
    raise DatasetError(
        f'{str(path)!r} lacks the columns {sorted(required - set(rows[0]))}; expected the '
        'official header label,youtube_id,time_start,time_end,split.'
    )
  return rows


def kinetics400(source: str | os.PathLike, *, annotations_dir: str | os.PathLike | None = None) -> Listing:
  """Kinetics-400: 'train', 'validation' and, when test.csv is present, 'test' (module docstring: layout)."""
  root = _require_dir(
      pathlib.Path(source).resolve(),
      'Kinetics-400 source',
      'Point --source at the folder holding the downloaded clips.',
  )
  if annotations_dir is not None:
    annotations = _require_dir(
        pathlib.Path(annotations_dir).resolve(),
        'Kinetics-400 annotations folder',
        'Point --annotations_dir at the folder of train.csv and validate.csv.',
    )
  else:
    candidates = [root / 'annotations', root]
    annotations = next((c for c in candidates if (c / 'train.csv').is_file()), None)
    if annotations is None:
      raise DatasetError(
          f'Cannot find Kinetics-400 train.csv in {[str(c) for c in candidates]}. '
          'Pass the annotations folder with --annotations_dir.'
      )
  tables = {}
  for split_name, file_names in _KINETICS_CSVS:
    path = next((annotations / n for n in file_names if (annotations / n).is_file()), None)
    if path is None and split_name != 'test':
      raise DatasetError(
          f'Kinetics-400 annotations {str(annotations)!r} lack {" or ".join(file_names)}. '
          'Download the official annotation CSVs.'
      )
    if path is not None:
      tables[split_name] = (path, _read_kinetics_csv(path))

  train_path, train_rows = tables['train']
  if not train_rows or 'label' not in train_rows[0]:
    raise DatasetError(f'{str(train_path)!r} has no labelled rows.')
  label_names = tuple(sorted({row['label'] for row in train_rows}))
  by_name = {name: index for index, name in enumerate(label_names)}

  # Downloaders differ in folder structure and extension; the clip name is what identifies a clip.
  files = {}
  for directory, _, names in os.walk(root):
    for name in names:
      stem = name.rsplit('.', 1)[0]
      if not name.startswith('.') and not name.endswith(('.csv', '.json', '.txt')):
        files.setdefault(stem, os.path.join(directory, name))

  splits, missing = {}, {}
  for split_name, (path, rows) in tables.items():
    videos, absent = [], []
    for row in rows:
      label_name = row.get('label')
      if split_name == 'test' and not label_name:
        label = -1
      elif label_name in by_name:
        label = by_name[label_name]
      else:
        raise DatasetError(
            f'{str(path)!r} has label {label_name!r}, which train.csv does not have. Use the '
            'annotation CSVs of one Kinetics release.'
        )
      clip = kinetics_clip_name(row['youtube_id'], row['time_start'], row['time_end'])
      if clip in files:
        videos.append(Video(clip, files[clip], label))
      else:
        absent.append({'path': clip, 'reason': f'missing: no file {clip}.* under {root}'})
    splits[split_name] = tuple(sorted(videos))
    missing[split_name] = tuple(sorted(absent, key=lambda f: f['path']))
  return Listing('kinetics400', label_names, splits, missing)


def folder(source: str | os.PathLike, *, name: str = 'folder') -> Listing:
  """A folder SOURCE/<split>/<class>/<video>: every split found; labels are the sorted class names."""
  root = _require_dir(
      pathlib.Path(source).resolve(),
      'Dataset source',
      'Point --source at a folder laid out as SOURCE/<split>/<class>/<video>.',
  )
  split_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(('.', '_')))
  if not split_dirs:
    raise DatasetError(f'{str(root)!r} has no split folders; expected SOURCE/<split>/<class>/<video>.')
  classes = {}
  for split_dir in split_dirs:
    entries = [p for p in split_dir.iterdir() if not p.name.startswith('.')]
    stray = [p for p in entries if not p.is_dir()]
    if stray:
      raise DatasetError(
          f'{str(stray[0])!r} is a file directly in a split folder; expected '
          'SOURCE/<split>/<class>/<video>. Move it into a class folder or out of SOURCE.'
      )
    classes[split_dir.name] = sorted(entries)
  label_names = tuple(sorted({class_dir.name for dirs in classes.values() for class_dir in dirs}))
  by_name = {label_name: index for index, label_name in enumerate(label_names)}
  splits = {}
  for split_name, class_dirs in classes.items():
    videos = []
    for class_dir in class_dirs:
      for path in class_dir.iterdir():
        if path.is_file() and not path.name.startswith('.'):
          relative = path.relative_to(root).as_posix()
          videos.append(Video(relative, str(path), by_name[class_dir.name]))
    if not videos:
      raise DatasetError(f'Split folder {str(root / split_name)!r} holds no videos.')
    splits[split_name] = tuple(sorted(videos))
  return Listing(name, label_names, splits)


VALIDATION = 'validation'


def hold_out_validation(listing: Listing, fraction: float) -> Listing:
  """Moves `fraction` of each class of the 'train' split into a new 'validation' split.

  For choosing hyperparameters on labelled data without touching its test split. Stratified: each class
  keeps its share (rounded, at least one video of a class with two or more). Which videos go depends
  only on their ids (a SHA-256 ranking), so it is the same on every machine and rerun, and it does not
  change when other videos are added.
  """
  if not 0 < fraction < 1:
    raise DatasetError(f'validation_fraction={fraction} must be in (0, 1).')
  if 'train' not in listing.splits or VALIDATION in listing.splits:
    raise DatasetError(
        f'Cannot carve a validation split from {listing.name!r}: it needs a train split '
        f'and none called {VALIDATION!r} (it has {sorted(listing.splits)}).'
    )
  rank = lambda video: hashlib.sha256(video.video_id.encode('utf-8')).hexdigest()
  held = set()
  for label in sorted({video.label for video in listing.splits['train']}):
    members = sorted((v for v in listing.splits['train'] if v.label == label), key=rank)
    count = min(len(members) - 1, max(1, round(fraction * len(members)))) if len(members) > 1 else 0
    held.update(video.video_id for video in members[:count])
  splits = dict(listing.splits)
  splits['train'] = tuple(v for v in listing.splits['train'] if v.video_id not in held)
  splits[VALIDATION] = tuple(v for v in listing.splits['train'] if v.video_id in held)
  return dataclasses.replace(listing, splits=splits)


def load(
    name: str,
    source: str | os.PathLike,
    *,
    split: int | str = 1,
    splits_dir: str | None = None,
    annotations_dir: str | None = None,
) -> Listing:
  """Lists dataset `name` (one of DATASETS; 'synthetic' must already be generated into `source`)."""
  if name == 'ucf101':
    return ucf101(source, split=split, splits_dir=splits_dir)
  if name == 'hmdb51':
    return hmdb51(source, split=split, splits_dir=splits_dir)
  if name == 'kinetics400':
    return kinetics400(source, annotations_dir=annotations_dir)
  if name in ('folder', 'synthetic'):
    return folder(source, name=name)
  raise DatasetError(f'Unknown dataset {name!r}; use one of {DATASETS}.')
