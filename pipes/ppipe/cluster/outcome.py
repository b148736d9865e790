"""What an ``--on slurm`` run ends with: its tasks' reports merged into one, the lines to print, its status.

The merge is :func:`ppipe.merging.merge_reports`, as for ``ppipe report
merge``; what only the submitting ppipe knows is added on top: tasks an
earlier run finished (``--resume``), and a run stopped as a whole (its
``--timeout``, a signal), which decides the status as it does locally.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ppipe import policy
from ppipe.cluster.remote import RemoteResult, SlurmRun, SlurmSpec
from ppipe.merging import merge_reports, merge_summary
from ppipe.results import REPORT_SCHEMA, Verdict
from ppipe.shards.plan import ShardPlan
from ppipe.snapshots import RunObserver


@dataclass(frozen=True)
class Outcome:
    """The merged report, the lines for stderr, and ppipe's exit status."""

    report: dict[str, Any]
    lines: tuple[str, ...]
    exit_status: int
    #: The signal that stopped the run (``SIGINT``...), which the command line raises again.
    interrupted_by: str | None = None


async def run_on_slurm(spec: SlurmSpec, plan: ShardPlan, observer: RunObserver | None = None) -> Outcome:
    """Runs ``plan``'s shards as a Slurm job array (:class:`~ppipe.cluster.remote.SlurmRun`) and merges the result.

    The Python API's way to ``--on slurm``: raises
    :class:`~ppipe.cluster.slurm.SlurmError` when Slurm refuses or stops
    answering, and :class:`~ppipe.errors.UsageError` for a job log of
    another run; otherwise the :class:`Outcome` says how the array ended.
    """
    run = SlurmRun(spec, plan, observer)
    result = await run.run()
    return outcome(result, frozenset(task.task_id for task in run.tasks if task.skipped))


def outcome(result: RemoteResult, skipped: frozenset[int] = frozenset()) -> Outcome:
    """Merges the result's reports; tasks in ``skipped`` count as finished earlier, not as missing."""
    report = merge_reports(result.reports, tasks=result.tasks) if result.reports else _empty(result)
    for shard in report.get("shards", []):
        if shard.get("bytes_out") is None and shard.get("task_id") in result.bytes_out:
            shard["bytes_out"] = result.bytes_out[shard["task_id"]]  # counted here, where it arrived
    tasks = report.get("array_tasks", [])
    for entry in (*report.get("shards", []), *tasks):
        _relabel(entry, skipped, result.stopped)
    status = policy.run_exit_status(
        [(t["task_id"], Verdict(t["verdict"]), t["exit_status"]) for t in tasks],
        timed_out=result.timed_out,
        interrupted_by=result.interrupted_by,
        halted_on_success=result.halted_on_success,
    )
    if result.problems and status == 0:
        status = 1  # output that could not be written, a job-log line lost: the run cannot say it did its work
    stopped_by = result.interrupted_by.name if result.interrupted_by else None
    report.update(exit_status=status, timed_out=result.timed_out, interrupted_by=stopped_by)
    report["run_directory"] = result.directory
    said = merge_summary(report).lines if tasks and status != 0 else ()  # silent when all went well
    why = f"interrupted by {stopped_by}" if stopped_by else "timed out" if result.timed_out else ""
    if why:
        said = (f"ppipe: {why}; the array's tasks still queued or running were cancelled (scancel)",)
    return Outcome(report, (*result.problems, *said), status, stopped_by)


def _relabel(entry: dict[str, Any], skipped: frozenset[int], stopped: frozenset[int]) -> None:
    """A shard's or task's verdict as only the submitter knows it: finished by an earlier run, or stopped by this
    one (terminated, not failed)."""
    if entry.get("task_id") in skipped:
        entry.update(verdict=Verdict.SKIPPED.value, exit_status=None)
        if "failed" in entry:
            entry["failed"] = False
    elif entry.get("task_id") in stopped and entry.get("verdict") == Verdict.FAILED.value:
        entry["verdict"] = Verdict.TERMINATED.value
        if "failed" in entry:
            entry["failed"] = False


def _empty(result: RemoteResult) -> dict[str, Any]:
    """The report of a run in which no task ran (all finished before, or the run stopped before any)."""
    tasks = [
        {"task_id": i, "verdict": Verdict.SKIPPED.value, "exit_status": None, "end": "skipped"}
        for i in range(result.tasks)
    ]
    return {"schema": REPORT_SCHEMA, "shards": [], "array_tasks": tasks, "stages": [], "edges": [], "error": None}
