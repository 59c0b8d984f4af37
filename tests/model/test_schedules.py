"""Parameter agreement of the distributed schedules with a single process on the same global batch.

fp32 everywhere (bf16 casts off), gloo on the CPU. The tolerance is 2e-5 absolute on every
parameter after 3 steps: the schedules differ only in the order in which fp32 gradients are
summed (per-rank means averaged vs. one process averaging all micro-batches), a relative
difference near 1e-7 that Newton–Schulz and Adam carry through without amplifying past ~1e-6.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from golfprof.model.config import TINY_MODEL, TINY_TRAIN, RunConfig, Toggles, replace
from golfprof.model.data import DistributedLoader
from golfprof.model.train import DistInfo, Trainer
from tests.distributed import gloo_rank, ranks_beside

STEPS = 3
TOL = 2e-5


def _run_config(layout: str, comm: str, clip: float, clip_scope: str = "global") -> RunConfig:
    """``comm`` may carry a replicated all-reduce mode (``explicit+bucketed``) or DDP's Muon (``ddp+round_robin``)."""
    comm, _, extra = comm.partition("+")
    ddp = comm == "ddp"
    toggles = Toggles(layout=layout, comm=comm, bf16=(), compile="off", clip_scope=clip_scope,
                      replicated=(not ddp and extra) or "per_tensor", ddp_muon=(ddp and extra) or "replicated")
    train = replace(TINY_TRAIN, steps=STEPS, grad_clip=clip)
    return RunConfig("tiny", TINY_MODEL, train, toggles, f"{comm}_{layout}")


def _train(run: RunConfig, info: DistInfo, data: str) -> dict[str, torch.Tensor]:
    trainer = Trainer(run, torch.device("cpu"), info)
    loader = DistributedLoader(data, run.train.seq_len, run.train.micro_batch_seqs, trainer.grad_accum,
                               info.world_size, info.rank)
    for step in range(STEPS):
        trainer.step(step, loader)
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


CASES = [("banked", "explicit", 0.0), ("unbanked", "explicit", 0.0), ("banked", "ddp", 0.0),
         ("unbanked", "ddp", 0.0), ("banked", "explicit", 0.3), ("banked", "packed", 0.0),
         ("unbanked", "packed", 0.0), ("unbanked", "vectorized", 0.0), ("banked", "vectorized", 0.0),
         # the replicated parameters' all-reduces as one flat buffer per dtype (issue 27's small_allreduce=grouped)
         ("banked", "explicit+bucketed", 0.0),
         # #315's DDP: matrix i orthogonalized on rank i mod N, the updates shared by one flat all-reduce
         ("unbanked", "ddp+round_robin", 0.0), ("banked", "ddp+round_robin", 0.0)]


def _worker(rank: int, world: int, store: str, data: str, out: str, cases: list) -> None:
    with gloo_rank(rank, world, store) as info:
        for layout, comm, clip in cases:
            sd = _train(_run_config(layout, comm, clip), info, data)
            if rank == 0:
                torch.save(sd, Path(out) / f"{comm}_{layout}_{clip}.pt")


@pytest.fixture(scope="module")
def data(tiny_train_shards: str) -> str:
    return tiny_train_shards


def _reference(layout: str, clip: float, data: str) -> dict[str, torch.Tensor]:
    return _train(_run_config(layout, "explicit", clip), DistInfo(), data)


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[float, str]:
    return max(((a[k] - b[k]).abs().max().item(), k) for k in a)


@pytest.fixture(scope="module")
def single() -> dict[tuple, dict[str, torch.Tensor]]:
    """The single-process side, each (layout, clip) trained once for both worlds (it does not depend on them)."""
    return {}


@pytest.mark.parametrize("world", [2, 3])
def test_schedules_agree_with_single_process(world: int, data: str, tmp_path: Path, single: dict) -> None:
    cases = CASES if world == 2 else [c for c in CASES if not c[1].startswith("ddp") and c[2] == 0.0]
    # the single process trains here while the ranks run
    with ranks_beside(_worker, (world, str(tmp_path / "store"), data, str(tmp_path), cases), world):
        for layout, _, clip in cases:
            if (layout, clip) not in single:
                single[layout, clip] = _reference(layout, clip, data)
            if layout not in single:
                single[layout] = _initial(layout)
    for layout, comm, clip in cases:
        got = torch.load(tmp_path / f"{comm}_{layout}_{clip}.pt")
        ref = single[layout, clip]
        diff, key = _max_diff(got, ref)
        assert diff <= TOL, f"world {world} {comm}/{layout} clip {clip}: {key} differs by {diff:.2e}"
        moved = max((ref[k] - v).abs().max().item() for k, v in single[layout].items())
        assert moved > 100 * TOL, "training did not move the weights: the comparison would be vacuous"


def _initial(layout: str) -> dict[str, torch.Tensor]:
    run = _run_config(layout, "explicit", 0.0)
    return Trainer(run, torch.device("cpu")).model.state_dict()


@pytest.mark.parametrize("comm", ["explicit", "vectorized", "packed"])
def test_all_gather_payloads_are_contiguous(comm: str) -> None:
    """NCCL refuses non-contiguous all-gather inputs (gloo takes them, so the tests above cannot
    see it), and both orthogonalizers return tall matrices as transposed views."""
    from golfprof.model.ortho import orthogonalize
    from golfprof.model.sharded import ShardedSchedule

    run = _run_config("banked", comm, 0.0)
    tr = Trainer(run, torch.device("cpu"), DistInfo())
    sched = ShardedSchedule(groups=tr.model.bank_groups(), replicated=tr.schedule.replicated, adam=tr.adam,
                            train=run.train, toggles=run.toggles, device=torch.device("cpu"), mark=tr.schedule.mark,
                            model=tr.model, world_size=1, rank=0, backend="gloo")
    tall = 0
    for b in sched.banks:
        u = b.orthogonalize(torch.randn_like(b.shard), lambda x: orthogonalize(x, "ns5", 5, torch.float32))
        tall += not u.is_contiguous()
        assert b.payload(u, 0.01, 0.0).is_contiguous(), b.name
    assert tall > 0  # the case that matters was exercised
