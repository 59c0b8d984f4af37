"""The terminal report at 80 columns: phase names told apart, sizes in binary units, the late and
the earliest rank's tables, and --phases suggested when the default matches nothing."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from golfprof.traces.command import _summaries
from golfprof.traces.diagnose import diagnose
from golfprof.traces.discover import discover
from golfprof.traces.display import fmt_bytes, short_names, shown_ranks
from golfprof.traces.report import render
from golfprof.traces.summary import combine
from tests.traces.kineto_synth import TraceBuilder

FWD = "phase:transformer_block_attention_forward"
BWD = "phase:transformer_block_attention_backward"
LATE = 2


def _four_ranks(root: Path) -> Path:
    """Four ranks with two long phase names alike but for their end; rank 2 reaches each all-gather last,
    rank 3 first."""
    for rank in range(4):
        b = TraceBuilder(rank=rank, world_size=4, pid=100 + rank)
        for n in range(2):
            s = n * 10000.0
            b.step(n, s, 10000)
            b.cpu(FWD, s + 10, 4000)
            b.kernel("gemm_fwd", s + 20, s + 100, 3000)
            b.cpu(BWD, s + 5000, 4000)
            dur = 500 if rank == LATE else 2500 + 100 * rank
            b.nccl("all_gather", s + 5010, s + 8000 - dur, dur, nelems=(29 << 20) // 4, dtype="bf16")
        b.write(root / f"rank{rank}.json")
    return root


def _render(path: Path, phases: str) -> str:
    pattern = re.compile(phases)
    runs = [combine(_summaries(w, phases, i, 1), pattern) for i, w in enumerate(discover(path).windows)]
    out = io.StringIO()
    render(Console(width=80, file=out, color_system=None), runs, [d for r in runs for d in diagnose(r)])
    return out.getvalue()


def test_eighty_columns(tmp_path: Path) -> None:
    text = _render(_four_ranks(tmp_path / "run"), "^phase:")
    assert max(len(line) for line in text.splitlines()) <= 80
    assert re.findall(r"^phases, rank (\d+): ms per step *$", text, re.MULTILINE) == ["2", "3"]
    assert re.findall(r"^collectives, rank (\d+): per step *$", text, re.MULTILINE) == ["2", "3"]
    assert ("4 ranks: the tables show rank 2 (the others wait for it) and rank 3 (waits longest); --json has every "
            "rank") in " ".join(text.split())
    phase_rows = [line.split()[0] for line in text.splitlines() if line.startswith("phase:")]
    assert len(set(phase_rows)) == 2 and all(r.endswith(("forward", "backward")) for r in phase_rows)
    assert "14.5 MiB" in text and "KiB" not in text


def test_short_names_stay_distinct() -> None:
    names = ["golfprof/step", "golfprof/step/optimizer", "phase:aaaaaaaaaaaaaaaaaaaaaaaa_x_bbbbbbbbbbbbbbbbbbb",
             "phase:aaaaaaaaaaaaaaaaaaaaaaaa_y_bbbbbbbbbbbbbbbbbbb"]
    short = short_names(names, [None, "golfprof/step", None, None], width=20)
    assert short["golfprof/step/optimizer"] == "optimizer"
    assert len(set(short.values())) == 4 and all("…" in short[n] for n in names[2:])


def test_sizes_in_binary_units() -> None:
    assert [fmt_bytes(v) for v in (512, 1536, 15204352, 3 << 30, None)] == ["512 B", "1.5 KiB", "14.5 MiB",
                                                                            "3.0 GiB", "–"]


def test_shown_ranks_without_skew_are_slowest_and_fastest() -> None:
    import pandas as pd

    assert shown_ranks([0, 1, 2, 3], pd.DataFrame(), {0: 10.0, 1: 12.5, 2: 9.0, 3: 10.0}) == [1, 2]
    assert shown_ranks([0, 1], pd.DataFrame(), {}) == [0, 1]


def test_default_phases_matching_nothing_names_the_annotations(tmp_path: Path, cli) -> None:
    result = cli(_four_ranks(tmp_path / "run") / "rank0.json")
    assert result.exit_code == 0
    assert ("no CPU ranges match --phases '^golfprof/'; the trace annotates " + FWD + ", " + BWD
            + ": select them with --phases '^phase:'") in " ".join(result.stdout.split())
