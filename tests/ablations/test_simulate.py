"""Simulated worlds: a fake-backend rank issues exactly the collectives a real gloo rank issues.

The real side runs 2 or 3 gloo processes with the recorder installed (its DDP hook does the default
hook's arithmetic, so DDP's buckets are recorded there too); the simulated side plays each rank
in this process over the fake backend. World 3 pads every tiny bank (10 -> 12, 5 -> 6 matrices).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from golfprof.ablations import variants as V
from golfprof.ablations.simulate import check, fake_world, read_collectives, roles, simulate
from golfprof.ablations.spec import RunSpec
from golfprof.errors import ConfigError
from golfprof.model.config import TINY_MODEL, TINY_TRAIN, RunConfig, Toggles, replace
from golfprof.model.data import DistributedLoader
from golfprof.model.train import DistInfo, Trainer
from golfprof.profiler.collectives import Recorder, register_ddp_hook, sequence
from tests.distributed import gloo_rank, ranks_beside

STEPS = 2
# every schedule in both layouts, and the toggles that change what is communicated
CASES = [(layout, comm, {}) for comm in ("explicit", "ddp", "packed", "vectorized")
         for layout in ("banked", "unbanked")]
CASES += [("banked", "explicit", {"rs_order": "small_first"}), ("banked", "explicit", {"replicated": "bucketed"}),
          ("banked", "explicit", {"clip_scope": "global"}), ("unbanked", "ddp", {"ddp_muon": "round_robin"})]
# World 3 pads: the sharded schedules in both layouts, and DDP (the suite runs on 2 cores)
PADDED_CASES = [("banked", "explicit", {}), ("unbanked", "explicit", {}), ("banked", "packed", {}),
                ("unbanked", "vectorized", {}), ("banked", "ddp", {})]


def _run(layout: str, comm: str, extra: dict) -> RunConfig:
    toggles = Toggles(layout=layout, comm=comm, bf16=("momentum",), compile="off", **extra)
    return RunConfig("tiny", TINY_MODEL, replace(TINY_TRAIN, steps=STEPS), toggles, f"{comm}_{layout}")


def _key(case: tuple) -> str:
    layout, comm, extra = case
    return "_".join([comm, layout, *(f"{k}-{v}" for k, v in extra.items())])


def _record(run: RunConfig, info: DistInfo, data: str) -> pd.DataFrame:
    rec = Recorder()
    with rec.installed():
        trainer = Trainer(run, torch.device("cpu"), info)
        if trainer.ddp is not None:
            register_ddp_hook(trainer.ddp, rec)
        loader = DistributedLoader(data, run.train.seq_len, run.train.micro_batch_seqs, trainer.grad_accum,
                                   info.world_size, info.rank)
        for step in range(STEPS):
            trainer.step(step, loader)
    frame = rec.frame()
    return frame[frame.step.notna()]


def _cases(world: int) -> list[tuple]:
    return CASES if world == 2 else PADDED_CASES


def _worker(rank: int, world: int, store: str, data: str, out: str) -> None:
    with gloo_rank(rank, world, store) as info:
        seqs = {_key(c): sequence(_record(_run(*c), info, data)) for c in _cases(world)}
        Path(out, f"rank{rank}.json").write_text(json.dumps(seqs))


@pytest.fixture(scope="module")
def data(tiny_train_shards: str) -> str:
    return tiny_train_shards


@pytest.mark.parametrize("world", [2, 3])
def test_simulated_ranks_issue_the_real_collectives(world: int, data: str, tmp_path: Path) -> None:
    frames = {}
    # the simulated side plays every rank here while the real ranks run
    with ranks_beside(_worker, (world, str(tmp_path / "store"), data, str(tmp_path)), world):
        for rank in range(world):
            for case in _cases(world):
                with fake_world(world, rank):
                    frames[rank, _key(case)] = _record(_run(*case), DistInfo(world, rank, 0, "gloo"), data)
    for rank in range(world):
        real = json.loads((tmp_path / f"rank{rank}.json").read_text())
        for case in _cases(world):
            key = _key(case)
            frame = frames[rank, key]
            sim = [list(x) for x in sequence(frame)]
            assert sim == real[key], f"world {world} rank {rank} {key}: simulated {sim[:6]} != real {real[key][:6]}"
            ops = {s[0] for s in sim}
            assert "all_reduce" in ops, key  # never vacuous: every schedule reduces something
            if case[1] != "ddp":
                assert {"reduce_scatter", "all_gather"} <= ops, key
            assert frame.wait_ns.notna().all() and (frame.wait_ns >= frame.issue_ns).all(), key
            assert frame.phase.notna().all(), key


def test_recorder_sees_ddp_buckets_and_their_wait_at_the_end_of_backward(data: str) -> None:
    with fake_world(3, 2):
        frame = _record(_run("banked", "ddp", {}), DistInfo(3, 2, 0, "gloo"), data)
    assert (frame.source == "ddp").all() and len(frame) >= STEPS
    n_params = sum(p.numel() for p in Trainer(_run("banked", "ddp", {}), torch.device("cpu")).model.parameters())
    per_step = frame.groupby("step").bytes.sum()
    assert (per_step == 4 * n_params).all()  # every fp32 gradient once per step (the last micro-batch syncs)
    assert (frame.phase == "golfprof/step/backward").all()


def test_roles_include_rank_zero_and_the_padding_owner() -> None:
    run = _run("banked", "explicit", {})
    # world 8 on tiny: qo/kv 10 -> slices of 2 (ranks 5-7 empty), up/down 5 -> slices of 1 (ranks 5-7 empty)
    assert roles(run, 8) == [0, 7]
    assert roles(run, 3) == [0, 2]  # 10 -> 4,4,2 and 5 -> 2,2,1
    assert roles(_run("banked", "ddp", {}), 8) == [0]
    # round robin over tiny's 30 matrices (6 kinds a layer): rank r orthogonalizes kinds r, r+8, ... mod 6
    assert roles(_run("unbanked", "ddp", {"ddp_muon": "round_robin"}), 8) == list(range(8))
    assert roles(_run("unbanked", "ddp", {"ddp_muon": "round_robin"}), 3) == [0, 1, 2]
    assert roles(_run("unbanked", "ddp", {"ddp_muon": "round_robin"}), 6) == [0, 1, 2, 3, 4, 5]
    assert roles(run, 1) == [0]
    packed = roles(_run("banked", "packed", {}), 8)
    assert packed[0] == 0 and packed[-1] == 7 and len(packed) > 2  # attention and MLP owners differ


@pytest.mark.parametrize("world,rank,nodes", [(0, "all", 1), (4, 4, 1), (4, -1, 1), (4, "x", 1), (8, 0, 3)])
def test_bad_simulation_values_are_config_errors(world, rank, nodes) -> None:
    with pytest.raises(ConfigError):
        check(world, rank, nodes)


@pytest.mark.parametrize("variant", list(V.VARIANTS))
def test_world_8_of_every_variant_completes(variant: str, tmp_path: Path) -> None:
    """One process per variant plays the last rank (it owns the padding) of a world of 8."""
    if V.VARIANTS[variant][1].get("attention") == "fa3":
        pytest.importorskip("flash_attn_interface")  # refused (a ConfigError) where FA3 is not installed
    run = RunConfig("tiny", TINY_MODEL, replace(TINY_TRAIN, steps=2, micro_batch_seqs=3), V.resolve(variant),
                    variant)
    spec = RunSpec(config=run.to_dict(), runs_dir=str(tmp_path / "runs"), data_dir=str(tmp_path / "data"),
                   device="cpu", quiet=True, profile="off", evaluate=False)
    out = simulate(spec, 8, 7)
    assert out["world_size"] == 8 and out["simulated"]["ranks"] == [7]
    assert out["final_loss"] is not None and out["final_loss"] == out["final_loss"]
    frame = read_collectives(Path(out["run_dir"]))[7]
    assert (frame.group_size == 8).all() and len(frame[frame.step == 1]) > 0
    assert json.loads((Path(out["run_dir"]) / "summary.json").read_text())["simulated"]["world_size"] == 8


# ---- the command line ----------------------------------------------------------------------------

def _cli_args(tmp_path: Path) -> list[str]:
    return ["--preset", "tiny", "--micro-batch-seqs", "3", "--steps", "3", "--device", "cpu", "--profile-steps", "off",
            "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data"), "--quiet"]


def test_ablate_prints_the_predicted_comparison(tmp_path: Path) -> None:
    from tests.cli import invoke

    r = invoke("ablate", "--variant", "explicit_banks", "--variant", "ddp_banks", "--simulate-world", "8",
               "--simulate-rank", "7", *_cli_args(tmp_path))
    assert r.exit_code == 0, r.output
    assert "predicted at world 8" in r.output and "ddp_banks" in r.output and "PREDICTED explicit_banks" in r.output
    assert "losses of this run mean nothing" in r.output
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all((d / "simulated" / "predicted.json").is_file() for d in runs)
    # golfprof diff reads a simulated run through its predicted traces (its own trace has no communication)
    d = invoke("diff", runs[0], runs[1], "--json")
    assert d.exit_code == 0, d.output
    assert "is a simulated run: comparing its predicted traces" in d.output
    body = json.loads(d.output[d.output.index("{"):])
    assert body["ranks"][0]["rank"] == 7 and body["ranks"][0]["step_ms_b"] is not None


@pytest.mark.parametrize("args,message", [
    (["--simulate-world", "0"], "--simulate-world 0: must be >= 1"),
    (["--simulate-world", "8", "--simulate-rank", "8"], "--simulate-rank 8 is outside 0..7"),
    (["--simulate-world", "8", "--comm-model", "no-such-table.json"], "--comm-model no-such-table.json: no such file"),
    (["--simulate-world", "8", "--simulate-nodes", "3"], "--simulate-nodes 3"),
    (["--simulate-world", "5"], "does not divide over world size 5"),
])
def test_bad_simulation_options_are_one_error_line_before_anything_runs(tmp_path: Path, args, message) -> None:
    from tests.cli import invoke

    r = invoke("ablate", *args, *_cli_args(tmp_path))
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_producer_does_not_import_the_predictor():
    """simulate records; golfprof.predict predicts (the CLI runs one, then the other)."""
    import subprocess
    import sys

    code = ("import sys, golfprof.ablations.simulate\n"
            "sys.exit(any(m.startswith('golfprof.predict') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
