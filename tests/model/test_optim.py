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


def test_the_records_ema_loop_averages_as_the_fused_one_does_in_one_launch_per_op_and_tensor():
    """--ema loop (the records' update, a mul_ and an add_ per state-dict tensor) against the default fused lerp:
    the same averages to fp32 rounding after ten steps of a bf16/fp32 model, and the launches the loop costs."""
    from torch.profiler import ProfilerActivity, profile

    from golfprof.model.optim import EMA

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Linear(32, 8).to(torch.bfloat16))
    fused, loop = EMA(model, 0.9), EMA(model, 0.9, loop=True)
    for _ in range(10):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        fused.update()
        loop.update()
    for k, v in fused.state_dict().items():
        torch.testing.assert_close(loop.state_dict()[k], v, rtol=1e-6, atol=1e-6)
        assert v.dtype == torch.float32
    moved = max((fused.state_dict()[k] - t.float()).abs().max().item() for k, t in model.state_dict().items())
    assert moved > 0.1  # the averages lag the weights: the comparison is not of two copies of the model

    def ops(ema: EMA) -> list[str]:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            ema.update()
        return [e.name for e in prof.events() if e.name in ("aten::mul_", "aten::add_", "aten::_foreach_lerp_")]

    assert ops(loop).count("aten::mul_") == ops(loop).count("aten::add_") == 4  # 4 tensors, one of each per tensor
    assert ops(fused) == ["aten::_foreach_lerp_"]
