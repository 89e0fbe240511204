"""Data parallelism with jax.sharding: a 1-D mesh over devices, batches sharded, state and data replicated.

Nothing here is a home-made scheme: jit + NamedSharding lets XLA partition each step over the mesh and
all-reduce gradients and batch-norm statistics (so they are those of the global batch). Several hosts
join through `jax.distributed.initialize()` (see `initialize_distributed`).
"""

from __future__ import annotations

import os

import jax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

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
