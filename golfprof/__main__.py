"""``golfprof`` (the console script) and ``python -m golfprof``: the CLI, loaded so that a Ctrl-C while it loads
(torch takes seconds to import) is one ``interrupted:`` line and exit 130, not a KeyboardInterrupt traceback."""

from __future__ import annotations

import sys

from golfprof import interrupts


def main() -> None:
    interrupts.install()  # before the CLI's imports: a Ctrl-C in them is recorded too
    try:
        from golfprof.cli import main as cli
    except KeyboardInterrupt:
        print("interrupted: golfprof stopped by Ctrl-C while starting", file=sys.stderr)
        interrupts.leave(interrupts.EXIT)
    cli()


if __name__ == "__main__":
    main()
