"""``golfprof`` (the console script) and ``python -m golfprof``: the CLI, loaded so that a Ctrl-C while it loads
(torch takes seconds to import) is one ``interrupted:`` line and exit 130, not a KeyboardInterrupt traceback."""

from __future__ import annotations

import os  # both loaded by the interpreter's own start: importing them opens no window for a Ctrl-C
import sys


def main() -> None:
    try:  # the handler's own import is inside: a Ctrl-C before it is installed is Python's KeyboardInterrupt
        from golfprof import interrupts

        interrupts.install()  # before the CLI's imports: a Ctrl-C in them is recorded too
        from golfprof.cli import main as cli
    except KeyboardInterrupt:
        print("interrupted: golfprof stopped by Ctrl-C while starting", file=sys.stderr, flush=True)
        os._exit(130)  # interrupts.EXIT, past the interpreter's exit (interrupts.leave; it may not be loaded yet)
    cli()


if __name__ == "__main__":
    main()
