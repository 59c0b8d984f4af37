"""`golfprof bench mlp|ce`: refused without a GPU unless asked for the CPU smoke run, which skips the Triton rows."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from golfprof.cli import app


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without a GPU")
@pytest.mark.parametrize("kind", ["mlp", "ce"])
def test_without_a_gpu_auto_is_one_error_line(kind):
    r = CliRunner().invoke(app, ["bench", kind])
    assert r.exit_code == 2 and f"bench {kind} times GPU kernels" in r.output, r.output


@pytest.mark.parametrize("kind,unit", [("mlp", "tflops"), ("ce", "gbps")])
def test_cpu_smoke_run_writes_reference_rows(tmp_path, kind, unit):
    out = tmp_path / f"{kind}.json"
    r = CliRunner().invoke(app, ["bench", kind, "--device", "cpu", "--reps", "2", "--warmup", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    rows = {(row["kernel"], row["pass"]): row for row in doc["rows"]}
    assert set(rows) == {(k, p) for k in ("inductor", "triton_fused") for p in ("forward", "forward_backward")}
    assert all(rows[("inductor", p)]["ms"] > 0 and rows[("inductor", p)][unit] > 0
               for p in ("forward", "forward_backward"))
    assert "not a CUDA device" in rows[("triton_fused", "forward")]["skipped"]


def test_bad_reps_is_one_error_line():
    r = CliRunner().invoke(app, ["bench", "ce", "--device", "cpu", "--reps", "0"])
    assert r.exit_code == 2 and "--reps must be >= 1" in r.output, r.output
