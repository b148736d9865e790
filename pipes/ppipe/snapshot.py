"""A moment of a running pipeline, as plain read-only data for displays.

The engine builds a :class:`RunSnapshot` on demand (:meth:`Execution.snapshot
<ppipe.engine.Execution.snapshot>`); the live view renders snapshots and
never touches the engine's own state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class StageState(enum.Enum):
    """Where a stage is in its life, as a display shows it."""

    WAITING = "waiting"  # not started yet, or never will (its redirection failed)
    RUNNING = "running"
    DONE = "done"  # exited 0
    EXITED = "exited"  # exited non-zero or killed; the final verdict says whether that failed the run


@dataclass(frozen=True)
class StageSnapshot:
    """One stage: its figures so far. ``lines_*`` are None where lines are not counted,
    and a lower bound where ``lines_*_partial`` (counting stopped on a fast edge)."""

    id: int
    command: str
    state: StageState
    pid: int | None
    status: int | None
    signal: str | None
    bytes_in: int | None
    lines_in: int | None
    bytes_out: int | None
    lines_out: int | None
    elapsed: float | None
    #: Seconds its input edges waited for this stage to read (it was the slow consumer);
    #: None when ppipe does not pump its input (the first stage).
    held_input: float | None = None
    #: Seconds its output edge waited for this stage to write (it was the slow producer).
    held_output: float = 0.0
    #: When the stage reads a regular file as its stdin: its size, and how far it has read.
    input_size: int | None = None
    input_read: int | None = None
    lines_in_partial: bool = False
    lines_out_partial: bool = False


@dataclass(frozen=True)
class RunSnapshot:
    """The whole run at ``elapsed`` seconds after it started."""

    elapsed: float
    stages: tuple[StageSnapshot, ...]
