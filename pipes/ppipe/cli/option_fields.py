# Generated from the typer command in ppipe.cli.options by `python -m ppipe.cli.options write`:
# do not edit. A test fails when it no longer matches the command. Generated, not read from typer,
# because building the typer command costs a quarter of a second at every start.
"""The command line's options as fields: the base of :class:`ppipe.cli.config.Config`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    """One field per option, with its type after reading and the default it has when not given."""

    pipeline: str
    #: --no-fail: No stage's failure fails the run (still reported).
    no_fail: bool = False
    #: --timeout: Stop the run after SECONDS (such as 30 or 0.5) and exit 124; 0 or inf: no limit, as for
    #: timeout(1).
    timeout: float | None = None
    #: --kill-after: Grace between SIGTERM and SIGKILL when stopping stages (default 2; 0: at once; inf: never
    #: SIGKILL).
    kill_after: float = 2.0
    #: --explain: Print the parsed graph and run nothing.
    explain: bool = False
    #: --report: Write a JSON run report to FILE ('-' for stderr).
    report: str | None = None
    #: -q/--quiet: Print nothing of ppipe's own, not even failures.
    quiet: bool = False
    #: --lines/--no-lines: Count lines on every edge (default: with --report, --progress or the live view). Costs a
    #: pass over every byte.
    lines: bool | None = None
    #: --display: The live view on stderr (default auto: when stderr is a terminal).
    display: str = "auto"
    #: --pager/--no-pager: The last stage is a pager (less): hand it the terminal, no view, other stages' stderr
    #: held until the end (default: when it is less, more, most, pg or $PAGER).
    pager: bool | None = None
    #: --progress: plain: a status line on stderr every 5 s when there is no live view (CI logs); json: one JSON
    #: object per interval on stderr (dashboards, CI); default none.
    progress: str = "none"
    #: --progress-interval: Seconds between --progress lines (default 5).
    progress_interval: float = 5.0
    #: --fork: Run N shards of the pipeline side by side (0: one per CPU); {task_id}, {task_num}, {tasks} are filled
    #: in for each.
    fork: int | None = None
    #: --max-restarts: Restart a failed shard up to N times (per shard; default 0).
    max_restarts: int = 0
    #: --fail-fast: Stop every shard when one has finally failed.
    fail_fast: bool = False
    #: --tag: Prefix each output line with its shard's task id and a tab.
    tag: bool = False
    #: --keep-order: Output shard 0's lines, then shard 1's... (later shards wait in temporary files).
    keep_order: bool = False
    #: --block: Split stdin between shards in blocks of about SIZE, whole lines: bytes, or with k, M or G; at most
    #: 1G (default 1M).
    block: str | None = None
    #: --each: One shard per line of FILE ('-': stdin), its text filled in for {item} as one argument (never re-
    #: parsed); {task_id} is the line's index.
    each: str | None = None
    #: -j/--jobs: Run at most M shards at once, starting them in task order as slots free (0: one per CPU; default:
    #: all).
    jobs: int | None = None
    #: -0/--null: Items (--each) and split stdin's records end with NUL, not a newline (find -print0).
    null: bool = False
    #: --recend: Split stdin into records ending with STR (default a newline; backslash escapes such as \0).
    recend: str | None = None
    #: --header: Give every shard's input the first N records of stdin first (a CSV header).
    header: int = 0
    #: --halt: Stop starting shards (now: and stop those running; soon: let them finish) once fail=N, fail=P%,
    #: success=N or done=N shards have ended, as GNU parallel.
    halt: str | None = None
    #: --shard-timeout: Stop each shard attempt after SECONDS, its whole process tree; a failure (124) for restarts.
    shard_timeout: float | None = None
    #: --retry-delay: Wait SECONDS before a shard's first restart, doubling for each next one (up to 5 minutes).
    retry_delay: float = 0.0
    #: --joblog: Append one JSON line per finished shard attempt to FILE (started afresh unless resuming).
    joblog: str | None = None
    #: --resume: Skip the shards the --joblog shows finished.
    resume: bool = False
    #: --resume-failed: Skip the shards the --joblog shows succeeded; run the failed and the never run.
    resume_failed: bool = False
    #: --task-id: Run as task I (0 to N-1) of a job array of N (default: from Slurm, PBS, SGE, LSF... variables).
    task_id: int | None = None
    #: --tasks: How many tasks the job array has.
    tasks: int | None = None
    #: --on: Run the --fork N shards as a Slurm job array (sbatch), wait, and merge their output and reports.
    on: str | None = None
    #: --sbatch: An argument for sbatch with --on slurm (--sbatch=--partition=gpu); repeat it for more.
    sbatch: tuple[str, ...] | None = None
    #: --whole-input: Every task of a job array reads all of stdin (default: its share of a file; a pipe is
    #: refused).
    whole_input: bool = False


#: The fields of the options that only mean something with --fork or --each (the Shards panel).
SHARD_ONLY = (
    "max_restarts",
    "fail_fast",
    "tag",
    "keep_order",
    "block",
    "jobs",
    "null",
    "recend",
    "header",
    "halt",
    "shard_timeout",
    "retry_delay",
    "joblog",
    "resume",
    "resume_failed",
)
