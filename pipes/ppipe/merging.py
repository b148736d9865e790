"""The reports of a job array's tasks, merged into the report of one sharded run.

Each task of a cluster job array (``ppipe --task-id I --tasks N``, or the
scheduler's variables) writes its own ``--report``. Merging combines results,
not reports: each report is read back into the :class:`~ppipe.results.RunResult`
it tells of (:func:`ppipe.report.load_report`), :func:`merge_results` makes
one sharded run of them, and that is written as any run's report. :func:`merge_reports`
makes of them the report a local ``ppipe --fork N`` run would have written
(:func:`ppipe.report.to_report` of a sharded run), so that one script
reads either; every shard and every attempt also names the
``host`` it ran on and the cluster's ``job_id``.

What each task's reports become:

- a plain run (its stages at the top): one shard, whose one attempt is
  that run;
- a sharded run (``--fork M`` inside the task): its shards, whose ids are
  already the array's (``I*M`` to ``I*M+M-1``);
- a run that never started (``error``: bad syntax, a missing command): an
  attempt with that error and status, in each of the task's shards;
- several reports of one task (it was resubmitted): the attempts of one
  shard, in the order they started; the shard ends as its last attempt did;
- no report at all: shards with no attempt, ``failed``, and an ``error``
  saying so. A merged run with a task missing never passes.

The merged run's status follows :func:`ppipe.policy.run_exit_status` over the
tasks (a task's status is its last report's): 0 when every task ended 0,
else the lowest failed task's status (which is its lowest failed shard's).
A task stopped by its own ``--timeout`` (124) or a signal (128+N, ``scancel``)
failed, as a shard stopped by ``--shard-timeout`` does: nothing stopped the
array itself, so the merged report's own ``timed_out`` and
``interrupted_by`` stay false and null.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ppipe import policy
from ppipe.flow import bytes_into_stdout
from ppipe.graph import Boundary
from ppipe.language.parser import substitute_placeholders
from ppipe.report import SCHEMA, BadReport, load_report, read_report, to_report
from ppipe.results import ArrayTask, RunResult, ShardAttempt, ShardResult, Verdict

__all__ = ["MergeError", "MergeSummary", "merge_reports", "merge_results", "merge_summary", "read_reports"]

#: The most shards a merged report holds: each missing one is made, and a report could claim any count.
MOST_SHARDS = 1_000_000


class MergeError(BadReport):
    """Reports that cannot be merged: unreadable, not ppipe's, or not the tasks of one array (status 2)."""


@dataclasses.dataclass(frozen=True)
class MergeSummary:
    """What ``ppipe report merge`` prints and exits with: the failure lines, a tally of the tasks, the status."""

    exit_status: int
    lines: tuple[str, ...]


def read_reports(paths: Sequence[str]) -> list[dict[str, Any]]:
    """The reports in the files at ``paths`` (``-``: stdin), as JSON data, in that order.

    Raises :class:`MergeError` naming the file when one cannot be read, is
    not JSON (a report cut short by a killed task is not; nor is one holding
    ``NaN`` or ``Infinity``), or is not a JSON object
    (:func:`ppipe.report.read_report`).
    """
    try:
        return [read_report(path) for path in paths]
    except BadReport as error:
        raise MergeError(str(error)) from None


def merge_reports(
    reports: Sequence[Mapping[str, Any]], *, tasks: int | None = None, names: Sequence[str] | None = None
) -> dict[str, Any]:
    """The report of one sharded run, from the ``--report`` of each task of a job array (see the module).

    Each report is read back (:func:`ppipe.report.load_report`: one not of
    the schema's shape is refused naming the field), the runs merged by
    :func:`merge_results`, and the merged run's report returned. ``names``
    (the files read, by default "report 1", ...) name the reports in errors.
    Raises :class:`MergeError` (exit status 2).
    """
    named = list(names) if names is not None else [f"report {i + 1}" for i in range(len(reports))]
    if len(named) != len(reports):
        raise MergeError("give one name per report")
    try:
        runs = [load_report(report, name=name) for report, name in zip(reports, named, strict=True)]
    except BadReport as error:
        raise MergeError(str(error)) from None
    return to_report(merge_results(runs, tasks=tasks, names=named))


def merge_results(
    runs: Sequence[RunResult], *, tasks: int | None = None, names: Sequence[str] | None = None
) -> RunResult:
    """One sharded run from the runs of a job array's tasks (see the module).

    ``tasks`` is how many tasks the array had; by default each run's
    ``task.tasks``, which must agree (and agree with ``tasks`` when given).
    A run that was no array task (or failed before it knew which) is taken
    only with ``tasks=1``, as task 0. ``names`` name the runs in errors.

    Raises :class:`MergeError` for no runs, runs of different pipelines or
    arrays, tasks of different shapes (some ``--fork M``, some not), and the
    same run given twice.
    """
    if not runs:
        raise MergeError("no report to merge")
    if tasks is not None and tasks < 1:
        raise MergeError(f"an array has at least one task, not {tasks}")
    named = list(names) if names is not None else [f"report {i + 1}" for i in range(len(runs))]
    entries = [_Task.of(run, name, tasks) for run, name in zip(runs, named, strict=True)]
    count = _agreed_count(entries, tasks)
    _check_one_array(entries, count)
    per_task = _shards_per_task(entries, count)
    by_task: dict[int, list[_Task]] = {i: [] for i in range(count)}
    for entry in sorted(entries, key=lambda e: e.run.started_at):
        by_task[entry.task_id].append(entry)
    pipeline = runs[0].pipeline
    shards = tuple(
        shard
        for task_id, task_runs in by_task.items()
        for shard in _task_shards(pipeline, task_id, task_runs, per_task, count)
    )
    outcomes = tuple(_task_outcome(task_id, task_runs) for task_id, task_runs in by_task.items())
    hosts = {run.host for run in runs}
    return RunResult(
        pipeline=pipeline,
        shards=shards,
        exit_status=policy.run_exit_status([(t.task_id, t.verdict, t.exit_status) for t in outcomes]),
        started_at=min(run.started_at for run in runs),
        ended_at=max(run.ended_at for run in runs),
        sharded=True,
        input_undelivered=sum(run.input_undelivered for run in runs),
        output_error=_joined(entries, "output_error"),
        input_error=_joined(entries, "input_error"),
        host=hosts.pop() if len(hosts) == 1 else None,
        array_tasks=outcomes,
    )


def merge_summary(merged: RunResult | Mapping[str, Any]) -> MergeSummary:
    """The lines to print about a merged run (or its report), and the status to exit with.

    The lines are those a local sharded run prints (a line per failed shard,
    naming its failed stages and their last stderr lines; see
    :func:`ppipe.summary.failure_lines`: their stderr went to the tasks' own
    logs, so it is quoted), then one tally of the tasks:
    ``ppipe: 8 tasks: 7 ok, 1 failed (task 3: exit status 1)``. The status is
    recomputed from the tasks by the policy, so a report edited since its
    merge cannot pass with a task failed or missing.
    """
    from ppipe.summary import failure_lines

    run = load_report(merged) if isinstance(merged, Mapping) else merged
    outcomes = run.array_tasks
    if not outcomes:
        raise MergeError("not a merged report: it has no array_tasks")
    status = policy.run_exit_status([(t.task_id, t.verdict, t.exit_status) for t in outcomes])
    failed = [t for t in outcomes if t.verdict is Verdict.FAILED]
    ok = sum(1 for t in outcomes if t.verdict is Verdict.OK)
    tally = f"ppipe: {len(outcomes)} task{'s' if len(outcomes) != 1 else ''}: {ok} ok"
    if failed:
        tally += f", {len(failed)} failed (" + "; ".join(f"task {t.task_id}: {t.end}" for t in failed) + ")"
    for verdict in (Verdict.TERMINATED, Verdict.SKIPPED):  # stopped by the run, or finished by an earlier one
        if count := sum(1 for t in outcomes if t.verdict is verdict):
            tally += f", {count} {verdict.value}"
    quiet = dataclasses.replace(run, stopped_by=None)  # the caller says how the array stopped
    return MergeSummary(status, (*failure_lines(quiet, listed=None), tally))


# ---------------------------------------------------------------- one task's run


@dataclasses.dataclass(frozen=True)
class _Task:
    """One task's run, and which task of the array it was."""

    name: str
    run: RunResult
    task_id: int
    tasks: int | None  # None: the run does not say (taken only with tasks=1)
    job_id: str | None

    @classmethod
    def of(cls, run: RunResult, name: str, tasks: int | None) -> _Task:
        task = run.task
        if task is None:
            if tasks != 1:
                raise MergeError(
                    f"{name} does not say which task of a job array it was (its task is null): "
                    "merge the reports of --task-id/--tasks runs, or give --tasks 1 for one run's reports"
                )
            return cls(name, run, 0, None, None)
        if not (task.tasks >= 1 and task.task_id < task.tasks):
            raise MergeError(f"{name} is not a {SCHEMA} report: its task is {task.task_id} of {task.tasks}")
        return cls(name, run, task.task_id, task.tasks, task.job_id)

    @property
    def shards(self) -> tuple[ShardResult, ...]:
        """A sharded run's shards; none for a plain run (whose one shard is the run itself)."""
        return tuple(self.run.shards) if self.run.sharded else ()

    def shard(self, shard_id: int) -> ShardResult | None:
        """The run's shard ``shard_id``; None when it has none, or has it twice (the merge then refuses it)."""
        found = [shard for shard in self.shards if shard.task_id == shard_id]
        return found[0] if len(found) == 1 else None


# ---------------------------------------------------------------- the runs together


def _agreed_count(entries: Sequence[_Task], tasks: int | None) -> int:
    """The array's task count: ``tasks``, or the one every run gives."""
    counts = {entry.tasks for entry in entries if entry.tasks is not None}
    if tasks is not None:
        counts.add(tasks)
    if len(counts) > 1:
        said = ", ".join(f"{entry.name}: {entry.tasks}" for entry in entries if entry.tasks is not None)
        given = f" (--tasks {tasks})" if tasks is not None else ""
        raise MergeError(f"the reports are not of one job array: their task counts differ{given} ({said})")
    return counts.pop() if counts else 1


def _check_one_array(entries: Sequence[_Task], count: int) -> None:
    first = entries[0]
    for entry in entries[1:]:
        if entry.run.pipeline != first.run.pipeline:
            raise MergeError(
                f"the reports are of different pipelines: {first.name} ran {json.dumps(first.run.pipeline)}, "
                f"{entry.name} ran {json.dumps(entry.run.pipeline)}"
            )
    seen: dict[RunResult, _Task] = {}
    for entry in entries:
        other = seen.setdefault(entry.run, entry)
        if other is not entry:
            raise MergeError(f"{other.name} and {entry.name} are the same report (task {entry.task_id}) given twice")
    for entry in entries:
        if entry.task_id >= count:
            raise MergeError(f"{entry.name} is of task {entry.task_id}, but the array has {count} tasks")


def _shards_per_task(entries: Sequence[_Task], count: int) -> int:
    """M, when every task ran ``--fork M`` (its shards count ``N*M`` in all); 1 when they ran plain pipelines."""
    shapes: dict[int, str] = {}
    for entry in entries:
        if entry.run.error is not None:
            continue
        total = {s.tasks for s in entry.shards} if entry.shards else {count}
        if len(total) != 1 or next(iter(total)) % count:
            raise MergeError(f"{entry.name} is not a task of an array of {count}: its shards count {sorted(total)}")
        shapes.setdefault(next(iter(total)) // count, entry.name)
    if count * max(shapes, default=1) > MOST_SHARDS:
        raise MergeError(f"an array of {count} tasks of {max(shapes)} shards is more than ppipe merges ({MOST_SHARDS})")
    if len(shapes) > 1:
        said = [f"{name} ran {'one pipeline' if m == 1 else f'--fork {m}'}" for m, name in sorted(shapes.items())]
        raise MergeError(f"the reports are of tasks of different shapes: {', '.join(said[:2])}")
    return next(iter(shapes), 1)


# ---------------------------------------------------------------- one task's shards


def _task_shards(pipeline: str, task_id: int, entries: Sequence[_Task], per_task: int, count: int) -> list[ShardResult]:
    """The shards of task ``task_id``: ids ``task_id*per_task`` on, each with every run's attempts."""
    total = count * per_task
    shards = []
    for shard_id in range(task_id * per_task, (task_id + 1) * per_task):
        filled = substitute_placeholders(pipeline, shard_id, total)
        pieces = [_piece(entry, shard_id, total, filled, per_task) for entry in entries]
        shard = _combined(shard_id, total, filled, pieces)
        shards.append(shard if entries else dataclasses.replace(shard, error=f"no report came from task {task_id}"))
    return shards


def _piece(entry: _Task, shard_id: int, total: int, filled: str, per_task: int) -> ShardResult:
    """What one run tells of one shard (its attempts not yet numbered), each attempt saying where it ran."""
    run, host, job_id = entry.run, entry.run.host, entry.job_id
    if run.error is not None:  # it never started: an attempt with its error and status
        error, status = run.error or "it never started", run.exit_status
        attempt = ShardAttempt(1, None, run.started_at, run.ended_at, None, error, status, host=host, job_id=job_id)
        return ShardResult(shard_id, total, filled, (attempt,), None, None, None, Verdict.FAILED)
    if not run.sharded:  # a plain run: its one pipeline is the attempt
        if per_task != 1:
            raise MergeError(f"{entry.name} ran one pipeline, where the other tasks ran --fork {per_task}")
        attempt = ShardAttempt(1, None, run.started_at, run.ended_at, run.local, host=host, job_id=job_id)
        out = [e for e in run.edges if e.edge.target == Boundary.STDOUT]
        lines_counted = out and all(e.counted and e.lines is not None for e in out)
        return ShardResult(
            shard_id,
            total,
            filled,
            (attempt,),
            bytes_in=bytes_into_stdout(e for e in run.edges if e.edge.source == Boundary.STDIN),
            bytes_out=bytes_into_stdout(out),
            lines_out=sum(e.lines or 0 for e in out) if lines_counted else None,
            verdict=policy.shard_verdict(run.exit_status, stopped=False),
        )
    found = entry.shard(shard_id)
    if found is None:
        raise MergeError(f"{entry.name} (task {entry.task_id}) has no shard {shard_id}, or has it twice")
    return dataclasses.replace(
        found, attempts=tuple(dataclasses.replace(a, host=host, job_id=job_id) for a in found.attempts)
    )


def _combined(shard_id: int, total: int, pipeline: str, pieces: Sequence[ShardResult]) -> ShardResult:
    """One merged shard from the pieces its runs gave, oldest first: its attempts renumbered, its end the last
    piece's, its figures added up over the pieces that had them (as a shard's are over its attempts)."""
    attempts = [a for piece in pieces for a in piece.attempts]
    last = pieces[-1] if pieces else None
    return ShardResult(
        task_id=shard_id,
        tasks=total,
        pipeline=last.pipeline if last is not None else pipeline,
        attempts=tuple(dataclasses.replace(a, number=n) for n, a in enumerate(attempts, 1)),
        bytes_in=_sum(piece.bytes_in for piece in pieces),
        bytes_out=_sum(piece.bytes_out for piece in pieces),
        lines_out=_sum(piece.lines_out for piece in pieces),
        verdict=last.verdict if last is not None else Verdict.FAILED,
    )


def _sum(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


# ---------------------------------------------------------------- the merged run


def _task_outcome(task_id: int, entries: Sequence[_Task]) -> ArrayTask:
    """How a task ended: as its last run says, or failed for want of one."""
    if not entries:
        return ArrayTask(task_id, Verdict.FAILED, None, 0, "no report")
    last = entries[-1].run
    end = f"exit status {last.exit_status}"
    if last.error is not None:
        end += ", never started"
    elif last.timed_out:
        end += ", timed out"
    elif last.interrupted_by:
        end += f", {last.interrupted_by}"
    verdict = Verdict.OK if last.exit_status == 0 else Verdict.FAILED
    return ArrayTask(task_id, verdict, last.exit_status, len(entries), end)


def _joined(entries: Sequence[_Task], field: str) -> str | None:
    """The tasks' ``output_error`` (or ``input_error``), each named by its task; None when none had one."""
    said = [f"task {e.task_id}: {why}" for e in entries if (why := getattr(e.run, field)) is not None]
    return "; ".join(said) or None
