"""Entry point of each spawned rank: `python -m golfprof.ablations.worker SPEC.json`.

The heartbeat starts before the heavy imports (torch), so a launcher watching the rank sees its start-up as
progress and a rank that hangs there as stuck.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

from golfprof.errors import guard_stdout, os_error_message, show_warnings

from . import watchdog
from .ownership import guard_rank


def main(argv: list[str]) -> int:
    guard_rank()  # first: a rank must not outlive its job (kill -9 of golfprof, or of torchrun)
    rank = int(os.environ.get("RANK", "0"))
    watchdog.start_heartbeat(rank)
    show_warnings()
    guard_stdout()  # a closed pipe on stdout (`golfprof ablate | head -1`) never stops a rank
    try:
        from golfprof import faults
        from golfprof.model.train import DistInfo

        from .launch import launched_env, run_joined
        from .run import RunSpec

        spec = RunSpec(**json.loads(open(argv[1]).read()))
        info = launched_env() or DistInfo()
        rank = info.rank
        faults.at_rank_start(rank)
        run_joined(spec, info)
        faults.after_run(rank)
    except Exception as e:  # one line for the launcher; the full traceback stays in the rank's log
        traceback.print_exc()
        why = os_error_message(e) if isinstance(e, OSError) else f"{type(e).__name__}: {e}"
        print(f"golfprof-error: rank {rank}: {why}".splitlines()[0], file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
