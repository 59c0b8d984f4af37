"""RunDir/MatrixDir: the one owner of the run-directory layout (docs/run-directory.md), and its atomic writers."""

import ast
import datetime as dt
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from golfprof.profiler.record import RunRecord
from golfprof.profiler.rundir import MatrixDir, RunDir, config_form, git_state, new_run_dir, write_json


def test_run_dirs_are_never_reused(tmp_path: Path):
    a = new_run_dir(tmp_path, "v")
    b = new_run_dir(tmp_path, "v")
    assert a != b and a.is_dir() and b.is_dir()


def test_failed_write_keeps_the_previous_file(tmp_path: Path):
    path = tmp_path / "summary.json"
    write_json(path, {"ok": 1})

    class Boom:
        def __str__(self):
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_json(path, {"bad": Boom()})
    assert json.loads(path.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


ROOT = Path(__file__).resolve().parents[2]
OLD_FORM_RUNS = [ROOT / "tests/data/gpu_traces/h100_full_explicit_banks",
                 ROOT / "benchmarks/matrices/h200x1_full/matrix/eager-r0"]
RUN_CONFIG = {"preset": "tiny", "model": {"num_layers": 2}, "train": {"steps": 8, "seq_len": 16},
              "toggles": {"comm": "explicit"}, "variant": "explicit_banks"}


def test_paths_follow_the_documented_layout(tmp_path: Path):
    rd = RunDir(tmp_path / "r")
    assert isinstance(RunDir(str(tmp_path)).path, Path)
    rel = {k: getattr(rd, k).relative_to(rd.path).as_posix()
           for k in ("config", "env", "summary", "launch_logs", "launch_stderr", "trace_dir")}
    assert rel == {"config": "config.json", "env": "env.json", "summary": "summary.json",
                   "launch_logs": "launch_logs", "launch_stderr": "launch_logs/stderr.log", "trace_dir": "trace"}
    assert rd.steps(3).relative_to(rd.path).as_posix() == "steps/rank3.parquet"
    assert rd.phases(0).relative_to(rd.path).as_posix() == "phases/rank0.parquet"
    assert rd.trace(1).relative_to(rd.path).as_posix() == "trace/rank1.pt.trace.json.gz"
    m = MatrixDir(tmp_path / "m")
    assert (m.state.name, m.comparison_json.name, m.comparison_csv.name) == (
        "matrix.json", "comparison.json", "comparison.csv")
    assert m.run("ddp_banks", 2).path == tmp_path / "m" / "ddp_banks-r2" == m.run_named("ddp_banks-r2").path
    assert MatrixDir.default(tmp_path, "abc123").path == tmp_path / "matrix-abc123"


def test_new_names_the_folder_by_start_time_and_variant(tmp_path: Path):
    before = dt.datetime.now().replace(microsecond=0)
    a, b = RunDir.new(tmp_path / "runs", "eager"), RunDir.new(tmp_path / "runs", "eager")
    assert a.path.is_dir() and b.path.is_dir() and a != b
    assert a.path.name.endswith("-eager") and b.path.name.startswith(a.path.name)  # ...-eager-1 on a clash
    assert before <= a.stamp() <= dt.datetime.now()
    assert RunDir(tmp_path / "eager-r0").stamp() is None


def test_files_round_trip(tmp_path: Path):
    rd = RunDir.new(tmp_path, "v")
    rd.write_env({"torch": "2.x", "world_size": 2})
    steps = pd.DataFrame({"step": [0, 1], "rank": [1, 1], "loss": [2.0, 1.5], "ms": [3.0, 2.5],
                          "lr_mult": [1.0, 1.0], "momentum": [0.9, 0.9]})
    phases = pd.DataFrame({"step": [0, 0], "rank": [0, 0], "phase": ["golfprof/step", "golfprof/step/forward"],
                           "ms": [3.0, 1.0]})
    rd.write_steps(1, steps)
    rd.write_steps(0, steps.assign(rank=0))
    rd.write_phases(0, phases)
    raw = tmp_path / "raw.json"
    raw.write_text('{"traceEvents": []}')
    rd.write_trace(1, raw)
    rd.write_record(RunRecord(ms_per_step=2.5))
    assert rd.read_env() == {"torch": "2.x", "world_size": 2}
    pd.testing.assert_frame_equal(rd.steps_frame(1), steps)
    pd.testing.assert_frame_equal(rd.phases_frame(0), phases)
    assert rd.ranks() == [0, 1] and RunDir(tmp_path / "none").ranks() == []
    assert rd.traces() == [rd.trace(1)]
    with gzip.open(rd.trace(1), "rt") as f:
        assert f.read() == '{"traceEvents": []}'
    assert rd.read_record() == RunRecord(ms_per_step=2.5)
    assert not [p for p in rd.path.rglob(".*.tmp")]  # atomic writes leave no temp files


def test_config_json_holds_the_configuration_once(tmp_path: Path):
    rd = RunDir(tmp_path)
    launch = {"config": RUN_CONFIG, "device": "cpu", "warmup_steps": None, "profile": "auto", "extra": {}}
    rd.write_config(RUN_CONFIG, launch, warmup_steps=1, profile_window={"wait": 1, "warmup": 1, "active": 3})
    on_disk = json.loads(rd.config.read_text())
    assert list(on_disk) == [*RUN_CONFIG, "launch", "warmup_steps", "profile_window"]
    assert on_disk["launch"] == {"device": "cpu", "profile": "auto", "extra": {}}
    assert json.dumps(on_disk).count('"seq_len"') == 1 and json.dumps(on_disk).count('"warmup_steps"') == 1
    assert rd.read_config() == on_disk


@pytest.mark.parametrize("run", OLD_FORM_RUNS, ids=lambda p: p.name)
def test_config_json_of_the_old_form_reads_as_the_new(run: Path):
    """Committed runs keep the launch spec (and a second copy of the config) under "spec"."""
    old = json.loads((run / "config.json").read_text())
    assert "spec" in old and "config" in old["spec"]
    cfg = RunDir(run).read_config()
    assert "spec" not in cfg and "config" not in cfg["launch"] and "warmup_steps" not in cfg["launch"]
    assert cfg["launch"]["device"] == old["spec"]["device"]
    assert {k: cfg[k] for k in ("preset", "model", "train", "toggles", "variant", "warmup_steps", "profile_window")} \
        == {k: old[k] for k in ("preset", "model", "train", "toggles", "variant", "warmup_steps", "profile_window")}
    assert config_form(cfg) == cfg  # idempotent: the new form passes through


def test_old_and_new_config_forms_give_the_same_step_samples(tmp_path: Path):
    from golfprof.results.samples import load_run

    old = OLD_FORM_RUNS[0]
    new = RunDir(tmp_path / old.name)
    for name in ("summary.json", "env.json", "steps/rank0.parquet", "phases/rank0.parquet"):
        (new.path / name).parent.mkdir(parents=True, exist_ok=True)
        (new.path / name).write_bytes((old / name).read_bytes())
    cfg = RunDir(old).read_config()
    new.write_config({k: cfg[k] for k in ("preset", "model", "train", "toggles", "variant")},
                     cfg["launch"], cfg["warmup_steps"], cfg["profile_window"])
    a, b = load_run(old), load_run(new.path)
    assert a.samples.keys() == b.samples.keys() and a.samples
    for k in a.samples:
        assert (a.samples[k] == b.samples[k]).all(), k


def test_complete_means_summary_present(tmp_path: Path):
    rd = RunDir.new(tmp_path, "v")
    assert not rd.is_complete() and not rd.is_unfinished()
    rd.write_config(RUN_CONFIG, {}, 1, None)
    assert not rd.is_complete() and rd.is_unfinished()
    rd.write_record(RunRecord(ms_per_step=1.0))
    assert rd.is_complete() and not rd.is_unfinished()


def test_set_aside_keeps_every_interrupted_attempt(tmp_path: Path):
    m = MatrixDir(tmp_path)
    first = m.run("eager", 0)
    first.write_config(RUN_CONFIG, {}, 1, None)
    aside = first.set_aside()
    assert aside.path.name == "eager-r0.incomplete-1" and aside.is_set_aside and aside.config.is_file()
    assert not first.path.exists() and not first.is_set_aside
    first.write_config(RUN_CONFIG, {}, 1, None)
    assert first.set_aside().path.name == "eager-r0.incomplete-2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eager-r0.incomplete-1", "eager-r0.incomplete-2"]


def test_matrix_state_and_comparison_round_trip(tmp_path: Path):
    m = MatrixDir(tmp_path / "m")
    assert m.read_state() == {"runs": {}} and not m.is_matrix()
    state = {"runs": {"eager-r0": {"variant": "eager", "repeat": 0, "status": "ok"}}, "baseline": "eager"}
    m.write_state(state)
    assert m.is_matrix() and m.read_state() == state
    result = {"baseline": "eager", "failed": {}, "rows": [{"variant": "eager", "metric": "ms_per_step", "value": 1.5}]}
    m.write_comparison(result, pd.DataFrame(result["rows"]))
    assert json.loads(m.comparison_json.read_text()) == result
    assert m.comparison_csv.read_text() == "variant,metric,value\neager,ms_per_step,1.5\n"


def test_readers_raise_for_the_caller_to_word(tmp_path: Path):
    rd = RunDir(tmp_path)
    with pytest.raises(FileNotFoundError):
        rd.read_record()
    rd.summary.write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        rd.read_record()
    rd.summary.write_text("{not json")
    with pytest.raises(json.JSONDecodeError):
        rd.read_record()


def test_timed_steps_follow_config_json_in_either_form(tmp_path: Path):
    rd = RunDir(tmp_path / "new")
    rd.write_config(RUN_CONFIG, {}, warmup_steps=2, profile_window={"wait": 2, "warmup": 1, "active": 2})
    assert rd.timed_steps() == [5, 6, 7]  # steps 2..7 after the warm-up, less the window's 2..4
    rd.write_config(RUN_CONFIG, {}, warmup_steps=2, profile_window={"wait": 0, "warmup": 0, "active": 8})
    assert rd.timed_steps() == list(range(2, 8))  # the window covers every step: all of them count
    old = RunDir(OLD_FORM_RUNS[0])
    assert len(old.timed_steps()) == old.read_record().ranks[0].timed_steps


def test_timed_steps_without_config_json_come_from_the_record(tmp_path: Path):
    rd = RunDir(tmp_path)
    rd.write_record(RunRecord(steps=6, warmup_steps=2))
    assert rd.timed_steps() == [2, 3, 4, 5]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


def test_git_state_tells_two_edits_of_one_revision_apart(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    _git(repo, "add", "a.py")
    _git(repo, "commit", "-q", "-m", "one")
    clean = git_state(repo)
    assert clean["git_dirty"] is False and clean["git_diff_sha256"] is None and len(clean["git_revision"]) == 40
    (repo / "a.py").write_text("x = 2\n")
    first = git_state(repo)
    (repo / "a.py").write_text("x = 3\n")
    second = git_state(repo)
    assert first["git_dirty"] and second["git_dirty"] and first["git_revision"] == second["git_revision"]
    assert len(first["git_diff_sha256"]) == 64 and first["git_diff_sha256"] != second["git_diff_sha256"]
    assert git_state(repo) == second  # the same tree hashes the same
    (repo / "new.py").write_text("")
    assert git_state(repo)["git_diff_sha256"] not in (second["git_diff_sha256"], None)  # an untracked file counts
    (repo / "a.py").write_text("x = 1\n")
    (repo / "new.py").unlink()
    assert git_state(repo) == clean
    assert git_state(tmp_path) == {"git_revision": None, "git_dirty": None, "git_diff_sha256": None}  # no git


def test_env_json_records_whether_the_tree_was_dirty():
    pytest.importorskip("torch")
    from golfprof.profiler.rundir import environment

    env = environment(1, "none")
    assert {"git_revision", "git_dirty", "git_diff_sha256"} <= set(env)
    assert env["git_dirty"] in (True, False, None)


def test_rundir_imports_without_torch():
    code = "import sys, golfprof.profiler.rundir; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# Spelled only in profiler/rundir.py (prose in docstrings, help and messages may name them).
_FILE_NAMES = ("config.json", "env.json", "summary.json", "matrix.json", "comparison.json", "comparison.csv",
               "launch_logs", ".incomplete-", ".pt.trace.json", ".parquet")
_FOLDERS = {"steps", "phases", "trace", "launch_logs"}
_OWNER = "profiler/rundir.py"


def _package_sources() -> list[Path]:
    """Every module of the golfprof packages: the top-level folders with an __init__.py, bar tests/."""
    dirs = [d for d in ROOT.iterdir() if (d / "__init__.py").is_file() and d.name != "tests"]
    return sorted(p for d in dirs for p in d.rglob("*.py"))


def _spellings(source: str) -> list[tuple[int, str]]:
    """Path fragments naming run-directory files: non-prose string constants, and `x / "folder"` joins."""
    tree = ast.parse(source)
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
            if not any(c.isspace() for c in n.value) and any(name in n.value for name in _FILE_NAMES):
                out.append((n.lineno, n.value))
        if (isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div) and isinstance(n.right, ast.Constant)
                and n.right.value in _FOLDERS):
            out.append((n.lineno, f"/ {n.right.value!r}"))
    return out


def test_the_spelling_check_finds_path_fragments_and_allows_prose():
    src = ('"""Reads summary.json."""\nx = run / "summary.json"\ny = d / "steps" / f"rank{r}.parquet"\n'
           'z = f"{p}: no summary.json here"\nw = p.glob("*.pt.trace.json*")\n')
    assert sorted(line for line, _ in _spellings(src)) == [2, 3, 3, 5]


def test_only_rundir_spells_run_directory_file_names():
    sources = _package_sources()
    assert ROOT / _OWNER in sources and len(sources) > 20
    found = [f"{p.relative_to(ROOT)}:{line}: {text}" for p in sources
             if p.relative_to(ROOT).as_posix() != _OWNER
             for line, text in _spellings(p.read_text())]
    assert not found, "ask profiler/rundir.py's RunDir/MatrixDir instead:\n" + "\n".join(found)


def test_the_compiler_environment_is_recorded_without_cache_folders(monkeypatch):
    from golfprof.profiler.rundir import compiler_env, environment

    monkeypatch.setenv("TORCHINDUCTOR_MIX_ORDER_REDUCTION", "0")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/tmp/somewhere")
    monkeypatch.setenv("TRITON_CACHE_DIR", "/tmp/elsewhere")
    monkeypatch.setenv("PYTHONHASHSEED", "7")
    got = compiler_env()
    assert got["TORCHINDUCTOR_MIX_ORDER_REDUCTION"] == "0" and got["PYTHONHASHSEED"] == "7"
    assert not any("CACHE_DIR" in k for k in got)
    assert environment(1, "none")["compiler_env"] == got


def test_a_profiled_script_s_step_after_the_window_is_not_timed(tmp_path: Path):
    """The script's step after the window paid the trace's export (1,902 ms against 590 on an H200); golfprof's
    trainer steps the profiler outside its timer, so its step after the window counts."""
    import json

    rd = RunDir(tmp_path / "script")
    rd.write_config(RUN_CONFIG, {}, warmup_steps=2, profile_window={"wait": 2, "warmup": 1, "active": 2})
    config = json.loads(rd.config.read_text())
    rd.config.write_text(json.dumps({**config, "script": {"path": "train_gpt.py"}}))
    assert rd.timed_steps() == [6, 7]  # steps 2..7 after the warm-up, less the window's 2..4 and 5, its export


def test_a_short_script_run_falls_back_to_its_window_but_not_to_the_export_step():
    """--steps 8 with the default window (3, 1, 3) and 3 warm-up steps: nothing is left outside the window and the
    export step 7, so the window's steps count (the H200's simulated rank 7: 75.9 ms, not the export's 404.9)."""
    from golfprof.profiler.window import Window, timed_steps

    assert timed_steps(8, 3, Window(3, 1, 3), export_step=True) == {3, 4, 5, 6}
    assert timed_steps(8, 3, Window(3, 1, 3)) == {7}  # golfprof's trainer: step 7 is outside the window
