"""Pictures of compressed-domain data: colour-coded motion, residuals, and labelled image grids.

numpy and Pillow only, so any part of the project (data_prep CLIs, notebooks, tests) can draw.
"""

from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image
from PIL import ImageDraw


def flow_to_rgb(motion: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
  """Colour-codes a motion field: hue = direction, saturation = magnitude, white = no motion.

  The usual optical-flow colour wheel: motion to the right is red, down is yellow-green, left is
  cyan, up is violet (image coordinates, y down).

  Args:
    motion: (H, W, 2) array, x then y, in pixels.
    max_magnitude: magnitude drawn fully saturated; default the field's own maximum (at least 1),
      so pass one value for a whole GOP to compare frames.

  Returns:
    uint8 (H, W, 3) RGB.
  """
  motion = np.asarray(motion, np.float32)
  magnitude = np.hypot(motion[..., 0], motion[..., 1])
  if max_magnitude is None:
    max_magnitude = max(float(magnitude.max(initial=0.0)), 1.0)
  saturation = np.clip(magnitude / max_magnitude, 0.0, 1.0)
  hue = (np.arctan2(motion[..., 1], motion[..., 0]) / (2 * np.pi)) % 1.0
  # HSV -> RGB with value 1: channel n in (5, 3, 1) is 1 - s * clip(min(k, 4 - k), 0, 1) with
  # k = (n + 6 * hue) mod 6.
  k = (np.array([5.0, 3.0, 1.0], np.float32) + hue[..., None] * 6.0) % 6.0
  rgb = 1.0 - saturation[..., None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
  return np.round(rgb * 255).astype(np.uint8)


def colour_wheel(height: int, width: int) -> np.ndarray:
  """The key to `flow_to_rgb`: a disk whose every point is coloured as the motion from its centre.

  The rim is the full-scale length (the `max_magnitude` a row was drawn with); outside the disk, white.
  Returns uint8 (height, width, 3) RGB.
  """
  radius = max(min(height, width) / 2 - 1, 1.0)
  ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
  motion = np.stack([xs - (width - 1) / 2, ys - (height - 1) / 2], axis=-1)
  wheel = flow_to_rgb(motion, max_magnitude=radius)
  wheel[np.hypot(motion[..., 0], motion[..., 1]) > radius] = 255
  return wheel


def residual_to_rgb(residual: np.ndarray, gain: float = 1.0) -> np.ndarray:
  """Shows a residual in [-255, 255] as grey 128 plus gain times the residual (clipped).

  Args:
    residual: (H, W, 3) int RGB residual.
    gain: contrast; CoViAR's network input is gain 1 (clip(r + 128, 0, 255)).

  Returns:
    uint8 (H, W, 3) RGB.
  """
  return np.clip(np.asarray(residual, np.float32) * gain + 128, 0, 255).astype(np.uint8)


def image_grid(
    rows: list[list[np.ndarray]],
    *,
    row_labels: list[str] | None = None,
    column_labels: list[str] | None = None,
    padding: int = 4,
    background: int = 255,
    max_width: int | None = None,
) -> np.ndarray:
  """Lays uint8 (h, w, 3) images out as a grid, with optional text labels.

  Args:
    rows: list of rows, each a list of uint8 (h, w, 3) images; all images the same size. Rows may
      be shorter than the longest one.
    row_labels: one text per row, drawn left of it.
    column_labels: one text per column, drawn above it.
    padding: pixels between cells.
    background: grey level of the canvas.
    max_width: if the grid would be wider, the images are scaled down (Lanczos) so that it is not;
      the labels keep their size, so they stay readable.

  Returns:
    uint8 (H, W, 3) RGB canvas.
  """
  if not rows or not any(rows):
    raise ValueError('image_grid needs at least one image')
  height, width = next(image for row in rows for image in row).shape[:2]
  num_columns = max(len(row) for row in rows)
  text_height = 12
  left = 8 + 7 * max((len(label) for label in row_labels or []), default=0) if row_labels else 0
  for r, row in enumerate(rows):
    for c, image in enumerate(row):
      if image.shape[:2] != (height, width):
        raise ValueError(f'image ({r}, {c}) is {image.shape[:2]}, expected {(height, width)}')
  if max_width and left + num_columns * (width + padding) + padding > max_width:
    width_now = max(1, (max_width - left - padding) // num_columns - padding)
    size = (width_now, max(1, round(height * width_now / width)))
    rows = [
        [np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS)) for image in row] for row in rows
    ]
    width, height = size
  top = text_height + padding if column_labels else 0
  canvas = np.full(
      (top + len(rows) * (height + padding) + padding, left + num_columns * (width + padding) + padding, 3),
      background,
      np.uint8,
  )
  for r, row in enumerate(rows):
    for c, image in enumerate(row):
      y = top + padding + r * (height + padding)
      x = left + padding + c * (width + padding)
      canvas[y : y + height, x : x + width] = image
  if row_labels or column_labels:
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    for r, label in enumerate(row_labels or []):
      y = top + padding + r * (height + padding) + height // 2 - 5
      draw.text((4, y), label, fill=(0, 0, 0))
    for c, label in enumerate(column_labels or []):
      draw.text((left + padding + c * (width + padding), 2), label, fill=(0, 0, 0))
    canvas = np.asarray(picture)
  return canvas


def save_image(image: np.ndarray, path: str | pathlib.Path) -> pathlib.Path:
  """Writes a uint8 (H, W, 3) image; the format follows the suffix (.png recommended)."""
  path = pathlib.Path(path)
  Image.fromarray(np.ascontiguousarray(image)).save(path)
  return path
