"""The printed prediction: with --target-gpu, the target's step beside the source's and, per phase, what it adds."""

from __future__ import annotations

from pathlib import Path

from golfprof import tables
from golfprof.predict.predict import predict
from tests.predict.synth_run import write_run


def test_a_target_prediction_prints_both_sides_and_what_each_phase_adds(tmp_path: Path):
    kernels = [("nvjet_gemm", "aten::mm", 5, 0, 100), ("vectorized_elementwise_kernel", "aten::add", 10, 100, 50)]
    run, _ = write_run(tmp_path / "run", kernels, [], end=160)
    p = predict(run, "h200", target_gpu="h100")["prediction"]
    s = {"prediction": p, "variant": "explicit_banks", "preset": "full", "device": "NVIDIA H200",
         "ms_per_step": 0.16, "run_dir": str(run)}
    with tables.console.capture() as cap:
        tables.print_prediction(s)
    out = cap.get()
    back = next(r for r in p["target"]["by_phase"] if r["phase"] == "golfprof/step/backward")
    assert "on h100: ms/step, interval" in out and "on h200: ms/step, interval" in out
    assert "h100 - source, backward ms" in out and f"{back['own_ms']:+.2f} (kernels {back['grown_ms']:+.2f})" in out


def test_a_prediction_off_its_anchor_prints_one_warning_line(tmp_path: Path, capsys):
    run, _ = write_run(tmp_path / "run", [("nvjet_gemm", "aten::mm", 5, 0, 100)], [], end=160,
                       step_ms=[500.0, 0.16, 0.16, 0.2])
    s = {"prediction": predict(run, "h200")["prediction"], "variant": "explicit_banks", "preset": "full",
         "device": "NVIDIA H200", "ms_per_step": 0.16, "run_dir": str(run)}
    with tables.console.capture():
        tables.print_prediction(s)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("warning: the replayed (profiled) steps ran at") and "+25.0%" in err[0]
