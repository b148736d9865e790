"""Sharded runs (``--fork N``, ``--each FILE``): N copies of a pipeline, ``--jobs`` at once, one view, one status.

The design, in three kinds of process:

- **ppipe** (this module, :class:`ShardedExecution`) keeps the event loop,
  the view, the report and every byte that crosses its boundary: it splits
  its stdin between shards and merges their stdout and stderr back, whole
  lines at a time (:mod:`ppipe.shards.input`, :mod:`ppipe.shards.streams`).
  It decides which shard runs when, and every restart
  (:mod:`ppipe.shards.lifecycle`), and follows each attempt (:mod:`ppipe.shards.dispatch`).
- A **supervisor** (:mod:`ppipe.shards.supervisor`), a fresh interpreter with no
  loop and no threads, calls ``tornado.process.fork_processes`` with one
  process per slot.
- Each slot's process runs one **shard attempt** with the ordinary engine,
  its placeholders (``{task_id}``, ``{item}``...) filled in, and reports
  over a socket; tornado forks the slot again while ppipe has work for it.

Shard ids are ``offset .. offset + N - 1`` out of ``tasks``: on one machine
``0 .. N-1`` of ``N``; as task *k* of a cluster job array with ``--fork N``,
``k·N .. k·N+N-1`` of ``K·N``; with ``--each`` there, the items i with
i mod K = k, each its index i of all the items.

Nothing outlives ppipe: on every way out of :meth:`ShardedExecution.run`
the supervisor is killed if it still runs, and its death takes the shards,
who kill their stages' trees as they go (see :mod:`ppipe.shards.supervisor`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import time

from ppipe.engine.execution import DRAIN_GRACE
from ppipe.engine.options import Input, RunOptions
from ppipe.engine.processes import Stopping, handling_signals, sigchld_handler
from ppipe.engine.slices import FileSlice
from ppipe.graph import Graph
from ppipe.language.expansion import fill_text
from ppipe.results import RunResult
from ppipe.shards.attempts import Shard, run_result
from ppipe.shards.dispatch import REPORT_GRACE, LocalSlots
from ppipe.shards.input import Records, ShardInput, regular_file_left, split_stdin
from ppipe.shards.joblog import JobLog
from ppipe.shards.launcher import Supervisor, can_fork, fork_supervisor, spawn_supervisor, supervisor_spec
from ppipe.shards.ledger import ShardBook
from ppipe.shards.lifecycle import Scheduler
from ppipe.shards.plan import ShardPlan, check_descriptors, check_pipeline, check_plan, splits_input
from ppipe.shards.streams import ShardStreams
from ppipe.snapshots import RunObserver, RunSnapshot

#: Seconds between an attempt's snapshots, when someone watches (the view).
SNAPSHOT_EVERY = 0.25


class ShardedExecution(Stopping):
    """One sharded run. Use :meth:`run` once; it always leaves nothing running."""

    def __init__(self, text: str, plan: ShardPlan, options: RunOptions, observer: RunObserver | None = None) -> None:
        self.text = text
        self.plan = plan
        self.options = options
        self.observer = observer
        self.env = dict(os.environ if options.env is None else options.env)
        self.book = ShardBook(plan.local, self._shard, plan.task_id)
        #: Why ppipe could not read all of its input, if so; the run then fails.
        self.input_error: str | None = None
        self.started_at = time.time()
        self._splitting: asyncio.Future[None] | None = None
        self._joblog: JobLog | None = None
        self._prepared = False
        #: Whether ppipe deals its stdin to the shards (decided by prepare()).
        self._deals_input = False
        self.doorbell: socket.socket | None = None
        self.supervisor: Supervisor | None = None
        #: What is left of a regular file on stdin, when it is split: the view shows how much is dealt.
        self._input_size: int | None = None
        #: Drops the output nobody read, ``kill_after`` after a stop (see :meth:`_drop_output`).
        self._drop_timer: asyncio.TimerHandle | None = None
        #: The first error raised in a callback or task of the run (a bug, or MemoryError): it ends the run.
        self._internal_error: Exception | None = None

    # -- the run

    def prepare(self) -> None:
        """Checks the run and starts its supervisor, before any event loop where it can: then by a fork.

        Bad input (syntax, a missing command, a job log of another run)
        raises :class:`~ppipe.errors.PpipeError` here, before anything
        starts. Called by :meth:`run` when nobody called it first.
        """
        check_plan(self.plan)
        check_descriptors(self.plan)
        self._deals_input = splits_input(
            check_pipeline(self.text, self.plan, self.env, self.options.cwd), self.options.stdin
        )
        if self.plan.joblog is not None:
            self._joblog = JobLog(self.plan.joblog, self.text, self.plan.total, self.plan.resume)
            if self._joblog.mended is not None:
                self._say(self._joblog.mended + "\n")
        self._prepared = True
        if not any(not self._skipped(self.plan.task_id(i)) for i in range(self.plan.local)):
            return  # nothing to run: no supervisor
        self.doorbell, far_doorbell = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        spec = supervisor_spec(
            self.text,
            self.plan,
            self.options,
            split=self._deals_input,
            snapshot_every=SNAPSHOT_EVERY if self.observer is not None else None,
        )
        start = fork_supervisor if can_fork() else spawn_supervisor
        try:
            self.supervisor = start(spec, far_doorbell, self.options)
        except BaseException:
            self.doorbell.close()
            raise

    async def run(self) -> RunResult:
        try:
            if not self._prepared:
                self.prepare()
            return await self._run()
        finally:
            if self._joblog is not None:
                self._joblog.close()
            if self.doorbell is not None:
                self.doorbell.close()

    async def _run(self) -> RunResult:
        self.started_at = time.time()
        loop = asyncio.get_running_loop()
        self.streams = ShardStreams(self.options, self.observer, self.plan)
        self.slots = LocalSlots(
            self.plan, self.options, self.book, self.streams, deals_input=self._deals_input, stop_run=self.stop
        )
        # Input dealt to the shards needs them all from the start; a batch's are made as they are reached.
        dealt_to = self.book.make_all() if self._deals_input else []
        self.scheduler = self.slots.scheduler = Scheduler(
            self.plan,
            self.slots,
            self.book.in_order(),
            joblog=self._joblog,
            say=lambda line: self._say(line + "\n"),
            # A shard whose input is dealt starts once its first record has arrived.
            ready=lambda s: s.input is None or not s.input.unfed,
        )
        for shard in dealt_to:
            if shard.skipped:
                self.scheduler.settle(shard)
        handler = loop.get_exception_handler()
        loop.set_exception_handler(self._on_internal_error)
        with sigchld_handler(), handling_signals(loop, self._on_signal, self.options.handle_signals):
            timeout = self.options.timeout
            timer = loop.call_later(timeout, self._on_timeout, timeout) if timeout else None
            try:
                if self.doorbell is not None:
                    self.doorbell.setblocking(False)
                    loop.add_reader(self.doorbell.fileno(), self.slots.answer_door, self.doorbell)
                if self._deals_input:
                    self._input_size = _file_left(self.options.stdin)
                    inputs = [s.input for s in dealt_to if s.input is not None]
                    for shard_input in inputs:
                        shard_input.on_dealt = self.scheduler.dispatch
                    self._splitting = asyncio.ensure_future(self._split_input(inputs))
                if self.observer is not None:
                    self.observer.started(self)
                await self._wait()
            finally:
                if timer:
                    timer.cancel()
                self._cancel_kill()
                if self._drop_timer is not None:
                    self._drop_timer.cancel()
                if self.doorbell is not None:
                    with contextlib.suppress(ValueError, OSError):
                        loop.remove_reader(self.doorbell.fileno())
                await self._clean_up()
                loop.set_exception_handler(handler)
                if self.observer is not None:
                    self.observer.finished()
        if self._internal_error is not None:
            raise self._internal_error
        return self._result()

    def _on_internal_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        """A bug (or ``MemoryError``) in one of the coordinator's callbacks or tasks ends the run at once.

        asyncio would only log it and go on, and the run could wait for ever
        for what the failed step was to do. The supervisor is killed (its
        shards and their stages die with it), output not yet written is
        dropped, and :meth:`run` raises the error once everything is reaped.
        """
        if self._internal_error is not None:
            return
        error = context.get("exception")
        self._internal_error = error if isinstance(error, Exception) else RuntimeError(str(context.get("message")))
        if self.supervisor is not None and self.supervisor.returncode is None:
            self.supervisor.kill()
        with contextlib.suppress(Exception):
            self.streams.output.drop()

    def _skipped(self, task_id: int) -> bool:
        return self._joblog is not None and self._joblog.skips(task_id, self.plan.resume)

    def _shard(self, index: int) -> Shard:
        task_id = self.plan.task_id(index)
        shard_input = None
        if self._deals_input:
            # Shards that wait for a slot have their blocks kept on disk meanwhile: memory stays bounded.
            parked = self.plan.slots < self.plan.local
            # --fork's shards are made for the input: one dealt no record is not started. --each's are the items'.
            awaits = self.plan.items is None
            shard_input = ShardInput(spool=self.plan.max_restarts > 0 or parked, parked=parked, awaits_input=awaits)
        shard = Shard(task_id, index, fill_text(self.text, self.plan.values(index)), shard_input)
        shard.skipped = "done before" if self._skipped(task_id) else None
        return shard

    async def _split_input(self, inputs: list[ShardInput]) -> None:
        records = Records(self.plan.record_end, self.plan.header)
        self.input_error = await split_stdin(self.options.stdin, inputs, self.plan.block, records)
        # As parallel --pipe starts a job only for a block it has: a --fork shard dealt no record is not started.
        for shard in self.scheduler.schedule.drop_unready():
            shard.skipped = "no input"
            self.scheduler.settle(shard)
        self.scheduler.dispatch()

    # -- stopping: --halt, --timeout, signals

    def stop(self, sig: int) -> None:
        """Stops every running attempt and starts no new one.

        Each attempt is asked to stop as ``sig`` would stop it (over its
        control socket, not by a signal, which the attempt may already have
        had from the terminal); attempts still running after the grace
        period are killed, and their stages die with them.
        """
        self.scheduler.stop(sig)
        self._kill_after(self.options.kill_after + REPORT_GRACE)
        if self._drop_timer is None:
            self._drop_timer = asyncio.get_running_loop().call_later(self.options.kill_after, self._drop_output)

    def _drop_output(self) -> None:
        """``--kill-after`` since the stop: output nobody took by now is dropped, and said, so the run can end.

        A stop is a stop: a reader that stalls (``ppipe ... | sleep 60``)
        must not keep ppipe writing, or waiting to write, long after it.
        """
        dropped = self.streams.output.drop()
        if dropped:
            self._say(
                f"ppipe: stopped; {dropped:,} bytes of the shards' output were not written "
                f"(not read within --kill-after {self.options.kill_after:g}s)\n"
            )

    def stop_all(self, sig: int) -> None:
        self.stop(sig)

    def kill_all(self) -> None:
        """Kills every running attempt; its stages die with it."""
        self.slots.kill_all()

    def _on_signal(self, sig: int) -> None:
        if self._first_stop_signal(sig):
            self.stop(sig)

    # -- the end

    async def _wait(self) -> None:
        if self.supervisor is not None:
            code = await self.supervisor.wait()
            if code != 0:
                self._say(f"ppipe: the shard supervisor ended with status {code}; its shards ended with it\n")
        if self.slots.starved:
            self._say("ppipe: out of file descriptors for the shards' pipes; raise ulimit -n or lower --jobs\n")
        # Never all at once: a batch stopped early may have thousands never reached, each made and let go here.
        for shard in itertools.chain(list(self.book.live.values()), self.scheduler.left()):
            if not shard.final:
                if self.scheduler.stopping:
                    shard.stopped = True
                self.scheduler.settle(shard)
        await self._drain()

    async def _drain(self) -> None:
        """Waits for the shards' output; a background descendant idle past the grace is not waited for."""
        pumps = [t for s in self.book.live.values() for a in s.attempts for t in a.pump_tasks]
        while pumps:
            _, pending = await asyncio.wait(pumps, timeout=DRAIN_GRACE)
            if not pending:
                break
            for shard in self.book.live.values():
                for attempt in shard.attempts:
                    if attempt.out_pump is not None and attempt.out_pump.idle_for() > DRAIN_GRACE:
                        attempt.out_pump.stop_reading()
            pumps = list(pending)
        await asyncio.gather(*(s.settled.wait() for s in list(self.book.live.values())))

    async def _clean_up(self) -> None:
        supervisor = self.supervisor
        if supervisor is not None and supervisor.returncode is None:
            supervisor.kill()  # its shards and their stages die with it
            with contextlib.suppress(Exception):
                await asyncio.wait_for(supervisor.wait(), 5)
        if supervisor is not None:
            supervisor.release()
        for task in self.slots.tasks:
            if not task.done():
                task.cancel()
        if self._splitting is not None:  # stopped, it counts what it read and did not deal
            self._splitting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._splitting
        for shard in self.book.live.values():
            for attempt in shard.attempts:
                attempt.close()
        await self.streams.close()
        for shard_input in self.book.inputs():
            shard_input.close()

    def _result(self) -> RunResult:
        for shard in list(self.book.live.values()):
            self.slots.retire(shard)
        return run_result(
            self.text,
            self.book.results,
            self,
            started_at=self.started_at,
            output_error=self.streams.output_error,
            input_error=self.input_error or self.scheduler.joblog_error,
            input_undelivered=self.book.undelivered,
            stdout=bytes(self.streams.capture.data) if self.streams.capture is not None else None,
            timeout=self.options.timeout or None,
            halted_by=self.scheduler.halted_by,
            halted_on_success=self.scheduler.halted_on_success,
        )

    @property
    def graph(self) -> Graph | None:
        """None: each shard parses its own pipeline (see :class:`~ppipe.snapshots.Run`)."""
        return None

    def snapshot(self) -> RunSnapshot:
        """The run as it is now, for the view."""
        now = time.time()
        verdict = self.scheduler.verdict
        shards, unlisted = self.book.snapshots(lambda s: s.snapshot(now, verdict(s) if s.final else None))
        dealt = sum(i.received for i in self.book.inputs()) if self._input_size else None
        return RunSnapshot(
            now - self.started_at,
            shards,
            sharded=True,
            slots=self.plan.slots,
            input_size=self._input_size,
            input_dealt=dealt,
            unlisted=unlisted,
        )

    def _say(self, message: str) -> None:
        with contextlib.suppress(OSError):
            os.write(2 if self.options.stderr is None else self.options.stderr, message.encode())


def _file_left(stdin: Input) -> int | None:
    """How many bytes of ppipe's input are to be dealt, when that is known (bytes, or a regular file)."""
    if isinstance(stdin, bytes):
        return len(stdin)
    if isinstance(stdin, FileSlice):
        return stdin.size
    return regular_file_left(0 if stdin is None else stdin)
