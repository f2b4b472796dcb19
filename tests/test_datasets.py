"""Dataset adapters on small hand-written layouts and split files, and the synthetic generator."""

import hashlib
import pathlib

import numpy as np
import pytest

from data_prep import datasets
from data_prep import synthetic


def _touch(root: pathlib.Path, *relative: str) -> None:
  for name in relative:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'video')


def _write(path: pathlib.Path, text: str) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text)


# ---------------------------------------------------------------------------------------------------- UCF101


@pytest.fixture
def ucf101(tmp_path):
  source = tmp_path / 'UCF-101'
  _touch(
      source,
      'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi',
      'ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi',
      'HandstandPushups/v_HandStandPushups_g08_c01.avi',
      'HandstandPushups/v_HandStandPushups_g01_c01.avi',
  )
  lists = tmp_path / 'ucfTrainTestlist'
  _write(lists / 'classInd.txt', '1 ApplyEyeMakeup\n2 HandstandPushups\n')
  _write(
      lists / 'trainlist01.txt',
      'HandstandPushups/v_HandStandPushups_g08_c01.avi 2\nApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n',
  )
  # The official test list spells one class folder differently from classInd.txt.
  _write(
      lists / 'testlist01.txt',
      'ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\nHandstandPushups/v_HandStandPushups_g01_c01.avi\r\n\r\n',
  )
  _write(lists / 'trainlist02.txt', 'ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\n')
  _write(lists / 'testlist02.txt', 'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi\n')
  return source, lists


def test_ucf101_official_split(ucf101):
  source, _ = ucf101
  listing = datasets.load('ucf101', source, split=1)  # Split files found beside the source.
  assert listing.name == 'ucf101'
  assert listing.label_names == ('ApplyEyeMakeup', 'HandstandPushups')
  assert [(v.video_id, v.label) for v in listing.splits['train']] == [
      ('ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi', 0),
      ('HandstandPushups/v_HandStandPushups_g08_c01.avi', 1),
  ]
  assert [(v.video_id, v.label) for v in listing.splits['test']] == [
      ('ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi', 0),
      ('HandstandPushups/v_HandStandPushups_g01_c01.avi', 1),
  ]
  assert listing.splits['test'][0].path == str(source.resolve() / 'ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi')
  split2 = datasets.ucf101(source, split=2)
  assert [v.video_id for v in split2.splits['train']] == ['ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi']


def test_ucf101_errors(ucf101, tmp_path):
  source, lists = ucf101
  with pytest.raises(datasets.DatasetError, match='trainlist03.txt'):
    datasets.ucf101(source, split=3)
  with pytest.raises(datasets.DatasetError, match='official splits'):
    datasets.ucf101(source, split=4)
  with pytest.raises(datasets.DatasetError, match='is not a folder'):
    datasets.ucf101(tmp_path / 'nowhere')
  with pytest.raises(datasets.DatasetError, match='--splits_dir'):
    datasets.ucf101(source, splits_dir=tmp_path / 'no_lists')
  (source / 'ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi').unlink()
  with pytest.raises(datasets.DatasetError, match='1 UCF101 videos named by the split files are not under'):
    datasets.ucf101(source)
  _write(lists / 'trainlist01.txt', 'Juggling/v_Juggling_g01_c01.avi 3\n')
  with pytest.raises(datasets.DatasetError, match="class 'Juggling' is not in classInd.txt"):
    datasets.ucf101(source)
  _write(lists / 'trainlist01.txt', 'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 2\n')
  with pytest.raises(datasets.DatasetError, match='has class index 2'):
    datasets.ucf101(source)


def _ucf101_three_splits(tmp_path):
  """Four groups of actors (g01..g04) of two classes; split N tests on group N, trains on the others."""
  source, lists = tmp_path / 'UCF-101', tmp_path / 'ucfTrainTestlist'
  classes = ('ApplyEyeMakeup', 'Knitting')
  videos = {group: [f'{c}/v_{c}_g0{group}_c01.avi' for c in classes] for group in (1, 2, 3, 4)}
  _touch(source, *(v for group in videos.values() for v in group))
  _write(lists / 'classInd.txt', '1 ApplyEyeMakeup\n2 Knitting\n')
  for split in (1, 2, 3):
    _write(lists / f'testlist0{split}.txt', ''.join(f'{v}\n' for v in videos[split]))
    _write(
        lists / f'trainlist0{split}.txt',
        ''.join(f'{v} {classes.index(v.split("/")[0]) + 1}\n' for g in (1, 2, 3, 4) if g != split for v in videos[g]),
    )
  return source, videos


def test_all_ucf101_splits_store_each_video_once(tmp_path):
  source, videos = _ucf101_three_splits(tmp_path)
  listing = datasets.load('ucf101', source, split='all')
  parts = {name: [v.video_id for v in part] for name, part in listing.splits.items()}
  assert parts == {
      'part_test_train_train': videos[1],
      'part_train_test_train': videos[2],
      'part_train_train_test': videos[3],
      'part_train_train_train': videos[4],
  }
  assert sum(map(len, parts.values())) == 8  # every video once
  for number in (1, 2, 3):
    one = datasets.ucf101(source, split=number)
    for role in ('train', 'test'):
      union = sorted(v for part in listing.unions[f'{role}{number}'] for v in listing.splits[part])
      assert union == list(one.splits[role]), (role, number)


def test_all_hmdb51_splits_name_unused_videos(hmdb51):
  source, lists = hmdb51
  _write(lists / 'brush_hair_test_split3.txt', 'a.avi 1\nb.avi 1\nc.avi 2\n')
  _write(lists / 'climb_test_split3.txt', 'd.avi 1\ne.avi 2\n')
  listing = datasets.hmdb51(source, split='all')
  assert {name: [v.video_id for v in part] for name, part in listing.splits.items()} == {
      'part_none_train_test': ['brush_hair/c.avi'],
      'part_train_none_test': ['climb/e.avi'],
      'part_train_test_train': ['brush_hair/a.avi'],
      'part_test_train_train': ['brush_hair/b.avi'],
      'part_test_none_train': ['climb/d.avi'],
  }
  assert listing.unions['train1'] == ('part_train_none_test', 'part_train_test_train')
  assert listing.unions['test3'] == ('part_none_train_test', 'part_train_none_test')


# ---------------------------------------------------------------------------------------------------- HMDB51


@pytest.fixture
def hmdb51(tmp_path):
  source = tmp_path / 'hmdb51_org'
  _touch(source, 'brush_hair/a.avi', 'brush_hair/b.avi', 'brush_hair/c.avi', 'climb/d.avi', 'climb/e.avi')
  lists = tmp_path / 'testTrainMulti_7030_splits'
  _write(lists / 'brush_hair_test_split1.txt', 'a.avi 1 \nb.avi 2 \nc.avi 0 \n')
  _write(lists / 'climb_test_split1.txt', 'd.avi 2\ne.avi 1\n')
  _write(lists / 'brush_hair_test_split2.txt', 'a.avi 2\nb.avi 1\nc.avi 1\n')
  _write(lists / 'climb_test_split2.txt', 'd.avi 0\ne.avi 0\n')
  return source, lists


def test_hmdb51_official_split(hmdb51):
  source, lists = hmdb51
  listing = datasets.hmdb51(source, split=1, splits_dir=lists)
  assert listing.label_names == ('brush_hair', 'climb')
  assert [(v.video_id, v.label) for v in listing.splits['train']] == [('brush_hair/a.avi', 0), ('climb/e.avi', 1)]
  assert [(v.video_id, v.label) for v in listing.splits['test']] == [('brush_hair/b.avi', 0), ('climb/d.avi', 1)]
  listing = datasets.load('hmdb51', source, split=2)
  assert [v.video_id for v in listing.splits['train']] == ['brush_hair/b.avi', 'brush_hair/c.avi']
  assert [v.video_id for v in listing.splits['test']] == ['brush_hair/a.avi']


def test_hmdb51_errors(hmdb51):
  source, lists = hmdb51
  with pytest.raises(datasets.DatasetError, match='No HMDB51 split files'):
    datasets.hmdb51(source, split=3)
  _write(lists / 'climb_test_split1.txt', 'd.avi 2\nf.avi 1\n')
  with pytest.raises(datasets.DatasetError, match='not under'):
    datasets.hmdb51(source, split=1)
  _write(lists / 'climb_test_split1.txt', 'd.avi train\n')
  with pytest.raises(datasets.DatasetError, match='expected "<video>.avi 0|1|2"'):
    datasets.hmdb51(source, split=1)


# ---------------------------------------------------------------------------------------------------- Kinetics


@pytest.fixture
def kinetics(tmp_path):
  source = tmp_path / 'kinetics'
  # One downloader writes class folders, another flat folders; both are found by clip name.
  _touch(
      source,
      'train/abseiling/aaa_000010_000020.mp4',
      'train/air drumming/bbb_000000_000010.mp4',
      'val/ccc_000005_000015.mkv',
      'test/ddd_000001_000011.mp4',
  )
  header = 'label,youtube_id,time_start,time_end,split\n'
  _write(
      source / 'annotations/train.csv',
      header + 'abseiling,aaa,10,20,train\n"air drumming",bbb,0,10,train\nabseiling,zzz,3,13,train\n',
  )
  _write(source / 'annotations/validate.csv', header + '"air drumming",ccc,5,15,val\n')
  _write(source / 'annotations/test.csv', 'youtube_id,time_start,time_end,split\nddd,1,11,test\n')
  return source


def test_kinetics400(kinetics):
  listing = datasets.load('kinetics400', kinetics)
  assert listing.label_names == ('abseiling', 'air drumming')
  assert [(v.video_id, v.label) for v in listing.splits['train']] == [
      ('aaa_000010_000020', 0),
      ('bbb_000000_000010', 1),
  ]
  assert [(v.video_id, v.label) for v in listing.splits['validation']] == [('ccc_000005_000015', 1)]
  assert listing.splits['validation'][0].path.endswith('val/ccc_000005_000015.mkv')
  assert [(v.video_id, v.label) for v in listing.splits['test']] == [('ddd_000001_000011', -1)]
  # A clip the CSV names but the download lacks is reported, not fatal.
  assert [m['path'] for m in listing.missing['train']] == ['zzz_000003_000013']
  assert 'missing' in listing.missing['train'][0]['reason']
  assert listing.missing['validation'] == ()


def test_kinetics400_errors(kinetics, tmp_path):
  _write(kinetics / 'annotations/validate.csv', 'label,youtube_id,time_start,time_end,split\ncooking,ccc,5,15,val\n')
  with pytest.raises(datasets.DatasetError, match="label 'cooking', which train.csv does not have"):
    datasets.kinetics400(kinetics)
  (kinetics / 'annotations/validate.csv').unlink()
  with pytest.raises(datasets.DatasetError, match='lack validate.csv'):
    datasets.kinetics400(kinetics)
  with pytest.raises(datasets.DatasetError, match='--annotations_dir'):
    datasets.kinetics400(tmp_path / 'kinetics' / 'train')


def test_kinetics_clip_name():
  assert datasets.kinetics_clip_name('-abc_XYZ', '7', '17.0') == '-abc_XYZ_000007_000017'


# ---------------------------------------------------------------------------------------------------- folder


def test_folder(tmp_path):
  _touch(tmp_path, 'train/b/1.mp4', 'train/a/2.avi', 'train/a/.hidden', 'test/c/3.mkv', 'test/a/4.avi')
  (tmp_path / 'notes.txt').write_text('ignored: not inside a split')
  listing = datasets.load('folder', tmp_path)
  assert listing.label_names == ('a', 'b', 'c')  # Sorted union over all splits.
  assert sorted(listing.splits) == ['test', 'train']
  assert [(v.video_id, v.label) for v in listing.splits['train']] == [('train/a/2.avi', 0), ('train/b/1.mp4', 1)]
  assert [(v.video_id, v.label) for v in listing.splits['test']] == [('test/a/4.avi', 0), ('test/c/3.mkv', 2)]


def test_folder_errors(tmp_path):
  with pytest.raises(datasets.DatasetError, match='is not a folder'):
    datasets.folder(tmp_path / 'missing')
  with pytest.raises(datasets.DatasetError, match='no split folders'):
    datasets.folder(tmp_path)
  _touch(tmp_path, 'train/stray.avi')
  with pytest.raises(datasets.DatasetError, match='directly in a split folder'):
    datasets.folder(tmp_path)
  with pytest.raises(datasets.DatasetError, match='Unknown dataset'):
    datasets.load('imagenet', tmp_path)


# ---------------------------------------------------------------------------------------------------- synthetic

TINY = synthetic.SyntheticConfig(
    width=64, height=48, num_frames=24, train_per_class=2, test_per_class=1, classes=('rise', 'sweep')
)


def _digest(root: pathlib.Path) -> dict[str, str]:
  return {
      str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
      for p in sorted(root.rglob('*'))
      if p.is_file()
  }


def test_synthetic_is_deterministic_and_a_folder_dataset(tmp_path):
  first = synthetic.generate(TINY, tmp_path / 'a')
  second = synthetic.generate(TINY, tmp_path / 'b')
  assert _digest(first) == _digest(second)
  assert synthetic.generate(TINY, first) == first  # Already there: left as it is.
  listing = datasets.folder(first, name='synthetic')
  assert listing.label_names == ('rise', 'sweep')
  assert [v.video_id for v in listing.splits['test']] == ['test/rise/rise_000.avi', 'test/sweep/sweep_000.avi']
  assert len(listing.splits['train']) == 4


def test_synthetic_refuses_other_folders(tmp_path):
  (tmp_path / 'mine.txt').write_text('data')
  with pytest.raises(ValueError, match='not empty'):
    synthetic.generate(TINY, tmp_path)
  synthetic.generate(TINY, tmp_path / 'set')
  with pytest.raises(ValueError, match='other settings'):
    synthetic.generate(synthetic.SyntheticConfig(width=64, height=48, seed=1), tmp_path / 'set')
  with pytest.raises(ValueError, match='Unknown synthetic classes'):
    synthetic.SyntheticConfig(classes=('rise', 'jump'))


def _steps(values, span):
  """Frame-to-frame steps, without the jump where a wrapping motion re-enters the frame."""
  steps = np.diff(values)
  return steps[np.abs(steps) < span / 2]


@pytest.mark.parametrize('seed', range(3))
def test_synthetic_motion_defines_the_class(seed):
  config = synthetic.SyntheticConfig(width=64, height=48, num_frames=40)
  rng = lambda: np.random.default_rng(seed)
  x, y, scale = synthetic.trajectory(rng(), 'rise', config, radius=6)
  assert np.all(_steps(y, 48) < -0.5) and np.all(np.diff(x) == 0) and np.all(scale == 1)
  x, y, _ = synthetic.trajectory(rng(), 'fall', config, radius=6)
  assert np.all(_steps(y, 48) > 0.5) and np.all(np.diff(x) == 0)
  x, y, _ = synthetic.trajectory(rng(), 'sweep', config, radius=6)
  steps = _steps(x, 64)
  assert np.all(np.diff(y) == 0) and (np.all(steps > 0.5) or np.all(steps < -0.5))
  x, y, _ = synthetic.trajectory(rng(), 'circle', config, radius=6)
  dx, dy = np.diff(x), np.diff(y)
  turn = dx[:-1] * dy[1:] - dy[:-1] * dx[1:]  # The velocity turns one way all the time.
  assert (np.all(turn > 0) or np.all(turn < 0)) and np.ptp(x) > 5 and np.ptp(y) > 5
  x, y, scale = synthetic.trajectory(rng(), 'zoom', config, radius=6)
  assert np.all(np.diff(scale) > 0) or np.all(np.diff(scale) < 0)
  assert np.ptp(x) < 15 and np.ptp(y) < 15
  x, y, _ = synthetic.trajectory(rng(), 'bounce', config, radius=6)
  hops = np.sum(np.isclose(y, y.max(), atol=1.5))  # On the floor, once per hop.
  assert np.ptp(y) > 10 and hops >= 2 and np.all(y <= 48 - 6 + 1e-9)


def test_synthetic_render_is_deterministic():
  config = synthetic.SyntheticConfig(width=32, height=24, num_frames=3)
  seed = synthetic.video_seed(config, 'train', 'circle', 1)
  np.testing.assert_array_equal(
      synthetic.render_video(config, 'circle', seed), synthetic.render_video(config, 'circle', seed)
  )


def test_synthetic_classes_all_render():
  config = synthetic.SyntheticConfig(width=32, height=24, num_frames=4)
  videos = {m: synthetic.render_video(config, m, synthetic.video_seed(config, 'test', m, 0)) for m in synthetic.CLASSES}
  for motion, frames in videos.items():
    assert frames.shape == (4, 24, 32, 3), motion
    assert np.abs(np.diff(frames.astype(int), axis=0)).mean() > 1, f'{motion} does not move'


def test_hold_out_validation_is_stratified_and_depends_only_on_ids():
  videos = tuple(
      datasets.Video(f'c{label}/v{i}', f'/x/c{label}/v{i}.avi', label)
      for label, count in ((0, 10), (1, 5), (2, 1))
      for i in range(count)
  )
  listing = datasets.Listing('toy', ('a', 'b', 'c'), {'train': videos, 'test': videos[:2]})
  carved = datasets.hold_out_validation(listing, 0.2)
  validation = carved.splits[datasets.VALIDATION]
  assert sorted(v.label for v in validation) == [0, 0, 1]  # 2 of 10, 1 of 5, none of a lone video
  assert set(validation).isdisjoint(carved.splits['train'])
  assert set(validation) | set(carved.splits['train']) == set(videos)
  assert carved.splits['test'] == listing.splits['test']
  # More videos of other classes do not move this class's choice.
  extra = tuple(datasets.Video(f'c3/v{i}', f'/x/c3/v{i}.avi', 3) for i in range(4))
  bigger = datasets.hold_out_validation(datasets.Listing('toy', ('a', 'b', 'c', 'd'), {'train': videos + extra}), 0.2)
  assert {v for v in bigger.splits[datasets.VALIDATION] if v.label < 3} == set(validation)
  with pytest.raises(datasets.DatasetError, match='validation'):
    datasets.hold_out_validation(carved, 0.2)
  with pytest.raises(datasets.DatasetError, match='fraction'):
    datasets.hold_out_validation(listing, 1.5)
