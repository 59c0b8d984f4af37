"""The predicted step as a sum of lines: DDP's mechanism line by line, and a difference as a sum of causes."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from golfprof.predict import breakdown
from golfprof.predict.compare import causes
from golfprof.predict.predict import predict
from tests.predict.synth_run import write_run

MB = 1 << 20


def _colls() -> pd.DataFrame:
    return pd.DataFrame({"source": ["ddp", "ddp", "dist"], "bytes": [4 * MB, 12 * MB, MB],
                         "exposed_ms": [0.0, 0.5, 0.1]})


def test_every_ddp_line_from_its_own_input_and_the_lines_sum_to_the_step():
    lines = {r["line"]: r["ms"] for r in breakdown.lines(10.0, _colls(), 8, True, muon_ms=2.0, hook_ms=0.05,
                                                         hbm_bw=4e12)}
    copy = 2 * 16 * MB / 4e12 * 1e3  # 16 MiB of buckets read and written once each way
    assert lines["ddp bucket copy in"] == pytest.approx(copy) and lines["ddp bucket copy out"] == pytest.approx(copy)
    assert lines["ddp hooks"] == 0.05 and lines["ddp all-reduce after backward"] == 0.5
    assert lines["replicated optimizer"] == pytest.approx(2.0 * 7 / 8)
    assert lines["other exposed communication"] == pytest.approx(0.1)
    assert sum(lines.values()) == pytest.approx(10.0) and list(lines) == list(breakdown.LINES)


def test_an_explicit_schedule_has_no_ddp_line_and_the_delta_is_line_by_line():
    explicit = breakdown.lines(9.0, _colls().assign(source="dist"), 8, False, 2.0, 0.05, 4e12)
    ddp = breakdown.lines(10.0, _colls(), 8, True, 2.0, 0.05, 4e12)
    e = {r["line"]: r["ms"] for r in explicit}
    assert e["ddp bucket copy in"] == e["ddp hooks"] == e["replicated optimizer"] == 0
    d = breakdown.delta(explicit, ddp)
    assert d["delta_ms"].sum() == pytest.approx(1.0)  # the steps' difference, as the sum of the lines' differences
    assert d.set_index("line").loc["replicated optimizer", "delta_ms"] == pytest.approx(1.75)
    frame = causes({"explicit": {"prediction": {"breakdown": explicit}}, "ddp": {"prediction": {"breakdown": ddp}}},
                   "explicit")
    assert frame is not None and frame["Δ ddp ms"].sum() == pytest.approx(1.0)


def test_a_ddp_bucket_waited_at_the_end_of_backward_is_its_exposed_line(tmp_path: Path):
    """A GPU rank: backward [2, 102), a DDP bucket of 8 MiB issued at 90 (its hook 20 µs of CPU), measured 150 µs
    ([90, 240)), waited as backward ends; the optimizer's Muon kernel launched at 160 runs once the bucket is in.
    Its exposed part, the hook's time and the Muon kernel's replicated 7/8 are lines; they sum to the step."""
    kernels = [("nvjet_gemm", None, 5, 5, 95), ("nvjet_muon", None, 160, 160, 40)]
    colls = [{"seq": 0, "op": "all_reduce", "bytes": 8 * MB, "issue": 90, "source": "ddp", "hook_ns": 20_000}]
    run, table = write_run(tmp_path / "run", kernels, colls, end=210)
    p = predict(run, table, target_gpu="h200")["prediction"]
    lines = {r["line"]: r["ms"] for r in p["breakdown"]}
    assert sum(lines.values()) == pytest.approx(p["ms_per_step"])
    assert lines["ddp all-reduce after backward"] == pytest.approx(p["exposed_comm_ms"]) and lines["ddp hooks"] == 0.02
    assert lines["replicated optimizer"] == pytest.approx(0.040 * 7 / 8)
    assert lines["ddp bucket copy in"] == pytest.approx(2 * 8 * MB / 4.8e12 * 1e3)
    t = {r["line"]: r["ms"] for r in p["target"]["breakdown"]}
    assert sum(t.values()) == pytest.approx(p["target"]["ms_per_step"])


def test_a_simulated_ddp_world_of_two_on_the_cpu_has_its_hook_and_replicated_optimizer_lines(tmp_path: Path):
    """The recorded sequence of a real DDP trainer (tiny, fake backend for world 2): every bucket is a DDP
    all-reduce, the hooks' CPU time and the replicated Muon half are lines, and the lines sum to the step."""
    p = _tiny_world_of_two(tmp_path, "ddp_banks", "all")
    assert {c["source"] for c in p["collectives_per_step"]} >= {"ddp"}
    lines = {r["line"]: r["ms"] for r in p["breakdown"]}
    assert sum(lines.values()) == pytest.approx(p["ms_per_step"])
    assert lines["ddp hooks"] > 0 and lines["replicated optimizer"] > 0
    assert lines["ddp bucket copy in"] == 0  # a CPU run has no device entry to size it by


def test_round_robin_muon_under_ddp_has_no_replicated_line_and_its_update_all_reduce_is_communication(
        tmp_path: Path):
    """#315's DDP (--ddp-muon round_robin, a fake world of 2): each rank orthogonalizes half the matrices, so no
    Muon work is replicated; the updates travel in one flat bf16 all-reduce of every matrix, a `dist` collective
    waited at once, beside DDP's buckets."""
    from golfprof.model.config import TINY_MODEL

    p = _tiny_world_of_two(tmp_path, "ddp_round_robin", 1)
    matrices = sum(math.prod(s) for s in TINY_MODEL.bank_shapes().values())
    flat = [c for c in p["collectives_per_step"] if c["source"] == "dist" and c["op"] == "all_reduce"
            and c["bytes"] == 2 * matrices]
    assert len(flat) == 1 and flat[0]["phase"] == "golfprof/step/optimizer/muon/all_reduce"
    assert any(c["source"] == "ddp" for c in p["collectives_per_step"])
    lines = {r["line"]: r["ms"] for r in p["breakdown"]}
    assert lines["replicated optimizer"] == 0 and lines["ddp hooks"] > 0
    assert sum(lines.values()) == pytest.approx(p["ms_per_step"])


def _tiny_world_of_two(tmp_path: Path, variant: str, rank: int | str) -> dict:
    """The prediction of a tiny CPU run of ``variant`` playing ``rank`` of a fake world of 2 (3 steps)."""
    from golfprof.ablations.simulate import simulate
    from golfprof.ablations.spec import RunSpec
    from golfprof.ablations.variants import resolve
    from golfprof.model.config import TINY_MODEL, TINY_TRAIN, RunConfig, replace

    run = RunConfig("tiny", TINY_MODEL, replace(TINY_TRAIN, steps=3), resolve(variant), variant)
    spec = RunSpec(config=run.to_dict(), runs_dir=str(tmp_path / "runs"), data_dir=str(tmp_path / "data"),
                   device="cpu", quiet=True, evaluate=False, profile="off", warmup_steps=1)
    return predict(Path(simulate(spec, 2, rank)["run_dir"]), "h200")["prediction"]
