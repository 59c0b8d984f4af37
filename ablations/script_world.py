"""A simulated world for a foreign script: the process is rank R of a world of N over the fake backend.

The script sees what torchrun would give rank R (``RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``MASTER_*``), so
its world-dependent shapes (gradient accumulation, data shards, optimizer shards) are rank R's at world N. The one
process has one device: ``LOCAL_RANK`` is 0 and ``torch.cuda.set_device`` goes to device 0 whatever it is asked.
``init_process_group`` is answered by simulate.py's fake group (whatever backend and init method the script names)
and the script's ``destroy_process_group()`` is left to golfprof's teardown, which ends the fake group after the
script's last collective. DDP gets the recording comm hook (profiler/script_hooks' ddp_recording, on every
backend), which the fake backend needs: its own work objects carry no bucket.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

import torch
import torch.distributed as dist

from .simulate import fake_world

SIMULATED_ENV = "GOLFPROF_SIMULATED_WORLD"  # set for the script: "<rank>/<world>", so a reader can tell


def world_env(world: int, rank: int, nodes: int) -> dict[str, str]:
    """The variables torchrun sets for ``rank``, as one process on one device plays it."""
    per_node = world // nodes
    return {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": str(per_node),
            "GROUP_RANK": str(rank // per_node), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500",
            SIMULATED_ENV: f"{rank}/{world}"}


@contextlib.contextmanager
def simulated_world(world: int, rank: int, nodes: int = 1) -> Iterator[None]:
    """The environment, ``init_process_group``, ``destroy_process_group`` and ``set_device`` of rank ``rank``."""
    saved_env = {k: os.environ.get(k) for k in world_env(world, rank, nodes)}
    os.environ.update(world_env(world, rank, nodes))
    init, destroy, set_device = dist.init_process_group, dist.destroy_process_group, torch.cuda.set_device
    group = contextlib.ExitStack()

    def init_process_group(*args: Any, **kwargs: Any) -> None:
        dist.init_process_group = init  # fake_world's own call goes to torch
        try:
            group.enter_context(fake_world(world, rank))
        finally:
            dist.init_process_group = init_process_group

    def destroy_process_group(group_: Any = None) -> None:
        if group_ is not None:
            destroy(group_)

    def set_device_0(device: Any) -> None:
        set_device(0)

    dist.init_process_group, dist.destroy_process_group = init_process_group, destroy_process_group
    torch.cuda.set_device = set_device_0
    try:
        yield
    finally:
        dist.init_process_group, dist.destroy_process_group, torch.cuda.set_device = init, destroy, set_device
        group.close()
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
