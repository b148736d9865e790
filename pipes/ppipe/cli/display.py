"""The live view: a rich table of every stage on the terminal, from the engine's own loop.

:class:`LiveView` owns the terminal for the run: entering starts a rich
``Live`` (``auto_refresh=False``, so no thread) and leaving always stops it,
restoring the cursor, even on Ctrl-C or an error. The engine tells it when
the run has started; a tornado ``PeriodicCallback`` then redraws it about ten
times a second from :meth:`Execution.snapshot <ppipe.engine.execution.Execution.snapshot>`.
While it is up, the stages' stderr and the last stage's output are printed
above it, whole lines at a time, so nothing tears the table. When the run
ends the table gives way to a summary with exact figures and, when a stage
failed, a panel with each failed stage's status and last stderr lines.

Importing this module imports rich; nothing else in ppipe does.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import IO, TYPE_CHECKING

from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from tornado.ioloop import PeriodicCallback

from ppipe.engine.sinks import Sink
from ppipe.graph import tree_prefixes
from ppipe.results import RunResult, StageFlow, StageResult, Verdict
from ppipe.snapshots import Run, RunSnapshot, ShardSnapshot, ShardState, StageSnapshot, StageState

if TYPE_CHECKING:
    from ppipe.graph import Stage

#: Redraws per second.
REFRESH_HZ = 10
#: The share of the last moments the pipeline must wait on a stage for the view to mark it the
#: bottleneck; the marked stage keeps the mark until its share falls below ``BOTTLENECK_LEAVE`` or
#: another's passes its own by ``BOTTLENECK_MARGIN`` (hysteresis: the mark moves with the evidence,
#: not with the noise between two stages scoring alike).
BOTTLENECK_ENTER = 0.5
BOTTLENECK_LEAVE = 0.3
BOTTLENECK_MARGIN = 0.2
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_MARKS = {
    Verdict.OK: ("✓", "green"),
    Verdict.FAILED: ("✗", "red"),
    Verdict.IGNORED: ("!", "yellow"),
    Verdict.BROKEN_PIPE: ("✓", "green"),
    Verdict.TERMINATED: ("✗", "red"),
}


def human_bytes(count: int | None) -> str:
    """``6.9 MB``: decimal units, as pv and dd print them; ``-`` when unknown."""
    if count is None:
        return "-"
    size = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if round(size, 1) < 1000 or unit == "TB":  # 999.96 kB would print as 1000.0 kB: 1.0 MB
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def human_count(count: int | None, at_least: int | None = None, estimate: int | None = None) -> str:
    """``1.0M``: a line count in three to seven characters.

    Where only a sample of a fast edge's bytes had its lines counted (under
    the view), ``count`` is None: ``≈1.0M`` shows ``estimate``, the sample's
    newline density times all the bytes, and, without one, ``≥1.0M`` shows
    ``at_least``, what was counted. ``-`` when nothing is known.
    """
    return _count_text(count, at_least, estimate, _short_count)


def _short_count(count: int) -> str:
    if count < 10_000:
        return str(count)
    for unit, size in (("k", 1e3), ("M", 1e6), ("G", 1e9)):
        if round(count / size, 1) < 1000 or unit == "G":  # 999.96k would print as 1000.0k: 1.0M
            return f"{count / size:.1f}{unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def _count_text(
    count: int | None, at_least: int | None = None, estimate: int | None = None, show: Callable[[int], str] = str
) -> str:
    if count is not None:
        return show(count)
    if estimate is not None:
        return "≈" + show(estimate)
    return "-" if at_least is None else "≥" + show(at_least)


def _line_cells(flow: StageFlow, show: Callable[[int], str] = str) -> tuple[str, str]:
    """The stage's lines in and out as its row shows them: exact, ``≈`` estimated or ``≥`` at least."""
    return (
        _count_text(flow.lines_in, flow.lines_in_at_least, flow.lines_in_estimate, show),
        _count_text(flow.lines_out, flow.lines_out_at_least, flow.lines_out_estimate, show),
    )


#: Said under the view and the summary when a line count is estimated from a sample.
ESTIMATE_NOTE = "≈: lines estimated from a sample of a fast edge, to cost nothing; --lines counts all"
#: Said under the view and the summary when a line count is a lower bound (no sample to estimate from).
AT_LEAST_NOTE = "≥: line counting stopped on a fast edge, to cost nothing; --lines counts all"


def _notes(cells: Iterable[str]) -> list[Text]:
    """The notes explaining the marks used in ``cells`` (``≈``, ``≥``), once each."""
    used = {cell[:1] for cell in cells}
    return [Text(note, style="dim") for mark, note in (("≈", ESTIMATE_NOTE), ("≥", AT_LEAST_NOTE)) if mark in used]


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}s" if value < 60 else f"{int(value // 60)}m{int(value % 60):02d}s"


@dataclass(frozen=True)
class Column:
    """A column of a view's table.

    ``width`` is the least it takes, so that the table does not shift as
    figures grow; a wider cell widens it. ``keep`` ranks the columns for a
    narrow terminal: those with the lowest go first, whole. The ``fill``
    column (the command) takes the width the others leave and is the only
    one ever shortened, with an ellipsis.
    """

    name: str
    width: int
    keep: int = 0
    fill: bool = False
    left: bool = False


#: The command column keeps at least this many cells (or its whole text, if shorter) before others go.
COMMAND_MIN = 16
_Cell = str | Text


def fitted_table(columns: Sequence[Column], rows: Sequence[Sequence[_Cell]], width: int) -> Table:
    """A borderless table of ``rows`` that fits ``width`` cells without cutting a figure.

    Every column is as wide as its widest cell; when that leaves the command
    less than ``COMMAND_MIN``, whole columns are dropped, least kept first.
    """
    widths = [
        max(column.width, cell_len(column.name), *(_cell_width(row[i]) for row in rows))
        for i, column in enumerate(columns)
    ]
    kept = _columns_that_fit(columns, widths, width)
    others = sum(widths[i] for i in kept if not columns[i].fill) + len(kept) - 1  # a space between columns
    table = Table(box=None, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False)
    for i in kept:
        column = columns[i]
        table.add_column(
            column.name,
            justify="left" if column.left else "right",
            no_wrap=True,
            overflow="ellipsis",
            width=max(1, width - others) if column.fill else widths[i],
        )
    for row in rows:
        table.add_row(*(row[i] for i in kept))
    return table


def _columns_that_fit(columns: Sequence[Column], widths: list[int], width: int) -> list[int]:
    """The indexes of the columns to show: all of them, less the least kept until the rest fit."""
    kept = list(range(len(columns)))

    def needed() -> int:
        return sum(min(widths[i], COMMAND_MIN) if columns[i].fill else widths[i] for i in kept) + len(kept) - 1

    for index in sorted((i for i, c in enumerate(columns) if not c.fill), key=lambda i: columns[i].keep):
        if needed() <= width:
            break
        kept.remove(index)
    return kept


def _cell_width(cell: _Cell) -> int:
    return cell.cell_len if isinstance(cell, Text) else cell_len(cell)


def footer_lines(parts: Sequence[Text], width: int) -> Text:
    """``parts`` joined by `` · ``, a new line instead where the next part would not fit, never inside one."""
    footer = Text(style="dim")
    line = 0
    for part in parts:
        if line and line + 3 + part.cell_len > width:
            footer.append("\n")
            line = 0
        elif line:
            footer.append(" · ")
            line += 3
        footer.append_text(part)
        line += part.cell_len
    return footer


class _ConsoleSink(Sink):
    """Prints bytes above the live table, as they are or each line prefixed with its stage."""

    def __init__(self, view: LiveView, prefix: str = "") -> None:
        self.view = view
        self.prefix = prefix

    async def write(self, chunk: bytes | memoryview, feeder: object) -> bool:
        text = bytes(chunk).decode("utf-8", "replace")
        if self.prefix:
            for line in text.splitlines():
                self.view.print(Text.assemble((self.prefix, "dim"), line))
        else:
            # Whole lines (a LineJoiner feeds this); the print ends the last one.
            self.view.print(Text(text.removesuffix("\n")))
        return True


class LiveView:
    """The live view of a run; it owns the terminal between ``__enter__`` and ``__exit__``.

    It is the run's observer (:class:`~ppipe.snapshots.RunObserver`) and
    redraws in :meth:`refresh`, about ten times a second from the run's own
    loop once the run has started. A plain run is drawn as its stages
    (:class:`StageRows`), a sharded one as its shards (:class:`ShardRows`):
    the snapshot says which.
    """

    def __init__(
        self,
        file: IO[str],
        *,
        show_output: bool = False,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console or Console(file=file, highlight=False)
        self.show_output = show_output
        #: Where rates and waits take their time from (a test's own clock makes them exact).
        self.clock = clock
        self.live = Live(
            console=self.console, auto_refresh=False, transient=True, redirect_stdout=False, redirect_stderr=False
        )
        self._timer: PeriodicCallback | None = None
        #: Frames drawn so far: the spinners turn with it.
        self.frame_number = 0
        self.run: Run | None = None
        self.stages = StageRows(self)
        self.shards = ShardRows(self)

    def __enter__(self) -> LiveView:
        self.live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.finished()
        self.live.stop()  # always: the cursor comes back whatever happened

    def stdout_sink(self) -> Sink | None:
        return _ConsoleSink(self) if self.show_output else None

    def stderr_sink(self, task_id: int, stage: Stage | None) -> Sink | None:
        """Stderr printed above the view, each line prefixed with its stage (a plain run) or its shard."""
        prefix = f"[{stage.id} {stage.argv[0]}] " if stage is not None else f"[shard {task_id}] "
        return _ConsoleSink(self, prefix=prefix)

    def started(self, run: Run) -> None:
        self.run = run
        self.stages.tree = tree_prefixes(run.graph) if run.graph is not None else {}
        self.start_refreshing()

    def snapshot(self) -> RunSnapshot | None:
        """The run as it is now, or None before it has started."""
        return self.run.snapshot() if self.run is not None else None

    def start_refreshing(self) -> None:
        self._timer = PeriodicCallback(self.refresh, 1000 / REFRESH_HZ)
        self._timer.start()
        self.refresh()

    def finished(self) -> None:
        if self._timer is not None:
            self._timer.stop()

    def print(self, renderable: RenderableType) -> None:
        self.live.console.print(renderable, soft_wrap=True)

    def refresh(self) -> None:
        """Takes a snapshot of the run, measures the change since the last one, redraws."""
        snapshot = self.snapshot()
        if snapshot is not None:
            self.live.update(self.frame(snapshot), refresh=True)

    def frame(self, snapshot: RunSnapshot) -> RenderableType:
        """The next frame: measures what changed since the last snapshot, then draws this one."""
        self.frame_number += 1
        rows = self.shards if snapshot.sharded else self.stages
        rows.measure(snapshot)
        return rows.render(snapshot)

    def render_summary(self, result: RunResult) -> RenderableType:
        """The end of the run: exact figures, then a panel for each failure."""
        return self.stages.summary(result) if result.local is not None else self.shards.summary(result)

    def bottleneck(self, snapshot: RunSnapshot) -> int | None:
        """The stage holding a plain run back, if one is (see :meth:`StageRows.bottleneck`)."""
        return self.stages.bottleneck(snapshot)


class StageRows:
    """The view's rows for a plain run: a row per stage, the bottleneck marked, as pv would for each pipe."""

    def __init__(self, view: LiveView) -> None:
        self.view = view
        #: The stage marked as the bottleneck, kept until the evidence moves (see :meth:`bottleneck`).
        self._marked: int | None = None
        #: Per stage, the prefix that draws a graph's branches as a tree (empty for a plain pipeline).
        self.tree: dict[int, str] = {}
        self._last: dict[int, tuple[float, int, float]] = {}
        self._rates: dict[int, float] = {}
        self._read_last: dict[int, int] = {}
        self._read_rates: dict[int, float] = {}
        self._slowness: dict[int, float] = {}

    # -- drawing

    def measure(self, snapshot: RunSnapshot) -> None:
        """Updates each stage's rate and slowness from the change since the last refresh, then the mark."""
        now = self.view.clock()
        for stage in snapshot.stages:
            moved, held = stage.flow.bytes_out or 0, stage.flow.held
            then, moved_before, held_before = self._last.get(stage.id, (now, moved, held))
            self._last[stage.id] = (now, moved, held)
            read = stage.input_read or 0
            read_before = self._read_last.get(stage.id, read)
            self._read_last[stage.id] = read
            if now > then:
                interval = now - then
                self._rates[stage.id] = (moved - moved_before) / interval
                self._read_rates[stage.id] = (
                    0.7 * self._read_rates.get(stage.id, 0.0) + 0.3 * (read - read_before) / interval
                )
                share = min(2.0, (held - held_before) / interval)
                self._slowness[stage.id] = 0.6 * self._slowness.get(stage.id, 0.0) + 0.4 * share
        self._marked = self._next_bottleneck(snapshot)

    #: The live table's columns; on a narrow terminal the lowest ``keep`` go first (the ratio, the pid...).
    COLUMNS = (
        Column("", 1, keep=10, left=True),
        Column("#", 2, keep=9),
        Column("command", 10, fill=True, left=True),
        Column("pid", 7, keep=2),
        Column("in", 8, keep=4),
        Column("lines", 7, keep=3),
        Column("out", 8, keep=8),
        Column("lines", 7, keep=7),
        Column("out/in", 6, keep=1),
        Column("rate", 10, keep=6),
        Column("time", 5, keep=5),
    )

    def render(self, snapshot: RunSnapshot) -> RenderableType:
        """The table for one snapshot; rates and the bottleneck come from the measures so far."""
        slowest = self.bottleneck(snapshot)
        rows = [self._row(stage, slowest) for stage in snapshot.stages]
        table = fitted_table(self.COLUMNS, rows, self.view.console.width)
        notes = _notes(cell for stage in snapshot.stages for cell in _line_cells(stage.flow))
        return Group(table, footer_lines(self._footer_parts(snapshot, slowest), self.view.console.width), *notes)

    def _row(self, stage: StageSnapshot, slowest: int | None) -> list[_Cell]:
        flow = stage.flow
        lines_in, lines_out = _line_cells(flow, _short_count)
        command = Text(
            self.tree.get(stage.id, "") + _one_line(stage.command), style="bold yellow" if stage.id == slowest else ""
        )
        return [
            self._mark(stage),
            str(stage.id),
            command,
            str(stage.pid or "-"),
            human_bytes(flow.bytes_in),
            lines_in,
            human_bytes(flow.bytes_out),
            lines_out,
            "-" if flow.ratio is None else f"{flow.ratio:.2f}",
            self._rate(stage),
            _seconds(stage.elapsed),
        ]

    def _footer_parts(self, snapshot: RunSnapshot, slowest: int | None) -> list[Text]:
        moved = sum(s.flow.bytes_out or 0 for s in snapshot.stages)
        parts = [
            Text(f"{len(snapshot.stages)} stages"),
            Text(f"{human_bytes(moved)} moved"),
            Text(_seconds(snapshot.elapsed)),
        ]
        if slowest is not None:
            parts.append(Text(f"bottleneck: stage {slowest}", style="bold yellow"))
        parts.extend(
            Text(f"stage {stage.id} input {self._progress(stage)}")
            for stage in snapshot.stages
            if stage.input_size and stage.input_read is not None
        )
        return parts

    def _progress(self, stage: StageSnapshot) -> str:
        """``45% ETA 12s`` for a stage reading a file of known size, as pv shows it."""
        assert stage.input_size and stage.input_read is not None
        done = min(stage.input_read, stage.input_size)
        text = f"{100 * done // stage.input_size}%"
        rate = self._read_rates.get(stage.id, 0.0)
        if rate > 0 and done < stage.input_size:
            text += f" ETA {_seconds((stage.input_size - done) / rate)}"
        return text

    def bottleneck(self, snapshot: RunSnapshot) -> int | None:
        """The stage holding the pipeline back, if one is and is still running (as the last measure chose).

        A stage is slow when its input edge waits for it to read; a first
        stage (whose input ppipe does not pump) when its output edge waits for
        it to write. The share of the last moments spent waiting so
        (smoothed) scores it. A stage's output alone says nothing further
        down: ``wc`` keeps its consumer waiting all along. The mark has
        hysteresis, so that two stages scoring alike do not swap it from frame
        to frame: see :meth:`_next_bottleneck`.
        """
        running = {s.id for s in snapshot.stages if s.state is StageState.RUNNING}
        return self._marked if self._marked in running else None

    def _next_bottleneck(self, snapshot: RunSnapshot) -> int | None:
        """The mark after this measure: it moves only when the evidence does.

        A running stage takes an empty mark once waited on for more than
        ``BOTTLENECK_ENTER`` of the last moments. The marked stage keeps it
        while it runs and scores at least ``BOTTLENECK_LEAVE``, unless another
        scores ``BOTTLENECK_MARGIN`` more than it (and above the entry level).
        """
        running = [s.id for s in snapshot.stages if s.state is StageState.RUNNING]
        score = {sid: self._slowness.get(sid, 0.0) for sid in running}
        challenger = max(running, key=score.__getitem__, default=None)
        marked = self._marked if self._marked in score and score[self._marked] >= BOTTLENECK_LEAVE else None
        if challenger is None or score[challenger] <= BOTTLENECK_ENTER:
            return marked
        if marked is None or score[challenger] > score[marked] + BOTTLENECK_MARGIN:
            return challenger
        return marked

    def _mark(self, stage: StageSnapshot) -> Text:
        if stage.state is StageState.RUNNING:
            return Text(_SPINNER[self.view.frame_number % len(_SPINNER)], style="cyan")
        if stage.state is StageState.DONE:
            return Text("✓", style="green")
        if stage.state is StageState.EXITED:
            return Text(stage.signal or str(stage.status), style="yellow")
        return Text("·", style="dim")

    def _rate(self, stage: StageSnapshot) -> str:
        if stage.state is not StageState.RUNNING:
            return "-"
        return human_bytes(int(self._rates.get(stage.id, 0))) + "/s"

    def summary(self, result: RunResult) -> RenderableType:
        """The end of the run: exact figures per stage, then a panel for each failure."""
        tree = tree_prefixes(result.graph) if result.graph is not None else {}
        flows = {s.stage.id: result.flow(s.stage.id) for s in result.stages}
        rows: list[list[_Cell]] = []
        for stage in result.stages:
            sid, flow = stage.stage.id, flows[stage.stage.id]
            rows.append(
                [
                    Text(self._final_mark(stage), style=_MARKS.get(stage.verdict, ("?", ""))[1]),
                    str(sid),
                    tree[sid] + _one_line(stage.stage.command),
                    _count_text(flow.bytes_in),
                    _line_cells(flow)[0],
                    _count_text(flow.bytes_out),
                    _line_cells(flow)[1],
                    _seconds(stage.duration),
                ]
            )
        parts: list[RenderableType] = [fitted_table(self.SUMMARY_COLUMNS, rows, self.view.console.width)]
        parts.extend(_notes(cell for flow in flows.values() for cell in _line_cells(flow)))
        for stage in result.failures:
            tail = "\n".join(stage.stderr_tail[-5:]) or "(no stderr)"
            parts.append(
                failure_panel(
                    f"stage {stage.stage.id} failed",
                    stage.describe_end(),
                    Text(tail),
                    _one_line(stage.stage.command),
                    self.view.console.width,
                )
            )
        return Group(*parts)

    #: The summary's columns (see :data:`COLUMNS`): exact figures, so wider.
    SUMMARY_COLUMNS = (
        Column("", 1, keep=10, left=True),
        Column("#", 2, keep=9),
        Column("command", 10, fill=True, left=True),
        Column("bytes in", 10, keep=4),
        Column("lines in", 9, keep=3),
        Column("bytes out", 10, keep=8),
        Column("lines out", 9, keep=7),
        Column("time", 6, keep=5),
    )

    @staticmethod
    def _final_mark(stage: StageResult) -> str:
        """``✓``, or a mark with how it ended: ``✗ 3``, ``✓ SIGPIPE``."""
        mark = _MARKS.get(stage.verdict, ("?", ""))[0]
        return mark if stage.verdict is Verdict.OK else f"{mark} {stage.signal or stage.status}"


def failure_panel(title: str, end: str, body: Text, command: str, width: int) -> Panel:
    """A red panel for one failure, its title never cut: ``stage 2 failed: exit status 3`` on the
    border where the terminal is wide enough, else the border says ``title`` and the first line of
    the panel, which wraps, says how it ended (``end``; empty: nothing to add)."""
    headline = f"{title}: {end}" if end else title
    if cell_len(headline) + 6 <= width:  # the border's corners, dashes and spaces around the title
        return Panel(body, title=headline, subtitle=Text(command), border_style="red", expand=False)
    return Panel(
        Text.assemble((end, "bold"), "\n", body), title=title, subtitle=Text(command), border_style="red", expand=False
    )


def _one_line(command: str) -> str:
    """A command as one line: a multi-line script argument must not break the row."""
    return " ".join(command.split())


class PlainProgress:
    """``--progress plain``: a one-line status on stderr every few seconds, for CI logs.

    No escape codes, nothing redrawn: each line stands alone in a log. It is
    an observer like :class:`LiveView`, but leaves the stages' stderr and
    output alone.
    """

    def __init__(self, file: IO[str], every: float = 5.0) -> None:
        self.file = file
        self.every = every
        self.run: Run | None = None
        self._timer: PeriodicCallback | None = None

    def stdout_sink(self) -> Sink | None:
        return None

    def stderr_sink(self, task_id: int, stage: Stage | None) -> Sink | None:
        return None

    def started(self, run: Run) -> None:
        self.run = run
        self._timer = PeriodicCallback(self.report, self.every * 1000)
        self._timer.start()

    def finished(self) -> None:
        if self._timer is not None:
            self._timer.stop()

    def report(self) -> None:
        if self.run is not None:
            with contextlib.suppress(OSError):
                self.file.write(self.line(self.run.snapshot()) + "\n")
                self.file.flush()

    @staticmethod
    def line(snapshot: RunSnapshot) -> str:
        """``ppipe: 12.0s | 1 seq running 6.9 MB out | 3 wc done``; a shard a part in a sharded run
        (``shard 1 restarting (try 2) 0 B out``)."""
        parts = [f"ppipe: {_seconds(snapshot.elapsed)}"]
        if snapshot.sharded:
            parts.extend(_shard_part(shard) for shard in snapshot.shards)
        else:
            parts.extend(_stage_part(stage) for stage in snapshot.stages)
        return " | ".join(parts)


def _stage_part(stage: StageSnapshot) -> str:
    state = stage.state.value if stage.state is not StageState.EXITED else f"exited {stage.status}"
    out = f" {human_bytes(stage.flow.bytes_out)} out" if stage.flow.bytes_out is not None else ""
    return f"{stage.id} {stage.command[:20]} {state}{out}"


def _shard_part(shard: ShardSnapshot) -> str:
    tries = f" (try {shard.attempts})" if shard.attempts > 1 else ""
    return f"shard {shard.task_id} {shard.state.value}{tries} {human_bytes(shard.bytes_out)} out"


_SHARD_STYLES = {
    ShardState.RUNNING: "cyan",
    ShardState.RESTARTING: "yellow",
    ShardState.DONE: "green",
    ShardState.FAILED: "red",
    ShardState.STOPPED: "red",
    ShardState.WAITING: "dim",
}


class ShardRows:
    """The view's rows for a sharded run (``--fork``): a row per shard, its stages beneath while there is room.

    Stage rows come from the snapshots each shard attempt sends a few times
    a second. They are shown under each shard, first shards first, as long
    as the whole view fits the terminal's height; below that, shards keep
    their one row. Shards' stderr lines are printed above the view, each
    prefixed with its shard.
    """

    def __init__(self, view: LiveView) -> None:
        self.view = view
        self._last: dict[int, tuple[float, int]] = {}
        self._rates: dict[int, float] = {}

    def measure(self, snapshot: RunSnapshot) -> None:
        now = self.view.clock()
        for shard in snapshot.shards:
            then, before = self._last.get(shard.task_id, (now, shard.bytes_out))
            self._last[shard.task_id] = (now, shard.bytes_out)
            if now > then:
                self._rates[shard.task_id] = (shard.bytes_out - before) / (now - then)

    #: The live table's columns (see :data:`LiveView.COLUMNS`); a shard's stages fill the same ones.
    COLUMNS = (
        Column("", 1, keep=10, left=True),
        Column("shard", 5, keep=9),
        Column("state", 10, keep=8, left=True),
        Column("command", 10, fill=True, left=True),
        Column("pid", 7, keep=2),
        Column("tries", 5, keep=3),
        Column("in", 8, keep=4),
        Column("out", 8, keep=7),
        Column("rate", 10, keep=6),
        Column("time", 5, keep=5),
    )

    def render(self, snapshot: RunSnapshot) -> RenderableType:
        """A row per shard and, while the screen has room, a row per running stage beneath it."""
        rows: list[list[_Cell]] = []
        room = self.view.console.height - len(snapshot.shards) - 3
        for shard in snapshot.shards:
            stages = shard.stages.stages if shard.stages is not None and shard.state is ShardState.RUNNING else ()
            rows.append(self._shard_row(shard, stages))
            if stages and room >= len(stages):
                room -= len(stages)
                rows.extend(_stage_row(stage) for stage in stages)
        states = [s.state for s in snapshot.shards]
        counts = [f"{states.count(state)} {state.value}" for state in _SHARD_STYLES if states.count(state)]
        moved = sum(s.bytes_out for s in snapshot.shards)
        parts = [
            Text(f"{len(snapshot.shards)} shards: {counts[0]}" if counts else f"{len(snapshot.shards)} shards"),
            *(Text(count) for count in counts[1:]),
            Text(f"{human_bytes(moved)} out"),
            Text(_seconds(snapshot.elapsed)),
        ]
        return Group(
            fitted_table(self.COLUMNS, rows, self.view.console.width), footer_lines(parts, self.view.console.width)
        )

    def _shard_row(self, shard: ShardSnapshot, stages: tuple[StageSnapshot, ...]) -> list[_Cell]:
        style = _SHARD_STYLES.get(shard.state, "")
        mark = _SPINNER[self.view.frame_number % len(_SPINNER)] if shard.state is ShardState.RUNNING else "·"
        rate = human_bytes(int(self._rates.get(shard.task_id, 0))) + "/s" if shard.state is ShardState.RUNNING else "-"
        command = " | ".join(_one_line(s.command) for s in stages)
        return [
            Text(mark, style=style),
            str(shard.task_id),
            Text(shard.state.value, style=style),
            command,
            str(shard.pid or "-"),
            str(shard.attempts),
            human_bytes(shard.bytes_in),
            human_bytes(shard.bytes_out),
            rate,
            _seconds(shard.elapsed),
        ]

    #: The summary's columns: exact figures, the pipeline last.
    SUMMARY_COLUMNS = (
        Column("", 1, keep=10, left=True),
        Column("shard", 5, keep=9),
        Column("status", 6, keep=8),
        Column("tries", 5, keep=3),
        Column("bytes in", 10, keep=4),
        Column("bytes out", 10, keep=7),
        Column("lines out", 9, keep=6),
        Column("time", 6, keep=5),
        Column("command", 10, fill=True, left=True),
    )

    def summary(self, result: RunResult) -> RenderableType:
        """Each shard's final verdict, attempts and figures; a panel per failed shard."""
        rows: list[list[_Cell]] = []
        for shard in result.shards:
            mark, style = _MARKS.get(shard.verdict, ("?", ""))
            first = shard.attempts[0].started_at if shard.attempts else None
            last = shard.attempts[-1].ended_at if shard.attempts else None
            rows.append(
                [
                    Text(mark, style=style),
                    str(shard.task_id),
                    str(shard.exit_status),
                    str(len(shard.attempts)),
                    _count_text(shard.bytes_in),
                    str(shard.bytes_out),
                    _count_text(shard.lines_out),
                    _seconds(None if first is None or last is None else last - first),
                    _one_line(shard.pipeline),
                ]
            )
        parts: list[RenderableType] = [fitted_table(self.SUMMARY_COLUMNS, rows, self.view.console.width)]
        for shard in result.failed_shards:
            lines = [f"attempt {a.number}: {a.describe_end()}" for a in shard.attempts]
            for stage in shard.last_failures:
                lines.append(f"stage {stage.stage.id} ({_one_line(stage.stage.command)}): {stage.describe_end()}")
                lines.extend(f"  {line}" for line in stage.stderr_tail[-5:])
            parts.append(
                failure_panel(
                    f"shard {shard.task_id} failed",
                    "",
                    Text("\n".join(lines)),
                    _one_line(shard.pipeline),
                    self.view.console.width,
                )
            )
        return Group(*parts)


def _stage_row(stage: StageSnapshot) -> list[_Cell]:
    """A running shard's stage, beneath its row: its state in the state column, ``└ 2 grep x`` as the command."""
    state = stage.state.value if stage.state is not StageState.EXITED else f"exit {stage.status}"
    return [
        "",
        "",
        Text(state, style="dim"),
        Text(f"└ {stage.id} {_one_line(stage.command)}", style="dim"),
        str(stage.pid or "-"),
        "",
        human_bytes(stage.flow.bytes_in),
        human_bytes(stage.flow.bytes_out),
        "",
        "",
    ]
