"""The screen a run ends on, from its result: the live view's last words, and a saved run's (``report show``).

:func:`final_screen` is what the live view prints when its run ends: the
table of stages (a plain run) or shards, the tally of a batch, a panel per
failure, drawn by the view's own row layouts (:mod:`ppipe.cli.rows`). A run
read back from its report is drawn by the same function, on a
:class:`Still` canvas of a given width, under a :func:`headline` saying
which run it was, since nothing on the screen around it says so any more.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from rich.console import Group, RenderableType
from rich.text import Text

from ppipe.cli.rows import Canvas, ShardRows, StageRows, shard_tally
from ppipe.cli.tables import footer_lines, one_line, visible
from ppipe.cli.timeline import timeline_view
from ppipe.cli.units import seconds_text
from ppipe.results import RunResult, Verdict
from ppipe.stops import StopKind
from ppipe.timeline import timeline_of


class Still:
    """A canvas for a picture drawn once (a saved run): ``width`` columns, as many rows as it takes."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.room = 1 << 20
        #: Nothing turns or moves in a still picture; the layouts ask all the same.
        self.frame_number = 0
        self.clock: Callable[[], float] = time.monotonic


def final_screen(result: RunResult, canvas: Canvas) -> RenderableType:
    """The end of a run: exact figures per stage or shard, a batch's tally, then a panel for each failure."""
    rows = StageRows(canvas) if result.local is not None else ShardRows(canvas)
    return rows.summary(result)


def saved_screen(result: RunResult, width: int) -> RenderableType:
    """A run read back from its report, as its live view ended it, under its :func:`headline`.

    A run that never started (bad syntax, a command not found) has no
    figures to show: its headline says why.
    """
    if result.error is not None:
        return headline(result, width)
    batch = len(result.shards) > ShardRows.SUMMARY_ROWS  # whose screen starts with its tally
    return Group(headline(result, width, tally=not batch), final_screen(result, Still(width)))


def saved_timeline(result: RunResult, width: int) -> RenderableType:
    """A run's attempts (a plain run's stages) over time, under its :func:`headline` (see :mod:`ppipe.timeline`)."""
    return Group(headline(result, width), timeline_view(timeline_of(result), width))


def headline(result: RunResult, width: int, *, tally: bool = True) -> RenderableType:
    """Which run this was: its pipeline, then how it ended, its tally (unless ``tally`` is False: what follows
    has it), why it stopped, when and where it ran."""
    pipeline = Text(one_line(result.pipeline), style="bold", no_wrap=True, overflow="ellipsis")
    status = Text(f"exit status {result.exit_status}", style="green" if result.ok else "red")
    parts = [status]
    if result.error is not None:
        parts.append(Text(f"never started: {one_line(result.error)}"))
    elif result.local is not None:
        parts += [Text(stage_tally(result)), Text(seconds_text(result.ended_at - result.started_at))]
    elif tally:
        parts.append(Text(shard_tally(result)))
    if result.stopped_by is not None:
        reader_gone = result.stopped_by.kind is StopKind.READER_GONE
        parts.append(Text("stopped: nobody read the output" if reader_gone else f"stopped by {result.stopped_by}"))
    when = _when(result.started_at)
    parts.append(Text(when if result.host is None else f"{when} on {visible(result.host)}"))
    return Group(pipeline, footer_lines(parts, width))


def _when(seconds: float) -> str:
    """Unix time as local date and time; as the number it is where no calendar the system knows holds it."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))
    except (OverflowError, OSError, ValueError):
        return f"at {seconds:g} s"


#: How the stage tally names each verdict, in the order it lists them.
_STAGE_WORDS = {
    Verdict.OK: "ok",
    Verdict.BROKEN_PIPE: "ok",
    Verdict.FAILED: "failed",
    Verdict.IGNORED: "ignored",
    Verdict.TERMINATED: "stopped",
    Verdict.PENDING: "not run",
}


def stage_tally(result: RunResult) -> str:
    """``3 stages: 2 ok, 1 failed``: a plain run's stages counted by verdict."""
    counts = Counter(_STAGE_WORDS.get(stage.verdict, stage.verdict.value) for stage in result.stages)
    order = list(dict.fromkeys(_STAGE_WORDS.values()))
    ordered = sorted(counts.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order))
    noun = "stage" if len(result.stages) == 1 else "stages"
    return f"{len(result.stages)} {noun}: " + ", ".join(f"{count} {word}" for word, count in ordered)
