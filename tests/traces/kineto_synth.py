"""Build small Kineto traces with known answers, shaped like what torch.profiler writes.

Times are µs from a base like a real trace's, with fractional parts (ns resolution) so that
HTA's rounding is exercised too.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

BASE = 1_700_000_000_000.0
MAIN_TID = 1111
AUTOGRAD_TID = 2222


class TraceBuilder:
    def __init__(self, rank: int = 0, world_size: int | None = 1, golfprof: dict[str, Any] | None = None,
                 pid: int = 4242) -> None:
        self.rank = rank
        self.world_size = world_size
        self.golfprof = golfprof
        self.pid = pid
        self.events: list[dict[str, Any]] = [
            {"name": "process_name", "ph": "M", "ts": BASE, "pid": pid, "tid": 0, "args": {"name": "python"}},
            {"name": "process_name", "ph": "M", "ts": BASE, "pid": 0, "tid": 0, "args": {"name": "GPU 0"}},
        ]
        self._corr = 1000
        self._ext = 1
        self.base_ns = 1_700_000_000_000_000_000  # baseTimeNanoseconds: change it to put this rank on another clock

    def _next(self) -> int:
        self._corr += 1
        return self._corr

    def cpu(self, name: str, ts: float, dur: float, tid: int = MAIN_TID, cat: str = "user_annotation",
            args: dict[str, Any] | None = None) -> None:
        self._ext += 1
        a = {"External id": self._ext} | (args or {})
        self.events.append({"ph": "X", "cat": cat, "name": name, "pid": self.pid, "tid": tid,
                            "ts": BASE + ts, "dur": dur, "args": a})

    def step(self, n: int, ts: float, dur: float) -> None:
        self.cpu(f"ProfilerStep#{n}", ts, dur)

    def launch(self, api: str, ts: float, tid: int = MAIN_TID, cat: str = "cuda_runtime", dur: float = 4.25) -> int:
        c = self._next()
        self.events.append({"ph": "X", "cat": cat, "name": api, "pid": self.pid, "tid": tid, "ts": BASE + ts,
                            "dur": dur, "args": {"cbid": 211, "correlation": c}})
        self.events.append({"ph": "s", "id": c, "pid": self.pid, "tid": tid, "ts": BASE + ts, "cat": "ac2g",
                            "name": "ac2g"})
        return c

    def gpu(self, name: str, corr: int, start: float, dur: float, stream: int = 7, cat: str = "kernel",
            args: dict[str, Any] | None = None) -> None:
        a = {"device": 0, "context": 1, "stream": stream, "correlation": corr} | (args or {})
        self.events.append({"ph": "X", "cat": cat, "name": name, "pid": 0, "tid": stream, "ts": BASE + start,
                            "dur": dur, "args": a})
        self.events.append({"ph": "f", "id": corr, "pid": 0, "tid": stream, "ts": BASE + start, "cat": "ac2g",
                            "name": "ac2g", "bp": "e"})

    def kernel(self, name: str, launch_ts: float, start: float, dur: float, tid: int = MAIN_TID,
               stream: int = 7, api: str = "cudaLaunchKernel", api_cat: str = "cuda_runtime",
               args: dict[str, Any] | None = None) -> int:
        c = self.launch(api, launch_ts, tid, api_cat)
        self.gpu(name, c, start, dur, stream, args=args)
        return c

    def queued(self, name: str, start: float, dur: float, stream: int = 7, args: dict[str, Any] | None = None) -> None:
        """GPU work launched before profiling began (the GPU runs behind the CPU): no launch in the trace."""
        self.gpu(name, self._next(), start, dur, stream, args=args)

    def memcpy(self, launch_ts: float, start: float, dur: float, tid: int = MAIN_TID, stream: int = 7) -> None:
        c = self.launch("cudaMemcpyAsync", launch_ts, tid)
        self.gpu("Memcpy DtoD (Device -> Device)", c, start, dur, stream, cat="gpu_memcpy")

    def memset(self, launch_ts: float, start: float, dur: float, tid: int = MAIN_TID, stream: int = 7) -> None:
        c = self.launch("cudaMemsetAsync", launch_ts, tid)
        self.gpu("Memset (Device)", c, start, dur, stream, cat="gpu_memset")

    def graph(self, launch_ts: float, kernels: list[tuple[str, float, float]], tid: int = MAIN_TID,
              stream: int = 7) -> None:
        """cudaGraphLaunch: every kernel of the graph carries the launch's correlation id."""
        c = self.launch("cudaGraphLaunch", launch_ts, tid)
        for name, start, dur in kernels:
            self.gpu(name, c, start, dur, stream, args={"graph id": 1})

    def nccl(self, op: str, launch_ts: float, start: float, dur: float, dtype: str = "bf16", stream: int = 20,
             nelems: int | None = None, tid: int = MAIN_TID, seq: int | None = None, pg: str = "0") -> None:
        """An NCCL kernel; ``nelems`` adds the collective's args, ``seq`` its sequence number in group ``pg``."""
        kernel_op = {"all_reduce": "AllReduce", "reduce_scatter": "ReduceScatter", "all_gather": "AllGather"}[op]
        name = f"ncclDevKernel_{kernel_op}_Sum_{dtype}_RING_LL(ncclDevComm*, unsigned long, ncclWork*)"
        args = None
        if nelems is not None or seq is not None:
            args = {"Collective name": op.replace("_", ""), "In msg nelems": nelems or 1, "Out msg nelems": nelems or 1,
                    "Group size": self.world_size, "dtype": {"bf16": "BFloat16", "f32": "Float"}[dtype]}
        if seq is not None:
            args |= {"Seq": seq, "Process Group Name": pg}
        self.kernel(name, launch_ts, start, dur, tid=tid, stream=stream, api="cudaLaunchKernelExC", args=args)

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"schemaVersion": 1, "deviceProperties": []}
        if self.world_size is not None:
            doc["distributedInfo"] = {"backend": "nccl", "rank": self.rank, "world_size": self.world_size}
        if self.golfprof is not None:
            doc["golfprof"] = self.golfprof
        last = max(e["ts"] + e.get("dur", 0) for e in self.events)
        events = self.events + [
            {"ph": "X", "cat": "Trace", "name": "PyTorch Profiler (0)", "pid": "Spans", "tid": "PyTorch Profiler",
             "ts": BASE, "dur": last - BASE},
            {"name": "Record Window End", "ph": "i", "s": "g", "pid": "", "tid": "", "ts": last + 1.5},
        ]
        doc["traceEvents"] = events
        doc["traceName"] = "synthetic"
        doc["baseTimeNanoseconds"] = self.base_ns
        return doc

    def write(self, path: Path, compact: bool = False) -> Path:
        text = json.dumps(self.document(), separators=(",", ":") if compact else None,
                          indent=None if compact else 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.name.endswith(".gz"):
            path.write_bytes(gzip.compress(text.encode()))
        else:
            path.write_text(text)
        return path


def golfprof_meta(rank: int, world_size: int, variant: str = "baseline") -> dict[str, Any]:
    return {"variant": variant, "rank": rank, "world_size": world_size, "config": {"model_dim": 768}}
