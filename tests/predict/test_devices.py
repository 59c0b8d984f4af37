"""The device table: bundled entries and their sources, every class of bad file refused with one line."""

from __future__ import annotations

import copy
import json
from importlib import resources

import pytest

from golfprof.errors import ConfigError
from golfprof.predict import devices
from tests.cli import invoke
from tests.golfprof.refusal import assert_refused, make_workspace, tree

BUNDLED = json.loads(resources.files("golfprof.predict").joinpath("devices.json").read_text())
_DROP = object()


def _with(path: tuple, value) -> dict:  # noqa: ANN001 - any JSON value
    d = copy.deepcopy(BUNDLED)
    node = d
    for key in path[:-1]:
        node = node[key]
    if value is _DROP:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return d


FLOPS = ("devices", "h100", "peak_bf16_flops")
BW = ("devices", "h100", "hbm_bw_Bps")
BAD = [
    ("flops-zero", FLOPS + ("value",), 0, "must be > 0"),
    ("flops-negative", FLOPS + ("value",), -1e15, "must be > 0"),
    ("flops-string", FLOPS + ("value",), "fast", "is not a finite number"),
    ("flops-bool", FLOPS + ("value",), True, "is not a finite number"),
    ("flops-null", FLOPS + ("value",), None, "is not a finite number"),
    ("flops-nan", FLOPS + ("value",), float("nan"), "is not a finite number"),
    ("bw-inf", BW + ("value",), float("inf"), "is not a finite number"),
    ("bw-no-source", BW, {"value": 3.35e12}, "every number cites its source"),
    ("bw-bare-number", BW, 3.35e12, "every number cites its source"),
    ("bw-missing", BW, _DROP, "missing 'hbm_bw_Bps'"),
    ("sms-fraction", ("devices", "h100", "sm_count", "value"), 131.5, "not a whole number"),
    ("sms-zero", ("devices", "h100", "sm_count", "value"), 0, "must be > 0"),
    ("matches-not-list", ("devices", "h100", "matches"), "H100", "matches: must be a list"),
    ("bw-fraction-over-one", ("devices", "h100", "achievable_bw_fraction", "value"), 1.2, "at most 1"),
    ("bw-fraction-zero", ("devices", "h100", "achievable_bw_fraction", "value"), 0, "must be > 0"),
    ("bw-fraction-no-source", ("devices", "h100", "achievable_bw_fraction"), {"value": 0.9},
     "every number cites its source"),
    ("entry-not-object", ("devices", "h100"), 7, "must be an object"),
    ("format", ("format",), "golfprof-comm-table/1", "not a golfprof device table"),
    ("no-devices", ("devices",), {}, "'devices' must be a non-empty object"),
]


@pytest.mark.parametrize("path,value,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_device_table_is_refused(path, value, message, tmp_path):
    f = tmp_path / "gpus.json"
    f.write_text(json.dumps(_with(path, value) | {"target": "h100"}))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        devices.resolve_target(str(f))


def test_missing_and_unreadable_files_and_an_unnamed_target_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="no such file and not a bundled GPU"):
        devices.resolve_target(str(tmp_path / "nope.json"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a readable JSON device table"):
        devices.resolve_target(str(tmp_path / "bad.json"))
    (tmp_path / "two.json").write_text(json.dumps(BUNDLED))
    with pytest.raises(ConfigError, match='name the target with "target"'):
        devices.resolve_target(str(tmp_path / "two.json"))


def test_bundled_entries_carry_the_datasheet_figures_and_sources():
    known = devices.bundled()
    h100, h200 = known["h100"], known["h200"]
    assert h100.peak_flops == h200.peak_flops == pytest.approx(989.4e12)  # same dense bf16 on both datasheets
    assert (h100.hbm_bw, h200.hbm_bw) == (3.35e12, 4.8e12) and h100.sm_count == h200.sm_count == 132
    for entry in BUNDLED["devices"].values():
        assert all(entry[k]["source"].strip() for k in devices.NUMBERS)


def test_a_file_target_and_the_source_looked_up_by_the_run_s_device_name(tmp_path):
    one = {"format": devices.FORMAT, "devices": {"b200": {
        "matches": ["B200"], "peak_bf16_flops": {"value": 2.25e15, "source": "a test's own figure"},
        "hbm_bw_Bps": {"value": 8e12, "source": "a test's own figure"}, "sm_count": {"value": 148, "source": "t"}}}}
    (tmp_path / "b200.json").write_text(json.dumps(one))
    tgt, known = devices.resolve_target(str(tmp_path / "b200.json"))
    assert tgt.key == "b200" and set(known) == {"h100", "h200", "b200"}
    assert tgt.bw_fraction == 1.0 and known["h200"].bw_fraction == pytest.approx(0.8458)  # optional: peak if absent
    assert devices.source_device("NVIDIA H100 80GB HBM3", known).key == "h100"
    assert devices.source_device("NVIDIA H200", known).key == "h200"
    with pytest.raises(ConfigError, match="not in the device table"):
        devices.source_device("cpu", known)


def test_the_cli_refuses_a_bad_device_table_with_one_line_and_no_folder(tmp_path, monkeypatch):
    root = make_workspace(tmp_path / "work")
    (root / "bad.json").write_text(json.dumps(_with(FLOPS + ("value",), 0) | {"target": "h100"}))
    monkeypatch.chdir(root)
    before = tree(root)
    r = invoke("ablate", "--preset", "tiny", "--steps", "2", "--simulate-world", "2", "--target-gpu", "bad.json",
               "--quiet", "--profile-steps", "off")
    assert_refused(r, 2, "must be > 0", root, before)


def test_a_cpu_run_with_a_target_gpu_is_refused_before_it_starts(tmp_path, monkeypatch):
    root = make_workspace(tmp_path / "work")
    monkeypatch.chdir(root)
    before = tree(root)
    r = invoke("ablate", "--preset", "tiny", "--steps", "2", "--simulate-world", "2", "--target-gpu", "h100",
               "--device", "cpu", "--quiet", "--profile-steps", "off")
    assert_refused(r, 2, "this run would be played on the CPU", root, before)


@pytest.mark.parametrize("argv", [
    ["train", "--preset", "tiny", "--steps", "2", "--target-gpu", "h100", "--quiet", "--profile-steps", "off"],
    ["ablate", "--preset", "tiny", "--steps", "2", "--target-gpu", "h200", "--nproc", "2", "--quiet"],
    ["profile", "--target-gpu", "h100", "--steps", "2", "script.py"],
], ids=["train", "ablate", "profile"])
def test_a_target_gpu_without_a_simulated_world_is_refused(tmp_path, monkeypatch, argv):
    """--target-gpu rescales a prediction; a run that makes none would ignore it silently."""
    root = make_workspace(tmp_path / "work")
    (root / "script.py").write_text("print('never runs')\n")
    monkeypatch.chdir(root)
    before = tree(root)
    assert_refused(invoke(*argv), 2, "give --simulate-world N", root, before)
