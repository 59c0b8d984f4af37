"""The FA3 shim's default: bench attention's fastest agreeing kernel, cached per GPU and library versions."""

from __future__ import annotations

import json

import pytest

from golfprof.bench import attention as BA
from golfprof.bench import attention_choice as C
from golfprof.errors import GolfprofWarning


def result(*rows):
    return {"rows": [dict(zip(("backend", "ms_fwd_bwd", "agrees"), r)) for r in rows]}


def test_choose_takes_the_fastest_row_that_agrees():
    kind, why = C.choose(result(("cudnn", 2.2, True), ("flash", 3.7, True), ("flex", 1.0, False)))
    assert kind == "cudnn" and "2.200 ms" in why  # flex was faster but wrong
    assert C.choose(result(("cudnn", 2.2, True), ("flash", 1.9, True)))[0] == "flash"


def test_choose_falls_back_to_math_when_nothing_agrees():
    kind, why = C.choose({"rows": [{"backend": "cudnn", "skipped": "no cuDNN SDPA"},
                                   {"backend": "flash", "ms_fwd_bwd": 1.0, "agrees": False}]})
    assert kind == "math" and "cudnn: no cuDNN SDPA" in why and "flash: outside bf16 tolerance" in why


def test_choice_is_benchmarked_once_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(C, "device_key", lambda: "GPU X | torch 9")
    calls = []

    def fake_bench(preset, device, reps, warmup, rows, command):
        calls.append((preset, device, rows))
        return result(("cudnn", 2.0, True), ("flash", 3.0, True), ("flex", 2.5, True))

    monkeypatch.setattr(BA, "bench_attention", fake_bench)
    assert C.fastest_agreeing_kind()[0] == "cudnn"
    assert calls == [("full", "cuda", ("cudnn", "flash", "flex"))]
    kind, why = C.fastest_agreeing_kind()
    assert kind == "cudnn" and "cached in" in why and len(calls) == 1
    stored = json.loads(C.cache_path().read_text())
    assert stored["GPU X | torch 9"]["kind"] == "cudnn" and len(stored["GPU X | torch 9"]["rows"]) == 3
    monkeypatch.setattr(C, "device_key", lambda: "GPU Y | torch 9")  # another GPU: benchmarked afresh
    monkeypatch.setattr(BA, "bench_attention", lambda *a, **k: result(("cudnn", 2.0, False)))
    with pytest.warns(GolfprofWarning, match="no kernel agreed"):
        assert C.fastest_agreeing_kind()[0] == "math"
    assert set(json.loads(C.cache_path().read_text())) == {"GPU X | torch 9", "GPU Y | torch 9"}
