"""Fixtures shared across the test packages."""

from __future__ import annotations

import pytest

from golfprof.model.config import TINY_MODEL
from golfprof.model.synthetic import write_synthetic_dataset


@pytest.fixture(scope="session")
def tiny_train_shards(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Synthetic train shards for the tiny preset (40k tokens): the distributed tests' data."""
    out = tmp_path_factory.mktemp("tiny_shards")
    return write_synthetic_dataset(out, TINY_MODEL.vocab_size, 40_000, 2_000, seed=0)["train"]
