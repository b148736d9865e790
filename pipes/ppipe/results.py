"""What a run produced: frozen records for every reader.

One model for every run: a :class:`RunResult` holds its shards, each shard
its attempts, each attempt the :class:`PipelineResult` of one pipeline (its
stages and edges). A plain run is one shard with one attempt, run in
ppipe's own process; ``--fork N`` gives N shards, restarts more attempts.
The engine and the shard supervisor build these records,
:mod:`ppipe.policy` judges them, and the report, the summary, the view's
summary and the Python API read them. What a run is doing while it runs is
in :mod:`ppipe.snapshots`.
"""

from __future__ import annotations

import enum
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from ppipe.flow import EdgeResult, StageFlow, summed_edges
from ppipe.graph import Graph, Stage
from ppipe.stops import StopReason, signal_name, timed_out

if TYPE_CHECKING:
    from ppipe.identity import TaskIdentity


class Verdict(enum.Enum):
    """How a stage's end counts towards the run's exit status."""

    #: Exited 0.
    OK = "ok"
    #: Failed, and makes the run fail.
    FAILED = "failed"
    #: Failed, but excused by the ``-`` marker or ``--no-fail``; reported only.
    IGNORED = "ignored"
    #: Stopped because its consumer went away (SIGPIPE or EPIPE): not a failure.
    BROKEN_PIPE = "broken-pipe"
    #: Stopped by ppipe itself (timeout or interrupt); the run's status says why.
    TERMINATED = "terminated"
    #: A shard not run: an earlier run finished it (``--resume``); not a failure.
    SKIPPED = "skipped"
    #: Not judged yet (the engine's raw facts, before :func:`ppipe.policy.judge`).
    PENDING = "pending"


@dataclass(frozen=True)
class StageResult:
    """One stage's facts and verdict.

    ``returncode`` is as tornado and subprocess give it (negative = killed by
    that signal) and None when the process never started; ``error`` then
    says why and ``error_status`` is the status that counts for it (1 for a
    redirection that could not be opened, 126 for an exec that failed, as
    bash). ``output_closed_early`` is True when ppipe closed the stage's
    output while the stage was still writing, because every consumer had
    gone. ``consumer_left`` is True when the stage's output went away under
    it: ppipe closed it because its consumers exited, or it was ppipe's own
    stdout, whose reader ppipe cannot see (``ppipe yes | head -1``).
    """

    stage: Stage
    pid: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    returncode: int | None = None
    error: str | None = None
    error_status: int = 1
    output_closed_early: bool = False
    consumer_left: bool = False
    signalled_by_ppipe: bool = False
    stderr_tail: tuple[str, ...] = ()
    verdict: Verdict = Verdict.PENDING
    #: True when the stage's stderr went out where ppipe's failure lines go (ppipe's stderr, a
    #: shard's parent, the live view) before they are printed: as it was written, or held back while
    #: a pager owned the screen and released when it left. Whoever reads the failure lines saw it just
    #: above, so they do not quote the tail again. False (quote it) when it was not passed on
    #: (discarded) or ppipe cannot say.
    stderr_seen: bool = False

    @property
    def status(self) -> int | None:
        """The shell's view of the exit: the code, or 128+N for signal N; ``error_status`` if it never started."""
        if self.returncode is None:
            return self.error_status if self.error else None
        return 128 - self.returncode if self.returncode < 0 else self.returncode

    @property
    def signal(self) -> str | None:
        """The name of the signal that killed the stage (``SIGPIPE``), if one did."""
        if self.returncode is None or self.returncode >= 0:
            return None
        return signal_name(-self.returncode)

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at

    @property
    def failed(self) -> bool:
        return self.verdict is Verdict.FAILED

    def describe_end(self) -> str:
        """``exit status 3``, ``killed by SIGKILL``, or why it never started."""
        if self.error:
            return f"not started: {self.error}"
        if self.signal:
            return f"killed by {self.signal}"
        return f"exit status {self.status}"


class _Outcome:
    """What every finished run offers: ``ok`` and ``check()``, from its ``exit_status``, and why it stopped."""

    exit_status: int
    stopped_by: StopReason | None

    @property
    def timed_out(self) -> bool:
        """Whether its ``--timeout`` stopped it."""
        return timed_out(self.stopped_by)

    @property
    def interrupted_by(self) -> str | None:
        """The signal that stopped it (``SIGINT``), if one did."""
        return self.stopped_by.signal_name if self.stopped_by is not None else None

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def check(self: _R) -> _R:
        """Returns self when the run succeeded; raises :class:`~ppipe.errors.PipelineFailed` otherwise."""
        from ppipe.errors import PipelineFailed

        if not self.ok:
            raise PipelineFailed(self)
        return self


_R = TypeVar("_R", bound=_Outcome)


@dataclass(frozen=True)
class PipelineResult(_Outcome):
    """One pipeline run to its end: a plain run's only attempt, or one attempt of a shard.

    ``stdout`` holds the captured output when capture was asked for.
    """

    graph: Graph
    stages: tuple[StageResult, ...]
    edges: tuple[EdgeResult, ...]
    exit_status: int
    started_at: float
    ended_at: float
    #: Why ppipe stopped it before it ended by itself, if it did (see :mod:`ppipe.stops`).
    stopped_by: StopReason | None = None
    stdout: bytes | None = None
    #: Why ppipe could not read its input or write its output (``cannot write the output: No space left
    #: on device``), if so; the run then fails with status 1 unless a stage failed.
    io_error: str | None = None
    #: The ``--timeout`` it was given, in seconds: a timed-out run stopped after that, the grace aside.
    timeout: float | None = None

    @property
    def failures(self) -> tuple[StageResult, ...]:
        return tuple(s for s in self.stages if s.failed)

    def edge(self, source: object, target: object) -> EdgeResult:
        """The edge between two nodes (stage ids or :class:`~ppipe.graph.Boundary` values)."""
        for result in self.edges:
            if result.edge.source == source and result.edge.target == target:
                return result
        raise KeyError(f"no edge {source}->{target}")

    def flow(self, stage_id: int) -> StageFlow:
        """The stage's bytes, lines, ratio and held time over the whole run (see :class:`StageFlow`)."""
        return StageFlow.of(
            [e for e in self.edges if e.edge.target == stage_id], [e for e in self.edges if e.edge.source == stage_id]
        )

    @property
    def bottleneck(self) -> int | None:
        """The stage the pipeline waited on for more than half the run, the longest, if one did.

        The live view marks the same stage while it runs, from the last
        moments rather than the whole run.
        """
        duration = self.ended_at - self.started_at
        held = {s.stage.id: self.flow(s.stage.id).held for s in self.stages}
        worst = max(held, key=held.__getitem__, default=None)
        return worst if worst is not None and duration > 0 and held[worst] > duration / 2 else None


@dataclass(frozen=True)
class ShardAttempt:
    """One run of one shard's pipeline (a shard restarted twice has three).

    ``result`` is the attempt's own :class:`PipelineResult` (stages, edges, its
    status); None when the attempt never reported one: ``error`` then says
    why (a command missing on this shard, or the shard process killed),
    and ``wait_status`` is the shard process's raw ``os.wait`` status when
    it is known.
    """

    number: int
    pid: int | None
    started_at: float
    ended_at: float | None = None
    result: PipelineResult | None = None
    error: str | None = None
    error_status: int | None = None
    wait_status: int | None = None
    #: Where it ran, when that was not the run's own host: a job array's task (merged reports).
    host: str | None = None
    #: The cluster's job id of the task it was (merged reports), if it had one.
    job_id: str | None = None
    #: The local slot it ran in (1 to ``--jobs``, its ``{slot}``), where that was recorded: a slot runs one
    #: attempt after another, in one process while that lives (so ``pid`` tells the slot's process, not the slot).
    slot: int | None = None

    @property
    def exit_status(self) -> int:
        """The attempt's status as a shell would give it: its pipeline's, or its process's."""
        if self.result is not None:
            return self.result.exit_status
        if self.error_status is not None:
            return self.error_status
        if self.wait_status is not None:
            return (
                128 + os.WTERMSIG(self.wait_status)
                if os.WIFSIGNALED(self.wait_status)
                else os.WEXITSTATUS(self.wait_status) or 1
            )
        return 1

    def describe_end(self) -> str:
        if self.result is not None:
            return f"exit status {self.result.exit_status}"
        if self.error:
            return self.error
        return f"exit status {self.exit_status}"


@dataclass(frozen=True)
class ShardResult:
    """One shard of a sharded run: every attempt, and what ppipe moved for it.

    ``bytes_in`` counts the input ppipe gave it (None when input was not
    split), ``bytes_out`` its output that reached ppipe's stdout, over all
    attempts (None when ppipe handed its stdout over and did not count it:
    a plain run whose last stage writes there itself). ``verdict``: ``ok``, ``failed`` (its last attempt failed and no
    restart was left), or ``terminated`` (ppipe stopped it: ``--fail-fast``,
    ``--timeout``, a signal). ``error`` says why a merged run's shard has no
    attempt (``no report came from task 3``).
    """

    task_id: int
    tasks: int
    pipeline: str
    attempts: tuple[ShardAttempt, ...]
    bytes_in: int | None
    bytes_out: int | None
    lines_out: int | None
    verdict: Verdict
    error: str | None = None
    #: Why a ``skipped`` shard never ran: ``no input`` (ppipe dealt it no record) or ``done before``
    #: (a job log says an earlier run finished it).
    skipped_for: str | None = None

    @property
    def exit_status(self) -> int | None:
        return self.attempts[-1].exit_status if self.attempts else None

    @property
    def host(self) -> str | None:
        """Where its last attempt ran, when a merged report says (see :attr:`ShardAttempt.host`)."""
        return self.attempts[-1].host if self.attempts else None

    @property
    def job_id(self) -> str | None:
        return self.attempts[-1].job_id if self.attempts else None

    @property
    def restarts(self) -> int:
        return max(0, len(self.attempts) - 1)

    @property
    def failed(self) -> bool:
        return self.verdict is Verdict.FAILED

    @property
    def last_result(self) -> PipelineResult | None:
        """The pipeline result of the shard's last attempt, if that attempt reported one."""
        return self.attempts[-1].result if self.attempts else None

    @property
    def last_failures(self) -> tuple[StageResult, ...]:
        """The failed stages of the shard's last attempt (none when it never reported)."""
        last = self.last_result
        return last.failures if last is not None else ()

    @property
    def stages(self) -> tuple[StageResult, ...]:
        """The stages of the shard's last attempt, as a plain run gives them; none when it never reported."""
        last = self.last_result
        return last.stages if last is not None else ()

    @property
    def edges(self) -> tuple[EdgeResult, ...]:
        """The edges of the shard's last attempt, as a plain run gives them; none when it never reported."""
        last = self.last_result
        return last.edges if last is not None else ()


@dataclass(frozen=True)
class ArrayTask:
    """How one task of a job array ended, in a merged run (``ppipe report merge``, ``--on slurm``).

    ``exit_status`` is its last report's (None without one), ``reports`` how
    many it gave, ``end`` the words for it (``exit status 124, timed out``).
    """

    task_id: int
    verdict: Verdict
    exit_status: int | None
    reports: int
    end: str


@dataclass(frozen=True)
class RunResult(_Outcome):
    """A finished run: its shards, their attempts, and how the whole run ended.

    A plain run is one shard with one attempt, run in ppipe's own process
    (``sharded`` False). Its pipeline's stages and edges are right here
    (:attr:`stages`, :attr:`edges`, :meth:`edge`, :meth:`flow`); for a
    sharded run (``--fork``, ``--each``, ``ppipe.run(..., fork=N)``) they
    are the shards' together: every shard's stages, and each edge of the
    pipeline once with its figures summed over the shards. Each shard's own
    are under :attr:`shards`. Figures of a shard are those of its last
    attempt, as its verdict is.

    ``input_undelivered`` counts input bytes ppipe could give to nobody: their
    shard had already ended for good (it failed, or stopped reading early).
    """

    pipeline: str
    #: In task order. A tuple, but for a batch past a few hundred shards, a sequence read back from a
    #: temporary file as it is indexed (equal to the tuple of the same results).
    shards: Sequence[ShardResult]
    exit_status: int
    started_at: float
    ended_at: float
    sharded: bool = False
    #: Why ppipe stopped the run before it ended by itself, if it did: a signal, ``--timeout``,
    #: ``--halt``, or its reader gone (see :mod:`ppipe.stops`).
    stopped_by: StopReason | None = None
    stdout: bytes | None = None
    #: The ``--timeout`` it was given, in seconds: a timed-out run stopped after that, the grace aside.
    timeout: float | None = None
    input_undelivered: int = 0
    #: Why ppipe could not write the shards' output to its stdout (``No space left on device``), if so.
    output_error: str | None = None
    #: Why ppipe could not read its input to the end (the shards got what was read), if so.
    input_error: str | None = None
    #: Why nothing ran (bad syntax, a command not found): a run that never started; ``exit_status`` says how it ended.
    error: str | None = None
    #: The machine it ran on; None for a merged run whose tasks ran on several.
    host: str | None = field(default_factory=socket.gethostname)
    #: Which task of a cluster job array this run was, if it was one.
    task: TaskIdentity | None = None
    #: A merged run's tasks (``ppipe report merge``, ``--on slurm``), each as it ended; empty otherwise.
    array_tasks: tuple[ArrayTask, ...] = ()
    #: Where an ``--on slurm`` run kept its tasks' files.
    run_directory: str | None = None

    @property
    def local(self) -> PipelineResult | None:
        """The pipeline's own result when the run was one pipeline in this process; None when sharded."""
        if self.sharded or not self.shards or not self.shards[0].attempts:
            return None
        return self.shards[0].attempts[0].result

    @property
    def graph(self) -> Graph | None:
        """The graph that ran, for a plain run; None for a sharded one, whose shards each parsed their own."""
        local = self.local
        return local.graph if local is not None else None

    @property
    def stages(self) -> tuple[StageResult, ...]:
        """The stages that ran: a plain run's, or every shard's in task order (each shard's last attempt)."""
        return tuple(stage for shard in self.shards for stage in shard.stages)

    @property
    def edges(self) -> tuple[EdgeResult, ...]:
        """A plain run's edges; for a sharded run, each edge once, its figures summed over the shards."""
        return summed_edges(shard.edges for shard in self.shards)

    @property
    def io_error(self) -> str | None:
        """Why a plain run could not read its input or write its output, if so (sharded: ``*_error``)."""
        local = self.local
        return local.io_error if local is not None else None

    @property
    def failures(self) -> tuple[StageResult, ...]:
        """The stages that failed the run: a plain run's own, or each failed shard's in its last attempt."""
        return tuple(stage for shard in self.failed_shards for stage in shard.last_failures)

    @property
    def failed_shards(self) -> tuple[ShardResult, ...]:
        return tuple(s for s in self.shards if s.failed)

    def edge(self, source: object, target: object) -> EdgeResult:
        """The edge between two nodes (stage ids or :class:`~ppipe.graph.Boundary` values); see :attr:`edges`."""
        for result in self.edges:
            if result.edge.source == source and result.edge.target == target:
                return result
        raise KeyError(f"no edge {source}->{target}")

    def flow(self, stage_id: int) -> StageFlow:
        """The stage's bytes, lines, ratio and held time (see :class:`StageFlow`), over every shard's."""
        edges = self.edges
        return StageFlow.of(
            [e for e in edges if e.edge.target == stage_id], [e for e in edges if e.edge.source == stage_id]
        )

    @property
    def bottleneck(self) -> int | None:
        """A plain run's bottleneck stage, if it had one (see :attr:`PipelineResult.bottleneck`)."""
        local = self.local
        return local.bottleneck if local is not None else None
