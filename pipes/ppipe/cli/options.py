"""The typer command line: options → a frozen :class:`~ppipe.cli.config.Config` → the library.

Nothing here decides behaviour. This module declares the options (their
help, their types, completion), builds a :class:`~ppipe.cli.config.Config`
and hands it to :func:`~ppipe.cli.command.run_command`. The console script
(:mod:`ppipe.cli.entry`) reads command lines by the same rules itself and
comes here for help, completion and the mistakes typer explains.

This is the one declaration of the options. Each parameter is named as its
Config field, and its default is the field's, as text to be read (None: not
given). ``python -m ppipe.cli.generate`` writes the console script's tables
(:mod:`ppipe.cli.option_table`) and Config's fields
(:mod:`ppipe.cli.option_fields`) from it; a test fails when they differ.
"""

from __future__ import annotations

from typing import Annotated

import typer
import typer.main

from ppipe import __version__
from ppipe.cli.command import run_command
from ppipe.cli.config import Config, DisplayMode, ProgressMode, config_from

HELP = """Run a shell-style pipeline as real processes, counting every byte between them.

PIPELINE is one string, quoted as for a shell: ppipe "grep -i error app.log | sort | uniq -c".
Supported: quoting, $VAR, ~, globs, NAME=value, | and |&, < > >> 2> 2>> 2>&1 &>,
process substitution "diff <(sort a) <(sort b)", and groups: "a | { b ; c } | d" copies a's
output to b and c and merges their lines into d.
A stage whose first word starts with '-' may fail without failing the run: "cat f | -grep x | wc -l".

Exit status: 0 when every stage succeeded, else the rightmost failure's status
(a producer stopped by SIGPIPE is not a failure); 2 syntax, 126/127 command
not executable/not found, 124 --timeout, 128+N killed by signal N (130: Ctrl-C).
With --fork: 0 when every shard finally succeeded, else the lowest failed shard's status.
"""


#: The help's panel of the options of a sharded run: each needs one of the STARTERS.
SHARD_PANEL = "Shards"
#: The options that make a run sharded.
STARTERS = ("fork", "each")
#: The help's panel of the options that place a run in a cluster job array.
ARRAY_PANEL = "Job arrays"


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
    ctx: typer.Context,
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
        str,
        typer.Option(
            "--kill-after",
            metavar="SECONDS",
            show_default=False,
            help="Grace between SIGTERM and SIGKILL when stopping stages (default 2; 0: at once; inf: never SIGKILL).",
        ),
    ] = "2",
    explain: Annotated[bool, typer.Option("--explain", help="Print the parsed graph and run nothing.")] = False,
    report: Annotated[
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
            help="Count lines on every edge (default: with --report, --progress or the live view). "
            "Costs a pass over every byte.",
        ),
    ] = None,
    display: Annotated[
        str,
        typer.Option(
            "--display",
            metavar=_choices(DisplayMode),
            show_default=False,
            autocompletion=lambda: _names(DisplayMode),
            help="The live view on stderr (default auto: when stderr is a terminal).",
        ),
    ] = DisplayMode.AUTO.value,
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
        str,
        typer.Option(
            "--progress",
            metavar=_choices(ProgressMode),
            show_default=False,
            autocompletion=lambda: _names(ProgressMode),
            help="plain: a status line on stderr every 5 s when there is no live view (CI logs); "
            "json: one JSON object per interval on stderr (dashboards, CI); default none.",
        ),
    ] = ProgressMode.NONE.value,
    progress_interval: Annotated[
        str,
        typer.Option(
            "--progress-interval",
            metavar="SECONDS",
            show_default=False,
            help="Seconds between --progress lines (default 5).",
        ),
    ] = "5",
    fork: Annotated[
        str | None,
        typer.Option(
            "--fork",
            metavar="N",
            rich_help_panel=SHARD_PANEL,
            help="Run N shards of the pipeline side by side (0: one per CPU); "
            "{task_id}, {task_num}, {tasks} are filled in for each.",
        ),
    ] = None,
    max_restarts: Annotated[
        str,
        typer.Option(
            "--max-restarts",
            metavar="N",
            rich_help_panel=SHARD_PANEL,
            show_default=False,
            help="Restart a failed shard up to N times (per shard; default 0).",
        ),
    ] = "0",
    fail_fast: Annotated[
        bool,
        typer.Option("--fail-fast", rich_help_panel=SHARD_PANEL, help="Stop every shard when one has finally failed."),
    ] = False,
    tag: Annotated[
        bool,
        typer.Option(
            "--tag",
            rich_help_panel=SHARD_PANEL,
            help="Prefix each output and stderr line with its shard's item (--each) or task id, and a tab.",
        ),
    ] = False,
    tag_format: Annotated[
        str | None,
        typer.Option(
            "--tag-format",
            metavar="TEXT",
            rich_help_panel=SHARD_PANEL,
            show_default=False,
            help="The tag (implies --tag), placeholders filled in: --tag-format '{slot}:{item}'.",
        ),
    ] = None,
    keep_order: Annotated[
        bool,
        typer.Option(
            "--keep-order",
            rich_help_panel=SHARD_PANEL,
            help="Output shard 0's lines, then shard 1's... (later shards wait in temporary files).",
        ),
    ] = False,
    block: Annotated[
        str | None,
        typer.Option(
            "--block",
            metavar="SIZE",
            rich_help_panel=SHARD_PANEL,
            help="Split stdin between shards in blocks of about SIZE, "
            "whole lines: bytes, or with k, M or G; at most 1G "
            "(default 1M).",
        ),
    ] = None,
    each: Annotated[
        str | None,
        typer.Option(
            "--each",
            metavar="FILE",
            rich_help_panel=SHARD_PANEL,
            help="One shard per line of FILE ('-': stdin), its text filled in for {item} as one argument "
            "(never re-parsed); {task_id} is the line's index.",
        ),
    ] = None,
    jobs: Annotated[
        str | None,
        typer.Option(
            "-j",
            "--jobs",
            metavar="M",
            rich_help_panel=SHARD_PANEL,
            help="Run at most M shards at once, starting them in task order as slots free (0: one per CPU; "
            "default: all).",
        ),
    ] = None,
    null: Annotated[
        bool,
        typer.Option(
            "-0",
            "--null",
            rich_help_panel=SHARD_PANEL,
            help="Items (--each) and split stdin's records end with NUL, not a newline (find -print0).",
        ),
    ] = False,
    recend: Annotated[
        str | None,
        typer.Option(
            "--recend",
            metavar="STR",
            rich_help_panel=SHARD_PANEL,
            help="Split stdin into records ending with STR (default a newline; backslash escapes such as \\0).",
        ),
    ] = None,
    header: Annotated[
        str,
        typer.Option(
            "--header",
            metavar="N",
            rich_help_panel=SHARD_PANEL,
            show_default=False,
            help="Give every shard's input the first N records of stdin first (a CSV header).",
        ),
    ] = "0",
    halt: Annotated[
        str | None,
        typer.Option(
            "--halt",
            metavar="WHEN,COND",
            rich_help_panel=SHARD_PANEL,
            help="Stop starting shards (now: and stop those running; soon: let them finish) once "
            "fail=N, fail=P%, success=N or done=N shards have ended, as GNU parallel.",
        ),
    ] = None,
    shard_timeout: Annotated[
        str | None,
        typer.Option(
            "--shard-timeout",
            metavar="SECONDS",
            rich_help_panel=SHARD_PANEL,
            help="Stop each shard attempt after SECONDS, its whole process tree; a failure (124) for restarts.",
        ),
    ] = None,
    retry_delay: Annotated[
        str,
        typer.Option(
            "--retry-delay",
            metavar="SECONDS",
            rich_help_panel=SHARD_PANEL,
            show_default=False,
            help="Wait SECONDS before a shard's first restart, doubling for each next one (up to 5 minutes).",
        ),
    ] = "0",
    joblog: Annotated[
        str | None,
        typer.Option(
            "--joblog",
            metavar="FILE",
            rich_help_panel=SHARD_PANEL,
            help="Append one JSON line per finished shard attempt to FILE (started afresh unless resuming).",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", rich_help_panel=SHARD_PANEL, help="Skip the shards the --joblog shows finished."),
    ] = False,
    resume_failed: Annotated[
        bool,
        typer.Option(
            "--resume-failed",
            rich_help_panel=SHARD_PANEL,
            help="Skip the shards the --joblog shows succeeded; run the failed and the never run.",
        ),
    ] = False,
    task_id: Annotated[
        str | None,
        typer.Option(
            "--task-id",
            metavar="I",
            rich_help_panel=ARRAY_PANEL,
            help="Run as task I (0 to N-1) of a job array of N (default: from Slurm, PBS, SGE, LSF... variables).",
        ),
    ] = None,
    tasks: Annotated[
        str | None,
        typer.Option("--tasks", metavar="N", rich_help_panel=ARRAY_PANEL, help="How many tasks the job array has."),
    ] = None,
    on: Annotated[
        str | None,
        typer.Option(
            "--on",
            metavar="slurm",
            rich_help_panel=ARRAY_PANEL,
            help="Run the --fork N shards as a Slurm job array (sbatch), wait, and merge their output and reports.",
        ),
    ] = None,
    sbatch: Annotated[
        list[str] | None,
        typer.Option(
            "--sbatch",
            metavar="ARG",
            rich_help_panel=ARRAY_PANEL,
            help="An argument for sbatch with --on slurm (--sbatch=--partition=gpu); repeat it for more.",
        ),
    ] = None,
    whole_input: Annotated[
        bool,
        typer.Option(
            "--whole-input",
            rich_help_panel=ARRAY_PANEL,
            help="Every task of a job array reads all of stdin (default: its share of a file; a pipe is refused).",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, expose_value=False, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Typer's parameters are :class:`~ppipe.cli.config.Config`'s fields, by name: none is listed again here.

    An option left at its default is passed as not given (None), as the console script passes it, so that a
    default from the environment (``PPIPE_DISPLAY``) applies to both alike.
    """
    given = {
        name: None if _left_at_default(ctx, name) else value for name, value in ctx.params.items() if name != "pipeline"
    }
    dispatch(config_from(pipeline, given))


def _left_at_default(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "DEFAULT"  # click's ParameterSource, which typer vendors


def dispatch(config: Config) -> None:
    """Runs what the command line asked for and exits with its status."""
    raise typer.Exit(run_command(config))
