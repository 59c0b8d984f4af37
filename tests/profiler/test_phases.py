import time

import pytest
import torch

from golfprof.model.config import ConfigError
from golfprof.profiler import phases
from golfprof.profiler.phases import NULL_CLOCK, UNMARKED, Marker, PhaseClock
from golfprof.profiler.window import Window


def _annotations(prof) -> list[str]:
    return [e.name for e in prof.events() if e.name.startswith("golfprof/")]


def test_marks_reach_the_profiler_and_unmarked_leaves_nothing():
    marker = Marker(NULL_CLOCK, marks=True)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        with marker(phases.STEP):
            with marker(phases.FORWARD):
                torch.ones(4).sum()
        with UNMARKED(phases.BACKWARD):
            torch.ones(4).sum()
    names = _annotations(prof)
    assert phases.STEP in names and phases.FORWARD in names
    assert phases.BACKWARD not in names


def test_clock_times_nested_phases_on_the_host():
    clock = PhaseClock(torch.device("cpu"))
    marker = Marker(clock)
    with marker(phases.STEP):
        with marker(phases.DATA):
            time.sleep(0.02)
        time.sleep(0.01)
    got = dict(clock.collect())
    assert 19 <= got[phases.DATA] < 200
    assert got[phases.STEP] >= got[phases.DATA] + 9
    assert clock.collect() == []


def test_disabled_clock_records_nothing():
    clock = PhaseClock(torch.device("cpu"), enabled=False)
    with Marker(clock)(phases.STEP):
        pass
    assert clock.collect() == []


def test_documented_names_cover_each_schedule():
    banks = ["qo_bank", "kv_bank"]
    explicit = phases.documented_phases(banks, "explicit", 2)
    assert phases.bank_wait("qo_bank") in explicit and phases.RS_LAUNCH in explicit
    assert phases.bank_all_gather("kv_bank") in explicit
    ddp = phases.documented_phases(banks, "ddp", 2)
    assert phases.RS_LAUNCH not in ddp and phases.bank_orthogonalize("kv_bank") in ddp
    assert phases.REPLICATED_ALLREDUCE not in phases.documented_phases(banks, "explicit", 1)
    assert all(n.startswith(phases.PREFIX) for n in explicit)
    dealt = phases.documented_phases(banks, "ddp", 2, round_robin=True)
    assert phases.MUON_ALLREDUCE in dealt and phases.MUON_ALLREDUCE not in ddp
    assert not any(phases.bank_orthogonalize(b) in dealt for b in banks)  # on the owners' traces only


@pytest.mark.parametrize("text,expected", [("5,1,3", Window(5, 1, 3)), ("off", None), ("0,0,1", Window(0, 0, 1))])
def test_window_parse(text, expected):
    assert Window.parse(text) == expected


@pytest.mark.parametrize("text", ["5,1", "a,b,c", "1,1,0", "-1,0,2"])
def test_window_parse_rejects(text):
    with pytest.raises(ConfigError):
        Window.parse(text)


def test_one_graph_replaces_the_per_bank_orthogonalize_phases():
    banks = ["qo_bank", "kv_bank"]
    one = phases.documented_phases(banks, "ddp", 2, one_graph=True)
    assert phases.bank_orthogonalize(phases.ALL_BANKS) in one
    assert not any(phases.bank_orthogonalize(b) in one for b in banks)
    # the explicit schedule orthogonalizes bank by bank whatever the kernel
    explicit = phases.documented_phases(banks, "explicit", 2, one_graph=True)
    assert (phases.bank_orthogonalize("qo_bank") in explicit
            and phases.bank_orthogonalize(phases.ALL_BANKS) not in explicit)
