"""What a run is doing now, and who watches it: snapshots and the observer interface.

One model for every run, as for results (:mod:`ppipe.results`): a
:class:`RunSnapshot` holds a :class:`ShardSnapshot` per shard, each with the
:class:`PipelineSnapshot` of its running attempt. A plain run is one shard,
run in ppipe's own process. Snapshots are built on demand, ten times a
second for the live view, which renders them and never touches the
engine's own state; a shard's pipeline snapshots cross from its process to
ppipe over the shard channel, so they stay small and picklable.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ppipe.flow import StageFlow

if TYPE_CHECKING:
    from ppipe.engine.sinks import Sink
    from ppipe.graph import Graph, Stage


class StageState(enum.Enum):
    """Where a stage is in its life, as a display shows it."""

    WAITING = "waiting"  # not started yet, or never will (its redirection failed)
    RUNNING = "running"
    DONE = "done"  # exited 0
    EXITED = "exited"  # exited non-zero or killed; the final verdict says whether that failed the run


class ShardState(enum.Enum):
    """Where a shard is in its life, as a display shows it."""

    WAITING = "waiting"  # no attempt started yet
    RUNNING = "running"
    RESTARTING = "restarting"  # an attempt ended and the next is being decided or started
    DONE = "done"  # finally succeeded
    FAILED = "failed"  # finally failed
    STOPPED = "stopped"  # stopped by ppipe: --halt, --timeout, a signal
    SKIPPED = "skipped"  # an earlier run finished it (--resume), or --fork dealt it no input


@dataclass(frozen=True)
class StageSnapshot:
    """One stage: its figures so far (``flow``: bytes, lines, ratio, held time, as a finished run has them)."""

    id: int
    command: str
    state: StageState
    pid: int | None
    status: int | None
    signal: str | None
    flow: StageFlow
    elapsed: float | None
    #: When the stage reads regular files (named as arguments, or as its stdin): their summed size,
    #: how much of them it has read (their file positions, earlier files whole), and how many there are.
    input_size: int | None = None
    input_read: int | None = None
    input_files: int = 0


@dataclass(frozen=True)
class PipelineSnapshot:
    """One pipeline at ``elapsed`` seconds after it started: a plain run's, or a shard attempt's."""

    elapsed: float
    stages: tuple[StageSnapshot, ...]


@dataclass(frozen=True)
class ShardSnapshot:
    """One shard: its state, its attempts so far, what ppipe moved for it, and its running pipeline.

    ``bytes_out`` is None when ppipe handed its stdout over and does not
    count it (a plain run whose last stage writes there itself).
    """

    task_id: int
    state: ShardState
    pid: int | None
    attempts: int
    bytes_in: int | None
    bytes_out: int | None
    elapsed: float | None
    stages: PipelineSnapshot | None


@dataclass(frozen=True)
class Unlisted:
    """The shards a big batch's snapshot counts instead of listing one by one.

    ``states`` counts the finished ones by state, ``waiting`` those not
    started yet; ``finished_seconds`` is the time of the ``finished_timed``
    done or failed ones (for the ETA), ``bytes_out`` their output.
    """

    states: Mapping[ShardState, int] = field(default_factory=dict)
    waiting: int = 0
    finished_seconds: float = 0.0
    finished_timed: int = 0
    bytes_out: int = 0

    @property
    def count(self) -> int:
        return sum(self.states.values()) + self.waiting


@dataclass(frozen=True)
class RunSnapshot:
    """The whole run at ``elapsed`` seconds after it started.

    ``sharded`` is False for a plain run: one shard, whose pipeline is the
    run, shown as its stages.
    """

    elapsed: float
    shards: tuple[ShardSnapshot, ...]
    sharded: bool = False
    #: How many shards run at once (``--jobs``); None for a plain run.
    slots: int | None = None
    #: The size of the regular file split between the shards, and how much of it has been dealt.
    input_size: int | None = None
    input_dealt: int | None = None
    #: The shards not in ``shards``: a batch past a few hundred lists only those under way.
    unlisted: Unlisted = Unlisted()

    @property
    def total(self) -> int:
        """How many shards the run has, listed or not."""
        return len(self.shards) + self.unlisted.count

    @property
    def bytes_out(self) -> int:
        """The output of every shard so far, listed or not."""
        return sum(s.bytes_out or 0 for s in self.shards) + self.unlisted.bytes_out

    @property
    def stages(self) -> tuple[StageSnapshot, ...]:
        """A plain run's stages now; empty for a sharded run (each shard has its own)."""
        if self.sharded or not self.shards or self.shards[0].stages is None:
            return ()
        return self.shards[0].stages.stages


@dataclass(frozen=True)
class Tally:
    """A sharded run's shards counted by state, with an estimate of the time left.

    ``eta`` (seconds) is the mean time of the shards that finished, times
    the shards still to finish, over the slots that run them; None until
    one has finished. ``dealt`` is the fraction of a regular file on stdin
    dealt to the shards so far (None for a pipe or no split).
    """

    done: int
    failed: int
    running: int
    restarting: int
    waiting: int
    stopped: int
    skipped: int
    eta: float | None
    dealt: float | None

    @classmethod
    def of(cls, snapshot: RunSnapshot) -> Tally:
        unlisted = snapshot.unlisted
        states = collections.Counter(shard.state for shard in snapshot.shards)
        states.update(unlisted.states)
        finished = [s.elapsed for s in snapshot.shards if s.state in (ShardState.DONE, ShardState.FAILED) and s.elapsed]
        finished_seconds = sum(finished) + unlisted.finished_seconds
        finished_timed = len(finished) + unlisted.finished_timed
        running, restarting = states[ShardState.RUNNING], states[ShardState.RESTARTING]
        waiting = states[ShardState.WAITING] + unlisted.waiting
        eta = None
        if finished_timed:
            slots = max(1, snapshot.slots or running or 1)
            eta = finished_seconds / finished_timed * (waiting + running + restarting) / slots
        dealt = None
        if snapshot.input_size and snapshot.input_dealt is not None:
            dealt = min(1.0, snapshot.input_dealt / snapshot.input_size)
        return cls(
            done=states[ShardState.DONE],
            failed=states[ShardState.FAILED],
            running=running,
            restarting=restarting,
            waiting=waiting,
            stopped=states[ShardState.STOPPED],
            skipped=states[ShardState.SKIPPED],
            eta=eta,
            dealt=dealt,
        )

    def parts(self) -> list[str]:
        """``40 done``, ``1 failed``... (the counts that are not 0), then ``ETA 4m10s`` and ``35% dealt``."""
        counts = [
            f"{count} {name}"
            for count, name in (
                (self.done, "done"),
                (self.failed, "failed"),
                (self.running, "running"),
                (self.restarting, "restarting"),
                (self.waiting, "waiting"),
                (self.stopped, "stopped"),
                (self.skipped, "skipped"),
            )
            if count
        ]
        if self.eta is not None and (self.running or self.restarting or self.waiting):
            counts.append(f"ETA {_duration(self.eta)}")
        if self.dealt is not None:
            counts.append(f"{self.dealt:.0%} dealt")
        return counts


def _duration(seconds: float) -> str:
    """``42s``, ``4m10s``, ``2h05m``: an ETA to read at a glance."""
    whole = int(seconds + 0.5)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


class Run(Protocol):
    """A run as its observers see it while it runs."""

    @property
    def graph(self) -> Graph | None:
        """A plain run's graph; None for a sharded run, whose shards each parse their own."""

    def snapshot(self) -> RunSnapshot:
        """The run as it is now; cheap enough to take ten times a second."""


class RunObserver(Protocol):
    """Something that watches a run from ppipe's own loop: the live view, ``--progress plain``.

    ``stderr_sink`` may return a sink that takes stderr instead of ppipe's
    fd 2: a stage's own (``stage`` given, in a plain run) or a whole shard's
    (``stage`` None). ``stdout_sink`` may return one for the run's output
    instead of ppipe's fd 1 (the view prints both above itself).
    ``started`` is called once the run is under way, ``finished`` once
    everything it started has ended.
    """

    def stderr_sink(self, task_id: int, stage: Stage | None) -> Sink | None: ...

    def stdout_sink(self) -> Sink | None: ...

    def started(self, run: Run) -> None: ...

    def finished(self) -> None: ...
