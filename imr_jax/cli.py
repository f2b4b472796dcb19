"""What the project's command lines share: a user's mistake ends in one clean message, not a traceback.

Every entry point runs through `cli.run(main)` instead of `absl.app.run(main)`:
  - flag and config errors (a wrong --config path, an unknown or mistyped config key, a bad value, an
    unknown variant) are reported while the flags are parsed, before TensorFlow or JAX start;
  - a `UserError` (or the ValueError / FileNotFoundError our own checks raise with a message naming the
    input and the fix) ends the run with that message and exit status 1;
  - `--verbosity=1` (or higher) shows the traceback as well, for bug reports.
This module imports neither TensorFlow nor JAX, so the checks before them cost milliseconds.
"""

import difflib
import glob
import os
import pathlib
import re
import sys
from typing import Callable, NoReturn, Sequence

from absl import app, flags

FLAGS = flags.FLAGS
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)
CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs')


def define_seeds(default: Sequence[int], help_text: str) -> None:
  """--seeds=0,1,2: a list of integers, checked while the flags are parsed."""
  flags.DEFINE_list('seeds', [str(s) for s in default], help_text)
  flags.register_validator(
      'seeds',
      lambda values: bool(values) and all(re.fullmatch(r'\d+', v) for v in values),
      message='--seeds must be non-negative integers separated by commas, e.g. --seeds=0,1,2.',
  )


class UserError(ValueError):
  """A mistake in what the user asked for; its message names the input and the fix."""


def _wants_traceback(argv: Sequence[str]) -> bool:
  for arg in argv:
    match = re.fullmatch(r'--(?:verbosity|v)=(-?\d+)', arg)
    if match and int(match.group(1)) >= 1:
      return True
  return False


def import_tensorflow():
  """Imports TensorFlow without the C++ start-up lines it writes to stderr; returns the module.

  TensorFlow 2.21 logs them (its CPU-instructions and oneDNN notices) through absl before absl's logging
  is initialised, so TF_CPP_MIN_LOG_LEVEL does not reach them. The process's stderr is pointed at
  /dev/null for the import alone: Python errors still raise and print, and `--verbosity=1` keeps the
  lines.
  """
  if 'tensorflow' in sys.modules or _wants_traceback(sys.argv):
    import tensorflow  # pylint: disable=g-import-not-at-top

    return tensorflow
  sys.stderr.flush()
  saved = os.dup(2)
  try:
    with open(os.devnull, 'w') as devnull:
      os.dup2(devnull.fileno(), 2)
    import tensorflow  # pylint: disable=g-import-not-at-top
  finally:
    os.dup2(saved, 2)
    os.close(saved)
  return tensorflow


def fail(message: str) -> NoReturn:
  """Prints `message` as the command's one error line(s) and exits with status 1."""
  program = os.path.basename(sys.argv[0]) if sys.argv else 'imr_jax'
  if program == '__main__.py':
    program = os.path.basename(os.path.dirname(sys.argv[0]))
  print(f'{program}: error: {message}', file=sys.stderr, flush=True)
  sys.exit(1)


def available_configs() -> list[str]:
  """The config files: the modules of configs/ that define get_config."""
  return sorted(
      os.path.relpath(path)
      for path in glob.glob(os.path.join(CONFIG_DIR, '*.py'))
      if 'def get_config(' in pathlib.Path(path).read_text()
  )


def _config_flag_names() -> list[str]:
  # config_flags registers a flag whose parser loads the file; its value is a ConfigDict.
  return [
      name
      for name, flag in FLAGS._flags().items()  # pylint: disable=protected-access
      if type(flag.parser).__name__ in ('_ConfigFileParser', 'ConfigFileFlagParser')
  ]


def _explain(error: BaseException, argv: Sequence[str]) -> str:
  """One message for a flag-parsing failure, naming the flag and the fix."""
  text = str(error)
  if isinstance(error, AttributeError):  # an override of a key the config does not have
    names = re.findall(r"'([^'\\]+)", text)
    key = names[0] if names else '?'
    used = [arg.split('=')[0] for arg in argv if re.match(rf'--\w+\.(?:\w+\.)*{re.escape(key)}(=|$)', arg)]
    suggestion = re.search(r'Did you mean "([^"]+)"', text)
    hint = f' Did you mean {suggestion.group(1)!r}?' if suggestion else ''
    return f'{used[0] if used else key}: the config has no key {key!r}.{hint} (See the config file for its keys.)'
  if 'Error whilst parsing config file' in text:  # the config's get_config raised: keep its own words
    last = [line for line in text.strip().splitlines() if line.strip()][-1]
    flag = text.split(':', 1)[0].replace('flag ', '')
    return f'{flag}: {last.split(": ", 1)[-1]}'
  return text.replace('\n', ' ') + '. Pass --help for the flags of this command.'


def parse_flags(argv: Sequence[str]) -> list[str]:
  """absl's flag parsing, with every config or flag mistake turned into one clean message."""
  try:
    rest = FLAGS(argv)
    for name in _config_flag_names():
      value = FLAGS[name].value
      if type(value).__name__ == '_ErrorConfig':  # config_flags defers a load error to first use
        path = next((arg.split('=', 1)[1] for arg in argv if arg.startswith(f'--{name}=')), '?')
        file_name = path.split(':')[0]
        if not os.path.exists(file_name):
          stems = {os.path.splitext(os.path.basename(c))[0]: c for c in available_configs()}
          close = difflib.get_close_matches(os.path.splitext(os.path.basename(file_name))[0], stems, n=1)
          hint = f' Did you mean {stems[close[0]]}?' if close else ''
          fail(
              f'--{name}={path}: there is no file {file_name!r}.{hint} The configs are: '
              f'{", ".join(available_configs())}.'
          )
        value.some_key  # pylint: disable=pointless-statement  (raises the load error)
    return rest
  except SystemExit:
    raise
  except Exception as e:  # pylint: disable=broad-except
    if _wants_traceback(argv):
      raise
    fail(_explain(e, argv))


def run(main: Callable[[list[str]], object]) -> None:
  """absl.app.run(main) with clean messages for flag mistakes and for the user errors main raises."""

  def guarded(argv: list[str]) -> object:
    try:
      return main(argv)
    except USER_ERRORS as e:
      if _wants_traceback(sys.argv):
        raise
      fail(str(e) if isinstance(e, UserError) else f'{e} (--verbosity=1 shows the traceback.)')

  app.run(guarded, flags_parser=parse_flags)
