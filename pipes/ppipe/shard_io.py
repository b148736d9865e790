"""The bytes of a sharded run: ppipe's stdin split between shards, their output merged back.

Input (:func:`split_input`, :class:`ShardInput`): ppipe's stdin is cut into
blocks of about ``--block`` bytes, each ending at a newline (a line longer
than a block makes a longer block; a last line without a newline ends the
last block), and dealt round-robin: block *j* to shard *j mod N*. The
order is fixed, so ``--keep-order`` output and every re-run are
reproducible; the price is that one slow shard holds the dealing up, as a
slow stage holds up a pipe. Each shard has a queue of one block, so ppipe
holds at most about ``2 × N + 1`` blocks. When restarts are allowed, every
block is also spooled to a temporary file per shard, and a restarted
attempt is fed its shard's blocks again from the first: it sees exactly the
input the failed attempt saw, then the rest.

Output (:class:`OutputMerge`): every attempt's stdout is pumped through a
:class:`LineAssembler` into ppipe's stdout, so lines from different shards
never tear or mix mid-line; ``--tag`` puts ``task_id<TAB>`` before each line
(:class:`TagSink`); ``--keep-order`` (:class:`OrderGate`) passes shard 0's
output through as it comes and spools each later shard's to a temporary
file until every shard before it has finished.
"""

from __future__ import annotations

import asyncio
import os
import stat
import tempfile
from collections.abc import AsyncIterator, Callable
from typing import IO

from tornado.iostream import PipeIOStream, StreamClosedError

from .pumps import CHUNK, HeldSink, LineAssembler, Sink, readers_left, stream

#: ``--block`` when not given: GNU parallel's ``--pipe`` default.
DEFAULT_BLOCK = 1024 * 1024
_SUFFIXES = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    """``--block`` sizes: ``65536``, ``64k``, ``1M``, ``1G`` (powers of 1024, as GNU parallel); ValueError else."""
    number, suffix = text.strip(), ""
    if number[-1:].lower() in _SUFFIXES:
        number, suffix = number[:-1], number[-1].lower()
    size = int(float(number) * _SUFFIXES[suffix]) if number else 0
    if size <= 0:
        raise ValueError(f"not a positive size: {text!r}")
    return size


def splittable(fd: int) -> bool:
    """Whether ppipe's input on ``fd`` is something to split: a pipe, a socket or a regular file.

    A terminal is the user typing, and a device such as ``/dev/null``
    has nothing to split: shards then get no input at all.
    """
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode) or stat.S_ISSOCK(mode)


async def split_input(chunks: AsyncIterator[bytes], inputs: list[ShardInput], block: int) -> None:
    """Deals whole-line blocks of ``chunks`` round-robin to ``inputs``, then ends every input."""
    pending = bytearray()
    turn = 0
    try:
        async for chunk in chunks:
            pending += chunk
            while len(pending) >= block:
                cut = _block_end(pending, block)
                if not cut:
                    break  # a line longer than a block: wait for its newline
                await inputs[turn % len(inputs)].send(bytes(pending[:cut]))
                del pending[:cut]
                turn += 1
        if pending:
            await inputs[turn % len(inputs)].send(bytes(pending))
    finally:
        # Also after a read error: the shards get what was read, then EOF.
        for shard_input in inputs:
            await shard_input.end()


def _block_end(data: bytearray, block: int) -> int:
    """Where the block starting ``data`` ends: after its last newline within ``block`` bytes, or the first after."""
    cut = data.rfind(b"\n", 0, block) + 1
    return cut or data.find(b"\n", block) + 1


class ShardInput:
    """One shard's share of ppipe's input, fed to whichever attempt of the shard is running.

    :meth:`send` waits while the shard's queue is full (backpressure on the
    dealing). :meth:`attach` gives it a new attempt's stdin — a new attempt
    means the last one has ended, so feeding switches at once; :meth:`detach`
    says the shard will have no more attempts, after which blocks are
    counted in ``undelivered`` and dropped. With ``spool`` every block is
    also kept on disk, and each attempt after the first is fed them all
    again before the rest. ``delivered`` counts each byte once, at its first
    delivery.
    """

    def __init__(self, spool: bool) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1)  # None: the end
        # Appending, unbuffered, read back with pread; closed by close() when the run ends.
        self.spool: IO[bytes] | None = (
            tempfile.TemporaryFile("a+b", buffering=0, prefix="ppipe-input-") if spool else None)  # noqa: SIM115
        self.delivered = 0
        self.undelivered = 0
        self._ended = False
        self._all_taken = False
        self._attached = 0
        self._target: PipeIOStream | None = None
        self._feeding: asyncio.Future[None] | None = None

    async def send(self, block: bytes) -> None:
        await self.queue.put(block)

    async def end(self) -> None:
        """No more input: each attempt's stdin is closed once it has had everything."""
        if not self._ended:
            self._ended = True
            await self.queue.put(None)

    def attach(self, fd: int) -> None:
        """A new attempt started; ``fd`` is the write end of its stdin."""
        self._stop_feeding()
        self._target = stream(fd)
        self._feeding = asyncio.ensure_future(self._feed(self._target, replay=self._attached > 0))
        self._attached += 1

    def detach(self) -> None:
        """The shard is finished for good: nobody will read the rest."""
        self._stop_feeding()
        self._feeding = asyncio.ensure_future(self._drop())

    def _stop_feeding(self) -> None:
        if self._feeding is not None:
            self._feeding.cancel()
        if self._target is not None:
            self._target.close()
            self._target = None

    async def _feed(self, target: PipeIOStream, replay: bool) -> None:
        try:
            if replay:
                await self._replay(target)
            while not self._all_taken:
                block = await self.queue.get()
                if block is None:
                    self._all_taken = True
                    break
                if self.spool is not None:
                    self.spool.write(block)
                try:
                    await _write_all(target, block)
                except asyncio.CancelledError:
                    if self.spool is None:  # no restart will see it again
                        self.undelivered += len(block)
                    raise
                self.delivered += len(block)
        except StreamClosedError:
            pass  # this attempt stopped reading; a restart, if any, gets everything again
        finally:
            target.close()

    async def _replay(self, target: PipeIOStream) -> None:
        if self.spool is None:
            return
        offset = 0
        while data := os.pread(self.spool.fileno(), CHUNK, offset):
            offset += len(data)
            await target.write(data)

    async def _drop(self) -> None:
        while not self._all_taken:
            block = await self.queue.get()
            if block is None:
                self._all_taken = True
            else:
                self.undelivered += len(block)

    def close(self) -> None:
        self._stop_feeding()
        if self.spool is not None:
            self.spool.close()


async def _write_all(target: PipeIOStream, data: bytes) -> None:
    """Writes ``data`` a ``CHUNK`` at a time: the stream's buffer is capped, and a block may be larger."""
    view = memoryview(data)
    for start in range(0, len(view), CHUNK):
        await target.write(view[start:start + CHUNK])


class TagSink(Sink):
    """Puts ``tag`` before every line that passes (``--tag``)."""

    def __init__(self, inner: Sink, tag: bytes) -> None:
        self.inner = inner
        self.tag = tag
        self._line_start = True

    async def write(self, chunk: bytes | memoryview, feeder: object) -> bool:
        data = bytes(chunk)
        if not data:
            return self.inner.alive
        tagged = data.replace(b"\n", b"\n" + self.tag)
        if data.endswith(b"\n"):
            tagged = tagged[: -len(self.tag)]
        if self._line_start:
            tagged = self.tag + tagged
        self._line_start = data.endswith(b"\n")
        return await self.inner.write(tagged, feeder)

    async def finish(self, feeder: object) -> None:
        await self.inner.finish(feeder)

    def abandon(self) -> None:
        self.inner.abandon()

    @property
    def alive(self) -> bool:
        return self.inner.alive


class Lasting(Sink):
    """A sink shared by attempts that come and go: an attempt's end does not close it; :meth:`close` does."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner

    async def write(self, chunk: bytes | memoryview, feeder: object) -> bool:
        return await self.inner.write(chunk, feeder)

    def abandon(self) -> None:
        self.inner.abandon()

    @property
    def alive(self) -> bool:
        return self.inner.alive

    async def close(self) -> None:
        await self.inner.finish(self)


class OutputMerge:
    """ppipe's stdout during a sharded run: whole lines from every attempt, tagged and ordered as asked."""

    def __init__(self, target: Sink, *, shards: int, tag: bool, keep_order: bool) -> None:
        self.target = Lasting(target)
        self.lock = asyncio.Lock()
        self.tag = tag
        self.gates = ([OrderGate(self.target, live=i == 0, still_read=self.still_read) for i in range(shards)]
                      if keep_order else None)
        self._turns = asyncio.Lock()

    def still_read(self) -> bool:
        """Whether anyone still reads ppipe's output; asked by gates that spool instead of writing it."""
        fd = self.target.inner.target_fd()
        if fd is not None and not readers_left(fd):
            self.target.abandon()
        return self.target.alive

    def sink_for(self, task_id: int, shard_index: int) -> Sink:
        """The sink one attempt of a shard writes its stdout into."""
        sink: Sink = LineAssembler(self.target if self.gates is None else self.gates[shard_index], self.lock,
                                   end_lines=True)
        return TagSink(sink, f"{task_id}\t".encode()) if self.tag else sink

    async def shard_done(self, shard_index: int) -> None:
        """With ``--keep-order``: a shard will write no more; the next ones' output may follow."""
        if self.gates is None:
            return
        self.gates[shard_index].done = True
        async with self._turns:  # one at a time: two shards ending together must not open a gate twice
            for gate in self.gates:
                await gate.release()
                if not gate.done:
                    break

    async def close(self) -> None:
        if self.gates is not None:
            async with self._turns:
                for gate in self.gates:
                    await gate.release()
                    gate.discard()
        await self.target.close()


class OrderGate(HeldSink):
    """One shard's output under ``--keep-order``: passed on when it is its turn (:meth:`release`), kept before.

    Once nobody reads ppipe's output any more, nothing is kept.
    """

    def __init__(self, inner: Sink, live: bool, still_read: Callable[[], bool]) -> None:
        super().__init__(inner, held=not live)
        self.still_read = still_read
        self.done = False

    def holding(self) -> bool:
        return self.held and self.still_read()

    async def finish(self, feeder: object) -> None:
        if not self.held:
            await self.inner.finish(feeder)
