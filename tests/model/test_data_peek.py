"""The loader's one-token peek reads in place: no whole-shard load inside a step at a shard boundary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from golfprof.model import data
from tests.model.test_data import _write_split


def test_peek_across_a_shard_boundary_loads_no_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = _write_split(tmp_path, "s", [10, 0, 5])
    stream = data.TokenStream(tmp_path / "s_*.bin")
    loads: list[Path] = []
    real = data.load_shard
    monkeypatch.setattr(data, "load_shard", lambda p, v=None: loads.append(Path(p)) or real(p, v))
    stream.take(10)  # the first shard is used up: the next token is the third shard's first
    np.testing.assert_array_equal(stream.peek(3), tokens[10:13])
    assert loads == [] and stream.state_dict() == {"shard": 0, "pos": 10}
    np.testing.assert_array_equal(stream.take(6), np.r_[tokens[10:15], tokens[0]])  # peek consumed nothing
    # take loads each shard once, as it enters it (the empty one too); peek had loaded none
    assert [p.name for p in loads] == ["s_000001.bin", "s_000002.bin", "s_000000.bin"]
    np.testing.assert_array_equal(stream.peek(20), np.resize(np.r_[tokens[1:], tokens], 20))
