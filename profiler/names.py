"""Phase names: a stable, documented contract that trace analyses, phase tables and regression
baselines key on. Everything a step does lives under `golfprof/step`. Importing this module
imports no torch.
"""

from __future__ import annotations

PREFIX = "golfprof/"
STEP = "golfprof/step"
DATA = "golfprof/step/data"
FORWARD = "golfprof/step/forward"
BACKWARD = "golfprof/step/backward"
GRAD_CLIP = "golfprof/step/grad_clip"
OPTIMIZER = "golfprof/step/optimizer"
RS_LAUNCH = "golfprof/step/optimizer/reduce_scatter_launch"
REPLICATED_ALLREDUCE = "golfprof/step/optimizer/replicated_allreduce"
ADAM = "golfprof/step/optimizer/adam"
MUON = "golfprof/step/optimizer/muon"
UPDATE_APPLY = "golfprof/step/optimizer/update_apply"
MUON_ALLREDUCE = "golfprof/step/optimizer/muon/all_reduce"  # --ddp-muon round_robin: the updates summed
PLANTED_DELAY = "golfprof/step/optimizer/planted_delay"
EMA = "golfprof/step/ema"

DEFAULT_PHASE_REGEX = r"^golfprof/"
# The group name when one CUDA graph orthogonalizes every bank (ortho_kernel=triton, unsharded).
ALL_BANKS = "all_banks"


# golfprof profile (a foreign script): validation forwards (no grad) between two training steps, inside `data`
EVAL_FORWARD = "golfprof/step/data/eval_forward"


def is_top_level(name: str) -> bool:
    """A phase directly under the step (golfprof/step/<phase>): the phases that tile its marked time."""
    return name.startswith(STEP + "/") and "/" not in name[len(STEP) + 1:]


def optimizer_step(cls_name: str) -> str:
    """One optimizer's step in a foreign script: torch.optim's, or the --step-fn class's."""
    return f"{OPTIMIZER}/{cls_name}"


def bank_wait(bank: str) -> str:
    return f"{MUON}/{bank}/wait"


def bank_orthogonalize(bank: str) -> str:
    return f"{MUON}/{bank}/orthogonalize"


def bank_all_gather(bank: str) -> str:
    return f"{MUON}/{bank}/all_gather"


def documented_phases(banks: list[str], comm: str, world_size: int, one_graph: bool = False,
                      round_robin: bool = False) -> list[str]:
    """Every phase name a step of this schedule emits (tests assert traces carry all of them).
    one_graph: the triton orthogonalizer runs unsharded, all banks under one `ALL_BANKS` phase;
    round_robin: DDP's Muon dealt out over the ranks; a bank's orthogonalize phase then appears only on the ranks
    that own matrices of it, so it is not listed."""
    names = [STEP, DATA, FORWARD, BACKWARD, GRAD_CLIP, OPTIMIZER, ADAM, MUON, UPDATE_APPLY, EMA]
    distributed = world_size > 1
    if distributed:
        names.append(REPLICATED_ALLREDUCE)
    if distributed and comm == "ddp" and round_robin:
        return names + [MUON_ALLREDUCE]
    if distributed and comm == "explicit":
        names.append(RS_LAUNCH)
        for b in banks:
            names += [bank_wait(b), bank_orthogonalize(b), bank_all_gather(b)]
    else:
        names += [bank_orthogonalize(b) for b in ([ALL_BANKS] if one_graph else banks)]
    return names
