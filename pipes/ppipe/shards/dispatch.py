"""Local slots, the backend of a sharded run on this machine: each slot's hello, and each attempt to its end.

Every slot's process says hello with its pipes and waits. When the
:class:`~ppipe.shards.lifecycle.Scheduler` gives a slot a shard,
:class:`LocalSlots` connects the attempt's pipes to the run's streams and
input, says "go", and follows the attempt over its control socket:
snapshots, its result, and whether the slot has more to do. An attempt's
end (its report, or its process's exit) goes back to the scheduler, which
decides what follows. Once a shard is decided and its output has all
arrived, it is let go (:class:`~ppipe.shards.ledger.ShardBook`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass

from tornado.iostream import IOStream, StreamClosedError

from ppipe.engine import trees
from ppipe.engine.options import RunOptions
from ppipe.shards import channel
from ppipe.shards.attempts import Attempt, Shard
from ppipe.shards.ledger import ShardBook
from ppipe.shards.lifecycle import Scheduler
from ppipe.shards.plan import ShardPlan
from ppipe.shards.streams import ShardStreams

#: Extra grace, after ``kill_after``, for a stopping shard to stop its stages and report.
REPORT_GRACE = 1.0


@dataclass
class _Hello:
    """A slot's process that said hello and waits for its work: its control socket and pipes' far ends."""

    slot: int  # from 0, as fork_processes numbers its children
    pid: int
    control: IOStream
    fds: list[int]


class LocalSlots:
    """The ``--jobs`` slots of a local sharded run, as a :class:`~ppipe.shards.lifecycle.Backend`.

    ``stop_run`` is the run's own stop (``--halt now`` stops every running
    shard as a signal would). :attr:`scheduler` is set by the run before
    the first hello is answered.
    """

    noun = "shard"
    halt_words = "stopping the others"
    #: A running attempt's output is a pipe ppipe closes once nobody reads it: the attempt learns by itself.
    output_breaks = True
    scheduler: Scheduler[Shard]

    def __init__(
        self,
        plan: ShardPlan,
        options: RunOptions,
        book: ShardBook,
        streams: ShardStreams,
        *,
        deals_input: bool,
        stop_run: Callable[[int], None],
    ) -> None:
        self.plan = plan
        self.options = options
        self.book = book
        self.streams = streams
        self.deals_input = deals_input
        self._stop_run = stop_run
        #: Hellos that came without all their pipes (ppipe was out of descriptors).
        self.starved = 0
        #: What runs on the loop for the run (conversations, flushes, requests); each leaves once done.
        self.tasks: set[asyncio.Future[None]] = set()
        self._idle: list[_Hello] = []
        self._by_pid: dict[int, tuple[Shard, Attempt]] = {}
        self._refused: set[int] = set()

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- the doorbell

    def answer_door(self, doorbell: socket.socket) -> None:
        for message, fds in channel.answers(doorbell):
            if message[0] == "hello":
                self._on_hello(message[1], message[2], fds)
            elif message[0] == "exited":
                self._on_exit(message[1], message[2])

    def _on_hello(self, slot: int, pid: int, fds: list[int]) -> None:
        if len(fds) < (4 if self.deals_input else 3):
            # The kernel could not give ppipe the slot's pipes (out of descriptors). Closing what came
            # leaves the slot's control socket with no other end: it sees that and ends for good.
            for fd in fds:
                os.close(fd)
            self.starved += 1
            return
        self._idle.append(_Hello(slot, pid, IOStream(socket.socket(fileno=fds[0])), fds[1:]))
        self.scheduler.dispatch()

    # -- the backend

    @property
    def read(self) -> bool:
        return self.streams.read

    def free(self) -> int:
        return len(self._idle)

    def live(self) -> Iterable[Shard]:
        return self.book.live.values()

    def start(self, shards: list[Shard]) -> None:
        for shard in shards:
            self._start(self._idle.pop(0), shard)

    def _start(self, hello: _Hello, shard: Shard) -> None:
        attempt = Attempt(len(shard.attempts) + 1, hello.pid, hello.control, time.time(), slot=hello.slot + 1)
        shard.attempts.append(attempt)
        self._by_pid[hello.pid] = (shard, attempt)
        self.streams.connect(shard, attempt, hello.fds[0], hello.fds[1])
        for task in attempt.pump_tasks:  # its stderr may still be coming once its output has all arrived
            task.add_done_callback(lambda _: self._retire_if_done(shard))
        if shard.input is not None:
            shard.input.attach(hello.fds[2], attempt.lose)
        self.scheduler.attempt_running(shard)
        self._spawn(self._converse(shard, attempt))

    def idle(self) -> None:
        """Tells every waiting slot that no work is left for it."""
        for hello in self._idle:
            self._refused.add(hello.pid)
            self._by_pid.pop(hello.pid, None)  # its last attempt reported; a later process may get its pid
            for fd in hello.fds:
                os.close(fd)
            self._spawn(_say_no(hello.control))
        self._idle.clear()

    def halt(self, *, now: bool) -> None:
        self.idle()
        if now:
            self._stop_run(signal.SIGTERM)

    def stop(self, sig: int) -> None:
        """Asks every running attempt to stop as ``sig`` would: over its control socket, not by a signal,
        which the attempt may already have had from the terminal."""
        for attempt in self.running():
            if attempt.control is not None:
                self._spawn(_ask(attempt.control, ("stop", sig)))

    def time_out(self, shard: Shard) -> None:
        """``--shard-timeout``: the attempt stops as its own ``--timeout`` would; killed if it will not."""
        attempt = shard.current
        if attempt is None or attempt.control is None:
            return
        attempt.timed_out_after = self.plan.shard_timeout
        self._spawn(_ask(attempt.control, ("timeout", self.plan.shard_timeout)))
        grace = self.options.kill_after + REPORT_GRACE
        attempt.timers.append(asyncio.get_running_loop().call_later(grace, _kill, attempt))

    def can_run_again(self, shard: Shard) -> bool:
        """Whether a restart can be fed the input the last attempt had; if not, that attempt says why."""
        problem = shard.input.spool_error if shard.input is not None else None
        if problem is not None and shard.current is not None:
            shard.current.lose(f"not run again: {problem}")
        return problem is None

    def settled(self, shard: Shard) -> None:
        if shard.input is not None:
            shard.input.detach()
        if shard.attempts or self.streams.keeps_order:
            self._spawn(self._flush(shard))
        else:  # never ran, nothing to wait for: settled at once (a resumed batch skips thousands in a row)
            shard.settled.set()
            self._retire_if_done(shard)

    # -- an attempt, to its end

    def _on_exit(self, pid: int, wait_status: int) -> None:
        if pid in self._refused:
            self._refused.discard(pid)  # the pid may come back for a later attempt
            return
        found = self._by_pid.pop(pid, None)
        if found is None:
            return
        shard, attempt = found
        attempt.wait_status = wait_status
        attempt.ended_at = attempt.ended_at or time.time()
        if not attempt.reported and not shard.final:
            self._ended(shard, attempt, could_start=wait_status != 0)  # no report: killed, or it crashed
        self._retire_if_done(shard)

    async def _converse(self, shard: Shard, attempt: Attempt) -> None:
        """Says "go" to an attempt, then follows it: snapshots, its result, and the answer to "again?"."""
        assert attempt.control is not None
        try:
            await channel.write(attempt.control, ("go", {"values": self.plan.values(shard.index, attempt.slot)}))
            while True:
                message = await channel.read(attempt.control)
                if message[0] == "snapshot":
                    attempt.snapshot = message[1]
                    continue
                attempt.ended_at = time.time()
                if message[0] == "result":
                    attempt.result = message[1]
                else:
                    attempt.error, attempt.error_status = message[1], message[2]
                # A command missing on this shard, or output ppipe could not keep: running again will not help.
                self._ended(shard, attempt, could_start=message[0] == "result" and attempt.lost is None)
                scheduler = self.scheduler
                await channel.write(attempt.control, ("again", not scheduler.stopping and not scheduler.schedule.empty))
        except StreamClosedError:
            pass  # the attempt has gone; its exit (from the supervisor) decides
        finally:
            attempt.control.close()
            attempt.control = None  # let go: a batch keeps every attempt

    def _ended(self, shard: Shard, attempt: Attempt, *, could_start: bool) -> None:
        attempt.cancel_timers()
        self.scheduler.attempt_ended(shard, could_start=could_start)

    async def _flush(self, shard: Shard) -> None:
        await self.streams.flush(shard)
        self._retire_if_done(shard)

    def _retire_if_done(self, shard: Shard) -> None:
        """Lets a batch's shard go once nothing about it can change: memory stays flat however many finish.

        Its output and stderr have all arrived, its last attempt has reported (or its
        process has been reaped), and its verdict is one a later stop cannot
        change. Its share of the input, if ppipe deals it, is kept: dealing
        may still count bytes no one takes.
        """
        last = shard.current
        if (
            shard.index not in self.book.live
            or not shard.settled.is_set()
            or not all(task.done() for attempt in shard.attempts for task in attempt.pump_tasks)
            or (last is not None and last.running)
            or self.scheduler.may_change(shard)
        ):
            return
        self.retire(shard)

    def retire(self, shard: Shard) -> None:
        """Keeps the shard's result and its count, not the shard (see :class:`~ppipe.shards.ledger.ShardBook`)."""
        verdict = self.scheduler.verdict(shard)
        result = shard.result(self.plan.total, verdict, self.options.count_lines)
        self.book.retire(shard, result, shard.snapshot(time.time(), verdict))

    # -- stopping

    def running(self) -> list[Attempt]:
        attempts = (shard.current for shard in self.book.live.values())
        return [a for a in attempts if a is not None and a.running]

    def kill_all(self) -> None:
        """Kills every running attempt; its stages die with it."""
        for attempt in self.running():
            _kill(attempt)


def _kill(attempt: Attempt) -> None:
    """Kills the attempt and everything under it, while it lives: its stages' orphans are its children
    (its engine is their subreaper), and would go to init once it is gone."""
    if attempt.running:
        trees.signal_tree(attempt.pid, signal.SIGKILL)


async def _say_no(control: IOStream) -> None:
    with contextlib.suppress(StreamClosedError):
        await channel.write(control, ("go", None))
    control.close()


async def _ask(control: IOStream, message: tuple[object, ...]) -> None:
    with contextlib.suppress(StreamClosedError):
        await channel.write(control, message)
