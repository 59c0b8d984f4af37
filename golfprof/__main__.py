"""``golfprof`` (the console script) and ``python -m golfprof``: the CLI, loaded so that a Ctrl-C while it loads
(torch takes seconds to import) is one ``interrupted:`` line and exit 130, not a KeyboardInterrupt traceback."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from golfprof.cli import main as cli
    except KeyboardInterrupt:
        print("interrupted: golfprof stopped by Ctrl-C while starting", file=sys.stderr)
        raise SystemExit(130) from None
    cli()


if __name__ == "__main__":
    main()
