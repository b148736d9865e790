"""What ppipe knows of each shard while a sharded run runs: its attempts, and what each one did.

A :class:`Shard` is one task id; each time it runs is an :class:`Attempt`
(one forked process), whose pipes ppipe pumps and whose report arrives over
its control socket. Both turn into the frozen records of
:mod:`ppipe.results` and the snapshots of :mod:`ppipe.snapshots`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tornado.iostream import IOStream

from ppipe import policy, stops
from ppipe.engine.processes import Stopping
from ppipe.engine.pumps import Pump
from ppipe.errors import ExitStatus
from ppipe.results import PipelineResult, RunResult, ShardAttempt, ShardResult, Verdict
from ppipe.shards.input import ShardInput
from ppipe.shards.joblog import AttemptLine
from ppipe.snapshots import PipelineSnapshot, ShardSnapshot, ShardState
from ppipe.stops import StopReason, signal_name


@dataclass
class Attempt:
    """One run of a shard, in one process; ``control`` is None when ppipe refused it at once."""

    number: int
    pid: int
    control: IOStream | None
    started_at: float
    #: The local slot (1 … ``--jobs``) it ran in: its ``{slot}``.
    slot: int | None = None
    ended_at: float | None = None
    result: PipelineResult | None = None
    error: str | None = None
    error_status: int | None = None
    wait_status: int | None = None
    snapshot: PipelineSnapshot | None = None
    out_pump: Pump | None = None
    pump_tasks: list[asyncio.Future[None]] = field(default_factory=list)
    #: What ppipe could not hold for this attempt (its output, its input for a restart), if anything:
    #: the attempt then fails, whatever its pipeline did.
    lost: str | None = None
    #: ``--shard-timeout`` stopped it (seconds); ended without a report, it counts as 124.
    timed_out_after: float | None = None
    #: Its ``--shard-timeout`` timer, and the kill after the grace.
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    #: What its stdout pump counted, once the pump is let go (:meth:`pumped`): bytes, lines.
    counted: tuple[int, int] = (0, 0)

    def lose(self, why: str) -> None:
        self.lost = why if self.lost is None else f"{self.lost}; {why}"

    @property
    def reported(self) -> bool:
        return self.result is not None or self.error is not None

    @property
    def running(self) -> bool:
        return self.wait_status is None and not self.reported

    @property
    def exit_status(self) -> int | None:
        return self.record().exit_status

    @property
    def interrupted(self) -> bool:
        """Whether a signal reached its pipeline before ppipe stopped it (Ctrl-C goes to the whole group)."""
        return self.result is not None and self.result.interrupted_by is not None

    @property
    def bytes_out(self) -> int:
        return self.out_pump.counters[0].nbytes if self.out_pump is not None else self.counted[0]

    @property
    def lines_out(self) -> int:
        return self.out_pump.counters[0].lines if self.out_pump is not None else self.counted[1]

    def pumped(self) -> None:
        """Its output has all arrived: only the counts are kept, not the pumps, their streams and tasks.

        A batch keeps every attempt for its result; what each kept of its
        pumps made ppipe's memory grow with every item done.
        """
        if self.out_pump is not None and all(task.done() for task in self.pump_tasks):
            self.counted = (self.out_pump.counters[0].nbytes, self.out_pump.counters[0].lines)
            self.out_pump = None
            self.pump_tasks = []

    def cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()

    def close(self) -> None:
        """Lets go of the attempt's control socket, pumps and timers, wherever they are."""
        self.cancel_timers()
        if self.control is not None:
            self.control.close()
        for task in self.pump_tasks:
            task.cancel()

    def record(self) -> ShardAttempt:
        """The attempt as the result tells it; one that lost output or input fails, whatever its pipeline did."""
        error, error_status = self.error, self.error_status
        if not self.reported and self.timed_out_after is not None:
            error = f"timed out after {self.timed_out_after:g}s (--shard-timeout) and was killed"
            error_status = ExitStatus.TIMEOUT
        elif not self.reported and self.wait_status is not None:
            error = describe_wait(self.wait_status) + " before it reported"
        elif not self.reported:
            error = "the shard process ended before it reported"
        result = self.result
        if self.lost is not None:
            if result is not None:
                result = dataclasses.replace(
                    result,
                    exit_status=result.exit_status or ExitStatus.FAILURE,
                    io_error="; ".join(filter(None, (result.io_error, self.lost))),
                )
            else:
                error = "; ".join(filter(None, (error, self.lost)))
        return ShardAttempt(
            self.number,
            self.pid,
            self.started_at,
            self.ended_at,
            result,
            error,
            error_status,
            self.wait_status,
            slot=self.slot,
        )


@dataclass
class Shard:
    """One task id of a sharded run: its pipeline text, its share of the input, and its attempts.

    ``final`` once it will run no more; ``stopped`` when ppipe stopped it
    (a signal, ``--timeout``, ``--halt``) before it could succeed;
    ``skipped`` when an earlier run finished it (``--resume``), or when
    ppipe dealt its input and it got no record (it never starts).
    ``settled`` is set once its output has all arrived.
    """

    task_id: int
    index: int
    pipeline: str
    input: ShardInput | None
    attempts: list[Attempt] = field(default_factory=list)
    final: bool = False
    stopped: bool = False
    #: Why it is skipped, if it is: see :attr:`~ppipe.results.ShardResult.skipped_for`.
    skipped: str | None = None
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def current(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    def result(self, tasks: int, verdict: Verdict, count_lines: bool) -> ShardResult:
        return ShardResult(
            task_id=self.task_id,
            tasks=tasks,
            pipeline=self.pipeline,
            attempts=tuple(a.record() for a in self.attempts),
            bytes_in=self.input.delivered if self.input is not None else None,
            bytes_out=sum(a.bytes_out for a in self.attempts),
            lines_out=sum(a.lines_out for a in self.attempts) if count_lines else None,
            verdict=verdict,
            skipped_for=self.skipped,
        )

    def log_line(self, item: str | None, *, final: bool) -> AttemptLine:
        """The job log's line for its current attempt, once it has ended."""
        attempt = self.attempts[-1]
        record = attempt.record()
        wait = attempt.wait_status
        killed_by = signal_name(os.WTERMSIG(wait)) if wait is not None and os.WIFSIGNALED(wait) else None
        result = record.result
        return AttemptLine(
            task_id=self.task_id,
            item=item,
            attempt=attempt.number,
            status=record.exit_status,
            signal=killed_by or (result.interrupted_by if result is not None else None),
            started_at=attempt.started_at,
            seconds=None if attempt.ended_at is None else round(attempt.ended_at - attempt.started_at, 6),
            bytes_in=self.input.delivered if self.input is not None else None,
            bytes_out=attempt.bytes_out,
            host="",
            final=final,
        )

    def snapshot(self, now: float, verdict: Verdict | None) -> ShardSnapshot:
        """The shard as the view shows it; ``verdict`` once it is final."""
        attempt = self.current
        if verdict is not None:
            state = _FINAL_STATES.get(verdict, ShardState.STOPPED)
        elif attempt is None:
            state = ShardState.WAITING
        elif not attempt.running:
            state = ShardState.RESTARTING
        else:
            state = ShardState.RUNNING
        first = self.attempts[0].started_at if self.attempts else None
        last_end = attempt.ended_at if attempt is not None and self.final else None
        return ShardSnapshot(
            task_id=self.task_id,
            state=state,
            pid=attempt.pid if attempt is not None else None,
            attempts=len(self.attempts),
            bytes_in=self.input.delivered if self.input is not None else None,
            bytes_out=sum(a.bytes_out for a in self.attempts),
            elapsed=None if first is None else (last_end or now) - first,
            stages=attempt.snapshot if attempt is not None else None,
        )


_FINAL_STATES = {Verdict.OK: ShardState.DONE, Verdict.FAILED: ShardState.FAILED, Verdict.SKIPPED: ShardState.SKIPPED}


def describe_wait(wait_status: int) -> str:
    """How a shard process ended, from its raw wait status."""
    if os.WIFSIGNALED(wait_status):
        return f"the shard process was killed by {signal_name(os.WTERMSIG(wait_status))}"
    return f"the shard process exited with status {os.WEXITSTATUS(wait_status)}"


def run_result(
    text: str,
    shards: Sequence[ShardResult],
    stopping: Stopping,
    *,
    started_at: float,
    output_error: OSError | None,
    input_error: str | None,
    input_undelivered: int,
    stdout: bytes | None,
    timeout: float | None,
    halted_by: StopReason | None = None,
    halted_on_success: bool = False,
) -> RunResult:
    """The sharded run's result: its shards', and a status by the rules (:func:`ppipe.policy.run_exit_status`).

    Output ppipe could not write, or input it could not read, fails a run
    that no shard failed.
    """
    stopped_by = stops.after(halted_by, stopping.stopped_by)  # a signal or a timeout has a status: it wins
    exit_status = policy.run_exit_status(
        ((s.task_id, s.verdict, s.exit_status) for s in shards),  # a batch's: one at a time
        stopped_by=stopped_by,
        halted_on_success=halted_on_success,
    )
    return RunResult(
        pipeline=text,
        shards=shards,
        sharded=True,
        exit_status=exit_status or (ExitStatus.FAILURE if output_error or input_error else 0),
        output_error=output_error.strerror if output_error is not None else None,
        started_at=started_at,
        ended_at=time.time(),
        stopped_by=stopped_by,
        stdout=stdout,
        input_undelivered=input_undelivered,
        timeout=timeout,
        input_error=input_error,
    )
