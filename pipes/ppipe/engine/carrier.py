"""What every mover of bytes on an edge is to the engine: the :class:`Carrier` and :class:`StagePump` protocols.

Three things carry bytes for ppipe: a :class:`~ppipe.engine.pumps.Pump`
(through Python, to one sink or several), a
:class:`~ppipe.engine.splice.SplicePump` (the kernel moves them) and a
:class:`~ppipe.engine.feed.Feed` (ppipe's own input, copied to the stages
reading it). Each counts the edges it carries in the same way, so the engine
reads every edge's figures through :class:`Carrier`; the two pumps that
carry a stage's output are also driven and judged the same way, through
:class:`StagePump`.

A pump that closes a producer's output early (every consumer has gone)
records what it saw then in :class:`CutEvidence`, so that the exit-status
rules can tell a producer killed by that closing (EPIPE, not a failure) from
one that failed on its own.
"""

from __future__ import annotations

import time
from typing import Protocol

from ppipe.engine.counting import Counter, Tail, WaitClock
from ppipe.engine.descriptors import pipe_nearly_full
from ppipe.engine.sinks import Sink


class Carrier(Protocol):
    """Whatever carries an edge's bytes and counts them: the figures of each edge it carries.

    ``count_lines`` says whether the edge's lines are counted at all; the
    ``waits`` clock holds how long the carrier waited on its producer and on
    its consumers.
    """

    count_lines: bool
    waits: WaitClock

    def left_early(self, counter: Counter) -> bool:
        """Whether the edge counted by ``counter`` lost its consumer before its producer's end."""
        ...

    def consumer_wait(self, counter: Counter) -> float:
        """Seconds spent waiting on that edge's consumer (its own, not the slowest sibling's)."""
        ...


class StagePump(Carrier, Protocol):
    """A carrier of one stage's output, as the execution drives it from start to drain."""

    counters: list[Counter]
    closed_early: bool
    producer_stderr: Tail | None

    async def run(self) -> None:
        """Carries bytes until the producer's EOF, or until stopped or closed."""
        ...

    def idle_for(self) -> float:
        """Seconds since the producer last wrote anything."""
        ...

    def consumer_exited(self, sink: Sink | None) -> None:
        """One consumer has exited (``sink`` is its stdin's, None for a splice): stop delivering to it."""
        ...

    def stop_reading(self) -> None:
        """Stops taking more from the producer; what was taken is still delivered."""
        ...

    def finish_pending(self) -> None:
        """Delivers what the producer's pipe holds now, then stops (the run is ending)."""
        ...

    def close(self) -> None:
        """Releases both ends at once, whatever is pending."""
        ...

    def died_of_cut(self, exited_at: float) -> bool:
        """See :meth:`CutEvidence.died_of_cut`."""
        ...

    def said_broken_pipe(self) -> bool:
        """See :meth:`CutEvidence.said_broken_pipe`."""
        ...


#: A producer that wrote this recently before ppipe closed its output was streaming into it...
STREAMING_WITHIN = 0.05

#: ...and one blocked or streaming then gets EPIPE at its next write: one that exits within this
#: many seconds of the closing died of it. One that exits later did something else first (a
#: script's next command), and its status is its own.
DIED_WITHIN = 0.25

#: What a program says on stderr when a write failed with EPIPE.
_BROKEN_PIPE_WORDS = (b"Broken pipe", b"BrokenPipe", b"EPIPE")


class CutEvidence:
    """What a pump saw when it closed a producer's output early: did the producer fail because of it?

    ``producer_stderr`` is the producer's stderr tail, set by whoever wires
    the pump, so that what the producer says after the closing can be told
    from what it said before.
    """

    blocked_at_cut = False
    streaming_at_cut = False
    cut_at: float | None = None
    last_data_at: float | None = None
    producer_stderr: Tail | None = None
    _stderr_at_cut: int | None = None

    def _note_cut(self, source_fd: int | None) -> None:
        """Records the closing, once: when, and whether the producer was writing at that moment."""
        if self.cut_at is not None:
            return
        self.cut_at = now = time.monotonic()
        self.blocked_at_cut = source_fd is not None and pipe_nearly_full(source_fd)
        self.streaming_at_cut = self.last_data_at is not None and now - self.last_data_at < STREAMING_WITHIN
        if self.producer_stderr is not None:
            self._stderr_at_cut = self.producer_stderr.total

    def died_of_cut(self, exited_at: float) -> bool:
        """Whether a producer that exited at ``exited_at`` was killed by the closing (EPIPE), by timing.

        It must have been writing when its pipe was closed — blocked on a
        full pipe, or streaming into it — and have exited right after. Bytes
        merely left unread prove nothing: the producer may have finished
        writing and failed later on its own.
        """
        if self.cut_at is None or not (self.blocked_at_cut or self.streaming_at_cut):
            return False
        return exited_at - self.cut_at < DIED_WITHIN

    def said_broken_pipe(self) -> bool:
        """Whether the producer said "Broken pipe" (or Python's BrokenPipeError) on stderr after the closing."""
        if self.producer_stderr is None or self._stderr_at_cut is None:
            return False
        said = self.producer_stderr.since(self._stderr_at_cut)
        return any(word in said for word in _BROKEN_PIPE_WORDS)
