"""Whether a run's figures describe the code: the profiled window against the other steps, and a GPU that
throttled. Pure functions over summary.json's ``window_check`` and ``gpu_state`` (written by the run), for
the exit summary, ``regress``, the comparison and the dashboard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from golfprof.traces.typical import window_line

from .aa import aa_by_variant, aa_line


def throttled(summary: Mapping[str, Any]) -> bool:
    g = summary.get("gpu_state")
    return bool(g and g.get("throttled_steps"))


def throttle_note(summary: Mapping[str, Any], name: str | None = None) -> str | None:
    """A line when the GPU throttled in any step of the run (warm-up included), naming the reasons."""
    if not throttled(summary):
        return None
    g = summary["gpu_state"]
    who = f"{name}: " if name else ""
    ranks = g.get("throttled_ranks") or []
    where = f" on rank(s) {', '.join(map(str, ranks))}" if summary.get("world_size", 1) > 1 and ranks else ""
    timed = g.get("throttled_timed_steps", 0)
    return (f"{who}the GPU throttled in {g['throttled_steps']} step(s){where}, {timed} of them timed "
            f"({', '.join(g.get('throttle_reasons') or ['unknown reason'])}; median SM clock "
            f"{_mhz(g.get('median_sm_clock_mhz'))}): its ms/step measure the clocks as much as the code")


def _mhz(v: float | None) -> str:
    return "unknown" if v is None else f"{v:.0f} MHz"


def run_notes(summary: Mapping[str, Any]) -> list[str]:
    """The exit summary's lines after the table: the window check of every profiled run, and throttling."""
    notes = []
    if summary.get("window_check"):
        notes.append(window_line(summary["window_check"]))
    note = throttle_note(summary)
    if note:
        notes.append(note)
    return notes


def throttle_notes(summaries: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per named run that throttled (the comparison's runs, the dashboard's, regress's two)."""
    return [n for name, s in summaries.items() if (n := throttle_note(s, name))]


def run_checks(by_variant: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """A matrix's checks beside its comparison (``by_variant``: variant -> its runs' ``RunSamples``): the A/A
    agreement of each variant's repeats (``aa``) and a line per run whose GPU throttled (``throttled``)."""
    aa = aa_by_variant({v: [r.values("ms_per_step") for r in runs] for v, runs in by_variant.items()})
    named = {Path(r.source).name: r.summary for runs in by_variant.values() for r in runs}
    return {"aa": aa, "throttled": throttle_notes(named)}


def check_lines(result: Mapping[str, Any]) -> list[str]:
    """The comparison output's lines for ``run_checks``: one A/A line per repeated variant, then throttling."""
    return [aa_line(v, c) for v, c in result.get("aa", {}).items()] + list(result.get("throttled", []))
