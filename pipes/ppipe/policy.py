"""The exit-status policy: a pure function from stage results to verdicts and a status.

The rules, in order:

1. A stage that exited 0 is ``ok``.
2. A stage ppipe itself signalled (``--timeout``, Ctrl-C) is ``terminated``;
   the run then exits 124 (timeout) or 128+N (signal N), whatever the stages did.
3. A stage killed by SIGPIPE when its consumer went away is
   ``broken-pipe``, as ``yes | head -1`` intends (``consumer_left``); a
   SIGPIPE from a broken pipe of the stage's own is a failure. So is a
   stage that exited non-zero because ppipe closed its output under it
   (EPIPE: programs that report the error instead of dying of SIGPIPE, such
   as Python scripts), provided every consumer it fed is itself not a
   failure of its own: ``ok``, ``broken-pipe`` (the consumer that left may be
   further down the chain: ``gen | cat | head -1``) or ``ignored``.
   "Because of the closing" is the engine's finding
   (``output_closed_early``): the stage was blocked writing into a full pipe
   when ppipe closed it and exited right after, or it said "Broken pipe" on
   stderr afterwards. Bytes merely left unread are no such evidence: a
   producer that had finished writing and failed later (``sh -c 'echo x;
   exit 3' | true``) failed on its own, and so did a silent one
   (``false | true``). Neither kind of broken pipe is a failure — unlike
   bash's pipefail, which reports 141.
4. Any other non-zero exit, or a stage that could not start (a redirection
   that could not be opened: status 1, as bash), is ``failed`` — unless the
   stage carries the ``-`` marker or the run is ``--no-fail``: ``ignored``.
5. A pipeline's status is 0 when nothing failed, else the status of the
   rightmost failed stage (bash's pipefail).

Every run is made of shards (a plain run is one, with one attempt), and
rules 6 to 8 below take a pipeline's status to the run's. For a plain run
they give its pipeline's status unchanged.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Iterable, Sequence

from ppipe.errors import ExitStatus
from ppipe.flow import bytes_into_stdout
from ppipe.graph import Boundary, Graph
from ppipe.results import PipelineResult, RunResult, ShardAttempt, ShardResult, StageResult, Verdict
from ppipe.stops import StopReason


def judge(graph: Graph, stages: Sequence[StageResult], *, no_fail: bool = False) -> tuple[StageResult, ...]:
    """Returns the stages with their verdicts filled in (rules 1–4).

    Consumers are judged before their producers, since rule 3 asks how each
    producer's consumers ended.
    """
    by_id = {s.stage.id: s for s in stages}
    verdicts: dict[int, Verdict] = {}
    for stage_id in _consumers_first(graph, by_id):
        verdicts[stage_id] = _verdict(graph, by_id[stage_id], verdicts, no_fail)
    return tuple(dataclasses.replace(s, verdict=verdicts[s.stage.id]) for s in stages)


def _consumers_first(graph: Graph, by_id: dict[int, StageResult]) -> list[int]:
    """Stage ids ordered so that every stage comes after all the stages it feeds (no recursion)."""
    feeds = {sid: [target for target in _consumers(graph, sid) if target in by_id] for sid in by_id}
    unjudged_consumers = {sid: len(targets) for sid, targets in feeds.items()}
    fed_by: dict[int, list[int]] = {sid: [] for sid in by_id}
    for sid, targets in feeds.items():
        for target in targets:
            fed_by[target].append(sid)
    ready = [sid for sid, count in unjudged_consumers.items() if count == 0]
    order: list[int] = []
    while ready:
        sid = ready.pop()
        order.append(sid)
        for producer in fed_by[sid]:
            unjudged_consumers[producer] -= 1
            if unjudged_consumers[producer] == 0:
                ready.append(producer)
    placed = set(order)
    return order + [sid for sid in by_id if sid not in placed]  # a cycle cannot be built; never lose one


def _consumers(graph: Graph, stage_id: int) -> list[int]:
    """The stages reading what the stage writes: through its own edges, and for the last stage of a
    ``>(...)``, which writes into its holder's stdout, through the holder's stdout edges too."""
    edges = list(graph.outputs(stage_id))
    holder = graph.stage(stage_id).writes_stdout_of
    if holder is not None:
        edges += graph.outputs_at(holder, 1)
    return [edge.target for edge in edges if isinstance(edge.target, int)]


#: How a consumer may have ended for its producer's broken pipe to be excused (rule 3).
_NOT_ITS_OWN_FAILURE = frozenset({Verdict.OK, Verdict.BROKEN_PIPE, Verdict.IGNORED})


def _verdict(graph: Graph, result: StageResult, judged: dict[int, Verdict], no_fail: bool) -> Verdict:
    if result.returncode == 0:
        return Verdict.OK
    if result.signalled_by_ppipe:
        return Verdict.TERMINATED
    if result.returncode == -signal.SIGPIPE and result.consumer_left:
        return Verdict.BROKEN_PIPE
    if result.output_closed_early and result.returncode is not None:
        consumers = [judged.get(target) for target in _consumers(graph, result.stage.id)]
        if consumers and all(c in _NOT_ITS_OWN_FAILURE for c in consumers):
            return Verdict.BROKEN_PIPE
    if result.stage.may_fail or no_fail:
        return Verdict.IGNORED
    return Verdict.FAILED


def exit_status(stages: Sequence[StageResult], *, stopped_by: StopReason | None = None) -> int:
    """The run's exit status from judged stages (rule 5, after rule 2's overrides)."""
    if stopped_by is not None and stopped_by.exit_status is not None:
        return stopped_by.exit_status
    failed = [s for s in stages if s.verdict is Verdict.FAILED]
    if not failed:
        return ExitStatus.OK
    rightmost = max(failed, key=lambda s: s.stage.id)
    return rightmost.status or ExitStatus.FAILURE


# ---------------------------------------------------------------- shards
#
# From pipelines to the run:
#
# 6. A shard attempt that failed (its pipeline's status is not 0, or its
#    process was killed) is restarted with the same task id while the shard
#    has restarts left (``--max-restarts`` is per shard) and the run is not
#    stopping. An attempt that could not start its pipeline at all (a
#    command missing on that shard) is not restarted: the next would fail
#    the same way.
# 7. A shard's final verdict is its last attempt's: ok, or failed; a shard
#    ppipe stopped (--fail-fast, --timeout, a signal) is ``terminated``.
#    A plain run's one shard has one attempt and no restarts.
# 8. The run's status: 124 after --timeout, 128+N after signal N, else the
#    final status of the lowest-numbered failed shard, else 0. Lowest, not
#    last to fail: shards run side by side, and the status must not depend
#    on which one the scheduler finished first. A run halted because enough
#    shards succeeded (``--halt success=N``) got what it asked for: 0.
# 9. ``--halt`` (GNU parallel's words): once ``fail=N`` shards have finally
#    failed (``fail=P%``: P percent of all the shards, rounded up), or
#    ``success=N`` have succeeded, or ``done=N`` have ended either way, the
#    run starts no new shard; ``now`` also stops those running (they are
#    ``terminated``), ``soon`` lets them finish. Shards never started are
#    ``terminated`` too. ``--fail-fast`` is ``--halt now,fail=1``.


def should_restart(
    exit_status: int | None, attempts: int, max_restarts: int, *, could_start: bool = True, stopping: bool = False
) -> bool:
    """Whether a shard whose latest attempt (its ``attempts``-th) ended with ``exit_status`` runs again (rule 6)."""
    return exit_status != 0 and could_start and not stopping and attempts <= max_restarts


def shard_verdict(exit_status: int | None, *, stopped: bool) -> Verdict:
    """A shard's final verdict from its last attempt's status (rule 7)."""
    if exit_status == 0:
        return Verdict.OK
    return Verdict.TERMINATED if stopped else Verdict.FAILED


def run_exit_status(
    shards: Iterable[tuple[int, Verdict, int | None]],
    *,
    stopped_by: StopReason | None = None,
    halted_on_success: bool = False,
) -> int:
    """The run's status from ``(task id, verdict, final status)`` per shard (rule 8); a plain run has one.

    A signal or a timeout gives its own status; a halt or a reader gone
    leaves it to the shards, but ``--halt ...,success=N`` reached is 0.
    """
    if stopped_by is not None and stopped_by.exit_status is not None:
        return stopped_by.exit_status
    if halted_on_success:
        return ExitStatus.OK
    failed = sorted((task_id, status) for task_id, verdict, status in shards if verdict is Verdict.FAILED)
    if not failed:
        return ExitStatus.OK
    return failed[0][1] or ExitStatus.FAILURE


def plain_run(pipeline: PipelineResult) -> RunResult:
    """A plain run's result: its pipeline as the one attempt of its one shard, the run's status by rules 7 and 8."""
    stopped = pipeline.stopped_by is not None
    out = [e for e in pipeline.edges if e.edge.target == Boundary.STDOUT]
    lines = [e.lines for e in out if e.counted]
    shard = ShardResult(
        task_id=0,
        tasks=1,
        pipeline=pipeline.graph.text,
        attempts=(ShardAttempt(1, None, pipeline.started_at, pipeline.ended_at, result=pipeline),),
        bytes_in=None,
        bytes_out=bytes_into_stdout(out),
        lines_out=None if not lines or None in lines else sum(n for n in lines if n is not None),
        verdict=shard_verdict(pipeline.exit_status, stopped=stopped),
    )
    return RunResult(
        pipeline=pipeline.graph.text,
        shards=(shard,),
        exit_status=run_exit_status([(0, shard.verdict, shard.exit_status)], stopped_by=pipeline.stopped_by),
        started_at=pipeline.started_at,
        ended_at=pipeline.ended_at,
        stopped_by=pipeline.stopped_by,
        stdout=pipeline.stdout,
        timeout=pipeline.timeout,
    )


@dataclasses.dataclass(frozen=True)
class Halt:
    """When a sharded run stops starting shards (rule 9): ``--halt now|soon,fail=N|fail=P%|success=N|done=N``.

    ``count`` is N, or with ``percent`` P (of all the shards, rounded up);
    ``now`` stops the running shards too, ``soon`` lets them finish.
    """

    now: bool
    kind: str  # "fail", "success" or "done"
    count: int
    percent: bool = False

    def threshold(self, total: int) -> int:
        """How many shards of ``total`` the condition needs (at least one)."""
        return max(1, -(-self.count * total // 100)) if self.percent else self.count

    def reached(self, *, failed: int, succeeded: int, total: int) -> bool:
        """Whether ``failed`` and ``succeeded`` final shards (of ``total``) meet the condition."""
        seen = {"fail": failed, "success": succeeded, "done": failed + succeeded}[self.kind]
        return seen >= self.threshold(total)

    def __str__(self) -> str:
        return f"{'now' if self.now else 'soon'},{self.kind}={self.count}{'%' if self.percent else ''}"


#: ``--fail-fast``.
FAIL_FAST = Halt(now=True, kind="fail", count=1)


class HaltWatch:
    """Counts shards' final verdicts toward a ``--halt`` rule (rule 9), whatever ran them: local slots or a cluster.

    ``rule`` is None when the run has none; ``named`` is how the user
    asked for it (``--fail-fast``, ``--halt soon,fail=2``), for messages.
    """

    def __init__(self, rule: Halt | None, total: int, *, named: str) -> None:
        self.rule = rule
        self.total = total
        self.named = named
        self.failed = self.succeeded = 0
        self.reached = False

    def record(self, verdict: Verdict) -> bool:
        """Counts one shard's final verdict; True the one time the rule is then met."""
        self.failed += verdict is Verdict.FAILED
        self.succeeded += verdict is Verdict.OK
        if self.rule is None or self.reached:
            return False
        self.reached = self.rule.reached(failed=self.failed, succeeded=self.succeeded, total=self.total)
        return self.reached

    @property
    def on_success(self) -> bool:
        """Whether the rule met was ``success=N``: the run got what it asked for, and says 0."""
        return self.reached and self.rule is not None and self.rule.kind == "success"

    def said(self, shard: str, verdict: Verdict, *, stopping_the_others: str) -> str:
        """``ppipe: shard 3 failed; stopping the others (--fail-fast)``, or ``...; starting no more (...)``."""
        assert self.rule is not None
        what = stopping_the_others if self.rule.now else "starting no more"
        return f"ppipe: {shard} {'failed' if verdict is Verdict.FAILED else 'ended'}; {what} ({self.named})"


def parse_halt(text: str) -> Halt:
    """``now,fail=1``, ``soon,fail=10%``, ``now,success=1``, ``soon,done=3``; ValueError saying what is wrong."""
    when, _, condition = text.strip().lower().partition(",")
    kind, _, amount = condition.partition("=")
    if when not in ("now", "soon") or kind not in ("fail", "success", "done"):
        raise ValueError("it takes now or soon, then fail=N, fail=P%, success=N or done=N (as now,fail=1)")
    percent = amount.endswith("%")
    digits = amount[:-1] if percent else amount
    if not (digits.isascii() and digits.isdigit()) or int(digits) < 1 or (percent and int(digits) > 100):
        raise ValueError(f"{kind}= takes a whole number of shards from 1, or a percentage from 1% to 100%")
    return Halt(now=when == "now", kind=kind, count=int(digits), percent=percent)
