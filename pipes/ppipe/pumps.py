"""Moving bytes between processes: read a chunk, count it, hand it on, wait.

A :class:`Pump` reads one producer's output and delivers every chunk to one
or more :class:`Sink` s (several = fan-out, each gets a full copy). It never
reads the next chunk before every live sink has taken the last one — tornado's
``PipeIOStream.write`` buffers without limit, so *awaiting each write is the
only thing that bounds memory*; the streams are also created with a small
``max_write_buffer_size`` so that a mistake here fails loudly instead of
eating memory.

A sink whose consumer has gone (``EPIPE``, or the consumer process exited)
is dropped; when the last one is gone the pump closes the producer's pipe,
so the producer gets ``SIGPIPE``/``EPIPE`` on its next write — what a kernel
pipe would do — and ``Pump.closed_early`` records it for the exit-status
rules.

Several pumps may feed one :class:`LineMerge` (fan-in): it interleaves whole
lines, never tearing one, and closes the consumer's stdin once every feeder
is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import select
import stat
import sys
import tempfile
import termios
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import IO

from tornado.concurrent import Future
from tornado.ioloop import IOLoop
from tornado.iostream import PipeIOStream, StreamClosedError
from tornado.locks import Lock

from .tee import tee_function
from .tornado_internals import buffered_bytes

#: Bytes asked for per read. Larger chunks mean fewer trips through the loop.
CHUNK = 256 * 1024
#: Hard cap on bytes queued in one write buffer; see the module docstring.
MAX_WRITE_BUFFER = 4 * CHUNK
#: Pipe capacity ppipe asks the kernel for (Linux ``F_SETPIPE_SZ``), to cut wake-ups.
PIPE_SIZE = 1024 * 1024
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


def held_problem(error: OSError) -> str:
    """Why ppipe could not keep something in a temporary file, and where: ``No space left on device (TMPDIR=/tmp)``."""
    return f"{error.strerror or error} (TMPDIR={tempfile.gettempdir()})"


def make_pipe(enlarge: bool = True) -> tuple[int, int]:
    """Creates a close-on-exec pipe; returns (read, write).

    Data pipes are enlarged to ``PIPE_SIZE`` where the OS allows (fewer
    wake-ups); stderr pipes keep the default size, since Linux counts every
    user's pipe pages against one quota and enlarging them all would shrink
    the pipes of the user's other programs.
    """
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC) if hasattr(os, "pipe2") else os.pipe()
    if enlarge and sys.platform.startswith("linux"):
        # Over the user's pipe-size quota the default size still works.
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_fd, _F_SETPIPE_SZ, PIPE_SIZE)
    return read_fd, write_fd


def stream(fd: int) -> PipeIOStream:
    """Wraps one end of a pipe that ppipe owns."""
    return PipeIOStream(fd, read_chunk_size=CHUNK, max_write_buffer_size=MAX_WRITE_BUFFER)


def count_newlines(data: bytes | bytearray, end: int | None = None) -> int:
    """Newlines in ``data[:end]``, without a pass over data that has none.

    ``count`` looks at every byte (about 1.3 GB/s); ``find`` is ``memchr``,
    some thirty times faster. Binary streams with no newline (images,
    archives, ``/dev/zero``) therefore cost next to nothing to count, and text
    costs what it always did.
    """
    end = len(data) if end is None else end
    first = data.find(b"\n", 0, end)
    return 0 if first < 0 else data.count(b"\n", first, end)


@dataclass
class Counter:
    """Bytes and lines through one edge. A last line without a newline still counts.

    Where lines were counted in only some of the bytes (a fast spliced edge
    under a view counts a sample), ``lines`` is what was counted, a lower
    bound, and ``lines_estimate`` adds, for the bytes not counted, the
    newline density of the counted bytes just before them: a local density,
    so that text whose lines grow longer (``seq``) is not misjudged by its
    start.
    """

    nbytes: int = 0
    newlines: int = 0
    ends_with_newline: bool = True
    #: False once some bytes went by uncounted (a fast spliced edge under a view, or a ``tee`` refused).
    lines_complete: bool = True
    #: The bytes whose newlines ``newlines`` holds: all of ``nbytes`` while ``lines_complete``.
    counted_bytes: int = 0
    #: Newlines per byte in the last chunk counted (None before one was).
    density: float | None = None
    #: Bytes moved uncounted (:meth:`skip`), and the newlines estimated in them.
    skipped_bytes: int = 0
    skipped_newlines: float = 0.0

    def add(self, chunk: bytes | memoryview, newlines: int) -> None:
        if chunk:
            self.nbytes += len(chunk)
            self.counted_bytes += len(chunk)
            self.newlines += newlines
            self.ends_with_newline = chunk[-1:] == b"\n"
            self.density = newlines / len(chunk)

    def skip(self, moved: int) -> None:
        """``moved`` bytes (already in ``nbytes``) went by uncounted: their lines are estimated now,
        at the density of the bytes counted just before them."""
        self.lines_complete = False
        self.skipped_bytes += moved
        self.skipped_newlines += moved * (self.density or 0.0)

    @property
    def lines(self) -> int:
        return self.newlines + (0 if self.ends_with_newline else 1)

    @property
    def lines_estimate(self) -> int | None:
        """``lines`` when every byte was counted; otherwise the lines counted plus those estimated in the
        bytes that were not (so it grows with the bytes, never frozen); None when no byte was counted.

        Bytes that went by after counting ended for good (a refused ``tee``) are estimated at the last density.
        """
        if self.lines_complete:
            return self.lines
        if self.density is None:
            return None
        unseen = self.nbytes - self.counted_bytes - self.skipped_bytes
        return self.lines + round(self.skipped_newlines + unseen * self.density)


@dataclass
class Tail:
    """The last few lines of a stream (a failed stage's stderr), bounded in bytes."""

    max_bytes: int = 4096
    data: bytearray = field(default_factory=bytearray)
    #: Bytes seen in all; a mark taken from it finds what came after.
    total: int = 0

    def add(self, chunk: bytes | memoryview) -> None:
        self.total += len(chunk)
        self.data += chunk[-self.max_bytes :]
        del self.data[: max(0, len(self.data) - self.max_bytes)]

    def since(self, mark: int) -> bytes:
        """What arrived after ``total`` was ``mark`` (as much of it as is still kept)."""
        return bytes(self.data[len(self.data) - min(len(self.data), self.total - mark) :])

    def lines(self, count: int = 5) -> tuple[str, ...]:
        text = bytes(self.data).decode("utf-8", "replace")
        return tuple(line for line in text.splitlines() if line.strip())[-count:]


class WaitClock:
    """Seconds a pump has spent waiting for its producer and for its consumers.

    A pump always waits on one side or the other; which side it waits on
    most says which stage holds the pipeline back (the view's bottleneck).
    """

    def __init__(self) -> None:
        self.on_producer = 0.0
        self.on_consumer = 0.0
        self._side: str | None = None
        self._since = time.monotonic()

    def wait_on(self, side: str | None) -> None:
        """Starts waiting on ``"producer"`` or ``"consumer"``, or stops (None)."""
        now = time.monotonic()
        if self._side == "producer":
            self.on_producer += now - self._since
        elif self._side == "consumer":
            self.on_consumer += now - self._since
        self._side, self._since = side, now

    def waiting_on(self, side: str) -> float:
        """Seconds the current wait on ``side`` has lasted (0 when waiting on the other, or working)."""
        return time.monotonic() - self._since if self._side == side else 0.0

    def totals(self) -> tuple[float, float]:
        """(waited on the producer, waited on the consumers), the current wait included."""
        ongoing = time.monotonic() - self._since
        return (
            self.on_producer + (ongoing if self._side == "producer" else 0.0),
            self.on_consumer + (ongoing if self._side == "consumer" else 0.0),
        )


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


class LineAssembler(Sink):
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

    @property
    def alive(self) -> bool:
        return self.inner.alive

    def reader_left(self) -> bool:
        return self.inner.reader_left()


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
        try:
            await (part.finish(feeder) if part is not None and self.hold_error is None else self.inner.finish(feeder))
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


class LineJoiner(Sink):
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

    @property
    def alive(self) -> bool:
        return self.inner.alive

    def reader_left(self) -> bool:
        return self.inner.reader_left()

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


class HeldSink(Sink):
    """Passes writes on to ``inner`` once released; until then keeps them in a temporary file.

    Stages' stderr while a pager owns the terminal; a shard's output under
    ``--keep-order`` before its turn (:class:`~ppipe.shard_io.OrderGate`).
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
            self._spool = tempfile.TemporaryFile("a+b", buffering=0, prefix="ppipe-held-")  # noqa: SIM115
        fd = self._spool.fileno()
        kept = os.fstat(fd).st_size
        view = memoryview(chunk)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, kept)
            raise

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

    async def finish(self, feeder: object) -> None:
        await self.inner.finish(feeder)

    def abandon(self) -> None:
        self.discard()
        self.inner.abandon()

    @property
    def alive(self) -> bool:
        return self.inner.alive

    def reader_left(self) -> bool:
        return self.inner.reader_left()


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


#: A producer that wrote this recently before ppipe closed its output was streaming into it...
STREAMING_WITHIN = 0.05
#: ...and one blocked or streaming then gets EPIPE at its next write: one that exits within this
#: many seconds of the closing died of it. One that exits later did something else first (a
#: script's next command), and its status is its own.
DIED_WITHIN = 0.25
#: What a program says on stderr when a write failed with EPIPE.
_BROKEN_PIPE_WORDS = (b"Broken pipe", b"BrokenPipe", b"EPIPE")


def pipe_nearly_full(fd: int) -> bool:
    """Whether a pipe has too little room left for a writer's next write: the writer is blocked on it.

    Linux merges small writes into the last page, so a blocked writer leaves
    less than one write's worth free; a writer's buffer is at most 64 KiB.
    """
    capacity = pipe_capacity(fd)
    return capacity - bytes_in_pipe(fd) < min(64 * 1024, capacity // 4)


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
    ``blocked_at_cut`` when, at that moment, the producer was blocked writing
    into its full pipe. Only then can the producer's later failure be blamed
    on the closed pipe (EPIPE); a producer that had finished writing, or was
    idle or silent (``false | true``), failed on its own.
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
        if self.source.closed():
            return
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


def readers_left(fd: int) -> bool:
    """Whether anyone still holds the read end of the pipe whose write end is ``fd`` (POLLERR: nobody)."""
    poller = select.poll()
    try:
        poller.register(fd, select.POLLOUT)
        events = poller.poll(0)
    except (OSError, ValueError):
        return False
    return not any(mask & select.POLLERR for _, mask in events)


def bytes_waiting(fd: int) -> bool:
    """Whether a pipe holds unread bytes (``FIONREAD``; either end of the pipe will do)."""
    return bytes_in_pipe(fd) > 0


def bytes_in_pipe(fd: int) -> int:
    """How many unread bytes a pipe holds (0 if it cannot say)."""
    try:
        waiting = fcntl.ioctl(fd, termios.FIONREAD, bytes(4))
    except OSError:
        return 0
    return int.from_bytes(waiting, sys.byteorder)


def pipe_capacity(fd: int) -> int:
    """A pipe's size in bytes (Linux ``F_GETPIPE_SZ``); 64 KiB where it cannot say."""
    try:
        return fcntl.fcntl(fd, _F_GETPIPE_SZ)
    except OSError:
        return 64 * 1024


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
            if moved == 0 or self._moved_all_owed():  # EOF: the producer closed its output
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
            if budget * (1 + time.monotonic() - start) - (self._copied - copied_then) <= 0:
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
        if self._closed:
            return
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


async def chunks_of(data: bytes) -> AsyncIterator[bytes]:
    """``data`` a ``CHUNK`` at a time, as a stream would give it."""
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]


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


async def _read_when_ready(fd: int) -> bytes:
    loop = asyncio.get_running_loop()
    while True:
        await _readable(loop, fd)
        try:
            return os.read(fd, 4 * CHUNK)
        except BlockingIOError:
            continue


async def _readable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
