"""The run record (profiler/record.py): summary.json's one type, every version of the file read, the doc generated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from golfprof.profiler.record import (
    SCHEMA_BEGIN,
    SCHEMA_END,
    SCRIPT,
    RankRecord,
    RunRecord,
    Simulated,
    Source,
    schema_markdown,
)
from golfprof.profiler.rundir import RunDir

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = sorted([*ROOT.glob("tests/data/**/summary.json"), *ROOT.glob("benchmarks/matrices/**/summary.json")])


def test_committed_summaries_exist_in_old_and_new_forms():
    forms = {frozenset(json.loads(p.read_text())) for p in COMMITTED}
    assert len(COMMITTED) >= 10 and len(forms) >= 2  # files without efficiency/ortho_kernel_used, and with them


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(ROOT).parent))
def test_every_committed_summary_reads_and_keeps_its_keys(path: Path):
    raw = json.loads(path.read_text())
    rec = RunDir(path.parent).read_record()
    assert rec.source.kind == "golfprof" and rec.ms_per_step == raw["ms_per_step"]
    assert rec.ranks[0].timed_steps == raw["ranks"][0]["timed_steps"] and not rec.extra
    out = rec.to_dict()
    assert {k: out[k] for k in raw if k != "ranks"} == {k: v for k, v in raw.items() if k != "ranks"}
    assert [{k: r[k] for k in old} for r, old in zip(out["ranks"], raw["ranks"])] == raw["ranks"]
    assert RunRecord.from_dict(out) == rec  # what we write reads back the same


def test_a_foreign_script_record_round_trips(tmp_path: Path):
    """A second producer fills what it measured; everything else is null and reads back as None."""
    rd = RunDir(tmp_path)
    rec = RunRecord(source=Source(kind=SCRIPT, script="train_gpt.py", script_sha256="ab" * 32), variant="train_gpt",
                    device="NVIDIA H200", world_size=8, ms_per_step=83.5, phase_ms={"forward": 20.0},
                    ranks=[RankRecord(rank=r, ms_per_step=83.5 + r) for r in range(8)])
    rd.write_record(rec)
    back = rd.read_record()
    assert back == rec and back.optimizer_ms is None and back.toggles is None and not back.is_simulated
    on_disk = json.loads(rd.summary.read_text())
    assert on_disk["source"] == {"kind": "script", "script": "train_gpt.py", "script_sha256": "ab" * 32}
    assert on_disk["optimizer_ms"] is None and on_disk["simulated"] is None and len(on_disk["ranks"]) == 8


def test_keys_this_version_does_not_know_survive_a_read_and_a_write(tmp_path: Path):
    rd = RunDir(tmp_path)
    rd.summary.write_text(json.dumps({"ms_per_step": 2.0, "from_the_future": [1, 2],
                                      "ranks": [{"rank": 0, "ms_per_step": 2.0, "per_rank_new": "x"}],
                                      "simulated": {"world_size": 8, "ranks": [0], "new_sim_key": True}}))
    rec = rd.read_record()
    assert rec.extra == {"from_the_future": [1, 2]} and rec.ranks[0].extra == {"per_rank_new": "x"}
    assert rec.simulated == Simulated(world_size=8, ranks=[0], extra={"new_sim_key": True})
    rd.write_record(rec)
    again = json.loads(rd.summary.read_text())
    assert again["from_the_future"] == [1, 2] and again["ranks"][0]["per_rank_new"] == "x"
    assert again["simulated"]["new_sim_key"] is True and again["simulated"]["nodes"] == 1


@pytest.mark.parametrize("data, where", [
    ({"ms_per_step": "fast"}, "ms_per_step: expected number"),
    ({"ms_per_step": True}, "ms_per_step: expected number"),
    ({"steps": 2.5}, "steps: expected integer"),
    ({"phase_ms": {"golfprof/step": None}}, "phase_ms.golfprof/step: expected number"),
    ({"ranks": [{"rank": "zero"}]}, r"ranks\[0\].rank: expected integer"),
    ({"ranks": {}}, "ranks: expected a list"),
    ({"simulated": {"nodes": 2}}, "simulated.world_size: missing"),
    ({"source": {"kind": "notebook"}}, "source.kind: expected one of golfprof, script"),
])
def test_a_mistyped_field_is_named(tmp_path: Path, data: dict, where: str):
    rd = RunDir(tmp_path)
    rd.summary.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=where) as e:
        rd.read_record()
    assert str(rd.summary) in str(e.value)


def test_integral_numbers_read_as_their_field_type():
    rec = RunRecord.from_dict({"steps": 30.0, "ms_per_step": 713, "val_tokens": 63488.0})
    assert (rec.steps, rec.ms_per_step, rec.val_tokens) == (30, 713.0, 63488.0)
    assert isinstance(rec.steps, int) and isinstance(rec.ms_per_step, float)


def test_the_docs_schema_is_the_generated_one():
    """docs/run-directory.md's summary.json tables come from the dataclasses: regenerate them on change."""
    doc = (ROOT / "docs" / "run-directory.md").read_text()
    begin, end = SCHEMA_BEGIN + "\n", "\n" + SCHEMA_END
    assert begin in doc and end in doc
    assert doc[doc.index(begin) + len(begin):doc.index(end)].strip() == schema_markdown()


def test_the_schema_names_every_field_with_a_meaning():
    text = schema_markdown()
    for cls in (RunRecord, Source, RankRecord, Simulated):
        for name in cls.__dataclass_fields__:
            if name != "extra":
                assert f"| `{name}` |" in text, (cls.__name__, name)
    assert "| `extra` |" not in text and "list of `RankRecord` objects" in text and "number or null" in text
