"""`golfprof bench attention`: every attention backend at a preset's shapes, forward and forward+backward.

One call of causal GQA attention as the trainer makes it (full preset: micro-batch 48 × 2048 tokens,
8 query heads, 4 KV heads, head dim 64, bf16), through each backend of `model/attention.py`
(the toggle's, plus SDPA's memory-efficient kernel for reference). Timed with CUDA events, each call
from an idle GPU: warm-up calls, then the median of `reps` calls, taken round-robin over the backends
(timed one backend after the other, two rows running the same cuDNN kernels differed by more than their
spread). Against the attention FLOPs that
golfprof's MFU counts (`model/flops.py`: causal, half the score matrix), per call. Correctness: each
backend's output and q/k/v gradients against the math backend in fp32 on the same bf16 inputs
(relative Frobenius error, on the first `CHECK_SEQS` sequences), within `BF16_OUT_TOL` /
`BF16_GRAD_TOL`. The kernels each row ran are read from a profiled call and named by
`traces.kernels.attention_backend`, so a row says which kernel it measured (and `sdpa` which one
PyTorch picked). `fastest_agreeing` is the fastest forward+backward among rows that agree: how the
issue asks for the default to be chosen.

On a CPU (`--device cpu --preset tiny`): a smoke run, host timer, GPU-only rows skipped with the reason.
"""

from __future__ import annotations

import json
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import typer

from golfprof.errors import ConfigError

if TYPE_CHECKING:
    import torch

ROWS = ("sdpa", "flash", "cudnn", "flex", "fa3", "efficient")  # efficient: SDPA's memory-efficient kernel
CHECK_SEQS = 4  # sequences compared with the fp32 math reference (its scores are B·H·T² fp32 values)
# Relative Frobenius error vs fp32 math on the same bf16 inputs; the reasoning is in tests/model/test_attention.py.
BF16_OUT_TOL, BF16_GRAD_TOL = 1e-2, 2e-2


def shapes(preset: str) -> dict[str, int]:
    """Micro-batch, sequence length and heads of one attention call of the preset's trainer."""
    from golfprof.model.config import preset as load_preset

    cfg, train = load_preset(preset)
    accum = train.grad_accum(1)
    return {"batch": train.micro_batch_seqs, "seq_len": train.seq_len, "heads": cfg.num_heads,
            "kv_heads": cfg.num_kv_heads, "head_dim": cfg.head_dim, "layers": cfg.num_layers,
            "calls_per_step_one_gpu": cfg.num_layers * accum}


def flops_per_call(preset: str) -> dict[str, int]:
    """Causal attention FLOPs of one call, as `model/flops.py` counts them for MFU (forward 1/3, backward 2/3)."""
    from golfprof.model.config import preset as load_preset
    from golfprof.model.flops import attention_flops_per_token

    cfg, train = load_preset(preset)
    fwd_bwd = attention_flops_per_token(cfg, train.seq_len) // cfg.num_layers * train.micro_batch_seqs * train.seq_len
    return {"forward": fwd_bwd // 3, "forward_backward": fwd_bwd}


def time_once(fn: Callable[[], Any], device: torch.device) -> float:
    """ms of one call from an idle GPU (CUDA events), or of the host (CPU smoke runs)."""
    import torch

    if device.type != "cuda":
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3
    torch.cuda.synchronize(device)
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    fn()
    e.record()
    e.synchronize()
    return s.elapsed_time(e)


def interleaved_medians(fns: dict[str, Callable[[], Any]], device: torch.device, reps: int,
                        warmup: int) -> dict[str, dict[str, float]]:
    """Per key: median, min and max ms of `reps` calls, taken round-robin over the keys (A B C A B C ...) so
    that clock and thermal drift during the benchmark hits every backend alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            times[k].append(time_once(fn, device))
    return {k: {"median_ms": statistics.median(t), "min_ms": min(t), "max_ms": max(t)} for k, t in times.items()}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def kernel_names(fn: Callable[[], Any]) -> list[str]:
    """Names of the GPU kernels one call of fn ran, as the trace file golfprof analyzes records them."""
    import os
    import tempfile

    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        events = json.loads(Path(path).read_text()).get("traceEvents", [])
    finally:
        os.unlink(path)
    return sorted({e["name"] for e in events if e.get("cat") == "kernel"})


def _kernels(fn: Callable[[], Any], device: torch.device) -> list[str]:
    """Attention kernel names (`backend: name`) of one call."""
    from golfprof.traces.kernels import attention_backend

    if device.type != "cuda":
        return []
    return sorted(f"{attention_backend(n)}: {n}" for n in kernel_names(fn) if attention_backend(n))


@dataclass
class _Case:
    """One attention call's inputs at a preset's shapes, and the fp32 math reference on its first sequences."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    dy: torch.Tensor
    n: int  # sequences checked against the reference
    ref: torch.Tensor
    ref_grads: tuple[torch.Tensor, ...]

    def fns(self, name: str) -> tuple[Callable[[], Any], Callable[[], None]]:
        """(forward, forward+backward) of the full-size call through backend ``name``."""
        from golfprof.model import attention as A

        def fwd() -> torch.Tensor:
            return A.causal_attention(self.q, self.k, self.v, name)

        def fwd_bwd() -> None:
            self.q.grad = self.k.grad = self.v.grad = None
            fwd().backward(self.dy)

        return fwd, fwd_bwd


def _case(shp: dict[str, int], device: torch.device, dtype: torch.dtype, seed: int) -> _Case:
    import torch

    from golfprof.model import attention as A

    B, T, H, Hkv, D = shp["batch"], shp["seq_len"], shp["heads"], shp["kv_heads"], shp["head_dim"]
    g = torch.Generator(device=device).manual_seed(seed)

    def leaf(h: int) -> torch.Tensor:
        return torch.randn(B, h, T, D, device=device, dtype=dtype, generator=g).requires_grad_()

    q, k, v = leaf(H), leaf(Hkv), leaf(Hkv)
    dy = torch.randn(B, H, T, D, device=device, dtype=dtype, generator=g)
    n = min(B, CHECK_SEQS)
    ref_in = [t[:n].detach().float().requires_grad_() for t in (q, k, v)]
    ref = A.causal_attention(*ref_in, "math")
    ref_grads = torch.autograd.grad(ref, ref_in, dy[:n].float())
    return _Case(q, k, v, dy, n, ref.detach(), ref_grads)


def _skip_reason(name: str, device: torch.device) -> str | None:
    """Why backend ``name`` cannot run here, None when it can."""
    from golfprof.model import attention as A

    if name == "fa3" and not A.fa3_installed():
        return f"{A.FA3_MODULE} is not importable"
    if name in A.CUDA_ONLY + ("efficient",) and device.type != "cuda":
        return f"the device is {device.type}"
    return None


def _check_row(name: str, c: _Case, device: torch.device, T: int) -> dict[str, Any]:
    """Backend ``name``'s errors against the reference and the kernels it ran; ``skipped`` when it refuses the
    shapes (raised on the first full-size call: flex compiles there)."""
    import torch

    from golfprof.model import attention as A

    if name == "flex":
        A.prepare("flex", T, device)
    _, fwd_bwd = c.fns(name)
    try:
        qs, ks, vs = (t[:c.n].detach().requires_grad_() for t in (c.q, c.k, c.v))
        y = A.causal_attention(qs, ks, vs, name)
        grads = torch.autograd.grad(y, (qs, ks, vs), c.dy[:c.n])
        fwd_bwd()
    except (RuntimeError, NotImplementedError, ValueError) as e:
        return {"skipped": (str(e).strip().splitlines() or [type(e).__name__])[0][:200]}
    errs = {"out": _rel(y, c.ref), **{f"d{x}": _rel(gr, rg) for x, gr, rg in zip("qkv", grads, c.ref_grads)}}
    kernels = _kernels(fwd_bwd, device)
    return {"rel_err_vs_fp32_math": errs,
            "agrees": errs["out"] < BF16_OUT_TOL and max(errs[x] for x in ("dq", "dk", "dv")) < BF16_GRAD_TOL,
            "kernels": kernels, "kernels_of": sorted({k.split(":")[0] for k in kernels})}  # sdpa: what PyTorch picked


def _timings(tf: dict[str, float], tfb: dict[str, float], fl: dict[str, int], calls_per_step: int) -> dict[str, Any]:
    """A row's forward and forward+backward medians, the backward by difference, and TFLOP/s."""
    ms_f, ms_fb = tf["median_ms"], tfb["median_ms"]
    return {"ms_fwd": ms_f, "ms_fwd_bwd": ms_fb, "ms_bwd": ms_fb - ms_f,
            "tflops_fwd": fl["forward"] / (ms_f / 1e3) / 1e12,
            "tflops_fwd_bwd": fl["forward_backward"] / (ms_fb / 1e3) / 1e12,
            "ms_per_step_one_gpu": ms_fb * calls_per_step, "timing_fwd": tf, "timing_fwd_bwd": tfb}


def bench_attention(preset: str = "full", device: torch.device | str | None = None, reps: int = 20,
                    warmup: int = 5, rows: tuple[str, ...] = ROWS, command: str | None = None,
                    seed: int = 0) -> dict[str, Any]:
    """Time and check every backend in `rows` at the preset's attention shape; the result JSON as a dict."""
    import torch

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    shp = shapes(preset)
    dtype = torch.bfloat16 if cuda else torch.float32  # the CPU has no fast bf16 attention; a smoke run
    fl = flops_per_call(preset)
    c = _case(shp, device, dtype, seed)
    out_rows: list[dict[str, Any]] = []
    for name in rows:
        why = _skip_reason(name, device)
        out_rows.append({"backend": name} | ({"skipped": why} if why else _check_row(name, c, device, shp["seq_len"])))
    timed = [r["backend"] for r in out_rows if "skipped" not in r]
    fns = {f"{n}/{part}": fn for n in timed for part, fn in zip(("fwd", "fwd_bwd"), c.fns(n))}
    medians = interleaved_medians(fns, device, reps, warmup)
    for row in out_rows:
        if row["backend"] in timed:
            row.update(_timings(medians[f"{row['backend']}/fwd"], medians[f"{row['backend']}/fwd_bwd"], fl,
                                shp["calls_per_step_one_gpu"]))
    agreeing = [r for r in out_rows if r.get("agrees")]
    return {
        "device": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "command": command or shlex.join(sys.argv),
        "preset": preset,
        "timer": "cuda events, backends interleaved" if cuda else "perf_counter (CPU smoke run)",
        "reps": reps, "warmup": warmup, "dtype": str(dtype).removeprefix("torch."),
        "shapes": shp,
        "flops_per_call": fl,
        "flops_source": "golfprof.model.flops.attention_flops_per_token (causal: half the scores), per layer call",
        "check": {"reference": "math backend, fp32, same inputs", "sequences": c.n,
                  "out_tol": BF16_OUT_TOL, "grad_tol": BF16_GRAD_TOL, "metric": "relative Frobenius error"},
        "fastest_agreeing": min(agreeing, key=lambda r: r["ms_fwd_bwd"])["backend"] if agreeing else None,
        "rows": out_rows,
    }


def table(result: dict[str, Any]) -> str:
    s = result["shapes"]
    head = (f"{result['device']} · {result['preset']}: {s['batch']}×{s['seq_len']} tokens, "
            f"{s['heads']}/{s['kv_heads']} heads of {s['head_dim']}, {result['dtype']} · median of {result['reps']}")
    lines = [head, f"{'backend':10} {'fwd ms':>8} {'f+b ms':>8} {'fwd TF/s':>9} {'f+b TF/s':>9} {'err out':>8} "
                   f"{'err grad':>8}  kernels"]
    for r in result["rows"]:
        if "skipped" in r:
            lines.append(f"{r['backend']:10} skipped: {r['skipped']}")
            continue
        e = r["rel_err_vs_fp32_math"]
        ks = ", ".join(r["kernels_of"]) or "-"
        lines.append(f"{r['backend']:10} {r['ms_fwd']:8.3f} {r['ms_fwd_bwd']:8.3f} {r['tflops_fwd']:9.1f} "
                     f"{r['tflops_fwd_bwd']:9.1f} {e['out']:8.1e} {max(e['dq'], e['dk'], e['dv']):8.1e}  {ks}"
                     + ("" if r["agrees"] else "  (outside bf16 tolerance)"))
    lines.append(f"fastest within tolerance: {result['fastest_agreeing']}")
    return "\n".join(lines)


def default_path(result: dict[str, Any]) -> Path:
    slug = "".join(c if c.isalnum() else "_" for c in result["device"].lower()).strip("_")
    return Path("benchmarks/results") / f"attention_{slug}_{result['preset']}.json"


def write_result(result: dict[str, Any], path: Path) -> Path:
    """The result JSON, atomically, kept in the temp folder first (a failing write loses no measurement); a re-run
    replaces it (the newest measurement is the result), but never a folder, FIFO or device node."""
    from golfprof.profiler.rundir import write_result as write_kept

    path = Path(path)
    write_kept(path, result)
    return path


def bench_attention_cmd(
    preset: Annotated[str, typer.Option(
        help="Shapes of one attention call of this preset: full, tiny or golf7l.")] = "full",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    reps: Annotated[int, typer.Option(help="Timed calls per row; the median is reported.")] = 20,
    warmup: Annotated[int, typer.Option(help="Untimed calls before each timing (flex compiles in them).")] = 5,
    backends: Annotated[Optional[str], typer.Option(
        help=f"Comma list of rows (default: all): {', '.join(ROWS)} "
             "(efficient: SDPA's memory-efficient kernel).")] = None,
    out: Annotated[Optional[Path], typer.Option(
        help="Result JSON (default: benchmarks/results/attention_<gpu>_<preset>.json).")] = None,
) -> None:
    """Causal GQA attention through every backend at the preset's shapes: forward and forward+backward (CUDA
    events, median), TFLOP/s against golfprof's attention FLOPs, each checked against fp32 math; writes JSON."""
    from golfprof.model.config import preset as load_preset
    from golfprof.model.device import resolve_device

    load_preset(preset)  # unknown preset: ConfigError
    resolved = resolve_device(device, gpu_only="bench attention times GPU kernels and no CUDA device is visible; "
                              "--device cpu --preset tiny gives a smoke run (sdpa rows only, host timer)")
    if resolved.type == "cpu" and preset != "tiny":
        raise ConfigError(f"--preset {preset} on the CPU would run the math backend for hours; use --preset tiny")
    if reps < 1 or warmup < 0:
        raise ConfigError("--reps must be >= 1 and --warmup >= 0")
    chosen = tuple(b.strip() for b in backends.split(",") if b.strip()) if backends is not None else ROWS
    if not chosen or set(chosen) - set(ROWS):
        raise ConfigError(f"--backends {backends!r}: choose from {', '.join(ROWS)}")
    if out is not None:
        from golfprof.profiler.rundir import check_output

        check_output(out, "--out", force=True)  # a re-run replaces it: the newest measurement is the result
    result = bench_attention(preset, resolved, reps=reps, warmup=warmup, rows=chosen,
                             command=shlex.join(["golfprof", *sys.argv[1:]]))
    path = write_result(result, out or default_path(result))
    print(table(result))
    print(f"written: {path}")


def main(argv: list[str] | None = None) -> None:
    """`python -m golfprof.bench.attention [OPTIONS]`: the same command without the CLI (device scripts)."""
    from golfprof.errors import GolfprofError

    app = typer.Typer(add_completion=False)
    app.command()(bench_attention_cmd)
    try:
        app(argv, standalone_mode=False)
    except GolfprofError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None


if __name__ == "__main__":
    main()
