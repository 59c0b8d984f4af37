"""`golfprof bench comm --interference`: how much slower the trainer's GEMMs run beside a collective-like kernel.

The probe stands in for an NCCL collective on one GPU: a bandwidth-bound copy kernel of k CTAs (k = the comm
table's channels, NCCL's one block per channel; 1024 threads each), streaming a buffer far larger than L2
through HBM on a second stream, while the default stream runs the trainer's own GEMM shapes (bf16, each
micro-batch's tokens against the preset's projections). The slowdown is t(GEMMs beside it) / t(alone) − 1,
the median over the shapes; it is written into the table as ``interference_probe``, which the prediction then
uses for compute-bound kernels under a collective (predict/interference.py). CUDA only: the CPU has no SMs
to share.
"""

from __future__ import annotations

import datetime as dt
import statistics
from pathlib import Path
from typing import Any

import torch

from golfprof.errors import ConfigError

NO_GPU = ("bench comm --interference runs a copy kernel on k SMs beside the trainer's GEMMs on one GPU: "
          "no CUDA device is visible")
COPY_BYTES = 1 << 30  # the streamed buffer: far beyond any L2
THREADS = 1024


def gemm_shapes(preset: str) -> list[tuple[int, int, int]]:
    """(M, K, N) of the preset's per-micro-batch projections: attention q/o, the MLP's up and down."""
    from golfprof.model.config import PRESETS

    model, train = PRESETS[preset]
    tokens = train.micro_batch_seqs * train.seq_len
    d, hidden = model.model_dim, model.model_dim * model.mlp_mult
    kv = model.model_dim // model.num_heads * model.num_kv_heads
    return [(tokens, d, d), (tokens, d, kv), (tokens, d, hidden), (tokens, hidden, d)]


def _copy_kernel():  # noqa: ANN202 - a Triton JIT function
    import triton
    import triton.language as tl

    @triton.jit
    def stream_copy(src, dst, n, passes, BLOCK: tl.constexpr):  # noqa: N803 - Triton's constexpr convention
        pid, progs = tl.program_id(0), tl.num_programs(0)
        for _ in range(passes):
            for start in range(pid * BLOCK, n, progs * BLOCK):
                offs = start + tl.arange(0, BLOCK)
                mask = offs < n
                tl.store(dst + offs, tl.load(src + offs, mask=mask), mask=mask)

    return stream_copy


def _time(fn, reps: int, stream: torch.cuda.Stream) -> float:  # noqa: ANN001
    """µs of `reps` calls of fn on `stream`, CUDA events."""
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with torch.cuda.stream(stream):
        a.record()
        for _ in range(reps):
            fn()
        b.record()
    b.synchronize()
    return a.elapsed_time(b) * 1e3


def probe(sms: int, shapes: list[tuple[int, int, int]], reps: int = 20) -> dict[str, Any]:
    """The GEMMs' slowdown beside a copy kernel on `sms` CTAs, per shape and its median."""
    if not torch.cuda.is_available():
        raise ConfigError(NO_GPU)
    dev = torch.device("cuda", torch.cuda.current_device())
    if not 1 <= sms < torch.cuda.get_device_properties(dev).multi_processor_count:
        raise ConfigError(f"--interference-sms {sms}: need 1 <= k < the GPU's SMs")
    kernel = _copy_kernel()
    n = COPY_BYTES // 2
    src = torch.ones(n, dtype=torch.bfloat16, device=dev)
    dst = torch.empty_like(src)
    main, side = torch.cuda.current_stream(dev), torch.cuda.Stream(dev)
    copy = lambda passes: kernel[(sms,)](src, dst, n, passes, BLOCK=THREADS * 8, num_warps=THREADS // 32)  # noqa: E731
    copy(1)
    one_pass = _time(lambda: copy(1), 3, side) / 3
    rows = []
    for m, k, nn in shapes:
        a = torch.randn(m, k, dtype=torch.bfloat16, device=dev)
        b = torch.randn(k, nn, dtype=torch.bfloat16, device=dev)
        gemm = lambda: a @ b  # noqa: E731
        _time(gemm, 3, main)
        alone = _time(gemm, reps, main)
        passes = max(1, int(3 * alone / one_pass) + 1)  # the copy outlasts the GEMMs
        torch.cuda.synchronize(dev)
        with torch.cuda.stream(side):
            copy(passes)
        beside = _time(gemm, reps, main)
        torch.cuda.synchronize(dev)
        rows.append({"m": m, "k": k, "n": nn, "alone_us": alone / reps, "beside_us": beside / reps,
                     "slowdown": beside / alone - 1})
    return {"sms": sms, "copy_pass_us": one_pass, "gemms": rows,
            "slowdown": statistics.median(r["slowdown"] for r in rows),
            "device": torch.cuda.get_device_name(dev), "torch": torch.__version__}


def into_table(table: dict[str, Any], result: dict[str, Any], preset: str) -> dict[str, Any]:
    """The table with the probe's figure as ``interference_probe`` (and how it was measured)."""
    when = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    shapes = ", ".join(f"{r['m']}x{r['k']}x{r['n']}" for r in result["gemms"])
    return table | {"interference_probe": {
        "value": max(0.0, float(result["slowdown"])),
        "source": (f"golfprof bench comm --interference, {when}, {result['device']}, torch {result['torch']}: median "
                   f"slowdown of the {preset} preset's bf16 GEMMs ({shapes}) beside a copy kernel on "
                   f"{result['sms']} CTAs"),
        "probe": result}}


def bench_interference(out: Path, sms: int | None, preset: str) -> dict[str, Any]:
    """Probe on this GPU and write the figure into the table at ``out`` (kept whole; a new one holds only it).
    Refused on the CPU before anything is written."""
    from golfprof.profiler.rundir import write_result

    from .comm import previous_table

    if not torch.cuda.is_available():
        raise ConfigError(NO_GPU)
    from golfprof.model.config import PRESETS

    if preset not in PRESETS:
        raise ConfigError(f"--preset {preset}: valid: {', '.join(PRESETS)}")
    table = previous_table(out) or {"name": "interference probe", "format": "golfprof-comm-table/1"}
    k = sms or int(table.get("nchannels", {}).get("value", 16))
    doc = into_table(table, probe(k, gemm_shapes(preset)), preset)
    write_result(out, doc)
    return doc
