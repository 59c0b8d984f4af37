"""Class 7 of issue 28: exit codes and messages that say what happened. kill -9 of torchrun is not called an
out-of-memory; SIGTERM once the summary is written is a finished run (exit 0) and a matrix stops there,
resumable; Ctrl-C while golfprof loads is one line; `--steps 1` needs no warm-up option; a note says two runs
run the same code only when they do."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import psutil
import pytest

from golfprof.ablations import launch, matrix
from golfprof.ablations import variants as V
from golfprof.errors import Terminated
from tests.cli import invoke
from tests.golfprof.refusal import Outcome, assert_one_error

TINY = ["--preset", "tiny", "--compile", "off", "--bf16", "none", "--quiet", "--profile-steps", "off"]


def _start(tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    (tmp / "tmp").mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "golfprof", *args, *TINY, "--runs-dir", str(tmp / "runs"),
           "--data-dir", str(tmp / "data")]
    return subprocess.Popen(cmd, env={**os.environ, "TMPDIR": str(tmp / "tmp"), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _until(what, timeout: float = 120) -> object:  # noqa: ANN001 - a predicate
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def _torchrun(proc: subprocess.Popen) -> psutil.Process | None:
    for child in psutil.Process(proc.pid).children():
        try:
            if "torch.distributed.run" in " ".join(child.cmdline()):
                return child
        except psutil.Error:
            continue
    return None


def _training(tmp: Path) -> bool:
    beats = []
    for p in tmp.glob("tmp/golfprof-launch-*/heartbeat/rank*.json"):
        try:
            beats.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            return False
    return len(beats) == 2 and all((b.get("step") or 0) >= 1 for b in beats)


def _kill_9_of_torchrun(tmp_path: Path) -> Outcome:
    proc = _start(tmp_path, "ablate", "--nproc", "2", "--steps", "100000")
    try:
        _until(lambda: _training(tmp_path))
        _torchrun(proc).kill()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return Outcome(proc.returncode, out, err)


def _sigterm_once_the_summary_is_written(tmp_path: Path) -> Outcome:
    proc = _start(tmp_path, "ablate", "--nproc", "2", "--steps", "3", env={"GOLFPROF_TEST_HOLD_AFTER_RUN_S": "60"})
    try:
        _until(lambda: list((tmp_path / "runs").glob("*/summary.json")))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return Outcome(proc.returncode, out, err)


@pytest.fixture(scope="module")
def signalled(tmp_path_factory) -> Iterator[dict[str, Future]]:
    """The two jobs that golfprof sees end by a signal, each its own golfprof, torchrun and ranks, run side by side
    (each thread waits on its own job, then signals it; nothing is timed)."""
    pool = ThreadPoolExecutor(2)
    yield {name: pool.submit(scenario, tmp_path_factory.mktemp(name)) for name, scenario in (
        ("kill9", _kill_9_of_torchrun), ("sigterm", _sigterm_once_the_summary_is_written))}
    pool.shutdown(wait=True)


def test_kill_9_of_torchrun_is_named_as_such(signalled):
    line = assert_one_error(signalled["kill9"].result(), 1, "error: torchrun was killed by signal 9 (SIGKILL)")
    assert "memory" not in line


def test_sigterm_once_the_summary_is_written_is_a_finished_run(signalled):
    """The ranks linger after the summary (a test hook): SIGTERM then stops them, and the run is complete."""
    r = signalled["sigterm"].result()
    out, err = r.stdout, r.stderr
    assert r.code == 0, err[-2000:]
    assert "Traceback" not in err and "error" not in err, err
    assert "run directory: " in out


def test_sigterm_as_a_matrix_run_completes_stops_the_matrix_resumably(tmp_path, monkeypatch):
    def completes_then_sigterm(spec, nproc):  # noqa: ANN001 - a launcher
        Path(spec.run_dir).mkdir(parents=True, exist_ok=True)  # the real launcher's rank 0 makes it
        Path(spec.run_dir, "summary.json").write_text("{}")
        launch._TERMINATED.append(signal.SIGTERM)
        return 0, None

    monkeypatch.setattr(launch, "_TERMINATED", [])
    from tests.ablations.test_matrix_regress import _spec

    specs = {"explicit_banks": _spec(tmp_path), "eager": _spec(tmp_path, variant="eager")}
    with pytest.raises(Terminated, match="SIGTERM arrived as explicit_banks-r0 completed; .* re-run the same command "
                       r"to resume \(1 complete run\(s\) are kept\)") as e:
        matrix.run_matrix(specs, 1, 1, tmp_path / "m", "explicit_banks", launcher=completes_then_sigterm)
    assert e.value.exit_code == 143
    state = json.loads((tmp_path / "m" / "matrix.json").read_text())
    assert list(state["runs"]) == ["explicit_banks-r0"], "nothing more started after the signal"


def test_ctrl_c_while_golfprof_loads_is_one_line(tmp_path):
    """SIGINT while the CLI's modules load, whatever the machine's speed: -X importtime reports each import as it
    ends, and the signal is sent at the first one after the golfprof package's, i.e. inside `golfprof.cli`'s import
    (hundreds more follow)."""
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "golfprof", "train", "--preset", "tiny"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    try:
        package = False
        for line in proc.stderr:
            seen.append(line)
            if package and line.startswith("import time:"):
                proc.send_signal(signal.SIGINT)
                break
            package = package or line.split("|")[-1].strip() == "golfprof"
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = "".join(ln for ln in [*seen, *err.splitlines(keepends=True)] if not ln.startswith("import time:"))
    assert proc.returncode == 130, err[-2000:]
    assert err == "interrupted: golfprof stopped by Ctrl-C while starting\n", err
    assert not (tmp_path / "runs").exists()


def test_the_console_script_is_the_one_that_words_ctrl_c():
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["golfprof"] == "golfprof.__main__:main"


def test_one_step_needs_no_warm_up_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke("train", *TINY, "--steps", "1")
    assert r.exit_code == 0, r.output
    r = invoke("train", *TINY, "--steps", "1", "--warmup-steps", "1")
    assert r.exit_code == 2 and "--warmup-steps 1 must be below --steps 1" in r.stderr


def test_a_sweep_note_never_calls_two_token_counts_the_same_code(tmp_path):
    runs = {"a-tps1536": None, "a-tps3072": None}
    toggles = {n: V.resolve("explicit_banks") for n in runs}
    assert V.same_code_with_one_process(toggles, {"a-tps1536": 1536, "a-tps3072": 3072}) == []
    assert V.same_code_with_one_process(toggles, {"a-tps1536": 1536, "a-tps3072": 1536}) == [("a-tps3072",
                                                                                             "a-tps1536")]


# (variants, what the note says): printed before the matrix starts; a matrix folder that is a file stops it there
NOTES = [
    (["explicit_banks", "ddp_banks"], "ddp_banks runs the same code as explicit_banks (they differ only in comm)"),
    (["explicit_banks", "eager"], "eager runs the same code as explicit_banks (their settings are the same)"),
]


@pytest.mark.parametrize("names,note", NOTES, ids=["comm-only", "compile-off-twice"])
def test_the_one_process_note_says_how_twins_differ(names, note, tmp_path):
    (tmp_path / "m").write_text("a file")
    r = invoke("ablate", *[a for n in names for a in ("--variant", n)], *TINY, "--steps", "2",
               "--matrix-dir", tmp_path / "m")
    assert f"note: with one process nothing is communicated: {note}" in r.stderr, r.stderr
    sweep = invoke("ablate", *TINY, "--steps", "2", "--sweep-tokens-per-step", "1536,3072",
                   "--matrix-dir", tmp_path / "m")
    assert "runs the same code" not in sweep.stderr and sweep.exit_code == 2, sweep.stderr
