"""Data parallelism: one device mesh, the batch split on its 'data' axis, the train state replicated.

`jax.jit` over these shardings is the whole mechanism (no pmap): the compiler inserts the gradient
all-reduce, and BatchNorm statistics are means over the global batch because the model sees one global
array. The same code runs on one CPU, one GPU, or every chip of a multi-host pod.
"""

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = 'data'


def make_mesh(devices: list[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh over all devices of all processes (or `devices`), axis name 'data'."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over the 'data' axis, other dimensions whole."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """A full copy on every device (parameters, optimizer state, metrics)."""
  return NamedSharding(mesh, PartitionSpec())


def host_batch_size(global_batch_size: int, mesh: Mesh, name: str = 'batch_size') -> int:
  """The per-process share of a global batch; raises if it does not split evenly over devices.

  Args:
    global_batch_size: examples per step over all devices of all processes.
    mesh: the mesh the batch is split over.
    name: config key of the batch size, for the error message.
  Returns:
    global_batch_size // jax.process_count().
  """
  num_devices = mesh.devices.size
  if global_batch_size % num_devices:
    raise ValueError(
        f'config.{name}={global_batch_size} does not split evenly over {num_devices} devices; '
        f'set it to a multiple of {num_devices}.'
    )
  return global_batch_size // jax.process_count()


def global_batch(host_batch: dict[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles each process's host-local arrays into global arrays sharded on 'data'.

  Args:
    host_batch: a (nested) dict of numpy arrays whose leading dimension is the host batch size
      (global batch size / process count); other dimensions equal on all processes.
  Returns:
    The same tree of jax.Arrays with leading dimension = global batch size, split over the mesh.
  """
  sharding = data_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), host_batch)
