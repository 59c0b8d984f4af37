"""golfprof's one error hierarchy: every user-facing failure is a GolfprofError.

Torch-free and import-free, so every package (model, profiler, traces, dashboards, results) can raise
these without importing another package's module. The CLI's one handler (golfprof.cli) prints
``error: <message>`` on one line and exits with ``exit_code``; anything else is a bug and may trace back.
"""

from __future__ import annotations


class GolfprofError(Exception):
    """A failure explained in one line for the user; ``exit_code`` is what the CLI exits with."""

    exit_code = 2


class ConfigError(GolfprofError, ValueError):
    """A bad option, preset, variant, metric or file argument: refused before any process starts."""


class ShardError(ConfigError):
    """A missing or malformed data shard; the message names the file."""


class TraceError(GolfprofError, ValueError):
    """A trace or set of traces that cannot be analysed as asked (bad file, mixed runs, no phases)."""


class DashboardError(GolfprofError, ValueError):
    """Dashboard input that cannot be drawn (no runs found, unreadable run, bad option)."""


class Interrupted(GolfprofError):
    """Ctrl-C (or SIGTERM) stopped a run; the message says what, which folder is incomplete and how to resume.

    Exit 130, as a shell reports a process ended by SIGINT; the CLI prints it as ``interrupted: <message>``.
    """

    exit_code = 130


class GolfprofWarning(UserWarning):
    """Something the user should know that does not stop the run (a fallback, a noisy figure).

    Library code raises these through :func:`warnings.warn`, never prints; :func:`show_warnings` is how
    the CLI (and each spawned rank) shows them: one ``warning:`` line on stderr.
    """


def show_warnings() -> None:
    """Print GolfprofWarnings as ``warning: <message>`` lines (others keep Python's format), each once."""
    import sys
    import warnings

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - warnings' signature
        if issubclass(category, GolfprofWarning):
            print(f"warning: {message}", file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    warnings.simplefilter("default", GolfprofWarning)
