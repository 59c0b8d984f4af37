"""Entry point of each spawned rank: `python -m golfprof.ablations.worker SPEC.json`."""

from __future__ import annotations

import json
import sys
import traceback

from golfprof import faults
from golfprof.errors import show_warnings
from golfprof.model.train import DistInfo

from .launch import launched_env, run_joined
from .ownership import guard_rank
from .run import RunSpec


def main(argv: list[str]) -> int:
    guard_rank()  # first: a rank must not outlive its job (kill -9 of golfprof, or of torchrun)
    show_warnings()
    spec = RunSpec(**json.loads(open(argv[1]).read()))
    info = launched_env() or DistInfo()
    rank = info.rank
    try:
        faults.at_rank_start(rank)
        run_joined(spec, info)
    except Exception as e:  # one line for the launcher; the full traceback stays in the rank's log
        traceback.print_exc()
        print(f"golfprof-error: rank {rank}: {type(e).__name__}: {e}".splitlines()[0], file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
