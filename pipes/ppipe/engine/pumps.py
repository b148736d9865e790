"""Moving bytes between processes: read a chunk, count it, hand it on, wait.

A :class:`Pump` reads one producer's output and delivers every chunk to one
or more :class:`~ppipe.engine.sinks.Sink` s (several = fan-out, each gets a
full copy). It never reads the next chunk before every live sink has taken
the last one. :class:`SplicePump` is the Linux fast path for one producer
feeding one consumer: the kernel moves the bytes.

A sink whose consumer has gone is dropped; when the last one is gone the
pump closes the producer's pipe, so the producer gets ``SIGPIPE``/``EPIPE``
on its next write, what a kernel pipe would do, and records what it saw
then (:class:`_CutEvidence`) for the exit-status rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time

from tornado.concurrent import Future
from tornado.ioloop import IOLoop
from tornado.iostream import PipeIOStream, StreamClosedError

from ppipe.engine.counting import Counter, Tail, WaitClock, count_newlines
from ppipe.engine.descriptors import (
    CHUNK,
    PIPE_SIZE,
    bytes_in_pipe,
    bytes_waiting,
    make_pipe,
    pipe_capacity,
    pipe_nearly_full,
    readers_left,
)
from ppipe.engine.sinks import Sink
from ppipe.engine.tee import tee_function
from ppipe.engine.tornado_internals import buffered_bytes

#: A producer that wrote this recently before ppipe closed its output was streaming into it...
STREAMING_WITHIN = 0.05

#: ...and one blocked or streaming then gets EPIPE at its next write: one that exits within this
#: many seconds of the closing died of it. One that exits later did something else first (a
#: script's next command), and its status is its own.
DIED_WITHIN = 0.25

#: What a program says on stderr when a write failed with EPIPE.
_BROKEN_PIPE_WORDS = (b"Broken pipe", b"BrokenPipe", b"EPIPE")


class _CutEvidence:
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


class Pump(_CutEvidence):
    """Reads one producer's output and delivers it to its sinks until EOF.

    ``counters[i]`` counts what ``sinks[i]`` accepted; ``observers`` see every
    chunk read (the stderr tail). ``closed_early`` is True when the pump
    stopped because every sink had gone, not because the producer ended;
    what it saw at that moment (:class:`_CutEvidence`) tells whether the
    producer's later failure can be blamed on the closed pipe (EPIPE).
    """

    def __init__(
        self,
        source: PipeIOStream,
        sinks: list[Sink],
        observers: tuple[Tail, ...] = (),
        count_lines: bool = True,
        keep_draining: bool = False,
    ) -> None:
        self.source = source
        self.sinks = sinks
        self.counters = [Counter() for _ in sinks]
        self.observers = observers
        self.count_lines = count_lines
        #: Go on reading (for the observers) when every sink has gone through
        #: an error (a closed or full stderr), so the producer is not stopped
        #: by it; a sink whose reader left still ends the pump, as a broken pipe.
        self.keep_draining = keep_draining
        self.waits = WaitClock()
        #: Reused for every read: each chunk is delivered (every write awaited) before the next read.
        self._buffer = bytearray(CHUNK)
        self._view = memoryview(self._buffer)
        self.closed_early = False
        self._live = list(range(len(sinks)))
        self._left = [False] * len(sinks)
        self._ended = False  # the producer's EOF was read
        #: Per sink: seconds spent waiting for its consumer, and since when the current write waits.
        self._sink_waited = [0.0] * len(sinks)
        self._sink_since: list[float | None] = [None] * len(sinks)
        self._read_total = 0
        #: Stop once this many bytes have been read in all (:meth:`finish_pending`).
        self._read_limit: int | None = None

    async def run(self) -> None:
        try:
            while (self._live or self.keep_draining) and not self._read_all_owed():
                self.waits.wait_on("producer")
                try:
                    # Straight into the pump's own buffer: no copy through
                    # tornado's read buffer, no new bytes object per chunk.
                    size = await self.source.read_into(self._buffer, partial=True)
                except StreamClosedError:
                    self._ended = not self.closed_early
                    break
                self.waits.wait_on(None)  # ppipe's own work (counting) is nobody's wait
                self.last_data_at = time.monotonic()
                self._read_total += size
                await self._deliver(self._view[:size])
        finally:
            self.waits.wait_on(None)
            self.source.close()
            for sink in self.sinks:
                await sink.finish(self)

    async def _deliver(self, chunk: memoryview) -> None:
        for observer in self.observers:
            observer.add(chunk)
        if not self._live:
            return
        newlines = count_newlines(self._buffer, len(chunk)) if self.count_lines else 0
        live = list(self._live)  # sink_gone() may change _live while we wait
        self.waits.wait_on("consumer")
        if len(live) == 1:
            accepted = [await self._timed_write(live[0], chunk)]
        else:
            accepted = await asyncio.gather(*(self._timed_write(i, chunk) for i in live))
        for i, ok in zip(live, accepted, strict=True):
            if ok:
                self.counters[i].add(chunk, newlines)
            elif i in self._live:
                self._live.remove(i)
                self._left[i] = True
        if not self._live and self.keep_draining and any(self.sinks[i].reader_left() for i in live):
            self.keep_draining = False  # as under a shell: a stderr nobody reads is a broken pipe
        if not self._live and not self.keep_draining:
            self.closed_early = True
            self._note_cut(self._source_fd())

    async def _timed_write(self, index: int, chunk: memoryview) -> bool:
        """Writes to one sink, timing the wait: in a fan-out, each consumer's own slowness."""
        self._sink_since[index] = started = time.monotonic()
        try:
            return await self.sinks[index].write(chunk, self)
        finally:
            self._sink_since[index] = None
            self._sink_waited[index] += time.monotonic() - started

    def idle_for(self) -> float:
        """Seconds the pump has been waiting for its producer (0 while it delivers)."""
        return self.waits.waiting_on("producer")

    def _index(self, counter: Counter) -> int:
        return next(i for i, mine in enumerate(self.counters) if mine is counter)

    def left_early(self, counter: Counter) -> bool:
        """Whether the consumer counted by ``counter`` went away before the producer had finished."""
        return self._left[self._index(counter)]

    def consumer_wait(self, counter: Counter) -> float:
        """Seconds spent waiting for the consumer counted by ``counter`` to read, the current wait included."""
        index = self._index(counter)
        since = self._sink_since[index]
        return self._sink_waited[index] + (time.monotonic() - since if since is not None else 0.0)

    def consumer_exited(self, sink: Sink | None) -> None:
        """A consumer process exited; its stdin may still be read by a child it left behind."""
        fd = sink.target_fd() if sink is not None else None
        if fd is not None and readers_left(fd):
            return  # the write side will learn of the last reader leaving by EPIPE
        self.sink_gone(sink)

    def sink_gone(self, sink: Sink | None) -> None:
        """A consumer exited: stop feeding it, and stop the producer if nobody is left."""
        assert sink is not None
        sink.abandon()
        if not self._ended:
            for i in self._live:
                self._left[i] = self._left[i] or not self.sinks[i].alive
        self._live = [i for i in self._live if self.sinks[i].alive]
        if not self._live and not self.source.closed():
            self.closed_early = True
            self._note_cut(self._source_fd())
            self.source.close()

    def _source_fd(self) -> int | None:
        return None if self.source.closed() else self.source.fileno()

    def stop_reading(self) -> None:
        """Stops reading now, delivering nothing more (the producer's descendants may keep the pipe open for ever)."""
        self.source.close()

    def finish_pending(self) -> None:
        """Delivers what the producer's pipe holds now, then stops: later bytes can only be a descendant's.

        For when every stage has exited but a background descendant still
        holds the pipe and keeps writing into it: what the stages wrote is
        still delivered in full, and the run can end.
        """
        if self.source.closed() or self._read_limit is not None:
            return  # once: asked again later, it must not take on what a descendant wrote since
        owed = bytes_in_pipe(self.source.fileno()) + buffered_bytes(self.source)
        self._read_limit = self._read_total + owed
        if owed == 0:
            self.source.close()

    def _read_all_owed(self) -> bool:
        return self._read_limit is not None and self._read_total >= self._read_limit

    def close(self) -> None:
        """Releases both ends, whatever state the pump is in."""
        self.source.close()
        for sink in self.sinks:
            sink.abandon()


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

_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)


class SplicePump(_CutEvidence):
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
    copy instead of the two of :class:`Pump`. ``count_lines_below`` (bytes
    per second) caps what counting may copy, as a bucket of one second's
    worth that refills at that rate: a slower edge is counted exactly; on a
    faster one, splices that find the bucket empty move their bytes
    uncounted, and ``Counter.lines_estimate`` estimates their lines from the
    newline density of the bytes counted just before. The view's figures
    must not slow the pipeline down. Without ``tee`` (not Linux, no libc), lines are not counted and
    ``count_lines`` is False.

    It has :class:`Pump`'s interface as the engine uses it.
    """

    def __init__(
        self, source_fd: int, target_fd: int, count_lines: bool = False, count_lines_below: int | None = None
    ) -> None:
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
        self._count_lines_below = count_lines_below
        #: Bytes copied out of the tap so far (the cost of counting), and the rate window over them.
        self._copied = 0
        self._window = (time.monotonic(), 0)  # (start, self._copied then) for count_lines_below
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

    def _pause(self) -> None:
        if self._watched is not None:
            self._loop.remove_handler(self._watched)
            self._watched = None
        self._paused = True
        self._loop.call_later(_TRICKLE_PAUSE, self._resume)

    def _resume(self) -> None:
        self._paused = False
        if not self._closed:
            self._watch(*self._wanted)

    def _on_ready(self, fd: int, events: int) -> None:
        now = time.monotonic()
        since, self._last_wake = now - self._last_wake, now
        self._move_burst(now, since)
        if self._tap is not None and self._count_lines_below is not None:
            self._watch_rate(now)

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

        Only as much is teed as the consumer's pipe has room for, so a slow
        consumer does not make ppipe copy the same bytes over and over. It
        may still take less (its pipe holds part-filled pages): the rest of
        the copy is dropped, and teed again next time from the producer's
        pipe, where it still is. A ``tee`` the system refuses (a sandbox)
        ends the counting, not the edge.

        With ``count_lines_below``, counting samples: it may copy that many
        bytes a second, as from a bucket of one second's worth that refills
        at that rate (:meth:`_watch_rate`). An edge slower than that, bursts
        included, is counted exactly; on a faster one the bucket runs dry and
        a splice finding it empty moves its bytes uncounted (``Counter.skip``
        estimates their lines), so counted splices are spread evenly through
        the edge's life and counting costs that rate however fast the edge.
        """
        assert self._tap is not None and self._tee is not None
        if self._count_lines_below is not None:
            start, copied_then = self._window
            budget = self._count_lines_below
            # This wake-up's time (set by _on_ready): no clock read per splice on the fast path.
            if budget * (1 + self._last_wake - start) - (self._copied - copied_then) <= 0:
                moved = self._splice(counter)
                counter.skip(moved)
                return moved
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
        self._copied += size
        return self._tap_view[:size]

    def _watch_rate(self, now: float) -> None:
        """Refills the counting bucket (see :meth:`_splice_counted`): ``_window`` is when it was last full,
        and what had been copied then; once it would hold more than one second's worth, it is full from now."""
        assert self._count_lines_below is not None
        start, copied_then = self._window
        budget = self._count_lines_below
        if budget * (1 + now - start) - (self._copied - copied_then) >= budget:
            self._window = now, self._copied

    def _stop_counting(self) -> None:
        """Counting ends for good (the system refused a ``tee``): what was counted stays, as a sample."""
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
