"""NCCL classification, rank skew and the findings a speedrunner acts on."""

from __future__ import annotations

from pathlib import Path

import pytest

from golfprof.profiler import phases as ph
from golfprof.traces.comm import canonical_op, parse_kernel_name
from tests.traces.kineto_synth import TraceBuilder, golfprof_meta


@pytest.mark.parametrize(
    "name, expected",
    [
        ("ncclKernel_AllReduce_RING_LL_Sum_float(ncclDevComm*, unsigned long, ncclWork*)",
         ("all_reduce", "f32", "RING", "LL")),
        ("ncclDevKernel_ReduceScatter_Sum_bf16_RING_LL(ncclDevComm*, unsigned long, ncclWork*)",
         ("reduce_scatter", "bf16", "RING", "LL")),
        ("ncclDevKernel_AllGather_RING_LL(ncclDevComm*, unsigned long, ncclWork*)",
         ("all_gather", None, "RING", "LL")),
        ("ncclKernel_AllReduce_TREE_LL128_Sum___nv_bfloat16(ncclDevComm*, unsigned long, ncclWork*)",
         ("all_reduce", "bf16", "TREE", "LL128")),
        ("ncclDevKernel_AllReduce_Sum_f32_NVLS_TREE_SIMPLE", ("all_reduce", "f32", "NVLS_TREE", "SIMPLE")),
        ("ncclKernel_SendRecv_RING_SIMPLE_Sum_int8_t(ncclDevComm*, unsigned long, ncclWork*)",
         ("send_recv", "i8", "RING", "SIMPLE")),
        ("ncclDevKernel_Generic_4(ncclDevComm*, unsigned long, ncclWork*)", ("generic", None, None, None)),
    ],
)
def test_nccl_kernel_names(name: str, expected: tuple) -> None:
    p = parse_kernel_name(name)
    assert (p["op"], p["dtype"], p["algo"], p["proto"]) == expected


def test_collective_names_from_args() -> None:
    assert canonical_op("_reduce_scatter_base") == "reduce_scatter"
    assert canonical_op("allgather_into_tensor_coalesced") == "all_gather"
    assert canonical_op("allreduce") == "all_reduce"
    assert canonical_op("all_to_all") == "all_to_all"


def _skewed(tmp_path: Path, slow_rank: int) -> Path:
    """Two ranks; each step's reduce-scatter takes 8 ms on every rank but the late one (1 ms)."""
    run = tmp_path / "run"
    for rank in range(2):
        b = TraceBuilder(rank=rank, world_size=2, golfprof=golfprof_meta(rank, 2))
        for n, s in enumerate((0.0, 20000.0), start=3):
            b.step(n, s, 20000)
            b.cpu(ph.STEP, s + 5, 19000)
            b.cpu(ph.RS_LAUNCH, s + 1000, 100)
            dur = 1000 if rank == slow_rank else 8000
            b.nccl("reduce_scatter", s + 1010, s + 10000 - dur, dur)
        b.write(run / "trace" / f"rank{rank}.pt.trace.json.gz")
    return run


def test_rank_skew_names_the_waiting_rank_and_the_late_peer(tmp_path: Path, analyze_json) -> None:
    doc = analyze_json(_skewed(tmp_path, slow_rank=1))
    skew = {(s["rank"], s["op"]): s for s in doc["skew"]}
    assert skew[(0, "reduce_scatter")]["wait_ms_per_step"] == pytest.approx(7.0)
    assert skew[(0, "reduce_scatter")]["waits_for"] == 1
    assert skew[(1, "reduce_scatter")]["wait_ms_per_step"] == pytest.approx(0.0)
    messages = [d["message"] for d in doc["diagnoses"] if d["kind"] == "rank_skew"]
    # both launch at once; the late rank's kernel then sits in its queue with nothing else running
    assert messages == ["rank 0 waits 7.0 ms per step in reduce-scatter for rank 1 (88% of its reduce-scatter time); "
                        "rank 1 starts them 7.0 ms later: launched 0.0 ms later, then waited 8.0 ms in its GPU queue "
                        "with the GPU mostly idle (a stream or event dependency)"]


def test_rank_skew_follows_the_late_rank(tmp_path: Path, analyze_json) -> None:
    doc = analyze_json(_skewed(tmp_path, slow_rank=0))
    messages = [d["message"] for d in doc["diagnoses"] if d["kind"] == "rank_skew"]
    assert len(messages) == 1
    assert messages[0].startswith("rank 1 waits 7.0 ms per step in reduce-scatter for rank 0 (88% of its "
                                  "reduce-scatter time); rank 0 starts them 7.0 ms later")


def test_tiny_all_reduces(tmp_path: Path, analyze_json) -> None:
    b = TraceBuilder(world_size=2)
    for n, s in enumerate((0.0, 10000.0)):
        b.step(n, s, 10000)
        b.cpu(ph.REPLICATED_ALLREDUCE, s + 10, 9000)
        for i in range(70):
            b.nccl("all_reduce", s + 20 + 100 * i, s + 50 + 100 * i, 12, nelems=4096)
    doc = analyze_json(b.write(tmp_path / "rank0.json.gz"))
    (tiny,) = [d for d in doc["diagnoses"] if d["kind"] == "tiny_collectives"]
    assert tiny["message"].startswith("70 tiny all-reduces per step (median 8.0 KiB, 12 µs each")
    assert tiny["message"].endswith("bucket them")


def test_launch_bound_optimizer(tmp_path: Path, analyze_json) -> None:
    b = TraceBuilder()
    for n, s in enumerate((0.0, 40000.0)):
        b.step(n, s, 40000)
        b.cpu(ph.STEP, s + 5, 39000)
        b.cpu(ph.FORWARD, s + 10, 20000)
        b.kernel("fwd", s + 20, s + 30, 19000)  # forward is GPU-bound: not a finding
        b.cpu(ph.OPTIMIZER, s + 20100, 13500)
        b.cpu(ph.ADAM, s + 20200, 13000)
        for i in range(140):  # 13 ms of Python launching 140 kernels of 10 µs
            b.kernel("adam_elementwise", s + 20300 + 90 * i, s + 20310 + 90 * i, 10)
    doc = analyze_json(b.write(tmp_path / "rank0.json"))
    bound = [d for d in doc["diagnoses"] if d["kind"] == "launch_bound"]
    # one finding for the outermost launch-bound phase, not one per nested phase
    assert [d["numbers"]["phase"] for d in bound] == [ph.OPTIMIZER]
    # the GPU waits 1.28 ms after forward, then 80 µs before each of the other 139 kernels
    assert bound[0]["message"] == (f"{ph.OPTIMIZER} is launch-bound: 13.5 ms on the CPU for 1.40 ms of GPU work "
                                   "(140 kernels per step); the GPU idles 12.4 ms per step waiting for it")


def test_blocking_sync_is_not_launch_bound(tmp_path: Path, analyze_json) -> None:
    b = TraceBuilder()
    b.step(1, 0, 20000)
    b.cpu(ph.GRAD_CLIP, 10, 12000)
    b.kernel("norm", 20, 30, 100)
    b.launch("cudaStreamSynchronize", 200, dur=11500)
    doc = analyze_json(b.write(tmp_path / "rank0.json"))
    assert doc["ranks"][0]["phases"][ph.GRAD_CLIP]["sync_ms"] == pytest.approx(11.5)
    assert not [d for d in doc["diagnoses"] if d["kind"] == "launch_bound"]


def test_exposed_communication_finding(tmp_path: Path, analyze_json) -> None:
    b = TraceBuilder(world_size=2)
    b.step(1, 0, 10000)
    b.cpu(ph.STEP, 5, 9900)
    b.cpu(ph.bank_all_gather("mlp"), 100, 100)
    b.nccl("all_gather", 110, 200, 2000)
    b.kernel("gemm", 300, 1200, 500)  # 0.5 of the 2 ms hidden
    doc = analyze_json(b.write(tmp_path / "rank0.json"))
    assert doc["ranks"][0]["comm_comp_overlap_pct"] == pytest.approx(25.0)
    (d,) = [d for d in doc["diagnoses"] if d["kind"] == "exposed_comm"]
    assert d["message"].startswith("1.5 ms of communication per step is exposed")
    assert d["message"].endswith(f"most of it in {ph.bank_all_gather('mlp')} (1.5 ms)")


def test_collective_args_name_send_recv_kernels(tmp_path: Path, analyze_json) -> None:
    """all-to-all runs as SendRecv kernels: the collective's name comes from args, on the kernel or
    on the record_param_comms range around its launch (older PyTorch)."""
    b = TraceBuilder(world_size=2)
    b.step(1, 0, 5000)
    kernel = "ncclKernel_SendRecv_RING_SIMPLE_Sum_int8_t(ncclDevComm*, unsigned long, ncclWork*)"
    b.kernel(kernel, 100, 200, 50, stream=20, args={"Collective name": "all_to_all", "In msg nelems": 1 << 20,
                                                      "Out msg nelems": 1 << 20, "dtype": "Float"})
    b.cpu("record_param_comms", 1000, 30, cat="cpu_op",
          args={"Collective name": "_allgather_base", "In msg nelems": 512, "Out msg nelems": 1024,
                "dtype": "BFloat16"})
    b.kernel(kernel, 1010, 1100, 40, stream=20)
    b.kernel(kernel, 2010, 2100, 30, stream=20)  # no args anywhere
    ops = {c["op"]: c for c in analyze_json(b.write(tmp_path / "t.json"))["ranks"][0]["collectives"]}
    assert ops["all_to_all"]["median_bytes"] == 4 << 20
    assert ops["all_gather"]["dtype"] == "bf16" and ops["all_gather"]["median_bytes"] == 2048
    assert ops["send_recv"]["dtype"] == "i8" and ops["send_recv"]["median_bytes"] is None


def test_skew_ignores_steps_where_ranks_ran_different_collectives(tmp_path: Path, analyze_json) -> None:
    run = _skewed(tmp_path, slow_rank=1)
    b = TraceBuilder(rank=1, world_size=2, golfprof=golfprof_meta(1, 2))
    for n, s in enumerate((0.0, 20000.0), start=3):  # rank 1 now runs an extra, short reduce-scatter first
        b.step(n, s, 20000)
        b.cpu(ph.STEP, s + 5, 19000)
        b.nccl("reduce_scatter", s + 500, s + 600, 100)
        b.nccl("reduce_scatter", s + 1010, s + 9000, 1000)
    b.write(run / "trace" / "rank1.pt.trace.json.gz")
    doc = analyze_json(run)
    assert doc["skew"] == [] and not [d for d in doc["diagnoses"] if d["kind"] == "rank_skew"]
