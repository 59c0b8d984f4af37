"""`golfprof bench mlp` and `golfprof bench ce`: the fused Triton kernels against the compiled reference.

At the full preset's shapes (one micro-batch: 48 × 2048 rows; d 512, MLP hidden 1536, vocabulary 1024),
each kernel is timed with CUDA events (median of `reps` warm calls) forward only and forward + backward:
`inductor` is the model's reference code under `torch.compile` (what the baseline trains with),
`triton_fused` golfprof's kernels (model/mlp_triton.py, model/ce_triton.py). Against them, ceilings
measured in the same run: for the MLP (matmul-bound) TFLOP/s against bf16 `torch.mm` at 8192³
(bench/ortho.py); for the cross-entropy (memory-bound) GB/s against a large device-to-device copy.
Bytes counted for the cross-entropy are the fused kernel's own traffic (logits read twice, gradient
written once, targets and losses), so the reference's GB/s is on the same count: the same work,
less time reads as more GB/s.

On a CPU (a smoke run, not a figure): the tiny preset's shapes, host timer, reference rows only; the
Triton rows are skipped with the reason the kernels cannot run here.
"""

from __future__ import annotations

import platform
import sys
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from golfprof.model import ce_triton as CT
from golfprof.model import mlp_triton as MT
from golfprof.model.config import FULL_MODEL, FULL_TRAIN, TINY_MODEL, TINY_TRAIN

from .ortho import matmul_ceiling, time_fn

KERNELS = ("inductor", "triton_fused")
PASSES = ("forward", "forward_backward")


def copy_ceiling(device: torch.device, mib: int = 1024, reps: int = 20) -> dict[str, Any]:
    """Device-to-device copy of `mib` MiB, median GB/s counting read + write (the memory-bound ceiling)."""
    src = torch.empty(mib << 20, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    t = time_fn(lambda: dst.copy_(src), device, reps=reps, warmup=3)
    return {"mib": mib, "median_ms": t["median_ms"], "gbps": 2 * src.numel() / (t["median_ms"] / 1e3) / 1e9}


def _reference_mlp(h: Tensor, wup: Tensor, wdown: Tensor) -> Tensor:
    return F.linear(F.leaky_relu(F.linear(h, wup), 0.5).square(), wdown)


def _reference_ce(z: Tensor, t: Tensor) -> Tensor:
    y = 30.0 * torch.tanh(z.float() / 30.0)
    return F.cross_entropy(y, t)


def _shapes(cuda: bool) -> dict[str, int]:
    model, train = (FULL_MODEL, FULL_TRAIN) if cuda else (TINY_MODEL, TINY_TRAIN)
    return {"rows": train.micro_batch_seqs * train.seq_len, "d": model.model_dim, "hidden": model.mlp_dim,
            "vocab": model.vocab_size}


def _timed(fn: Callable[[], Tensor], leaves: list[Tensor], backward: bool, device: torch.device, reps: int,
           warmup: int) -> float:
    def step() -> None:
        out = fn()
        if backward:
            for p in leaves:
                p.grad = None
            out.float().sum().backward()

    return time_fn(step, device, reps=reps, warmup=warmup)["median_ms"]


def _inputs(kind: str, s: dict[str, int], device: torch.device) -> tuple[list[Tensor], Callable, Callable]:
    """(leaves, reference fn, fused fn) for the mlp or the ce benchmark."""
    g = torch.Generator(device=device).manual_seed(0)
    if kind == "mlp":
        h = torch.randn(s["rows"], s["d"], device=device, generator=g).bfloat16().requires_grad_()
        wu = (torch.randn(s["hidden"], s["d"], device=device, generator=g) / s["d"] ** 0.5).bfloat16()
        wd = (torch.randn(s["d"], s["hidden"], device=device, generator=g) / s["hidden"] ** 0.5).bfloat16()
        leaves = [h, wu.requires_grad_(), wd.requires_grad_()]
        return leaves, lambda: _reference_mlp(h, wu, wd), lambda: MT.mlp(h, wu, wd, 0.5)
    z = (torch.randn(s["rows"], s["vocab"], device=device, generator=g) * 10).bfloat16().requires_grad_()
    t = torch.randint(0, s["vocab"], (s["rows"],), device=device, generator=g)
    return [z], lambda: _reference_ce(z, t), lambda: CT.cross_entropy(z, t, 30.0)


def _work(kind: str, s: dict[str, int], backward: bool) -> dict[str, float]:
    """Nominal FLOPs (mlp: its three matmuls forward, twice that backward) or bytes (ce: the fused kernel's)."""
    if kind == "mlp":
        fwd = 2 * 2 * s["rows"] * s["d"] * s["hidden"]
        return {"flop": fwd * (3 if backward else 1)}
    logits = s["rows"] * s["vocab"] * 2  # bf16
    return {"bytes": 2 * logits + (logits if backward else 0) + s["rows"] * (8 + 4)}


def _row(kind: str, kernel: str, pas: str, s: dict[str, int], device: torch.device, ceilings: dict[str, Any],
         reps: int, warmup: int, triton: tuple[bool, str]) -> dict[str, Any]:
    row: dict[str, Any] = {"bench": kind, "kernel": kernel, "pass": pas}
    if kernel == "triton_fused" and not triton[0]:
        return {**row, "skipped": triton[1]}
    leaves, ref, fused = _inputs(kind, s, device)
    fn = fused if kernel == "triton_fused" else ref
    if device.type == "cuda":
        fn = torch.compile(fn, fullgraph=True)
    ms = _timed(fn, leaves, pas == "forward_backward", device, reps, warmup)
    work = _work(kind, s, pas == "forward_backward")
    row["ms"] = ms
    if "flop" in work:
        row["tflops"] = work["flop"] / (ms / 1e3) / 1e12
        if ceilings.get("matmul"):
            row["pct_peak"] = 100 * row["tflops"] / ceilings["matmul"]["tflops"]
    else:
        row["gbps"] = work["bytes"] / (ms / 1e3) / 1e9
        if ceilings.get("copy"):
            row["pct_peak"] = 100 * row["gbps"] / ceilings["copy"]["gbps"]
    return row


def bench_fused(kind: str, device: torch.device, reps: int = 30, warmup: int = 5,
                command: str | None = None) -> dict[str, Any]:
    """Every kernel × pass of one benchmark (`mlp` or `ce`) at the full preset's shapes (CPU: the tiny's)."""
    cuda = device.type == "cuda"
    s = _shapes(cuda)
    triton = MT.available() if cuda else (False, f"{device} is not a CUDA device")
    ceilings: dict[str, Any] = {}
    if cuda:
        ceilings = {"matmul": matmul_ceiling(device)} if kind == "mlp" else {"copy": copy_ceiling(device)}
    rows = [_row(kind, k, p, s, device, ceilings, reps, warmup, triton) for k in KERNELS for p in PASSES]
    return {
        "bench": kind,
        "device": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
        "torch": torch.__version__,
        "triton_available": list(triton),
        "command": command or " ".join(sys.argv),
        "timer": "cuda events" if cuda else "perf_counter (CPU smoke run)",
        "reps": reps, "warmup": warmup, "shapes": s, "ceilings": ceilings, "rows": rows,
    }


def table(result: dict[str, Any]) -> str:
    """A plain-text table of the rows: ms, throughput (TFLOP/s or GB/s) and % of the measured ceiling."""
    unit = "TFLOP/s" if result["bench"] == "mlp" else "GB/s"
    lines = [f"{result['device']}  {result['bench']}  {result['shapes']}",
             f"{'kernel':14} {'pass':17} {'ms':>8} {unit:>8} {'%peak':>6}"]
    for r in result["rows"]:
        if "skipped" in r:
            lines.append(f"{r['kernel']:14} {r['pass']:17} skipped: {r['skipped']}")
            continue
        rate = r.get("tflops", r.get("gbps"))
        lines.append(f"{r['kernel']:14} {r['pass']:17} {r['ms']:8.3f} {rate:8.1f} "
                     f"{r.get('pct_peak', float('nan')):6.1f}")
    return "\n".join(lines)
