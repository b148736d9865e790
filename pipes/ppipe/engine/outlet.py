"""A run's output handed to Python code as it comes: :class:`Outlet`, a sink that queues chunks, bounded.

``ppipe.stream`` reads a run's output while the run goes on. The pumps
that would write into ppipe's stdout write into an :class:`Outlet`
instead. It holds at most ``limit`` bytes (and always takes one chunk when
it is empty, however big); a write waits for room, so the pump reads no
more from the last stage until the reader has taken some, the last stage
blocks on its full pipe, and so on up the pipeline: a slow reader slows
the run, as under a shell, and nothing grows.

Three ends, each said once: the reader takes chunks (:meth:`Outlet.get`)
until the run has ended (:meth:`Outlet.end`) and nothing is queued; the
reader may leave first (:meth:`Outlet.close`), and the pumps then see what
they see when ppipe's stdout loses its reader: a broken pipe.
"""

from __future__ import annotations

import asyncio
import collections

from ppipe.engine.descriptors import CHUNK
from ppipe.engine.sinks import Sink

#: How many bytes an outlet holds before a write waits: four of the pumps' chunks.
OUTLET_LIMIT = 4 * CHUNK


class Outlet(Sink):
    """A bounded queue of output chunks between a run's pumps and the Python code reading them.

    Any number of feeders may write (a fan-in's lines, a sharded run's
    merge); :meth:`finish` ends nothing, since only the run knows when its
    output has ended: whoever runs it calls :meth:`end` then. Once the
    reader has left (:meth:`close`), every write, waiting or not, returns
    False: the pump stops and closes the last stage's pipe, which then gets
    SIGPIPE or EPIPE at its next write and is excused for it, as
    ``yes | head -1`` is.
    """

    def __init__(self, limit: int = OUTLET_LIMIT) -> None:
        self.limit = limit
        #: Bytes queued now, not yet taken by the reader.
        self.queued = 0
        self._chunks: collections.deque[bytes] = collections.deque()
        self._room = asyncio.Event()  # set whenever a waiting writer should look again
        self._data = asyncio.Event()  # set whenever the waiting reader should look again
        self._ended = False
        self._left = False

    # -- the pumps' side

    async def write(self, chunk: bytes | memoryview, feeder: object) -> bool:
        while self.alive and self.queued >= self.limit:
            self._room.clear()
            await self._room.wait()
        if not self.alive:
            return False
        if chunk:
            data = bytes(chunk)  # a copy: the pump reads its next chunk into the same buffer
            self._chunks.append(data)
            self.queued += len(data)
            self._data.set()
        return True

    def abandon(self) -> None:
        """ppipe gives the output up (its run is ending, or dropped what nobody read): no more writes.

        What is queued stays for the reader, who gets the end once the run
        has ended (:meth:`end`).
        """
        self._gone = True
        self._room.set()

    def reader_left(self) -> bool:
        return self._left

    # -- the reader's side

    def take(self) -> bytes | None:
        """The next queued chunk, or None when none is queued now; never waits."""
        if not self._chunks:
            return None
        chunk = self._chunks.popleft()
        self.queued -= len(chunk)
        self._room.set()
        return chunk

    async def get(self) -> bytes | None:
        """The next chunk, waiting for one; None once the output has ended (or the reader left) and none is left."""
        while not self._chunks and not (self._ended or self._left):
            self._data.clear()
            await self._data.wait()
        return self.take()

    def end(self) -> None:
        """The run has ended: no more output will come, and a waiting reader gets the end after what is queued."""
        self._ended = True
        self.abandon()
        self._data.set()

    def close(self) -> None:
        """The reader leaves: what is queued is dropped, and every write from now on (a waiting one too) fails.

        Nothing happens when the output had ended anyway.
        """
        if self._ended:
            return
        self._left = True
        self._chunks.clear()
        self.queued = 0
        self.abandon()
        self._data.set()

    @property
    def ended(self) -> bool:
        """Whether the run has ended (see :meth:`end`); chunks may still be queued."""
        return self._ended
