"""A job array's tasks as ppipe follows them from the submitting machine: each attempt's files and how it ended.

Every attempt of task *i* runs in array job *J* (a resubmission is a new
array job) and writes, in the run directory on the shared filesystem,
``J_i.out`` and ``J_i.err`` (Slurm's ``--output``/``--error``) and
``J_i.json`` (the report of the ppipe that ran the task). Nothing else
crosses from the cluster to ppipe: the state comes from Slurm, the rest
from these files.
"""

from __future__ import annotations

import enum
import os
import time
from dataclasses import dataclass, field

from ppipe.cluster.slurm import TaskEnd
from ppipe.engine.sinks import Sink
from ppipe.identity import TaskIdentity
from ppipe.report import BadReport, load_report, unstarted
from ppipe.results import RunResult
from ppipe.shards.joblog import AttemptLine
from ppipe.snapshots import ShardSnapshot, ShardState

#: What ``squeue`` says of a task that has not started.
PENDING_STATES = frozenset({"PENDING", "REQUEUED", "CONFIGURING"})


class Phase(enum.Enum):
    """Where an attempt is, as Slurm and the run directory tell it."""

    QUEUED = "queued"
    RUNNING = "running"
    ENDING = "ending"  # gone from squeue; its report may still be on its way over the shared filesystem
    ENDED = "ended"


@dataclass(eq=False)  # the sinks it writes into know it by identity
class FollowedFile:
    """A file a task writes, read from where ppipe left off; its bytes go to ``sink``."""

    path: str
    sink: Sink | None = None
    offset: int = 0

    def read_new(self) -> bytes:
        """What was added since the last read; nothing when the file is not there yet."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            return b""
        self.offset += len(data)
        return data


@dataclass(eq=False)
class RemoteAttempt:
    """One run of one task: the array job it ran in, its files, and how it ended."""

    task_id: int
    number: int
    job_id: str
    directory: str
    submitted_at: float = field(default_factory=time.time)
    phase: Phase = Phase.QUEUED
    started_at: float | None = None
    gone_at: float | None = None
    #: When ppipe began waiting for the report of an attempt Slurm says has ended.
    waited_from: float | None = None
    report: RunResult | None = None
    end: TaskEnd | None = None
    bytes_out: int = 0

    def __post_init__(self) -> None:
        stem = os.path.join(self.directory, f"{self.job_id}_{self.task_id}")
        self.out = FollowedFile(stem + ".out")
        self.err = FollowedFile(stem + ".err")
        self.report_path = stem + ".json"

    @property
    def status(self) -> int | None:
        return None if self.report is None else self.report.exit_status

    @property
    def exit_status(self) -> int | None:
        return self.status

    @property
    def interrupted(self) -> bool:
        """Whether a signal reached the task's ppipe before this one stopped it (its report says)."""
        return self.report is not None and self.report.interrupted_by is not None

    @property
    def running(self) -> bool:
        """Whether it is still Slurm's (queued or running) or its report is on its way."""
        return self.phase is not Phase.ENDED

    def log_line(self, *, final: bool) -> AttemptLine:
        """Its job log line, once it has ended: the times and host from its report, or Slurm's."""
        report = self.report
        started = (report.started_at if report else None) or self.started_at or self.submitted_at
        ended = (report.ended_at if report else None) or time.time()
        return AttemptLine(
            task_id=self.task_id,
            item=None,
            attempt=self.number,
            status=self.status,
            signal=report.interrupted_by if report else None,
            started_at=started,
            seconds=round(ended - started, 6),
            bytes_in=None,
            bytes_out=self.bytes_out,
            host=(report.host if report else None) or "",
            final=final,
        )

    def read_report(self) -> bool:
        """Takes the task's report once it is there, whole and of the report's shape; False while it is not."""
        try:
            self.report = load_report(self.report_path)
        except BadReport:
            return False
        return True

    def report_without_ppipe(self, pipeline: str, tasks: int) -> None:
        """The report of an attempt whose ppipe wrote none (killed by Slurm, a node lost): Slurm's word for it."""
        end = self.end
        status = end.status if end is not None else 1
        said = f"Slurm says {end.state}, exit code {end.exit_code}:{end.signal}" if end else "Slurm no longer knows it"
        self.report = unstarted(
            pipeline,
            f"the task ended without a report ({said})",
            status,
            at=(end.started_at if end else None) or self.started_at or self.submitted_at,
            ended_at=(end.ended_at if end else None) or time.time(),
            timed_out=end is not None and end.state == "TIMEOUT",
            host=end.node if end is not None else None,
            task=TaskIdentity(self.task_id, tasks, "--on slurm", f"{self.job_id}_{self.task_id}"),
        )


@dataclass
class RemoteTask:
    """One task of the array, over all its attempts."""

    task_id: int
    attempts: list[RemoteAttempt] = field(default_factory=list)
    #: Why it is not submitted, if it is not: ``done before`` (``--resume``).
    skipped: str | None = None
    final: bool = False
    stopped: bool = False
    #: Whether the merged output was told this task will write no more (``--keep-order`` moves on).
    output_done: bool = False

    @property
    def index(self) -> int:
        return self.task_id

    @property
    def current(self) -> RemoteAttempt | None:
        return self.attempts[-1] if self.attempts else None

    def log_line(self, item: str | None, *, final: bool) -> AttemptLine:
        """The job log's line for its current attempt, which has ended (an array task has no item)."""
        assert self.current is not None
        return self.current.log_line(final=final)

    def state(self) -> ShardState:
        attempt = self.current
        if self.skipped:
            return ShardState.SKIPPED
        if self.final:
            status = attempt.status if attempt is not None else None
            return ShardState.DONE if status == 0 else ShardState.STOPPED if self.stopped else ShardState.FAILED
        if attempt is not None and attempt.phase is Phase.ENDED:
            return ShardState.RESTARTING  # waiting for its restart's delay, or its resubmission
        if attempt is None or attempt.phase is Phase.QUEUED:
            return ShardState.WAITING
        return ShardState.RUNNING

    def snapshot(self, now: float) -> ShardSnapshot:
        attempt = self.current
        began = attempt.started_at if attempt is not None else None
        ended = attempt.gone_at if attempt is not None and self.final else None
        return ShardSnapshot(
            task_id=self.task_id,
            state=self.state(),
            pid=None,
            attempts=len(self.attempts),
            bytes_in=None,
            bytes_out=sum(a.bytes_out for a in self.attempts),
            elapsed=None if began is None else (ended or now) - began,
            stages=None,
        )
