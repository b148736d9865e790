# Generated from the typer command in ppipe.cli.options by `python -m ppipe.cli.generate`:
# do not edit. A test fails when it no longer matches the command. Generated, not read from typer,
# because building the typer command costs a quarter of a second at every start.
"""The command line's options as fields: the base of :class:`ppipe.cli.config.Config`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    """One field per option (its help: ppipe.cli.options), typed as read, defaulting as not given."""

    pipeline: str
    no_fail: bool = False
    timeout: float | None = None
    kill_after: float = 2.0
    explain: bool = False
    report: str | None = None
    quiet: bool = False
    lines: bool | None = None
    display: str = "auto"
    pager: bool | None = None
    progress: str = "none"
    progress_interval: float = 5.0
    fork: int | None = None
    max_restarts: int = 0
    fail_fast: bool = False
    tag: bool = False
    tag_format: str | None = None
    keep_order: bool = False
    block: str | None = None
    each: str | None = None
    jobs: int | None = None
    null: bool = False
    recend: str | None = None
    header: int = 0
    halt: str | None = None
    shard_timeout: float | None = None
    retry_delay: float = 0.0
    joblog: str | None = None
    resume: bool = False
    resume_failed: bool = False
    task_id: int | None = None
    tasks: int | None = None
    on: str | None = None
    sbatch: tuple[str, ...] | None = None
    whole_input: bool = False


#: The fields of the options that only mean something with --fork or --each (the Shards panel).
SHARD_ONLY = (
    "max_restarts",
    "fail_fast",
    "tag",
    "tag_format",
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
