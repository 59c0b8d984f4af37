"""The replica's compiled graph is the record's: what torch.compile hands inductor decides the kernels it writes.

`golfprof diff --kernel-names full` of the record's script against the replica on an H200 found inductor fusing
RoPE's backward into other kernels in the replica (+16.7 ms a step, issue 25). Two graph differences caused it: one
pair of rotary tables shared by every layer (the graph's CSE merged the layers' `-sin` into one node, where the
record caches a pair on every layer) and an fp32 softcap (the record softcaps the head's bf16 output). These tests
capture the forward and backward graphs aot_autograd gives inductor (its decompositions and partitioner, on the
CPU under bf16 autocast) and check those forms; where the record's script is on disk (benchmarks/device/
record_scripts, fetched, not committed), its graphs are captured too and must hold the same operations.
"""

from __future__ import annotations

import collections
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from golfprof.model.config import ModelConfig
from golfprof.model.gpt import GPT

RECORD = Path(__file__).resolve().parents[2] / "benchmarks/device/record_scripts/banking/train_gpt.py"
# Small dims, the record's structure: encoder and decoder layers with skips, partial RoPE, XSA on the last 2,
# value embeddings on the last two layers (ve_dim differs from the kv width, so both sides project), T past the
# 1024 tokens the record builds RoPE for (its tables are then fp32).
V, L, D, H, KV, T, ROPE, XSA = 128, 5, 64, 4, 2, 1088, 8, 2
CFG = ModelConfig(vocab_size=V, num_layers=L, model_dim=D, num_heads=H, num_kv_heads=KV, rope_dims=ROPE,
                  xsa_last_n=XSA, bigram_buckets=256, bigram_dim=32, ve_dim=16, ve_layers=(L - 2, L - 1),
                  rope_train_seq_len=1024)


def capture(model: torch.nn.Module, prepare: Any) -> dict[str, torch.fx.GraphModule]:
    """The forward and backward graphs inductor would compile for one training step of `model`."""
    from torch._dynamo.backends.common import aot_autograd
    from torch._functorch.partitioners import min_cut_rematerialization_partition
    from torch._inductor.decomposition import select_decomp_table

    graphs: dict[str, torch.fx.GraphModule] = {}

    def keep(part: str) -> Any:
        def compiler(gm: torch.fx.GraphModule, _: Any) -> Any:
            graphs[part] = gm
            return gm.forward
        return compiler

    backend = aot_autograd(fw_compiler=keep("fw"), bw_compiler=keep("bw"), decompositions=select_decomp_table(),
                           partition_fn=min_cut_rematerialization_partition)
    g = torch.Generator().manual_seed(0)
    ids, targets = torch.randint(0, V, (1, T), generator=g), torch.randint(0, V, (1, T), generator=g)
    torch._dynamo.reset()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        prepare(model, ids)
        loss = torch.compile(model, backend=backend, fullgraph=True, dynamic=False)(ids, targets)
    loss.backward()
    torch._dynamo.reset()
    return graphs


def ops(gm: torch.fx.GraphModule) -> collections.Counter[str]:
    return collections.Counter(str(n.target) for n in gm.graph.nodes if n.op == "call_function")


def replica_graphs() -> dict[str, torch.fx.GraphModule]:
    model = GPT(CFG, bf16_embeddings=True, bf16_rotary=True)
    return capture(model, lambda m, ids: m.rotary(ids.size(1), ids.device))


@pytest.fixture(scope="module")
def replica() -> dict[str, torch.fx.GraphModule]:
    return replica_graphs()


def test_every_layer_has_its_own_rotary_tables(replica: dict[str, torch.fx.GraphModule]) -> None:
    tables = [n for n in replica["fw"].graph.nodes if n.op == "placeholder"
              and tuple(n.meta["val"].shape) == (1, T, 1, ROPE // 2)]
    assert len(tables) == 2 * L  # a cos and a sin per layer, as the record's per-layer Rotary caches
    assert all(n.meta["val"].dtype == torch.float32 for n in tables)  # cast to q's dtype inside the graph
    # one `-sin` per layer; with a pair shared by all layers the graph's CSE left one for the whole model
    assert ops(replica["fw"])["aten.neg.default"] >= L


def test_the_softcap_runs_in_the_heads_dtype(replica: dict[str, torch.fx.GraphModule]) -> None:
    tanh = [n for n in replica["fw"].graph.nodes if n.target == torch.ops.aten.tanh.default]
    assert len(tanh) == 1 and tanh[0].meta["val"].dtype == torch.bfloat16


def test_rope_off_the_bf16_casts_rotates_in_fp32() -> None:
    model = GPT(CFG, bf16_embeddings=True, bf16_rotary=False)
    q = torch.randn(1, 8, H, CFG.head_dim).bfloat16()
    cos, sin = model.rotary(8, q.device)[0]
    graphs = capture(model, lambda m, ids: m.rotary(ids.size(1), ids.device))
    assert cos.dtype == torch.float32 and sin.dtype == torch.float32
    negs = [n for n in graphs["fw"].graph.nodes if n.target == torch.ops.aten.neg.default]
    assert negs and all(n.meta["val"].dtype == torch.float32 for n in negs)


def _record_module() -> types.ModuleType:
    """The record's script as a module, its FA3 import answered by golfprof's shim (model/fa3_shim.py, the one
    `golfprof profile --attention-shim` installs for the script's GPU runs), no tokenizer."""
    from golfprof.model import fa3_shim

    saved = {name: sys.modules.get(name) for name in ("flash_attn_interface", "sentencepiece")}
    sys.modules["flash_attn_interface"] = fa3_shim  # type: ignore[assignment]
    sys.modules["sentencepiece"] = types.ModuleType("sentencepiece")
    try:
        import importlib.util

        spec = importlib.util.spec_from_file_location("record_train_gpt", RECORD)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


@pytest.mark.skipif(not RECORD.is_file(), reason=f"the record's script is not at {RECORD} (fetched, not committed)")
def test_the_record_compiles_the_same_operations(replica: dict[str, torch.fx.GraphModule]) -> None:
    from golfprof.model import fa3_shim

    R = _record_module()
    kind = fa3_shim.label().removeprefix(fa3_shim.LABEL_PREFIX)
    fa3_shim.configure("flash")  # the kernel the replica's sdpa picks on the CPU: one attention kernel both sides
    torch.manual_seed(0)
    m = R.GPT(vocab_size=V, num_layers=L, model_dim=D, num_heads=H, num_kv_heads=KV, mlp_mult=3, tie_embeddings=True,
              tied_embed_init_std=0.005, logit_softcap=30.0, rope_base=10000.0, qk_gain_init=1.5,
              bigram_vocab_size=256, bigram_dim=32, xsa_last_n=XSA, rope_dims=ROPE, ln_scale=True, ve_enabled=True,
              ve_dim=16, ve_layers=f"{L - 2},{L - 1}").bfloat16()
    for bank in ("qo_bank", "kv_bank", "mlp_up_bank", "mlp_down_bank"):  # the record's main(): banks in fp32
        getattr(m, bank).data = getattr(m, bank).data.float()
    for module in m.modules():  # and its CastedLinear weights (the bigram and value-embedding projections)
        if isinstance(module, R.CastedLinear):
            module.float()
    R.restore_low_dim_params_to_fp32(m)

    def warm(model: torch.nn.Module, ids: torch.Tensor) -> None:
        with torch.no_grad():  # the record's warm-up steps fill each layer's rotary cache
            model(ids, ids)

    try:
        record = capture(m, warm)
    finally:
        fa3_shim.configure(kind)
    for part in ("fw", "bw"):
        a, b = ops(record[part]), ops(replica[part])
        a.pop("aten.view.default", None), b.pop("aten.view.default", None)  # reshapes only, no kernel
        assert a == b, {k: (a[k], b[k]) for k in set(a) | set(b) if a[k] != b[k]}
