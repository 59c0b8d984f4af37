"""The FA3 shim against attention written out in float64: causal (FA3's bottom-right alignment), GQA, softmax_scale,
the (B, T, H, D) layout and FA3's return convention; varlen documents of unequal length through the per-document
fallback and the flex document mask; and `install`, in this process and in a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest
import torch

from golfprof.errors import ConfigError, GolfprofWarning
from golfprof.model import fa3_shim as S

# fp32 kernels against float64 written out: the error is fp32 rounding (~1e-7); a wrong mask, scale or head
# mapping errs by tens of percent.
FP32_TOL = 1e-5


def reference(q, k, v, scale, causal):
    """(B, Tq, H, D) attention in float64: KV head j serves query heads j*g .. j*g+g-1; query i of Tq sees keys
    up to i + Tk - Tq (FA3's alignment); a query that sees no key gives zeros."""
    q, k, v = (t.double().transpose(1, 2) for t in (q, k, v))
    g = q.size(1) // k.size(1)
    k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    s = q @ k.transpose(-1, -2) * scale
    tq, tk = q.size(2), k.size(2)
    if causal:
        s = s.masked_fill(torch.arange(tq)[:, None] + (tk - tq) < torch.arange(tk)[None, :], float("-inf"))
    return (s.softmax(-1).nan_to_num(0.0) @ v).transpose(1, 2)


def varlen_reference(q, k, v, cu, scale, causal):
    """Packed (total, H, D): each document attended alone, rows outside every document zero."""
    out = torch.zeros(q.shape[0], q.shape[1], v.shape[-1], dtype=torch.float64)
    for a, b in zip(cu[:-1].tolist(), cu[1:].tolist()):
        if b > a:
            out[a:b] = reference(q[None, a:b], k[None, a:b], v[None, a:b], scale, causal)[0]
    return out


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def inputs(B=2, Tq=40, Tk=40, H=4, Hkv=2, D=16, grad=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    mk = lambda T, h: torch.randn(B, T, h, D, generator=g).requires_grad_(grad)  # noqa: E731
    return mk(Tq, H), mk(Tk, Hkv), mk(Tk, Hkv)


@pytest.fixture
def kind():
    """Restore the process's shim state after a test pins a kernel."""
    saved = (S._STATE.kind, S._STATE.requested, S._STATE.why)
    yield S.configure
    S.configure(*saved)


# ---- flash_attn_func ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("k_name", ["math", "flash"])  # flash: SDPA's CPU flash kernel
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("heads", [(4, 4), (4, 2), (6, 1)])
def test_dense_matches_fp32_math_forward_and_backward(kind, k_name, causal, heads):
    kind(k_name)
    q, k, v = inputs(H=heads[0], Hkv=heads[1])
    out = S.flash_attn_func(q, k, v, softmax_scale=0.3, causal=causal)
    assert isinstance(out, torch.Tensor) and out.shape == q.shape and out.is_contiguous()  # FA3: out alone
    leaves = [t.detach().double().requires_grad_() for t in (q, k, v)]
    ref = reference(*leaves, 0.3, causal)
    assert rel(out, ref) < FP32_TOL
    dy = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), dy)
    ref_grads = torch.autograd.grad(ref, leaves, dy.double())
    for got, want in zip(grads, ref_grads):
        assert rel(got, want) < FP32_TOL


def test_dense_default_scale_is_one_over_sqrt_head_dim(kind):
    kind("math")
    q, k, v = inputs(grad=False, D=16)
    assert rel(S.flash_attn_func(q, k, v, causal=True), reference(q, k, v, 16 ** -0.5, True)) < FP32_TOL
    assert rel(S.flash_attn_func(q, k, v, causal=True), reference(q, k, v, 0.3, True)) > 1e-2  # the scale matters


@pytest.mark.parametrize("k_name", ["math", "flash", "flex"])
@pytest.mark.parametrize("tq,tk", [(40, 40), (17, 40), (40, 17)])
def test_dense_causal_is_aligned_bottom_right_as_fa3(kind, k_name, tq, tk):
    kind(k_name)
    q, k, v = inputs(Tq=tq, Tk=tk, grad=False)
    with torch.no_grad():  # flex: forward only on the CPU
        out = S.flash_attn_func(q, k, v, softmax_scale=0.25, causal=True)
    assert rel(out, reference(q, k, v, 0.25, True)) < FP32_TOL
    if tq > tk:
        assert out[:, : tq - tk].abs().max() == 0  # queries that see no key: zeros, as FA3 gives them


def test_dense_backward_has_no_nan_when_queries_see_no_key(kind):
    kind("math")
    q, k, v = inputs(Tq=30, Tk=10)
    S.flash_attn_func(q, k, v, causal=True).sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))
    assert q.grad[:, :20].abs().max() == 0


def test_return_attn_probs_gives_out_and_lse(kind):
    kind("math")
    q, k, v = inputs(grad=False)
    out, lse = S.flash_attn_func(q, k, v, softmax_scale=0.3, causal=True, return_attn_probs=True)
    assert lse.shape == (2, 4, 40) and lse.dtype == torch.float32
    s = torch.einsum("bqhd,bkhd->bhqk", q.double(), k.double().repeat_interleave(2, 2)) * 0.3
    s = s.masked_fill(torch.ones(40, 40, dtype=torch.bool).triu(1), float("-inf"))
    assert torch.allclose(lse.double(), s.logsumexp(-1), atol=1e-5)
    assert rel(out, reference(q, k, v, 0.3, True)) < FP32_TOL


def test_bad_heads_and_unsupported_features_are_refused_by_name(kind):
    kind("math")
    q, k, v = inputs(H=4, Hkv=3, grad=False)
    with pytest.raises(ValueError, match="must divide the number of heads in query"):
        S.flash_attn_func(q, k, v)
    q, k, v = inputs(grad=False)
    for kwargs, name in (({"window_size": (64, 0)}, "window_size"), ({"softcap": 15.0}, "softcap"),
                         ({"qv": q}, "qv")):
        with pytest.raises(NotImplementedError, match=name):
            S.flash_attn_func(q, k, v, causal=True, **kwargs)
    S.flash_attn_func(q, k, v, causal=True, window_size=(-1, -1), num_splits=4, pack_gqa=True, deterministic=True)


# ---- flash_attn_varlen_func -----------------------------------------------------------------------------------

# five documents of unequal length (one of a single token), then a padded tail of empty documents as the varlen
# records build cu_seqlens (repeats of the last entry), and 6 rows after the last document
CU = torch.tensor([0, 7, 8, 30, 51, 64, 64, 64], dtype=torch.int32)
TOTAL = 70


def packed(grad=True, H=4, Hkv=2, D=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    mk = lambda h: torch.randn(TOTAL, h, D, generator=g).requires_grad_(grad)  # noqa: E731
    return mk(H), mk(Hkv), mk(Hkv)


@pytest.mark.parametrize("k_name", ["math", "flash"])
@pytest.mark.parametrize("causal", [True, False])
def test_varlen_per_document_matches_each_document_alone(kind, k_name, causal):
    kind(k_name)
    q, k, v = packed()
    assert S.varlen_path(k_name, q, k, v) == "per_document"  # on the CPU with gradients: flex has no backward
    out = S.flash_attn_varlen_func(q, k, v, CU, CU, 22, 22, softmax_scale=0.3, causal=causal)
    assert isinstance(out, torch.Tensor) and out.shape == q.shape
    leaves = [t.detach().double().requires_grad_() for t in (q, k, v)]
    ref = varlen_reference(*leaves, CU, 0.3, causal)
    assert rel(out, ref) < FP32_TOL and out[64:].abs().max() == 0
    dy = torch.randn_like(out)
    for got, want in zip(torch.autograd.grad(out, (q, k, v), dy), torch.autograd.grad(ref, leaves, dy.double())):
        assert rel(got, want) < FP32_TOL


@pytest.mark.parametrize("causal", [True, False])
def test_varlen_flex_document_mask_matches_each_document_alone(kind, causal):
    q, k, v = packed(grad=False)
    kind("flash")
    assert S.varlen_path("flash", q, k, v) == "flex"  # no gradient asked: flex runs on the CPU
    assert S.varlen_path("math", q, k, v) == "per_document"  # the reference kind stays exact and simple
    with torch.no_grad():
        out = S.flash_attn_varlen_func(q, k, v, CU, CU, 22, 22, softmax_scale=0.3, causal=causal)
        forced = S.varlen_attention(q, k, v, CU, CU, 0.3, causal, "flash", "flex")
    ref = varlen_reference(q, k, v, CU, 0.3, causal)
    assert rel(out, ref) < FP32_TOL and rel(forced, ref) < FP32_TOL
    assert out[64:].abs().max() == 0


def test_varlen_paths_agree_with_each_other_and_with_dense_for_one_document(kind):
    kind("math")
    q, k, v = packed(grad=False)
    with torch.no_grad():
        a = S.varlen_attention(q, k, v, CU, CU, 0.3, True, "math", "per_document")
        b = S.varlen_attention(q, k, v, CU, CU, 0.3, True, "math", "flex")
        one = torch.tensor([0, TOTAL], dtype=torch.int32)
        whole = S.flash_attn_varlen_func(q, k, v, one, one, TOTAL, TOTAL, softmax_scale=0.3, causal=True)
        dense = S.flash_attn_func(q[None], k[None], v[None], softmax_scale=0.3, causal=True)[0]
    assert rel(a, b) < FP32_TOL
    assert rel(whole, dense) < FP32_TOL
    assert rel(a, whole) > 1e-2  # the document mask matters


def test_varlen_bottom_right_with_unequal_q_and_k_documents(kind):
    """Different q and k lengths per document (decoding against a cache): each aligned bottom-right."""
    kind("math")
    g = torch.Generator().manual_seed(3)
    cu_q, cu_k = torch.tensor([0, 3, 10], dtype=torch.int32), torch.tensor([0, 9, 14], dtype=torch.int32)
    q, k, v = torch.randn(10, 4, 8, generator=g), torch.randn(14, 2, 8, generator=g), torch.randn(14, 2, 8, generator=g)
    want = torch.cat([reference(q[None, 0:3], k[None, 0:9], v[None, 0:9], 0.5, True)[0],
                      reference(q[None, 3:10], k[None, 9:14], v[None, 9:14], 0.5, True)[0]])
    for path in ("per_document", "flex"):
        with torch.no_grad():
            got = S.varlen_attention(q, k, v, cu_q, cu_k, 0.5, True, "math", path)
        assert rel(got, want) < FP32_TOL, path


def test_varlen_lse_per_document(kind):
    kind("math")
    q, k, v = packed(grad=False)
    out, lse = S.flash_attn_varlen_func(q, k, v, CU, CU, 22, 22, causal=True, return_attn_probs=True)
    assert lse.shape == (4, TOTAL) and torch.isinf(lse[:, 64:]).all()
    a, b = 8, 30  # the third document, alone
    s = torch.einsum("qhd,khd->hqk", q[a:b].double(), k[a:b].double().repeat_interleave(2, 1)) * 16 ** -0.5
    s = s.masked_fill(torch.ones(b - a, b - a, dtype=torch.bool).triu(1), float("-inf"))
    assert torch.allclose(lse[:, a:b].double(), s.logsumexp(-1), atol=1e-5)


def test_varlen_refuses_seqused(kind):
    kind("math")
    q, k, v = packed(grad=False)
    with pytest.raises(NotImplementedError, match="seqused_k"):
        S.flash_attn_varlen_func(q, k, v, CU, CU, 22, 22, seqused_k=torch.ones(7, dtype=torch.int32))


# ---- torch.compile(fullgraph=True) ---------------------------------------------------------------------------

def test_dense_shim_traces_into_one_graph(kind):
    """The records compile their model with fullgraph=True around flash_attn_func: no graph break allowed."""
    kind("math")
    q, k, v = inputs()
    fn = torch.compile(lambda q, k, v: S.flash_attn_func(q, k, v, causal=True), fullgraph=True, backend="aot_eager")
    out = fn(q, k, v)
    assert rel(out, reference(q, k, v, 16 ** -0.5, True)) < FP32_TOL
    out.sum().backward()
    assert torch.isfinite(q.grad).all()


# ---- choosing and installing ----------------------------------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU rules")
def test_resolve_on_the_cpu(monkeypatch):
    with pytest.warns(GolfprofWarning, match="math kernel"):
        assert S.resolve_kind("auto")[0] == "math"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert S.resolve_kind("flash") == ("flash", "")  # SDPA's CPU flash kernel runs here
        assert S.resolve_kind("math") == ("math", "")
    for name in ("cudnn", "flex"):
        with pytest.warns(GolfprofWarning, match=f"kind {name} unavailable"):
            got, why = S.resolve_kind(name)
        assert got == "math" and "no CUDA device" in why
    with pytest.raises(ConfigError, match="valid: auto, cudnn, flash, flex, math"):
        S.resolve_kind("fa2")


def test_install_here_and_in_a_child_process(kind, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    monkeypatch.delenv(S.ENV, raising=False)
    monkeypatch.delitem(sys.modules, S.MODULE, raising=False)
    got = S.install("math", folder=tmp_path / "shim")
    assert got == "fa3-shim/math"
    import flash_attn_interface

    assert flash_attn_interface.flash_attn_func is S.flash_attn_func
    assert flash_attn_interface.flash_attn_varlen_func is S.flash_attn_varlen_func
    record = json.loads(os.environ[S.ENV])
    assert record["attention"] == "fa3-shim/math" and record["requested"] == "math"
    code = ("import flash_attn_interface as f, torch; q = torch.randn(1, 8, 2, 4); "
            "print(f.GOLFPROF_SHIM, f.flash_attn_func(q, q, q, causal=True).shape)")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           cwd=tmp_path, env=os.environ.copy())
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["fa3-shim/math", "torch.Size([1,", "8,", "2,", "4])"]


def test_install_auto_in_a_subprocess_names_what_runs(tmp_path):
    code = ("import subprocess, sys; from golfprof.model.fa3_shim import install; print(install('auto')); "
            "sys.stdout.flush(); subprocess.run([sys.executable, '-c', 'import flash_attn_interface as f; "
            "print(f.GOLFPROF_SHIM, f.__file__)'], check=True)")
    env = {k: v for k, v in os.environ.items() if k != S.ENV}
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                           env=env)
    assert child.returncode == 0, child.stderr
    lines = child.stdout.split("\n")
    expected = "fa3-shim/math" if not torch.cuda.is_available() else lines[0]
    assert lines[0] == expected and lines[0].startswith("fa3-shim/")
    label, path = lines[1].split()
    assert label == lines[0] and "golfprof-fa3-shim-" in path
    assert not os.path.exists(path)  # the temporary folder went with the process that made it


def test_install_refuses_a_file_as_its_folder(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        S.install("math", folder=f)


def test_varlen_flex_path_traces_into_one_graph(kind):
    """The varlen records compile around flash_attn_varlen_func too: the document mask is built inside the graph."""
    kind("flash")
    q, k, v = packed(grad=False)
    fn = torch.compile(lambda q, k, v, cu: S.flash_attn_varlen_func(q, k, v, cu, cu, 22, 22, causal=True),
                       fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        out = fn(q, k, v, CU)
    assert rel(out, varlen_reference(q, k, v, CU, 16 ** -0.5, True)) < FP32_TOL
