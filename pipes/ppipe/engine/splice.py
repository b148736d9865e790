"""The Linux fast path for one producer feeding one consumer: the kernel moves the bytes (``splice(2)``)."""

from __future__ import annotations

import contextlib
import os
import sys
import time

from tornado.concurrent import Future
from tornado.ioloop import IOLoop

from ppipe.engine.carrier import CutEvidence
from ppipe.engine.counting import Counter, WaitClock, count_newlines
from ppipe.engine.descriptors import PIPE_SIZE, bytes_in_pipe, bytes_waiting, make_pipe, pipe_capacity, readers_left
from ppipe.engine.sinks import Sink
from ppipe.engine.tee import tee_function

#: Whether the kernel can move bytes between pipes for ppipe (Linux ``splice(2)``).
SPLICE_AVAILABLE = hasattr(os, "splice") and sys.platform.startswith("linux")

#: Splices per wake-up before other callbacks get a turn (8 pipes' worth).
_SPLICE_BURST = 8

#: After emptying the producer's pipe, a pump whose producer writes slower
#: than this (bytes per second) waits ``_TRICKLE_PAUSE`` before watching
#: again, so that a producer writing 4 KiB at a time costs one wake-up per few
#: hundred KiB, not one per write. The rate is what the pause lets half a pipe
#: (``PIPE_SIZE``) take, so the pause never makes a producer wait on a full
#: pipe; faster producers are never paused, nor is a pump that found a good
#: part of a pipe waiting (it was late, not the producer slow).
_TRICKLE_PAUSE = 0.002

_TRICKLE_RATE = PIPE_SIZE / 2 / _TRICKLE_PAUSE

#: A counting pump pays four system calls per splice (FIONREAD, tee,
#: splice, a read of the copy), however few bytes it moves; a fast
#: producer writing 8 KiB at a time then has it splice ~15 KiB at a go. So
#: a counting pump also pauses (``_COUNTED_PAUSE``, the loop's shortest
#: timer) when its producer is slower than what that pause lets three
#: quarters of a pipe take: its next wake-up finds a big chunk waiting, and
#: the producer still never waits on a full pipe.
_COUNTED_PAUSE = 0.001

_COUNTED_RATE = PIPE_SIZE * 3 / 4 / _COUNTED_PAUSE

_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)


class SplicePump(CutEvidence):
    """The Linux fast path for one producer feeding one consumer: ``os.splice``.

    The kernel moves the pages from the producer's pipe to the consumer's;
    no byte is copied through Python, yet every ``splice`` says how many it
    moved, so byte counts stay exact. Driven by IOLoop readiness: wait for
    the producer's pipe to be readable, splice until ``EAGAIN``; then, if
    bytes are still waiting, it is the consumer's pipe that is full, so wait
    for it to be writable. That wait is the backpressure; ppipe holds no
    bytes at all.

    Lines: with ``count_lines``, each splice is preceded by a ``tee(2)`` of
    the same bytes into a private pipe, which the pump reads and counts; the
    data still moves without passing through Python, so counting costs one
    copy instead of the two of :class:`Pump`. Every byte is counted, so the
    count is exact at every moment for what has moved. Without ``tee`` (not
    Linux, no libc), lines are not counted and ``count_lines`` is False; if
    the system refuses a ``tee`` mid-run, the edge's lines become unknown
    (``Counter.lines_complete``), never guessed.

    It has :class:`~ppipe.engine.pumps.Pump`'s interface as the engine uses it.
    """

    def __init__(self, source_fd: int, target_fd: int, count_lines: bool = False) -> None:
        self.source_fd = source_fd
        self.target_fd = target_fd
        os.set_blocking(source_fd, False)
        os.set_blocking(target_fd, False)
        self.counters = [Counter()]
        self._tee = tee_function() if count_lines else None
        self.count_lines = self._tee is not None
        self._tap: tuple[int, int] | None = None
        if self.count_lines:
            try:
                self._tap = make_pipe()
            except OSError:  # out of descriptors: the pump owns both ends already
                for fd in (source_fd, target_fd):
                    os.close(fd)
                raise
        self._tap_buffer = bytearray(PIPE_SIZE if self.count_lines else 0)
        self._tap_view = memoryview(self._tap_buffer)
        self._target_capacity = pipe_capacity(target_fd) if self.count_lines else 0
        self.closed_early = False
        self._loop = IOLoop.current()
        self._done: Future[None] = Future()
        self._watched: int | None = None
        self._wanted: tuple[int, int] = (source_fd, IOLoop.READ)
        self._paused = False
        self._closed = False
        self._last_wake = time.monotonic()
        self.waits = WaitClock()
        #: Stop once this many bytes have been moved in all (:meth:`finish_pending`).
        self._move_limit: int | None = None

    async def run(self) -> None:
        try:
            self._watch(self.source_fd, IOLoop.READ)
            await self._done
        finally:
            self.close()

    def _watch(self, fd: int, events: int) -> None:
        self._wanted = (fd, events)
        self.waits.wait_on("producer" if fd == self.source_fd else "consumer")
        if self._watched == fd or self._paused:
            return
        if self._watched is not None:
            self._loop.remove_handler(self._watched)
        self._watched = fd
        self._loop.add_handler(fd, self._on_ready, events)

    def _pause(self, seconds: float = _TRICKLE_PAUSE) -> None:
        if self._watched is not None:
            self._loop.remove_handler(self._watched)
            self._watched = None
        self._paused = True
        self._loop.call_later(seconds, self._resume)

    def _resume(self) -> None:
        self._paused = False
        if not self._closed:
            self._watch(*self._wanted)

    def _on_ready(self, fd: int, events: int) -> None:
        now = time.monotonic()
        since, self._last_wake = now - self._last_wake, now
        self._move_burst(now, since)

    def _move_burst(self, now: float, since: float) -> None:
        """Moves what it can, then decides what to wait for."""
        counter = self.counters[0]
        moved_now = 0
        for _ in range(_SPLICE_BURST):
            try:
                moved = self._splice_counted(counter) if self._tap else self._splice(counter)
            except BlockingIOError:
                if bytes_waiting(self.source_fd):
                    self._watch(self.target_fd, IOLoop.WRITE)  # the consumer is behind
                else:
                    self._watch(self.source_fd, IOLoop.READ)  # the producer is
                    if moved_now < min(_TRICKLE_RATE * since, PIPE_SIZE / 4):
                        self._pause()
                    elif self._tap is not None and moved_now < _COUNTED_RATE * since:
                        self._pause(_COUNTED_PAUSE)
                return
            except OSError:  # EPIPE: the consumer is gone (reported even with nothing to move)
                self.closed_early = True
                self._note_cut(self.source_fd)
                self._finish()
                return
            if moved == 0 or self._moved_all_owed():  # EOF, or all that finish_pending owed
                self._finish()
                return
            moved_now += moved
            self.last_data_at = now
        # A full burst: return, and level-triggered readiness calls again
        # once the other callbacks have had their turn.

    def _splice(self, counter: Counter) -> int:
        moved = os.splice(self.source_fd, self.target_fd, PIPE_SIZE, flags=_SPLICE_FLAGS)
        counter.nbytes += moved
        return moved

    def _splice_counted(self, counter: Counter) -> int:
        """Tees what waits, splices it on, and counts the lines of what actually moved.

        Only as much is teed as the consumer's pipe has room for (one
        FIONREAD), so a slow consumer does not make ppipe copy the same bytes
        over and over; skipping that question while the consumer keeps up
        measured 6% more CPU, since each time its pipe then fills a whole
        pipe's copy is read for nothing. It may still take less (its pipe
        holds part-filled pages): the rest of the copy is dropped, and teed
        again next time from the producer's pipe, where it still is. A
        ``tee`` the system refuses (a sandbox) ends the counting, not the
        edge.
        """
        assert self._tap is not None and self._tee is not None
        room = self._target_capacity - bytes_in_pipe(self.target_fd)
        if room <= 0:
            raise BlockingIOError  # the consumer is behind; bytes_waiting(source) tells the caller so
        try:
            teed = self._tee(self.source_fd, self._tap[1], room)
        except BlockingIOError:
            raise
        except OSError:
            self._stop_counting()
            return self._splice(counter)
        if teed == 0:
            return 0
        moved = 0
        try:
            moved = os.splice(self.source_fd, self.target_fd, teed, flags=_SPLICE_FLAGS)
        finally:
            copy = self._read_tap(teed)
            counter.add(copy[:moved], count_newlines(self._tap_buffer, moved))
        return moved

    def _read_tap(self, size: int) -> memoryview:
        assert self._tap is not None
        done = 0
        while done < size:  # tee put them all there already: no read waits
            done += os.readv(self._tap[0], [self._tap_view[done:size]])
        return self._tap_view[:size]

    def _stop_counting(self) -> None:
        """Counting ends for good (the system refused a ``tee``): the edge's lines are unknown from now on."""
        self.counters[0].lines_complete = False
        self._close_tap()

    def _close_tap(self) -> None:
        if self._tap is not None:
            for fd in self._tap:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._tap = None

    def _finish(self) -> None:
        self.close()
        if not self._done.done():
            self._done.set_result(None)

    def left_early(self, counter: Counter) -> bool:
        return self.closed_early

    def consumer_wait(self, counter: Counter) -> float:
        return self.waits.totals()[1]

    def idle_for(self) -> float:
        """Seconds the pump has been waiting for its producer (0 while the consumer is behind)."""
        return self.waits.waiting_on("producer")

    def _moved_all_owed(self) -> bool:
        return self._move_limit is not None and self.counters[0].nbytes >= self._move_limit

    def consumer_exited(self, sink: Sink | None) -> None:
        """A consumer process exited; its stdin may still be read by a child it left behind."""
        if not self._closed and readers_left(self.target_fd):
            return  # the next splice says EPIPE when the last reader goes
        self.sink_gone(sink)

    def sink_gone(self, sink: Sink | None) -> None:
        """The consumer exited: close the producer's pipe now, as the kernel would."""
        if not self._closed:
            self.closed_early = True
            self._note_cut(self.source_fd)
        self._finish()

    def stop_reading(self) -> None:
        self._finish()

    def finish_pending(self) -> None:
        """Moves what the producer's pipe holds now, then stops (see :meth:`Pump.finish_pending`)."""
        if self._closed or self._move_limit is not None:
            return  # once, as Pump.finish_pending
        owed = bytes_in_pipe(self.source_fd)
        self._move_limit = self.counters[0].nbytes + owed
        if owed == 0:
            self._finish()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.waits.wait_on(None)
        if self._watched is not None:
            self._loop.remove_handler(self._watched)
            self._watched = None
        self._close_tap()
        for fd in (self.source_fd, self.target_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
