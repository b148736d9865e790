"""The typer command line: options → a frozen :class:`~ppipe.command.Config` → the library.

Nothing here decides behaviour. This module declares the options (their
help, their types, completion), builds a :class:`~ppipe.command.Config`
and hands it to :func:`~ppipe.command.run_command`. The console script
(:mod:`ppipe.entry`) comes here for help, completion and every command line
its fast path does not take.
"""

from __future__ import annotations

from typing import Annotated

import typer

from . import __version__
from .command import Config, DisplayMode, ProgressMode, run_command

HELP = """Run a shell-style pipeline as real processes, counting every byte between them.

PIPELINE is one string, quoted as for a shell: ppipe "grep -i error app.log | sort | uniq -c".
Supported: quoting, $VAR, ~, globs, NAME=value, | and |&, < > >> 2> 2>> 2>&1 &>.
A stage whose first word starts with '-' may fail without failing the run: "cat f | -grep x | wc -l".

Exit status: 0 when every stage succeeded, else the rightmost failure's status
(a producer stopped by SIGPIPE is not a failure); 2 syntax, 126/127 command
not executable/not found, 124 --timeout, 128+N killed by signal N (130: Ctrl-C).
"""


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
    display: Annotated[DisplayMode, typer.Option("--display", case_sensitive=False,
                                                 help="The live view on stderr: auto = when stderr is a terminal.")]
    = DisplayMode.AUTO,
    progress: Annotated[ProgressMode, typer.Option("--progress", case_sensitive=False,
                                                   help="plain: a status line on stderr every 5 s "
                                                        "when there is no live view (CI logs).")]
    = ProgressMode.NONE,
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    dispatch(Config(pipeline=pipeline, no_fail=no_fail, timeout=timeout, kill_after=kill_after,
                    explain=explain_, report=report_, quiet=quiet, lines=lines, display=display.value,
                    progress=progress.value))


def dispatch(config: Config) -> None:
    """Runs what the command line asked for and exits with its status."""
    raise typer.Exit(run_command(config))


