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


class Diverged(GolfprofError):
    """Training produced a non-finite loss: a failed run (exit 1), said in one line with the step."""

    exit_code = 1


class Interrupted(GolfprofError):
    """Ctrl-C (or SIGTERM) stopped a run; the message says what, which folder is incomplete and how to resume.

    Exit 130, as a shell reports a process ended by SIGINT; the CLI prints it as ``interrupted: <message>``.
    """

    exit_code = 130


class Terminated(Interrupted):
    """SIGTERM or SIGHUP (a scheduler, ``timeout``, a CI cancel) stopped a run: worded as Ctrl-C is, and exit
    128 + the signal, as a shell reports a process that signal ended."""

    exit_code = 143

    def __init__(self, message: str, signum: int = 15) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


def os_error_message(e: OSError) -> str:
    """``<path>: <reason>`` for an operating-system failure (read-only or full file system, no permission, a
    closed stream): what the CLI prints, exit 1, instead of a traceback."""
    reason = e.strerror or str(e) or type(e).__name__
    paths = [str(p) for p in (e.filename, e.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


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


class _Stdout:
    """sys.stdout that never stops the work: a write that fails is dropped, and so is all later output.

    A closed pipe (``golfprof ablate ... | head -1``) is not an error: the reader wanted no more, so the
    matrix runs to its end and the exit status is the work's. Any other failure (a full device) is kept and
    reported once the command is done (:func:`stdout_failure`), since output the user asked for was lost.
    """

    def __init__(self, inner) -> None:  # noqa: ANN001 - any text stream
        self._inner = inner
        self.failure: OSError | None = None
        self.broken = False

    def _guard(self, call, *args):  # noqa: ANN001, ANN202
        if self.broken:
            return None
        try:
            return call(*args)
        except OSError as e:
            self._drop(e)
            return None

    def _drop(self, e: OSError) -> None:
        import errno
        import os

        self.broken = True
        if e.errno != errno.EPIPE and self.failure is None:
            self.failure = e
        try:  # nothing is left to flush at exit, so the interpreter has nothing to complain about
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, self._inner.fileno())
            os.close(fd)
        except (OSError, ValueError, AttributeError):
            pass

    def write(self, text: str) -> int:
        self._guard(self._inner.write, text)
        return len(text)

    def flush(self) -> None:
        self._guard(self._inner.flush)

    def isatty(self) -> bool:
        return not self.broken and bool(self._guard(self._inner.isatty))

    def __getattr__(self, name: str):  # noqa: ANN204 - encoding, fileno, buffer, ... as the stream has them
        return getattr(self._inner, name)


def guard_stdout() -> None:
    """Install the guarded stdout (idempotent); the CLI and every spawned rank call it first. A closed stdout
    (``golfprof ... >&-``) reads as a closed pipe: descriptor 1 goes to the null device, so no pipe or file
    golfprof opens later takes its number (a child would write its output there)."""
    import os
    import sys

    try:
        os.fstat(1)
    except OSError:
        fd = os.open(os.devnull, os.O_WRONLY)
        if fd != 1:
            os.dup2(fd, 1)
            os.close(fd)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - the process's stdout, for its whole life
    if sys.stdout is not None and not isinstance(sys.stdout, _Stdout):
        sys.stdout = _Stdout(sys.stdout)


def stdout_failure() -> str | None:
    """After the command: flush what is left; the message of a stdout write that failed other than on a closed
    pipe (``<stdout>: No space left on device``), else None."""
    import sys

    out = sys.stdout
    if not isinstance(out, _Stdout):
        return None
    out.flush()
    e = out.failure
    if e is None:
        return None
    return os_error_message(OSError(e.errno, e.strerror, getattr(out._inner, "name", "<stdout>")))


def finish_stdout(code: int | str | None) -> int | str | None:
    """The exit status once the command is done: a lost stdout write (other than to a closed pipe) is one
    ``error:`` line, and exit 1 where the work itself succeeded."""
    import sys

    failure = stdout_failure()
    if failure is None:
        return code
    print(f"error: {failure}", file=sys.stderr)
    return code if code not in (0, None) else 1
