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
from .errors import PpipeError
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
        graph = parse(config.pipeline)
        if config.explain:
            return _print(explain(graph))
        result = api.run(graph, no_fail=config.no_fail, timeout=config.timeout, kill_after=config.kill_after,
                         handle_signals=True)
    except PpipeError as error:
        _error_lines(str(error).splitlines())
        if config.report:
            report.write(report.build_for_error(config.pipeline, error, graph), config.report)
        return error.status
    if not config.quiet:
        _error_lines(failure_lines(result), prefixed=True)
    if config.report:
        report.write(report.build(result), config.report)
    if result.interrupted_by:
        _reraise(signal.Signals[result.interrupted_by])
    return result.exit_status


def _print(text: str) -> int:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left (ppipe --explain ... | head): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _error_lines(lines: list[str], prefixed: bool = False) -> None:
    for i, line in enumerate(lines):
        prefix = "" if prefixed or (i and not line.startswith("stage ")) else "ppipe: "
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
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    config = Config(pipeline=pipeline, no_fail=no_fail, timeout=timeout, kill_after=kill_after,
                    explain=explain_, report=report_, quiet=quiet)
    raise typer.Exit(run_command(config))


def entry() -> None:
    """The console script."""
    if COMPLETE_VAR in os.environ:
        from typer._completion_classes import completion_init

        completion_init()
    app(prog_name="ppipe")
