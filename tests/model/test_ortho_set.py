"""`OrthoSet` (all banks in one graph) and the fused momentum kernel, and the schedules that use them.

On the CPU everything runs in Triton's interpreter, in a subprocess (TRITON_INTERPRET=1 must be
set before triton is imported); the schedules are forced onto the triton kernel there, which
they refuse outside tests. On a CUDA machine `test_cuda_*` run the graph path for real.

Bounds:
- `OrthoSet` runs the same kernels and configs as `orthogonalize_triton` on the same inputs, so
  their outputs must be bit-identical (0.0).
- `momentum_into` rounds the new momentum once where `nesterov_`'s bf16 ops round twice, so the
  two differ by at most one bf16 rounding: relative ≤ u = 2⁻⁸ ≈ 3.9e-3 (fp32 momentum: exactly
  equal, and u vs nesterov_'s fp32 result within the final cast to bf16, also ≤ u).
- After 2 training steps, the bank updates of the triton kernel (bf16 Newton–Schulz) against the
  torch kernel's in fp32 (the CPU default): no less accurate than the torch kernel in bf16 (the
  GPU default) is, i.e. error ≤ 1.25 × torch-bf16's error + 2e-3, the rule of
  test_ortho_triton.py. Measured on the tiny banks: triton 4.8e-2–7.0e-2, torch-bf16
  6.2e-2–9.5e-2 (32-wide matrices of two steps' gradients are badly conditioned, so bf16 costs
  more than on the full banks).
"""

from __future__ import annotations

import json
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import torch

from golfprof.model import ortho_triton as OT
from tests.background import Background
from tests.model.triton_marks import U_BF16, needs_gpu, needs_triton


def _no_less_accurate(rel: dict, bf16_rel: dict) -> None:
    assert set(rel) == {"qo_bank", "kv_bank", "mlp_up_bank", "mlp_down_bank"}
    for bank, err in rel.items():
        assert 0 < err <= 1.25 * bf16_rel[bank] + 2e-3, (bank, err, bf16_rel[bank])


_SCRIPT = textwrap.dedent(r"""
    import json, os, sys, tempfile
    assert os.environ["TRITON_INTERPRET"] == "1"
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    from golfprof.ablations.launch import shutdown_process_group
    from golfprof.model import ortho_triton as OT, schedules
    from golfprof.model.config import RunConfig, TINY_MODEL, TINY_TRAIN, Toggles, replace
    from golfprof.model.data import DistributedLoader
    from golfprof.model.optim import nesterov_
    from golfprof.model.synthetic import write_synthetic_dataset
    from golfprof.model.train import DistInfo, Trainer

    def rel(a, b):
        return ((a.double() - b.double()).norm() / b.double().norm()).item()

    # the schedules on the triton kernel against the torch kernel, 2 steps of the tiny preset
    schedules._Base._pick_ortho_kernel = lambda self, device: self.toggles.ortho_kernel
    STEPS = 2

    def train(kernel, comm, info, data, ortho_dtype=None):
        # bigger blocks than the interpreter default: one tile per tiny bank matrix (the 32-wide
        # Gram side; the update's 96-wide side of the MLP banks in one 128-wide, masked tile), 4x
        # faster; the tiling itself is test_ortho_triton.py's (the N tiles do not change any sum)
        OT.CONFIG_OVERRIDE.update(syrk=(32, 32, 1, 1, False), update=(32, 128, 32, 1, 1, False))
        toggles = Toggles(layout="banked", comm=comm, bf16=(), compile="off", ortho_kernel=kernel)
        run = RunConfig("tiny", TINY_MODEL, replace(TINY_TRAIN, steps=STEPS, grad_clip=0.0), toggles, kernel)
        tr = Trainer(run, torch.device("cpu"), info)
        seen, mark = set(), tr.schedule.mark
        def rec(name):
            seen.add(name)
            return mark(name)
        tr.schedule.mark = rec
        if ortho_dtype is not None:  # the torch kernel in bf16, as on a GPU (the CPU default is fp32)
            tr.schedule.ortho_dtype = ortho_dtype
        p0 = {k: v.detach().clone() for k, v in tr.model.state_dict().items()}
        loader = DistributedLoader(data, run.train.seq_len, run.train.micro_batch_seqs, tr.grad_accum,
                                   info.world_size, info.rank)
        for step in range(STEPS):
            tr.step(step, loader)
        p1 = {k: v.detach() for k, v in tr.model.state_dict().items()}
        return {k: p1[k] - p0[k] for k in p1 if "bank" in k}, sorted(seen), tr.schedule.ortho_kernel, tr.schedule

    def compare(a, b):
        return {k: rel(a[k], b[k]) for k in b}

    def worker(rank, world, store, data, out):
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
        ok = False
        try:
            info = DistInfo(world_size=world, rank=rank, local_rank=rank, backend="gloo")
            d = {}
            for comm in ("explicit", "packed"):  # a group OrthoSet per bank; the per-call path per part
                runs = {k: train(k, comm, info, data) for k in ("triton", "torch")}
                d[comm] = {k: r[0] for k, r in runs.items()}
                d[comm]["group_sets"] = len(runs["triton"][3]._group_sets)
                d[comm]["torch_bf16"] = train("torch", comm, info, data, torch.bfloat16)[0]
            if rank == 0:
                torch.save(d, out)
            ok = True
        finally:
            shutdown_process_group(ok)


    def kernels(res):
        # one tile per matrix (K still in 2 masked steps for the 40-wide side), 2x faster: what is
        # compared is the set's bookkeeping against one call per tensor on the same config; the
        # tiles, tails and mirror stores are test_ortho_triton.py's
        OT.CONFIG_OVERRIDE.update(syrk=(32, 32, 1, 1, False), update=(32, 64, 32, 1, 1, False))
        gen = torch.Generator().manual_seed(7)
        # 1. the set against one call per tensor; wide batched, tall 2-D, 4-D lead dims
        shapes = [(2, 24, 40), (40, 24), (2, 2, 16, 24)]
        s = OT.OrthoSet(shapes, "cpu", "ns5", 5)
        rows = []
        for call in range(2):
            xs = [torch.randn(sh, generator=gen) for sh in shapes]
            for x, dst in zip(xs, s.inputs):
                dst.copy_(x)
            outs = s.run()
            for x, o, static in zip(xs, outs, s.outputs):
                rows.append({"shape": list(o.shape), "contiguous": o.is_contiguous(), "static": o is static,
                             "vs_single": rel(o, OT.orthogonalize_triton(x, "ns5", 5))})
        res["set"] = rows
        fresh = OT.OrthoSet(shapes, "cpu", "polar_express", 5, static_out=False)
        for x, dst in zip(xs, fresh.inputs):
            dst.copy_(x)
        res["fresh"] = [{"aliases_static": any(o.data_ptr() == c.x3.data_ptr() for c in fresh.chains),
                         "vs_single": rel(o, OT.orthogonalize_triton(x, "polar_express", 5))}
                        for x, o in zip(xs, fresh.run())]
        # 2. fused momentum against nesterov_ (ragged length: 3*50*70 is not a multiple of the block)
        mom = []
        for md in (torch.bfloat16, torch.float32):
            for gd in (torch.float32, torch.bfloat16):
                grad = torch.randn(3, 50, 70, generator=gen).to(gd)
                b1 = torch.randn(3, 50, 70, generator=gen).to(md)
                b2 = b1.clone()
                u1 = nesterov_(b1, grad, 0.95)
                u2 = OT.momentum_into(b2, grad, 0.95)
                mom.append({"mom": str(md), "grad": str(gd), "m": rel(b2, b1), "u": rel(u2, u1),
                            "dtype": str(u2.dtype)})
        g = torch.randn(8, 6, generator=gen)
        b1 = torch.zeros(6, 8); b2 = b1.clone()
        u1 = nesterov_(b1, g.T, 0.9)
        u2 = OT.momentum_into(b2, g.T, 0.9)   # non-contiguous grad: the torch fallback
        mom.append({"mom": "noncontiguous", "grad": "", "m": rel(b2, b1), "u": rel(u2, u1.bfloat16()),
                    "dtype": str(u2.dtype)})
        res["momentum"] = mom


    if __name__ == "__main__":
        tmp = tempfile.mkdtemp()
        data = write_synthetic_dataset(tmp, TINY_MODEL.vocab_size, 40_000, 2_000, seed=0)["train"]
        out = os.path.join(tmp, "sharded.pt")
        # the two gloo ranks train while this process runs its own cases (the interpreter is one
        # core's work per process): the same computations, side by side instead of one after another
        ranks = mp.start_processes(worker, args=(2, os.path.join(tmp, "store"), data, out), nprocs=2,
                                   start_method="spawn", join=False)
        torch.set_num_threads(1)
        res = {}
        kernels(res)
        tri, seen, used, _ = train("triton", "explicit", DistInfo(), data)
        ref, seen_torch, _, _ = train("torch", "explicit", DistInfo(), data)
        bf16 = train("torch", "explicit", DistInfo(), data, torch.bfloat16)[0]
        res["local"] = {"rel": compare(tri, ref), "torch_bf16_rel": compare(bf16, ref), "phases": seen,
                        "torch_phases": seen_torch, "used": used}
        while not ranks.join():
            pass
        d = torch.load(out)
        res["sharded"] = {comm: {"rel": compare(x["triton"], x["torch"]),
                                 "torch_bf16_rel": compare(x["torch_bf16"], x["torch"]),
                                 "group_sets": x["group_sets"]} for comm, x in d.items()}
        print("RESULT" + json.dumps(res))
""")


def _argvs() -> list[list[str]]:
    """The interpreter script (and its gloo ranks), from a file: the gloo workers are spawned and re-import it."""
    script = Path(tempfile.mkdtemp(prefix="ortho_set_interp-")) / "ortho_set_interp.py"
    script.write_text(_SCRIPT)
    return [[sys.executable, str(script)]]


_job = Background(_argvs, timeout=600)  # tests/conftest.py starts it while the suite runs single-process tests
start, wait, stop = _job.start, _job.wait, _job.stop


@pytest.fixture(scope="module")
def interp() -> dict:
    wait()
    code, out, err = _job.done[0]
    assert code == 0, err[-4000:]
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


@needs_triton
def test_set_equals_one_call_per_tensor_and_reuses_its_outputs(interp):
    rows = interp["set"]
    assert [r["shape"] for r in rows] == [[2, 24, 40], [40, 24], [2, 2, 16, 24]] * 2
    for r in rows:
        assert r["vs_single"] == 0.0, r
        assert r["contiguous"] and r["static"], r  # static outputs, contiguous in the caller's shape
    for r in interp["fresh"]:
        assert r["vs_single"] == 0.0 and not r["aliases_static"], r


@needs_triton
def test_fused_momentum_within_one_rounding_of_nesterov(interp):
    assert len(interp["momentum"]) == 5
    for r in interp["momentum"]:
        assert r["dtype"] == "torch.bfloat16", r
        assert r["m"] <= U_BF16 and r["u"] <= U_BF16, r
        if r["mom"] == "torch.float32":
            assert r["m"] == 0.0, r  # fp32 momentum: the same fp32 arithmetic


@needs_triton
def test_local_schedule_one_graph_matches_torch_kernel(interp):
    local = interp["local"]
    assert local["used"] == "triton"
    all_banks = "golfprof/step/optimizer/muon/all_banks/orthogonalize"
    assert all_banks in local["phases"] and not any("qo_bank" in p for p in local["phases"])
    assert all_banks not in local["torch_phases"]
    _no_less_accurate(local["rel"], local["torch_bf16_rel"])


@needs_triton
@pytest.mark.parametrize("comm", ["explicit", "packed"])
def test_sharded_schedules_on_the_triton_kernel_match_torch(interp, comm):
    # explicit: one OrthoSet per bank group; packed splits attention groups: the per-call path
    assert interp["sharded"][comm]["group_sets"] == (4 if comm == "explicit" else 0)
    _no_less_accurate(interp["sharded"][comm]["rel"], interp["sharded"][comm]["torch_bf16_rel"])


def test_set_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shapes"):
        OT.OrthoSet([(4,)], "cpu")
    with pytest.raises(ValueError, match="iteration"):
        OT.OrthoSet([(4, 8)], "cpu", steps=0)


@needs_gpu
@pytest.mark.parametrize("branches", [1, 2])
def test_cuda_set_graph_matches_eager(branches):
    shapes = [(22, 512, 512), (22, 256, 512), (11, 1536, 512), (11, 512, 1536)]
    gen = torch.Generator(device="cuda").manual_seed(0)
    xs = [torch.randn(s, device="cuda", dtype=torch.bfloat16, generator=gen) for s in shapes]
    eager = OT.OrthoSet(shapes, "cuda", "ns5", graphs=False)
    graphed = OT.OrthoSet(shapes, "cuda", "ns5", graphs=True, branches=branches)
    for x, a, b in zip(xs, eager.inputs, graphed.inputs):
        a.copy_(x)
        b.copy_(x)
    ref = [o.clone() for o in eager.run()]
    for _ in range(3):  # eager, capture + replay, replay
        outs = graphed.run()
    torch.cuda.synchronize()
    assert graphed.graph is not None and graphed.error is None
    for r, o in zip(ref, outs):
        assert torch.equal(r, o)


@needs_gpu
@pytest.mark.parametrize("comm", ["explicit", "packed", "vectorized"])
def test_cuda_sharded_schedules_on_nccl_with_one_rank(comm, tmp_path):
    """The sharded schedules' NCCL calls (AVG reduce-scatter, bf16 all-gather) with one rank on
    this GPU, and their triton path (group `OrthoSet`s captured while collectives are in flight),
    against the same schedule on the torch kernel in fp32: no less accurate than torch in bf16."""
    import torch.distributed as dist

    from golfprof.ablations.launch import shutdown_process_group
    from golfprof.model.config import TINY_MODEL, TINY_TRAIN, RunConfig, Toggles, replace
    from golfprof.model.data import DistributedLoader
    from golfprof.model.sharded import ShardedSchedule
    from golfprof.model.synthetic import write_synthetic_dataset
    from golfprof.model.train import DistInfo, Trainer

    data = write_synthetic_dataset(tmp_path / "data", TINY_MODEL.vocab_size, 40_000, 2_000, seed=0)["train"]
    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        def train(kernel: str, ortho_dtype: torch.dtype) -> tuple[dict, ShardedSchedule]:
            toggles = Toggles(layout="banked", comm=comm, compile="off", ortho_kernel=kernel)
            run = RunConfig("tiny", TINY_MODEL, replace(TINY_TRAIN, steps=4, grad_clip=0.0), toggles, kernel)
            tr = Trainer(run, torch.device("cuda"), DistInfo())
            tr.schedule = ShardedSchedule(groups=tr.model.bank_groups(), replicated=tr.schedule.replicated,
                                          adam=tr.adam, train=run.train, toggles=toggles, device=torch.device("cuda"),
                                          mark=tr.schedule.mark, model=tr.model, world_size=1, rank=0, backend="nccl")
            tr.schedule.ortho_dtype = ortho_dtype
            p0 = {k: v.detach().clone() for k, v in tr.model.state_dict().items() if "bank" in k}
            loader = DistributedLoader(data, run.train.seq_len, run.train.micro_batch_seqs, tr.grad_accum, 1, 0)
            for step in range(4):  # eager, capture, replays
                tr.step(step, loader)
            torch.cuda.synchronize()
            p1 = tr.model.state_dict()
            return {k: (p1[k] - p0[k]).float() for k in p0}, tr.schedule

        tri, sched = train("triton", torch.bfloat16)
        ref, _ = train("torch", torch.float32)
        bf16, _ = train("torch", torch.bfloat16)
    finally:
        shutdown_process_group()
    assert sched.ortho_kernel == "triton"
    sets = list(sched._group_sets.values())
    assert len(sets) == (0 if comm == "packed" else 4)
    assert all(s.graph is not None and s.error is None for s in sets)
    rel = lambda a, b: ((a - b).norm() / b.norm()).item()  # noqa: E731
    _no_less_accurate({k.split(".")[-1]: rel(tri[k], ref[k]) for k in ref},
                      {k.split(".")[-1]: rel(bf16[k], ref[k]) for k in ref})
