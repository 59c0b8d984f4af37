"""One gloo rank of a multi-process test: the group set up, and torn down the way the launcher does."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.distributed as dist

from golfprof.ablations.launch import shutdown_process_group
from golfprof.model.train import DistInfo


@contextlib.contextmanager
def gloo_rank(rank: int, world: int, store: str) -> Iterator[DistInfo]:
    """Join a file-store gloo group as ``rank``; a clean exit barriers before destroying the group."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    ok = False
    try:
        yield DistInfo(world_size=world, rank=rank, local_rank=rank, backend="gloo")
        ok = True
    finally:
        shutdown_process_group(ok)
