"""MFU arithmetic against hand counts."""

import math

from golfprof.ablations.run import efficiency
from golfprof.model.config import FULL_MODEL, TINY_MODEL, RunConfig, Toggles, preset
from golfprof.model.flops import attention_flops_per_token, flops_per_token, matmul_params, ortho_flops_per_rank


def test_full_by_hand():
    # banks: qo 22*512*512 + kv 22*256*512 + up 11*1536*512 + down 11*512*1536
    banks = 22 * 512 * 512 + 22 * 256 * 512 + 2 * 11 * 1536 * 512
    assert banks == 25_952_256  # the record's bank parameter count
    head, bigram, ve = 1024 * 512, 128 * 512, 128 * 256
    assert matmul_params(FULL_MODEL) == banks + head + bigram + ve == 26_574_848
    # causal attention, forward + backward: 3 * (2 * d * T) per token per layer
    assert attention_flops_per_token(FULL_MODEL, 2048) == 11 * 3 * 2 * 512 * 2048
    assert flops_per_token(FULL_MODEL, 2048) == 6 * 26_574_848 + 69_206_016 == 228_655_104


def test_tiny_by_hand():
    banks = 10 * 32 * 32 + 10 * 16 * 32 + 2 * 5 * 96 * 32
    assert matmul_params(TINY_MODEL) == banks + 64 * 32 + 16 * 32 + 16 * 16 == 48_896
    assert flops_per_token(TINY_MODEL, 64) == 6 * 48_896 + 6 * 5 * 32 * 64 == 354_816


def test_mfu_from_a_step_time():
    m, t = preset("full")
    run = RunConfig("full", m, t, Toggles(), "explicit_banks")
    peak = {"ceiling_tflops": 800.0, "datasheet_tflops": 989.4, "dtype": "bfloat16"}
    eff = efficiency(run, world_size=1, ms=713.4, optimizer_ms=2.21, peak=peak)
    tokens_per_s = 786_432 / 0.7134
    assert math.isclose(eff["tokens_per_s"], tokens_per_s)
    tflops = 228_655_104 * tokens_per_s / 1e12  # ≈ 252 TFLOP/s
    assert math.isclose(eff["model_tflops_per_gpu"], tflops)
    assert math.isclose(eff["mfu_pct"], 100 * tflops / 800.0)
    assert math.isclose(eff["mfu_datasheet_pct"], 100 * tflops / 989.4)
    assert math.isclose(eff["optimizer_tflops"], 313.7339392e9 / 2.21e-3 / 1e12)
    two = efficiency(run, world_size=2, ms=344.0, optimizer_ms=1.0, peak=peak)
    assert math.isclose(two["tokens_per_s_per_gpu"], two["tokens_per_s"] / 2)
    # explicit schedule on 2 ranks: each rank orthogonalizes ceil(B/2) matrices of each bank
    assert two["ortho_gflop_per_rank"] * 1e9 == ortho_flops_per_rank(m, 5, 2, sharded=True)
    assert ortho_flops_per_rank(m, 5, 2, sharded=True) < ortho_flops_per_rank(m, 5, 1, sharded=False)
