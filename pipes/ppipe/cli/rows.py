"""The live view's two row layouts: a plain run's stages, a sharded run's shards.

:class:`~ppipe.cli.display.LiveView` owns the terminal and picks the layout
from the snapshot; a layout measures what changed between snapshots (rates,
the bottleneck) and draws the table, and draws the summary at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from rich.console import Group, RenderableType
from rich.text import Text

from ppipe.cli.rates import InputProgress, InputRates, RateMeter
from ppipe.cli.tables import (
    MARKS,
    SPINNER,
    Cell,
    Column,
    failure_panel,
    fitted_table,
    footer_lines,
    height_of,
    line_cells,
    more_row,
    one_line,
)
from ppipe.cli.units import count_text, human_bytes, seconds_text, short_count
from ppipe.graph import tree_prefixes
from ppipe.results import RunResult, ShardResult, StageResult, Verdict
from ppipe.snapshots import RunSnapshot, ShardSnapshot, ShardState, StageSnapshot, StageState, Tally


class Canvas(Protocol):
    """What a layout needs of the view that draws it (:class:`~ppipe.cli.display.LiveView`)."""

    #: The terminal's columns, and the rows a frame may take, now.
    @property
    def width(self) -> int: ...
    @property
    def room(self) -> int: ...

    #: Frames drawn so far (the spinners turn with it), and where rates take their time from.
    frame_number: int
    clock: Callable[[], float]


#: The share of the last moments the pipeline must wait on a stage for the view to mark it the
#: bottleneck; the marked stage keeps the mark until its share falls below ``BOTTLENECK_LEAVE`` or
#: another's passes its own by ``BOTTLENECK_MARGIN`` (hysteresis: the mark moves with the evidence,
#: not with the noise between two stages scoring alike).
BOTTLENECK_ENTER = 0.5
BOTTLENECK_LEAVE = 0.3
BOTTLENECK_MARGIN = 0.2


class StageRows:
    """The view's rows for a plain run: a row per stage, the bottleneck marked, as pv would for each pipe."""

    def __init__(self, view: Canvas) -> None:
        self.view = view
        #: The stage marked as the bottleneck, kept until the evidence moves (see :meth:`bottleneck`).
        self._marked: int | None = None
        #: Per stage, the prefix that draws a graph's branches as a tree (empty for a plain pipeline).
        self.tree: dict[int, str] = {}
        self._last: dict[int, tuple[float, float]] = {}
        #: Each stage's output rate, smoothed as pv smooths its own (see :class:`RateMeter`).
        self._rates: dict[int, RateMeter] = {}
        #: Each file-reading stage's smoothed reading rate (see :mod:`ppipe.cli.rates`).
        self._read_rates = InputRates(view.clock)
        self._slowness: dict[int, float] = {}

    # -- drawing

    def measure(self, snapshot: RunSnapshot) -> None:
        """Updates each stage's rate and slowness from the change since the last refresh, then the mark."""
        now = self.view.clock()
        for stage in snapshot.stages:
            self._rates.setdefault(stage.id, RateMeter(self.view.clock)).update(stage.flow.bytes_out or 0)
            held = stage.flow.held
            then, held_before = self._last.get(stage.id, (now, held))
            self._last[stage.id] = (now, held)
            if now > then:
                share = min(2.0, (held - held_before) / (now - then))
                self._slowness[stage.id] = 0.6 * self._slowness.get(stage.id, 0.0) + 0.4 * share
        self._read_rates.measure(snapshot.stages)
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
        """The table for one snapshot, in the view's room; rates and the bottleneck come from the measures so far.

        The footer (totals, the bottleneck, progress) always shows; when the
        stages do not all fit above it, those that matter most stay (the
        bottleneck, the failed, the running) and one row says how many more
        there are.
        """
        slowest = self.bottleneck(snapshot)
        width = self.view.width
        footer = footer_lines(self._footer_parts(snapshot, slowest), width)
        room = self.view.room - height_of(footer) - 1  # the header
        shown = _stages_that_fit(snapshot.stages, room, slowest)
        rows = [self._row(stage, slowest) for stage in shown]
        if len(shown) < len(snapshot.stages):
            rows.append(more_row(self.COLUMNS, len(snapshot.stages) - len(shown)))
        return Group(fitted_table(self.COLUMNS, rows, width), footer)

    def _row(self, stage: StageSnapshot, slowest: int | None) -> list[Cell]:
        flow = stage.flow
        lines_in, lines_out = line_cells(flow, short_count)
        command = Text(
            self.tree.get(stage.id, "") + one_line(stage.command), style="bold yellow" if stage.id == slowest else ""
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
            seconds_text(stage.elapsed),
        ]

    def _footer_parts(self, snapshot: RunSnapshot, slowest: int | None) -> list[Text]:
        moved = sum(s.flow.bytes_out or 0 for s in snapshot.stages)
        parts = [
            Text(f"{len(snapshot.stages)} stages"),
            Text(f"{human_bytes(moved)} moved"),
            Text(seconds_text(snapshot.elapsed)),
        ]
        if slowest is not None:
            parts.append(Text(f"bottleneck: stage {slowest}", style="bold yellow"))
        for stage in snapshot.stages:
            progress = self._read_rates.progress(stage)
            if progress is not None:
                parts.append(Text(f"stage {stage.id} input {self._progress(progress)}"))
        return parts

    @staticmethod
    def _progress(progress: InputProgress) -> str:
        """``45% of 3 files 12.0 MB/s ETA 12s`` for a stage reading files, as pv shows it (the rate smoothed)."""
        text = f"{int(100 * progress.fraction)}%"
        if progress.files > 1:
            text += f" of {progress.files} files"
        if progress.eta is not None:
            if progress.rate:
                text += f" {human_bytes(int(progress.rate))}/s"
            text += f" ETA {seconds_text(progress.eta)}"
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
            return Text(SPINNER[self.view.frame_number % len(SPINNER)], style="cyan")
        if stage.state is StageState.DONE:
            return Text("✓", style="green")
        if stage.state is StageState.EXITED:
            return Text(stage.signal or str(stage.status), style="yellow")
        return Text("·", style="dim")

    def _rate(self, stage: StageSnapshot) -> str:
        meter = self._rates.get(stage.id)
        rate = meter.rate if meter is not None else None
        return "-" if stage.state is not StageState.RUNNING or rate is None else human_bytes(int(rate)) + "/s"

    def summary(self, result: RunResult) -> RenderableType:
        """The end of the run: exact figures per stage, then a panel for each failure."""
        tree = tree_prefixes(result.graph) if result.graph is not None else {}
        flows = {s.stage.id: result.flow(s.stage.id) for s in result.stages}
        rows: list[list[Cell]] = []
        for stage in result.stages:
            sid, flow = stage.stage.id, flows[stage.stage.id]
            rows.append(
                [
                    Text(self._final_mark(stage), style=MARKS.get(stage.verdict, ("?", ""))[1]),
                    str(sid),
                    tree[sid] + one_line(stage.stage.command),
                    count_text(flow.bytes_in),
                    line_cells(flow)[0],
                    count_text(flow.bytes_out),
                    line_cells(flow)[1],
                    seconds_text(stage.duration),
                ]
            )
        parts: list[RenderableType] = [fitted_table(self.SUMMARY_COLUMNS, rows, self.view.width)]
        for stage in result.failures:
            tail = "\n".join(stage.stderr_tail[-5:]) or "(no stderr)"
            parts.append(
                failure_panel(
                    f"stage {stage.stage.id} failed",
                    stage.describe_end(),
                    tail,
                    one_line(stage.stage.command),
                    self.view.width,
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
        mark = MARKS.get(stage.verdict, ("?", ""))[0]
        return mark if stage.verdict is Verdict.OK else f"{mark} {stage.signal or stage.status}"


def _stages_that_fit(stages: tuple[StageSnapshot, ...], room: int, slowest: int | None) -> list[StageSnapshot]:
    """All the stages when they fit in ``room`` rows; else, leaving a row for "… N more", the bottleneck,
    the stages that ended badly and the running ones first, shown in pipeline order."""
    if len(stages) <= room:
        return list(stages)
    ranked = sorted(range(len(stages)), key=lambda i: (_stage_rank(stages[i], slowest), i))
    return [stages[i] for i in sorted(ranked[: max(0, room - 1)])]


def _stage_rank(stage: StageSnapshot, slowest: int | None) -> int:
    if stage.id == slowest:
        return 0
    if stage.state is StageState.EXITED:
        return 1
    return 2 if stage.state is StageState.RUNNING else 3


_SHARD_STYLES = {
    ShardState.RUNNING: "cyan",
    ShardState.RESTARTING: "yellow",
    ShardState.DONE: "green",
    ShardState.FAILED: "red",
    ShardState.STOPPED: "red",
    ShardState.WAITING: "dim",
    ShardState.SKIPPED: "dim",
}


#: Which shards a view too short for all of them shows first.
_SHOWN_FIRST = (ShardState.RUNNING, ShardState.RESTARTING, ShardState.FAILED, ShardState.STOPPED)


def _shards_that_fit(shards: tuple[ShardSnapshot, ...], room: int, total: int) -> list[ShardSnapshot]:
    """All the shards when all ``total`` are listed and fit in ``room`` rows. Else only those under way,
    then the failed, in task order, leaving a row for "… N more": the tally below counts the rest, never a
    wall of finished ones."""
    if total <= room:
        return list(shards)
    under_way = (i for i, shard in enumerate(shards) if shard.state in _SHOWN_FIRST)
    ranked = sorted(under_way, key=lambda i: (_rank(shards[i].state), i))
    return [shards[i] for i in sorted(ranked[: max(0, room - 1)])]


def _rank(state: ShardState) -> int:
    return _SHOWN_FIRST.index(state)


class ShardRows:
    """The view's rows for a sharded run (``--fork``): a row per shard, its stages beneath while there is room.

    Stage rows come from the snapshots each shard attempt sends a few times
    a second. They are shown under each shard, first shards first, as long
    as the whole view fits the terminal's height; below that, shards keep
    their one row. Shards' stderr lines are printed above the view, each
    prefixed with its shard.
    """

    def __init__(self, view: Canvas) -> None:
        self.view = view
        self._rates: dict[int, RateMeter] = {}

    def measure(self, snapshot: RunSnapshot) -> None:
        for shard in snapshot.shards:
            if shard.state is ShardState.RUNNING:
                self._rates.setdefault(shard.task_id, RateMeter(self.view.clock)).update(shard.bytes_out or 0)
            else:  # a restart starts its count again: so does its rate
                self._rates.pop(shard.task_id, None)

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
        """A row per shard while all fit above the tally; else the shards under way and the failed, and a row
        saying how many are not shown. A running shard's stages go beneath it while the room lasts."""
        width = self.view.width
        counts = Tally.of(snapshot).parts()
        moved = snapshot.bytes_out
        footer = footer_lines(
            [
                Text(f"{snapshot.total} shards: {counts[0]}" if counts else f"{snapshot.total} shards"),
                *(Text(count) for count in counts[1:]),
                Text(f"{human_bytes(moved)} out"),
                Text(seconds_text(snapshot.elapsed)),
            ],
            width,
        )
        room = self.view.room - height_of(footer) - 1  # the header
        shown = _shards_that_fit(snapshot.shards, room, snapshot.total)
        hidden = snapshot.total - len(shown)
        spare = room - len(shown) - (1 if hidden else 0)
        rows: list[list[Cell]] = []
        for shard in shown:
            stages = shard.stages.stages if shard.stages is not None and shard.state is ShardState.RUNNING else ()
            rows.append(self._shard_row(shard, stages))
            if stages and spare >= len(stages):
                spare -= len(stages)
                rows.extend(_stage_row(stage) for stage in stages)
        if hidden:
            rows.append(more_row(self.COLUMNS, hidden, "more shards, counted below"))
        return Group(fitted_table(self.COLUMNS, rows, width), footer)

    def _shard_row(self, shard: ShardSnapshot, stages: tuple[StageSnapshot, ...]) -> list[Cell]:
        style = _SHARD_STYLES.get(shard.state, "")
        mark = SPINNER[self.view.frame_number % len(SPINNER)] if shard.state is ShardState.RUNNING else "·"
        meter = self._rates.get(shard.task_id)
        rate = meter.rate if meter is not None else None
        rate_text = human_bytes(int(rate)) + "/s" if rate is not None else "-"
        command = " | ".join(one_line(s.command) for s in stages)
        return [
            Text(mark, style=style),
            str(shard.task_id),
            Text(shard.state.value, style=style),
            command,
            str(shard.pid or "-"),
            str(shard.attempts),
            human_bytes(shard.bytes_in),
            human_bytes(shard.bytes_out),
            rate_text,
            seconds_text(shard.elapsed),
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

    #: Up to this many shards, the summary has a row for each; past it, a tally and the failed shards only.
    SUMMARY_ROWS = 16
    #: Past :data:`SUMMARY_ROWS`, the failed shards listed before "and N more".
    FAILURES_LISTED = 10
    #: Failed shards given a panel with their attempts and stderr; the rest are in the job log.
    PANELS = 3

    def summary(self, result: RunResult) -> RenderableType:
        """Each shard's final verdict, attempts and figures, or for a batch a tally with its timing and the
        failed shards only; a panel for the first failed shards."""
        failed = result.failed_shards
        batch = len(result.shards) > self.SUMMARY_ROWS
        listed = failed[: self.FAILURES_LISTED] if batch else result.shards
        parts: list[RenderableType] = []
        if batch:
            parts.append(Text(shard_tally(result)))
        if listed:
            rows = [self._summary_row(shard) for shard in listed]
            parts.append(fitted_table(self.SUMMARY_COLUMNS, rows, self.view.width))
        if batch and len(failed) > len(listed):
            parts.append(Text(f"and {len(failed) - len(listed)} more (see --joblog)", style="dim"))
        parts.extend(self._failure_panel(shard) for shard in failed[: self.PANELS])
        if len(failed) > self.PANELS:
            parts.append(Text(f"{len(failed) - self.PANELS} more failed shards: see --joblog", style="dim"))
        return Group(*parts)

    @staticmethod
    def _summary_row(shard: ShardResult) -> list[Cell]:
        mark, style = MARKS.get(shard.verdict, ("?", ""))
        first = shard.attempts[0].started_at if shard.attempts else None
        last = shard.attempts[-1].ended_at if shard.attempts else None
        return [
            Text(mark, style=style),
            str(shard.task_id),
            f"skipped ({shard.skipped_for})" if shard.skipped_for else str(shard.exit_status),
            str(len(shard.attempts)),
            count_text(shard.bytes_in),
            count_text(shard.bytes_out),
            count_text(shard.lines_out),
            seconds_text(None if first is None or last is None else last - first),
            one_line(shard.pipeline),
        ]

    def _failure_panel(self, shard: ShardResult) -> RenderableType:
        lines = [f"attempt {a.number}: {a.describe_end()}" for a in shard.attempts]
        for stage in shard.last_failures:
            lines.append(f"stage {stage.stage.id} ({one_line(stage.stage.command)}): {stage.describe_end()}")
            lines.extend(f"  {line}" for line in stage.stderr_tail[-5:])
        return failure_panel(
            f"shard {shard.task_id} failed", "", "\n".join(lines), one_line(shard.pipeline), self.view.width
        )


def shard_tally(result: RunResult) -> str:
    """``500 shards: 497 ok, 3 failed in 1m12s``: a sharded run's shards counted by verdict, and its time."""
    counts = {"ok": 0, **{verdict.value: 0 for verdict in (Verdict.FAILED, Verdict.TERMINATED, Verdict.SKIPPED)}}
    for shard in result.shards:
        name = "ok" if shard.verdict in (Verdict.OK, Verdict.BROKEN_PIPE, Verdict.IGNORED) else shard.verdict.value
        counts[name] = counts.get(name, 0) + 1
    tally = ", ".join(f"{count} {name}" for name, count in counts.items() if count)
    noun = "shard" if len(result.shards) == 1 else "shards"
    return f"{len(result.shards)} {noun}: {tally} in {seconds_text(result.ended_at - result.started_at)}"


def _stage_row(stage: StageSnapshot) -> list[Cell]:
    """A running shard's stage, beneath its row: its state in the state column, ``└ 2 grep x`` as the command."""
    state = stage.state.value if stage.state is not StageState.EXITED else f"exit {stage.status}"
    return [
        "",
        "",
        Text(state, style="dim"),
        Text(f"└ {stage.id} {one_line(stage.command)}", style="dim"),
        str(stage.pid or "-"),
        "",
        human_bytes(stage.flow.bytes_in),
        human_bytes(stage.flow.bytes_out),
        "",
        "",
    ]
