"""A run's trust notes: the window check line of every profiled run, and a GPU that throttled."""

from __future__ import annotations

from golfprof.results.health import run_notes, throttle_note, throttle_notes, throttled

WINDOW = {"verdict": "slow", "profiled_median_ms": 759.0, "others_median_ms": 647.0, "others": 40,
          "window_vs_rest_pct": 17.3,
          "phase": {"name": "golfprof/step/data", "profiled_ms": 129.6, "others_ms": 2.4, "excess_ms": 127.2}}
CAPPED = {"throttled_steps": 3, "throttled_timed_steps": 2, "throttle_reasons": ["sw_power_cap"],
          "median_sm_clock_mhz": 1755.0, "throttled_ranks": [0]}


def test_the_exit_summary_names_the_windows_phase_and_the_throttling() -> None:
    notes = run_notes({"window_check": WINDOW, "gpu_state": CAPPED, "world_size": 1})
    assert notes == [
        "profiled window slow: 759.0 ms/step against 647.0 in the run's 40 other timed steps (+17.3%); data made the "
        "difference: 129.6 ms/step in the window against 2.4 (+127.2)",
        "the GPU throttled in 3 step(s), 2 of them timed (sw_power_cap; median SM clock 1755 MHz): its ms/step "
        "measure the clocks as much as the code"]


def test_unprofiled_cpu_runs_have_no_notes() -> None:
    assert run_notes({"ms_per_step": 10.0}) == []  # no window, no GPU state (a CPU run)
    calm = {"gpu_state": {**CAPPED, "throttled_steps": 0, "throttled_ranks": []}}
    assert not throttled(calm) and throttle_note(calm) is None


def test_runs_that_throttled_are_named_with_their_ranks() -> None:
    two = {"world_size": 2, "gpu_state": {**CAPPED, "throttled_ranks": [1], "throttle_reasons": ["hw_thermal"]}}
    (note,) = throttle_notes({"explicit_banks_r0": {"gpu_state": None}, "ddp_banks_r1": two})
    assert note.startswith("ddp_banks_r1: the GPU throttled in 3 step(s) on rank(s) 1, 2 of them timed (hw_thermal;")


class _Run:
    """The part of RunSamples run_checks reads."""

    def __init__(self, source: str, ms: list[float], gpu_state: dict | None = None) -> None:
        self.source, self._ms, self.summary = source, ms, {"gpu_state": gpu_state, "world_size": 1}

    def values(self, metric: str) -> list[float]:
        assert metric == "ms_per_step"
        return self._ms


def test_a_matrix_reports_aa_per_repeated_variant_and_its_throttled_runs() -> None:
    from golfprof.results.health import check_lines, run_checks

    by_variant = {"explicit_banks": [_Run("m/explicit_banks-r0", [100.0, 101.0, 99.0]),
                                     _Run("m/explicit_banks-r1", [100.4, 100.6, 100.5], CAPPED)],
                  "ddp_banks": [_Run("m/ddp_banks-r0", [104.0, 105.0])]}
    checks = run_checks(by_variant)
    assert list(checks["aa"]) == ["explicit_banks"] and checks["aa"]["explicit_banks"]["agree"]
    lines = check_lines(checks)
    assert lines[0] == ("A/A explicit_banks: 2 runs at 100.00, 100.50 ms/step, spread 0.50% (tolerance 1%): agree")
    assert lines[1].startswith("explicit_banks-r1: the GPU throttled in 3 step(s)") and len(lines) == 2
    assert check_lines({"rows": []}) == []  # a comparison.json written before these checks
