"""A sharded run's output: every attempt's stdout merged into ppipe's, whole lines, tagged and ordered as asked.

``--tag`` puts ``task_id<TAB>`` before each line (:class:`TagSink`);
``--keep-order`` (:class:`OrderGate`) passes shard 0's output straight
through and holds each later shard's on disk until its turn. What cannot be
kept is given up at once and said (:class:`KeptOrLost`), never lost quietly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ppipe.engine.descriptors import readers_left
from ppipe.engine.sinks import HeldSink, LineAssembler, Sink, held_problem


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
        #: Bytes the inner sink took (a write cut short by :meth:`abandon` counts as none of them).
        self.written = 0

    async def write(self, chunk: bytes | memoryview, feeder: object) -> bool:
        taken = await self.inner.write(chunk, feeder)
        self.written += len(chunk) if taken else 0
        return taken

    def abandon(self) -> None:
        self.inner.abandon()

    @property
    def alive(self) -> bool:
        return self.inner.alive

    async def close(self) -> None:
        await self.inner.finish(self)


class _AttemptShare(Sink):
    """One attempt's way into the shared output: giving it up (:meth:`abandon`) gives up only this attempt's."""

    def __init__(self, inner: Sink, merge: OutputMerge) -> None:
        self.inner = inner
        self.merge = merge

    async def write(self, chunk: bytes | memoryview, feeder: object) -> bool:
        if not self.alive:
            return False
        self.merge.taken += len(chunk)
        return await self.inner.write(chunk, feeder)

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

    def __init__(self, target: Sink, *, shards: int, keep_order: bool) -> None:
        self.target = Lasting(target)
        self.lock = asyncio.Lock()
        self.gates = (
            [OrderGate(self.target, live=i == 0, still_read=self.still_read) for i in range(shards)]
            if keep_order
            else None
        )
        self._turns = asyncio.Lock()
        self._first_open = 0
        #: Bytes of whole lines handed on for the output (tags included): what is not written of them
        #: when the output is dropped is what was lost.
        self.taken = 0

    def still_read(self) -> bool:
        """Whether anyone still reads ppipe's output; asked by gates that spool instead of writing it."""
        fd = self.target.inner.target_fd()
        if fd is not None and not readers_left(fd):
            self.target.abandon()
        return self.target.alive

    def sink_for(self, shard_index: int, tag: bytes | None, *, lost: Callable[[str], None]) -> Sink:
        """The sink one attempt of a shard writes its stdout into, each line after ``tag`` if given;
        ``lost`` hears when it cannot keep it."""
        shared = self.target if self.gates is None else self.gates[shard_index]
        sink: Sink = LineAssembler(_AttemptShare(shared, self), self.lock, end_lines=True)
        if tag is not None:
            sink = TagSink(sink, tag)
        return KeptOrLost(sink, lost)

    async def shard_done(self, shard_index: int) -> None:
        """With ``--keep-order``: a shard will write no more; the next ones' output may follow."""
        if self.gates is None:
            return
        self.gates[shard_index].done = True
        async with self._turns:  # one at a time: two shards ending together must not open a gate twice
            # Gates before the first still open were released for good: a batch's end is not quadratic.
            while self._first_open < len(self.gates):
                gate = self.gates[self._first_open]
                await gate.release()
                if not gate.done:
                    break
                self._first_open += 1

    def drop(self) -> int:
        """Gives up what is not written yet (kept for ``--keep-order``, or waiting on a stalled reader).

        Pending writes fail and every attempt's pump stops, as if nobody read
        the output any more. Returns how many bytes of whole lines ppipe had
        taken on and not written (a write cut half-way counts as unwritten).
        """
        for gate in self.gates or ():
            gate.discard()
        self.target.abandon()
        return max(0, self.taken - self.target.written)

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
