"""What the command line asked for, and doing it: a frozen :class:`Config` → the library.

The CLI parsers (typer's in :mod:`ppipe.cli`, the fast one in
:mod:`ppipe.entry`) only build a :class:`Config`; :func:`run_command` does
the rest and returns the exit status. Nothing here imports typer or rich.
"""

from __future__ import annotations

import enum
import os
import signal
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import report
from .errors import ExitStatus, PpipeError
from .graph import Graph

if TYPE_CHECKING:
    from .result import RunResult

#: The environment variable that asks ``ppipe`` for completions (set by the completion scripts).
COMPLETE_VAR = "_PPIPE_COMPLETE"


class DisplayMode(str, enum.Enum):
    """``--display``: when to draw the live view on stderr."""

    AUTO = "auto"  # when stderr is a terminal and not --quiet
    ALWAYS = "always"
    NEVER = "never"


class ProgressMode(str, enum.Enum):
    """``--progress``: status lines for logs when there is no live view."""

    NONE = "none"
    PLAIN = "plain"


@dataclass(frozen=True)
class Config:
    """Everything the command line asked for."""

    pipeline: str
    no_fail: bool = False
    timeout: float | None = None
    kill_after: float = 2.0
    explain: bool = False
    report: str | None = None
    quiet: bool = False
    #: None: count lines when they will be seen (the report or the view shows them).
    lines: bool | None = None
    #: ``auto`` (a view when stderr is a terminal), ``always`` or ``never``.
    display: str = "auto"
    #: ``plain``: a status line every few seconds when there is no view (CI logs).
    progress: str = "none"

    @property
    def shows_view(self) -> bool:
        if self.display == "auto":
            return not self.quiet and sys.stderr is not None and sys.stderr.isatty()
        return self.display == "always"

    @property
    def count_lines(self) -> bool:
        return (self.report is not None or self.shows_view) if self.lines is None else self.lines


def run_command(config: Config) -> int:
    """Does what the command line asked; returns the exit status.

    Errors are printed as ``ppipe: ...`` lines, never tracebacks. When the
    run was interrupted by a signal, the same signal is raised again at the
    end (after the report is written) so that a calling shell sees ppipe
    killed by it and stops a loop, as it would for any other program.
    """
    from .explain import explain
    from .summary import failure_lines
    from .syntax import parse

    graph: Graph | None = None
    try:
        if config.report:
            report.check_destination(config.report)
        graph = parse(config.pipeline)
        if config.explain:
            return _print(explain(graph))
        result = _run(graph, config)
    except PpipeError as error:
        print_error(str(error).splitlines())
        if config.report and not isinstance(error, report.ReportError):
            _write_report(report.build_for_error(config.pipeline, error, graph), config.report)
        return error.status
    if not config.quiet and not config.shows_view:
        print_error(failure_lines(result))
    status = result.exit_status
    if config.report and not _write_report(report.build(result), config.report):
        status = status or ExitStatus.FAILURE
    if result.interrupted_by:
        reraise(signal.Signals[result.interrupted_by])
    return status


def _run(graph: Graph, config: Config) -> RunResult:
    """Runs the graph, under the live view when there is one (rich is imported only then)."""
    from . import api  # tornado and asyncio: only when something runs

    options = {"no_fail": config.no_fail, "timeout": config.timeout, "kill_after": config.kill_after,
               "handle_signals": True, "count_lines": config.count_lines}
    if not config.shows_view:
        if config.progress == "plain" and not config.quiet:
            from .display import PlainProgress

            return api.run(graph, observer=PlainProgress(sys.stderr), **options)
        return api.run(graph, **options)
    from .display import LiveView

    same_terminal = sys.stdout is not None and sys.stdout.isatty() and _same_file(1, 2)
    view = LiveView(sys.stderr, show_output=same_terminal)
    with view:
        result = api.run(graph, observer=view, **options)
    if not config.quiet:
        view.console.print(view.render_summary(result))
    return result


def _same_file(a: int, b: int) -> bool:
    try:
        first, second = os.fstat(a), os.fstat(b)
    except OSError:
        return False
    return (first.st_dev, first.st_ino, first.st_rdev) == (second.st_dev, second.st_ino, second.st_rdev)


def _write_report(data: dict[str, object], destination: str) -> bool:
    try:
        report.write(data, destination)
    except OSError as error:
        print_error([f"cannot write the report to {destination}: {error.strerror}"])
        return False
    return True


def _print(text: str) -> int:
    """Prints on stdout; a reader that left (``--explain ... | head``) or no stdout at all is not an error."""
    if sys.stdout is None:
        return 0
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError:
        pass
    return 0


def print_error(lines: list[str]) -> None:
    """Prints lines on stderr; each that is not an indented detail is prefixed ``ppipe:``."""
    if sys.stderr is None:
        return
    try:
        for line in lines:
            prefix = "" if line.startswith((" ", "ppipe:")) else "ppipe: "
            sys.stderr.write(f"{prefix}{line}\n")
        sys.stderr.flush()
    except OSError:
        pass  # stderr closed or full: the exit status still tells


def reraise(sig: signal.Signals) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)


