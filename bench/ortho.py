"""`golfprof bench ortho`: every orthogonalizer × kernel × layout on the current GPU.

For method in (ns5, polar_express) × kernel (`KERNELS`) × layout in (banked: one batched
call per bank; unbanked: one call per matrix, 66 for the full preset), the four-bank
orthogonalization is timed with CUDA events: warm-up calls, then the median of `reps` timed
calls, each started on an idle GPU (`ms`: launch gaps included, as the trainer sees them when the
GPU waits on the optimizer) and each queued behind a GPU sleep long enough for the host to have
launched everything (`ms_gpu`: the GPU's own time). Against them: the bf16 matmul ceiling
(8192³ `torch.mm`, median) measured in the same run and the floor = nominal FLOPs / ceiling.
Accuracy: relative Frobenius error of each row's output against the float64 torch path on the
same inputs (all four banks together; per bank alongside).

Also here, for the device script (`python -m golfprof.bench.ortho sweep|check|bench`):
`sweep_configs` times each kernel's candidate block configurations per shape and `check_shapes`
compares the Triton path with the torch path on the bank and shard shapes.
"""

from __future__ import annotations

import math
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from golfprof.model import ortho_triton as OT
from golfprof.model.config import FULL_MODEL, TINY_MODEL
from golfprof.model.ortho import flops, orthogonalize

METHODS = ("ns5", "polar_express")
# triton: `orthogonalize_triton` per call (a CUDA graph per shape, no PDL); triton_set / triton_set2:
# one `OrthoSet` for every matrix, one graph replay per call (the optimizer's path; its momentum
# kernel has already written the inputs), on 1 / 2 streams inside the graph; triton_pdl: per call,
# graphs + programmatic dependent launch; triton_eager: per call, plain launches, no graphs.
KERNELS = ("torch", "triton", "triton_set", "triton_set2", "triton_pdl", "triton_eager")
LAYOUTS = ("banked", "unbanked")
CEILING_N = 8192


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _sleep_cycles_per_ms(device: torch.device) -> float:
    """GPU clock cycles of `torch.cuda._sleep` per millisecond, measured."""
    torch.cuda._sleep(1000)
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    torch.cuda._sleep(2_000_000)
    e.record()
    e.synchronize()
    return 2_000_000 / s.elapsed_time(e)


def time_fn(fn: Callable[[], Any], device: torch.device, reps: int = 50, warmup: int = 10,
            queued: bool = False, sleep_ms: float = 0.0, cycles_per_ms: float = 0.0) -> dict[str, Any]:
    """Median ms of fn over reps. CUDA: events; `queued` puts a GPU sleep of `sleep_ms` in front of
    each timed call so the host's launches are all queued before the GPU reaches the start event."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times: list[float] = []
    host: list[float] = []
    for _ in range(reps):
        if device.type != "cuda":
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
            continue
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        if queued:
            torch.cuda._sleep(int(sleep_ms * cycles_per_ms))
        t0 = time.perf_counter()
        start.record()
        fn()
        end.record()
        host.append((time.perf_counter() - t0) * 1e3)
        end.synchronize()
        times.append(start.elapsed_time(end))
    out = {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times), "reps": reps}
    if host:
        out["host_ms"] = statistics.median(host)
    return out


def matmul_ceiling(device: torch.device, n: int = CEILING_N, reps: int = 20) -> dict[str, Any]:
    """bf16 n³ torch.mm on random data, median TFLOP/s (the ceiling the rows are compared with)."""
    g = torch.Generator(device=device).manual_seed(1)
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16, generator=g)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16, generator=g)
    t = time_fn(lambda: torch.mm(a, b), device, reps=reps, warmup=3)
    return {"n": n, "dtype": "bfloat16", "median_ms": t["median_ms"],
            "tflops": 2 * n**3 / (t["median_ms"] / 1e3) / 1e12}


def _orthogonalizer(kernel: str, method: str, steps: int) -> Callable[[Tensor], Tensor]:
    if kernel == "torch":
        return lambda u: orthogonalize(u, method, steps, torch.bfloat16)
    graphs = kernel != "triton_eager"
    pdl = kernel == "triton_pdl"

    def f(u: Tensor) -> Tensor:
        old, OT.PDL_DEFAULT = OT.PDL_DEFAULT, pdl
        try:
            return OT.orthogonalize_triton(u, method, steps, graphs=graphs)
        finally:
            OT.PDL_DEFAULT = old
    return f


def _run_layout(f: Callable[[Tensor], Tensor], banks: dict[str, Tensor], layout: str) -> dict[str, Tensor]:
    if layout == "banked":
        return {name: f(x) for name, x in banks.items()}
    return {name: torch.stack([f(x[i]) for i in range(x.size(0))]) for name, x in banks.items()}


def _runner(kernel: str, method: str, steps: int, banks: dict[str, Tensor],
            layout: str) -> tuple[Callable[[], Any], Callable[[Any], dict[str, Tensor]]]:
    """(timed call, its result -> outputs per bank for the accuracy check)."""
    if not kernel.startswith("triton_set"):
        f = _orthogonalizer(kernel, method, steps)
        return (lambda: _run_layout(f, banks, layout)), (lambda r: r)
    mats = list(banks.values()) if layout == "banked" else [x[i] for x in banks.values() for i in range(x.size(0))]
    oset = OT.OrthoSet([tuple(t.shape) for t in mats], mats[0].device, method, steps,
                       branches=2 if kernel == "triton_set2" else 1)
    for t, dst in zip(mats, oset.inputs):
        dst.copy_(t)

    def collect(outs: list[Tensor]) -> dict[str, Tensor]:
        if layout == "banked":
            return dict(zip(banks, outs))
        it = iter(outs)
        return {name: torch.stack([next(it) for _ in range(x.size(0))]) for name, x in banks.items()}
    return oset.run, collect


def _rel(out: dict[str, Tensor], ref: dict[str, Tensor]) -> tuple[float, dict[str, float]]:
    num = den = 0.0
    per: dict[str, float] = {}
    for name, r in ref.items():
        d = (out[name].double() - r).norm().item() ** 2
        n = r.norm().item() ** 2
        per[name] = math.sqrt(d / n)
        num, den = num + d, den + n
    return math.sqrt(num / den), per


@dataclass
class _Bench:
    """What every row of one bench_ortho run shares: the banks, their float64 references, the ceiling."""

    device: torch.device
    shapes: dict[str, tuple[int, int, int]]
    banks: dict[str, Tensor]
    refs: dict[str, dict[str, Tensor]]  # method -> bank -> float64 torch result
    steps: int
    reps: int
    warmup: int
    gflop: float
    ceiling: dict[str, Any] | None  # the bf16 matmul ceiling (CUDA only)
    cycles_per_ms: float  # torch.cuda._sleep cycles per ms (CUDA only)
    triton: tuple[bool, str]  # whether the Triton rows run here, and why not

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def floor_ms(self) -> float | None:
        return self.gflop / self.ceiling["tflops"] if self.ceiling else None


def _setup(device: torch.device, shapes: dict[str, tuple[int, int, int]] | None, steps: int, methods: tuple[str, ...],
           reps: int, warmup: int, seed: int) -> _Bench:
    """The banks (default the full preset's on a GPU, the tiny preset's on a CPU), references and ceiling."""
    cuda = device.type == "cuda"
    shapes = dict(shapes or (FULL_MODEL if cuda else TINY_MODEL).bank_shapes())
    gen = torch.Generator(device=device).manual_seed(seed)
    banks = {k: torch.randn(s, device=device, dtype=torch.bfloat16, generator=gen) for k, s in shapes.items()}
    triton = OT.available()
    if not cuda:
        triton = (False, f"{device} is not a CUDA device" if triton[0] else triton[1])
    return _Bench(device=device, shapes=shapes, banks=banks, steps=steps, reps=reps, warmup=warmup,
                  refs={m: {k: orthogonalize(x.double(), m, steps, torch.float64) for k, x in banks.items()}
                        for m in methods},
                  gflop=sum(flops(s, steps) for s in shapes.values()) / 1e9,
                  ceiling=matmul_ceiling(device) if cuda else None,
                  cycles_per_ms=_sleep_cycles_per_ms(device) if cuda else 0.0, triton=triton)


def _bench_row(b: _Bench, method: str, kernel: str, layout: str) -> dict[str, Any]:
    """One method × kernel × layout: its timings (idle-GPU and queued), throughput and error vs float64."""
    row: dict[str, Any] = {"method": method, "kernel": kernel, "layout": layout,
                           "calls": len(b.banks) if layout == "banked" else sum(s[0] for s in b.shapes.values()),
                           "gflop": b.gflop}
    if kernel.startswith("triton") and not b.triton[0]:
        return row | {"skipped": b.triton[1]}
    run, collect = _runner(kernel, method, b.steps, b.banks, layout)
    t = time_fn(run, b.device, b.reps, b.warmup)
    err, per = _rel(collect(run()), b.refs[method])  # a warm call: the graph path where it is on
    row.update(ms=t["median_ms"], ms_min=t["min_ms"], ms_max=t["max_ms"], reps=b.reps)
    if b.cuda:
        row["host_ms"] = t["host_ms"]
        q = time_fn(run, b.device, b.reps, 2, queued=True, sleep_ms=2 * t["host_ms"] + 1.0,
                    cycles_per_ms=b.cycles_per_ms)
        row["ms_gpu"] = q["median_ms"]
    row["tflops"] = b.gflop / row["ms"]
    if b.ceiling:
        row.update(pct_ceiling=100 * row["tflops"] / b.ceiling["tflops"], x_floor=row["ms"] / b.floor_ms,
                   tflops_gpu=b.gflop / row["ms_gpu"], x_floor_gpu=row["ms_gpu"] / b.floor_ms)
    return row | {"rel_err_vs_fp64": err, "rel_err_per_bank": per}


def _triton_version() -> str | None:
    try:
        import triton
    except Exception:  # noqa: BLE001 - any failure to import is "no Triton here"
        return None
    return triton.__version__


def bench_ortho(device: torch.device | str | None = None, reps: int = 50, warmup: int = 10,
                shapes: dict[str, tuple[int, int, int]] | None = None, steps: int = 5,
                methods: tuple[str, ...] = METHODS, kernels: tuple[str, ...] = KERNELS,
                layouts: tuple[str, ...] = LAYOUTS, command: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Time every method × kernel × layout over the four banks (`shapes`, default the full preset's).

    On a CPU (a smoke run, not a figure): the tiny preset's banks by default, host wall-clock
    timings, and triton rows skipped with the reason `ortho_triton.available()` gives.
    """
    b = _setup(torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")), shapes, steps, methods,
               reps, warmup, seed)
    rows = [_bench_row(b, method, kernel, layout) for method in methods for kernel in kernels for layout in layouts]
    return {
        "device": torch.cuda.get_device_name(b.device) if b.cuda else platform.processor() or "cpu",
        "torch": torch.__version__,
        "triton": _triton_version(),
        "triton_available": list(b.triton),
        "command": command or " ".join(sys.argv),
        "timer": "cuda events" if b.cuda else "perf_counter (CPU smoke run)",
        "reps": reps, "warmup": warmup, "steps": steps,
        "shapes": {k: list(s) for k, s in b.shapes.items()},
        "ceiling": b.ceiling,
        "graph_errors": sorted({p.error for p in OT._PLANS.values() if p.error}),
        "tuned_configs": {"|".join(map(str, k)): list(v) for k, v in OT.TUNED.items()},
        "floor_ms": b.floor_ms,
        "rows": rows,
    }


def table(result: dict[str, Any]) -> str:
    """A plain-text table of the rows."""
    head = (f"{'method':14} {'kernel':12} {'layout':9} {'ms':>8} {'ms_gpu':>8} {'TFLOP/s':>8} {'%ceil':>6} "
            f"{'xfloor':>7} {'rel_err':>9}")
    lines = [f"{result['device']}  ceiling {result['ceiling']['tflops']:.0f} TFLOP/s  floor {result['floor_ms']:.3f} ms"
             if result.get("ceiling") else result["device"], head]
    for r in result["rows"]:
        if "skipped" in r:
            lines.append(f"{r['method']:14} {r['kernel']:12} {r['layout']:9} skipped: {r['skipped']}")
            continue
        lines.append(f"{r['method']:14} {r['kernel']:12} {r['layout']:9} {r['ms']:8.3f} "
                     f"{r.get('ms_gpu', float('nan')):8.3f} {r['tflops']:8.1f} "
                     f"{r.get('pct_ceiling', float('nan')):6.1f} {r.get('x_floor', float('nan')):7.2f} "
                     f"{r['rel_err_vs_fp64']:9.2e}")
    return "\n".join(lines)


def write_result(result: dict[str, Any], path: Path) -> Path:
    """The result JSON, atomically, kept in the temp folder first (a failing write loses no measurement); a re-run
    replaces it (the newest measurement is the result), but never a folder, FIFO or device node."""
    from golfprof.profiler.rundir import write_result as write_kept

    path = Path(path)
    write_kept(path, result)
    return path


def default_path(result: dict[str, Any]) -> Path:
    slug = "".join(c if c.isalnum() else "_" for c in result["device"].lower()).strip("_")
    return Path("benchmarks/results") / f"ortho_{slug}.json"


# ---- device-script helpers -------------------------------------------------------------------

SHARD_SHAPES = [(2, 512, 512), (3, 256, 512), (8, 512, 1536), (12, 1536, 512), (1, 512, 512), (11, 256, 512),
                (5, 1536, 512), (3, 300, 700), (2, 1000, 200), (1, 64, 64)]

# (BLOCK, BLOCK_K, warps, stages, prefetch C) and (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages, prefetch C):
# run 2's winners and neighbours, plus 2-CTA-per-SM shapes (4 warps, 3 stages: 96 KB of shared memory).
SYRK_CANDIDATES = [(128, 64, 4, 3, False), (128, 64, 8, 3, False), (128, 64, 8, 4, False), (64, 64, 4, 3, False),
                   (128, 64, 4, 3, True), (128, 64, 8, 4, True), (64, 64, 4, 3, True)]
UPDATE_CANDIDATES = [(128, 128, 64, 8, 3, False), (128, 128, 64, 8, 3, True), (128, 128, 64, 4, 3, False),
                     (128, 128, 64, 8, 2, False), (128, 128, 128, 8, 2, False), (128, 256, 64, 8, 3, False),
                     (64, 64, 64, 4, 4, False), (64, 64, 64, 4, 3, True)]
SWEEP_SHAPES = [(22, 512, 512), (22, 256, 512), (11, 512, 1536), (2, 512, 512), (3, 256, 512), (8, 512, 1536)]


def _kernel_us(fn: Callable[[], Any], n: int = 30) -> float:
    fn()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ts = []
    for _ in range(3):
        torch.cuda._sleep(8_000_000)  # ~4 ms: the n launches queue up behind it
        s.record()
        for _ in range(n):
            fn()
        e.record()
        e.synchronize()
        ts.append(s.elapsed_time(e) * 1e3 / n)
    return statistics.median(ts)


def sweep_configs(shapes: list[tuple[int, int, int]] | None = None, path: Path | None = None) -> list[dict[str, Any]]:
    """µs per launch of each candidate config for the three products of one step, per (B, m, n),
    launched back to back without PDL (each kernel's own time). Written to `path` as it goes."""
    shapes = shapes or SWEEP_SHAPES
    out: list[dict[str, Any]] = []
    pdl, OT.PDL_DEFAULT = OT.PDL_DEFAULT, False
    try:
        return _sweep(shapes, out, path)
    finally:
        OT.PDL_DEFAULT = pdl


def _sweep(shapes, out, path):
    for (b, m, n) in shapes:
        x = torch.randn(b, m, n, device="cuda", dtype=torch.bfloat16) / math.sqrt(m * n)
        A = torch.empty(b, m, m, device="cuda", dtype=torch.bfloat16)
        Bm = torch.empty_like(A)
        X2 = torch.empty_like(x)
        OT._syrk(x, None, A, 1.0, 0.0, None, 1.0, 0.0)
        cases = {
            "xxt": ([c for c in SYRK_CANDIDATES if not c[4]], "syrk",  # no C to prefetch
                    lambda: OT._syrk(x, None, A, 1.0, 0.0, None, 1.0, 0.0), 2 * m * m * n),
            "aa": (SYRK_CANDIDATES, "syrk", lambda: OT._syrk(A, A, Bm, 2.0, -4.0, None, 1.0, 0.0), 2 * m ** 3),
            "bx": (UPDATE_CANDIDATES, "update", lambda: OT._update(Bm, x, X2, 1.0, 3.0, None, 1.0, 0.0),
                   2 * m * m * n),
        }
        for name, (cands, key, fn, fl) in cases.items():
            res = []
            for cfg in cands:
                OT.CONFIG_OVERRIDE[key] = cfg
                try:
                    us = _kernel_us(fn)
                except Exception as e:  # noqa: BLE001 (e.g. out of shared memory)
                    res.append({"config": cfg, "error": f"{type(e).__name__}: {str(e)[:120]}"})
                    continue
                finally:
                    OT.CONFIG_OVERRIDE.pop(key, None)
                res.append({"config": cfg, "us": us, "tflops_nominal": b * fl / us / 1e6})
            default = _kernel_us(fn)
            ok = [r for r in res if "us" in r]
            best = min(ok, key=lambda r: r["us"]) if ok else None
            out.append({"shape": [b, m, n], "product": name, "default_us": default,
                        "best": best, "all": res})
            print(f"{(b, m, n)!s:18} {name:4} default {default:7.2f} us  best {best['config'] if best else None} "
                  f"{best['us'] if best else float('nan'):7.2f} us", flush=True)
        if path is not None:
            write_result(out, path)
    return out


def check_shapes(shapes: list[tuple[int, ...]] | None = None) -> list[dict[str, Any]]:
    """Triton vs torch (both bf16) vs float64 on bank and shard shapes, fresh random inputs each."""
    shapes = shapes or list(FULL_MODEL.bank_shapes().values()) + SHARD_SHAPES
    rows = []
    for shape in shapes:
        for method in METHODS:
            g = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
            ref = orthogonalize(g.double(), method, 5, torch.float64)
            tb = orthogonalize(g, method, 5, torch.bfloat16)
            tr = OT.orthogonalize_triton(g, method, 5, graphs=False)
            for _ in range(3):  # eager, capture, replay
                trg = OT.orthogonalize_triton(g, method, 5, graphs=True)
            rel = lambda a, b: ((a.double() - b.double()).norm() / b.double().norm()).item()  # noqa: E731
            row = {"shape": list(shape), "method": method, "torch_vs_fp64": rel(tb, ref),
                   "triton_vs_fp64": rel(tr, ref), "triton_vs_torch": rel(tr, tb),
                   "graph_vs_eager": rel(trg, tr),
                   "finite": bool(torch.isfinite(tr).all()), "same_shape": tr.shape == g.shape}
            rows.append(row)
            print(f"{shape!s:18} {method:14} torch {row['torch_vs_fp64']:.2e} triton {row['triton_vs_fp64']:.2e} "
                  f"tri-vs-torch {row['triton_vs_torch']:.2e} graph-vs-eager {row['graph_vs_eager']:.1e}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    """`python -m golfprof.bench.ortho bench|sweep|check [OPTIONS]`: the device scripts' entry (typer, in
    bench/command.py)."""
    from golfprof.bench.command import ortho_main

    ortho_main(argv)


if __name__ == "__main__":
    main()
