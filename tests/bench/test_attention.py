"""`bench attention` on the CPU: shapes and FLOPs from the preset, the rows a CPU can run, the JSON, and the
bf16 check that must flag a backend whose output is wrong."""

from __future__ import annotations

import json

import pytest
import torch

from golfprof.bench import attention as BA
from golfprof.errors import ConfigError
from golfprof.model import attention as A
from golfprof.model.config import FULL_MODEL, FULL_TRAIN
from golfprof.model.flops import attention_flops_per_token


def test_full_preset_shapes_and_flops_are_the_trainers():
    s = BA.shapes("full")
    assert (s["batch"], s["seq_len"], s["heads"], s["kv_heads"], s["head_dim"]) == (48, 2048, 8, 4, 64)
    assert s["calls_per_step_one_gpu"] == 11 * 8  # 11 layers x 8 micro-batches of 48 x 2048 in 786,432 tokens
    fl = BA.flops_per_call("full")
    tokens = FULL_TRAIN.micro_batch_seqs * FULL_TRAIN.seq_len
    assert fl["forward_backward"] * FULL_MODEL.num_layers == attention_flops_per_token(FULL_MODEL, 2048) * tokens
    # causal: forward is QK^T and AV over half the T x T scores, 2 FLOPs per multiply-add, per query head
    assert fl["forward"] == 2 * 48 * 8 * 2048 * 2048 * 64


def test_cpu_smoke_run_writes_the_table(tmp_path):
    r = BA.bench_attention("tiny", "cpu", reps=2, warmup=0, command="test")
    rows = {row["backend"]: row for row in r["rows"]}
    assert list(rows) == list(BA.ROWS)
    assert rows["sdpa"]["agrees"] and rows["sdpa"]["rel_err_vs_fp32_math"]["out"] < 1e-5
    assert all("skipped" in rows[b] for b in ("flash", "cudnn", "flex", "efficient", "fa3"))
    assert r["fastest_agreeing"] == "sdpa" and r["check"]["out_tol"] == BA.BF16_OUT_TOL
    path = BA.write_result(r, tmp_path / "a.json")
    assert json.loads(path.read_text())["command"] == "test"
    assert "fastest within tolerance: sdpa" in BA.table(r)
    assert BA.default_path({"device": "NVIDIA H200", "preset": "full"}).name == "attention_nvidia_h200_full.json"


def test_a_wrong_backend_is_outside_the_tolerance(monkeypatch):
    real = A.causal_attention

    def not_causal(q, k, v, backend="sdpa"):
        if backend != "sdpa":
            return real(q, k, v, backend)
        k, v = (t.repeat_interleave(q.size(1) // k.size(1), dim=1) for t in (k, v))
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)  # the mask forgotten

    monkeypatch.setattr(A, "causal_attention", not_causal)
    r = BA.bench_attention("tiny", "cpu", reps=1, warmup=0, rows=("sdpa",))
    assert r["rows"][0]["agrees"] is False and r["fastest_agreeing"] is None


@pytest.mark.parametrize("kwargs,message", [
    ({"device": "cpu", "preset": "full"}, "use --preset tiny"),
    ({"device": "cpu", "preset": "tiny", "backends": "sdpa,fa4"}, "choose from"),
    ({"device": "cpu", "preset": "huge"}, "unknown preset"),
    ({"device": "cpu", "preset": "tiny", "reps": 0}, "--reps must be"),
])
def test_bad_options_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        BA.bench_attention_cmd(**{"preset": "tiny", "device": "cpu", "reps": 2, "warmup": 0, "backends": None,
                                  "out": None, **kwargs})
