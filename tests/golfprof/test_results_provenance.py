"""Every committed figure names where it came from: each benchmarks/results/*.json says its device, torch version
and the command that made it (the brief's rule; a results file without them is not evidence)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

RESULTS = sorted((Path(__file__).parents[2] / "benchmarks" / "results").glob("*.json"))


def _keys(doc: object) -> set[str]:
    """Every key anywhere in the document (a file of several calls names its commands per call)."""
    if isinstance(doc, dict):
        return set(doc) | {k for v in doc.values() for k in _keys(v)}
    if isinstance(doc, list):
        return {k for v in doc for k in _keys(v)}
    return set()


def test_there_are_results_to_check():
    assert len(RESULTS) >= 10


@pytest.mark.parametrize("path", RESULTS, ids=[p.name for p in RESULTS])
def test_a_results_file_names_device_torch_and_command(path: Path):
    doc = json.loads(path.read_text())
    assert isinstance(doc, dict), f"{path.name}: a results file is one JSON object"
    keys = _keys(doc)
    assert "device" in keys, f"{path.name}: no device"
    assert keys & {"torch", "torch_version"}, f"{path.name}: no torch version"
    assert keys & {"command", "commands"}, f"{path.name}: no command"
