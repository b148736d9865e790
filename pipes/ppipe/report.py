"""The JSON run report: a :class:`~ppipe.results.RunResult` as the report's data, and a report back as one.

:func:`to_report` gives what ``--report`` writes (and ``ppipe report merge``,
and ``--on slurm``), :func:`load_report` reads a report (a file, or its data)
back into the result it was written from. The round trip is exact for every
field the report carries; those it does not (``docs/report.md`` lists them)
come back as their defaults. Its shape is ``report.schema.json``, shipped
beside this module: a report read back is checked against it first
(:mod:`ppipe.report_shape`), so that one of the wrong shape is refused with
one line naming the field.

A plain run's pipeline is at the top (``stages``, ``edges``) and its
``shards`` is empty; a sharded run has every shard's every attempt, each
with its own stages and edges. Figures derived from the result (a stage's
``status``, ``duration``, ``bytes_in``, ``held``; a shard's ``restarts``;
``bottleneck``) are written for readers and recomputed when read back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Mapping
from typing import Any

from ppipe import __version__
from ppipe.errors import UsageError
from ppipe.flow import EdgeResult, StageFlow
from ppipe.graph import Boundary, Edge, Graph, Node, Redirect, RedirectOp, Stage
from ppipe.identity import TaskIdentity
from ppipe.policy import plain_run
from ppipe.report_shape import ReportShapeError, check_report, shown
from ppipe.results import ArrayTask, PipelineResult, RunResult, ShardAttempt, ShardResult, StageResult, Verdict
from ppipe.stops import StopKind, StopReason

__all__ = ["SCHEMA", "BadReport", "load_report", "read_report", "to_report", "unstarted"]

#: The ``schema`` of every run report; a new number would mean an incompatible change (fields may be added).
SCHEMA = "ppipe-report/2"
#: A report bigger than this is not one of ppipe's (a million-shard run's is about 1 GB).
_MOST_BYTES = 1 << 30


class BadReport(UsageError):
    """A report that cannot be read back: unreadable, not JSON, not ppipe's, or not of its shape (status 2)."""


# ---------------------------------------------------------------- writing


def to_report(result: RunResult) -> dict[str, Any]:
    """The report of ``result``, as JSON-ready data (what ``--report`` writes)."""
    local = result.local
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "ppipe_version": __version__,
        "pipeline": result.pipeline,
        "host": result.host,
        "task": None if result.task is None else _task(result.task),
        "started_at": result.started_at,
        "ended_at": result.ended_at,
        "duration": _rounded(result.ended_at - result.started_at),
        "exit_status": result.exit_status,
        "timed_out": result.timed_out,
        "interrupted_by": result.interrupted_by,
        "stopped_by": None if result.stopped_by is None else result.stopped_by.kind.value,
        "timeout": result.timeout,
        "error": None if result.error is None else {"message": result.error, "status": result.exit_status},
        "sharded": result.sharded,
        **_pipeline(local, figures=result.error is None),
        "io_error": result.io_error,
        "shards": [] if local is not None else [_shard(shard) for shard in result.shards],
        "array_tasks": [dataclasses.asdict(task) | {"verdict": task.verdict.value} for task in result.array_tasks],
        "run_directory": result.run_directory,
    }
    if local is None:
        report.update(
            input_undelivered=result.input_undelivered,
            output_error=result.output_error,
            input_error=result.input_error,
        )
    return report


def _task(task: TaskIdentity) -> dict[str, Any]:
    return {"task_id": task.task_id, "tasks": task.tasks, "source": task.source, "job_id": task.job_id}


def _pipeline(result: PipelineResult | None, *, restarts: int = 0, figures: bool = True) -> dict[str, Any]:
    """A pipeline's stages, bottleneck and edges; empty where there is none. ``figures`` False: a pipeline that
    never started, whose stages' figures are all null."""
    if result is None:
        return {"stages": [], "bottleneck": None, "edges": []}
    return {
        "stages": [_stage(s, result.flow(s.stage.id) if figures else None, restarts) for s in result.stages],
        "bottleneck": result.bottleneck,
        "edges": [
            {
                "from": _node(e.edge.source),
                "to": _node(e.edge.target),
                "with_stderr": e.edge.with_stderr,
                "from_fd": e.edge.source_fd,
                "to_fd": e.edge.target_fd,
                "counted": e.counted,
                "bytes": e.bytes,
                "lines": e.lines,
                "closed_early": e.closed_early,
                "waited_on_producer": e.waited_on_producer,
                "waited_on_consumer": e.waited_on_consumer,
            }
            for e in result.edges
        ],
    }


def _stage(result: StageResult, flow: StageFlow | None, restarts: int) -> dict[str, Any]:
    stage = result.stage
    return {
        "id": stage.id,
        "command": stage.command,
        "argv": list(stage.argv),
        "env": dict(stage.env),
        "redirects": [str(r) for r in stage.redirects],
        "may_fail": stage.may_fail,
        "reads_stdin_of": stage.reads_stdin_of,
        "writes_stdout_of": stage.writes_stdout_of,
        "pid": result.pid,
        "started_at": result.started_at,
        "ended_at": result.ended_at,
        "duration": _rounded(result.duration),
        "status": result.status,
        "signal": result.signal,
        "verdict": result.verdict.value,
        "failed": result.failed,
        "error": result.error,
        "restarts": restarts,
        "stderr_tail": list(result.stderr_tail),
        **_figures(flow),
    }


def _figures(flow: StageFlow | None) -> dict[str, Any]:
    """A stage's row of the view for the whole run; all null for a stage of a run that never started."""
    if flow is None:
        return dict.fromkeys(("bytes_in", "lines_in", "bytes_out", "lines_out", "ratio", "held"))
    return {
        "bytes_in": flow.bytes_in,
        "lines_in": flow.lines_in,
        "bytes_out": flow.bytes_out,
        "lines_out": flow.lines_out,
        "ratio": _rounded(flow.ratio),
        "held": _rounded(flow.held),
    }


def _shard(shard: ShardResult) -> dict[str, Any]:
    return {
        "task_id": shard.task_id,
        "task_num": shard.task_id + 1,
        "tasks": shard.tasks,
        "pipeline": shard.pipeline,
        "verdict": shard.verdict.value,
        "failed": shard.failed,
        "exit_status": shard.exit_status,
        "restarts": shard.restarts,
        "bytes_in": shard.bytes_in,
        "bytes_out": shard.bytes_out,
        "lines_out": shard.lines_out,
        "host": shard.host,
        "job_id": shard.job_id,
        "error": shard.error,
        "skipped_for": shard.skipped_for,
        "attempts": [_attempt(attempt) for attempt in shard.attempts],
    }


def _attempt(attempt: ShardAttempt) -> dict[str, Any]:
    result = attempt.result
    return {
        "attempt": attempt.number,
        "pid": attempt.pid,
        "slot": attempt.slot,
        "started_at": attempt.started_at,
        "ended_at": attempt.ended_at,
        "exit_status": attempt.exit_status,
        "error": attempt.error,
        "error_status": attempt.error_status,
        "wait_status": attempt.wait_status,
        "host": attempt.host,
        "job_id": attempt.job_id,
        "timed_out": result is not None and result.timed_out,
        "interrupted_by": None if result is None else result.interrupted_by,
        **_pipeline(result, restarts=attempt.number - 1),
        "result": None if result is None else {field: getattr(result, field) for field in _PIPELINE_FIELDS},
    }


#: An attempt's pipeline's own fields, beside its stages and edges (its times are not quite the attempt's).
_PIPELINE_FIELDS = ("started_at", "ended_at", "exit_status", "timeout", "io_error")


def _rounded(value: float | None) -> float | None:
    """Seconds (or a ratio) to the microsecond, for figures derived from others."""
    return None if value is None else round(value, 6)


def _node(node: Node) -> int | str:
    return node.value if isinstance(node, Boundary) else node


def unstarted(
    text: str,
    error: str,
    status: int,
    graph: Graph | None = None,
    *,
    at: float | None = None,
    ended_at: float | None = None,
    timed_out: bool = False,
    **fields: Any,
) -> RunResult:
    """The result of a run that never started (bad syntax, a command not found), as its report tells it.

    ``error`` and ``status`` say why and how it ended; ``graph``, when it was
    parsed, gives its stages (never run, their figures null); ``at`` is when
    (now by default), ``ended_at`` when it was known to have ended (``at``).
    ``fields`` are :class:`RunResult`'s others (``host``, ``task``).
    """
    started = time.time() if at is None else at
    ended = started if ended_at is None else ended_at
    stages = tuple(StageResult(stage) for stage in graph or ())
    stopped_by = StopReason.timeout(fields.get("timeout")) if timed_out else None
    pipeline = PipelineResult(graph or Graph(text, ()), stages, (), status, started, ended, stopped_by)
    return dataclasses.replace(plain_run(pipeline), exit_status=status, error=error, **fields)


# ---------------------------------------------------------------- reading


def read_report(path: str) -> dict[str, Any]:
    """The JSON object in the file at ``path`` (``-``: stdin), read strictly: JSON has no NaN or Infinity.

    Raises :class:`BadReport` naming the file when it cannot be read (a
    directory, no permission), is not JSON (a report cut short by a killed
    task is not), or is not a JSON object.
    """
    try:
        if path == "-":
            text = sys.stdin.read(_MOST_BYTES + 1)
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read(_MOST_BYTES + 1)
    except OSError as error:
        raise BadReport(f"cannot read the report {path}: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise BadReport(f"{path} is not a report: it is not UTF-8 text") from error
    if len(text) > _MOST_BYTES:
        raise BadReport(f"{path} is not a report: it is larger than 1 GiB")
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except (json.JSONDecodeError, RecursionError) as error:
        where = f"at line {error.lineno}, column {error.colno}: " if isinstance(error, json.JSONDecodeError) else ""
        why = error.msg if isinstance(error, json.JSONDecodeError) else "nested too deeply"
        raise BadReport(f"{path} is not a JSON report ({where}{why}); was its task killed while writing it?") from error
    except ValueError as error:  # NaN or Infinity: Python's json reads them, JSON has none
        raise BadReport(f"{path} is not a JSON report: {error}") from error
    if not isinstance(data, dict):
        raise BadReport(f"{path} is not a report: it holds a JSON {type(data).__name__}, not an object")
    return data


def _no_constant(name: str) -> object:
    raise ValueError(f"it holds {name}, which JSON does not allow")


def load_report(source: str | os.PathLike[str] | Mapping[str, Any], *, name: str | None = None) -> RunResult:
    """The run a report tells of: a file's path (``-``: stdin) or the report's data.

    Raises :class:`BadReport` (exit status 2) with one line naming the
    report (``name``, by default its path) and the first field found wrong.
    Reports of an earlier ppipe, lacking fields added since, are read as
    their fields allow (see ``docs/report.md``).
    """
    if isinstance(source, Mapping):
        data, name = source, name or "the report"
    else:
        data = read_report(os.fspath(source))
        name = name or os.fspath(source)
    if data.get("schema") != SCHEMA:
        raise BadReport(f"{name} is not a {SCHEMA} report{_other_schema(data.get('schema'))}")
    try:
        check_report(data)
    except ReportShapeError as error:
        raise BadReport(f"{name} is not a {SCHEMA} report: {error}") from None
    return _run(data)


def _other_schema(schema: object) -> str:
    """What a report's ``schema`` that is not ours says: a newer or older ppipe's report, or not ppipe's at all."""
    match = re.fullmatch(r"ppipe-report/([0-9]{1,9})", schema) if isinstance(schema, str) else None
    if match is None or int(match[1]) == _VERSION:
        return f" (its schema is {shown(schema)})"
    age = "a newer" if int(match[1]) > _VERSION else "an older"
    return f": it is a {schema} report, from {age} ppipe than this one ({__version__})"


#: The number in :data:`SCHEMA`, which a report of another ppipe is compared with.
_VERSION = int(SCHEMA.rpartition("/")[2])


def _run(data: Mapping[str, Any]) -> RunResult:
    task, error = data["task"], data["error"]
    fields: dict[str, Any] = {
        "host": data["host"],
        "task": task and TaskIdentity(task["task_id"], task["tasks"], task["source"], task["job_id"]),
        "error": error and error["message"],
        "array_tasks": tuple(
            ArrayTask(t["task_id"], Verdict(t["verdict"]), t["exit_status"], t["reports"], t["end"])
            for t in data.get("array_tasks", ())
        ),
        "run_directory": data.get("run_directory"),
    }
    text, started, ended, status = data["pipeline"], data["started_at"], data["ended_at"], data["exit_status"]
    if not data.get("sharded", bool(data["shards"]) or "input_undelivered" in data):
        own = {"started_at": started, "ended_at": ended, "exit_status": status}
        pipeline = _pipeline_result(
            data, text, {**own, "timeout": data.get("timeout"), "io_error": data.get("io_error")}
        )
        return dataclasses.replace(plain_run(pipeline), exit_status=status, **fields)
    return RunResult(
        pipeline=text,
        shards=tuple(_shard_result(shard, text) for shard in data["shards"]),
        exit_status=status,
        started_at=started,
        ended_at=ended,
        sharded=True,
        stopped_by=_stop(data, data.get("timeout")),
        timeout=data.get("timeout"),
        input_undelivered=data.get("input_undelivered", 0),
        output_error=data.get("output_error"),
        input_error=data.get("input_error"),
        **fields,
    )


def _pipeline_result(data: Mapping[str, Any], text: str, result: Mapping[str, Any]) -> PipelineResult:
    """The pipeline whose stages, edges, ``timed_out`` and ``interrupted_by`` are ``data``'s; ``result`` holds its
    times, status, ``timeout`` and ``io_error``. Its text is the run's: each stage's argv has placeholders filled."""
    stages = tuple(_stage_result(stage) for stage in data["stages"])
    edges = tuple(_edge_result(edge) for edge in data["edges"])
    return PipelineResult(
        graph=Graph(text, tuple(s.stage for s in stages), tuple(e.edge for e in edges)),
        stages=stages,
        edges=edges,
        exit_status=result["exit_status"],
        started_at=result["started_at"],
        ended_at=result["ended_at"],
        stopped_by=_stop(data, result["timeout"]),
        io_error=result["io_error"],
        timeout=result["timeout"],
    )


def _stop(data: Mapping[str, Any], limit: float | None) -> StopReason | None:
    """Why the run or attempt ``data`` stopped: its signal, its timeout, or the ``stopped_by`` a run gives."""
    if data["interrupted_by"]:
        return StopReason.by_name(data["interrupted_by"])
    if data["timed_out"]:
        return StopReason.timeout(limit)
    kind = data.get("stopped_by")
    return StopReason(StopKind(kind)) if kind in (StopKind.HALT.value, StopKind.READER_GONE.value) else None


def _stage_result(data: Mapping[str, Any]) -> StageResult:
    stage = Stage(
        id=data["id"],
        argv=tuple(data["argv"]),
        env=tuple(data["env"].items()),
        redirects=tuple(_redirect(text) for text in data["redirects"]),
        may_fail=data["may_fail"],
        reads_stdin_of=data.get("reads_stdin_of"),
        writes_stdout_of=data.get("writes_stdout_of"),
    )
    status, error = data["status"], data["error"]
    killed = data["signal"] is not None and status is not None and status > 128
    return StageResult(
        stage,
        pid=data["pid"],
        started_at=data["started_at"],
        ended_at=data["ended_at"],
        returncode=None if error else 128 - status if killed else status,
        error=error,
        error_status=status if error and status is not None else 1,
        stderr_tail=tuple(data["stderr_tail"]),
        verdict=Verdict(data["verdict"]),
    )


_REDIRECT = re.compile(r"([0-9]*)(<|>>|>&|>) ?(.*)", re.DOTALL)


def _redirect(text: str) -> Redirect:
    """A redirection from its text (``2>&1``, ``>> 'a file'``), as :class:`~ppipe.graph.Redirect` writes it."""
    match = _REDIRECT.match(text)
    assert match is not None, "the schema's pattern"
    fd, op, rest = match.groups()
    kind = RedirectOp(op)
    if kind is RedirectOp.DUP:
        return Redirect(int(fd or 1), kind, source_fd=int(rest) if re.fullmatch("[0-9]+", rest) else None)
    try:
        words = shlex.split(rest)
    except ValueError:
        words = []
    return Redirect(int(fd) if fd else 0 if kind is RedirectOp.READ else 1, kind, words[0] if len(words) == 1 else rest)


def _edge_result(data: Mapping[str, Any]) -> EdgeResult:
    def node(value: int | str) -> Node:
        return Boundary(value) if isinstance(value, str) else value

    return EdgeResult(
        Edge(node(data["from"]), node(data["to"]), data["with_stderr"], data.get("from_fd", 1), data.get("to_fd", 0)),
        bytes=data["bytes"],
        lines=data["lines"],
        counted=data["counted"],
        closed_early=data["closed_early"],
        waited_on_producer=data.get("waited_on_producer"),
        waited_on_consumer=data.get("waited_on_consumer"),
    )


def _shard_result(data: Mapping[str, Any], text: str) -> ShardResult:
    return ShardResult(
        task_id=data["task_id"],
        tasks=data["tasks"],
        pipeline=data["pipeline"],
        attempts=tuple(_attempt_result(attempt, text) for attempt in data["attempts"]),
        bytes_in=data["bytes_in"],
        bytes_out=data["bytes_out"],
        lines_out=data["lines_out"],
        verdict=Verdict(data["verdict"]),
        error=data.get("error"),
        skipped_for=data.get("skipped_for"),
    )


def _attempt_result(data: Mapping[str, Any], text: str) -> ShardAttempt:
    status = data["exit_status"]
    result = data.get("result")
    if "result" not in data and (data["stages"] or data["error"] is None):  # written before "result": as the attempt
        ended = data["ended_at"] if data["ended_at"] is not None else data["started_at"]
        result = {"started_at": data["started_at"], "ended_at": ended, "exit_status": status}
        result.update(timeout=None, io_error=None)
    wait_status = data.get("wait_status")
    return ShardAttempt(
        number=data["attempt"],
        pid=data["pid"],
        started_at=data["started_at"],
        ended_at=data["ended_at"],
        result=None if result is None else _pipeline_result(data, text, result),
        error=data["error"],
        error_status=data.get("error_status", status if result is None and wait_status is None else None),
        wait_status=wait_status,
        host=data.get("host"),
        job_id=data.get("job_id"),
        slot=data.get("slot"),
    )
