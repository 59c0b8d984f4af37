"""The mlp_kernel / ce_kernel / fp8 toggles: fallbacks with one warning, and the loss curve they train.

The curve (tests/model/fused_interp.py, Triton's interpreter, every kernel forced on) trains the tiny
preset for `CURVE_STEPS` steps of one micro-batch with the reference path, with the fused MLP and CE, and
with those plus FP8 MLP and head projections, from the same seed and data. Bands: fused within 5e-3 nats of
the reference at every step (bf16 rounding; measured ≤ 3.2e-4 over 5 steps, ≤ 8e-4 over 8); fused + FP8
within 0.1 nats at every step and 0.02 at the last (measured ≤ 4.2e-3 over 5 steps; 0.050 at step 2 of one
8-step run); each curve falls by more than 0.5 nats (the reference: 0.72 over 5 steps).
"""

from __future__ import annotations

import warnings

import pytest
import torch

from golfprof.errors import GolfprofWarning
from golfprof.model.config import Toggles
from golfprof.model.kernel_choice import Kernels, resolve
from tests.model import fused_interp as FI
from tests.model.triton_marks import needs_triton


def _resolve(toggles: Toggles) -> tuple[Kernels, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kernels = resolve(toggles, torch.device("cpu"))
    return kernels, [str(w.message) for w in caught if issubclass(w.category, GolfprofWarning)]


def test_defaults_need_nothing_and_say_nothing():
    assert _resolve(Toggles()) == (Kernels(), [])


@pytest.mark.parametrize("toggle,value,reference,why", [
    ("mlp_kernel", "triton_fused", "inductor", "need a CUDA GPU"),
    ("ce_kernel", "triton_fused", "inductor", "need a CUDA GPU"),
    ("fp8", "mlp", "off", "compute capability 8.9"),
    ("fp8", "mlp_head", "off", "compute capability 8.9"),
])
def test_cpu_falls_back_with_one_warning(toggle, value, reference, why):
    kernels, said = _resolve(Toggles(**{toggle: value}))
    assert getattr(kernels, toggle) == reference
    assert len(said) == 1 and said[0].startswith(f"{toggle}={value} unavailable") and why in said[0], said


def test_fp32_weights_refuse_the_bf16_kernels():
    kernels, said = _resolve(Toggles(mlp_kernel="triton_fused", fp8="mlp", bf16=()))
    assert kernels == Kernels() and len(said) == 2 and all("bf16" in s for s in said), said


@needs_triton
def test_tiny_loss_curve_stays_within_band_of_the_reference():
    curves = FI.results()["curves"]
    ref, fused, fp8 = curves["reference"], curves["fused"], curves["fused_fp8"]
    assert len(ref) == FI.CURVE_STEPS
    assert max(abs(a - b) for a, b in zip(fused, ref)) <= 5e-3, (fused, ref)
    assert max(abs(a - b) for a, b in zip(fp8, ref)) <= 0.1 and abs(fp8[-1] - ref[-1]) <= 0.02, (fp8, ref)
    assert all(c[0] - c[-1] > 0.5 for c in (ref, fused, fp8)), curves


def test_the_run_record_says_which_paths_ran(tmp_path):
    """A toggle that fell back must be readable from summary.json, or a matrix compares the reference with itself."""
    import json

    from tests.cli import invoke

    r = invoke("train", "--preset", "tiny", "--steps", "2", "--quiet", "--profile-steps", "off", "--mlp-kernel",
               "triton_fused", "--ce-kernel", "triton_fused", "--runs-dir", tmp_path / "runs", "--data-dir",
               tmp_path / "data")
    assert r.exit_code == 0, r.output
    (run,) = (tmp_path / "runs").iterdir()
    s = json.loads((run / "summary.json").read_text())
    fell_back = {"mlp_kernel": "inductor", "ce_kernel": "inductor", "fp8": "off"}  # the CPU: no Triton GPU
    assert s["kernels_used"] == fell_back and s["ranks"][0]["kernels"] == fell_back
    assert s["toggles"]["mlp_kernel"] == "triton_fused"  # what was asked stays beside what ran
