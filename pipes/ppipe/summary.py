"""Plain-text lines about a finished run, for stderr when no live view is up.

A failing run gets one line per failed stage — its number, command and how
it ended — followed by the last lines of its stderr, indented, unless those
lines already reached ppipe's stderr as the stage wrote them (the usual
case: a Makefile's log would show them twice). A failure excused by the
``-`` marker or ``--no-fail`` gets one line too, saying it was ignored, even
when the run succeeded: excused is not unseen. Nothing is printed for a run
where every stage succeeded.

The same lines are made for runs ppipe only reads about: the tasks of a job
array, read back from their reports and merged into one run
(:mod:`ppipe.merging`). Their stages' stderr went to the tasks' own logs,
never to this stderr (a run read back never says it was seen), so a failed
stage's last stderr lines are always quoted.
"""

from __future__ import annotations

from collections.abc import Sequence

from ppipe.results import PipelineResult, RunResult, ShardResult, StageResult, Verdict

#: How many stderr lines follow each failed stage's line.
TAIL_LINES = 3
#: Shards with something to say (a failure, an excused one) that get their lines; the rest are counted.
SHARDS_LISTED = 10
_MAX_COMMAND = 60


def failure_lines(result: RunResult, *, listed: int | None = SHARDS_LISTED) -> list[str]:
    """The lines describing why ``result`` failed and which failures it excused; empty when neither.

    A plain run's lines are about its stages; a sharded run's name each
    failed shard and its attempts, with its stages' lines beneath: for the
    first ``listed`` shards with something to say (None: all), the others
    counted.
    """
    local = result.local
    if local is not None:
        return _stopped_lines(result, "stage") + pipeline_lines(local)
    lines = _stopped_lines(result, "shard")
    told = [shard_lines for shard in result.shards if (shard_lines := _shard_lines(shard))]
    for shard_lines in told[:listed]:
        lines.extend(shard_lines)
    if listed is not None and len(told) > listed:
        lines.append(f"ppipe: and {len(told) - listed} more shards (see --joblog)")
    if result.output_error:
        lines.append(f"ppipe: cannot write the output: {result.output_error}")
    if result.input_error:
        lines.append(f"ppipe: {result.input_error}; the shards got what was read")
    if result.input_undelivered and result.failed_shards:
        lines.append(f"ppipe: {result.input_undelivered} bytes of input went to no shard (theirs had ended)")
    return lines


def pipeline_lines(result: PipelineResult) -> list[str]:
    """A pipeline's failed stages, each with its stderr's last lines, and its excused ones."""
    lines = [f"ppipe: {result.io_error}"] if result.io_error else []
    for stage in result.stages:
        if stage.failed:
            lines.append(_failed_line(stage.stage.id, stage.stage.command, stage.describe_end()))
            lines.extend(f"  | {line}" for line in _tail_to_quote(stage))
        elif stage.verdict is Verdict.IGNORED:
            lines.append(_excused_line(stage))
    return lines


def excused_lines(result: PipelineResult) -> list[str]:
    """A line per stage whose failure was excused (the ``-`` marker, ``--no-fail``); no stderr tail."""
    return [_excused_line(stage) for stage in result.stages if stage.verdict is Verdict.IGNORED]


def _excused_line(stage: StageResult) -> str:
    return _ignored_line(stage.stage.id, stage.stage.command, stage.describe_end(), may_fail=stage.stage.may_fail)


def _failed_line(stage_id: int, command: str, end: str) -> str:
    return f"ppipe: stage {stage_id} ({_shorten(command)}) failed: {end}"


def _ignored_line(stage_id: int, command: str, end: str, *, may_fail: bool) -> str:
    why = "marked with -" if may_fail else "--no-fail"
    return f"ppipe: stage {stage_id} ({_shorten(command)}) {end}, ignored ({why})"


def _tail_to_quote(stage: StageResult) -> tuple[str, ...]:
    """The last stderr lines of a failed stage, unless they were seen as it wrote them (or it never ran)."""
    if stage.error or stage.stderr_seen:
        return ()
    return stage.stderr_tail[-TAIL_LINES:]


def _stopped_lines(result: RunResult | PipelineResult, what: str) -> list[str]:
    """Why the run ended early, if it did: ``--timeout`` (the one given, not what the grace added) or a signal."""
    if result.timed_out:
        return [f"ppipe: timed out after {_timeout_text(result)}; every {what} was stopped"]
    if result.interrupted_by:
        return [f"ppipe: interrupted by {result.interrupted_by}; every {what} was stopped"]
    return []


def _timeout_text(result: RunResult | PipelineResult) -> str:
    """``1s``, ``0.25s`` for the ``--timeout`` given; the run's elapsed time (``2.0s``) when it is unknown."""
    if result.timeout is None:
        return f"{result.ended_at - result.started_at:.1f}s"
    return f"{result.timeout:.3f}".rstrip("0").rstrip(".") + "s"


def _shorten(command: str) -> str:
    return command if len(command) <= _MAX_COMMAND else command[: _MAX_COMMAND - 1] + "…"


def _shard_lines(shard: ShardResult) -> list[str]:
    """A finally failed shard: its every attempt's end, then its last attempt's stage lines, indented. A shard
    that succeeded: a line per stage whose failure its last attempt excused."""
    last = shard.last_result
    if not shard.failed:
        return _of_shard(shard.task_id, excused_lines(last) if last is not None else [])
    ends = [f"#{a.number} {a.describe_end()}" for a in shard.attempts]
    lines = [_shard_failed_line(shard.task_id, ends, shard.pipeline, shard.error or "never started")]
    if last is not None:
        lines.extend(
            f"  {line.removeprefix('ppipe: ')}" for line in _stopped_lines(last, "stage") + pipeline_lines(last)
        )
    return lines


def _of_shard(task_id: int, lines: list[str]) -> list[str]:
    return [f"ppipe: shard {task_id}: {line.removeprefix('ppipe: ')}" for line in lines]


def _shard_failed_line(task_id: int, ends: Sequence[str], pipeline: str, why: str) -> str:
    """``shard 3 failed after 2 attempts (#1 exit status 1, #2 exit status 1): grep x``."""
    count = len(ends)
    return (
        f"ppipe: shard {task_id} failed after {count} attempt{'s' if count != 1 else ''} "
        f"({', '.join(ends) or why}): {_shorten(pipeline)}"
    )
