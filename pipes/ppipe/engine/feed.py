"""ppipe's own input delivered to the stages that read it: bytes from the API, or its stdin copied."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator

from tornado.iostream import PipeIOStream, StreamClosedError

from ppipe.engine.counting import Counter, WaitClock, count_newlines
from ppipe.engine.descriptors import CHUNK, readable, stream
from ppipe.engine.sinks import Sink


class Feed:
    """ppipe's own input delivered to the stages that read it: ``stdin=bytes`` from the Python API, or
    ppipe's stdin (:func:`read_chunks`) when several stages read it (a group at the start).

    Each stage gets a full copy, as from a pump; one that exits without
    reading everything just stops getting more, as with a pipe in a shell.
    It counts like a :class:`Pump` (``counters``, ``waits``, :meth:`left_early`),
    so its edges show in the view and the report like any other.
    """

    count_lines = True

    def __init__(self) -> None:
        self.sinks: list[Sink] = []
        self.counters: list[Counter] = []
        self.waits = WaitClock()
        self._left: list[bool] = []

    def add(self, sink: Sink) -> Counter:
        """Adds a stage's stdin; returns the counter of its edge."""
        self.sinks.append(sink)
        self.counters.append(Counter())
        self._left.append(False)
        return self.counters[-1]

    def left_early(self, counter: Counter) -> bool:
        return self._left[next(i for i, mine in enumerate(self.counters) if mine is counter)]

    def consumer_wait(self, counter: Counter) -> float:
        return self.waits.totals()[1]

    async def run(self, source: bytes | AsyncIterator[bytes]) -> None:
        live = list(range(len(self.sinks)))
        chunks = chunks_of(source) if isinstance(source, bytes) else source
        try:
            self.waits.wait_on("producer")
            async for chunk in chunks:
                self.waits.wait_on("consumer")
                accepted = await asyncio.gather(*(self.sinks[i].write(chunk, self) for i in live))
                newlines = count_newlines(chunk)
                for i, ok in zip(list(live), accepted, strict=True):
                    if ok:
                        self.counters[i].add(chunk, newlines)
                    else:
                        live.remove(i)
                        self._left[i] = True
                if not live:
                    return
                self.waits.wait_on("producer")
        finally:
            self.waits.wait_on(None)
            for sink in self.sinks:
                await sink.finish(self)


async def read_chunks(fd: int) -> AsyncIterator[bytes]:
    """ppipe's own input, chunk by chunk, never blocking the loop and without changing the descriptor's flags.

    A pipe is reopened through ``/proc/self/fd`` (a private open file
    description, as :func:`sink_for_fd` does for output) and read through a
    stream. A regular file or a device such as ``/dev/null`` (which the
    loop cannot watch) is read with plain reads, which never wait long.
    Anything else (a socket, a terminal, a pipe that cannot be reopened) is
    read only when the loop says it is readable, so each read returns at
    once, blocking descriptor or not.
    """
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode) or (stat.S_ISCHR(mode) and not os.isatty(fd)):  # files, /dev/null: never wait
        while chunk := os.read(fd, 4 * CHUNK):
            yield chunk
            await asyncio.sleep(0)
        return
    source: PipeIOStream | None = None
    if stat.S_ISFIFO(mode):
        with contextlib.suppress(OSError):
            source = stream(os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
    if source is None:
        while chunk := await _read_when_ready(fd):
            yield chunk
        return
    try:
        while True:
            try:
                yield await source.read_bytes(4 * CHUNK, partial=True)
            except StreamClosedError:
                return
    finally:
        source.close()


async def chunks_of(data: bytes) -> AsyncIterator[bytes]:
    """``data`` a ``CHUNK`` at a time, as a stream would give it."""
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]


async def _read_when_ready(fd: int) -> bytes:
    loop = asyncio.get_running_loop()
    while True:
        await readable(loop, fd)
        try:
            return os.read(fd, 4 * CHUNK)
        except BlockingIOError:
            continue
