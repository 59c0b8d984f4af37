"""ablations/script_world.py: a script as rank R of a simulated world, recording what a real gloo world issues."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.distributed as dist

from golfprof.ablations.script_launch import profile
from golfprof.ablations.script_spec import ScriptSpec
from golfprof.ablations.script_world import simulated_world, world_env
from golfprof.profiler import names
from golfprof.profiler.rundir import RunDir

SCRIPTS = Path(__file__).resolve().parents[1] / "foreign_scripts"


def test_the_script_sees_rank_r_of_world_n_and_its_own_init_and_destroy_are_answered():
    before = os.environ.get("RANK")
    with simulated_world(4, 3, nodes=2):
        assert os.environ["RANK"] == "3" and os.environ["WORLD_SIZE"] == "4" and os.environ["LOCAL_RANK"] == "0"
        assert os.environ["LOCAL_WORLD_SIZE"] == "2" and os.environ["GROUP_RANK"] == "1"
        dist.init_process_group("nccl", init_method="tcp://10.0.0.1:1234")  # answered by the fake group
        assert (dist.get_rank(), dist.get_world_size(), dist.get_backend()) == (3, 4, "fake")
        dist.destroy_process_group()  # left to the teardown: the group outlives the script's last collective
        assert dist.is_initialized()
        dist.all_reduce(torch.ones(2))
    assert not dist.is_initialized() and os.environ.get("RANK") == before
    assert world_env(8, 0, 1)["LOCAL_WORLD_SIZE"] == "8"


def _per_step(frame: pd.DataFrame) -> dict[int, list[tuple[str, str, int, str]]]:
    f = frame[frame.step.notna()].sort_values("seq")
    return {int(s): list(zip(g.op, g.dtype, g.bytes.astype(int), g.phase)) for s, g in f.groupby("step")}


BACKWARD, PLAIN, SHARDED = names.BACKWARD, names.optimizer_step("PlainSGD"), names.optimizer_step("ShardedSGD")
CASES = {
    "ddp": ("nanogpt_accum.py", {"env": {"ITERS": "5", "ACCUM": "2"}}, [("all_reduce", "f32", 20864, BACKWARD)]),
    "plain_all_reduce": ("plain_optimizer.py", {"step_fn": "PlainSGD.step"},
                         [("all_reduce", "f32", b, PLAIN) for b in (512, 32, 128, 16)]),
    "reduce_scatter_all_gather": ("rs_ag_schedule.py", {}, [("reduce_scatter", "bf16", 344, SHARDED),
                                                            ("all_gather", "f32", 688, SHARDED)]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_simulated_world_records_what_a_real_gloo_world_of_two_issues(tmp_path, case):
    script, flags, each_step = CASES[case]
    common = {"script": str(SCRIPTS / script), "steps": 3, "profile": "1,1,1"}
    with ThreadPoolExecutor(1) as pool:  # the simulated rank's process runs beside the real world's (independent)
        simulated = pool.submit(profile, ScriptSpec(simulate_world=2, simulate_rank="0", runs_dir=str(tmp_path / "sim"),
                                                    **common, **flags))
        real = profile(ScriptSpec(nproc=2, runs_dir=str(tmp_path / "runs"), **common, **flags))
        sim = simulated.result()
    assert real.code == 0, real.error
    assert sim.code == 0, sim.error
    rd, sd = RunDir(real.run_dir), RunDir(sim.run_dir)
    expected = {s: each_step for s in range(3)}
    assert _per_step(pd.read_parquet(rd.recorded_collectives(0))) == expected
    assert _per_step(pd.read_parquet(rd.recorded_collectives(1))) == expected
    assert _per_step(pd.read_parquet(sd.collectives(0))) == expected
    assert [rd.steps_frame(r).step.tolist() for r in (0, 1)] == [[0, 1, 2]] * 2  # both stopped at step 3
    from tests.cli import invoke

    doc = json.loads(invoke("analyze", real.run_dir, "--json").output)
    for rank in doc["ranks"]:  # a CPU trace has no NCCL kernel; the recorded collectives are listed per step
        listed = {(c["op"], c["dtype"], c["phase"]): (c["count_per_step"], c["bytes_per_step"])
                  for c in rank["recorded_collectives"]}
        wanted: dict = {}
        for op, dtype, size, phase in each_step:
            n, b = wanted.get((op, dtype, phase), (0.0, 0.0))
            wanted[(op, dtype, phase)] = (n + 1.0, b + size)
        assert listed == wanted
