"""Sharded runs (``--fork N``): N copies of a pipeline side by side, one view, one status.

The design, in three kinds of process:

- **ppipe** (this module, :class:`ShardedExecution`) keeps the event loop,
  the view, the report and every byte that crosses its boundary: it splits
  its stdin between shards and merges their stdout and stderr back, whole
  lines at a time (:mod:`ppipe.shards.input`, :mod:`ppipe.shards.output`). It decides every restart.
- A **supervisor** (:mod:`ppipe.shards.supervisor`), a fresh interpreter with no
  loop and no threads, calls ``tornado.process.fork_processes``.
- Each **shard attempt** runs the pipeline with the ordinary engine, its
  placeholders (``{task_id}``...) substituted, and reports over a socket.

Shard ids are ``offset .. offset + processes - 1`` out of ``tasks``: on
one machine ``0 .. N-1`` of ``N``; as task *k* of a cluster job array with
``--fork N``, ``k·N .. k·N+N-1`` of ``K·N``.

Nothing outlives ppipe: on every way out of :meth:`ShardedExecution.run`
the supervisor is killed if it still runs, and its death takes the shards,
whose deaths take their stages (``PR_SET_PDEATHSIG`` at each level).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time

from tornado.iostream import IOStream, StreamClosedError
from tornado.process import Subprocess

from ppipe import policy
from ppipe.engine.execution import DRAIN_GRACE
from ppipe.engine.options import RunOptions
from ppipe.engine.processes import Stopping, handling_signals, sigchld_handler
from ppipe.graph import Graph
from ppipe.language.parser import substitute_placeholders
from ppipe.results import RunResult, Verdict
from ppipe.shards import channel
from ppipe.shards.attempts import Attempt, Shard, run_result
from ppipe.shards.input import ShardInput, split_stdin
from ppipe.shards.launcher import start_supervisor
from ppipe.shards.plan import ShardPlan, check_descriptors, check_pipeline, check_plan, splits_input
from ppipe.shards.streams import ShardStreams
from ppipe.snapshots import RunObserver, RunSnapshot

#: Seconds between an attempt's snapshots, when someone watches (the view).
SNAPSHOT_EVERY = 0.25
#: Extra grace, after ``kill_after``, for a stopping shard to stop its stages and report.
REPORT_GRACE = 1.0


class ShardedExecution(Stopping):
    """One sharded run. Use :meth:`run` once; it always leaves nothing running."""

    def __init__(self, text: str, plan: ShardPlan, options: RunOptions, observer: RunObserver | None = None) -> None:
        self.text = text
        self.plan = plan
        self.options = options
        self.observer = observer
        self.env = dict(os.environ if options.env is None else options.env)
        self.shards: list[Shard] = []
        self.stopping = False
        #: Why ppipe could not read all of its input, if so; the run then fails.
        self.input_error: str | None = None
        self.started_at = time.time()
        self._by_pid: dict[int, tuple[Shard, Attempt]] = {}
        self._refused: set[int] = set()
        self._tasks: list[asyncio.Future[None]] = []
        self._splitting: asyncio.Future[None] | None = None

    # -- before anything runs

    # -- the run

    async def run(self) -> RunResult:
        check_plan(self.plan)
        check_descriptors(self.plan.local)
        split = splits_input(check_pipeline(self.text, self.plan, self.env, self.options.cwd), self.options.stdin)
        self.started_at = time.time()
        loop = asyncio.get_running_loop()
        doorbell, far_doorbell = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.shards = [
            Shard(
                task_id,
                index,
                substitute_placeholders(self.text, task_id, self.plan.total),
                ShardInput(spool=self.plan.max_restarts > 0) if split else None,
            )
            for index, task_id in enumerate(self.plan.task_ids)
        ]
        self.streams = ShardStreams(
            self.options, self.observer, shards=len(self.shards), tag=self.plan.tag, keep_order=self.plan.keep_order
        )
        supervisor: Subprocess | None = None
        with sigchld_handler(), handling_signals(loop, self._on_signal, self.options.handle_signals):
            timer = loop.call_later(self.options.timeout, self._on_timeout) if self.options.timeout else None
            try:
                doorbell.setblocking(False)
                loop.add_reader(doorbell.fileno(), self._answer_door, doorbell)
                supervisor, handing_over = start_supervisor(
                    self.text,
                    self.plan,
                    self.options,
                    doorbell_fd=far_doorbell.fileno(),
                    split=split,
                    snapshot_every=SNAPSHOT_EVERY if self.observer is not None else None,
                )
                self._tasks.append(handing_over)
                far_doorbell.close()
                if split:
                    inputs = [s.input for s in self.shards if s.input is not None]
                    self._splitting = asyncio.ensure_future(self._split(inputs))
                if self.observer is not None:
                    self.observer.started(self)
                await self._wait(supervisor)
            finally:
                if timer:
                    timer.cancel()
                self._cancel_kill()
                loop.remove_reader(doorbell.fileno())
                doorbell.close()
                far_doorbell.close()
                await self._clean_up(supervisor)
                if self.observer is not None:
                    self.observer.finished()
        return self._result()

    async def _split(self, inputs: list[ShardInput]) -> None:
        self.input_error = await split_stdin(self.options.stdin, inputs, self.plan.block)

    # -- the doorbell: hellos from attempts, exits from the supervisor

    def _answer_door(self, doorbell: socket.socket) -> None:
        for message, fds in channel.answers(doorbell):
            if message[0] == "hello":
                self._on_hello(message[1], message[2], fds)
            elif message[0] == "exited":
                self._on_exit(message[1], message[2])

    def _on_hello(self, index: int, pid: int, fds: list[int]) -> None:
        shard = self.shards[index]
        if len(fds) < (4 if shard.input is not None else 3):
            # The kernel could not give ppipe the attempt's pipes: out of descriptors.
            for fd in fds:
                os.close(fd)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._refused.add(pid)
            why = "ppipe ran out of file descriptors for this shard (raise ulimit -n)"
            shard.attempts.append(Attempt.not_started(len(shard.attempts) + 1, pid, why))
            self._settle(shard)
            return
        control = IOStream(socket.socket(fileno=fds[0]))
        if self._refuses(shard):
            self._refused.add(pid)
            self._tasks.append(asyncio.ensure_future(_say_no(control)))
            for fd in fds[1:]:
                os.close(fd)
            return
        attempt = Attempt(len(shard.attempts) + 1, pid, control, time.time())
        shard.attempts.append(attempt)
        self._by_pid[pid] = (shard, attempt)
        self.streams.connect(shard, attempt, fds[1], fds[2])
        if shard.input is not None:
            shard.input.attach(fds[3], attempt.lose)
        self._tasks.append(asyncio.ensure_future(self._converse(shard, attempt)))

    def _refuses(self, shard: Shard) -> bool:
        """Whether a new attempt of ``shard`` must not run; settles a shard whose last attempt was lost."""
        if shard.final or self.stopping:
            return True
        last = shard.current
        if last is not None and not (
            policy.should_restart(last.record().exit_status, len(shard.attempts), self.plan.max_restarts)
            and self._can_feed_again(shard, last)
        ):
            self._settle(shard)
            return True
        return False

    @staticmethod
    def _can_feed_again(shard: Shard, last: Attempt) -> bool:
        """Whether a restart can be fed the input ``last`` had; if not, ``last`` says why it was not run again."""
        problem = shard.input.spool_error if shard.input is not None else None
        if problem is not None:
            last.lose(f"not run again: {problem}")
        return problem is None

    def _on_exit(self, pid: int, wait_status: int) -> None:
        if pid in self._refused:
            self._refused.discard(pid)  # the pid may come back for a later attempt
            return
        found = self._by_pid.get(pid)
        if found is None:
            return
        shard, attempt = found
        attempt.wait_status = wait_status
        attempt.ended_at = attempt.ended_at or time.time()
        if not attempt.reported and not shard.final and (self.stopping or wait_status == 0):
            self._settle(shard)  # no restart is coming (tornado restarts only failures)

    async def _converse(self, shard: Shard, attempt: Attempt) -> None:
        """Says "go" to an attempt, then follows it: snapshots, its result, and the answer to "again?"."""
        assert attempt.control is not None
        try:
            await channel.write(attempt.control, ("go", True))
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
                could_start = message[0] == "result" and attempt.lost is None
                # Once nobody reads ppipe's output, running again would only fail again.
                stopping = self.stopping or not self.streams.read
                again = policy.should_restart(
                    attempt.record().exit_status,
                    len(shard.attempts),
                    self.plan.max_restarts,
                    could_start=could_start,
                    stopping=stopping,
                ) and self._can_feed_again(shard, attempt)
                if not again:
                    self._settle(shard)
                await channel.write(attempt.control, ("again", again))
        except StreamClosedError:
            pass  # the attempt has gone; its exit (from the supervisor) or the next hello decides
        finally:
            attempt.control.close()

    def _settle(self, shard: Shard) -> None:
        """The shard will run no more: its last attempt's end is its verdict."""
        if shard.final:
            return
        shard.final = True
        shard.stopped = shard.stopped or (self.stopping and not shard.succeeded)
        if shard.input is not None:
            shard.input.detach()
        if self.plan.fail_fast and not self.stopping and self._verdict(shard) is Verdict.FAILED:
            self._say(f"ppipe: shard {shard.task_id} failed; stopping the others (--fail-fast)\n")
            self.stop(signal.SIGTERM)
        self._tasks.append(asyncio.ensure_future(self.streams.flush(shard)))

    def _verdict(self, shard: Shard) -> Verdict:
        last = shard.current
        if last is None:
            return Verdict.TERMINATED if self.stopping else Verdict.FAILED
        # A signal to the whole process group (Ctrl-C, `timeout`) may stop a
        # shard before ppipe itself has handled it: that shard was stopped too.
        interrupted = self.stopping and last.result is not None and last.result.interrupted_by is not None
        return policy.shard_verdict(last.record().exit_status, stopped=shard.stopped or interrupted)

    # -- stopping: --fail-fast, --timeout, signals

    def stop(self, sig: int) -> None:
        """Stops every running attempt and starts no new one.

        Each attempt is asked to stop as ``sig`` would stop it (over its
        control socket, not by a signal, which the attempt may already have
        had from the terminal); attempts still running after the grace
        period are killed, and their stages die with them.
        """
        self.stopping = True
        for shard in self.shards:
            if not shard.final:
                shard.stopped = True
        for attempt in self._running():
            if attempt.control is not None:
                self._tasks.append(asyncio.ensure_future(_ask_to_stop(attempt.control, sig)))
        self._kill_after(self.options.kill_after + REPORT_GRACE)

    def stop_all(self, sig: int) -> None:
        self.stop(sig)

    def _running(self) -> list[Attempt]:
        attempts = (shard.current for shard in self.shards)
        return [a for a in attempts if a is not None and a.running]

    def kill_all(self) -> None:
        """Kills every running attempt; its stages die with it."""
        for attempt in self._running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(attempt.pid, signal.SIGKILL)

    def _on_signal(self, sig: int) -> None:
        if self._interrupted(sig):
            self.stop(sig)

    # -- the end

    async def _wait(self, supervisor: Subprocess) -> None:
        code = await supervisor.wait_for_exit(raise_error=False)
        if code != 0:
            self._say(f"ppipe: the shard supervisor ended with status {code}; its shards ended with it\n")
        for shard in self.shards:
            if not shard.final:
                if self.stopping:
                    shard.stopped = True
                self._settle(shard)
        await self._drain()

    async def _drain(self) -> None:
        """Waits for the shards' output; a background descendant idle past the grace is not waited for."""
        pumps = [t for s in self.shards for a in s.attempts for t in a.pump_tasks]
        while pumps:
            _, pending = await asyncio.wait(pumps, timeout=DRAIN_GRACE)
            if not pending:
                break
            for shard in self.shards:
                for attempt in shard.attempts:
                    if attempt.out_pump is not None and attempt.out_pump.idle_for() > DRAIN_GRACE:
                        attempt.out_pump.stop_reading()
            pumps = list(pending)
        await asyncio.gather(*(s.settled.wait() for s in self.shards))

    async def _clean_up(self, supervisor: Subprocess | None) -> None:
        if supervisor is not None and supervisor.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(supervisor.pid, signal.SIGKILL)  # its shards and their stages die with it
            with contextlib.suppress(Exception):
                await asyncio.wait_for(supervisor.wait_for_exit(raise_error=False), 5)
        for task in self._tasks:
            if not task.done():
                task.cancel()
        if self._splitting is not None:  # stopped, it counts what it read and did not deal
            self._splitting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._splitting
        for shard in self.shards:
            for attempt in shard.attempts:
                attempt.close()
        await self.streams.close()
        for shard in self.shards:
            if shard.input is not None:
                shard.input.close()

    def _result(self) -> RunResult:
        return run_result(
            self.text,
            tuple(s.result(self.plan.total, self._verdict(s), self.options.count_lines) for s in self.shards),
            self,
            started_at=self.started_at,
            output_error=self.streams.output_error,
            input_error=self.input_error,
            input_undelivered=sum(s.input.undelivered for s in self.shards if s.input is not None),
            stdout=bytes(self.streams.capture.data) if self.streams.capture is not None else None,
            timeout=self.options.timeout or None,
        )

    @property
    def graph(self) -> Graph | None:
        """None: each shard parses its own pipeline (see :class:`~ppipe.snapshots.Run`)."""
        return None

    def snapshot(self) -> RunSnapshot:
        """The run as it is now, for the view."""
        now = time.time()
        shards = tuple(s.snapshot(now, self._verdict(s) if s.final else None) for s in self.shards)
        return RunSnapshot(now - self.started_at, shards, sharded=True)

    def _say(self, message: str) -> None:
        with contextlib.suppress(OSError):
            os.write(2 if self.options.stderr is None else self.options.stderr, message.encode())


async def _say_no(control: IOStream) -> None:
    with contextlib.suppress(StreamClosedError):
        await channel.write(control, ("go", False))
    control.close()


async def _ask_to_stop(control: IOStream, sig: int) -> None:
    with contextlib.suppress(StreamClosedError):
        await channel.write(control, ("stop", sig))


async def execute_sharded(
    text: str, plan: ShardPlan, options: RunOptions | None = None, observer: RunObserver | None = None
) -> RunResult:
    """Runs ``text`` as ``plan`` says on the running event loop; see :class:`ShardedExecution`.

    Raises :class:`~ppipe.errors.PpipeError` before anything starts when a
    shard's pipeline does not parse or names a command that cannot be run.
    """
    return await ShardedExecution(text, plan, options or RunOptions(), observer).run()
