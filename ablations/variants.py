"""Named variants: each is a set of systems toggles on top of the record's baseline."""

from __future__ import annotations

from typing import Any

from golfprof.model.config import ConfigError, Toggles, replace
from golfprof.results import BASELINE  # noqa: F401 - the variants are defined relative to it

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "explicit_banks": ("the record: 4 banks, Parallel Muon (reduce-scatter / NS5 / all-gather), "
                       "bf16 casts, compiled", {}),
    "ddp_banks": ("DDP over the whole model incl. banks; every rank runs Muon on every bank",
                  {"comm": "ddp"}),
    "ddp_whole_graph": ("DDP over the banks with one compiled graph (dynamo's DDPOptimizer off): every "
                        "all-reduce after backward", {"comm": "ddp", "ddp_graph": "whole"}),
    "explicit_unbanked": ("66 separate matrices; the explicit schedule stacks them per bank "
                          "(the records' 'non-surgery' batching)", {"layout": "unbanked"}),
    "ddp_unbanked": ("66 separate matrices under DDP; Muon orthogonalizes one matrix at a time",
                     {"layout": "unbanked", "comm": "ddp"}),
    "ddp_round_robin": ("the DDP baseline #399 replaced (parameter-golf #315): 66 matrices under DDP, matrix i "
                        "orthogonalized on rank i mod N, the updates summed by one flat bf16 all-reduce",
                        {"layout": "unbanked", "comm": "ddp", "ddp_muon": "round_robin"}),
    "polar_express": ("Polar Express per-step coefficients instead of the NS5 quintic",
                      {"ortho": "polar_express"}),
    "triton_ortho": ("the orthogonalization through golfprof's Triton kernels (symmetric Gram products, "
                     "fused updates, CUDA graphs) instead of torch's batched matmuls", {"ortho_kernel": "triton"}),
    "triton_polar_express": ("Polar Express through the Triton kernels",
                             {"ortho": "polar_express", "ortho_kernel": "triton"}),
    "no_bf16_casts": (("everything fp32: embeddings, linear weights (no autocast; matmuls on TF32, as in the records), "
                       "momentum, rotary"),
                      {"bf16": ()}),
    "small_first": ("reduce-scatter the smallest bank first (the speedrun's finding)",
                    {"rs_order": "small_first"}),
    "bucketed_replicated": ("one flat all-reduce per dtype for the replicated params instead of one per tensor "
                            "(the later records' grouped small all-reduces: issue 27's small_allreduce=grouped)",
                            {"replicated": "bucketed"}),
    "eager": ("no torch.compile", {"compile": "off"}),
    "packed": ("attention [Wq;Wk;Wv;Wo] and MLP matrices packed to one shape, one reduce-scatter/all-gather "
               "per group, one kind per rank, small groups first (modded-nanogpt #132)",
               {"comm": "packed", "rs_order": "small_first"}),
    "attn_flash": ("attention through SDPA's FlashAttention-2 backend only", {"attention": "flash"}),
    "attn_cudnn": ("attention through SDPA's cuDNN backend only", {"attention": "cudnn"}),
    "attn_flex": ("attention through compiled flex_attention with a causal block mask", {"attention": "flex"}),
    "attn_fa3": ("attention through FlashAttention-3 (flash_attn_interface), as the records run it",
                 {"attention": "fa3"}),
    "vectorized_unbanked": ("66 matrices stacked per shape into one padded reduce-scatter; updated "
                            "parameters all-gathered (modded-nanogpt #125)",
                            {"layout": "unbanked", "comm": "vectorized"}),
    "record_loader": ("the record's synchronous loader: tokens widened to int64 on the CPU and copied from unpinned "
                      "memory inside the step, instead of prefetched and widened on the device", {"loader": "record"}),
    "triton_mlp": ("the LeakyReLU(0.5)² MLP through golfprof's Triton kernels: up-projection and activation fused "
                   "forward, activation gradient fused into the down-projection's backward (parameter-golf's later "
                   "records)", {"mlp_kernel": "triton_fused"}),
    "triton_ce": ("softcap-30 cross-entropy forward and backward in one Triton pass, a custom op with an autograd "
                  "formula, training only (parameter-golf's later records)", {"ce_kernel": "triton_fused"}),
    "fp8_mlp": ("the MLP's forward projections in FP8 (torch._scaled_mm, delayed scaling), the up-projection's input "
                "gradient in FP8, the down-projection's backward in bf16 (modded-nanogpt)", {"fp8": "mlp"}),
    "fp8_mlp_head": ("the MLP's and the LM head's forward projections in FP8 (delayed scaling), the up-projection's "
                     "and head's input gradients in FP8, the rest of backward in bf16 (modded-nanogpt #89)",
                     {"fp8": "mlp_head"}),
    "later_records": ("the later records' systems changes together: fused MLP backward and CE, FP8 MLP and head "
                      "forward, the replicated all-reduces as one flat buffer",
                      {"mlp_kernel": "triton_fused", "ce_kernel": "triton_fused", "fp8": "mlp_head",
                       "replicated": "bucketed"}),
}


# --record-faithful: the banking record's own choices where golfprof's defaults deliberately differ, so that a
# variant's prediction and the record's figures compare like for like. Its attention is FA3; without the package,
# SDPA's cuDNN kernel, the nearest to FA3 on Hopper (the script's own SDPA fallback, flash, is ~11% slower a step
# at world 1 on an H200: ../shared/reference/record_scripts.md); its loader is the synchronous int64 one; its
# orthogonalizer torch's batched matmuls (golfprof's default already).
RECORD_FAITHFUL_FIELDS = ("attention", "loader", "ortho_kernel", "ema")


def record_faithful_choices() -> dict[str, str]:
    """The record's value of each RECORD_FAITHFUL_FIELDS toggle on this machine (its attention: FA3 if installed)."""
    from golfprof.model.attention import fa3_installed

    return {"attention": "fa3" if fa3_installed() else "cudnn", "loader": "record", "ortho_kernel": "torch",
            "ema": "loop"}


def record_faithful(variant: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The toggle overrides with the record's choices added; refused where the variant or an explicit option
    sets one of them (the flag would silently undo what was asked for)."""
    check_variant(name=variant)
    fixed = record_faithful_choices()
    clash = [f for f in RECORD_FAITHFUL_FIELDS if f in VARIANTS[variant][1] or overrides.get(f) is not None]
    if clash:
        who = f"variant {variant}" if any(f in VARIANTS[variant][1] for f in clash) else "the command line"
        raise ConfigError(f"--record-faithful sets {', '.join(clash)}, which {who} also sets: leave one out")
    return {**overrides, **fixed}


# Toggles that only change what ranks exchange: with one process there is nothing to exchange.
COMM_TOGGLES = ("comm", "ddp_graph", "ddp_muon", "rs_order", "replicated", "clip_scope")


def same_code_with_one_process(toggles: dict[str, Toggles],
                               settings: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(variant, twin) pairs that differ only in COMM_TOGGLES, so one process runs identical code:
    a one-GPU `ddp_banks` vs `explicit_banks` is an A/A comparison, and users should be told. ``settings``: each
    name's other settings (model, training); names whose settings differ (a tokens-per-step sweep) are no twins."""
    first: dict[Any, str] = {}
    pairs = []
    for name, t in toggles.items():
        key = (replace(t, **{f: getattr(Toggles(), f) for f in COMM_TOGGLES}), (settings or {}).get(name))
        if key in first:
            pairs.append((name, first[key]))
        else:
            first[key] = name
    return pairs


def comm_differences(a: Toggles, b: Toggles) -> list[str]:
    """The COMM_TOGGLES two twins differ in (none: the same variant settings twice)."""
    return [f for f in COMM_TOGGLES if getattr(a, f) != getattr(b, f)]


def variant_names() -> list[str]:
    return list(VARIANTS)


def check_variant(name: str) -> None:
    if name not in VARIANTS:
        raise ConfigError(f"unknown variant {name!r}; valid: {', '.join(VARIANTS)}")


def resolve(name: str, overrides: dict[str, Any] | None = None) -> Toggles:
    """The variant's toggles, then command-line overrides (None values are ignored)."""
    check_variant(name)
    toggles = replace(Toggles(), **VARIANTS[name][1])
    extra = {k: v for k, v in (overrides or {}).items() if v is not None}
    toggles = replace(toggles, **extra)
    toggles.validate()
    return toggles


def describe(name: str) -> dict[str, Any]:
    """What the variant changes relative to the baseline, for `golfprof variants`."""
    check_variant(name)
    text, changes = VARIANTS[name]
    return {"variant": name, "changes": changes or "(baseline)", "description": text}


def table_rows() -> list[tuple[str, str, str]]:
    """(variant, changes, description) per variant: the rows of `golfprof variants` and the README's table."""
    rows = []
    for name in variant_names():
        d = describe(name)
        changes = d["changes"] if isinstance(d["changes"], str) else ", ".join(
            f"{k}={(','.join(v) or 'none') if isinstance(v, tuple) else v}" for k, v in d["changes"].items())
        rows.append((name, changes, d["description"]))
    return rows


def markdown_table() -> str:
    """`golfprof variants --markdown`: the table the README holds (a test keeps the two equal)."""
    lines = ["| variant | changes | description |", "|---|---|---|"]
    lines += [f"| `{n}` | {c if c == '(baseline)' else f'`{c}`'} | {d} |" for n, c, d in table_rows()]
    return "\n".join(lines)
