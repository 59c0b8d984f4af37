"""Record a Kineto trace of a small compiled trainer that is not golfprof's, for golfprof.traces' tests.

Its phases are `record_function("phase:...")` ranges, it never syncs inside a step, so the CPU queues steps
ahead of the GPU (as a compiled speedrun trainer does) and the first profiled step's GPU time holds kernels
launched before the profiler started. One GPU: `python3 foreign_compiled_trace.py OUT_DIR`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function, schedule

DIM, LAYERS, BATCH = 4096, 8, 8192


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(DIM, DIM, bias=False) for _ in range(LAYERS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.nn.functional.gelu(layer(x))
        return x.float().square().mean()


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = Net().cuda().to(torch.bfloat16)
    step_fn = torch.compile(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    data = torch.randn(BATCH, DIM, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):  # compile and warm up outside the trace
        step_fn(data).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()

    def ready(p: profile) -> None:
        p.export_chrome_trace(str(out / "foreign.pt.trace.json.gz"))

    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA]
    with profile(activities=activities, schedule=schedule(wait=3, warmup=1, active=3), on_trace_ready=ready) as prof:
        for _ in range(8):
            with record_function("phase:data"):
                x = data + 0.0
            with record_function("phase:forward"):
                loss = step_fn(x)
            with record_function("phase:backward"):
                loss.backward()
            with record_function("phase:optimizer"):
                opt.step()
                opt.zero_grad(set_to_none=True)
            prof.step()  # no sync: the CPU runs ahead of the GPU
    torch.cuda.synchronize()
    print("wrote", sorted(p.name for p in out.iterdir()))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
