"""Plain-text lines about a finished run, for stderr when no live view is up.

A failing run gets one line per failed stage — its number, command and how
it ended — followed by the last lines of its stderr, indented. Nothing is
printed for a run that succeeded.
"""

from __future__ import annotations

from .result import RunResult, ShardedResult

#: How many stderr lines follow each failed stage's line.
TAIL_LINES = 3
_MAX_COMMAND = 60


def failure_lines(result: RunResult) -> list[str]:
    """The lines describing why ``result`` failed; empty when it did not."""
    lines = _stopped_lines(result, "stage")
    if result.io_error:
        lines.append(f"ppipe: {result.io_error}")
    for stage in result.failures:
        lines.append(f"ppipe: stage {stage.stage.id} ({_shorten(stage.stage.command)}) failed: {stage.describe_end()}")
        if not stage.error:
            lines.extend(f"  | {line}" for line in stage.stderr_tail[-TAIL_LINES:])
    return lines


def _stopped_lines(result: RunResult | ShardedResult, what: str) -> list[str]:
    """Why the run ended early, if it did: ``--timeout`` or a signal."""
    if result.timed_out:
        return [f"ppipe: timed out after {result.ended_at - result.started_at:.1f}s; every {what} was stopped"]
    if result.interrupted_by:
        return [f"ppipe: interrupted by {result.interrupted_by}; every {what} was stopped"]
    return []


def _shorten(command: str) -> str:
    return command if len(command) <= _MAX_COMMAND else command[: _MAX_COMMAND - 1] + "…"



def shard_failure_lines(result: ShardedResult) -> list[str]:
    """For a sharded run: a line per finally failed shard, with every attempt's end, then its failed stages."""
    lines = _stopped_lines(result, "shard")
    for shard in result.failures:
        ends = ", ".join(f"#{a.number} {a.describe_end()}" for a in shard.attempts) or "never started"
        lines.append(f"ppipe: shard {shard.task_id} failed after {len(shard.attempts)} "
                     f"attempt{'s' if len(shard.attempts) != 1 else ''} ({ends}): {_shorten(shard.pipeline)}")
        last = shard.attempts[-1].result if shard.attempts else None
        if last is not None:
            lines.extend(f"  {line.removeprefix('ppipe: ')}" for line in failure_lines(last))
    if result.output_error:
        lines.append(f"ppipe: cannot write the output: {result.output_error}")
    if result.input_undelivered and result.failures:
        lines.append(f"ppipe: {result.input_undelivered} bytes of input went to no shard (theirs had ended)")
    return lines
