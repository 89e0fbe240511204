"""Data parallelism with jax.sharding: a 1-D mesh over devices, batches sharded, state and data replicated.

Nothing here is a home-made scheme: jit + NamedSharding lets XLA partition each step over the mesh and
all-reduce gradients and batch-norm statistics (so they are those of the global batch). Several hosts
join through `jax.distributed.initialize()` (see `initialize_distributed`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

T = TypeVar("T")

AXIS = "data"


def make_mesh(devices: int | None = None) -> Mesh:
    """A 1-D mesh over the first `devices` devices (all when None), axis name 'data'."""
    available = jax.devices()
    n = len(available) if devices is None else devices
    if not 1 <= n <= len(available):
        raise ValueError(f"--devices={devices}: between 1 and {len(available)} devices are available")
    return Mesh(available[:n], (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array (train state, device-resident datasets)."""
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """The leading (batch) axis split over the mesh."""
    return NamedSharding(mesh, P(AXIS))


def check_divisible(batch_size: int, mesh: Mesh, flag: str = "--batch-size") -> None:
    """The global batch must split evenly over the devices."""
    n = mesh.devices.size
    if batch_size % n:
        raise ValueError(
            f"{flag} {batch_size} does not divide evenly over {n} devices; use a multiple of {n}"
        )


def initialize_distributed() -> bool:
    """Join a multi-host run: JAX_COORDINATOR_ADDRESS with JAX_NUM_PROCESSES and JAX_PROCESS_ID, or
    JAXADL_DISTRIBUTED=1 on a cluster that jax detects by itself (SLURM, Cloud TPU, ...).

    Call before any other JAX use. Returns True when several processes take part.
    """
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        n, pid = os.environ.get("JAX_NUM_PROCESSES"), os.environ.get("JAX_PROCESS_ID")
        jax.distributed.initialize(
            os.environ["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(n) if n else None,
            process_id=int(pid) if pid else None,
        )
    elif os.environ.get("JAXADL_DISTRIBUTED") == "1":
        jax.distributed.initialize()
    return jax.process_count() > 1


def is_main_process() -> bool:
    """True in process 0, the one that writes the run folder (always True with one process)."""
    return jax.process_index() == 0


def broadcast_text(text: str) -> str:
    """Process 0's `text` in every process (a no-op with one process)."""
    if jax.process_count() == 1:
        return text
    data = np.frombuffer(text.encode(), np.uint8) if is_main_process() else np.zeros(0, np.uint8)
    size = int(multihost_utils.broadcast_one_to_all(np.int32(len(data))))
    buffer = np.zeros(size, np.uint8)
    buffer[: len(data)] = data[:size]
    return bytes(np.asarray(multihost_utils.broadcast_one_to_all(buffer))).decode()


def on_main_first(fn: Callable[[], T], others: bool = True) -> T | None:
    """Run `fn` in process 0 first, then (`others`) in the other processes, which return None otherwise.

    A failure in process 0 is raised there and, as ValueError with its message, in every other process,
    so none waits forever. For steps with side effects on a shared filesystem: preparing a dataset cache
    once before the others read it, creating the run folder in process 0 alone.
    """
    if jax.process_count() == 1:
        return fn()
    failure, result = "", None
    if is_main_process():
        try:
            result = fn()
        except Exception as e:  # told to the other processes, then re-raised here
            broadcast_text(f"{type(e).__name__}: {e}")
            raise
    failure = broadcast_text(failure)
    if failure:
        raise ValueError(f"process 0 stopped: {failure}")
    if is_main_process():
        return result
    return fn() if others else None
