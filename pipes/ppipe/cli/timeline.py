"""A :class:`~ppipe.timeline.Timeline` drawn for a terminal: a bar per attempt along a time axis, and a legend.

Each row is a label, then the run's time spread over the columns left: a
column is ``duration / columns`` seconds, and a bar takes every column its
attempt was running in (at least one, however short). How a bar ended is
its last column's mark (``↺`` run again, ``✗`` failed, ``■`` stopped by
ppipe, ``!`` failed but ignored) and its colour; a bar that ended well has
no mark. Where several bars share a column (a batch of short attempts), the
column shows the worst of them, so that one failure among a thousand
attempts still shows. A bar wide enough starts with its shard's id. Below
the rows, an axis with ticks at round times (``0s 10s 20s``, ``1m 2m``) and
a legend of the marks the picture holds.
"""

from __future__ import annotations

import math

from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.text import Text

from ppipe.cli.tables import footer_lines, visible
from ppipe.timeline import BarEnd, Timeline, TimelineBar, TimelineRow

#: Every bar's body, whatever its end.
BODY = "━"
#: A bar's last column by how it ended, its colour, and the legend's words; OK has no mark of its own.
MARKS = {
    BarEnd.OK: (BODY, "green", "ran"),
    BarEnd.IGNORED: ("!", "yellow", "failed, ignored"),
    BarEnd.RESTARTED: ("↺", "yellow", "failed, ran again"),
    BarEnd.STOPPED: ("■", "magenta", "stopped by ppipe"),
    BarEnd.FAILED: ("✗", "bold red", "failed"),
}
#: Which of several bars in one column shows: the worst (a later key of MARKS), and a mark over a body.
_RANK = {end: rank for rank, end in enumerate(MARKS)}
#: The fewest columns the bars get, however narrow the terminal (the line is then cut at its edge).
FEWEST_COLUMNS = 10
#: Round steps between the axis's ticks, in seconds.
_STEPS = (
    *(base * 10.0**power for power in range(-3, 1) for base in (1, 2, 5)),
    10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
)  # fmt: skip

_Cell = tuple[int, str, str]  # rank, character, style


def timeline_view(timeline: Timeline, width: int) -> RenderableType:
    """``timeline`` drawn ``width`` columns wide: its rows, the time axis and a legend."""
    if not timeline.rows:
        return Text("nothing ran: no attempt to draw", style="dim")
    label_width = min(max(cell_len(row.label) for row in timeline.rows), max(8, width // 4))
    columns = max(FEWEST_COLUMNS, width - label_width - 2)
    # Columns per second; a run shorter than a microsecond (the reports' precision) is drawn in one column.
    scale = columns / timeline.duration if timeline.duration > 1e-6 else 0.0
    lines = [_row_line(row, label_width, columns, scale) for row in timeline.rows]
    return Group(*lines, *_axis(timeline.duration, label_width, columns, scale), _legend(timeline, width))


def _row_line(row: TimelineRow, label_width: int, columns: int, scale: float) -> Text:
    label = Text(visible(row.label), no_wrap=True, overflow="ellipsis")
    label.truncate(label_width, overflow="ellipsis", pad=True)
    line = Text.assemble(label, " │", no_wrap=True, overflow="crop")
    for rank, character, style in _cells(row, columns, scale):
        line.append(character, style=style if rank >= 0 else "")
    return line


def _cells(row: TimelineRow, columns: int, scale: float) -> list[_Cell]:
    """The row's columns: each the worst bar body or end mark in it, blank where nothing ran."""
    cells: list[_Cell] = [(-1, " ", "")] * columns
    owners = [0] * columns
    spans = [(bar, *_span(bar, columns, scale)) for bar in row.bars]
    for bar, first, end in spans:
        body = (_RANK[bar.how], BODY, MARKS[bar.how][1])
        for column in range(first, end):
            owners[column] += 1
            cells[column] = max(cells[column], body)
    for bar, _, end in spans:
        if bar.how is not BarEnd.OK:
            character, style, _ = MARKS[bar.how]
            cells[end - 1] = max(cells[end - 1], (len(MARKS) + _RANK[bar.how], character, style))
    if row.places == 1:
        for bar, first, end in spans:
            _name(cells, owners, bar, first, end)
    return cells


def _span(bar: TimelineBar, columns: int, scale: float) -> tuple[int, int]:
    """The columns ``[first, end)`` a bar takes: every one its time touches, at least one."""
    first = min(columns - 1, max(0, math.floor(bar.start * scale)))
    end = min(columns, max(first + 1, math.ceil(bar.end * scale)))
    return first, end


def _name(cells: list[_Cell], owners: list[int], bar: TimelineBar, first: int, end: int) -> None:
    """Writes the bar's shard id over its first columns that are its own (the very first may be shared with the
    bar before it), leaving its end mark room."""
    if bar.shard is None:
        return
    name = str(bar.shard)
    for start in (first, first + 1):
        if end - start >= len(name) + 1 and all(owners[column] == 1 for column in range(start, start + len(name))):
            for offset, character in enumerate(name):
                rank, _, style = cells[start + offset]
                cells[start + offset] = (rank, character, style)
            return


def _axis(duration: float, label_width: int, columns: int, scale: float) -> list[Text]:
    """The axis under the rows, a tick at each round time, and the times under the ticks."""
    step = _step(duration, scale)
    ticks = [(round(at * step * scale), _time_text(at * step, step)) for at in range(int(duration / step) + 1)]
    axis = ["─"] * columns
    times = [" "] * columns
    free = 0  # the first column a time may be written from without touching the one before
    for column, text in ticks:
        if column >= columns:
            continue
        axis[column] = "┬"
        if column >= free and column + len(text) <= len(times):
            times[column : column + len(text)] = text
            free = column + len(text) + 1
    indent = " " * label_width
    return [
        Text(f"{indent} └{''.join(axis)}", style="dim", no_wrap=True, overflow="crop"),
        Text(f"{indent}  {''.join(times).rstrip()}", style="dim", no_wrap=True, overflow="crop"),
    ]


def _step(duration: float, scale: float) -> float:
    """The smallest round step whose ticks stand far enough apart for their times (and 8 columns at least)."""
    for step in _STEPS:
        if step * scale >= max(8, len(_time_text(duration, step)) + 2):
            return step
    return max(duration, _STEPS[-1])


def _time_text(seconds: float, step: float) -> str:
    """A tick's time, as precise as its step: ``0s``, ``0.25s``, ``45s``, ``1m30s``, ``2h15m``."""
    if seconds == 0:
        return "0s"
    if seconds < 60:
        decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
        return f"{seconds:.{decimals}f}s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"
    hours, rest = divmod(round(seconds) // 60, 60)
    return f"{hours}h{rest:02d}m" if rest else f"{hours}h"


def _legend(timeline: Timeline, width: int) -> Text:
    """The marks the picture holds, each with its words, and how many places a grouped row holds; broken into
    lines between entries, never inside one."""
    ends = {bar.how for row in timeline.rows for bar in row.bars} | {BarEnd.OK}
    parts = [
        Text.assemble((character, style), f" {words}")
        for end, (character, style, words) in MARKS.items()
        if end in ends
    ]
    grouped = max(row.places for row in timeline.rows)
    if grouped > 1:
        parts.append(Text(f"{timeline.places} {timeline.rows[0].kind.value}s, up to {grouped} a row"))
    return footer_lines(parts, width)
