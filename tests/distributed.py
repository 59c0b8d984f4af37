"""One gloo rank of a multi-process test: the group set up, and torn down the way the launcher does; and the
ranks run beside this process's own side of a test."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

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


@contextlib.contextmanager
def ranks_beside(worker: Callable[..., None], args: tuple[Any, ...], nprocs: int) -> Iterator[None]:
    """``nprocs`` spawned ranks (``worker(rank, *args)``) running while the block does this process's side of the
    test on one thread (the cores are shared with them), then waited for."""
    ranks = mp.start_processes(worker, args=args, nprocs=nprocs, start_method="spawn", join=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        while not ranks.join():
            pass
