"""The live view: a rich table of every stage on the terminal, from the engine's own loop.

:class:`LiveView` owns the terminal for the run: entering starts a rich
``Live`` (``auto_refresh=False``, so no thread) and leaving always stops it,
restoring the cursor, even on Ctrl-C or an error. The engine tells it when
the run has started; a tornado ``PeriodicCallback`` then redraws it about ten
times a second from :meth:`Execution.snapshot <ppipe.engine.Execution.snapshot>`.
While it is up, the stages' stderr and the last stage's output are printed
above it, whole lines at a time, so nothing tears the table. When the run
ends the table gives way to a summary with exact figures and, when a stage
failed, a panel with each failed stage's status and last stderr lines.

Importing this module imports rich; nothing else in ppipe does.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, TypeVar

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from tornado.ioloop import PeriodicCallback

from .graph import tree_prefixes
from .pumps import Sink
from .result import RunResult, ShardedResult, StageFlow, StageResult, Verdict
from .snapshot import RunSnapshot, StageSnapshot, StageState

if TYPE_CHECKING:
    from .engine import Execution
    from .graph import Stage
    from .shards import ShardedExecution, ShardedSnapshot

#: Redraws per second.
REFRESH_HZ = 10
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_MARKS = {Verdict.OK: ("✓", "green"), Verdict.FAILED: ("✗", "red"), Verdict.IGNORED: ("!", "yellow"),
          Verdict.BROKEN_PIPE: ("✓", "green"), Verdict.TERMINATED: ("✗", "red")}


def human_bytes(count: int | None) -> str:
    """``6.9 MB``: decimal units, as pv and dd print them; ``-`` when unknown."""
    if count is None:
        return "-"
    size = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def human_count(count: int | None, at_least: int | None = None) -> str:
    """``1.0M``: a line count in three to six characters; ``≥1.0M`` for ``at_least``, what was
    counted before counting stopped (a fast edge under the view); ``-`` when neither is known."""
    return _count_text(count, at_least, _short_count)


def _short_count(count: int) -> str:
    if count < 10_000:
        return str(count)
    for unit, size in (("k", 1e3), ("M", 1e6), ("G", 1e9)):
        if count < size * 1000 or unit == "G":
            return f"{count / size:.1f}{unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def _count_text(count: int | None, at_least: int | None, show: Callable[[int], str] = str) -> str:
    if count is not None:
        return show(count)
    return "-" if at_least is None else "≥" + show(at_least)


def _partial(flow: StageFlow) -> bool:
    return flow.lines_in_at_least is not None or flow.lines_out_at_least is not None


#: Said under the view and the summary when a line count is a lower bound.
AT_LEAST_NOTE = "≥: line counting stopped on a fast edge, to cost nothing; --lines counts all"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}s" if value < 60 else f"{int(value // 60)}m{int(value % 60):02d}s"


class _ConsoleSink(Sink):
    """Prints bytes above the live table, as they are or each line prefixed with its stage."""

    def __init__(self, view: _TerminalView, prefix: str = "") -> None:
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


_View = TypeVar("_View", bound="_TerminalView")


class _TerminalView:
    """What every live view shares: it owns the terminal between ``__enter__`` and ``__exit__``.

    Subclasses draw in :meth:`refresh`, called about ten times a second from
    the run's own loop once :meth:`start_refreshing` was called.
    """

    def __init__(self, file: IO[str], *, show_output: bool = False, console: Console | None = None) -> None:
        self.console = console or Console(file=file, highlight=False)
        self.show_output = show_output
        self.live = Live(console=self.console, auto_refresh=False, transient=True,
                         redirect_stdout=False, redirect_stderr=False)
        self._timer: PeriodicCallback | None = None
        self._frame = 0

    def __enter__(self: _View) -> _View:
        self.live.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.finished()
        self.live.stop()  # always: the cursor comes back whatever happened

    def stdout_sink(self) -> Sink | None:
        return _ConsoleSink(self) if self.show_output else None

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
        execution = getattr(self, "execution", None)
        if execution is not None:
            self._frame += 1
            snapshot = execution.snapshot()
            self._measure(snapshot)
            self.live.update(self.render(snapshot), refresh=True)

    def _measure(self, snapshot: Any) -> None:
        raise NotImplementedError

    def render(self, snapshot: Any) -> RenderableType:
        raise NotImplementedError


class LiveView(_TerminalView):
    """The view of one run: a row per stage. Use as a context manager around the run."""

    def __init__(self, file: IO[str], *, show_output: bool = False, console: Console | None = None) -> None:
        super().__init__(file, show_output=show_output, console=console)
        self.execution: Execution | None = None
        #: Per stage, the prefix that draws a graph's branches as a tree (empty for a plain pipeline).
        self.tree: dict[int, str] = {}
        self._last: dict[int, tuple[float, int, float]] = {}
        self._rates: dict[int, float] = {}
        self._read_last: dict[int, int] = {}
        self._read_rates: dict[int, float] = {}
        self._slowness: dict[int, float] = {}

    # -- the engine's observer interface

    def stderr_sink(self, stage: Stage) -> Sink | None:
        return _ConsoleSink(self, prefix=f"[{stage.id} {stage.argv[0]}] ")

    def started(self, execution: Execution) -> None:
        self.execution = execution
        self.tree = tree_prefixes(execution.graph)
        self.start_refreshing()

    # -- drawing

    def _measure(self, snapshot: RunSnapshot) -> None:
        """Updates each stage's rate and slowness from the change since the last refresh."""
        now = time.monotonic()
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
                self._read_rates[stage.id] = (0.7 * self._read_rates.get(stage.id, 0.0)
                                              + 0.3 * (read - read_before) / interval)
                share = min(2.0, (held - held_before) / interval)
                self._slowness[stage.id] = 0.6 * self._slowness.get(stage.id, 0.0) + 0.4 * share

    def render(self, snapshot: RunSnapshot) -> RenderableType:
        """The table for one snapshot; rates come from the previous one."""
        wide = self.console.width >= 100
        columns = [("", 1), ("#", 2), ("command", 0), ("pid", 7), ("in", 8), ("lines", 7), ("out", 8),
                   ("lines", 7), *((("out/in", 6),) if wide else ()), ("rate", 10), ("time", 5)]
        table = _table(columns, self.console.width)
        slowest = self.bottleneck(snapshot)
        for stage in snapshot.stages:
            flow = stage.flow
            ratio = "-" if flow.ratio is None else f"{flow.ratio:.2f}"
            command = Text(self.tree.get(stage.id, "") + _one_line(stage.command),
                           style="bold yellow" if stage.id == slowest else "")
            table.add_row(self._mark(stage), str(stage.id), command, str(stage.pid or "-"),
                          human_bytes(flow.bytes_in), human_count(flow.lines_in, flow.lines_in_at_least),
                          human_bytes(flow.bytes_out), human_count(flow.lines_out, flow.lines_out_at_least),
                          *((ratio,) if wide else ()), self._rate(stage), _seconds(stage.elapsed))
        moved = sum(s.flow.bytes_out or 0 for s in snapshot.stages)
        footer = Text(f"{len(snapshot.stages)} stages · {human_bytes(moved)} moved · {_seconds(snapshot.elapsed)}",
                      style="dim")
        if slowest is not None:
            footer.append(f" · bottleneck: stage {slowest}", style="bold yellow")
        for stage in snapshot.stages:
            if stage.input_size and stage.input_read is not None:
                footer.append(f" · stage {stage.id} input {self._progress(stage)}")
        if any(_partial(s.flow) for s in snapshot.stages):
            return Group(table, footer, Text(AT_LEAST_NOTE, style="dim"))
        return Group(table, footer)

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
        """The stage holding the pipeline back, if one is (from the last refresh's measure).

        A stage is slow when its input edge waits for it to read; a first
        stage (whose input ppipe does not pump) when its output edge waits for
        it to write. The share of the last moments spent waiting so
        (smoothed) scores it, and the worst running stage, waited on more
        than half the time, is the bottleneck. A stage's output alone says
        nothing further down: ``wc`` keeps its consumer waiting all along.
        """
        running = [s.id for s in snapshot.stages if s.state is StageState.RUNNING]
        if not running:
            return None
        worst = max(running, key=lambda sid: self._slowness.get(sid, 0.0))
        return worst if self._slowness.get(worst, 0.0) > 0.5 else None

    def _mark(self, stage: StageSnapshot) -> Text:
        if stage.state is StageState.RUNNING:
            return Text(_SPINNER[self._frame % len(_SPINNER)], style="cyan")
        if stage.state is StageState.DONE:
            return Text("✓", style="green")
        if stage.state is StageState.EXITED:
            return Text(stage.signal or str(stage.status), style="yellow")
        return Text("·", style="dim")

    def _rate(self, stage: StageSnapshot) -> str:
        if stage.state is not StageState.RUNNING:
            return "-"
        return human_bytes(int(self._rates.get(stage.id, 0))) + "/s"

    def render_summary(self, result: RunResult) -> RenderableType:
        """The end of the run: exact figures per stage, then a panel for each failure."""
        marks = {s.stage.id: self._final_mark(s) for s in result.stages}
        tree = tree_prefixes(result.graph)
        columns = [("", max(len(m) for m in marks.values())), ("#", 2), ("command", 0), ("bytes in", 10),
                   ("lines in", 9), ("bytes out", 10), ("lines out", 9), ("time", 6)]
        table = _table(columns, self.console.width)
        flows = {s.stage.id: result.flow(s.stage.id) for s in result.stages}
        for stage in result.stages:
            sid, flow = stage.stage.id, flows[stage.stage.id]
            table.add_row(Text(marks[sid], style=_MARKS.get(stage.verdict, ("?", ""))[1]), str(sid),
                          tree[sid] + _one_line(stage.stage.command),
                          _count_text(flow.bytes_in, None), _count_text(flow.lines_in, flow.lines_in_at_least),
                          _count_text(flow.bytes_out, None), _count_text(flow.lines_out, flow.lines_out_at_least),
                          _seconds(stage.duration))
        parts: list[RenderableType] = [table]
        if any(_partial(flow) for flow in flows.values()):
            parts.append(Text(AT_LEAST_NOTE, style="dim"))
        for stage in result.failures:
            tail = "\n".join(stage.stderr_tail[-5:]) or "(no stderr)"
            parts.append(Panel(Text(tail), title=f"stage {stage.stage.id} failed: {stage.describe_end()}",
                               subtitle=Text(stage.stage.command), border_style="red", expand=False))
        return Group(*parts)


    @staticmethod
    def _final_mark(stage: StageResult) -> str:
        """``✓``, or a mark with how it ended: ``✗ 3``, ``✓ SIGPIPE``."""
        mark = _MARKS.get(stage.verdict, ("?", ""))[0]
        return mark if stage.verdict is Verdict.OK else f"{mark} {stage.signal or stage.status}"


def _table(columns: list[tuple[str, int]], width: int) -> Table:
    """A borderless table whose command column (width 0 above) takes what the others leave."""
    fixed = sum(w + 1 for _, w in columns)
    table = Table(box=None, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False)
    for name, column_width in columns:
        left = name in ("", "command")
        table.add_column(name, justify="left" if left else "right", no_wrap=True, overflow="ellipsis",
                         width=column_width or max(10, width - fixed - 1))
    return table


def _one_line(command: str) -> str:
    """A command as one line: a multi-line script argument must not break the row."""
    return " ".join(command.split())


class _PlainLines:
    """A one-line status on stderr every few seconds, for CI logs; see :class:`PlainProgress`."""

    def __init__(self, file: IO[str], every: float = 5.0) -> None:
        self.file = file
        self.every = every
        self.execution: Execution | ShardedExecution | None = None
        self._timer: PeriodicCallback | None = None

    def stdout_sink(self) -> Sink | None:
        return None

    def started(self, execution: Execution | ShardedExecution) -> None:
        self.execution = execution
        self._timer = PeriodicCallback(self.report, self.every * 1000)
        self._timer.start()

    def finished(self) -> None:
        if self._timer is not None:
            self._timer.stop()

    def report(self) -> None:
        if self.execution is not None:
            with contextlib.suppress(OSError):
                self.file.write(self.describe(self.execution) + "\n")
                self.file.flush()

    def describe(self, execution: Execution | ShardedExecution) -> str:
        raise NotImplementedError


class PlainProgress(_PlainLines):
    """``--progress plain``: a one-line status on stderr every few seconds, for CI logs.

    No escape codes, nothing redrawn: each line stands alone in a log. It is
    an observer like :class:`LiveView`, but leaves the stages' stderr and
    output alone.
    """

    def stderr_sink(self, stage: Stage) -> Sink | None:
        return None

    def describe(self, execution: Execution | ShardedExecution) -> str:
        snapshot = execution.snapshot()
        assert isinstance(snapshot, RunSnapshot)
        return self.line(snapshot)

    @staticmethod
    def line(snapshot: RunSnapshot) -> str:
        """``ppipe: 12.0s | 1 seq running 6.9 MB out | 2 grep running 3.2 MB out | 3 wc done``."""
        parts = [f"ppipe: {_seconds(snapshot.elapsed)}"]
        for stage in snapshot.stages:
            state = stage.state.value if stage.state is not StageState.EXITED else f"exited {stage.status}"
            out = f" {human_bytes(stage.flow.bytes_out)} out" if stage.flow.bytes_out is not None else ""
            parts.append(f"{stage.id} {stage.command[:20]} {state}{out}")
        return " | ".join(parts)


_SHARD_STYLES = {"running": "cyan", "restarting": "yellow", "done": "green", "failed": "red", "stopped": "red",
                 "waiting": "dim"}


class ShardView(_TerminalView):
    """The view of a sharded run (``--fork``): a row per shard, its stages beneath while the screen has room.

    Stage rows come from the snapshots each shard attempt sends a few times
    a second. They are shown under each shard, first shards first, as long
    as the whole view fits the terminal's height; below that, shards keep
    their one row. Shards' stderr lines are printed above the view, each
    prefixed with its shard.
    """

    def __init__(self, file: IO[str], *, show_output: bool = False, console: Console | None = None) -> None:
        super().__init__(file, show_output=show_output, console=console)
        self.execution: ShardedExecution | None = None
        self._last: dict[int, tuple[float, int]] = {}
        self._rates: dict[int, float] = {}

    def shard_stderr_sink(self, task_id: int) -> Sink | None:
        return _ConsoleSink(self, prefix=f"[shard {task_id}] ")

    def started(self, execution: ShardedExecution) -> None:
        self.execution = execution
        self.start_refreshing()

    def _measure(self, snapshot: ShardedSnapshot) -> None:
        now = time.monotonic()
        for shard in snapshot.shards:
            then, before = self._last.get(shard.task_id, (now, shard.bytes_out))
            self._last[shard.task_id] = (now, shard.bytes_out)
            if now > then:
                self._rates[shard.task_id] = (shard.bytes_out - before) / (now - then)

    def render(self, snapshot: ShardedSnapshot) -> RenderableType:
        columns = [("", 1), ("shard", 5), ("state", 10), ("command", 0), ("pid", 7), ("tries", 5), ("in", 8),
                   ("out", 8), ("rate", 10), ("time", 5)]
        table = _table(columns, self.console.width)
        room = self.console.height - len(snapshot.shards) - 3
        for shard in snapshot.shards:
            style = _SHARD_STYLES.get(shard.state, "")
            mark = _SPINNER[self._frame % len(_SPINNER)] if shard.state == "running" else "·"
            rate = human_bytes(int(self._rates.get(shard.task_id, 0))) + "/s" if shard.state == "running" else "-"
            stages = shard.stages.stages if shard.stages is not None and shard.state == "running" else ()
            command = " | ".join(_one_line(s.command) for s in stages) if stages else ""
            table.add_row(Text(mark, style=style), str(shard.task_id), Text(shard.state, style=style), command,
                          str(shard.pid or "-"), str(shard.attempts), human_bytes(shard.bytes_in),
                          human_bytes(shard.bytes_out), rate, _seconds(shard.elapsed))
            if stages and room >= len(stages):
                room -= len(stages)
                for stage in stages:
                    state = stage.state.value if stage.state is not StageState.EXITED else f"exit {stage.status}"
                    table.add_row("", "", Text(f"└ {stage.id}", style="dim"), Text(_one_line(stage.command),
                                  style="dim"), str(stage.pid or "-"), Text(state, style="dim"),
                                  human_bytes(stage.flow.bytes_in), human_bytes(stage.flow.bytes_out), "", "")
        states = [s.state for s in snapshot.shards]
        counts = " · ".join(f"{states.count(name)} {name}" for name in _SHARD_STYLES if states.count(name))
        moved = sum(s.bytes_out for s in snapshot.shards)
        footer = Text(f"{len(snapshot.shards)} shards: {counts} · {human_bytes(moved)} out · "
                      f"{_seconds(snapshot.elapsed)}", style="dim")
        return Group(table, footer)

    def render_summary(self, result: ShardedResult) -> RenderableType:
        """Each shard's final verdict, attempts and figures; a panel per failed shard."""
        columns = [("", 1), ("shard", 5), ("status", 10), ("tries", 5), ("bytes in", 10), ("bytes out", 10),
                   ("lines out", 9), ("time", 6), ("command", 0)]
        table = _table(columns, self.console.width)
        for shard in result.shards:
            mark, style = _MARKS.get(shard.verdict, ("?", ""))
            first = shard.attempts[0].started_at if shard.attempts else None
            last = shard.attempts[-1].ended_at if shard.attempts else None
            table.add_row(Text(mark, style=style), str(shard.task_id), str(shard.exit_status), str(len(shard.attempts)),
                          "-" if shard.bytes_in is None else str(shard.bytes_in), str(shard.bytes_out),
                          "-" if shard.lines_out is None else str(shard.lines_out),
                          _seconds(None if first is None or last is None else last - first),
                          _one_line(shard.pipeline))
        parts: list[RenderableType] = [table]
        for shard in result.failures:
            lines = [f"attempt {a.number}: {a.describe_end()}" for a in shard.attempts]
            last_run = shard.attempts[-1].result if shard.attempts else None
            for stage in last_run.failures if last_run is not None else ():
                lines.append(f"stage {stage.stage.id} ({_one_line(stage.stage.command)}): {stage.describe_end()}")
                lines.extend(f"  {line}" for line in stage.stderr_tail[-5:])
            parts.append(Panel(Text("\n".join(lines)), title=f"shard {shard.task_id} failed",
                               subtitle=Text(_one_line(shard.pipeline)), border_style="red", expand=False))
        return Group(*parts)


class PlainShardProgress(_PlainLines):
    """``--progress plain`` for a sharded run: a status line every few seconds (see :class:`PlainProgress`)."""

    def shard_stderr_sink(self, task_id: int) -> Sink | None:
        return None

    def describe(self, execution: Execution | ShardedExecution) -> str:
        snapshot = execution.snapshot()
        assert not isinstance(snapshot, RunSnapshot)
        return self.line(snapshot)

    @staticmethod
    def line(snapshot: ShardedSnapshot) -> str:
        """``ppipe: 12.0s | shard 0 running 6.9 MB out | shard 1 restarting (try 2) 0 B out``."""
        parts = [f"ppipe: {_seconds(snapshot.elapsed)}"]
        for shard in snapshot.shards:
            tries = f" (try {shard.attempts})" if shard.attempts > 1 else ""
            parts.append(f"shard {shard.task_id} {shard.state}{tries} {human_bytes(shard.bytes_out)} out")
        return " | ".join(parts)
