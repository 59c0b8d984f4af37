"""Class 6 of issue 28: a --comm-model table is checked whole (types, signs, the ops and the world the run needs)
before any process starts; a world wider than one node of the table is warned about."""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path

import pytest

from golfprof.errors import ConfigError, GolfprofWarning
from golfprof.predict import costmodel as cm
from tests.cli import invoke
from tests.golfprof.refusal import assert_refused, make_workspace, tree

BUNDLED = json.loads(resources.files("golfprof.predict").joinpath("comm_tables", "h200_nvlink.json").read_text())
BW = ("links", "nvlink", "bus_bw_GBps", "all_reduce", "value")


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


_DROP = object()

# (id, where in the table, the bad value, what the refusal says)
BAD = [
    ("bandwidth-zero", BW, 0, "must be > 0"),
    ("bandwidth-negative", BW, -479.7, "must be > 0"),
    ("bandwidth-string", BW, "fast", "is not a finite number"),
    ("bandwidth-bool", BW, True, "is not a finite number"),
    ("bandwidth-null", BW, None, "is not a finite number"),
    ("latency-negative", ("base_latency_us", "ring", "LL", "value"), -1.0, "must be >= 0"),
    ("gpus-per-node-zero", ("gpus_per_node", "value"), 0, "must be > 0"),
    ("ll-max-zero", ("links", "nvlink", "ll_max_bw_GBps", "value"), 0.0, "must be > 0"),
    ("op-missing", ("links", "nvlink", "bus_bw_GBps", "all_gather"), _DROP, "no bus bandwidth for all_gather"),
    ("measured-bad-op", ("measured",), {"all_to_all": {"2": [[8, 1.0]]}}, "unknown op 'all_to_all'"),
    ("measured-negative-time", ("measured",), {"all_reduce": {"2": [[8, -1.0]]}}, "finite µs >= 0"),
    ("measured-malformed", ("measured",), {"all_reduce": {"2": [8]}}, "malformed"),
]


@pytest.mark.parametrize("path,value,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_table_is_refused_before_the_run(path, value, message, tmp_path):
    table = tmp_path / "table.json"
    table.write_text(json.dumps(_with(path, value)))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        cm.check_covers(table, 8)


@pytest.mark.parametrize("command", [["ablate", "--preset", "tiny", "--steps", "2"], ["train", "--preset", "tiny"]])
def test_the_cli_refuses_a_bad_table_with_one_line_and_no_folder(command, tmp_path, monkeypatch):
    root = make_workspace(tmp_path / "work")
    (root / "bad.json").write_text(json.dumps(_with(BW, 0)))
    monkeypatch.chdir(root)
    before = tree(root)
    r = invoke(*command, "--simulate-world", "2", "--comm-model", "bad.json", "--quiet", "--profile-steps", "off")
    assert_refused(r, 2, "must be > 0", root, before)


def test_a_table_without_an_inter_node_link_is_refused_for_several_nodes(tmp_path):
    d = _with(("links", "ib"), _DROP) if "ib" in BUNDLED["links"] else copy.deepcopy(BUNDLED)
    table = tmp_path / "t.json"
    table.write_text(json.dumps(d))
    cm.check_covers(table, 8, 1)  # one node: fine
    inter = cm.INTER_NODE
    try:
        cm.INTER_NODE = str(tmp_path / "no-such-inter.json")  # the bundled boundary link gone too
        Path(cm.INTER_NODE).write_text(json.dumps({"format": "golfprof-comm-table/1", "links": {}}))
        with pytest.raises(ConfigError, match="no inter-node link"):
            cm.check_covers(table, 16, 2)
    finally:
        cm.INTER_NODE = inter


def test_a_world_wider_than_a_node_of_the_table_is_warned_about():
    with pytest.warns(GolfprofWarning, match="holds 8 GPUs, the world puts 16 on each of 1 node"):
        cm.check_covers("h200", 16, 1)
    cm.check_covers("h200", 16, 2)  # two nodes of 8: no warning (pytest turns unexpected warnings into noise only)


def test_the_bundled_tables_pass_the_check():
    for name in cm.BUNDLED:
        assert cm.check_covers(name, 8).gpus_per_node == 8
