"""The reports of a job array's tasks, merged into the report of one sharded run.

Each task of a cluster job array (``ppipe --task-id I --tasks N``, or the
scheduler's variables) writes its own ``--report``. :func:`merge_reports`
makes of them the report a local ``ppipe --fork N`` run would have written
(``ppipe-report/1``, :func:`ppipe.cli.report.build` for a sharded run), so
that one script reads either; every shard and every attempt also names the
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

import collections
import copy
import dataclasses
import functools
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

from ppipe import __version__, policy
from ppipe.errors import UsageError
from ppipe.language.parser import substitute_placeholders
from ppipe.report_shape import ReportShapeError, check_report
from ppipe.results import REPORT_SCHEMA as SCHEMA
from ppipe.results import Verdict

__all__ = ["MergeError", "MergeSummary", "merge_reports", "merge_summary", "read_reports"]

#: A report bigger than this is not one of ppipe's (a million-shard run's is about 1 GB).
_MOST_BYTES = 1 << 30
#: The most shards a merged report holds: each missing one is made, and a report could claim any count.
MOST_SHARDS = 1_000_000


class MergeError(UsageError):
    """Reports that cannot be merged: unreadable, not ppipe's, or not the tasks of one array (status 2)."""


@dataclasses.dataclass(frozen=True)
class MergeSummary:
    """What ``ppipe report merge`` prints and exits with: the failure lines, a tally of the tasks, the status."""

    exit_status: int
    lines: tuple[str, ...]


def read_reports(paths: Sequence[str]) -> list[dict[str, Any]]:
    """The reports in the files at ``paths`` (``-``: stdin), as JSON data, in that order.

    Raises :class:`MergeError` naming the file when one cannot be read (a
    directory, no permission), is not JSON (a report cut short by a killed
    task is not; nor is one holding ``NaN`` or ``Infinity``, which Python
    alone would read), or is not a JSON object.
    """
    reports = []
    for path in paths:
        try:
            if path == "-":
                text = sys.stdin.read(_MOST_BYTES + 1)
            else:
                with open(path, encoding="utf-8") as handle:
                    text = handle.read(_MOST_BYTES + 1)
        except OSError as error:
            raise MergeError(f"cannot read the report {path}: {error.strerror or error}") from error
        except UnicodeDecodeError as error:
            raise MergeError(f"{path} is not a report: it is not UTF-8 text") from error
        if len(text) > _MOST_BYTES:
            raise MergeError(f"{path} is not a report: it is larger than 1 GiB")
        try:
            data = json.loads(text, parse_constant=_no_constant)
        except (json.JSONDecodeError, RecursionError) as error:
            where = f"at line {error.lineno}, column {error.colno}: " if isinstance(error, json.JSONDecodeError) else ""
            why = error.msg if isinstance(error, json.JSONDecodeError) else "nested too deeply"
            raise MergeError(
                f"{path} is not a JSON report ({where}{why}); was its task killed while writing it?"
            ) from error
        except ValueError as error:  # NaN or Infinity: Python's json reads them, JSON has none
            raise MergeError(f"{path} is not a JSON report: {error}") from error
        if not isinstance(data, dict):
            raise MergeError(f"{path} is not a report: it holds a JSON {type(data).__name__}, not an object")
        reports.append(data)
    return reports


def _no_constant(name: str) -> object:
    raise ValueError(f"it holds {name}, which JSON does not allow")


def merge_reports(
    reports: Sequence[Mapping[str, Any]], *, tasks: int | None = None, names: Sequence[str] | None = None
) -> dict[str, Any]:
    """The report of one sharded run, from the ``--report`` of each task of a job array (see the module).

    ``tasks`` is how many tasks the array had; by default each report's
    ``task.tasks``, which must agree (and agree with ``tasks`` when given).
    A report without ``task`` (a run that was no array task, or failed
    before it knew which) is taken only with ``tasks=1``, as task 0.
    ``names`` (the files read, by default "report 1", ...) name the
    reports in errors.

    Raises :class:`MergeError` (a :class:`~ppipe.errors.UsageError`, exit
    status 2) for no reports, a report that is not ``ppipe-report/1`` or
    not of its shape (:func:`ppipe.report_shape.check_report`: a field
    missing or of the wrong type, a status outside 0-255, NaN or Infinity),
    reports of different pipelines or arrays, tasks of different shapes
    (some ``--fork M``, some not), and the same report given twice.
    """
    if not reports:
        raise MergeError("no report to merge")
    if tasks is not None and tasks < 1:
        raise MergeError(f"an array has at least one task, not {tasks}")
    named = list(names) if names is not None else [f"report {i + 1}" for i in range(len(reports))]
    if len(named) != len(reports):
        raise MergeError("give one name per report")
    runs = [_Report.of(report, name, tasks) for report, name in zip(reports, named, strict=True)]
    count = _agreed_count(runs, tasks)
    _check_one_array(runs, count)
    per_task = _shards_per_task(runs, count)
    by_task: dict[int, list[_Report]] = {i: [] for i in range(count)}
    for run in sorted(runs, key=lambda r: (r.started_at is not None, r.started_at or 0.0)):
        by_task[run.task_id].append(run)
    pipeline = runs[0].data["pipeline"]
    shards = [
        shard
        for task_id, task_runs in by_task.items()
        for shard in _task_shards(pipeline, task_id, task_runs, per_task, count)
    ]
    outcomes = [_task_outcome(task_id, task_runs) for task_id, task_runs in by_task.items()]
    return _merged(pipeline, runs, shards, outcomes)


def merge_summary(merged: Mapping[str, Any]) -> MergeSummary:
    """The lines to print about a merged report, and the status to exit with.

    The lines are those a local sharded run prints (a line per failed shard,
    naming its failed stages and their last stderr lines; see
    :func:`ppipe.summary.report_lines`), then one tally of the tasks:
    ``ppipe: 8 tasks: 7 ok, 1 failed (task 3: exit status 1)``. The status is
    recomputed from the tasks by the policy, so a report edited since its
    merge cannot pass with a task failed or missing.
    """
    from ppipe.summary import report_lines

    outcomes = merged.get("array_tasks")
    if not isinstance(outcomes, list) or not outcomes:
        raise MergeError("not a merged report: it has no array_tasks")
    status = policy.run_exit_status(
        [(t["task_id"], Verdict(t["verdict"]), t["exit_status"]) for t in outcomes],
    )
    failed = [t for t in outcomes if t["verdict"] == Verdict.FAILED.value]
    ok = sum(1 for t in outcomes if t["verdict"] == Verdict.OK.value)
    tally = f"ppipe: {len(outcomes)} task{'s' if len(outcomes) != 1 else ''}: {ok} ok"
    if failed:
        tally += f", {len(failed)} failed (" + "; ".join(f"task {t['task_id']}: {t['end']}" for t in failed) + ")"
    for verdict in (Verdict.TERMINATED, Verdict.SKIPPED):  # stopped by the run, or finished by an earlier one
        if count := sum(1 for t in outcomes if t["verdict"] == verdict.value):
            tally += f", {count} {verdict.value}"
    return MergeSummary(status, (*report_lines(merged), tally))


# ---------------------------------------------------------------- reading one report


@dataclasses.dataclass(frozen=True)
class _Report:
    """One task's report, checked: which task it was, and what kind of run it tells of."""

    name: str
    data: Mapping[str, Any]
    task_id: int
    tasks: int | None  # None: the report does not say (taken only with tasks=1)
    host: str | None
    job_id: str | None
    started_at: float | None

    @classmethod
    def of(cls, data: Mapping[str, Any], name: str, tasks: int | None) -> _Report:
        if not isinstance(data, Mapping):
            raise MergeError(f"{name} is not a report: not a JSON object")
        schema = data.get("schema")
        if schema != SCHEMA:
            raise MergeError(f"{name} is not a {SCHEMA} report (its schema is {json.dumps(schema)})")
        try:
            check_report(data)
        except ReportShapeError as error:
            raise MergeError(f"{name} is not a {SCHEMA} report: {error}") from None
        task = data.get("task")
        if task is None:
            if tasks != 1:
                raise MergeError(
                    f"{name} does not say which task of a job array it was (its task is null): "
                    "merge the reports of --task-id/--tasks runs, or give --tasks 1 for one run's reports"
                )
            task_id, count, job_id = 0, None, None
        else:
            task_id, count, job_id = _task_fields(task, name)
        started = data.get("started_at")
        host = data.get("host")
        return cls(
            name=name,
            data=data,
            task_id=task_id,
            tasks=count,
            host=host if isinstance(host, str) else None,
            job_id=job_id,
            started_at=float(started) if _is_number(started) else None,
        )

    @property
    def error(self) -> Mapping[str, Any] | None:
        """``{"message", "status"}`` when the task's run never started."""
        error = self.data.get("error")
        return error if isinstance(error, Mapping) else None

    @property
    def shards(self) -> list[Mapping[str, Any]]:
        return list(self.data["shards"])  # of their shape: see check_report

    @functools.cached_property
    def by_shard(self) -> dict[int, Mapping[str, Any]]:
        """The report's shards by id; a shard reported twice is left out (the merge then refuses it)."""
        times = collections.Counter(s["task_id"] for s in self.shards)
        return {s["task_id"]: s for s in self.shards if times[s["task_id"]] == 1}

    @property
    def status(self) -> int:
        status = self.error["status"] if self.error is not None else self.data.get("exit_status")
        if not isinstance(status, int) or isinstance(status, bool):
            raise MergeError(f"{self.name} is not a {SCHEMA} report: it has no exit status")
        return status


def _task_fields(task: object, name: str) -> tuple[int, int, str | None]:
    if not isinstance(task, Mapping):
        raise MergeError(f"{name} is not a {SCHEMA} report: its task is not an object")
    task_id, count, job_id = task.get("task_id"), task.get("tasks"), task.get("job_id")
    if not (_is_count(task_id) and _is_count(count) and count >= 1 and task_id < count):
        raise MergeError(f"{name} is not a {SCHEMA} report: its task is {json.dumps(task)}")
    return task_id, count, str(job_id) if job_id is not None else None


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# ---------------------------------------------------------------- the reports together


def _agreed_count(runs: Sequence[_Report], tasks: int | None) -> int:
    """The array's task count: ``tasks``, or the one every report gives."""
    counts = {run.tasks for run in runs if run.tasks is not None}
    if tasks is not None:
        counts.add(tasks)
    if len(counts) > 1:
        said = ", ".join(f"{run.name}: {run.tasks}" for run in runs if run.tasks is not None)
        given = f" (--tasks {tasks})" if tasks is not None else ""
        raise MergeError(f"the reports are not of one job array: their task counts differ{given} ({said})")
    return counts.pop() if counts else 1


def _check_one_array(runs: Sequence[_Report], count: int) -> None:
    first = runs[0]
    for run in runs[1:]:
        if run.data["pipeline"] != first.data["pipeline"]:
            raise MergeError(
                f"the reports are of different pipelines: {first.name} ran {json.dumps(first.data['pipeline'])}, "
                f"{run.name} ran {json.dumps(run.data['pipeline'])}"
            )
    seen: dict[str, _Report] = {}
    for run in runs:
        other = seen.setdefault(json.dumps(run.data, sort_keys=True), run)
        if other is not run:
            raise MergeError(f"{other.name} and {run.name} are the same report (task {run.task_id}) given twice")
    for run in runs:
        if run.task_id >= count:
            raise MergeError(f"{run.name} is of task {run.task_id}, but the array has {count} tasks")


def _shards_per_task(runs: Sequence[_Report], count: int) -> int:
    """M, when every task ran ``--fork M`` (its shards count ``N*M`` in all); 1 when they ran plain pipelines."""
    shapes: dict[int, str] = {}
    for run in runs:
        if run.error is not None:
            continue
        shards = run.shards
        total = {s["tasks"] for s in shards} if shards else {count}
        if len(total) != 1 or next(iter(total)) % count:
            raise MergeError(f"{run.name} is not a task of an array of {count}: its shards count {sorted(total)}")
        shapes.setdefault(next(iter(total)) // count, run.name)
    if count * max(shapes, default=1) > MOST_SHARDS:
        raise MergeError(f"an array of {count} tasks of {max(shapes)} shards is more than ppipe merges ({MOST_SHARDS})")
    if len(shapes) > 1:
        said = [f"{name} ran {'one pipeline' if m == 1 else f'--fork {m}'}" for m, name in sorted(shapes.items())]
        raise MergeError(f"the reports are of tasks of different shapes: {', '.join(said[:2])}")
    return next(iter(shapes), 1)


# ---------------------------------------------------------------- one task's shards


def _task_shards(
    pipeline: str, task_id: int, runs: Sequence[_Report], per_task: int, count: int
) -> list[dict[str, Any]]:
    """The shards of task ``task_id``: ids ``task_id*per_task`` on, each with every report's attempts."""
    total = count * per_task
    shards = []
    for shard_id in range(task_id * per_task, (task_id + 1) * per_task):
        pieces = [_piece(run, shard_id, per_task) for run in runs]
        shard = _combined(shard_id, total, substitute_placeholders(pipeline, shard_id, total), pieces)
        if not runs:
            shard["error"] = f"no report came from task {task_id}"
        shards.append(shard)
    return shards


def _piece(run: _Report, shard_id: int, per_task: int) -> dict[str, Any]:
    """What one report tells of one shard, in a shard's fields (its attempts not yet numbered)."""
    error = run.error
    if error is not None:
        attempt = _attempt(run, run.status, error=str(error.get("message") or "it never started"))
        return _shard_fields(Verdict.FAILED, run.status, [attempt])
    shards = run.shards
    if not shards:  # a plain run: its one pipeline is the attempt
        if per_task != 1:
            raise MergeError(f"{run.name} ran one pipeline, where the other tasks ran --fork {per_task}")
        attempt = _attempt(run, run.status, pipeline=run.data)
        verdict = policy.shard_verdict(run.status, stopped=False)
        edges = [e for e in run.data.get("edges") or [] if isinstance(e, Mapping)]
        bytes_in = _counted(e for e in edges if e.get("from") == "stdin")
        out = [e for e in edges if e.get("to") == "stdout"]
        lines_out = _counted(out, "lines") if out else None
        return _shard_fields(verdict, run.status, [attempt], bytes_in, _counted(out), lines_out)
    found = run.by_shard.get(shard_id)
    if found is None:
        raise MergeError(f"{run.name} (task {run.task_id}) has no shard {shard_id}, or has it twice")
    shard = copy.deepcopy(dict(found))
    shard["attempts"] = [{**a, "host": run.host, "job_id": run.job_id} for a in shard["attempts"]]
    return shard


def _attempt(
    run: _Report, status: int, *, error: str | None = None, pipeline: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A task's run as a shard attempt (as :func:`ppipe.cli.report.build` writes one)."""
    data = pipeline or {}
    return {
        "attempt": 1,
        "pid": None,
        "started_at": run.started_at,
        "ended_at": run.data.get("ended_at"),
        "exit_status": status,
        "error": error,
        "timed_out": bool(data.get("timed_out", False)),
        "interrupted_by": data.get("interrupted_by"),
        "stages": copy.deepcopy(data.get("stages") or []),
        "bottleneck": data.get("bottleneck"),
        "edges": copy.deepcopy(data.get("edges") or []),
        "host": run.host,
        "job_id": run.job_id,
    }


def _counted(edges: Any, field: str = "bytes") -> int | None:
    """The sum of ``field`` over ``edges``; None when one was handed over, not counted (or did not count it)."""
    total = 0
    for edge in edges:
        value = edge.get(field)
        if not edge.get("counted") or not _is_count(value):
            return None
        total += value
    return total


def _shard_fields(
    verdict: Verdict, status: int, attempts: list[dict[str, Any]], *figures: int | None
) -> dict[str, Any]:
    """A shard's fields one report gives: how it ended, its attempts, its ``bytes_in``, ``bytes_out``, ``lines_out``."""
    fields = dict(zip(("bytes_in", "bytes_out", "lines_out"), figures or (None, None, None), strict=True))
    return {"verdict": verdict.value, "exit_status": status, "attempts": attempts, **fields}


def _combined(shard_id: int, total: int, pipeline: str, pieces: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One merged shard from the pieces its reports gave, oldest first: its attempts renumbered, its end the
    last piece's, its figures added up over the pieces that had them (as a shard's are over its attempts)."""
    attempts = [a for piece in pieces for a in piece["attempts"]]
    for number, attempt in enumerate(attempts, 1):
        attempt["attempt"] = number
        for stage in attempt.get("stages") or []:
            if isinstance(stage, dict):
                stage["restarts"] = number - 1
    last = pieces[-1] if pieces else None
    verdict = last["verdict"] if last is not None else Verdict.FAILED.value
    return {
        "task_id": shard_id,
        "task_num": shard_id + 1,
        "tasks": total,
        "pipeline": last.get("pipeline", pipeline) if last is not None else pipeline,
        "verdict": verdict,
        "failed": verdict == Verdict.FAILED.value,
        "exit_status": last["exit_status"] if last is not None else None,
        "restarts": max(0, len(attempts) - 1),
        **{field: _sum(piece.get(field) for piece in pieces) for field in ("bytes_in", "bytes_out", "lines_out")},
        "host": attempts[-1]["host"] if attempts else None,
        "job_id": attempts[-1]["job_id"] if attempts else None,
        "error": None,
        "attempts": attempts,
    }


def _sum(values: Any) -> int | None:
    known = [v for v in values if _is_count(v)]
    return sum(known) if known else None


# ---------------------------------------------------------------- the merged run


def _task_outcome(task_id: int, runs: Sequence[_Report]) -> dict[str, Any]:
    """How a task ended: as its last report says, or failed for want of one."""
    if not runs:
        return {"task_id": task_id, "verdict": "failed", "exit_status": None, "reports": 0, "end": "no report"}
    last = runs[-1]
    status = last.status
    end = f"exit status {status}"
    if last.error is not None:
        end += ", never started"
    elif last.data.get("timed_out"):
        end += ", timed out"
    elif last.data.get("interrupted_by"):
        end += f", {last.data['interrupted_by']}"
    verdict = Verdict.OK.value if status == 0 else Verdict.FAILED.value
    return {"task_id": task_id, "verdict": verdict, "exit_status": status, "reports": len(runs), "end": end}


def _merged(
    pipeline: str, runs: Sequence[_Report], shards: list[dict[str, Any]], outcomes: list[dict[str, Any]]
) -> dict[str, Any]:
    starts = [r.started_at for r in runs if r.started_at is not None]
    ends = [r.data["ended_at"] for r in runs if _is_number(r.data.get("ended_at"))]
    started, ended = (min(starts) if starts else None), (max(ends) if ends else None)
    hosts = {r.host for r in runs}
    status = policy.run_exit_status(
        [(t["task_id"], Verdict(t["verdict"]), t["exit_status"]) for t in outcomes],
    )
    return {
        "schema": SCHEMA,
        "ppipe_version": __version__,
        "pipeline": pipeline,
        "host": hosts.pop() if len(hosts) == 1 else None,
        "task": None,
        "started_at": started,
        "ended_at": ended,
        "duration": round(ended - started, 6) if started is not None and ended is not None else None,
        "exit_status": status,
        "timed_out": False,
        "interrupted_by": None,
        "error": None,
        "stages": [],
        "bottleneck": None,
        "edges": [],
        "shards": shards,
        "input_undelivered": sum(_sum([r.data.get("input_undelivered")]) or 0 for r in runs),
        "output_error": _joined(runs, "output_error"),
        "input_error": _joined(runs, "input_error"),
        "array_tasks": outcomes,
    }


def _joined(runs: Sequence[_Report], field: str) -> str | None:
    """The tasks' ``output_error`` (or ``input_error``), each named by its task; None when none had one."""
    said = [f"task {r.task_id}: {r.data[field]}" for r in runs if isinstance(r.data.get(field), str)]
    return "; ".join(said) or None
