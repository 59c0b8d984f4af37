"""Per-step samples of a run's metrics, read back from its run directory (or a baseline file)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from golfprof.errors import ConfigError
from golfprof.profiler import names as phases
from golfprof.profiler.record import RunRecord
from golfprof.profiler.rundir import RunDir

T = TypeVar("T")


# metric -> True when higher is better
DIRECTION: dict[str, bool] = {
    "ms_per_step": False, "optimizer_ms": False, "forward_backward_ms": False, "tokens_per_s": True,
    "peak_memory_mb": False, "final_loss": False, "val_loss": False, "val_bits_per_token": False,
    "val_bpb": False,
}
PHASE_PREFIX = "phase:"


def higher_is_better(metric: str) -> bool:
    if metric.startswith(PHASE_PREFIX):
        return False
    if metric not in DIRECTION:
        raise ConfigError(f"unknown metric {metric!r}; valid: {', '.join(DIRECTION)} or phase:<name>")
    return DIRECTION[metric]


@dataclass
class RunSamples:
    source: str
    record: RunRecord
    fingerprint: dict[str, Any]
    samples: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, Any]:
        """The record as summary.json holds it (what a baseline file stores)."""
        return self.record.to_dict()

    def values(self, metric: str) -> np.ndarray:
        """Per-step samples where recorded, else the record's single value."""
        if metric in self.samples:
            return self.samples[metric]
        if metric.startswith(PHASE_PREFIX):
            v = self.record.phase_ms.get(metric.removeprefix(PHASE_PREFIX))
        else:
            v = getattr(self.record, metric, None) if metric in DIRECTION else None
        return np.array([], dtype=float) if v is None else np.array([float(v)])


def fingerprint(record: RunRecord) -> dict[str, Any]:
    """What must match for two runs to be comparable: work, world size and hardware."""
    return {"preset": record.preset, "tokens_per_step": record.tokens_per_step,
            "world_size": record.world_size, "device": record.device}


def _read(path: Path, read: Callable[[], T]) -> T:
    """``read()`` of the file at ``path``, its failures worded as the commands' input errors."""
    try:
        return read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as e:  # a path under a file, a folder where a file should be, no permission
        raise ConfigError(f"{path}: cannot read it ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    except ValueError as e:  # valid JSON, but not an object
        raise ConfigError(str(e)) from None


def _read_json(path: Path) -> dict[str, Any]:
    return _read(path, lambda: json.loads(path.read_text()))


def step_samples(run_dir: Path, record: RunRecord) -> dict[str, np.ndarray]:
    """Rank 0's per-step series over the timed steps (after warm-up, outside the profiler window)."""
    rd = RunDir(run_dir)
    timed = _read(rd.config if rd.config.exists() else rd.summary, rd.timed_steps)
    out: dict[str, np.ndarray] = {}
    if rd.steps(0).exists():
        steps = rd.steps_frame(0)
        steps = steps[steps.step.isin(timed)].sort_values("step")
        out["ms_per_step"] = steps.ms.to_numpy(float)
        if record.tokens_per_step is not None:
            out["tokens_per_s"] = record.tokens_per_step / (out["ms_per_step"] / 1e3)
    if rd.phases(0).exists():
        table = rd.phases_frame(0)
        table = table[table.step.isin(timed)]
        per = table.groupby(["phase", "step"]).ms.sum().unstack("phase").sort_index()
        for name in per.columns:
            out[PHASE_PREFIX + name] = per[name].dropna().to_numpy(float)
        if phases.OPTIMIZER in per:
            out["optimizer_ms"] = per[phases.OPTIMIZER].dropna().to_numpy(float)
        fb = [c for c in (phases.FORWARD, phases.BACKWARD) if c in per]
        if fb:
            out["forward_backward_ms"] = per[fb].sum(axis=1).to_numpy(float)
    return out


def _baseline(path: Path, data: dict[str, Any]) -> RunSamples:
    """A baseline file's parts, each checked: a hand-edited or truncated file is bad input, not a crash."""
    parts = {k: data.get(k) for k in ("summary", "fingerprint", "samples")}
    bad = [k for k, v in parts.items() if not isinstance(v, dict)]
    if bad:
        raise ConfigError(f"{path}: baseline file without a {bad[0]!r} object; write one with `golfprof baseline save`")
    try:
        samples = {str(k): np.asarray(v, dtype=float).reshape(-1) for k, v in parts["samples"].items()}
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: baseline 'samples' must map metrics to lists of numbers") from None
    try:
        record = RunRecord.from_dict(parts["summary"])
    except ValueError as e:
        raise ConfigError(f"{path}: baseline 'summary': {e}") from None
    return RunSamples(str(path), record, parts["fingerprint"], samples)


def run_samples(rd: RunDir, record: RunRecord) -> RunSamples:
    """A run directory whose record is already read: its step samples added (the dashboard reads each file once)."""
    return RunSamples(str(rd.path), record, fingerprint(record), step_samples(rd.path, record))


def load_run(path: Path) -> RunSamples:
    """A run directory, its summary.json, or a baseline file written by `golfprof baseline save`."""
    path = Path(path)
    if path.is_dir():
        rd = RunDir(path)
        return run_samples(rd, _read(rd.summary, rd.read_record))
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a golfprof summary.json, run directory or baseline file "
                          f"(a JSON {type(data).__name__}, not an object)")
    if "golfprof_baseline" in data:
        return _baseline(path, data)
    if "ms_per_step" not in data:
        raise ConfigError(f"{path}: not a golfprof summary.json, run directory or baseline file")
    record = _read(path, lambda: RunRecord.from_dict(data))
    rd = RunDir(path.parent)
    samples = step_samples(rd.path, record) if rd.config.exists() else {}
    return RunSamples(str(path), record, fingerprint(record), samples)
