"""A one-line progress report for long offline jobs: done/total, failures, rate and ETA."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_duration(seconds: float) -> str:
  """Seconds -> 'H:MM:SS'."""
  seconds = int(round(seconds))
  return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


class Progress:
  """Reports `done/total items, N failed, rate, ETA` on one line.

  On a terminal the line is redrawn in place; elsewhere (logs, CI) a new line is printed at most every
  `log_interval_s` seconds, and always at the end.
  """

  def __init__(self, total: int, *, unit: str = 'videos', prefix: str = '', stream: TextIO | None = None,
               log_interval_s: float = 10.0):
    self.total, self.unit, self.prefix = total, unit, prefix
    self.stream = stream if stream is not None else sys.stderr
    self.interactive = hasattr(self.stream, 'isatty') and self.stream.isatty()
    self.log_interval_s = 0.2 if self.interactive else log_interval_s
    self.done = self.failed = 0
    self._start = self._last_report = time.monotonic()

  def line(self) -> str:
    elapsed = max(time.monotonic() - self._start, 1e-9)
    rate = self.done / elapsed
    text = f'{self.prefix}{self.done}/{self.total} {self.unit}'
    if self.failed:
      text += f', {self.failed} failed'
    text += f', {rate:.2f} {self.unit}/s'
    if self.done < self.total:
      text += f', ETA {format_duration((self.total - self.done) / rate) if rate > 0 else "?"}'
    else:
      text += f', took {format_duration(elapsed)}'
    return text

  def update(self, done: int = 1, failed: int = 0) -> None:
    """Counts `done` more items, `failed` of which failed, and reports when it is time to."""
    self.done += done
    self.failed += failed
    now = time.monotonic()
    if now - self._last_report >= self.log_interval_s:
      self._last_report = now
      self._write()

  def close(self) -> None:
    """Writes the final line."""
    self._write()
    if self.interactive:
      self.stream.write('\n')
    self.stream.flush()

  def _write(self) -> None:
    if self.interactive:
      self.stream.write('\r' + self.line() + '\033[K')
    else:
      self.stream.write(self.line() + '\n')
    self.stream.flush()
