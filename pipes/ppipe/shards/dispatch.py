"""The coordinator's side of the doorbell: which shard each free slot runs, and each attempt to its end.

Every slot's process says hello with its pipes; :class:`Dispatcher` gives
it the next shard from the :class:`~ppipe.shards.schedule.Schedule` (or
keeps it waiting for a restart whose delay has not passed, or tells it no
work is left), connects the attempt's pipes to the run's streams and input,
and follows it over its control socket: snapshots, its result, and whether
the slot has more to do. Each attempt's end decides, by
:mod:`ppipe.policy`, whether its shard runs again; it is written to the job
log; and each shard's final end may halt the run (``--halt``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass

from tornado.iostream import IOStream, StreamClosedError

from ppipe import policy
from ppipe.engine import trees
from ppipe.engine.options import RunOptions
from ppipe.results import Verdict
from ppipe.shards import channel
from ppipe.shards.attempts import Attempt, Shard
from ppipe.shards.joblog import JobLog
from ppipe.shards.ledger import ShardBook
from ppipe.shards.plan import ShardPlan
from ppipe.shards.schedule import Schedule
from ppipe.shards.streams import ShardStreams
from ppipe.stops import HALT, READER_GONE, StopReason

#: Extra grace, after ``kill_after``, for a stopping shard to stop its stages and report.
REPORT_GRACE = 1.0


@dataclass
class _Hello:
    """A slot's process that said hello and waits for its work: its control socket and pipes' far ends."""

    slot: int
    pid: int
    control: IOStream
    fds: list[int]


class Dispatcher:
    """Gives free slots their shards and follows each attempt: restarts, halts, timeouts, the job log.

    ``stop`` is the run's own stop (``--halt now`` stops every running
    shard as a signal would); ``say`` prints one of ppipe's lines on stderr.
    """

    def __init__(
        self,
        plan: ShardPlan,
        options: RunOptions,
        book: ShardBook,
        streams: ShardStreams,
        joblog: JobLog | None,
        *,
        deals_input: bool,
        stop: Callable[[int], None],
        say: Callable[[str], None],
    ) -> None:
        self.plan = plan
        self.options = options
        self.book = book
        self.streams = streams
        self.joblog = joblog
        self.deals_input = deals_input
        self._stop = stop
        self._say = say
        # A shard whose input is dealt starts once its first record has arrived.
        self.schedule = Schedule(self._in_order(), ready=lambda s: s.input is None or not s.input.unfed)
        self.stopping = False
        #: The run reached ``--halt success=N``: it got what it asked for.
        self.halted_on_success = False
        #: Why the run started no more shards, if it stopped starting them: ``--halt``, or its reader gone.
        self.halted_by: StopReason | None = None
        #: Why a job log line could not be written, if so: the run then fails.
        self.joblog_error: str | None = None
        #: Hellos that came without all their pipes (ppipe was out of descriptors).
        self.starved = 0
        #: What runs on the loop for the run (conversations, flushes, requests); each leaves once done.
        self.tasks: set[asyncio.Future[None]] = set()
        self._idle: list[_Hello] = []
        self._by_pid: dict[int, tuple[Shard, Attempt]] = {}
        self._refused: set[int] = set()
        self._wake: asyncio.TimerHandle | None = None
        self._halt = plan.halt_watch(book.size)

    def _in_order(self) -> Iterator[Shard]:
        """The shards to start, in task order, made as the schedule reaches them; one an earlier run
        finished (``--resume``) is settled as it is reached."""
        for index in range(self.book.size):
            shard = self.book.live.get(index) if index < self.book.made else self.book.make_next()
            if shard is None or shard.final:
                continue
            if shard.skipped:
                self.settle(shard)
            else:
                yield shard

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
        self.dispatch()

    def dispatch(self) -> None:
        """Gives every waiting slot the next ready shard; slots left with no work to come are ended.

        Once nobody reads ppipe's output (``ppipe --each f "..." | head``),
        no shard starts any more: its output would have nowhere to go, as a
        producer gets SIGPIPE under a shell.
        """
        if not self.streams.read and not self.schedule.halted:
            self.halted_by = self.halted_by or READER_GONE
            for left in self.schedule.halt():
                left.stopped = True
                self.settle(left)
        while self._idle and not self.stopping and (shard := self.schedule.next()) is not None:
            self._start(self._idle.pop(0), shard)
        if not self._idle:
            return
        wait = None if self.stopping else self.schedule.ready_in()
        if wait is not None:  # only delayed restarts are left: the slot waits for the first
            if self._wake is not None:
                self._wake.cancel()
            self._wake = asyncio.get_running_loop().call_later(wait, self.dispatch)
        elif self.stopping or self.schedule.empty:
            self.end_idle()

    def end_idle(self) -> None:
        """Tells every waiting slot that no work is left for it."""
        for hello in self._idle:
            self._refused.add(hello.pid)
            self._by_pid.pop(hello.pid, None)  # its last attempt reported; a later process may get its pid
            for fd in hello.fds:
                os.close(fd)
            self._spawn(_say_no(hello.control))
        self._idle.clear()

    def _start(self, hello: _Hello, shard: Shard) -> None:
        attempt = Attempt(len(shard.attempts) + 1, hello.pid, hello.control, time.time())
        shard.attempts.append(attempt)
        self._by_pid[hello.pid] = (shard, attempt)
        self.streams.connect(shard, attempt, hello.fds[0], hello.fds[1])
        for task in attempt.pump_tasks:  # its stderr may still be coming once its output has all arrived
            task.add_done_callback(lambda _: self._retire_if_done(shard))
        if shard.input is not None:
            shard.input.attach(hello.fds[2], attempt.lose)
        if self.plan.shard_timeout:
            loop = asyncio.get_running_loop()
            attempt.timers.append(loop.call_later(self.plan.shard_timeout, self._time_out, attempt))
        self._spawn(self._converse(shard, attempt))

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
            await channel.write(attempt.control, ("go", {"values": self.plan.values(shard.index)}))
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
                await channel.write(attempt.control, ("again", not self.stopping and not self.schedule.empty))
        except StreamClosedError:
            pass  # the attempt has gone; its exit (from the supervisor) decides
        finally:
            attempt.control.close()
            attempt.control = None  # let go: a batch keeps every attempt

    # -- an attempt's end

    def _ended(self, shard: Shard, attempt: Attempt, *, could_start: bool) -> None:
        """The attempt has ended (reported, or its process did): log it, then restart or settle its shard."""
        attempt.cancel_timers()
        # Once nobody reads ppipe's output, running again would only fail again.
        stopping = self.stopping or self.schedule.halted or not self.streams.read
        status = attempt.record().exit_status
        again = policy.should_restart(
            status, len(shard.attempts), self.plan.max_restarts, could_start=could_start, stopping=stopping
        ) and self._can_feed_again(shard, attempt)
        # An attempt ppipe stopped (a signal, --timeout, --halt now) did not decide its shard: the job
        # log says it is not final, and --resume runs that shard again.
        self._log(shard, attempt, final=not again and not self._stopped_by_ppipe(attempt, status))
        if again:
            self.schedule.restart_later(shard, self.plan.retry_delay_before(len(shard.attempts) + 1))
        else:
            self.settle(shard)

    def _stopped_by_ppipe(self, attempt: Attempt, status: int | None) -> bool:
        """Whether the attempt failed because the run was stopping, not by itself.

        Once ppipe stops the run, any failure may be the stop's doing (a
        command that exits 1 on SIGTERM); and a signal to the whole process
        group (Ctrl-C, ``timeout``) may reach the attempt's engine before
        ppipe's own handler runs, which its result tells.
        """
        if status == 0:
            return False
        return self.stopping or (attempt.result is not None and attempt.result.interrupted_by is not None)

    @staticmethod
    def _can_feed_again(shard: Shard, last: Attempt) -> bool:
        """Whether a restart can be fed the input ``last`` had; if not, ``last`` says why it was not run again."""
        problem = shard.input.spool_error if shard.input is not None else None
        if problem is not None:
            last.lose(f"not run again: {problem}")
        return problem is None

    def settle(self, shard: Shard) -> None:
        """The shard will run no more: its last attempt's end is its verdict."""
        if shard.final:
            return
        shard.final = True
        shard.stopped = shard.stopped or (self.stopping and not shard.succeeded)
        if shard.input is not None:
            shard.input.detach()
        verdict = self.verdict(shard)
        if shard.attempts or self.streams.keeps_order:
            self._spawn(self._flush(shard))
        else:  # never ran, nothing to wait for: settled at once (a resumed batch skips thousands in a row)
            shard.settled.set()
            self._retire_if_done(shard)
        if verdict in (Verdict.FAILED, Verdict.OK):
            self._check_halt(shard, verdict)

    async def _flush(self, shard: Shard) -> None:
        await self.streams.flush(shard)
        self._retire_if_done(shard)

    def _retire_if_done(self, shard: Shard) -> None:
        """Lets a batch's shard go once nothing about it can change: memory stays flat however many finish.

        Its output and stderr have all arrived, its last attempt has reported (or its
        process has been reaped), and its verdict is one a later stop cannot
        change (see :meth:`verdict`). Its share of the input, if ppipe deals
        it, is kept: dealing may still count bytes no one takes.
        """
        last = shard.current
        if (
            shard.index not in self.book.live
            or not shard.settled.is_set()
            or not all(task.done() for attempt in shard.attempts for task in attempt.pump_tasks)
            or (last is not None and last.running)
            or (not self.stopping and last is not None and last.result is not None and last.result.interrupted_by)
        ):
            return
        self.retire(shard)

    def retire(self, shard: Shard) -> None:
        """Keeps the shard's result and its count, not the shard (see :class:`~ppipe.shards.ledger.ShardBook`)."""
        verdict = self.verdict(shard)
        result = shard.result(self.plan.total, verdict, self.options.count_lines)
        self.book.retire(shard, result, shard.snapshot(time.time(), verdict))

    def verdict(self, shard: Shard) -> Verdict:
        if shard.skipped:
            return Verdict.SKIPPED
        last = shard.current
        if last is None:
            return Verdict.TERMINATED if self.stopping or self.schedule.halted else Verdict.FAILED
        # A signal to the whole process group (Ctrl-C, `timeout`) may stop a
        # shard before ppipe itself has handled it: that shard was stopped too.
        interrupted = self.stopping and last.result is not None and last.result.interrupted_by is not None
        return policy.shard_verdict(last.record().exit_status, stopped=shard.stopped or interrupted)

    def _check_halt(self, shard: Shard, verdict: Verdict) -> None:
        """Rule 9: once the ``--halt`` condition is met, nothing more starts (and with ``now``, all stops)."""
        if not self._halt.record(verdict) or self.schedule.halted or self.stopping:
            return
        self.halted_on_success = self._halt.on_success
        self.halted_by = HALT
        self._say(self._halt.said(f"shard {shard.task_id}", verdict, stopping_the_others="stopping the others") + "\n")
        for left in self.schedule.halt():
            left.stopped = True
            self.settle(left)
        self.end_idle()
        if self._halt.rule is not None and self._halt.rule.now:
            self._stop(signal.SIGTERM)

    def _log(self, shard: Shard, attempt: Attempt, *, final: bool) -> None:
        if self.joblog is None:
            return
        line = shard.log_line(attempt, self.plan.item(shard.index), final=final)
        self.joblog_error = self.joblog_error or self.joblog.write(line)

    # -- stopping

    def _time_out(self, attempt: Attempt) -> None:
        """``--shard-timeout``: the attempt stops as its own ``--timeout`` would; killed if it will not."""
        if not attempt.running or attempt.control is None:
            return
        attempt.timed_out_after = self.plan.shard_timeout
        self._spawn(_ask(attempt.control, ("timeout", self.plan.shard_timeout)))
        grace = self.options.kill_after + REPORT_GRACE
        attempt.timers.append(asyncio.get_running_loop().call_later(grace, _kill, attempt))

    def stop(self, sig: int) -> None:
        """Asks every running attempt to stop as ``sig`` would, and starts nothing more."""
        self.stopping = True
        for shard in self.book.live.values():
            if not shard.final:
                shard.stopped = True
        for attempt in self.running():
            if attempt.control is not None:
                self._spawn(_ask(attempt.control, ("stop", sig)))
        self.end_idle()

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
