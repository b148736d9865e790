"""A finished run laid out over time: rows of bars, each bar one attempt of a shard (or one stage of a plain run).

:func:`timeline_of` reads a :class:`~ppipe.results.RunResult` (a run just
ended, or one read back from its report) into a :class:`Timeline`; the
command line draws it (``ppipe report show --timeline``), and so may anyone
from Python. Times are seconds from the run's start.

Which row an attempt goes in says where it ran: its slot for a local run
that recorded it, its host for a job array's task, else its process (a
slot runs its attempts one after another in one process, so a process is a
slot while it lives). Attempts that overlap in one place (tasks side by
side on one host) take a row each, packed: the rows one place needs are the
most attempts it ran at once. A plain run has a row per stage instead, from
the stage's start to its end. Past ``most_rows`` rows, neighbouring rows
are grouped so that no more than ``most_rows`` remain: a batch of 500 slots
reads as 25 rows of 20 slots, each showing every attempt of its slots.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby

from ppipe.results import RunResult, ShardResult, StageResult, Verdict

__all__ = ["BarEnd", "RowKind", "Timeline", "TimelineBar", "TimelineRow", "timeline_of"]

#: Rows a timeline has at most, unless asked otherwise: past it, neighbouring rows are grouped.
MOST_ROWS = 24


class BarEnd(enum.Enum):
    """How the attempt (or stage) a bar stands for ended."""

    #: Succeeded, or its failure did not count (its reader had gone).
    OK = "ok"
    #: Failed, and its shard was run again (``--max-restarts``).
    RESTARTED = "restarted"
    #: Failed for good: its shard (or the plain run) failed.
    FAILED = "failed"
    #: Failed, but excused (the ``-`` marker, ``--no-fail``).
    IGNORED = "ignored"
    #: Stopped by ppipe (``--timeout``, a signal, ``--halt``).
    STOPPED = "stopped"


class RowKind(enum.Enum):
    """What a row stands for; a row's :attr:`TimelineRow.label` begins with it."""

    SLOT = "slot"
    HOST = "host"
    #: A slot's process, known by its pid, where the slot was not recorded (reports of an earlier ppipe).
    PROCESS = "pid"
    STAGE = "stage"
    #: Attempts that say nothing of where they ran, packed so that none overlaps another in its row.
    LANE = "lane"


@dataclass(frozen=True)
class TimelineBar:
    """One attempt of a shard, or one stage of a plain run: from ``start`` to ``end`` seconds into the run.

    ``ended`` is False when the end was never seen (a shard process that
    never reported): ``end`` is then the run's end. ``shard`` and
    ``attempt`` are None for a stage's bar.
    """

    start: float
    end: float
    how: BarEnd
    shard: int | None = None
    attempt: int | None = None
    ended: bool = True


@dataclass(frozen=True)
class TimelineRow:
    """A row of bars, in time order: one place (``first``), or ``places`` neighbouring ones (``first`` to ``last``)."""

    kind: RowKind
    first: str
    last: str
    bars: tuple[TimelineBar, ...]
    #: What a row of one place adds to its name: a stage's command.
    note: str = ""
    #: How many rows of one place it holds (more than 1: grouped).
    places: int = 1

    @property
    def label(self) -> str:
        """``slot 3``, ``host node1``, ``stage 2 grep x``; grouped, ``slots 1–20`` (``20 processes``: their pids
        are in no order)."""
        if self.places == 1:
            return f"{self.kind.value} {self.first} {self.note}".rstrip()
        if self.kind is RowKind.PROCESS:
            return f"{self.places} processes"
        return f"{self.kind.value}s {self.first}–{self.last}"


@dataclass(frozen=True)
class Timeline:
    """A run's bars over time: ``rows``, from ``0`` to ``duration`` seconds after ``started_at`` (Unix time).

    ``places`` counts the rows before any were grouped (the slots, hosts or
    stages), so a reader can say how many each grouped row holds.
    """

    started_at: float
    duration: float
    rows: tuple[TimelineRow, ...]
    places: int

    @property
    def bars(self) -> int:
        return sum(len(row.bars) for row in self.rows)


def timeline_of(result: RunResult, *, most_rows: int = MOST_ROWS) -> Timeline:
    """``result``'s attempts (a plain run's stages) as bars in rows, at most ``most_rows`` rows (at least 1).

    A run that never started, or whose shards never ran, has no bars and no rows.
    """
    start, end = _first_start(result), _last_end(result)
    if result.local is not None:
        rows = [row for stage in result.local.stages if (row := _stage_row(stage, start, end)) is not None]
    else:
        rows = list(_attempt_rows(result.shards, start, end))
    return Timeline(start, max(0.0, end - start), _grouped(rows, max(1, most_rows)), len(rows))


def _first_start(result: RunResult) -> float:
    starts = [attempt.started_at for shard in result.shards for attempt in shard.attempts]
    if result.local is not None:
        starts += [stage.started_at for stage in result.local.stages if stage.started_at is not None]
    return min([result.started_at, *starts])


def _last_end(result: RunResult) -> float:
    """The last moment anything was seen: an end, or a start that has no end (a report may say anything)."""
    times = [t for shard in result.shards for attempt in shard.attempts for t in (attempt.started_at, attempt.ended_at)]
    if result.local is not None:
        times += [t for stage in result.local.stages for t in (stage.started_at, stage.ended_at)]
    return max([result.ended_at, *(t for t in times if t is not None)])


# ---------------------------------------------------------------- a plain run: a row per stage

_STAGE_ENDS = {
    Verdict.OK: BarEnd.OK,
    Verdict.BROKEN_PIPE: BarEnd.OK,
    Verdict.FAILED: BarEnd.FAILED,
    Verdict.IGNORED: BarEnd.IGNORED,
    Verdict.TERMINATED: BarEnd.STOPPED,
}


def _stage_row(stage: StageResult, start: float, end: float) -> TimelineRow | None:
    """The stage's row; None for a stage that never started (its bar would say nothing of time)."""
    if stage.started_at is None:
        return None
    bar = TimelineBar(
        stage.started_at - start,
        (stage.ended_at if stage.ended_at is not None else end) - start,
        _STAGE_ENDS.get(stage.verdict, BarEnd.OK),
        ended=stage.ended_at is not None,
    )
    name = str(stage.stage.id)
    return TimelineRow(RowKind.STAGE, name, name, (bar,), note=" ".join(stage.stage.command.split()))


# ---------------------------------------------------------------- a sharded run: a row per place


def _attempt_rows(shards: Iterable[ShardResult], start: float, end: float) -> Iterator[TimelineRow]:
    """A row per place attempts ran in (more where some overlapped there), places in order."""
    placed: dict[tuple[RowKind, str | int], list[TimelineBar]] = {}
    for shard in shards:
        for index, attempt in enumerate(shard.attempts):
            bar = TimelineBar(
                attempt.started_at - start,
                (attempt.ended_at if attempt.ended_at is not None else end) - start,
                _attempt_end(shard, last=index == len(shard.attempts) - 1),
                shard.task_id,
                attempt.number,
                ended=attempt.ended_at is not None,
            )
            placed.setdefault(_place(attempt.host, attempt.slot, attempt.pid), []).append(bar)
    for (kind, name), bars in sorted(placed.items(), key=lambda item: _place_order(*item)):
        lanes = _packed(bars)
        for number, lane in enumerate(lanes, 1):
            label = str(number) if kind is RowKind.LANE else str(name) if len(lanes) == 1 else f"{name} ({number})"
            yield TimelineRow(kind, label, label, tuple(lane))


def _attempt_end(shard: ShardResult, *, last: bool) -> BarEnd:
    """An attempt that was not its shard's last failed and ran again; the last ended as its shard did."""
    if not last:
        return BarEnd.RESTARTED
    if shard.verdict is Verdict.FAILED:
        return BarEnd.FAILED
    return BarEnd.STOPPED if shard.verdict is Verdict.TERMINATED else BarEnd.OK


def _place(host: str | None, slot: int | None, pid: int | None) -> tuple[RowKind, str | int]:
    """Where an attempt ran, as well as its report says: a job array's host, a local slot, or its process."""
    if host is not None:
        return RowKind.HOST, host
    if slot is not None:
        return RowKind.SLOT, slot
    if pid is not None:
        return RowKind.PROCESS, pid
    return RowKind.LANE, ""


def _place_order(place: tuple[RowKind, str | int], bars: list[TimelineBar]) -> tuple[int, float, str]:
    """Hosts by name, slots by number, processes by when they first ran (a pid tells nothing of order)."""
    kind, name = place
    if kind is RowKind.PROCESS:
        return list(RowKind).index(kind), min(bar.start for bar in bars), ""
    return list(RowKind).index(kind), float(name) if isinstance(name, int) else 0.0, str(name)


def _packed(bars: list[TimelineBar]) -> list[list[TimelineBar]]:
    """The bars in as few rows as none overlaps another: each goes in the first row free when it starts."""
    lanes: list[list[TimelineBar]] = []
    for bar in sorted(bars, key=lambda b: (b.start, b.end)):
        lane = next((lane for lane in lanes if lane[-1].end <= bar.start), None)
        if lane is None:
            lanes.append([bar])
        else:
            lane.append(bar)
    return lanes


# ---------------------------------------------------------------- too many rows: neighbours grouped


def _grouped(rows: list[TimelineRow], most: int) -> tuple[TimelineRow, ...]:
    """``rows`` as they are when there are ``most`` or fewer; else groups of neighbours, each one row."""
    if len(rows) <= most:
        return tuple(rows)
    size = math.ceil(len(rows) / most)
    groups = (rows[at : at + size] for at in range(0, len(rows), size))
    return tuple(_one_row(group) for group in groups)


def _one_row(rows: list[TimelineRow]) -> TimelineRow:
    """Neighbouring rows as one: every bar of theirs, in time order. Rows of one kind share the kind's word."""
    kinds = [kind for kind, _ in groupby(row.kind for row in rows)]
    kind = kinds[0] if len(kinds) == 1 else RowKind.LANE
    bars = sorted((bar for row in rows for bar in row.bars), key=lambda b: (b.start, b.end))
    return TimelineRow(kind, rows[0].first, rows[-1].last, tuple(bars), places=sum(row.places for row in rows))
