"""The matmul ceiling MFU is measured against: measured once per device (and cached), with the
datasheet peak alongside, because clocks and power limits make datasheet figures optimistic."""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from .rundir import write_json

# Dense (no sparsity) peak TFLOP/s by GPU name fragment: bf16 tensor cores for GPUs.
DATASHEET_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "H800": 989.4, "A100": 312.0, "L40S": 362.1,
                         "B200": 2250.0, "MI300X": 1307.4, "MI250": 362.1}


def datasheet_tflops(device_name: str) -> float | None:
    for key, value in DATASHEET_BF16_TFLOPS.items():
        if key in device_name:
            return value
    return None


def cache_path() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "golfprof" / "ceiling.json"


def _time_mm(device: torch.device, n: int, dtype: torch.dtype, reps: int) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    times = []
    for i in range(reps + 2):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            torch.mm(a, b)
            end.record()
            end.synchronize()
            ms = start.elapsed_time(end)
        else:
            t0 = time.perf_counter()
            torch.mm(a, b)
            ms = (time.perf_counter() - t0) * 1e3
        if i >= 2:
            times.append(ms)
    return 2 * n**3 / (statistics.median(times) / 1e3) / 1e12


def measure(device: torch.device) -> dict[str, Any]:
    """bf16 8192³ on a GPU; fp32 1024³ on the CPU (the dtype the CPU runs use)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        tflops = _time_mm(device, 8192, torch.bfloat16, 10)
        dtype = "bfloat16"
    else:
        name = "cpu"
        tflops = _time_mm(device, 1024, torch.float32, 5)
        dtype = "float32"
    return {"device": name, "torch": torch.__version__, "dtype": dtype, "ceiling_tflops": tflops,
            "datasheet_tflops": datasheet_tflops(name) if device.type == "cuda" else None}


def ceiling(device: torch.device, use_cache: bool = True) -> dict[str, Any]:
    """Cached per device name and torch version."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    key = f"{name}|{torch.__version__}"
    path = cache_path()
    cache: dict[str, Any] = {}
    if use_cache and path.exists():
        try:
            cache = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            cache = {}
        if key in cache:
            return cache[key]
    result = measure(device)
    cache[key] = result
    try:
        write_json(path, cache)
    except OSError:
        pass  # an unwritable cache only costs a re-measurement next time
    return result
