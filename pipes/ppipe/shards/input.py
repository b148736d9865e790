"""A sharded run's input: ppipe's stdin split between shards in whole-line blocks.

ppipe's stdin is cut into blocks of about ``--block`` bytes, each ending at
a newline (a line longer than a block makes a longer block; a last line
without a newline ends the last block), and dealt round-robin: block *j* to
shard *j mod N*. A ``--fork`` shard starts when its first block arrives, and
one that gets none (fewer blocks than shards) is not started. The order is
fixed, so ``--keep-order`` output and every re-run are reproducible; the
price is that one slow shard holds the dealing up, as a slow stage holds up
a pipe. Each shard has a queue of one block, so ppipe holds at most about
``2 × N + 1`` blocks. When restarts are allowed,
every block is also spooled to a temporary file per shard, and a restarted
attempt is fed its shard's blocks again from the first.
"""

from __future__ import annotations

import asyncio
import os
import stat
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import IO

from tornado.iostream import PipeIOStream, StreamClosedError

from ppipe.engine.descriptors import CHUNK, stream
from ppipe.engine.feed import chunks_of, read_chunks
from ppipe.engine.options import Input
from ppipe.engine.sinks import held_problem
from ppipe.engine.slices import FileSlice, read_slice

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


def _block_end(data: bytearray, block: int, end: bytes = b"\n") -> int:
    """Where the block starting ``data`` ends: after its last record ``end`` within ``block`` bytes, or the first after.

    0 when ``data`` holds no whole record yet.
    """
    found = data.rfind(end, 0, block)
    if found < 0:
        found = data.find(end, block)
    return found + len(end) if found >= 0 else 0


def _records_end(data: bytearray, count: int, end: bytes) -> int:
    """Where the first ``count`` records of ``data`` end; 0 until they have all arrived."""
    cut = 0
    for _ in range(count):
        found = data.find(end, cut)
        if found < 0:
            return 0
        cut = found + len(end)
    return cut


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

    ``parked`` (with ``spool``): the shard waits for a free slot
    (``--jobs``), so until its first attempt is attached its blocks go
    straight to the spool instead of the queue, and the dealing never waits
    for it; the first attempt is fed them from there. A spool that fails
    then loses them, and that attempt fails saying so.

    ``awaits_input`` (``--fork``): the shard starts only when a record of
    its own arrives (a ``--header`` sent to every shard does not count),
    and one that never gets a record is not started at all; ``unfed``
    says it has had none yet. ``on_dealt`` is called when the first one
    arrives, before it is queued, so that the shard can start and take it.
    """

    def __init__(self, spool: bool, parked: bool = False, awaits_input: bool = False) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1)  # None: the end
        self.awaits_input = awaits_input
        self.dealt = False
        self.on_dealt: Callable[[], None] | None = None
        self.received = 0
        self.delivered = 0
        self.spool_error: str | None = None
        self.spool: IO[bytes] | None = None
        if spool:
            self.spool = self._open_spool()
        self._parked = parked
        self._taken = 0  # bytes taken off the queue: where the next block starts in the shard's input
        self._ended = False
        self._all_taken = False
        self._attached = 0
        self._target: PipeIOStream | None = None
        self._feeding: asyncio.Future[None] | None = None

    @property
    def unfed(self) -> bool:
        """The shard waits for a record of its own (``awaits_input``) and none has come."""
        return self.awaits_input and not self.dealt

    @property
    def undelivered(self) -> int:
        return self.received - self.delivered

    def count_unsent(self, nbytes: int) -> None:
        """Bytes read for this shard that the dealing could not send (it was stopped): undelivered."""
        self.received += nbytes

    async def send(self, block: bytes, *, header: bool = False) -> None:
        """Queues ``block`` for the shard (waiting while its queue is full); ``header``: the part every shard gets."""
        self.received += len(block)  # counted before the wait: a block cut off while queued is undelivered
        if not header and not self.dealt:
            self.dealt = True
            if self.on_dealt is not None:
                self.on_dealt()
        if self._parked:
            self._taken += len(block)
            self._keep(block)
            return
        await self.queue.put(block)

    async def end(self) -> None:
        """No more input: each attempt's stdin is closed once it has had everything."""
        if not self._ended:
            self._ended = True
            if self.unfed:  # it will never start: the header waiting in its queue goes nowhere
                while not self.queue.empty():
                    self.queue.get_nowait()
            await self.queue.put(None)

    def attach(self, fd: int, lost: Callable[[str], None]) -> None:
        """A new attempt started; ``fd`` is the write end of its stdin.

        ``lost`` is called with the reason when the attempt cannot be fed
        the input its shard already had (the spool could not be read back).
        """
        self._stop_feeding()
        self._target = stream(fd)
        replay = self._attached > 0 or self._taken > 0  # a restart, or blocks kept while parked
        self._parked = False
        self._feeding = asyncio.ensure_future(self._feed(self._target, replay, lost))
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
        why = "while it waits for a slot" if self._parked else "for a restart"
        self.spool_error = f"cannot keep its input {why}: {held_problem(error)}"
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


async def split_stdin(stdin: Input, inputs: list[ShardInput], block: int, records: Records | None = None) -> str | None:
    """Deals ppipe's input (a descriptor, default 0, or the API's bytes) to ``inputs``; see :func:`split_input`.

    Returns why it could not read all of it, if so: the run then fails, as
    a plain run does, since the shards may have missed input. The size of
    bytes, or of what is left of a regular file, is known: when the run
    ends before it was all read, the rest counts as undelivered. Of a pipe,
    only what was read counts.
    """
    try:
        if isinstance(stdin, bytes):
            await split_input(chunks_of(stdin), inputs, block, size=len(stdin), records=records)
        elif isinstance(stdin, FileSlice):
            await split_input(read_slice(stdin), inputs, block, size=stdin.size, records=records)
        else:
            fd = 0 if stdin is None else stdin
            await split_input(read_chunks(fd), inputs, block, size=regular_file_left(fd), records=records)
    except OSError as error:
        return f"cannot read the input: {error.strerror or error}"
    return None


@dataclass(frozen=True)
class Records:
    """What the input is split by: records ending with ``end``; the first ``header`` go to every shard first."""

    end: bytes = b"\n"
    header: int = 0


def regular_file_left(fd: int) -> int | None:
    """How many bytes a regular file on ``fd`` has from where it stands; None for anything else."""
    try:
        info = os.fstat(fd)
        return info.st_size - os.lseek(fd, 0, os.SEEK_CUR) if stat.S_ISREG(info.st_mode) else None
    except OSError:
        return None


async def split_input(
    chunks: AsyncIterator[bytes],
    inputs: list[ShardInput],
    block: int,
    size: int | None = None,
    records: Records | None = None,
) -> None:
    """Deals whole-record blocks of ``chunks`` round-robin to ``inputs``, then ends every input.

    After a read error the shards get what was read, then EOF, and the
    error is raised. Stopped (cancelled) half-way, the bytes read but not
    dealt yet are counted as the next shard's undelivered input: every
    byte read is accounted for. ``size`` is the input's whole size when it
    is known (bytes given in memory): all of it then counts as read.
    ``records`` says what a record is (lines by default) and how many of
    the first are a header that every shard's input starts with.
    """
    records = records or Records()
    pending = bytearray()
    turn = 0
    read = 0
    header_left = records.header
    read_error: OSError | None = None
    try:
        async for chunk in chunks:
            read += len(chunk)
            pending += chunk
            if header_left and (cut := _records_end(pending, header_left, records.end)):
                header_left = 0
                await _deal_header(bytes(pending[:cut]), inputs)
                del pending[:cut]
            if header_left:
                continue
            # No cut yet for a record longer than a block: wait for its end.
            while len(pending) >= block and (cut := _block_end(pending, block, records.end)):
                dealt, receiver = bytes(pending[:cut]), inputs[turn % len(inputs)]
                del pending[:cut]
                turn += 1
                await receiver.send(dealt)
    except OSError as error:
        read_error = error
    except asyncio.CancelledError:
        inputs[turn % len(inputs)].count_unsent(len(pending) + (max(0, size - read) if size is not None else 0))
        raise
    if header_left and pending:  # fewer records than the header: all of it is the header
        await _deal_header(bytes(pending), inputs)
    elif pending:
        await inputs[turn % len(inputs)].send(bytes(pending))
    for shard_input in inputs:
        await shard_input.end()
    if read_error is not None:
        raise read_error


async def _deal_header(header: bytes, inputs: list[ShardInput]) -> None:
    """Every shard's input starts with the header (``--header N``), as GNU parallel's ``--header``."""
    for shard_input in inputs:
        await shard_input.send(header, header=True)


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
