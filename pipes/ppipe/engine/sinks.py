"""Where a pump delivers bytes: a consumer's stdin, ppipe's own stdout or stderr, memory, a spool.

A :class:`Sink` says, by ``write`` returning False, that it is gone; the
pump then stops feeding it. ``write`` is awaited for every chunk: tornado's
``PipeIOStream.write`` buffers without limit, so *awaiting each write is
the only thing that bounds memory*. Several pumps may feed one
:class:`LineMerge` (fan-in): it interleaves whole lines, never tearing one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
import sys
from typing import IO

from tornado.ioloop import IOLoop
from tornado.iostream import PipeIOStream, StreamClosedError
from tornado.locks import Lock

from ppipe.engine.descriptors import CHUNK, stream


def held_problem(error: OSError) -> str:
    """Why ppipe could not keep something in a temporary file, and where: ``No space left on device (TMPDIR=/tmp)``."""
    import tempfile  # only a run that spools imports it (with shutil, bz2, lzma): not a plain one

    return f"{error.strerror or error} (TMPDIR={tempfile.gettempdir()})"


class Sink:
    """Where a pump delivers bytes. ``write`` returns False once the sink is gone."""

    _gone = False
    #: A write error other than the consumer leaving (a full disk, a bad descriptor), once one happened.
    error: OSError | None = None
    #: Why bytes this sink had taken on could not be kept until they could go on (a full ``$TMPDIR``):
    #: what went through it is then incomplete, and the run must fail.
    hold_error: OSError | None = None

    @property
    def alive(self) -> bool:
        return not self._gone

    async def write(self, chunk: bytes | memoryview, feeder: object) -> bool:
        raise NotImplementedError

    async def finish(self, feeder: object) -> None:
        """Called once by each feeding pump when it has delivered its last byte."""

    def abandon(self) -> None:
        """The consumer is gone: drop anything pending and wake the feeders."""
        self._gone = True

    def target_fd(self) -> int | None:
        """The pipe this sink writes into, when it is one (a consumer's stdin)."""
        return None

    def reader_left(self) -> bool:
        """Whether the sink is gone because nobody reads it any more (EPIPE), not because of another error."""
        return not self.alive and self.error is None


class WrappingSink(Sink):
    """A sink in front of another, ``inner``: alive while it is, and gone with it when its reader left."""

    inner: Sink

    @property
    def alive(self) -> bool:
        return self.inner.alive

    def reader_left(self) -> bool:
        return self.inner.reader_left()


class StreamSink(Sink):
    """A consumer's stdin (or ppipe's own stdout/stderr) behind a ``PipeIOStream``.

    Several feeders may write at once (the stderr of many stages, of many
    shards): writes take turns, each whole (a feeder's whole lines stay
    together), and go to the stream a ``CHUNK`` at a time, so the stream's
    buffer never outgrows its cap whoever writes how much. ``error`` keeps a
    write error other than the reader leaving (a full disk, a bad descriptor).
    """

    def __init__(self, target: PipeIOStream, feeders: int = 1) -> None:
        self.target = target
        self.feeders = feeders
        self._turn = Lock()

    async def write(self, chunk: bytes | memoryview, feeder: object) -> bool:
        if not self.alive:
            return False
        view = memoryview(chunk)
        async with self._turn:
            try:
                for start in range(0, len(view), CHUNK):
                    await self.target.write(view[start : start + CHUNK])
            except StreamClosedError as closed:
                self._note(closed.real_error)
                self.abandon()
        return self.alive

    def _note(self, error: BaseException | None) -> None:
        if isinstance(error, OSError) and error.errno not in (errno.EPIPE, errno.ECONNRESET):
            self.error = error

    async def finish(self, feeder: object) -> None:
        self.feeders -= 1
        if self.feeders <= 0:
            # Every write was awaited, so closing loses nothing (close() itself
            # would drop a pending write).
            self.target.close()

    def abandon(self) -> None:
        self._gone = True
        self.target.close()

    def target_fd(self) -> int | None:
        return None if self.target.closed() else self.target.fileno()


class LineAssembler(WrappingSink):
    """One feeder's bytes into a sink it shares with others: whole lines only, and nobody held up.

    Complete lines are passed on at once, under the shared lock only for the
    write itself. The unfinished line at the end of a chunk is kept back —
    in memory up to ``memory_limit``, beyond that in a temporary file — and
    passed on whole, under the lock, when its newline (or the end) comes.

    Keeping it back, rather than holding the other feeders until its newline,
    is what keeps a merge from deadlocking: when the feeders share a
    producer (``{ cat ; cat }``, or shards dealt one input), a feeder in the
    middle of a long line may need more input to finish it, and the
    producer cannot give it more until the held feeders read. With
    ``end_lines`` (shards) a last line without a newline is given one, so
    that it cannot run into another feeder's next line; without (fan-in, as
    in bash) it is passed on as it is.
    """

    def __init__(self, inner: Sink, lock: asyncio.Lock, memory_limit: int = 4 * CHUNK, end_lines: bool = False) -> None:
        self.inner = inner
        self.lock = lock
        self.memory_limit = memory_limit
        self.end_lines = end_lines
        self._partial = bytearray()
        self._spill: IO[bytes] | None = None

    async def write(self, chunk: bytes | memoryview, feeder: object) -> bool:
        data = bytes(chunk)  # the pump reuses its buffer
        cut = data.rfind(b"\n") + 1
        if cut:
            if self._spill is None and self._partial:  # one write for the whole line (a view prints per write)
                data = bytes(self._partial) + data
                cut += len(self._partial)
                self._partial.clear()
            async with self.lock:
                if not (await self._emit_partial(feeder) and await self.inner.write(data[:cut], feeder)):
                    return False
        self._keep(data[cut:])
        return self.inner.alive

    def _keep(self, rest: bytes) -> None:
        if not rest:
            return
        if self._spill is None and len(self._partial) + len(rest) <= self.memory_limit:
            self._partial += rest
            return
        if self._spill is None:
            import tempfile

            self._spill = tempfile.TemporaryFile(prefix="ppipe-line-")  # noqa: SIM115 (closed when emitted)
            self._spill.write(self._partial)
            self._partial.clear()
        self._spill.write(rest)

    async def _emit_partial(self, feeder: object) -> bool:
        if self._spill is not None:
            spill, self._spill = self._spill, None
            with spill:
                spill.seek(0)
                while piece := spill.read(CHUNK):
                    if not await self.inner.write(piece, feeder):
                        return False
        if self._partial:
            partial = bytes(self._partial)
            self._partial.clear()
            return await self.inner.write(partial, feeder)
        return True

    async def finish(self, feeder: object) -> None:
        if self._partial or self._spill is not None:
            if self.end_lines:
                self._keep(b"\n")
            async with self.lock:
                await self._emit_partial(feeder)
        await self.inner.finish(feeder)

    def abandon(self) -> None:
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        self.inner.abandon()


class LineMerge(Sink):
    """Fan-in: several pumps into one sink, a whole line at a time (a :class:`LineAssembler` per feeder).

    Lines never tear and no feeder waits for another's newline; an
    unfinished line waits instead (in memory, then on disk), so a long line
    cannot deadlock feeders that share a producer.
    """

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.lock = asyncio.Lock()
        self._parts: dict[object, LineAssembler] = {}

    async def write(self, chunk: bytes | memoryview, feeder: object) -> bool:
        if self.hold_error is not None:
            return False
        part = self._parts.get(feeder)
        if part is None:
            part = self._parts[feeder] = LineAssembler(self.inner, self.lock)
        try:
            return await part.write(chunk, feeder)
        except OSError as error:
            self._cannot_hold(error)
            return False

    async def finish(self, feeder: object) -> None:
        part = self._parts.pop(feeder, None)
        if part is not None and self.hold_error is None:
            try:
                await part.finish(feeder)  # its last line, then the inner finish
                return
            except OSError as error:
                self._cannot_hold(error)
        await self.inner.finish(feeder)

    def _cannot_hold(self, error: OSError) -> None:
        """An unfinished line could not be kept: the merge is given up (its feeders see a broken pipe)."""
        self.hold_error = error
        for part in self._parts.values():
            part.abandon()

    def abandon(self) -> None:
        for part in self._parts.values():
            part.abandon()
        self.inner.abandon()

    def target_fd(self) -> int | None:
        return self.inner.target_fd()

    @property
    def alive(self) -> bool:
        return self.hold_error is None and self.inner.alive

    def reader_left(self) -> bool:
        return self.hold_error is None and self.inner.reader_left()


class LineJoiner(WrappingSink):
    """Several streams into one (the stages' stderr), each line kept whole, nobody held up.

    A feeder's unfinished line is held back until its newline arrives, until
    it has waited ``flush_after`` seconds, or until it outgrows
    ``max_partial``; so a progress bar ending in ``\\r`` still shows. Unlike
    :class:`LineMerge` no feeder ever waits for another: on stderr that wait
    would deadlock (a stage stuck mid-line while the stage it feeds waits to
    write its own stderr).
    """

    def __init__(self, inner: Sink, flush_after: float = 0.1, max_partial: int = 4096, end_lines: bool = False) -> None:
        self.inner = inner
        self.flush_after = flush_after
        self.max_partial = max_partial
        #: A feeder's last line gets a newline if it has none, so that whatever is written next
        #: (another stage's line, ppipe's own message, the report) starts a line of its own.
        self.end_lines = end_lines
        self._partial: dict[object, bytes] = {}
        self._unended: set[object] = set()
        self._flushing: set[asyncio.Future[bool]] = set()

    async def write(self, chunk: bytes | memoryview, feeder: object) -> bool:
        data = self._partial.pop(feeder, b"") + chunk
        cut = data.rfind(b"\n") + 1
        if len(data) - cut > self.max_partial:
            cut = len(data)
        if cut < len(data):
            self._partial[feeder] = data[cut:]
            IOLoop.current().call_later(self.flush_after, self._flush, feeder, self._partial[feeder])
        return await self._send(data[:cut], feeder) if cut else self.inner.alive

    async def _send(self, piece: bytes, feeder: object) -> bool:
        if piece.endswith(b"\n"):
            self._unended.discard(feeder)
        else:
            self._unended.add(feeder)
        return await self.inner.write(piece, feeder)

    def _flush(self, feeder: object, waited: bytes) -> None:
        if self._partial.get(feeder) is waited:  # nothing came since: show it as it is
            del self._partial[feeder]
            flush = asyncio.ensure_future(self._send(waited, feeder))
            self._flushing.add(flush)
            flush.add_done_callback(self._flushing.discard)

    async def finish(self, feeder: object) -> None:
        if self._flushing:  # a line shown unfinished goes out before what follows it
            await asyncio.gather(*self._flushing)
        rest = self._partial.pop(feeder, b"")
        if rest:
            await self._send(rest, feeder)
        if self.end_lines and feeder in self._unended:
            await self._send(b"\n", feeder)
        await self.inner.finish(feeder)

    def abandon(self) -> None:
        self.inner.abandon()


class HeldSink(WrappingSink):
    """Passes writes on to ``inner`` once released; until then keeps them in a temporary file.

    Stages' stderr while a pager owns the terminal; a shard's output under
    ``--keep-order`` before its turn (:class:`~ppipe.shards.output.OrderGate`).
    On disk, not in memory: a writer may say a lot before the release, and
    none of it may be lost or hold the writer up.

    Where nothing more can be kept (a full ``$TMPDIR``), the write raises
    ``OSError`` and the spool is cut back to the last whole write, so that
    no torn piece is ever passed on: whoever needs the order (``--keep-order``)
    must fail the run, saying so. With ``fall_through`` (stderr held for a
    pager, where order matters less than every line), what was kept goes
    out instead and the rest follows straight away: out of turn rather than
    lost.
    """

    def __init__(self, inner: Sink, held: bool = True, fall_through: bool = False) -> None:
        self.inner = inner
        self.held = held
        self.fall_through = fall_through
        self._spool: IO[bytes] | None = None
        self._kept = 0  # bytes in the spool: what a failed write is cut back to

    def holding(self) -> bool:
        return self.held

    async def write(self, chunk: bytes | memoryview, feeder: object) -> bool:
        if self.holding():
            try:
                self._hold(chunk)
                return True
            except OSError:
                if not self.fall_through:
                    raise
                await self.release()
        return await self.inner.write(chunk, feeder)

    def _hold(self, chunk: bytes | memoryview) -> None:
        """Appends the whole chunk to the spool, or raises with the spool as it was (a short write included)."""
        if self._spool is None:
            # Appending, unbuffered: writes that come while release() reads it back land after what it reads.
            import tempfile

            self._spool = tempfile.TemporaryFile("a+b", buffering=0, prefix="ppipe-held-")  # noqa: SIM115
        fd = self._spool.fileno()
        view = memoryview(chunk)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._kept)
            raise
        self._kept += len(chunk)

    async def release(self) -> None:
        """What was kept goes out first, then writes pass straight through."""
        if self._spool is not None:
            offset = 0
            while data := os.pread(self._spool.fileno(), CHUNK, offset):
                offset += len(data)
                if not await self.inner.write(data, self):
                    break
            self.discard()
        self.held = False  # no await since the spool ran dry: nothing can slip in between

    def discard(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None
            self._kept = 0

    async def finish(self, feeder: object) -> None:
        await self.inner.finish(feeder)

    def abandon(self) -> None:
        self.discard()
        self.inner.abandon()


class CaptureSink(Sink):
    """Collects everything in memory (the Python API's ``stdout=CAPTURE``)."""

    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, chunk: bytes | memoryview, feeder: object) -> bool:
        self.data += chunk
        return True


class FdSink(Sink):
    """Plain blocking writes to a descriptor ppipe does not own (a file, a socket).

    Used for ppipe's own stderr when it cannot be reopened privately: a
    regular file never blocks for long, and a blocking write here is what the
    stage itself would have done without ppipe in between.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    async def write(self, chunk: bytes | memoryview, feeder: object) -> bool:
        view = memoryview(chunk)
        while view and self.alive:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                await asyncio.sleep(0.001)
            except OSError as error:  # nobody reads it any more, or it cannot take more (ENOSPC, EBADF)
                self._gone = True
                self.error = None if error.errno == errno.EPIPE else error
        return self.alive


def sink_for_fd(fd: int, feeders: int = 1) -> Sink:
    """A sink writing to one of ppipe's own descriptors without changing its flags.

    ``PipeIOStream`` sets ``O_NONBLOCK``, which lives on the open file
    description shared with ppipe's parent (the shell, the terminal): setting
    it on fd 2 itself would break them. On Linux a pipe or terminal can be
    opened again through ``/proc/self/fd``, which gives a private
    description; anything else gets plain blocking writes. ``feeders`` is
    how many pumps will write into it; the private description is closed
    when the last one is done.
    """
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return FdSink(fd)
    pollable = stat.S_ISFIFO(mode) or (stat.S_ISCHR(mode) and os.isatty(fd))
    if pollable and sys.platform.startswith("linux"):
        flags = os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        try:
            return StreamSink(stream(os.open(f"/proc/self/fd/{fd}", flags)), feeders)
        except OSError as error:
            if error.errno not in (errno.ENXIO, errno.ENOENT, errno.EACCES, errno.EPERM):
                raise
    return FdSink(fd)
