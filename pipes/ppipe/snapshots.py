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

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ppipe.results import StageFlow

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
    SKIPPED = "skipped"  # an earlier run finished it (--resume)


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
    #: When the stage reads a regular file as its stdin: its size, and how far it has read.
    input_size: int | None = None
    input_read: int | None = None


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
class RunSnapshot:
    """The whole run at ``elapsed`` seconds after it started.

    ``sharded`` is False for a plain run: one shard, whose pipeline is the
    run, shown as its stages.
    """

    elapsed: float
    shards: tuple[ShardSnapshot, ...]
    sharded: bool = False

    @property
    def stages(self) -> tuple[StageSnapshot, ...]:
        """A plain run's stages now; empty for a sharded run (each shard has its own)."""
        if self.sharded or not self.shards or self.shards[0].stages is None:
            return ()
        return self.shards[0].stages.stages


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
