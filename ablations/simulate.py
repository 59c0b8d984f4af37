"""Simulated worlds: one process plays rank r of a world of N over torch.distributed's fake backend.

Every shape is the one rank r has at world N (its micro-batches, padded bank shards, packed groups,
DDP buckets) because the trainer is built for that world; only the collectives move no data. The
fake backend fills their outputs deterministically (a reduce-scatter's output is this rank's chunk
of its own input, an all-gather's every chunk is this rank's input, an all-reduce leaves its tensor
as it is: as if every rank had contributed what this one did), so orthogonalizers and loss stay
finite, but the losses of a simulated run mean nothing. The recorder (profiler/collectives.py)
notes every collective; golfprof.predict turns them and the rank's own timeline into a prediction.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gc
import math
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import torch.distributed as dist

from golfprof.errors import ConfigError
from golfprof.model.config import RunConfig
from golfprof.model.gpt import LAYER_MATRIX_BANKS
from golfprof.model.train import DistInfo, Trainer
from golfprof.profiler.collectives import Recorder, register_ddp_hook
from golfprof.profiler.record import RunRecord, Simulated
from golfprof.profiler.rundir import RunDir, environment, write_parquet

from .spec import RunSpec

LOSS_NOTE = "simulated world: collectives moved no data, so the losses of this run mean nothing"


# ---- which ranks differ ---------------------------------------------------------------------------

def _slice_rows(count: int, world: int, rank: int) -> int:
    """Real (unpadded) matrices in rank's slice of a group of ``count`` padded to a multiple of world."""
    per = math.ceil(count / world)
    return max(0, min(per, count - rank * per))


def role_signature(run: RunConfig, world: int, rank: int) -> tuple:
    """What rank's work depends on beyond the world size: its shard of every sharded group."""
    comm = run.toggles.comm
    if world == 1 or (comm == "ddp" and run.toggles.ddp_muon == "replicated"):
        return ()
    if comm == "ddp":  # round robin: the kinds (q, k, v, o, up, down) of the matrices this rank orthogonalizes
        kinds = len(LAYER_MATRIX_BANKS)
        return tuple(i % kinds for i in range(rank, kinds * run.model.num_layers, world))
    if comm == "packed":
        from types import SimpleNamespace

        from golfprof.model.sharded import KINDS, pack_rows, plan_packed

        rows = pack_rows(SimpleNamespace(cfg=run.model))
        sig = []
        for shape_rows in sorted(set(rows.values())):
            counts = {k: run.model.num_layers for k in KINDS if rows[k] == shape_rows}
            s, plan = plan_packed(counts, world)
            for slots in plan:
                mine = [x for x in slots[rank * s:(rank + 1) * s] if x is not None]
                sig.append((mine[0][0] if mine else None, len(mine)))
        return tuple(sig)
    return tuple(_slice_rows(shape[0], world, rank) for shape in run.model.bank_shapes().values())


def role_of(run: RunConfig, world: int) -> dict[int, int]:
    """Every rank's representative in ``roles``: the simulated rank whose work it repeats."""
    classes: dict[tuple, list[int]] = {}
    for r in range(world):
        classes.setdefault(role_signature(run, world, r), []).append(r)
    return {r: (0 if 0 in ranks else max(ranks)) for ranks in classes.values() for r in ranks}


def roles(run: RunConfig, world: int) -> list[int]:
    """One rank per distinct role (``--simulate-rank all`` runs exactly these): rank 0's, and for every
    other role its highest rank, so the last rank, which owns the padding, is always among them."""
    return sorted(set(role_of(run, world).values()))


def check(world: int, rank: int | str | None, nodes: int = 1) -> list[int] | None:
    """Refuse bad values before anything starts; returns the explicit rank list or None for all."""
    if world < 1:
        raise ConfigError(f"--simulate-world must be >= 1, got {world}")
    if nodes < 1 or world % nodes:
        raise ConfigError(f"--simulate-nodes {nodes} must be >= 1 and divide --simulate-world {world}")
    if rank is None or rank == "all":
        return None
    try:
        r = int(rank)
    except (TypeError, ValueError):
        raise ConfigError(f"--simulate-rank {rank!r}: give a rank number or 'all'") from None
    if not 0 <= r < world:
        raise ConfigError(f"--simulate-rank {r} is outside 0..{world - 1}")
    return [r]


# ---- one fake rank ----------------------------------------------------------------------------------

@contextlib.contextmanager
def fake_world(world: int, rank: int) -> Iterator[None]:
    """A process group of the fake backend for (world, rank), with the object collectives the run
    directory's bookkeeping uses made local (the fake backend would hand back garbage bytes)."""
    from torch.testing._internal.distributed.fake_pg import FakeStore

    if dist.is_initialized():
        raise ConfigError("a simulated world needs a process without a process group (not under torchrun)")
    dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=world)
    saved = dist.broadcast_object_list, dist.all_gather_object

    def broadcast_object_list(object_list: list, src: int = 0, group: Any = None, device: Any = None) -> None:
        return None  # every simulated rank already holds what rank `src` would send

    def all_gather_object(object_list: list, obj: Any, group: Any = None) -> None:
        object_list[:] = [copy.deepcopy(obj) for _ in object_list]

    dist.broadcast_object_list, dist.all_gather_object = broadcast_object_list, all_gather_object
    try:
        yield
    finally:
        dist.broadcast_object_list, dist.all_gather_object = saved
        gc.collect()  # drop work handles before the group goes
        dist.destroy_process_group()


def simulated_backend(device: str) -> str:
    """The backend the simulated world stands for (the schedules' arithmetic follows it)."""
    import torch

    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    return "nccl" if cuda else "gloo"


def run_rank(spec: RunSpec, world: int, rank: int) -> tuple[RunRecord, Recorder]:
    """Train spec as rank `rank` of a fake world; returns its run record and the recorder."""
    from .run import train_rank

    info = DistInfo(world_size=world, rank=rank, local_rank=0, backend=simulated_backend(spec.device))
    rec = Recorder()

    def hook(trainer: Trainer) -> None:
        if trainer.ddp is not None:
            register_ddp_hook(trainer.ddp, rec)

    with fake_world(world, rank), rec.installed():
        _, record = train_rank(spec, info, on_trainer=hook)
    return record, rec


def simulated_block(run: RunConfig, world: int, nodes: int, ranks: list[int], device: str) -> Simulated:
    """The record's ``simulated`` part: the world the fake ranks stood for and who played whom."""
    return Simulated(world_size=world, nodes=nodes, ranks=ranks, roles=roles(run, world),
                     role_of={str(k): v for k, v in role_of(run, world).items()}, backend="fake",
                     stands_for=simulated_backend(device), note=LOSS_NOTE)


def _write_shared(rd: RunDir, spec: RunSpec, world: int, sim: Simulated, wrote_config: bool) -> None:
    """config.json (when rank 0, which writes it in the run, was not played) and env.json with the world."""
    run = spec.run
    if not wrote_config:
        from .run import resolve_device, warmup_and_window

        warmup, window = warmup_and_window(spec, run, resolve_device(spec.device))
        rd.write_config(run.to_dict(), launch=dataclasses.asdict(spec), warmup_steps=warmup,
                        profile_window=dataclasses.asdict(window) if window else None)
    env = (rd.read_env() if rd.env.is_file() else {}) or environment(world, "fake")
    rd.write_env(env | {"simulated": sim.to_dict()})


def simulate(spec: RunSpec, world: int, rank: int | str | None = "all", nodes: int = 1) -> dict[str, Any]:
    """Run the requested roles one after the other into one run directory; returns its record (the lowest
    rank run's figures, every played rank's own, the ``simulated`` block) as summary.json holds it, with
    ``run_dir``. Only records: ``golfprof.predict`` turns the folder into a prediction."""
    explicit = check(world, rank, nodes)
    run = spec.run
    run.validate(world)
    ranks = explicit or roles(run, world)
    rd = RunDir(spec.run_dir) if spec.run_dir else RunDir.new(Path(spec.runs_dir), run.variant)
    spec = dataclasses.replace(spec, run_dir=str(rd.path))
    records: dict[int, RunRecord] = {}
    for r in ranks:
        records[r], rec = run_rank(spec, world, r)
        write_parquet(rd.collectives(r), rec.frame())
        write_parquet(rd.phase_events(r), rec.phase_frame())
    sim = simulated_block(run, world, nodes, ranks, spec.device)
    head = dataclasses.replace(records[ranks[0]], simulated=sim,
                               ranks=[dataclasses.replace(s.ranks[0], rank=r) for r, s in records.items()])
    _write_shared(rd, spec, world, sim, wrote_config=0 in ranks)  # rank 0 writes the shared files in its run
    rd.write_record(head)
    return head.to_dict() | {"run_dir": str(rd.path)}


def read_collectives(run_dir: Path) -> dict[int, pd.DataFrame]:
    """The collectives every simulated rank of a run directory recorded, by rank."""
    rd = RunDir(Path(run_dir))
    return {r: pd.read_parquet(rd.collectives(r)) for r in rd.simulated_ranks()}
