"""A procedural video dataset whose labels are defined by motion: the embedded default for CPU demos.

Every video shows a textured object moving over a textured background seen by a camera that pans with
random smooth jitter. The class is how the object moves:

  rise     straight up (wrapping around), at a random horizontal position
  fall     straight down (wrapping around)
  sweep    straight left or right (both in one class, so a horizontal flip never changes the label)
  circle   around a random centre, either way round
  zoom     growing or shrinking in place while drifting slowly
  bounce   hopping along the floor under gravity, left or right

Appearance (textures, colours, sizes, start positions, speeds) is random and independent of the class, so
only motion tells the classes apart; the moving object is where the motion energy peaks and it moves
between grid cells over time (PMSP is non-trivial), and the I-frames and P-frames of a video agree only in
their own GOPs (CTP is non-trivial). Videos are rendered in numpy and written as real MPEG-4 Part 2 AVI
files with PyAV, deterministic from a seed, laid out for the folder adapter:
SOURCE/<split>/<class>/<class>_<index>.avi, with SOURCE/synthetic.json recording the settings.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib

import av
from av.video.reformatter import Interpolation
import numpy as np

from imr_jax.codec.stream import EXACT_ENCODER_OPTIONS
from imr_jax.codec.stream import EXACT_SCALING

CLASSES = ('rise', 'fall', 'sweep', 'circle', 'zoom', 'bounce')
SPLITS = ('train', 'test')
SETTINGS_FILE = 'synthetic.json'


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """Settings of the synthetic dataset (all sizes in pixels).

  Attributes:
    width, height: frame size (even numbers, for 4:2:0 video).
    num_frames: frames per video.
    train_per_class, test_per_class: videos per class in each split.
    classes: which motion classes (a subset of CLASSES, in this order).
    seed: everything is a deterministic function of it.
    fps: frame rate written into the files.
  """

  width: int = 128
  height: int = 96
  num_frames: int = 48
  train_per_class: int = 8
  test_per_class: int = 3
  classes: tuple[str, ...] = CLASSES
  seed: int = 0
  fps: int = 25

  def __post_init__(self):
    if self.width % 2 or self.height % 2 or self.width < 16 or self.height < 16:
      raise ValueError(f'Synthetic frame size must be even and at least 16x16, got {self.width}x{self.height}.')
    if self.num_frames < 2:
      raise ValueError(f'Synthetic videos need at least 2 frames, got num_frames={self.num_frames}.')
    unknown = set(self.classes) - set(CLASSES)
    if unknown or not self.classes:
      raise ValueError(f'Unknown synthetic classes {sorted(unknown)}; choose from {CLASSES}.')

  def videos_per_class(self, split: str) -> int:
    return {'train': self.train_per_class, 'test': self.test_per_class}[split]


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
  """float (height, width) in [0, 1]: random values on a coarse grid, bilinearly upsampled."""
  rows, cols = height // cell + 2, width // cell + 2
  coarse = rng.random((rows, cols))
  y = np.arange(height) / cell
  x = np.arange(width) / cell
  y0, x0 = y.astype(int), x.astype(int)
  fy, fx = (y - y0)[:, None], (x - x0)[None, :]
  top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x0 + 1] * fx
  bottom = coarse[y0 + 1][:, x0] * (1 - fx) + coarse[y0 + 1][:, x0 + 1] * fx
  return top * (1 - fy) + bottom * fy


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """float32 (height, width, 3) RGB in [0, 255]: two-colour noise plus a grating, rich enough to track."""
  # Two colours well apart, so block matching finds texture to lock on to.
  first = rng.uniform(30, 225, size=3)
  direction = rng.normal(size=3)
  second = np.clip(first + direction / np.linalg.norm(direction) * rng.uniform(80, 140), 0, 255)
  colours = np.stack([first, second])
  cell = int(rng.integers(3, 9))
  mix = 0.6 * _smooth_noise(rng, height, width, cell) + 0.4 * _smooth_noise(rng, height, width, 2)
  angle = rng.uniform(0, math.pi)
  period = rng.uniform(4, 12)
  yy, xx = np.mgrid[:height, :width]
  grating = 0.5 + 0.5 * np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)
  mix = 0.75 * mix + 0.25 * grating
  mix = ((mix - mix.min()) / max(mix.max() - mix.min(), 1e-6))[..., None]  # Full contrast.
  return (colours[0] * (1 - mix) + colours[1] * mix).astype(np.float32)


def trajectory(
    rng: np.random.Generator, motion: str, config: SyntheticConfig, radius: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Object centre x, y and scale per frame, float64 (T,) each, for one motion class."""
  w, h, t = config.width, config.height, np.arange(config.num_frames, dtype=np.float64)
  unit = h / 96  # Speeds are set for 96-pixel-high frames and scale with the frame.
  speed = rng.uniform(1.5, 3.0) * unit
  scale = np.ones_like(t)
  if motion in ('rise', 'fall'):
    x = np.full_like(t, rng.uniform(0.2, 0.8) * w)
    sign = -1 if motion == 'rise' else 1
    # Wrap around the frame (plus the object's size) so that the direction never changes.
    span = h + 2 * radius
    y = (rng.uniform(0, span) + sign * speed * t) % span - radius
  elif motion == 'sweep':
    y = np.full_like(t, rng.uniform(0.25, 0.75) * h)
    span = w + 2 * radius
    x = (rng.uniform(0, span) + rng.choice([-1, 1]) * speed * t) % span - radius
  elif motion == 'circle':
    orbit = rng.uniform(0.2, 0.3) * h
    centre_x, centre_y = rng.uniform(0.35, 0.65) * w, rng.uniform(0.4, 0.6) * h
    angle = rng.uniform(0, 2 * math.pi) + rng.choice([-1, 1]) * (speed / orbit) * t
    x, y = centre_x + orbit * np.cos(angle), centre_y + orbit * np.sin(angle)
  elif motion == 'zoom':
    x = rng.uniform(0.3, 0.7) * w + rng.uniform(-0.3, 0.3) * unit * t
    y = rng.uniform(0.3, 0.7) * h + rng.uniform(-0.3, 0.3) * unit * t
    rate = rng.uniform(0.02, 0.035) * rng.choice([-1, 1])
    # Grow from small or shrink from large, within [0.5, 2.2] of the base size.
    start = 0.5 if rate > 0 else 2.2
    scale = np.clip(start * np.exp(rate * t), 0.5, 2.2)
  elif motion == 'bounce':
    floor = h - radius
    hop_frames = rng.uniform(14, 22)
    hop_height = rng.uniform(0.35, 0.6) * h
    phase = (t / hop_frames + rng.uniform(0, 1)) % 1.0
    y = floor - 4 * hop_height * phase * (1 - phase)
    span = w + 2 * radius
    x = (rng.uniform(0, span) + rng.choice([-1, 1]) * 0.7 * speed * t) % span - radius
  else:
    raise ValueError(f'Unknown synthetic class {motion!r}; choose from {CLASSES}.')
  return x, y, scale


def render_video(config: SyntheticConfig, motion: str, seed: int | np.random.SeedSequence) -> np.ndarray:
  """Renders one video.

  Args:
    config: sizes and frame count.
    motion: the class, one of CLASSES.
    seed: determines everything random (appearance, start, speed, camera jitter).

  Returns:
    uint8 (num_frames, height, width, 3) RGB frames.
  """
  rng = np.random.default_rng(seed)
  w, h, num_frames = config.width, config.height, config.num_frames
  margin = int(math.ceil(0.15 * h))
  background = _texture(rng, h + 2 * margin, w + 2 * margin)
  radius = rng.uniform(0.11, 0.17) * h
  patch_size = int(math.ceil(2.2 * 2 * radius)) + 3  # Large enough for the biggest zoom.
  sprite = _texture(rng, patch_size, patch_size)

  # Camera: smooth random pan, a low-pass filtered random walk kept inside the background's margin.
  velocity = np.zeros(2)
  camera = np.zeros((num_frames, 2))
  position = rng.uniform(-margin / 2, margin / 2, size=2)
  for i in range(num_frames):
    velocity = 0.8 * velocity + rng.normal(0, 0.25, size=2) * h / 96
    position = np.clip(position + velocity, -margin, margin)
    camera[i] = position

  x, y, scale = trajectory(rng, motion, config, radius)
  yy, xx = np.mgrid[:h, :w].astype(np.float64)
  frames = np.empty((num_frames, h, w, 3), np.uint8)
  for i in range(num_frames):
    top, left = int(round(camera[i, 1])) + margin, int(round(camera[i, 0])) + margin
    frame = background[top : top + h, left : left + w].copy()
    # Object: a textured disc, sprite coordinates scaled about its centre, with a 1-pixel soft edge.
    u, v = (xx - x[i]) / scale[i], (yy - y[i]) / scale[i]
    distance = np.sqrt(u * u + v * v) * scale[i]
    alpha = np.clip(radius * scale[i] - distance + 0.5, 0, 1)[..., None]
    centre = patch_size // 2
    rows = np.clip(np.round(v).astype(int) + centre, 0, patch_size - 1)
    cols = np.clip(np.round(u).astype(int) + centre, 0, patch_size - 1)
    frame = frame * (1 - alpha) + sprite[rows, cols] * alpha
    frame += rng.normal(0, 1.5, size=frame.shape)  # Sensor noise: residuals are never exactly zero.
    frames[i] = np.clip(np.round(frame), 0, 255).astype(np.uint8)
  return frames


def write_video(frames: np.ndarray, path: str | os.PathLike, fps: int = 25) -> None:
  """Writes uint8 (T, H, W, 3) RGB frames as an MPEG-4 Part 2 video (container from the suffix)."""
  with av.open(str(path), mode='w') as container:
    stream = container.add_stream('mpeg4', rate=fps)
    stream.width, stream.height = frames.shape[2], frames.shape[1]
    stream.pix_fmt = 'yuv420p'
    stream.bit_rate = 2_000_000
    # One thread, bit-exact DCTs and colour conversion: the bytes depend on nothing but the frames,
    # not on the machine's SIMD instruction set.
    stream.codec_context.thread_count = 1
    stream.codec_context.flags |= av.codec.context.Flags.bitexact
    stream.codec_context.options = dict(EXACT_ENCODER_OPTIONS)
    for frame in frames:
      yuv = av.VideoFrame.from_ndarray(frame, format='rgb24').reformat(
          format='yuv420p', threads=1, interpolation=Interpolation.BILINEAR | EXACT_SCALING
      )
      for packet in stream.encode(yuv):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


def video_seed(config: SyntheticConfig, split: str, motion: str, index: int) -> np.random.SeedSequence:
  """The seed of one video: independent of which other videos or classes are generated."""
  return np.random.SeedSequence([config.seed, SPLITS.index(split), CLASSES.index(motion), index])


def generate(config: SyntheticConfig, root: str | os.PathLike) -> pathlib.Path:
  """Writes the dataset into `root` (SOURCE/<split>/<class>/<class>_<index>.avi), unless already there.

  A folder that already holds this exact dataset (same settings in synthetic.json, every file present) is
  left as it is; a folder holding anything else is an error, so that no one's data is overwritten.

  Returns:
    The dataset root.
  """
  root = pathlib.Path(root)
  settings = dataclasses.asdict(config)
  settings['classes'] = list(config.classes)
  settings_path = root / SETTINGS_FILE
  paths = {
      (split, motion, index): root / split / motion / f'{motion}_{index:03d}.avi'
      for split in SPLITS
      for motion in config.classes
      for index in range(config.videos_per_class(split))
  }
  if settings_path.is_file():
    with open(settings_path) as f:
      existing = json.load(f)
    if existing != settings:
      raise ValueError(
          f'{str(root)!r} holds a synthetic dataset with other settings ({existing}); use another '
          '--source folder or delete this one.'
      )
    if all(path.is_file() for path in paths.values()):
      return root
  elif root.is_dir() and any(root.iterdir()):
    raise ValueError(
        f'{str(root)!r} is not empty and holds no {SETTINGS_FILE}; generate the synthetic '
        'dataset into a new or empty folder.'
    )
  root.mkdir(parents=True, exist_ok=True)
  with open(settings_path, 'w') as f:
    json.dump(settings, f, indent=2)
  for (split, motion, index), path in paths.items():
    if path.is_file():
      continue
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = render_video(config, motion, video_seed(config, split, motion, index))
    # Written under a temporary name: a killed generation never leaves a half-written video behind.
    partial = path.with_name(f'.{path.stem}.partial.avi')  # Hidden: adapters skip it.
    write_video(frames, partial, config.fps)
    os.replace(partial, path)
  return root
