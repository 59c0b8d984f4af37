"""Synthetic golfprof run directories with known answers: summaries, per-step parquet, Kineto traces.

Each profiled step of a rank follows the Parallel Muon schedule of two banks (a, b):

    forward, backward            10 compute kernels each on stream 7 (backward launched from the
                                 autograd thread while the main thread holds the backward range)
    reduce_scatter_launch        RS_a [6600, 7100), RS_b [7100, 7600) on stream 20
    a/orthogonalize              compute [7120, 7650)     -> RS_b hidden 480, exposed 20
    a/all_gather                 AG_a [7750, 8150)        -> hidden under b's compute [7820, 8350): 330
    b/orthogonalize              compute [7820, 8350)
    b/all_gather                 AG_b [8450, 8450 + ag_b) -> nothing computes: all exposed
    update_apply                 compute [8900, 9000)

(µs from the step start; backward kernels end at 6250, so RS_a is exposed.) Per step and rank:
reduce_scatter_launch 1.0 ms of which 0.52 exposed; a/all_gather 0.4 ms, 0.07 exposed;
b/all_gather ag_b ms, all exposed. ``planted_us`` adds one more kernel (``PLANTED``) to
update_apply, [9000, 9000 + planted_us) on the compute stream: what a diff must find.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

STEP_US = 10_000.0
BASE_US = 1_700_000_000_000.0
MAIN, AUTOGRAD = 100, 200
PROFILED = (5, 6, 7)
STEPS, WARMUP = 12, 2
RS_LAUNCH = "golfprof/step/optimizer/reduce_scatter_launch"
MUON = "golfprof/step/optimizer/muon"
EXPECTED = {  # phase -> (comm ms, exposed ms) per step, for ag_b = 0.4 ms
    RS_LAUNCH: (1.0, 0.52), f"{MUON}/a_bank/all_gather": (0.4, 0.07), f"{MUON}/b_bank/all_gather": (0.4, 0.4),
}
PLANTED = "planted_copy_kernel"
TOGGLES = {"explicit_banks": {"layout": "banked", "comm": "explicit", "ortho": "ns5"},
           "ddp_banks": {"layout": "banked", "comm": "ddp", "ortho": "ns5"}}


class _Trace:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.corr = 0

    def cpu(self, name: str, ts: float, dur: float, tid: int = MAIN) -> None:
        self.events.append({"ph": "X", "cat": "user_annotation", "name": name, "pid": 1, "tid": tid,
                            "ts": BASE_US + ts, "dur": dur})

    def kernel(self, name: str, launch: float, start: float, dur: float, stream: int = 7, tid: int = MAIN) -> None:
        self.corr += 1
        self.events.append({"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": tid,
                            "ts": BASE_US + launch, "dur": 3.0, "args": {"correlation": self.corr}})
        self.events.append({"ph": "X", "cat": "kernel", "name": name, "pid": 0, "tid": stream, "ts": BASE_US + start,
                            "dur": dur, "args": {"stream": stream, "correlation": self.corr, "device": 0}})


def trace_doc(rank: int, world: int, variant: str, ag_b_us: float = 400.0, planted_us: float = 0.0) -> dict[str, Any]:
    t = _Trace()
    for i, step in enumerate(PROFILED):
        o = i * STEP_US
        t.cpu(f"ProfilerStep#{step}", o, STEP_US)
        t.cpu("golfprof/step", o + 10, STEP_US - 20)
        t.cpu("golfprof/step/data", o + 20, 200)
        t.cpu("golfprof/step/forward", o + 300, 3000)
        for k in range(10):
            t.kernel(f"fwd_gemm_{k}", o + 310 + 20 * k, o + 350 + 252 * k, 250)
        t.cpu("golfprof/step/backward", o + 3400, 3000)
        for k in range(10):
            t.kernel(f"bwd_gemm_{k}", o + 3410 + 20 * k, o + 3450 + 280 * k, 278, tid=AUTOGRAD)
        t.cpu("golfprof/step/optimizer", o + 6500, 3300)
        t.cpu(RS_LAUNCH, o + 6510, 90)
        t.kernel("ncclDevKernel_ReduceScatter_Sum_bf16_RING_LL(ncclDevComm*, unsigned long, ncclWork*)",
                 o + 6520, o + 6600, 500, stream=20)
        t.kernel("ncclDevKernel_ReduceScatter_Sum_bf16_RING_LL(ncclDevComm*, unsigned long, ncclWork*)",
                 o + 6540, o + 7100, 500, stream=20)
        t.cpu(MUON, o + 6610, 3090)
        t.cpu(f"{MUON}/a_bank/wait", o + 6620, 480)
        t.cpu(f"{MUON}/a_bank/orthogonalize", o + 7110, 590)
        t.kernel("ns5_a", o + 7115, o + 7120, 530)
        t.cpu(f"{MUON}/a_bank/all_gather", o + 7710, 40)
        t.kernel("ncclDevKernel_AllGather_RING_LL(ncclDevComm*, unsigned long, ncclWork*)", o + 7720, o + 7750, 400,
                 stream=20)
        t.cpu(f"{MUON}/b_bank/wait", o + 7760, 40)
        t.cpu(f"{MUON}/b_bank/orthogonalize", o + 7810, 590)
        t.kernel("ns5_b", o + 7815, o + 7820, 530)
        t.cpu(f"{MUON}/b_bank/all_gather", o + 8410, 40)
        t.kernel("ncclDevKernel_AllGather_RING_LL(ncclDevComm*, unsigned long, ncclWork*)", o + 8420, o + 8450,
                 ag_b_us, stream=20)
        t.cpu("golfprof/step/optimizer/update_apply", o + 8860, 740)
        t.kernel("update_apply", o + 8870, o + 8900, 100)
        if planted_us:
            t.kernel(f"void {PLANTED}<float, 4>(float*, long)", o + 8880, o + 9000, planted_us)
        t.cpu("golfprof/step/ema", o + 9810, 90)
        t.kernel("ema_kernel", o + 9815, o + 9850, 30)
    meta = {"variant": variant, "rank": rank, "world_size": world, "config": {"toggles": TOGGLES[variant]},
            "window": {"wait": PROFILED[0], "warmup": 0, "active": len(PROFILED)}}
    return {"schemaVersion": 1, "distributedInfo": {"backend": "nccl", "rank": rank, "world_size": world},
            "golfprof": meta, "traceEvents": t.events, "displayTimeUnit": "ms"}


def cpu_only_doc(rank: int, world: int) -> dict[str, Any]:
    """A gloo run's trace: no GPU rows; the collectives run on a worker thread (tid 300)."""
    doc = trace_doc(rank, world, "explicit_banks")
    doc["traceEvents"] = [e for e in doc["traceEvents"] if e["cat"] == "user_annotation"]
    for i in range(len(PROFILED)):
        for name, ts, dur in (("gloo:reduce_scatter", 6600, 1000), ("gloo:all_gather", 7750, 400)):
            doc["traceEvents"].append({"ph": "X", "cat": "user_annotation", "name": name, "pid": 1, "tid": 300,
                                       "ts": BASE_US + i * STEP_US + ts, "dur": dur})
    return doc


def write_trace(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))
    return path


def _phase_ms(base_ms: float, optimizer_ms: float) -> dict[str, float]:
    rest = base_ms - optimizer_ms
    return {"golfprof/step": base_ms, "golfprof/step/data": 0.2, "golfprof/step/forward": rest * 0.33,
            "golfprof/step/backward": rest * 0.6, "golfprof/step/optimizer": optimizer_ms,
            RS_LAUNCH: 0.09, MUON: optimizer_ms * 0.8, "golfprof/step/ema": 0.1}


def write_run(path: Path, variant: str, ms: float, optimizer_ms: float, seed: int, world: int = 2,
              trace: bool = True, git: str | None = None, noise: float = 0.01, ag_b_us: float = 400.0,
              planted_us: float = 0.0) -> Path:
    """A finished run: per-step ms ~ N(ms, noise·ms), phases scaled to match, traces for every rank."""
    rng = np.random.default_rng(seed)
    steps = np.arange(STEPS)
    ms_s = ms * (1 + noise * rng.standard_normal(STEPS))
    opt_s = optimizer_ms * (1 + noise * rng.standard_normal(STEPS))
    timed = [s for s in range(WARMUP, STEPS) if s not in PROFILED]
    path.mkdir(parents=True)
    for sub in ("steps", "phases", "trace"):
        (path / sub).mkdir()
    for r in range(world):
        pd.DataFrame({"step": steps, "rank": r, "loss": 5.0 - 0.1 * steps, "ms": ms_s, "lr_mult": 1.0,
                      "momentum": 0.95}).to_parquet(path / "steps" / f"rank{r}.parquet", index=False)
        rows = [{"step": int(s), "rank": r, "phase": p, "ms": float(v)}
                for s in steps for p, v in _phase_ms(ms_s[s], opt_s[s]).items()]
        pd.DataFrame(rows).to_parquet(path / "phases" / f"rank{r}.parquet", index=False)
        if trace:
            write_trace(path / "trace" / f"rank{r}.pt.trace.json.gz", trace_doc(r, world, variant, ag_b_us, planted_us))
    phase_med = {p: float(np.median([_phase_ms(ms_s[s], opt_s[s])[p] for s in timed])) for p in _phase_ms(1, 0.1)}
    toggles = TOGGLES[variant]
    summary = {"variant": variant, "preset": "tiny", "device": "NVIDIA H100 80GB HBM3", "torch": "2.11",
               "world_size": world, "command": f"golfprof ablate --variant {variant}", "steps": STEPS,
               "warmup_steps": WARMUP, "tokens_per_step": 4096, "ms_per_step": float(np.median(ms_s[timed])),
               "optimizer_ms": phase_med["golfprof/step/optimizer"],
               "forward_backward_ms": phase_med["golfprof/step/forward"] + phase_med["golfprof/step/backward"],
               "phase_ms": phase_med, "toggles": toggles, "ranks": []}
    config = {"preset": "tiny", "train": {"steps": STEPS, "tokens_per_step": 4096}, "toggles": toggles,
              "variant": variant, "warmup_steps": WARMUP,
              "profile_window": {"wait": PROFILED[0], "warmup": 0, "active": len(PROFILED)}}
    (path / "summary.json").write_text(json.dumps(summary))
    (path / "config.json").write_text(json.dumps(config))
    (path / "env.json").write_text(json.dumps({"git_revision": git, "world_size": world, "device": summary["device"]}))
    return path


def write_matrix(folder: Path, repeats: int = 2, world: int = 2) -> Path:
    """explicit_banks (baseline, 100 ms, optimizer 10 ms) vs ddp_banks (95 ms, optimizer 4 ms), interleaved.

    ddp_banks' traces hold a 0.2 ms planted kernel the baseline's lack; repeats' traces are identical.
    """
    folder.mkdir(parents=True)
    runs = {}
    for k in range(repeats):
        for j, (variant, ms, opt) in enumerate((("explicit_banks", 100.0, 10.0), ("ddp_banks", 95.0, 4.0))):
            name = f"{variant}-r{k}"
            write_run(folder / name, variant, ms, opt, seed=10 * k + j, world=world,
                      planted_us=200.0 if variant == "ddp_banks" else 0.0)
            runs[name] = {"variant": variant, "repeat": k, "status": "ok"}
    state = {"runs": runs, "variants": ["explicit_banks", "ddp_banks"], "repeats": repeats, "nproc": world,
             "baseline": "explicit_banks"}
    (folder / "matrix.json").write_text(json.dumps(state))
    return folder


def write_series(folder: Path, ms: list[float], optimizer_ms: list[float], trace: bool = False) -> list[Path]:
    """Successive-commit runs named as golfprof names them (timestamp first), one minute apart."""
    out = []
    for i, (m, o) in enumerate(zip(ms, optimizer_ms)):
        name = f"20260101-00{i:02d}00-explicit_banks"
        out.append(write_run(folder / name, "explicit_banks", m, o, seed=100 + i, world=1, trace=trace,
                             git=f"{i:07x}abcdef", noise=0.002))
    return out
