"""The CLI's options are generated from the dataclass fields that declare them, and stay as committed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal

import pytest
from typer.testing import CliRunner

from golfprof import options as O
from golfprof.cli import app
from golfprof.model.config import Toggles, TrainConfig, choices
from tests.golfprof.option_table import option_table

SNAPSHOT = Path(__file__).with_name("cli_options.json")


def test_every_command_option_is_as_committed():
    """A changed name, default, help text or a lost option fails here; regenerate the snapshot on purpose with
    `python tests/golfprof/option_table.py > tests/golfprof/cli_options.json` and review its diff."""
    assert option_table() == json.loads(SNAPSHOT.read_text())


@pytest.mark.parametrize("command", ["train", "ablate"])
def test_every_declared_field_is_an_option(command):
    table = {p["name"]: p for p in option_table()[f"golfprof {command}"]["params"]}
    declared = [(cls, f.name) for cls in (Toggles, TrainConfig) for f in dataclasses.fields(cls)
                if "help" in f.metadata]
    assert {name for _, name in declared} <= set(table)
    for cls, name in declared:
        for value in choices(cls, name):
            assert value in table[name]["help"], (name, value)
    assert not any(p["hidden"] for p in table.values()), "test-only hooks live in golfprof/faults.py"


def test_a_new_toggle_is_one_field(monkeypatch):
    """Adding a Literal field with option() is all it takes: the option, its choices and validation follow."""
    from golfprof.model.config import option

    @dataclasses.dataclass(frozen=True)
    class More(Toggles):
        flavour: Literal["a", "b"] = option("a", "Flavour: {choices}.")

    import golfprof.model.config as C
    monkeypatch.setattr(O, "Toggles", More)
    opts = {o.param: o for o in O.run_options()}
    assert opts["flavour"].choices == ("a", "b") and opts["flavour"].help == "Flavour: a, b."
    with pytest.raises(C.ConfigError, match="--flavour 'c': valid: a, b"):
        O.split({"flavour": "c"})
    assert O.split({"flavour": "b"})[0] == {"flavour": "b"}


@pytest.mark.parametrize("option,value", [("--layout", "sideways"), ("--attention", "fast"), ("--compile", "maybe"),
                                          ("--device", "tpu"), ("--bf16", "weights,brains")])
def test_bad_choice_is_one_error_line(option, value):
    r = CliRunner().invoke(app, ["train", option, value])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and value.split(",")[-1] in lines[0]
