"""A moment of a running pipeline, as plain read-only data for displays.

The engine builds a :class:`RunSnapshot` on demand (:meth:`Execution.snapshot
<ppipe.engine.Execution.snapshot>`); the live view renders snapshots and
never touches the engine's own state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .result import StageFlow


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
    STOPPED = "stopped"  # stopped by ppipe: --fail-fast, --timeout, a signal


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
class RunSnapshot:
    """The whole run at ``elapsed`` seconds after it started."""

    elapsed: float
    stages: tuple[StageSnapshot, ...]
