"""The ``ppipe`` command: options → a frozen :class:`Config` → the library.

Nothing here decides behaviour: parsing, running, exit statuses, the report
and the messages all live in the library. This module turns the command
line into a :class:`Config`, calls :func:`run_command`, and exits with what
it returns.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from typing import Annotated

import typer

from . import __version__, report
from .errors import ExitStatus, PpipeError
from .explain import explain
from .graph import Graph
from .summary import failure_lines

COMPLETE_VAR = "_PPIPE_COMPLETE"

HELP = """Run a shell-style pipeline as real processes, counting every byte between them.

PIPELINE is one string, quoted as for a shell: ppipe "grep -i error app.log | sort | uniq -c".
Supported: quoting, $VAR, ~, globs, NAME=value, | and |&, < > >> 2> 2>> 2>&1 &>.
A stage whose first word starts with '-' may fail without failing the run: "cat f | -grep x | wc -l".

Exit status: 0 when every stage succeeded, else the rightmost failure's status
(a producer stopped by SIGPIPE is not a failure); 2 syntax, 126/127 command
not executable/not found, 124 --timeout, 128+N killed by signal N (130: Ctrl-C).
"""


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
    #: None: count lines when they will be seen (the report records them).
    lines: bool | None = None

    @property
    def count_lines(self) -> bool:
        return self.report is not None if self.lines is None else self.lines


def run_command(config: Config) -> int:
    """Does what the command line asked; returns the exit status.

    Errors are printed as ``ppipe: ...`` lines, never tracebacks. When the
    run was interrupted by a signal, the same signal is raised again at the
    end (after the report is written) so that a calling shell sees ppipe
    killed by it and stops a loop, as it would for any other program.
    """
    from . import api
    from .syntax import parse

    graph: Graph | None = None
    try:
        if config.report:
            report.check_destination(config.report)
        graph = parse(config.pipeline)
        if config.explain:
            return _print(explain(graph))
        result = api.run(graph, no_fail=config.no_fail, timeout=config.timeout, kill_after=config.kill_after,
                         handle_signals=True, count_lines=config.count_lines)
    except PpipeError as error:
        _print_error(str(error).splitlines())
        if config.report and not isinstance(error, report.ReportError):
            _write_report(report.build_for_error(config.pipeline, error, graph), config.report)
        return error.status
    if not config.quiet:
        _print_error(failure_lines(result))
    status = result.exit_status
    if config.report and not _write_report(report.build(result), config.report):
        status = status or ExitStatus.FAILURE
    if result.interrupted_by:
        _reraise(signal.Signals[result.interrupted_by])
    return status


def _write_report(data: dict[str, object], destination: str) -> bool:
    try:
        report.write(data, destination)
    except OSError as error:
        _print_error([f"cannot write the report to {destination}: {error.strerror}"])
        return False
    return True


def _print(text: str) -> int:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left (ppipe --explain ... | head): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _print_error(lines: list[str]) -> None:
    """Prints lines on stderr; each that is not an indented detail is prefixed ``ppipe:``."""
    for line in lines:
        prefix = "" if line.startswith((" ", "ppipe:")) else "ppipe: "
        sys.stderr.write(f"{prefix}{line}\n")
    sys.stderr.flush()


def _reraise(sig: signal.Signals) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"ppipe {__version__}")
        raise typer.Exit()


def complete_pipeline(incomplete: str) -> list[str]:
    """Shell completion inside the pipeline string: commands first in a stage, files elsewhere."""
    from .completion import complete

    return complete(incomplete)


app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command(help=HELP, no_args_is_help=True)
def main(
    pipeline: Annotated[str, typer.Argument(metavar="PIPELINE", show_default=False,
                                            help="The pipeline, as one quoted string.",
                                            autocompletion=complete_pipeline)],
    no_fail: Annotated[bool, typer.Option("--no-fail", help="No stage's failure fails the run (still reported).")]
    = False,
    timeout: Annotated[float | None, typer.Option("--timeout", metavar="SECONDS", min=0.0,
                                                  help="Stop the run after SECONDS and exit 124.")] = None,
    kill_after: Annotated[float, typer.Option("--kill-after", metavar="SECONDS", min=0.0,
                                              help="Grace between SIGTERM and SIGKILL when stopping stages.")]
    = 2.0,
    explain_: Annotated[bool, typer.Option("--explain", help="Print the parsed graph and run nothing.")] = False,
    report_: Annotated[str | None, typer.Option("--report", metavar="FILE",
                                                help="Write a JSON run report to FILE ('-' for stderr).")] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Print nothing of ppipe's own, not even failures.")]
    = False,
    lines: Annotated[bool | None, typer.Option("--lines/--no-lines", show_default=False,
                                               help="Count lines on every edge (default: when --report is given). "
                                                    "Costs a pass over every byte.")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    config = Config(pipeline=pipeline, no_fail=no_fail, timeout=timeout, kill_after=kill_after,
                    explain=explain_, report=report_, quiet=quiet, lines=lines)
    raise typer.Exit(run_command(config))


def entry() -> None:
    """The console script.

    Makes sure descriptors 0–2 exist first (``ppipe ... >&-``): otherwise the
    first pipe ppipe creates would take a standard descriptor's number and
    stages would write into each other's pipes. The stand-in fails reads or
    writes with EBADF, as the closed descriptor would have. A Ctrl-C before the run
    started, and any bug, end with one line instead of a traceback
    (``PPIPE_DEBUG=1`` shows it).
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            # Opened the wrong way round, so a stage using it still gets EBADF
            # as from a closed descriptor; os.open takes the lowest free number.
            os.open(os.devnull, os.O_WRONLY if fd == 0 else os.O_RDONLY)
    if COMPLETE_VAR in os.environ:
        from typer._completion_classes import completion_init

        completion_init()
    try:
        app(prog_name="ppipe")
    except KeyboardInterrupt:
        _reraise(signal.SIGINT)
    except Exception as error:
        if os.environ.get("PPIPE_DEBUG"):
            raise
        _print_error([f"internal error: {error!r}", "  this is a bug in ppipe; PPIPE_DEBUG=1 shows the traceback"])
        sys.exit(ExitStatus.FAILURE)
