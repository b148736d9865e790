"""Plain-text lines about a finished run, for stderr when no live view is up.

A failing run gets one line per failed stage — its number, command and how
it ended — followed by the last lines of its stderr, indented. Nothing is
printed for a run that succeeded.
"""

from __future__ import annotations

from .result import RunResult

#: How many stderr lines follow each failed stage's line.
TAIL_LINES = 3
_MAX_COMMAND = 60


def failure_lines(result: RunResult) -> list[str]:
    """The lines describing why ``result`` failed; empty when it did not."""
    lines: list[str] = []
    if result.timed_out:
        lines.append(f"ppipe: timed out after {result.ended_at - result.started_at:.1f}s; every stage was stopped")
    elif result.interrupted_by:
        lines.append(f"ppipe: interrupted by {result.interrupted_by}; every stage was stopped")
    for stage in result.failures:
        lines.append(f"ppipe: stage {stage.stage.id} ({_shorten(stage.stage.command)}) failed: {stage.describe_end()}")
        if not stage.error:
            lines.extend(f"  | {line}" for line in stage.stderr_tail[-TAIL_LINES:])
    return lines


def _shorten(command: str) -> str:
    return command if len(command) <= _MAX_COMMAND else command[: _MAX_COMMAND - 1] + "…"

