"""What an ``--on slurm`` run ends with: its tasks' runs merged into one, the lines to print, its status.

The merge is :func:`ppipe.merging.merge_results`, as for ``ppipe report
merge``; what only the submitting ppipe knows is added on top: tasks an
earlier run finished (``--resume``), and a run stopped as a whole (its
``--timeout``, a signal), which decides the status as it does locally.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from ppipe import policy
from ppipe.cluster.remote import RemoteResult, SlurmRun, SlurmSpec
from ppipe.engine.options import RunOptions
from ppipe.merging import merge_results, merge_summary
from ppipe.results import ArrayTask, RunResult, ShardResult, Verdict
from ppipe.shards.plan import ShardPlan
from ppipe.snapshots import RunObserver


@dataclass(frozen=True)
class Outcome:
    """The merged run (its report is :func:`ppipe.report.to_report`'s), the lines for stderr, ppipe's exit status."""

    result: RunResult
    lines: tuple[str, ...]
    exit_status: int


async def run_on_slurm(
    spec: SlurmSpec, plan: ShardPlan, options: RunOptions, observer: RunObserver | None = None
) -> Outcome:
    """Runs ``plan``'s shards as a Slurm job array (:class:`~ppipe.cluster.remote.SlurmRun`) and merges the result.

    The Python API's way to ``--on slurm``: raises
    :class:`~ppipe.cluster.slurm.SlurmError` when Slurm refuses or stops
    answering, and :class:`~ppipe.errors.UsageError` for a job log of
    another run; otherwise the :class:`Outcome` says how the array ended.
    """
    run = SlurmRun(spec, plan, options, observer)
    result = await run.run()
    return outcome(result, frozenset(task.task_id for task in run.tasks if task.skipped))


def outcome(result: RemoteResult, skipped: frozenset[int] = frozenset()) -> Outcome:
    """Merges the result's runs; tasks in ``skipped`` count as finished earlier, not as missing."""
    merged = merge_results(result.reports, tasks=result.tasks) if result.reports else _empty(result)
    shards = tuple(_relabeled_shard(shard, result, skipped) for shard in merged.shards)
    tasks = tuple(_relabeled_task(task, skipped, result.stopped) for task in merged.array_tasks)
    status = policy.run_exit_status(
        ((t.task_id, t.verdict, t.exit_status) for t in tasks),
        stopped_by=result.stopped_by,
        halted_on_success=result.halted_on_success,
    )
    if result.problems and status == 0:
        status = 1  # output that could not be written, a job-log line lost: the run cannot say it did its work
    merged = dataclasses.replace(
        merged,
        shards=shards,
        array_tasks=tasks,
        exit_status=status,
        stopped_by=result.stopped_by,
        run_directory=result.directory,
        stdout=result.stdout,
    )
    said = merge_summary(merged).lines if tasks and status != 0 else ()  # silent when all went well
    if merged.interrupted_by or merged.timed_out:
        why = f"interrupted by {merged.interrupted_by}" if merged.interrupted_by else "timed out"
        said = (f"ppipe: {why}; the array's tasks still queued or running were cancelled (scancel)",)
    return Outcome(merged, (*result.problems, *said), status)


def _relabeled_shard(shard: ShardResult, result: RemoteResult, skipped: frozenset[int]) -> ShardResult:
    """A shard as only the submitter knows it: its output counted here, where it arrived; finished by an earlier
    run, or stopped by this one (terminated, not failed)."""
    if shard.bytes_out is None and shard.task_id in result.bytes_out:
        shard = dataclasses.replace(shard, bytes_out=result.bytes_out[shard.task_id])
    return dataclasses.replace(shard, verdict=_verdict(shard.task_id, shard.verdict, skipped, result.stopped))


def _relabeled_task(task: ArrayTask, skipped: frozenset[int], stopped: frozenset[int]) -> ArrayTask:
    verdict = _verdict(task.task_id, task.verdict, skipped, stopped)
    return dataclasses.replace(
        task, verdict=verdict, exit_status=None if verdict is Verdict.SKIPPED else task.exit_status
    )


def _verdict(task_id: int, verdict: Verdict, skipped: frozenset[int], stopped: frozenset[int]) -> Verdict:
    if task_id in skipped:
        return Verdict.SKIPPED
    return Verdict.TERMINATED if task_id in stopped and verdict is Verdict.FAILED else verdict


def _empty(result: RemoteResult) -> RunResult:
    """The run in which no task ran (all finished before, or the run stopped before any)."""
    tasks = tuple(ArrayTask(i, Verdict.SKIPPED, None, 0, "skipped") for i in range(result.tasks))
    now = time.time()
    return RunResult(result.pipeline, (), 0, now, now, sharded=True, array_tasks=tasks)
