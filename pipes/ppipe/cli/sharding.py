"""From the command line's shard options to a :class:`~ppipe.shards.plan.ShardPlan`, or to one task's placeholders.

``--fork N`` or ``--each FILE`` make a sharded run; every other option of
the help's Shards panel means something only with one of them. A cluster
task's identity (``--task-id/--tasks``, or a scheduler's variables) fills
the placeholders and decides which share of a file on stdin the task
reads. Bad values are refused here, before anything starts, with status 2.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import TYPE_CHECKING

from ppipe.cli.config import Config, block_size, option_name
from ppipe.errors import UsageError

if TYPE_CHECKING:
    from ppipe.engine.slices import FileSlice
    from ppipe.graph import Graph
    from ppipe.identity import TaskIdentity
    from ppipe.shards.plan import ShardPlan


@dataclasses.dataclass(frozen=True)
class Sharding:
    """How the command line places this run: its shard plan, or one task's placeholder values; and its identity.

    ``plan`` is set for ``--fork``/``--each``; otherwise ``placeholders``
    holds a cluster task's values (None: none), for
    :func:`~ppipe.language.parser.parse`, which puts them into the parsed
    words: filled into the text, ``{task_id}>f`` would read as ``0>f``.
    ``identity`` is the job-array task this process is, if any.
    """

    plan: ShardPlan | None
    placeholders: dict[str, str] | None
    identity: TaskIdentity | None


def shard_plan(config: Config) -> Sharding:
    """The run's :class:`Sharding`; bad shard options raise :class:`UsageError` (status 2)."""
    from ppipe.identity import cluster_identity
    from ppipe.language.parser import has_placeholders, placeholder_values

    sharded = config.fork is not None or config.each is not None
    asked = sharded or config.task_id is not None or config.tasks is not None or has_placeholders(config.pipeline)
    try:
        identity = cluster_identity(os.environ, config.task_id, config.tasks)
    except UsageError:
        if asked:
            raise
        identity = None  # a plain run that never asks which task it is runs whole, whatever the environment lacks
    if not sharded:
        _refuse_shard_options(config, identity)
        values = None if identity is None else placeholder_values(identity.task_id, identity.tasks)
        return Sharding(None, values, identity)
    if config.pager:
        raise UsageError(
            "--pager hands the terminal to one stage; a sharded run merges its shards' output "
            "(pipe ppipe --fork ... into less instead)"
        )
    if config.fork is not None and config.each is not None:
        raise UsageError("--each runs one shard per item; use --jobs M, not --fork, to cap how many run at once")
    plan = _plan(config)
    if identity is not None and plan.items is not None:
        # Each task runs its share of the items, round-robin; an item's {task_id} is its index in the whole list.
        plan = dataclasses.replace(plan, offset=identity.task_id, stride=identity.tasks, tasks=len(plan.items))
    elif identity is not None:
        plan = dataclasses.replace(plan, offset=identity.task_id * plan.local, tasks=identity.tasks * plan.local)
    return Sharding(plan, None, identity)


def placeholder_warnings(pipeline: str, *, each: bool) -> list[str]:
    """Warnings for ``{word}`` s that look meant as placeholders but stay text in this run."""
    from ppipe.language.parser import misspelt_placeholders

    warnings = [
        f"ppipe: warning: {{{word}}} is not a placeholder and stays as written; did you mean {{{meant}}}?"
        for word, meant in misspelt_placeholders(pipeline)
    ]
    if not each and "{item}" in pipeline:
        warnings.append("ppipe: warning: {item} is filled in only with --each FILE; here it stays as written")
    return warnings


def task_stdin(config: Config, sharding: Sharding, graph: Graph) -> FileSlice | None:
    """A job array task's share of its stdin, when it is a file (see :func:`ppipe.shards.portion.task_input`)."""
    from ppipe.shards.plan import reads_stdin
    from ppipe.shards.portion import task_input

    if sharding.identity is None or not reads_stdin(graph):
        return None
    separator = record_separator(config)
    return task_input(sharding.identity, whole=config.whole_input, record_end=separator, header=config.header)


#: The options that say how a job array task's share of a file is cut: they need no --fork.
_SHARE_OPTIONS = frozenset({"null", "recend", "header"})


def _refuse_shard_options(config: Config, identity: TaskIdentity | None) -> None:
    from ppipe.cli.option_fields import SHARD_ONLY

    for name in SHARD_ONLY:
        if identity is not None and name in _SHARE_OPTIONS:
            continue
        if getattr(config, name) not in (None, False, 0):
            raise UsageError(f"{option_name(name)} needs --fork N or --each FILE")


def _plan(config: Config) -> ShardPlan:
    from ppipe.policy import parse_halt
    from ppipe.shards.input import DEFAULT_BLOCK
    from ppipe.shards.joblog import Resume
    from ppipe.shards.plan import ShardPlan

    if config.resume and config.resume_failed:
        raise UsageError("--resume skips every finished shard, --resume-failed only those that succeeded: pick one")
    if config.fail_fast and config.halt is not None:
        raise UsageError("--fail-fast is --halt now,fail=1: give one of them")
    halt = None
    if config.halt is not None:
        try:
            halt = parse_halt(config.halt)
        except ValueError as error:
            raise UsageError(f"--halt {config.halt!r}: {error}") from None
    record_end = record_separator(config)
    resume = Resume.ALL if config.resume else Resume.FAILED if config.resume_failed else Resume.NONE
    return ShardPlan(
        config.fork or 0,
        max_restarts=config.max_restarts,
        fail_fast=config.fail_fast,
        tag=config.tag,
        tag_format=config.tag_format,
        keep_order=config.keep_order,
        block=block_size(config.block) if config.block is not None else DEFAULT_BLOCK,
        jobs=config.jobs,
        items=read_items(config.each, b"\0" if config.null else b"\n") if config.each is not None else None,
        halt=halt,
        shard_timeout=config.shard_timeout or None,
        retry_delay=config.retry_delay,
        joblog=config.joblog,
        resume=resume,
        record_end=record_end,
        header=config.header,
    )


def record_separator(config: Config) -> bytes:
    """What ends a record when stdin is split: ``--recend`` (backslash escapes read), NUL for ``-0``, else a newline."""
    if config.recend is None:
        return b"\0" if config.null else b"\n"
    try:
        separator = config.recend.encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1")
    except (UnicodeError, ValueError):
        separator = b""
    if not separator:
        raise UsageError(f"--recend takes a non-empty string such as '\\n' or '\\0', not {config.recend!r}")
    return separator


def read_items(source: str, separator: bytes) -> tuple[str, ...]:
    """``--each``'s items: the lines (or NUL-ended records) of ``source``, ``-`` for stdin; as bytes, exactly.

    The separator after the last item is optional; nothing else is
    stripped, so an item is exactly the text between two separators.
    """
    try:
        if source == "-":
            data = sys.stdin.buffer.read() if sys.stdin is not None else b""
        else:
            with open(source, "rb") as handle:
                data = handle.read()
    except OSError as error:
        raise UsageError(f"--each {source}: {error.strerror}") from None
    records = data.split(separator)
    if records and records[-1] == b"":
        records.pop()
    return tuple(os.fsdecode(record) for record in records)
