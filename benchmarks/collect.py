"""Gather run directories' summaries into one committed results file with its provenance.

usage: python benchmarks/collect.py OUT.json RUN_DIR... [--script PATH] [--device-command TEXT] [--note TEXT]
                                      [--comparison MATRIX_DIR/comparison.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from golfprof.model.config import RunConfig
from golfprof.model.ortho import flops
from golfprof.profiler.rundir import RunDir

KEEP = ("variant", "preset", "world_size", "steps", "warmup_steps", "tokens_per_step", "ms_per_step",
        "optimizer_ms", "forward_backward_ms", "tokens_per_s", "peak_memory_mb", "final_loss", "val_loss",
        "val_bits_per_token", "command", "toggles", "phase_ms")


def ortho_ms(phase_ms: dict[str, float]) -> float:
    return sum(v for k, v in phase_ms.items() if k.endswith("/orthogonalize"))


def run_record(run_dir: Path) -> dict:
    rd = RunDir(run_dir)
    summary = rd.read_record()
    config = RunConfig.from_dict(rd.read_config())
    rec = {k: getattr(summary, k) for k in KEEP}
    rec["run_dir"] = run_dir.name
    rec["orthogonalize_ms"] = ortho_ms(summary.phase_ms)
    rec["orthogonalize_gflop"] = sum(flops(s) for s in config.model.bank_shapes().values()) / 1e9
    rec["per_rank"] = [{k: getattr(r, k) for k in ("rank", "ms_per_step", "optimizer_ms", "peak_memory_mb")}
                       for r in summary.ranks]
    return rec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--script", default=None, help="the device script that ran the commands")
    ap.add_argument("--device-command", default=None, help="the command given to the device machine")
    ap.add_argument("--note", default="")
    ap.add_argument("--comparison", type=Path, default=None, help="a matrix's comparison.json to embed")
    a = ap.parse_args()
    records = [run_record(r) for r in a.runs]
    env = RunDir(a.runs[0]).read_env()
    out = {"device": env["device"], "gpus": env["gpus"], "torch": env["torch"], "cuda": env["cuda"],
           "git_revision": env["git_revision"], "script": a.script,
           "device_command": a.device_command, "command": [r["command"] for r in records], "note": a.note,
           "runs": records}
    if a.comparison is not None:
        comparison = json.loads(a.comparison.read_text())
        out.update(comparison_from_matrix=comparison["rows"], comparison_note=comparison["note"],
                   comparison_baseline=comparison["baseline"], failed_runs=comparison["failed"])
    a.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
