"""Moving bytes between processes through Python: read a chunk, count it, hand it on, wait.

A :class:`Pump` reads one producer's output and delivers every chunk to one
or more :class:`~ppipe.engine.sinks.Sink` s (several = fan-out, each gets a
full copy). It never reads the next chunk before every live sink has taken
the last one. (:class:`~ppipe.engine.splice.SplicePump` is the Linux fast
path for one producer feeding one consumer: the kernel moves the bytes.)

A sink whose consumer has gone is dropped; when the last one is gone the
pump closes the producer's pipe, so the producer gets ``SIGPIPE``/``EPIPE``
on its next write, what a kernel pipe would do, and records what it saw
then (:class:`~ppipe.engine.carrier.CutEvidence`) for the exit-status rules.
"""

from __future__ import annotations

import asyncio
import time

from tornado.iostream import PipeIOStream, StreamClosedError

from ppipe.engine.carrier import CutEvidence
from ppipe.engine.counting import Counter, Tail, WaitClock, count_newlines
from ppipe.engine.descriptors import CHUNK, bytes_in_pipe, readers_left
from ppipe.engine.sinks import Sink
from ppipe.engine.tornado_internals import buffered_bytes


class Pump(CutEvidence):
    """Reads one producer's output and delivers it to its sinks until EOF.

    ``counters[i]`` counts what ``sinks[i]`` accepted; ``observers`` see every
    chunk read (the stderr tail). ``closed_early`` is True when the pump
    stopped because every sink had gone, not because the producer ended;
    what it saw at that moment (:class:`~ppipe.engine.carrier.CutEvidence`) tells whether the
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
            self._free_buffer()
            for sink in self.sinks:
                await sink.finish(self)

    def _free_buffer(self) -> None:
        """Gives the buffer's memory back: the pump outlives its run (its counters are read later).

        Emptied in place, since the source stream still holds it as its read
        buffer after the read that met EOF: a batch keeps a pump per attempt,
        and kept a quarter of a MiB with each. A write cancelled half-way may
        still hold a slice of it; then it goes with the last slice instead.
        """
        try:
            self._view.release()
            self._buffer.clear()
        except BufferError:
            self._buffer = bytearray()
        self._view = memoryview(self._buffer)

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
