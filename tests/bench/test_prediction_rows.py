"""benchmarks/device/prediction_rows.py: the committed prediction_vs_records.json summary is what its rows give,
and a device row becomes a results row with its published figure."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("prediction_rows", ROOT / "benchmarks/device/prediction_rows.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_committed_summary_is_what_its_rows_give():
    results = json.loads((ROOT / "benchmarks/results/prediction_vs_records.json").read_text())
    assert _module().summary(results["rows"]) == results["summary"]


def test_a_device_row_gets_its_published_figure_and_the_deltas_their_verdict():
    mod = _module()
    kernels = [{"kernels": 10, "source_ms": 40.0}, {"kernels": 5, "source_ms": 20.0}]
    device = [{"run": f"{i}-{v}", "variant": v, "toggles": {"ema": ema}, "played_ranks": [7], "target_gpu": "h100",
               "record_shapes": True, "predicted_ms": ms, "interval_ms": [ms - 0.5, ms + 0.5],
               "alternative": {"ms_per_step": ms + 1}, "source_ms": ms - 9, "source_interval_ms": [ms - 10, ms - 8],
               "measured_ms_of_played_rank": ms - 10, "target_breakdown": [{"line": "compute", "ms": ms}],
               "kernels_first_step": kernels, "attention_used": "cudnn"}
              for i, (v, ema, ms) in enumerate([("explicit_banks", "loop", 81.0), ("ddp_banks", "loop", 90.0),
                                                ("explicit_banks", "foreach", 81.2), (None, None, 82.0)])]
    rows = [mod.row("1", r) for r in device]
    assert [r["configuration"] for r in rows] == ["explicit_banks", "ddp_banks", "explicit_banks@emaforeach",
                                                   "script"]
    assert rows[0]["published_ms"] == 81.87 and rows[0]["vs_published_pct"] == -1.1
    assert rows[3]["published_ms"] == [83.43, 83.59] and "script" in rows[3]
    assert (rows[0]["kernel_ms_per_step_h200"], rows[0]["kernels_per_step_h200"]) == (60.0, 15)
    d = mod.summary(rows)["deltas_ms"]
    assert d["ddp_banks - explicit_banks"] == {"predicted_ms": 9.0, "published_ms": 6.93, "off_ms": 2.07,
                                               "sign_met": True, "intervals": "distinguishable"}
    assert d["explicit_banks@emaforeach - explicit_banks"]["intervals"] == "not distinguishable"
    assert d["explicit_banks@emaforeach - explicit_banks"]["sign_met"] is None  # nothing published to meet
