"""The Adam groups' arithmetic on low-precision embeddings (golf7l stores them in fp16)."""

from __future__ import annotations

import pytest
import torch

from golfprof.model.config import preset
from golfprof.model.optim import build_adam


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_adam_on_small_gradients_of_low_precision_tables_stays_finite(dtype):
    """The trainer's CPU Adam is the fused kernel (fp32 arithmetic). The plain one works in the table's dtype:
    in fp16, eps=1e-8 and grad**2 of a 1e-5 gradient round to 0, so its first update is 0/0."""
    _, train = preset("golf7l")
    table = torch.nn.Parameter(torch.randn(64, 8, dtype=dtype) * 0.01)
    table.grad = torch.randn_like(table) * 1e-5
    adam = build_adam({"tok": [table], "scalar": []}, train, fused=True)
    adam.step()
    assert torch.isfinite(table).all()
    if dtype is torch.float16:  # the failure the fused kernel avoids, shown so the test cannot pass vacuously
        plain = torch.nn.Parameter(torch.randn(64, 8, dtype=dtype) * 0.01)
        plain.grad = torch.randn_like(plain) * 1e-5
        build_adam({"tok": [plain], "scalar": []}, train, fused=False).step()
        assert not torch.isfinite(plain).all()
