"""The Triton orthogonalizer against the torch path and a float64 reference.

On the CPU the kernels run in Triton's interpreter (TRITON_INTERPRET=1 must be set before the
kernels are defined, so they run in a subprocess); on a CUDA machine `test_cuda_*` run them for
real on the bank and shard shapes. Skipped only when triton is not importable (it is in the
`test` extra, so CI runs them).

Bounds (relative Frobenius error, ‖out − ref‖ / ‖ref‖):
- one product (X Xᵀ, b·A + c·A Aᵀ, a·X + B X) against fp32 math on the same bf16 operands:
  ≤ u = 2⁻⁸ ≈ 3.9e-3, bf16's unit roundoff (8-bit significand, round to nearest): every output
  element is one fp32 accumulation rounded once to bf16; fp32 accumulation adds ~1e-6.
  Measured: 1.6e-3–1.7e-3.
- the whole 5-step orthogonalization against the float64 torch path: the bf16 roundings of A, B
  and X at every step are amplified by the polynomials (Polar Express's first step has
  coefficients up to 22), so the error is several u. Measured (6 seeds, the shapes below, the
  interpreter): Triton ≤ 2.1e-2 for both methods; torch's own bf16 path on the same inputs
  1.6e-2 (NS5) / 3.0e-2 (PE) batched, 3.7e-2 / 5.8e-2 through its 2-D/4-D (non-baddbmm) branch.
  Asserted: Triton ≤ 3e-2 (≈ 8u), Triton ≤ 1.25 × torch-bf16's error + 2e-3 (no less accurate
  than the path it replaces), and Triton vs torch-bf16 ≤ 2.5 × torch-bf16's error (the two
  differ by about their own rounding errors, which are independent).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from golfprof.model import ortho_triton as OT
from golfprof.model.ortho import orthogonalize
from tests.background import Background
from tests.cli import invoke
from tests.model.triton_marks import HAVE_TRITON, U_BF16, needs_gpu, needs_triton

E2E_ABS = 3e-2

# Runs in a fresh interpreter with TRITON_INTERPRET=1 set before triton is imported.
_SCRIPT = textwrap.dedent(r"""
    import json, math, os, sys
    assert os.environ["TRITON_INTERPRET"] == "1"
    import torch
    from golfprof.model import ortho_triton as OT
    from golfprof.model.ortho import orthogonalize

    def rel(a, b):
        return ((a.double() - b.double()).norm() / b.double().norm()).item()

    METHODS = sys.argv[1:]  # the end-to-end cases of these methods (the inputs are the same for any)
    gen = torch.Generator().manual_seed(1234)
    res = {"kernels": {}, "e2e": []}
    nan = float("nan")
    # one product each, outputs poisoned with NaN first: every element must be written
    x = torch.randn(2, 40, 72, generator=gen).bfloat16()
    xt = torch.randn(2, 72, 40, generator=gen).bfloat16().mT          # strided (transposed) input
    A = torch.full((2, 40, 40), nan, dtype=torch.bfloat16)
    OT._syrk(x, None, A, 1.0, 0.0, None, 1.0, 0.0)
    xf = x.float()
    res["kernels"]["xxt"] = [rel(A, xf @ xf.mT), bool(torch.isfinite(A).all()), bool((A == A.mT).all())]
    norm = torch.linalg.vector_norm(xt, dim=(-2, -1), dtype=torch.float32)
    A.fill_(nan)
    OT._syrk(xt, None, A, 1.0, 0.0, norm, 1.02, 1e-6)
    s = 1 / (norm * 1.02 + 1e-6)[:, None, None]
    res["kernels"]["xxt_strided_normalised"] = [rel(A, (xt.float() @ xt.float().mT) * s * s),
                                                bool(torch.isfinite(A).all()), bool((A == A.mT).all())]
    Bm = torch.full_like(A, nan)
    OT._syrk(A, A, Bm, -4.775, 3.4445 - 1, None, 1.0, 0.0)
    Af = A.float()
    res["kernels"]["b_a_plus_c_aa"] = [rel(Bm, (3.4445 - 1) * Af + -4.775 * Af @ Af), bool(torch.isfinite(Bm).all()),
                                       bool((Bm == Bm.mT).all())]
    out = torch.full_like(x, nan)
    OT._update(Bm, xt, out, 1.0, 2.0315, norm, 1.02, 1e-6)
    ref = (2.0315 * xt.float() + Bm.float() @ xt.float()) * s
    res["kernels"]["a_x_plus_b_x_normalised"] = [rel(out, ref), bool(torch.isfinite(out).all()), True]
    # the other branch of each kernel's PREFETCH_C switch
    OT.CONFIG_OVERRIDE.update(syrk=OT.INTERP_SYRK[:4] + (not OT.INTERP_SYRK[4],),
                              update=OT.INTERP_UPDATE[:5] + (not OT.INTERP_UPDATE[5],))
    Bm.fill_(nan)
    OT._syrk(A, A, Bm, -4.775, 3.4445 - 1, None, 1.0, 0.0)
    res["kernels"]["b_a_plus_c_aa_other_prefetch"] = [rel(Bm, (3.4445 - 1) * Af + -4.775 * Af @ Af),
                                                      bool(torch.isfinite(Bm).all()), bool((Bm == Bm.mT).all())]
    out.fill_(nan)
    OT._update(Bm, xt, out, 1.0, 2.0315, norm, 1.02, 1e-6)
    ref = (2.0315 * xt.float() + Bm.float() @ xt.float()) * s
    res["kernels"]["a_x_plus_b_x_other_prefetch"] = [rel(out, ref), bool(torch.isfinite(out).all()), True]
    OT.CONFIG_OVERRIDE.clear()

    base = torch.randn(2, 56, 40, generator=gen)
    cases = {
        "wide_batch2": torch.randn(2, 40, 72, generator=gen).bfloat16(),
        "tall_2d": torch.randn(72, 40, generator=gen).bfloat16(),
        "square_batch1_odd": torch.randn(1, 33, 33, generator=gen).bfloat16(),
        "4d_lead": torch.randn(2, 2, 16, 24, generator=gen).bfloat16(),
        "split_view": base.bfloat16()[:, 16:],                          # packed-schedule style slice
        "fp32_input_batch3": torch.randn(3, 24, 40, generator=gen),
    }
    for name, g in cases.items():
        for method in METHODS:
            ref = orthogonalize(g.double(), method, 5, torch.float64)
            tb = orthogonalize(g, method, 5, torch.bfloat16)
            tr = OT.orthogonalize_triton(g, method, 5)
            res["e2e"].append({"case": name, "method": method, "shape": list(g.shape),
                               "out_shape": list(tr.shape), "dtype": str(tr.dtype),
                               "finite": bool(torch.isfinite(tr).all()),
                               "triton_vs_fp64": rel(tr, ref), "torch_vs_fp64": rel(tb, ref),
                               "triton_vs_torch": rel(tr, tb)})
    print("RESULT" + json.dumps(res))
""")


# The script once per method, both at once (the interpreter keeps one core busy per process; tests/conftest.py
# starts them while the suite runs single-process tests): each computes the single products too (cheap; the first
# one's are kept), so the end-to-end inputs come from the same generator state as in one process.
_job = Background(lambda: [[sys.executable, "-c", _SCRIPT, method] for method in ("ns5", "polar_express")], timeout=300)
start, wait, stop = _job.start, _job.wait, _job.stop


@pytest.fixture(scope="module")
def interp() -> dict:
    wait()
    results = []
    for code, out, err in _job.done:
        assert code == 0, err[-4000:]
        line = next(ln for ln in out.splitlines() if ln.startswith("RESULT"))
        results.append(json.loads(line[len("RESULT"):]))
    return {"kernels": results[0]["kernels"], "e2e": [r for res in results for r in res["e2e"]]}


def test_available_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ok, why = OT.available()
    assert ok is False
    assert ("CUDA" in why) if HAVE_TRITON else ("triton" in why)


@needs_triton
def test_cpu_tensor_needs_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="CUDA tensor"):
        OT.orthogonalize_triton(torch.randn(4, 8))
    with pytest.raises(ValueError, match="bfloat16"):
        OT.orthogonalize_triton(torch.randn(4, 8), dtype=torch.float32)


@needs_triton
@pytest.mark.parametrize("product", ["xxt", "xxt_strided_normalised", "b_a_plus_c_aa", "a_x_plus_b_x_normalised",
                                     "b_a_plus_c_aa_other_prefetch", "a_x_plus_b_x_other_prefetch"])
def test_interpreter_single_products_within_one_rounding(interp, product):
    err, finite, symmetric = interp["kernels"][product]
    assert finite, "an output element was not written (NaN poison survived)"
    assert symmetric, "the mirror store did not make the Gram-side output exactly symmetric"
    assert err <= U_BF16, err


@needs_triton
def test_interpreter_end_to_end_matches_torch(interp):
    assert len(interp["e2e"]) == 12
    for r in interp["e2e"]:
        what = f"{r['case']} {r['method']}: {r}"
        assert r["finite"] and r["out_shape"] == r["shape"] and r["dtype"] == "torch.bfloat16", what
        assert r["triton_vs_fp64"] <= E2E_ABS, what
        assert r["triton_vs_fp64"] <= 1.25 * r["torch_vs_fp64"] + 2e-3, what
        assert r["triton_vs_torch"] <= 2.5 * r["torch_vs_fp64"], what


@needs_gpu
@pytest.mark.parametrize("method", ["ns5", "polar_express"])
@pytest.mark.parametrize("shape", [(22, 512, 512), (22, 256, 512), (11, 1536, 512), (11, 512, 1536),
                                   (2, 512, 512), (3, 256, 512), (8, 512, 1536), (12, 1536, 512),
                                   (3, 300, 700), (1000, 200), (1, 64, 64)])
def test_cuda_matches_torch_on_bank_and_shard_shapes(shape, method):
    g = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
    ref = orthogonalize(g.double(), method, 5, torch.float64)
    tb = orthogonalize(g, method, 5, torch.bfloat16)
    tr = OT.orthogonalize_triton(g, method, 5, graphs=False)
    rel = lambda a, b: ((a.double() - b.double()).norm() / b.double().norm()).item()  # noqa: E731
    assert tr.shape == g.shape and tr.dtype == torch.bfloat16 and torch.isfinite(tr).all()
    e_tr, e_tb = rel(tr, ref), rel(tb, ref)
    assert e_tr <= E2E_ABS, (e_tr, e_tb)
    assert e_tr <= 1.25 * e_tb + 2e-3, (e_tr, e_tb)
    assert rel(tr, tb) <= 2.5 * e_tb, (rel(tr, tb), e_tb)


@needs_gpu
@pytest.mark.parametrize("shape", [(22, 256, 512), (11, 1536, 512), (2, 2, 300, 200)])
def test_cuda_graph_path_matches_eager_and_returns_fresh_tensors(shape):
    OT.clear_graphs()
    gs = [torch.randn(shape, device="cuda", dtype=torch.bfloat16) for _ in range(4)]
    eager = [OT.orthogonalize_triton(g, "polar_express", graphs=False) for g in gs]
    graphed = [OT.orthogonalize_triton(g, "polar_express", graphs=True) for g in gs]  # eager, capture, replay x2
    torch.cuda.synchronize()
    assert len({t.data_ptr() for t in graphed}) == len(gs), "outputs alias a static buffer"
    for e, t in zip(eager, graphed):
        assert t.shape == e.shape and t.stride() == e.stride()
        # same kernels and configs; only the norm's reduction order may differ (copy vs view)
        assert ((t.double() - e.double()).norm() / e.double().norm()).item() < 1e-3
    assert all(p.graph is not None and p.error is None for p in OT._PLANS.values())
    OT.clear_graphs()


def test_bench_cpu_smoke(tmp_path):
    from golfprof.bench.ortho import KERNELS, bench_ortho, table, write_result

    res = bench_ortho("cpu", reps=2, warmup=1, shapes={"a": (2, 16, 24), "b": (1, 24, 16)}, command="test")
    assert {"device", "torch", "triton", "command", "rows"} <= res.keys()
    assert len(res["rows"]) == 2 * 2 * len(KERNELS)
    for r in res["rows"]:
        if r["kernel"].startswith("triton"):
            assert "skipped" in r
        else:
            assert r["ms"] > 0 and r["rel_err_vs_fp64"] < 0.1
    assert "ns5" in table(res)
    p = write_result(res, tmp_path / "ortho_cpu.json")
    assert json.loads(p.read_text())["command"] == "test"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "golfprof.cli", "bench", "ortho", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_bench_cli_without_gpu_is_one_line_error():
    r = _cli()
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode != 0 and len(lines) == 1 and "no CUDA device" in lines[0], r.stderr


def test_bench_cli_kernel_choice(tmp_path):
    r = _cli("--device", "cpu", "--kernels", "torch,nope")
    assert r.returncode != 0 and "--kernels" in r.stderr and "Traceback" not in r.stderr, r.stderr
    out = tmp_path / "o.json"  # a good choice: in-process (what it writes, not how a process exits)
    r = invoke("bench", "ortho", "--device", "cpu", "--reps", "1", "--warmup", "0", "--kernels", "torch", "--out", out)
    assert r.exit_code == 0, r.output
    rows = json.loads(out.read_text())["rows"]
    assert {r["kernel"] for r in rows} == {"torch"} and len(rows) == 4  # 2 methods x 2 layouts
