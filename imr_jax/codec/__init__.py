"""Compressed-domain decoding: CoViAR's I-frames, motion vectors and residuals (METHOD.md section 2).

```python
from imr_jax import codec
info = codec.reencode('in.mp4', 'out.m4v')          # MPEG-4 Part 2, 340x256, q=1, GOP 12
for gop in codec.iter_gops('out.m4v'):               # one sequential decode pass
  gop.iframe, gop.motion_vectors, gop.residuals
```
The per-frame work runs in numba kernels (`kernels.py`) by default; `backend='numpy'` and
`backend='reference'` give the same arrays without them (tests/test_codec.py checks all three).
Every user-caused failure raises `codec.CodecError`, whose message names the file and the fix.
"""

from imr_jax.codec.errors import CodecError
from imr_jax.codec.gops import BACKENDS as GOP_BACKENDS
from imr_jax.codec.gops import Gop
from imr_jax.codec.gops import GopBuilder
from imr_jax.codec.gops import iter_gops
from imr_jax.codec.motion import BLOCK_FIELDS
from imr_jax.codec.motion import MotionMapper
from imr_jax.codec.motion import motion_map
from imr_jax.codec.motion import reference_motion_map
from imr_jax.codec.stream import probe
from imr_jax.codec.stream import reencode
from imr_jax.codec.stream import StreamInfo

__all__ = [
    'BLOCK_FIELDS',
    'CodecError',
    'GOP_BACKENDS',
    'Gop',
    'GopBuilder',
    'MotionMapper',
    'StreamInfo',
    'iter_gops',
    'motion_map',
    'probe',
    'reencode',
    'reference_motion_map',
]
