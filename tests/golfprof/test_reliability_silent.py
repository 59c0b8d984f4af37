"""Class 9 of issue 28: where golfprof used to accept silently what a user needs a word about.

Two kinds of case. A gate or a baseline that would pass unseen (an infinite bound, a NaN figure) is refused: one
``error:`` line, exit 2, nothing written. Input that can still be read (impossible trace events, ranks that
profiled unequal step counts, a diff of runs set up differently, a run that never finished) is read, with one
``warning:`` line naming what is wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import pytest

from tests.cli import invoke, run
from tests.golfprof.refusal import Outcome, assert_refused, make_run, make_workspace, tree
from tests.traces.kineto_synth import TraceBuilder


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """One finished tiny run, copied into each case's workspace."""
    base = tmp_path_factory.mktemp("made")
    return make_run(base / "runs", base / "data")


def _copy(made: Path, root: Path, name: str) -> Path:
    dest = root / "runs" / name
    shutil.copytree(made, dest)
    return dest


def _edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _trace(path: Path, rank: int, world: int, steps: int, extra: list[dict] | None = None) -> Path:
    b = TraceBuilder(rank, world)
    for n in range(steps):
        b.step(n, n * 1000.0, 900.0)
        b.kernel("gemm", n * 1000.0 + 10, n * 1000.0 + 20, 300.0)
    doc = b.document()
    doc["traceEvents"] += extra or []
    path.write_text(json.dumps(doc))  # json writes NaN as NaN, as a broken exporter would
    return path


# Refusals: (id, setup(made, root) -> argv, what the error line says)
def _regress_inf(made: Path, root: Path) -> list[str]:
    run = _copy(made, root, "a")
    return ["regress", run, "--baseline", run, "--metric", "ms_per_step", "--max-increase", "inf%"]


def _regress_nan_bound(made: Path, root: Path) -> list[str]:
    run = _copy(made, root, "a")
    return ["regress", run, "--baseline", run, "--metric", "ms_per_step", "--max-increase", "nan%"]


def _baseline_nan_summary(made: Path, root: Path) -> list[str]:
    run = _copy(made, root, "a")
    _edit_json(run / "summary.json", lambda d: d.update(ms_per_step=float("nan")))
    return ["baseline", "save", run, "-o", root / "new-baseline.json"]


def _regress_nan_baseline_file(made: Path, root: Path) -> list[str]:
    run = _copy(made, root, "a")
    assert invoke("baseline", "save", run, "-o", root / "baseline.json").exit_code == 0
    _edit_json(root / "baseline.json", lambda d: d["samples"].update(ms_per_step=[1.0, float("nan")]))
    return ["regress", run, "--baseline", root / "baseline.json", "--metric", "ms_per_step", "--max-increase", "5%"]


def _regress_nan_current(made: Path, root: Path) -> list[str]:
    base = _copy(made, root, "base")
    cur = _copy(made, root, "cur")
    _edit_json(cur / "summary.json", lambda d: d.update(ms_per_step=float("inf")))
    shutil.rmtree(cur / "steps")  # no per-step samples: the summary's figure is what is gated
    shutil.rmtree(base / "steps")
    return ["regress", cur, "--baseline", base, "--metric", "ms_per_step", "--max-increase", "5%"]


REFUSED = [
    ("regress-inf-bound", _regress_inf, "must be a finite percentage >= 0"),
    ("regress-nan-bound", _regress_nan_bound, "must be a finite percentage >= 0"),
    ("baseline-nan-summary", _baseline_nan_summary, "ms_per_step not finite"),
    ("regress-nan-in-baseline-file", _regress_nan_baseline_file, "metric ms_per_step is not finite"),
    ("regress-inf-in-current-run", _regress_nan_current, "metric ms_per_step is not finite"),
]


@pytest.mark.parametrize("setup,message", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused(tmp_path: Path, made: Path, setup, message: str) -> None:
    root = make_workspace(tmp_path)
    argv = setup(made, root)
    before = tree(root)
    assert_refused(invoke(*argv), 2, message, root, before)


# Warnings: (id, setup(made, root) -> argv, what the warning says)
def _impossible_events(made: Path, root: Path) -> list[str]:
    bad = [{"ph": "X", "cat": "kernel", "name": "nan-ts", "pid": 0, "tid": 7, "ts": float("nan"), "dur": 5.0},
           {"ph": "X", "cat": "kernel", "name": "negative", "pid": 0, "tid": 7, "ts": 1.7e12 + 50, "dur": -5.0},
           {"ph": "X", "cat": "cpu_op", "name": "inf-dur", "pid": 1, "tid": 1, "ts": 1.7e12 + 60,
            "dur": float("inf")}]
    return ["analyze", _trace(root / "bad.json", 0, 1, 3, bad)]


def _unequal_steps(made: Path, root: Path) -> list[str]:
    folder = root / "traces"
    folder.mkdir()
    _trace(folder / "rank0.json", 0, 2, 3)
    _trace(folder / "rank1.json", 1, 2, 2)
    return ["analyze", folder]


def _diff_settings(made: Path, root: Path) -> list[str]:
    a, b = _copy(made, root, "a"), _copy(made, root, "b")
    _edit_json(b / "config.json", lambda d: (d["train"].update(steps=7), d["toggles"].update(comm="ddp")))
    return ["diff", a, b]


def _diff_compiler_env(made: Path, root: Path) -> list[str]:
    """One run compiled with inductor's mix-order reduction off (env.json's compiler_env), the other not."""
    a, b = _copy(made, root, "a"), _copy(made, root, "b")
    _edit_json(b / "env.json", lambda d: d.setdefault("compiler_env", {}).update(TORCHINDUCTOR_MIX_ORDER_REDUCTION="0"))
    return ["diff", a, b]


def _never_finished(made: Path, root: Path) -> list[str]:
    run = _copy(made, root, "stopped")
    (run / "summary.json").unlink()
    return ["analyze", run]


WARNED = [
    ("trace-impossible-events", _impossible_events,
     ["3 event(s) dropped: 1 with a negative duration, 2 with a NaN or infinite timestamp or duration"]),
    ("ranks-unequal-steps", _unequal_steps, ["ranks profiled unequal numbers of steps (rank 0: 3, rank 1: 2)"]),
    ("diff-different-settings", _diff_settings, ["not like for like: train.steps 3 → 7",
                                                 "note: A and B differ in toggles.comm explicit → ddp"]),
    ("analyze-never-finished", _never_finished, ["this run never finished (no summary.json"]),
    ("diff-compiler-env", _diff_compiler_env, ["not like for like: env.compiler_env.TORCHINDUCTOR_MIX_ORDER_REDUCTION"
                                               " - → 0"]),
]


@pytest.mark.parametrize("setup,messages", [c[1:] for c in WARNED], ids=[c[0] for c in WARNED])
def test_warned(tmp_path: Path, made: Path, setup, messages: list[str]) -> None:
    root = make_workspace(tmp_path)
    argv = setup(made, root)
    before = tree(root)
    out = Outcome.of(run(*argv))  # a real process: library warnings reach stderr as the CLI shows them
    assert out.code == 0, out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    for message in messages:
        assert message in out.stderr, out.stderr
    warned = [ln for ln in out.stderr.splitlines() if ln.startswith("warning:") and messages[0] in ln]
    assert len(warned) == 1, out.stderr
    assert tree(root) == before  # reading changes nothing


def test_alike_runs_get_no_word(tmp_path: Path, made: Path) -> None:
    """The same settings twice: no note and no warning (the warning is not printed for everything)."""
    root = make_workspace(tmp_path)
    out = Outcome.of(invoke("diff", _copy(made, root, "a"), _copy(made, root, "b")))
    assert out.code == 0 and "warning:" not in out.stderr and "note:" not in out.stderr, out.stderr
