"""What a sharded run decides, whatever runs its attempts: one :class:`Scheduler` over a :class:`Backend`.

A sharded run's shards run somewhere: in local slots forked by a
supervisor (:mod:`ppipe.shards.dispatch`), or as the tasks of a Slurm job
array (:mod:`ppipe.cluster.remote`). Where they run changes how an attempt
is started, followed and stopped; it does not change what the run decides.
The :class:`Scheduler` decides it, once, for every backend:

- which shard starts next, as the backend has room (``--jobs``), and each
  restart after its delay (:class:`~ppipe.shards.schedule.Schedule`);
- whether an ended attempt's shard runs again (``--max-restarts``), and the
  job log's line for it (final or not, which ``--resume`` reads);
- each shard's verdict, and the ``--halt`` tally over them;
- ``--shard-timeout``, counted from when the backend says an attempt runs;
- stopping: on a signal or ``--timeout`` (every running attempt stops), on
  ``--halt`` or when nobody reads the output any more (nothing more starts).

A backend tells the scheduler when an attempt runs and when it has ended;
the scheduler tells the backend what to start, stop or give up. A third
backend (a Kubernetes Indexed Job, say) implements :class:`Backend` over
its shards and attempts and calls the same four methods.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Generic, Protocol, TypeVar

from ppipe import policy
from ppipe.results import Verdict
from ppipe.shards.joblog import AttemptLine, JobLog
from ppipe.shards.plan import ShardPlan
from ppipe.shards.schedule import Schedule
from ppipe.stops import HALT, READER_GONE, StopReason


class TrackedAttempt(Protocol):
    """One attempt of a shard, as the scheduler needs to know it."""

    @property
    def exit_status(self) -> int | None:
        """Its status once it has ended (None while it runs, or when nothing says)."""

    @property
    def interrupted(self) -> bool:
        """Whether a signal reached its pipeline before ppipe stopped it (Ctrl-C goes to the whole group)."""

    @property
    def running(self) -> bool: ...


class TrackedShard(Protocol):
    """One shard over its attempts; ``final`` once it runs no more, ``stopped`` when ppipe stopped it."""

    task_id: int
    final: bool
    stopped: bool

    @property
    def index(self) -> int:
        """Its place among the run's shards, from 0."""

    @property
    def skipped(self) -> str | None:
        """Why it never runs, if it does not: ``done before`` (``--resume``), ``no input``."""

    @property
    def attempts(self) -> Sequence[TrackedAttempt]: ...

    @property
    def current(self) -> TrackedAttempt | None: ...

    def log_line(self, item: str | None, *, final: bool) -> AttemptLine:
        """The job log's line for its current attempt, which has ended."""


S = TypeVar("S", bound=TrackedShard)


class Backend(Protocol[S]):
    """Where a sharded run's attempts run. The scheduler calls these; the backend calls it back.

    ``noun`` names a shard in ppipe's messages (``shard``, ``task``);
    ``halt_words`` says what ``--halt now`` does to the others.
    ``output_breaks`` is whether a running attempt learns by itself that
    nobody reads the output any more (its output is a pipe ppipe closes);
    where it is not, the backend is told to stop them.
    """

    noun: str
    halt_words: str
    output_breaks: bool

    @property
    def read(self) -> bool:
        """Whether anyone still reads the run's output."""

    def free(self) -> int | None:
        """How many attempts may start now; None when the backend takes every ready shard and paces them itself."""

    def start(self, shards: list[S]) -> None:
        """Starts an attempt of each shard (the backend then calls :meth:`Scheduler.attempt_running`)."""

    def live(self) -> Iterable[S]:
        """The shards the backend holds, final or not."""

    def settled(self, shard: S) -> None:
        """The shard runs no more: its output may be flushed, and it may be let go."""

    def idle(self) -> None:
        """No work is coming for the room the backend has free (local slots end)."""

    def halt(self, *, now: bool) -> None:
        """Start nothing handed over that has not started; ``now``: stop those running too (``--halt now``)."""

    def stop(self, sig: int) -> None:
        """Stop every running attempt as ``sig`` would (a signal, ``--timeout``)."""

    def time_out(self, shard: S) -> None:
        """The shard's running attempt has had its ``--shard-timeout``: stop it."""

    def can_run_again(self, shard: S) -> bool:
        """Whether a restart can be given what the last attempt had (its share of the input)."""


class Scheduler(Generic[S]):
    """Decides a sharded run's every start, restart, verdict, halt and stop, for any :class:`Backend`.

    ``shards`` gives the shards in task order, made as they are reached
    (a batch's are not all made at once); a skipped one is settled as it
    is reached. ``ready`` says whether a shard that has not run may start
    now (dealt input: once its first record has arrived). ``say`` prints
    one of ppipe's lines on stderr.
    """

    def __init__(
        self,
        plan: ShardPlan,
        backend: Backend[S],
        shards: Iterable[S],
        *,
        joblog: JobLog | None,
        say: Callable[[str], None],
        ready: Callable[[S], bool] | None = None,
    ) -> None:
        self.plan = plan
        self.backend = backend
        self.joblog = joblog
        self._say = say
        self.schedule: Schedule[S] = Schedule(self._in_order(shards), ready=ready)
        #: Set once the run is stopped (a signal, ``--timeout``, ``--halt now``): nothing starts or restarts.
        self.stopping = False
        #: The run reached ``--halt success=N``: it got what it asked for.
        self.halted_on_success = False
        #: Why the run started no more shards, if it stopped starting them: ``--halt``, or its reader gone.
        self.halted_by: StopReason | None = None
        #: Why a job log line could not be written, if one could not: the run then fails.
        self.joblog_error: str | None = None
        self._halt = plan.halt_watch(plan.local)
        self._wake: asyncio.TimerHandle | None = None
        self._timers: dict[int, asyncio.TimerHandle] = {}

    def _in_order(self, shards: Iterable[S]) -> Iterator[S]:
        for shard in shards:
            if shard.final:
                continue
            if shard.skipped:
                self.settle(shard)
            else:
                yield shard

    # -- starting

    def dispatch(self) -> None:
        """Hands the backend every ready shard it has room for; arranges to look again for a delayed restart.

        Once nobody reads the output (``ppipe --each f "..." | head``), no
        shard starts any more: its output would have nowhere to go, as a
        producer gets SIGPIPE under a shell.
        """
        if not self.backend.read and not self.schedule.halted:
            self.halt(READER_GONE, now=not self.backend.output_breaks)
        room = self.backend.free()
        batch: list[S] = []
        while (room is None or len(batch) < room) and not self.stopping and (shard := self.schedule.next()) is not None:
            batch.append(shard)
        if batch:
            self.backend.start(batch)
        if room is not None and len(batch) >= room:
            return
        wait = None if self.stopping else self.schedule.ready_in()
        if wait is not None:  # only delayed restarts are left: look again when the first is due
            if self._wake is not None:
                self._wake.cancel()
            self._wake = asyncio.get_running_loop().call_later(wait, self.dispatch)
        elif self.stopping or self.schedule.empty:
            self.backend.idle()

    def attempt_running(self, shard: S) -> None:
        """The backend's word that the shard's new attempt runs: its ``--shard-timeout`` counts from now."""
        if self.plan.shard_timeout:
            loop = asyncio.get_running_loop()
            self._timers[shard.index] = loop.call_later(self.plan.shard_timeout, self._time_out, shard)

    def _time_out(self, shard: S) -> None:
        self._timers.pop(shard.index, None)
        if shard.current is not None and shard.current.running:
            self.backend.time_out(shard)

    # -- an attempt's end

    def attempt_ended(self, shard: S, *, could_start: bool = True) -> None:
        """The shard's current attempt has ended: log it, then restart or settle the shard.

        ``could_start`` is False when running again cannot help (a command
        missing on this shard, output ppipe could not keep). An attempt ppipe
        stopped did not decide its shard: its job log line is not final, so
        ``--resume`` runs that shard again.
        """
        timer = self._timers.pop(shard.index, None)
        if timer is not None:
            timer.cancel()
        attempt = shard.current
        assert attempt is not None
        stopping = self.stopping or self.schedule.halted or not self.backend.read
        tries = len(shard.attempts)
        again = policy.should_restart(
            attempt.exit_status, tries, self.plan.max_restarts, could_start=could_start, stopping=stopping
        ) and self.backend.can_run_again(shard)
        self._log(shard, final=not again and not self._stopped_by_ppipe(shard, attempt))
        if again:
            self.schedule.restart_later(shard, self.plan.retry_delay_before(tries + 1))
            self.dispatch()
        else:
            self.settle(shard)

    def _stopped_by_ppipe(self, shard: S, attempt: TrackedAttempt) -> bool:
        """Whether the attempt failed because the run was stopping, not by itself.

        Once ppipe stops the run, any failure may be the stop's doing (a
        command that exits 1 on SIGTERM); a signal to the whole process
        group may reach the attempt before ppipe's own handler runs; and a
        backend may have stopped the shard for ``--halt`` (a Slurm task
        cancelled while queued), where local slots simply never start it.
        """
        return attempt.exit_status != 0 and (self.stopping or attempt.interrupted or shard.stopped)

    def _log(self, shard: S, *, final: bool) -> None:
        if self.joblog is not None:
            line = shard.log_line(self.plan.item(shard.index), final=final)
            self.joblog_error = self.joblog_error or self.joblog.write(line)

    def settle(self, shard: S) -> None:
        """The shard will run no more: its last attempt's end is its verdict, which may halt the run."""
        if shard.final:
            return
        shard.final = True
        current = shard.current
        succeeded = current is not None and not current.running and current.exit_status == 0
        shard.stopped = shard.stopped or (self.stopping and not succeeded)
        verdict = self.verdict(shard)
        self.backend.settled(shard)
        if verdict in (Verdict.FAILED, Verdict.OK):
            self._check_halt(shard, verdict)

    def verdict(self, shard: S) -> Verdict:
        if shard.skipped:
            return Verdict.SKIPPED
        last = shard.current
        if last is None:
            return Verdict.TERMINATED if self.stopping or self.schedule.halted else Verdict.FAILED
        # A signal to the whole process group (Ctrl-C, `timeout`) may stop a
        # shard before ppipe itself has handled it: that shard was stopped too.
        return policy.shard_verdict(last.exit_status, stopped=shard.stopped or (self.stopping and last.interrupted))

    def may_change(self, shard: S) -> bool:
        """Whether a later stop could still change the shard's verdict: its attempt saw a signal ppipe has not."""
        last = shard.current
        return not self.stopping and last is not None and last.interrupted

    # -- halting and stopping

    def _check_halt(self, shard: S, verdict: Verdict) -> None:
        """Once the ``--halt`` condition is met, nothing more starts (and with ``now``, all stops)."""
        if not self._halt.record(verdict) or self.schedule.halted or self.stopping:
            return
        self.halted_on_success = self._halt.on_success
        name = f"{self.backend.noun} {shard.task_id}"
        self._say(self._halt.said(name, verdict, stopping_the_others=self.backend.halt_words))
        self.halt(HALT, now=self._halt.rule is not None and self._halt.rule.now)

    def halt(self, reason: StopReason, *, now: bool) -> None:
        """Starts nothing more: the shards still to start or to restart are settled, stopped."""
        self.halted_by = self.halted_by or reason
        for left in self.schedule.halt():
            left.stopped = True
            self.settle(left)
        self.backend.halt(now=now)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stops the run as ``sig`` would: every running attempt is asked to stop, nothing more starts."""
        self.stopping = True
        for shard in self.backend.live():
            if not shard.final:
                shard.stopped = True
        self.backend.stop(sig)
        self.backend.idle()
        for left in self.schedule.halt():  # restarts waiting for their delay, shards never reached
            left.stopped = True
            self.settle(left)

    def left(self) -> Iterator[S]:
        """Yields, and takes out, the shards the run never reached."""
        return self.schedule.left()
