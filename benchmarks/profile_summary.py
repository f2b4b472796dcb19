"""Where a jitted step's time goes, from a jax.profiler trace and the compiled program's text.

Each executed XLA operation in the trace (`args.hlo_op`) is looked up in the compiled HLO, whose metadata
names the Flax module it came from (`op_name`, e.g. 'transpose(jvp(MultiHeadModel))/backbone/i_stream/
res2/block1/conv1/conv_general_dilated'). Time is then summed by part of the network (stem, res2..res5,
the connections, the input norms, the heads, and outside the model: the optimizer, the loss and the
task's input preparation), by direction
(forward, backward) and by kind (convolution, batch norm, other). On a GPU the device's own events are
used; on a CPU the XLA worker threads'. Operations XLA created without metadata are counted as 'no
metadata' (on the CPU: weight-gradient convolutions it rewrote, about a quarter of the step at tiny sizes).

  summary = profile_summary.summarise(trace_dir, compiled.as_text())
  print(profile_summary.format_table(summary))
"""

import collections
import gzip
import json
import re

from etils import epath

_INSTRUCTION = re.compile(r'^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=.*?metadata=\{[^}]*?op_name="([^"]+)"', re.M)
_CONNECTION = re.compile(r'^(stem|res\d)_[imr]_to_[imr]$')
_STAGES = ('stem', 'res2', 'res3', 'res4', 'res5')


def op_names(hlo_text: str) -> dict[str, str]:
  """HLO instruction name -> the op_name metadata of the JAX operation it came from."""
  return {name: op_name for name, op_name in _INSTRUCTION.findall(hlo_text)}


def classify(hlo_op: str, op_name: str) -> tuple[str, str, str]:
  """(part, direction, kind) of one executed operation."""
  if not op_name:  # made by XLA without metadata (the CPU backend's rewritten weight-gradient convolutions)
    return 'no metadata', '?', 'convolution' if hlo_op.startswith('conv') else 'other'
  parts = op_name.split('/')
  direction = 'backward' if 'transpose(' in op_name else 'forward'
  part = 'optimizer, loss, rest'
  if any('MultiHeadModel' in p for p in parts):
    part = 'heads'
    for p in parts:
      if _CONNECTION.match(p):
        part = 'connections'
        break
      if p == 'input_norm':
        part = 'input norms'
        break
      if p in _STAGES:
        part = p
        break
  if hlo_op.startswith(('conv', 'cudnn-conv')) or 'conv_general_dilated' in parts[-1]:
    kind = 'convolution'
  elif any(p.startswith(('norm', 'shortcut_norm', 'input_norm', 'BatchNorm')) for p in parts):
    kind = 'batch norm'
  else:
    kind = 'other'
  return part, direction, kind


def _events(trace_dir: str) -> list[dict]:
  files = sorted(epath.Path(trace_dir).glob('plugins/profile/*/*.trace.json.gz'))
  if not files:
    raise FileNotFoundError(f'No *.trace.json.gz under {trace_dir}/plugins/profile: was jax.profiler.trace used?')
  with gzip.open(files[-1].open('rb')) as f:
    trace = json.load(f)
  processes = {
      e['pid']: e['args']['name']
      for e in trace['traceEvents']
      if e.get('ph') == 'M' and e.get('name') == 'process_name'
  }
  events = [e for e in trace['traceEvents'] if e.get('ph') == 'X' and 'hlo_op' in e.get('args', {})]
  on_device = [e for e in events if processes.get(e['pid'], '').startswith('/device:')]
  return on_device or events


def summarise(trace_dir: str, hlo_text: str, module: str = 'train_step') -> dict[tuple[str, str, str], float]:
  """Microseconds by (part, direction, kind) of the executions of the HLO module named like `module`."""
  names = op_names(hlo_text)
  totals: dict[tuple[str, str, str], float] = collections.defaultdict(float)
  for event in _events(trace_dir):
    if module not in event['args'].get('hlo_module', ''):
      continue
    hlo_op = event['args']['hlo_op']
    totals[classify(hlo_op, names.get(hlo_op, ''))] += float(event['dur'])
  return dict(totals)


def format_table(totals: dict[tuple[str, str, str], float], steps: int = 1) -> str:
  """Milliseconds per step and shares, by part (rows) and by direction and kind (columns)."""
  if not totals:
    return 'The trace holds no operations of the step.'
  grand = sum(totals.values())
  columns = sorted({(d, k) for _, d, k in totals})
  parts = sorted({p for p, _, _ in totals}, key=lambda p: -sum(v for (q, _, _), v in totals.items() if q == p))
  header = f'{"part":<18}' + ''.join(f'{d[:4] + " " + k[:11]:>18}' for d, k in columns) + f'{"ms/step":>10}{"share":>8}'
  lines = [header]
  for part in parts:
    cells = [totals.get((part, d, k), 0.0) / 1e3 / steps for d, k in columns]
    total = sum(cells)
    lines.append(
        f'{part:<18}' + ''.join(f'{c:>18.2f}' for c in cells) + f'{total:>10.2f}{total * 1e3 * steps / grand:>8.1%}'
    )
  kinds = collections.defaultdict(float)
  for (_, _, kind), value in totals.items():
    kinds[kind] += value
  lines.append(
      f'all: {grand / 1e3 / steps:.2f} ms/step of XLA operations; '
      + ', '.join(f'{kind} {value / grand:.1%}' for kind, value in sorted(kinds.items(), key=lambda kv: -kv[1]))
  )
  return '\n'.join(lines)
