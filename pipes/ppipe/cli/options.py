"""The typer command line: options → a frozen :class:`~ppipe.cli.config.Config` → the library.

Nothing here decides behaviour. This module declares the options (their
help, their types, completion), builds a :class:`~ppipe.cli.config.Config`
and hands it to :func:`~ppipe.cli.command.run_command`. The console script
(:mod:`ppipe.cli.entry`) comes here for help, completion and every command line
its fast path does not take.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ppipe import __version__
from ppipe.cli.command import run_command
from ppipe.cli.config import Config, DisplayMode, ProgressMode, read_value

HELP = """Run a shell-style pipeline as real processes, counting every byte between them.

PIPELINE is one string, quoted as for a shell: ppipe "grep -i error app.log | sort | uniq -c".
Supported: quoting, $VAR, ~, globs, NAME=value, | and |&, < > >> 2> 2>> 2>&1 &>,
and groups: "a | { b ; c } | d" copies a's output to b and c and merges their lines into d.
A stage whose first word starts with '-' may fail without failing the run: "cat f | -grep x | wc -l".

Exit status: 0 when every stage succeeded, else the rightmost failure's status
(a producer stopped by SIGPIPE is not a failure); 2 syntax, 126/127 command
not executable/not found, 124 --timeout, 128+N killed by signal N (130: Ctrl-C).
With --fork: 0 when every shard finally succeeded, else the lowest failed shard's status.
"""


def _names(choices: type[DisplayMode | ProgressMode]) -> list[str]:
    return [choice.value for choice in choices]


def _choices(choices: type[DisplayMode | ProgressMode]) -> str:
    return "[" + "|".join(_names(choices)) + "]"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"ppipe {__version__}")
        raise typer.Exit()


def complete_pipeline(incomplete: str) -> list[str]:
    """Shell completion inside the pipeline string: commands first in a stage, files elsewhere."""
    from ppipe.cli.completion import complete

    return complete(incomplete)


app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command(help=HELP, no_args_is_help=True)
def main(
    pipeline: Annotated[
        str,
        typer.Argument(
            metavar="PIPELINE",
            show_default=False,
            help="The pipeline, as one quoted string.",
            autocompletion=complete_pipeline,
        ),
    ],
    no_fail: Annotated[
        bool, typer.Option("--no-fail", help="No stage's failure fails the run (still reported).")
    ] = False,
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            show_default=False,
            help="Stop the run after SECONDS (such as 30 or 0.5) and exit 124; 0 or inf: no limit, as for timeout(1).",
        ),
    ] = None,
    kill_after: Annotated[
        str | None,
        typer.Option(
            "--kill-after",
            metavar="SECONDS",
            show_default=False,
            help="Grace between SIGTERM and SIGKILL when stopping stages (default 2; 0: at once; inf: never SIGKILL).",
        ),
    ] = None,
    explain_: Annotated[bool, typer.Option("--explain", help="Print the parsed graph and run nothing.")] = False,
    report_: Annotated[
        str | None, typer.Option("--report", metavar="FILE", help="Write a JSON run report to FILE ('-' for stderr).")
    ] = None,
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="Print nothing of ppipe's own, not even failures.")
    ] = False,
    lines: Annotated[
        bool | None,
        typer.Option(
            "--lines/--no-lines",
            show_default=False,
            help="Count lines on every edge (default: when --report is given). Costs a pass over every byte.",
        ),
    ] = None,
    display: Annotated[
        str | None,
        typer.Option(
            "--display",
            metavar=_choices(DisplayMode),
            show_default=False,
            autocompletion=lambda: _names(DisplayMode),
            help="The live view on stderr (default auto: when stderr is a terminal).",
        ),
    ] = None,
    pager: Annotated[
        bool | None,
        typer.Option(
            "--pager/--no-pager",
            show_default=False,
            help="The last stage is a pager (less): hand it the terminal, "
            "no view, other stages' stderr held until the end "
            "(default: when it is less, more, most, pg or $PAGER).",
        ),
    ] = None,
    progress: Annotated[
        str | None,
        typer.Option(
            "--progress",
            metavar=_choices(ProgressMode),
            show_default=False,
            autocompletion=lambda: _names(ProgressMode),
            help="plain: a status line on stderr every 5 s when there is no live view (CI logs); default none.",
        ),
    ] = None,
    fork: Annotated[
        str | None,
        typer.Option(
            "--fork",
            metavar="N",
            rich_help_panel="Shards",
            help="Run N shards of the pipeline side by side (0: one per CPU); "
            "{task_id}, {task_num}, {tasks} are filled in for each.",
        ),
    ] = None,
    max_restarts: Annotated[
        str | None,
        typer.Option(
            "--max-restarts",
            metavar="N",
            rich_help_panel="Shards",
            show_default=False,
            help="Restart a failed shard up to N times (per shard; default 0).",
        ),
    ] = None,
    fail_fast: Annotated[
        bool,
        typer.Option("--fail-fast", rich_help_panel="Shards", help="Stop every shard when one has finally failed."),
    ] = False,
    tag: Annotated[
        bool,
        typer.Option(
            "--tag", rich_help_panel="Shards", help="Prefix each output line with its shard's task id and a tab."
        ),
    ] = False,
    keep_order: Annotated[
        bool,
        typer.Option(
            "--keep-order",
            rich_help_panel="Shards",
            help="Output shard 0's lines, then shard 1's... (later shards wait in temporary files).",
        ),
    ] = False,
    block: Annotated[
        str | None,
        typer.Option(
            "--block",
            metavar="SIZE",
            rich_help_panel="Shards",
            help="Split stdin between shards in blocks of about SIZE, "
            "whole lines: bytes, or with k, M or G; at most 1G "
            "(default 1M).",
        ),
    ] = None,
    task_id: Annotated[
        str | None,
        typer.Option(
            "--task-id",
            metavar="I",
            rich_help_panel="Shards",
            help="Run as task I (0 to N-1) of a cluster job array of N (default: from Slurm/Kubernetes variables).",
        ),
    ] = None,
    tasks: Annotated[
        str | None,
        typer.Option("--tasks", metavar="N", rich_help_panel="Shards", help="How many tasks the job array has."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    given = {
        "timeout": timeout,
        "kill_after": kill_after,
        "report": report_,
        "display": display,
        "progress": progress,
        "fork": fork,
        "max_restarts": max_restarts,
        "block": block,
        "task_id": task_id,
        "tasks": tasks,
    }
    values = {field: read_value(field, text) for field, text in given.items() if text is not None}
    dispatch(
        Config(
            pipeline=pipeline,
            no_fail=no_fail,
            explain=explain_,
            quiet=quiet,
            lines=lines,
            pager=pager,
            fail_fast=fail_fast,
            tag=tag,
            keep_order=keep_order,
            **values,
        )
    )


def dispatch(config: Config) -> None:
    """Runs what the command line asked for and exits with its status."""
    raise typer.Exit(run_command(config))
