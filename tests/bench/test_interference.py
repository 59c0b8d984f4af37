"""The interference probe: refused on the CPU with one line and nothing written; its figure, once measured,
lands in the table as interference_probe, survives a later sweep into the same file, and drives the model."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from golfprof.bench import comm, interference
from golfprof.predict import costmodel, devices
from golfprof.predict import interference as model_interference
from tests.cli import invoke
from tests.golfprof.refusal import assert_refused, make_workspace, tree

H200_TABLE = json.loads(resources.files("golfprof.predict").joinpath("comm_tables", "h200_nvlink.json").read_text())


def test_on_the_cpu_the_probe_is_refused_with_one_line_and_nothing_written(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the probe would run")
    root = make_workspace(tmp_path / "work")
    monkeypatch.chdir(root)
    before = tree(root)
    r = invoke("bench", "comm", "--interference", "--out", "probe.json")
    assert_refused(r, 2, "no CUDA device is visible", root, before)


def test_the_trainer_s_gemm_shapes_come_from_the_preset():
    shapes = interference.gemm_shapes("full")
    tokens = 48 * 2048
    assert shapes == [(tokens, 512, 512), (tokens, 512, 256), (tokens, 512, 1536), (tokens, 1536, 512)]


def test_a_probe_s_result_is_written_kept_by_a_sweep_and_used_by_the_model(tmp_path: Path):
    result = {"sms": 16, "copy_pass_us": 3000.0, "slowdown": 0.11, "device": "NVIDIA H200", "torch": "2.13.0",
              "gemms": [{"m": 8, "k": 8, "n": 8, "alone_us": 1.0, "beside_us": 1.11, "slowdown": 0.11}]}
    doc = interference.into_table(H200_TABLE, result, "full")
    assert doc["interference_probe"]["value"] == 0.11 and "16 CTAs" in doc["interference_probe"]["source"]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc))
    model = costmodel.load(path)
    assert model.probe == 0.11
    assert model_interference.channel_model(model, devices.bundled()["h200"]).compute == 0.11
    swept = comm.table({"rows": {"all_reduce": [[4096, 10.0]]}, "backend": "nccl", "dtype": "bf16", "spread": 0.05},
                       2, doc)
    assert swept["interference_probe"] == doc["interference_probe"]
    assert swept["uncertainty"]["value"] == pytest.approx(H200_TABLE["uncertainty"]["value"])  # the larger ± kept


def test_a_row_s_half_spread():
    assert comm.half_spread([10.0] * 5) == 0.0
    assert comm.half_spread([9.0, 10.0, 11.0]) == pytest.approx((10.8 - 9.2) / 2 / 10.0)
