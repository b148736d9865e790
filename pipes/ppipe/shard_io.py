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

from .pumps import CHUNK, HeldSink, LineAssembler, Sink, held_problem, readers_left, stream

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


async def split_input(
    chunks: AsyncIterator[bytes], inputs: list[ShardInput], block: int, size: int | None = None
) -> None:
    """Deals whole-line blocks of ``chunks`` round-robin to ``inputs``, then ends every input.

    After a read error the shards get what was read, then EOF, and the
    error is raised. Stopped (cancelled) half-way, the bytes read but not
    dealt yet are counted as the next shard's undelivered input: every
    byte read is accounted for. ``size`` is the input's whole size when it
    is known (bytes given in memory): all of it then counts as read.
    """
    pending = bytearray()
    turn = 0
    read = 0
    read_error: OSError | None = None
    try:
        async for chunk in chunks:
            read += len(chunk)
            pending += chunk
            # No cut yet for a line longer than a block: wait for its newline.
            while len(pending) >= block and (cut := _block_end(pending, block)):
                dealt, receiver = bytes(pending[:cut]), inputs[turn % len(inputs)]
                del pending[:cut]
                turn += 1
                await receiver.send(dealt)
    except OSError as error:
        read_error = error
    except asyncio.CancelledError:
        inputs[turn % len(inputs)].count_unsent(len(pending) + (size - read if size is not None else 0))
        raise
    if pending:
        await inputs[turn % len(inputs)].send(bytes(pending))
    for shard_input in inputs:
        await shard_input.end()
    if read_error is not None:
        raise read_error


def _block_end(data: bytearray, block: int) -> int:
    """Where the block starting ``data`` ends: after its last newline within ``block`` bytes, or the first after."""
    cut = data.rfind(b"\n", 0, block) + 1
    return cut or data.find(b"\n", block) + 1


class ShardInput:
    """One shard's share of ppipe's input, fed to whichever attempt of the shard is running.

    :meth:`send` waits while the shard's queue is full (backpressure on the
    dealing). :meth:`attach` gives it a new attempt's stdin — a new attempt
    means the last one has ended, so feeding switches at once; :meth:`detach`
    says the shard will have no more attempts, after which blocks are only
    counted. With ``spool`` every block is also kept on disk, and each
    attempt after the first is fed them all again before the rest.

    The figures add up: ``received`` counts every byte dealt to the shard,
    ``delivered`` the longest start of them that an attempt's stdin took
    (each byte once, however often it was fed again), ``undelivered`` the
    rest — bytes the shard's attempts never took (they stopped reading, or
    the shard had ended).

    A spool that cannot be kept (a full ``TMPDIR``) is dropped, not
    trusted: the attempts carry on with the input as it comes, and
    ``spool_error`` says why no attempt can be fed it all again (so the
    shard must not be restarted).
    """

    def __init__(self, spool: bool) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1)  # None: the end
        self.received = 0
        self.delivered = 0
        self.spool_error: str | None = None
        self.spool: IO[bytes] | None = None
        if spool:
            self.spool = self._open_spool()
        self._taken = 0  # bytes taken off the queue: where the next block starts in the shard's input
        self._ended = False
        self._all_taken = False
        self._attached = 0
        self._target: PipeIOStream | None = None
        self._feeding: asyncio.Future[None] | None = None

    @property
    def undelivered(self) -> int:
        return self.received - self.delivered

    def count_unsent(self, nbytes: int) -> None:
        """Bytes read for this shard that the dealing could not send (it was stopped): undelivered."""
        self.received += nbytes

    async def send(self, block: bytes) -> None:
        self.received += len(block)  # counted before the wait: a block cut off while queued is undelivered
        await self.queue.put(block)

    async def end(self) -> None:
        """No more input: each attempt's stdin is closed once it has had everything."""
        if not self._ended:
            self._ended = True
            await self.queue.put(None)

    def attach(self, fd: int, lost: Callable[[str], None]) -> None:
        """A new attempt started; ``fd`` is the write end of its stdin.

        ``lost`` is called with the reason when the attempt cannot be fed
        the input its shard already had (the spool could not be read back).
        """
        self._stop_feeding()
        self._target = stream(fd)
        self._feeding = asyncio.ensure_future(self._feed(self._target, self._attached > 0, lost))
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

    async def _feed(self, target: PipeIOStream, replay: bool, lost: Callable[[str], None]) -> None:
        try:
            if replay and not await self._replay(target, lost):
                return
            while not self._all_taken:
                block = await self.queue.get()
                if block is None:
                    self._all_taken = True
                    break
                start, self._taken = self._taken, self._taken + len(block)
                self._keep(block)
                await self._give(target, block, start)
        except StreamClosedError:
            pass  # this attempt stopped reading; a restart, if any, gets everything again
        finally:
            target.close()

    def _keep(self, block: bytes) -> None:
        """Spools ``block``; a short write is retried, so only an error (a full disk) stops it."""
        if self.spool is None:
            return
        rest = memoryview(block)
        try:
            while rest:
                rest = rest[self.spool.write(rest) :]
        except OSError as error:
            self._drop_spool(error)

    async def _give(self, target: PipeIOStream, data: bytes | memoryview, start: int) -> None:
        """Writes ``data``, which is at ``start`` in the shard's input, counting what the attempt took."""

        def taken(end: int) -> None:
            self.delivered = max(self.delivered, start + end)

        await write_all(target, data, taken)

    async def _replay(self, target: PipeIOStream, lost: Callable[[str], None]) -> bool:
        """Feeds ``target`` everything the shard had so far; False (after ``lost``) when it cannot."""
        if self.spool is None:
            lost(self.spool_error or "cannot feed its input again: it was not kept")
            return False
        offset = 0
        while offset < self._taken:
            try:
                data = os.pread(self.spool.fileno(), CHUNK, offset)
            except OSError as error:
                self._drop_spool(error)
                lost(f"cannot be fed its input again: {held_problem(error)}")
                return False
            if not data:
                lost("cannot be fed its input again: the kept input ended short")
                return False
            await self._give(target, data, offset)
            offset += len(data)
        return True

    def _open_spool(self) -> IO[bytes] | None:
        try:
            # Appending, unbuffered, read back with pread; closed by close() when the run ends.
            return tempfile.TemporaryFile("a+b", buffering=0, prefix="ppipe-input-")
        except OSError as error:
            self._drop_spool(error)
            return None

    def _drop_spool(self, error: OSError) -> None:
        self.spool_error = f"cannot keep its input for a restart: {held_problem(error)}"
        if self.spool is not None:
            self.spool.close()  # frees its room in TMPDIR for the others
            self.spool = None

    async def _drop(self) -> None:
        while not self._all_taken:
            block = await self.queue.get()
            self._all_taken = block is None

    def close(self) -> None:
        self._stop_feeding()
        if self.spool is not None:
            self.spool.close()


async def write_all(target: PipeIOStream, data: bytes | memoryview, taken: Callable[[int], None] | None = None) -> None:
    """Writes ``data`` a ``CHUNK`` at a time: the stream's buffer is capped, and ``data`` may be larger.

    ``taken`` hears, after each piece, how many bytes of ``data`` the OS
    has taken so far. Raises ``StreamClosedError`` when the reader has gone.
    """
    view = memoryview(data)
    for start in range(0, len(view), CHUNK):
        end = min(start + CHUNK, len(view))
        await target.write(view[start:end])
        if taken is not None:
            taken(end)


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


class _AttemptShare(Sink):
    """One attempt's way into the shared output: giving it up (:meth:`abandon`) gives up only this attempt's."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner

    async def write(self, chunk: bytes | memoryview, feeder: object) -> bool:
        return self.alive and await self.inner.write(chunk, feeder)

    async def finish(self, feeder: object) -> None:
        await self.inner.finish(feeder)

    @property
    def alive(self) -> bool:
        return not self._gone and self.inner.alive


class KeptOrLost(Sink):
    """An attempt's output, which ppipe may have to keep on disk (an unfinished line, ``--keep-order``).

    When it cannot (``OSError``: a full ``TMPDIR``), the attempt's output
    is given up at once — its producer is stopped as if its reader had
    gone, and what was kept is freed — and ``lost`` is told why, so the
    run can fail naming it rather than pass with the output missing.
    """

    def __init__(self, inner: Sink, lost: Callable[[str], None]) -> None:
        self.inner = inner
        self.lost = lost

    async def write(self, chunk: bytes | memoryview, feeder: object) -> bool:
        if self._gone:
            return False
        try:
            return await self.inner.write(chunk, feeder)
        except OSError as error:
            self._give_up(error)
            return False

    async def finish(self, feeder: object) -> None:
        if self._gone:
            return
        try:
            await self.inner.finish(feeder)
        except OSError as error:
            self._give_up(error)

    def _give_up(self, error: OSError) -> None:
        self.abandon()
        self.lost(f"cannot keep its output: {held_problem(error)}")

    def abandon(self) -> None:
        self._gone = True
        self.inner.abandon()

    @property
    def alive(self) -> bool:
        return not self._gone and self.inner.alive


class OutputMerge:
    """ppipe's stdout during a sharded run: whole lines from every attempt, tagged and ordered as asked."""

    def __init__(self, target: Sink, *, shards: int, tag: bool, keep_order: bool) -> None:
        self.target = Lasting(target)
        self.lock = asyncio.Lock()
        self.tag = tag
        self.gates = (
            [OrderGate(self.target, live=i == 0, still_read=self.still_read) for i in range(shards)]
            if keep_order
            else None
        )
        self._turns = asyncio.Lock()

    def still_read(self) -> bool:
        """Whether anyone still reads ppipe's output; asked by gates that spool instead of writing it."""
        fd = self.target.inner.target_fd()
        if fd is not None and not readers_left(fd):
            self.target.abandon()
        return self.target.alive

    def sink_for(self, task_id: int, shard_index: int, *, lost: Callable[[str], None]) -> Sink:
        """The sink one attempt of a shard writes its stdout into; ``lost`` hears when it cannot keep it."""
        shared = self.target if self.gates is None else self.gates[shard_index]
        sink: Sink = LineAssembler(_AttemptShare(shared), self.lock, end_lines=True)
        if self.tag:
            sink = TagSink(sink, f"{task_id}\t".encode())
        return KeptOrLost(sink, lost)

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
