"""Time ``golfprof analyze`` against HolisticTraceAnalysis on the same traces, each in a fresh process.

HTA's side is what a user runs for the same two numbers: ``TraceAnalysis(...)`` (parse + align +
filter), ``get_temporal_breakdown`` and ``get_comm_comp_overlap``. Both sides are handed the same
rank -> file map. Peak memory is the largest sum of RSS over the process tree (polled with psutil,
since HTA parses ranks in worker processes), plus the kernel's ru_maxrss of the largest process.

    python benchmarks/analyze_vs_hta.py TRACE_DIR [TRACE_DIR ...] [--repeat 3]
    python benchmarks/analyze_vs_hta.py --make-synthetic /tmp/big --from DIR --target-mb 200
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

RESULTS = Path(__file__).resolve().parent / "results" / "analyze_vs_hta.json"

GOLFPROF = """
import sys
from golfprof.cli import app
app(["analyze", *sys.argv[1:]])
"""

HTA = """
import json, logging, sys, warnings
warnings.filterwarnings("ignore")
from hta.configs.config import logger
logger.setLevel(logging.ERROR)
from hta.trace_analysis import TraceAnalysis
files = {int(r): p for r, p in json.loads(sys.argv[1]).items()}
ta = TraceAnalysis(trace_files=files, trace_dir="/")
idle = ta.get_temporal_breakdown(visualize=False).set_index("rank")["idle_time_pctg"]
overlap = ta.get_comm_comp_overlap(visualize=False).set_index("rank")["comp_comm_overlap_pctg"]
print(json.dumps({int(r): [float(idle[r]), float(overlap[r])] for r in idle.index}))
"""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _measure(cmd: list[str]) -> dict[str, Any]:
    """Wall time and peak memory of one fresh process and its children."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        root = psutil.Process(proc.pid)
        peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            try:
                procs = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                pass
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[-1]}: failed ({proc.returncode}): {stderr.strip()[-800:]}")
    return {"seconds": wall, "peak_tree_rss_mb": peak / 2**20, "maxrss_mb": usage.ru_maxrss / 1024,
            "stdout": stdout}


def _uncompressed_bytes(p: Path) -> int:
    if not p.name.endswith(".gz"):
        return p.stat().st_size
    n = 0
    with gzip.open(p, "rb") as fh:
        while chunk := fh.read(1 << 24):
            n += len(chunk)
    return n


def bench(folder: Path, repeat: int) -> dict[str, Any]:
    from golfprof.traces.discover import discover

    window = discover(folder).windows[0]
    files = {r: str(f.path.resolve()) for r, f in window.items()}
    ours_cmd = [sys.executable, "-c", GOLFPROF, str(folder.resolve()), "--json"]
    hta_cmd = [sys.executable, "-c", HTA, json.dumps(files)]
    ours, theirs = [], []
    for _ in range(repeat):  # interleaved, so drift on a shared machine hits both alike
        ours.append(_measure(ours_cmd))
        theirs.append(_measure(hta_cmd))
    doc = json.loads(ours[0]["stdout"])
    hta_vals = json.loads(theirs[0]["stdout"])
    diffs = []
    for r in doc["ranks"]:
        if r["window"] == 0 and str(r["rank"]) in hta_vals:
            for ours_v, hta_v in zip((r["idle_pct"], r["hta_overlap_pct"]), hta_vals[str(r["rank"])]):
                if ours_v is not None and hta_v == hta_v:
                    diffs.append(abs(ours_v - hta_v))

    def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
        secs = [x["seconds"] for x in runs]
        return {"seconds_median": round(statistics.median(secs), 3), "seconds_all": [round(s, 3) for s in secs],
                "peak_tree_rss_mb": round(max(x["peak_tree_rss_mb"] for x in runs), 1),
                "largest_process_maxrss_mb": round(max(x["maxrss_mb"] for x in runs), 1)}

    g, h = summary(ours), summary(theirs)
    paths = [Path(p) for p in files.values()]
    return {
        "trace": str(folder),
        "files": len(paths),
        "compressed_mb": round(sum(p.stat().st_size for p in paths) / 2**20, 2),
        "uncompressed_mb": round(sum(_uncompressed_bytes(p) for p in paths) / 2**20, 2),
        "golfprof": g,
        "hta": h,
        "time_ratio": round(g["seconds_median"] / h["seconds_median"], 3),
        "memory_ratio": round(g["peak_tree_rss_mb"] / h["peak_tree_rss_mb"], 3),
        "max_abs_diff_pp_idle_overlap": round(max(diffs), 4) if diffs else None,
    }


def make_synthetic(out_dir: Path, source: Path, target_mb: float) -> Path:
    """Replicate a real trace's steps (shifted in time, renumbered, fresh correlation ids) to ~target_mb."""
    src = next(p for p in sorted(source.iterdir()) if p.name.endswith((".json", ".json.gz")))
    opener = gzip.open if src.name.endswith(".gz") else open
    with opener(src, "rt") as fh:
        doc = json.load(fh)
    events = doc.pop("traceEvents")
    raw = sum(len(json.dumps(e)) + 2 for e in events)
    copies = max(1, round(target_mb * 2**20 / raw))
    ts = [e["ts"] for e in events if isinstance(e.get("ts"), (int, float))]
    span = (max(ts) - min(ts)) * 1.01 + 1000
    corr_span = 1 + max((e.get("args", {}).get("correlation", 0) for e in events if isinstance(e.get("args"), dict)
                         and isinstance(e["args"].get("correlation"), int)), default=0)
    step_nums = [int(e["name"].split("#")[1]) for e in events
                 if str(e.get("name", "")).startswith("ProfilerStep#") and e.get("ph") == "X"]
    step_span = (max(step_nums) - min(step_nums) + 1) if step_nums else 0
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "rank0.pt.trace.json.gz"
    with gzip.open(out, "wt", compresslevel=3) as fh:
        head = json.dumps(doc)[:-1]
        fh.write(head + (", " if doc else "") + '"traceEvents": [\n')
        first = True
        for k in range(copies):
            for e in events:
                if e.get("ph") == "M" and k:
                    continue
                e2 = dict(e)
                if isinstance(e2.get("ts"), (int, float)):
                    e2["ts"] = e2["ts"] + k * span
                if isinstance(e2.get("args"), dict) and isinstance(e2["args"].get("correlation"), int):
                    e2["args"] = dict(e2["args"], correlation=e2["args"]["correlation"] + k * corr_span)
                if e2.get("cat") == "ac2g" and isinstance(e2.get("id"), int):
                    e2["id"] = e2["id"] + k * corr_span
                name = str(e2.get("name", ""))
                if name.startswith("ProfilerStep#"):
                    e2["name"] = f"ProfilerStep#{int(name.split('#')[1]) + k * step_span}"
                fh.write(("" if first else ",\n") + "  " + json.dumps(e2))
                first = False
        fh.write("\n]}\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("traces", nargs="*", type=Path, help="trace folders (as given to golfprof analyze)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--note", action="append", default=[], help="free text kept in the results (repeatable)")
    ap.add_argument("--make-synthetic", type=Path, help="write a replicated trace into this folder and exit")
    ap.add_argument("--from", dest="source", type=Path, help="folder of the trace to replicate")
    ap.add_argument("--target-mb", type=float, default=200.0)
    args = ap.parse_args()
    if args.make_synthetic:
        print(make_synthetic(args.make_synthetic, args.source, args.target_mb))
        return
    results = []
    for folder in args.traces:
        r = bench(folder, args.repeat)
        print(json.dumps(r), flush=True)
        results.append(r)
    doc = {
        "device": f"{_cpu_model()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM",
        "python": platform.python_version(),
        "torch_version": metadata.version("torch"),
        "hta_version": metadata.version("traceinsight"),
        "golfprof_version": metadata.version("golfprof"),
        "command": shlex.join(["python", *sys.argv]),
        "method": ("fresh process per run, golfprof and HTA interleaved; wall time (median of the runs); "
                   "peak_tree_rss_mb = max over 20 ms polls of the summed RSS of the process tree; "
                   "largest_process_maxrss_mb = ru_maxrss from wait4"),
        "notes": args.note,
        "traces": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
