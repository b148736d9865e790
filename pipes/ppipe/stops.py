"""Why ppipe stopped a run, or a shard, before it ended by itself: one value for every cause.

A run that ends by itself has no :class:`StopReason`. One that ppipe
stopped has exactly one, the first cause that came: a signal to ppipe
(SIGINT, SIGTERM, SIGHUP), ``--timeout`` (or a shard's
``--shard-timeout``), ``--halt`` (``--fail-fast``), or its reader going
away. The engine, a sharded run, a Slurm run and the results all carry this
same value, so nothing converts a signal number to a name and back.
"""

from __future__ import annotations

import enum
import signal
from dataclasses import dataclass
from typing import overload


def signal_name(number: int) -> str:
    """``SIGPIPE`` for 13; ``signal 64`` for a number with no name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


#: The status of a run stopped by its ``--timeout``, as GNU ``timeout`` gives.
TIMEOUT_STATUS = 124


class StopKind(enum.Enum):
    SIGNAL = "signal"
    TIMEOUT = "timeout"
    HALT = "halt"
    READER_GONE = "reader-gone"


@dataclass(frozen=True)
class StopReason:
    """One cause of a stop. ``signal`` is set for :attr:`StopKind.SIGNAL`, ``limit`` (seconds) for a timeout."""

    kind: StopKind
    signal: int | None = None
    limit: float | None = None

    @classmethod
    def by_signal(cls, number: int) -> StopReason:
        return cls(StopKind.SIGNAL, signal=int(number))

    @classmethod
    def timeout(cls, limit: float | None) -> StopReason:
        return cls(StopKind.TIMEOUT, limit=limit)

    @classmethod
    def by_name(cls, name: str) -> StopReason:
        """The stop by the signal named ``name`` (``SIGINT``), as a report writes it; ValueError if none is."""
        try:
            return cls.by_signal(signal.Signals[name])
        except KeyError:
            raise ValueError(f"no signal named {name!r}") from None

    @property
    def signal_name(self) -> str | None:
        """``SIGINT`` for a stop by SIGINT; None for any other stop."""
        return None if self.signal is None else signal_name(self.signal)

    @property
    def exit_status(self) -> int | None:
        """The status the stop gives a run: 128 + N for signal N, 124 for a timeout, as a shell and GNU
        ``timeout`` do. None for a halt or a reader gone: what ran decides then."""
        if self.kind is StopKind.SIGNAL and self.signal is not None:
            return 128 + self.signal
        if self.kind is StopKind.TIMEOUT:
            return TIMEOUT_STATUS
        return None

    def __str__(self) -> str:
        if self.kind is StopKind.SIGNAL:
            return self.signal_name or "a signal"
        if self.kind is StopKind.TIMEOUT:
            return "--timeout" if self.limit is None else f"--timeout {self.limit:g}s"
        if self.kind is StopKind.HALT:
            return "--halt"
        return "nobody reads the output"


@overload
def after(current: StopReason | None, new: StopReason) -> StopReason: ...
@overload
def after(current: StopReason | None, new: None) -> StopReason | None: ...
def after(current: StopReason | None, new: StopReason | None) -> StopReason | None:
    """Why a run stopped once ``new`` comes while it stands as ``current``: the first cause stands.

    Except that a halt or a reader gone, which have no status of their
    own, give way to a signal or a timeout, whose status is the run's.
    No ``new`` leaves ``current`` as it is.
    """
    if new is None:
        return current
    if current is None or (current.exit_status is None and new.exit_status is not None):
        return new
    return current


def timed_out(reason: StopReason | None) -> bool:
    """Whether ``reason`` is a ``--timeout`` (or ``--shard-timeout``) that ran out."""
    return reason is not None and reason.kind is StopKind.TIMEOUT


#: A ``--halt`` (or ``--fail-fast``) condition was met.
HALT = StopReason(StopKind.HALT)
#: Nobody reads ppipe's output any more: the work left would be for nothing.
READER_GONE = StopReason(StopKind.READER_GONE)
