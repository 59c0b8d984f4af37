"""A/A: two interleaved runs of one variant agree when their median ms/step are within 1%."""

from __future__ import annotations

import numpy as np
import pytest

from golfprof.results.aa import aa_by_variant, aa_check, aa_line


def _run(median: float, n: int = 40, noise: float = 0.02, seed: int = 0) -> np.ndarray:
    """Per-step ms around ``median`` with step noise and a few stalls, as a GPU run's timed steps."""
    rng = np.random.default_rng(seed)
    ms = median * (1 + noise * rng.standard_normal(n))
    ms[::13] *= 1.3  # data stalls move the mean, not the median
    return ms - (np.median(ms) - median)


def test_two_runs_within_one_percent_agree() -> None:
    check = aa_check([_run(647.0, seed=1), _run(650.2, seed=2)])
    assert check["agree"] and check["runs"] == 2
    assert check["medians_ms"] == pytest.approx([647.0, 650.2])
    assert check["spread_pct"] == pytest.approx(100 * 3.2 / 648.6)
    assert aa_line("explicit_banks", check) == ("A/A explicit_banks: 2 runs at 647.00, 650.20 ms/step, spread 0.49% "
                                                "(tolerance 1%): agree")


def test_runs_further_apart_disagree_whatever_their_noise() -> None:
    """As on one H200, two processes of explicit_banks at a simulated world of 8: 81.1 and 95.3 ms/step."""
    check = aa_check([_run(81.1, noise=0.001), _run(95.3, noise=0.001)])
    assert not check["agree"] and check["spread_pct"] == pytest.approx(100 * 14.2 / 88.2)
    assert "DISAGREE" in aa_line("explicit_banks", check)
    three = aa_check([_run(100.0), _run(100.5), _run(101.2)])  # the widest pair decides: 1.2% of 100.5
    assert not three["agree"] and three["spread_pct"] == pytest.approx(100 * 1.2 / 100.5)
    assert aa_check([_run(100.0), _run(100.5)], tolerance_pct=0.25)["agree"] is False


def test_fewer_than_two_runs_say_nothing() -> None:
    assert aa_check([_run(100.0)]) is None
    assert aa_check([_run(100.0), np.array([])]) is None  # a run without timed steps does not count
    by = aa_by_variant({"a": [_run(100.0), _run(100.4)], "b": [_run(90.0)]})
    assert list(by) == ["a"] and by["a"]["agree"]
