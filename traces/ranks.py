"""A run's ranks as ``golfprof diff`` compares them: per rank its summary and grouped kernel table.

Shared by the command and the dashboard's Diff section, so both read a run the same way.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from .discover import discover
from .kernels import kernel_table
from .load import Trace, load_trace
from .summary import RankSummary, summarize_rank


def summary_and_kernels(trace: Trace, rank: int, pattern: re.Pattern[str],
                        grouped: bool = True) -> tuple[RankSummary, pd.DataFrame]:
    """One trace's summary and kernel table, grouped or by full name (both read the trace's cached derived columns)."""
    return summarize_rank(trace, rank, pattern), kernel_table(trace, grouped)


def load_ranks(path: Path, pattern: re.Pattern[str],
               grouped: bool = True) -> dict[int, tuple[RankSummary, pd.DataFrame]]:
    """First profiling window of a run: rank -> (summary, kernel table). Raises TraceError."""
    return {rank: summary_and_kernels(load_trace(tf.path), rank, pattern, grouped)
            for rank, tf in discover(path).windows[0].items()}
