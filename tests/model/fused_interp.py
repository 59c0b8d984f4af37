"""One Triton-interpreter subprocess for the fused MLP and cross-entropy tests (startup costs seconds, paid once).

TRITON_INTERPRET=1 must be set before triton is imported, so the kernels run in a fresh interpreter; it
measures every figure the tests assert on and prints them as one JSON line. `results()` runs it once per
test session (`start()` earlier, in the background).
"""

from __future__ import annotations

import json
import sys
import textwrap
from functools import lru_cache

from tests.background import Background

# Steps of the tiny preset the loss-curve test trains with the toggles on and off.
CURVE_STEPS = 5

_SCRIPT = textwrap.dedent(r"""
    import json, math, os, sys, tempfile
    assert os.environ["TRITON_INTERPRET"] == "1"
    import torch, torch.nn.functional as F
    from golfprof.model import ce_triton as CT, mlp_triton as MT

    def rel(a, b):
        return ((a.double() - b.double()).norm() / b.double().norm()).item()

    gen = torch.Generator().manual_seed(7)
    res = {}
    import time
    t0 = time.perf_counter()
    lap = lambda name: res.setdefault("seconds", {}).__setitem__(name, round(time.perf_counter() - t0, 2))

    def mlp_case(name, M, d, Fd, slope, layout):
        # banked: the weights are slices of a 3-D bank (views); unbanked: their own 2-D parameters
        h = torch.randn(M, d, generator=gen).bfloat16().requires_grad_()
        if layout == "banked":
            up_bank = (torch.randn(3, Fd, d, generator=gen) / d ** .5).requires_grad_()
            down_bank = (torch.randn(3, d, Fd, generator=gen) / Fd ** .5).requires_grad_()
            wu, wd, params = up_bank[1], down_bank[1], (h, up_bank, down_bank)
        else:
            wu = (torch.randn(Fd, d, generator=gen) / d ** .5).requires_grad_()
            wd = (torch.randn(d, Fd, generator=gen) / Fd ** .5).requires_grad_()
            params = (h, wu, wd)
        probe = torch.randn(M, d, generator=gen)
        out = MT.mlp(h, wu.bfloat16(), wd.bfloat16(), slope)
        (out.float() * probe).sum().backward()
        fused = [p.grad.clone() for p in params]
        for p in params:
            p.grad = None
        # the reference: what GPT._mlp computes, in float64 on the same bf16-rounded operands
        h64, wu64, wd64 = (t.detach().bfloat16().double() for t in (h, wu, wd))
        h64.requires_grad_(); wu64.requires_grad_(); wd64.requires_grad_()
        ref = F.linear(F.leaky_relu(F.linear(h64, wu64), slope).square(), wd64)
        (ref * probe.double()).sum().backward()
        grads = {"h": rel(fused[0], h64.grad), "wup": rel(fused[1][1] if layout == "banked" else fused[1], wu64.grad),
                 "wdown": rel(fused[2][1] if layout == "banked" else fused[2], wd64.grad)}
        others = [] if layout != "banked" else [float(fused[1][0].abs().max()), float(fused[2][2].abs().max())]
        res[name] = {"out": rel(out, ref), "grads": grads, "other_slices_grad_max": others,
                     "finite": bool(torch.isfinite(out).all())}

    mlp_case("mlp_banked", 200, 32, 96, 0.5, "banked")      # rows and columns off the tile edges
    mlp_case("mlp_unbanked", 128, 64, 192, 0.5, "unbanked")
    mlp_case("mlp_relu2", 96, 32, 96, 0.0, "unbanked")

    for name, dtype, R, V in (("ce_fp32", torch.float32, 150, 1000), ("ce_bf16", torch.bfloat16, 64, 64)):
        z = (torch.randn(R, V, generator=gen) * 25).to(dtype).requires_grad_()   # past the softcap's knee
        t = torch.randint(0, V, (R,), generator=gen)
        loss = CT.cross_entropy(z, t, 30.0)
        (2.5 * loss).backward()
        dz = z.grad.clone()
        z64 = z.detach().double().requires_grad_()
        ref = F.cross_entropy(30.0 * torch.tanh(z64 / 30.0), t)
        (2.5 * ref).backward()
        res[name] = {"loss_abs": abs(loss.item() - ref.item()), "loss": ref.item(), "grad": rel(dz, z64.grad)}

    lap("kernels")
    # kept whole by torch.compile(fullgraph=True): fake tensors and the autograd formulas trace (aot_eager: no C++)
    h = torch.randn(64, 32, generator=gen).bfloat16().requires_grad_()
    wu = (torch.randn(96, 32, generator=gen) / 6).bfloat16().requires_grad_()
    wd = (torch.randn(32, 96, generator=gen) / 10).bfloat16().requires_grad_()
    z = torch.randn(64, 64, generator=gen).requires_grad_()
    t = torch.randint(0, 64, (64,), generator=gen)
    step = lambda: MT.mlp(h, wu, wd, 0.5).float().square().mean() + CT.cross_entropy(z, t, 30.0)
    eager = step()
    eager.backward()
    g_eager = [p.grad.clone() for p in (h, wu, wd, z)]
    for p in (h, wu, wd, z):
        p.grad = None
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")()
    compiled.backward()
    res["compiled"] = {"loss": abs(compiled.item() - eager.item()),
                       "grads": max(rel(p.grad, g) for p, g in zip((h, wu, wd, z), g_eager))}

    lap("compiled")
    # the tiny preset's loss curve with every toggle's kernel forced on (the interpreter is no GPU)
    from golfprof.model import train as TR
    from golfprof.model.config import TINY_MODEL, TINY_TRAIN, RunConfig, Toggles, replace
    from golfprof.model.data import DistributedLoader
    from golfprof.model.kernel_choice import Kernels
    from golfprof.model.synthetic import write_synthetic_dataset

    steps = int(sys.argv[1])
    tmp = tempfile.mkdtemp()
    paths = write_synthetic_dataset(tmp, TINY_MODEL.vocab_size, steps * TINY_TRAIN.tokens_per_step + 1,
                                    TINY_TRAIN.val_tokens, seed=0)
    # one micro-batch a step (the interpreter launches each kernel in ~0.05 s; the tiny preset has 6 a step)
    train = replace(TINY_TRAIN, steps=steps, tokens_per_step=TINY_TRAIN.seq_len * TINY_TRAIN.micro_batch_seqs)
    curves = {}
    for name, kernels in (("reference", Kernels()), ("fused", Kernels("triton_fused", "triton_fused", "off")),
                          ("fused_fp8", Kernels("triton_fused", "triton_fused", "mlp_head"))):
        TR.resolve_kernels = lambda toggles, device, k=kernels: k
        run = RunConfig("tiny", TINY_MODEL, train, Toggles(compile="off"), name)
        trainer = TR.Trainer(run, torch.device("cpu"))
        loader = DistributedLoader(paths["train"], train.seq_len, train.micro_batch_seqs, trainer.grad_accum)
        curves[name] = [float(trainer.step(s, loader)) for s in range(steps)]
        lap(name)
    res["curves"] = curves
    print("RESULT" + json.dumps(res))
""")


# tests/conftest.py starts it while the suite runs single-process tests: it is one core's work, and those leave the
# other core idle
_job = Background(lambda: [[sys.executable, "-c", _SCRIPT, str(CURVE_STEPS)]], timeout=300)
start, wait, stop = _job.start, _job.wait, _job.stop


@lru_cache(maxsize=1)
def results() -> dict:
    """The subprocess's measurements."""
    wait()
    code, stdout, stderr = _job.done[0]
    assert code == 0, stderr[-4000:]
    line = next(ln for ln in stdout.splitlines() if ln.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])
