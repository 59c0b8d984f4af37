"""`golfprof bench comm`: measure a collective cost table on the machine it runs on.

Every modelled op (all-reduce, reduce-scatter, all-gather, broadcast) over a size sweep of 4 KiB to
256 MiB (the full buffer, nccl-tests' convention: a reduce-scatter's input, an all-gather's output),
at the world size present: NCCL across the visible GPUs, gloo on the CPU. The result is a
`golfprof-comm-table/1` file with ``measured`` times, which `--comm-model FILE` then uses before any
modelled number: calibrate first, predict after. An existing table at the output path keeps its other
world sizes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from golfprof.errors import ConfigError
from golfprof.profiler.rundir import environment, write_result

OPS = ("all_reduce", "reduce_scatter", "all_gather", "broadcast")
MIN_BYTES, MAX_BYTES = 4 << 10, 256 << 20
INTERFERENCE_NOTE = ("not measured by bench comm: the literature default of the bundled tables (Lee et al., "
                     "arXiv:2507.03114, 2025: average compute slowdown 18.9% under overlapped communication)")


UNCERTAINTY_NOTE = ("golfprof bench comm: the largest (p90 - p10) / 2 / median of one size's repeats, over every op "
                    "and size measured into this table")


def sizes(lo: int = MIN_BYTES, hi: int = MAX_BYTES, factor: int = 4) -> list[int]:
    out, s = [], lo
    while s <= hi:
        out.append(s)
        s *= factor
    return out


def _call(op: str, buf: torch.Tensor, part: torch.Tensor | None) -> None:
    """One collective through today's torch names (the `_single` ones where torch has them)."""
    if op == "all_reduce":
        dist.all_reduce(buf)
    elif op == "reduce_scatter":
        (getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor)(part, buf)
    elif op == "all_gather":
        (getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor)(buf, part)
    else:
        dist.broadcast(buf, src=0)


def time_op(op: str, nbytes: int, world: int, device: torch.device, dtype: torch.dtype,
            iters: int | None = None, warmup: int = 2, samples: list[float] | None = None) -> float:
    """Median µs of one collective of `nbytes` (the full buffer) on this rank; ``samples`` receives every time."""
    elem = torch.tensor([], dtype=dtype).element_size()
    n = max(world, nbytes // elem // world * world)
    buf = torch.ones(n, dtype=dtype, device=device)
    part = torch.ones(n // world, dtype=dtype, device=device) if op in ("reduce_scatter", "all_gather") else None
    reps = iters or max(3, min(30, (64 << 20) // max(nbytes, 1)))
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)  # noqa: E731
    times = []
    for i in range(warmup + reps):
        dist.barrier()
        sync()
        t0 = time.perf_counter()
        _call(op, buf, part)
        sync()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1e6)
    if samples is not None:
        samples.extend(times)
    return statistics.median(times)


def half_spread(times: list[float]) -> float:
    """(p90 − p10) / 2 / median of one row's repeats: its relative ±."""
    if len(times) < 2:
        return 0.0
    qs = statistics.quantiles(times, n=10, method="inclusive")
    return (qs[-1] - qs[0]) / 2 / statistics.median(times)


def _worker(rank: int, world: int, store: str, out: str, lo: int, hi: int, ops: tuple[str, ...]) -> None:
    cuda = torch.cuda.is_available()
    backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(rank)
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    dist.init_process_group(backend, init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        dtype = torch.bfloat16 if cuda else torch.float32
        rows, spread = {}, 0.0
        for op in ops:
            rows[op] = []
            for s in sizes(lo, hi):
                times: list[float] = []
                rows[op].append([s, time_op(op, s, world, device, dtype, samples=times)])
                spread = max(spread, half_spread(times))
        if rank == 0:
            Path(out).write_text(json.dumps({"rows": rows, "backend": backend, "dtype": str(dtype),
                                             "spread": spread}))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def measure(world: int, lo: int = MIN_BYTES, hi: int = MAX_BYTES, ops: tuple[str, ...] = OPS) -> dict[str, Any]:
    """Run the sweep on `world` processes (one per GPU when CUDA is present); rank 0's times."""
    gpus = torch.cuda.device_count()
    if world < 1:
        raise ConfigError(f"--nproc must be >= 1, got {world}")
    if gpus and world > gpus:
        raise ConfigError(f"--nproc {world} is larger than the {gpus} GPU(s) present")
    bad = [o for o in ops if o not in OPS]
    if bad:
        raise ConfigError(f"--op {', '.join(bad)}: valid: {', '.join(OPS)}")
    with tempfile.TemporaryDirectory(prefix="golfprof-bench-comm-") as tmp:
        out = Path(tmp) / "rows.json"
        args = (world, str(Path(tmp) / "store"), str(out), lo, hi, ops)
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        if world == 1:
            _worker(0, *args)
        else:
            mp.start_processes(_worker, args=args, nprocs=world, start_method="spawn")
        return json.loads(out.read_text())


def table(result: dict[str, Any], world: int, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The measured rows as a comm table; a previous table's other world sizes are kept."""
    env = environment(world, result["backend"])
    measured: dict[str, dict[str, list]] = {op: dict(v) for op, v in (previous or {}).get("measured", {}).items()}
    for op, rows in result["rows"].items():
        measured.setdefault(op, {})[str(world)] = rows
    return {
        "name": f"measured: {env['device']} ({result['backend']})",
        "format": "golfprof-comm-table/1",
        "note": (f"golfprof bench comm, {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}: median µs "
                 f"per collective of {result['dtype']}, sizes are full buffers (nccl-tests' convention)"),
        "measured_on": {k: env[k] for k in ("device", "gpus", "torch", "cuda", "hostname", "git_revision")},
        "interference": (previous or {}).get("interference") or {"value": 0.189, "source": INTERFERENCE_NOTE},
        "uncertainty": {"value": max(float(result.get("spread", 0.0)),
                                     float((previous or {}).get("uncertainty", {}).get("value", 0.0))),
                        "source": UNCERTAINTY_NOTE},
        "measured": measured,
    } | {k: previous[k] for k in ("interference_probe",) if previous and k in previous}


def previous_table(out: Path) -> dict[str, Any] | None:
    """The table already at ``out`` (its other world sizes are kept), refused before any measuring when the
    file there is not one: a failure after the sweep would lose the measurement."""
    if not out.is_file():
        return None
    try:
        previous = json.loads(out.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        previous = None
    if not isinstance(previous, dict) or previous.get("format") != "golfprof-comm-table/1":
        raise ConfigError(f"--out {out}: exists and is not a golfprof comm table; choose another path")
    return previous


def bench_comm(world: int, out: Path, lo: int = MIN_BYTES, hi: int = MAX_BYTES,
               ops: tuple[str, ...] = OPS) -> dict[str, Any]:
    previous = previous_table(out)
    doc = table(measure(world, lo, hi, ops), world, previous)
    write_result(out, doc)  # kept in the temp folder first: a failing write loses no measurement
    return doc
