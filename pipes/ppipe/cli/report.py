"""The JSON run report (``--report FILE``): everything a script needs after a run.

Schema ``ppipe-report/2`` (the ``schema`` field; a new number means an
incompatible change, new fields may appear in any version)::

    {
      "schema": "ppipe-report/2",
      "ppipe_version": "0.1.0",
      "pipeline": "seq 10 | wc -l",
      "started_at": 1700000000.123,   "ended_at": 1700000000.145,   # Unix seconds
      "duration": 0.022,
      "exit_status": 0,
      "timed_out": false,
      "interrupted_by": null,          # or "SIGINT", "SIGTERM", "SIGHUP"
      "error": null,                   # set when nothing ran: {"message", "status"}
      "stages": [{
          "id": 1, "command": "seq 10", "argv": ["seq", "10"], "env": {},
          "redirects": [], "may_fail": false,
          "pid": 1234, "started_at": ..., "ended_at": ..., "duration": ...,
          "status": 0,                 # exit code, or 128+N when killed by signal N
          "signal": null,              # "SIGPIPE", ...
          "verdict": "ok",             # ok|failed|ignored|broken-pipe|terminated
          "failed": false,
          "error": null,               # why it never started
          "restarts": 0,
          "stderr_tail": [],
          "bytes_in": null, "lines_in": null,  # the view's row for the whole run: inputs added up,
          "bytes_out": 21, "lines_out": 10,  # the largest output copy; null where not carried/counted
          "ratio": null,               # bytes_out / bytes_in
          "held": 0.0                  # seconds the pipeline waited on this stage (see "bottleneck")
      }],
      "bottleneck": null,              # the stage waited on for over half the run, if one was
      "edges": [{
          "from": 1, "to": 2,          # stage ids, or "stdin" / "stdout"
          "with_stderr": false,        # a |& edge
          "counted": true,             # false: ppipe handed the stream over, figures are 0
          "bytes": 21, "lines": 10,    # lines: newlines, plus a last unterminated line;
                                       # exact, every byte counted; null when not counted (--no-lines)
          "closed_early": false,       # the consumer left before the producer finished
          "waited_on_producer": 0.01,  # seconds ppipe waited for the producer to write (null: not pumped)
          "waited_on_consumer": 0.0    # seconds ppipe waited for the consumer to read: the larger says who was slow
      }],
      "shards": []
    }

A sharded run (``--fork``) has no stages or edges of its own; instead::

      "shards": [{
          "task_id": 0, "task_num": 1, "tasks": 4,
          "pipeline": "seq 1 4 100 | wc -l",   # placeholders filled in
          "verdict": "ok",             # ok|failed|terminated (stopped by --fail-fast, --timeout, a signal)
          "failed": false, "exit_status": 0, "restarts": 0,
          "bytes_in": null,            # input ppipe gave it (null: input not split)
          "bytes_out": 3, "lines_out": 1,
          "attempts": [{
              "attempt": 1, "pid": 1234, "started_at": ..., "ended_at": ...,
              "exit_status": 0,
              "error": null,           # why it did not run or report (a killed shard process)
              "timed_out": false, "interrupted_by": null,
              "stages": [...], "bottleneck": null, "edges": [...]   # as above; restarts = attempt - 1
          }]
      }],
      "input_undelivered": 0,          # input bytes no shard could take (theirs had ended)
      "output_error": null,            # why ppipe could not write the output ("No space left on device")
      "input_error": null              # why ppipe could not read its input to the end
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any

from ppipe import __version__
from ppipe.errors import PpipeError, UsageError
from ppipe.graph import Boundary, Graph, Node
from ppipe.results import REPORT_SCHEMA, PipelineResult, RunResult, ShardAttempt, ShardResult, StageFlow, StageResult

if TYPE_CHECKING:  # a plain run imports nothing of ppipe.shards
    from ppipe.identity import TaskIdentity

SCHEMA = REPORT_SCHEMA


def build(result: RunResult, identity: TaskIdentity | None = None) -> dict[str, Any]:
    """The report of a finished run, as JSON-ready data.

    ``identity`` is the job-array task the run was (``task``: its id, how
    many there are, where that was read, the cluster's job id), so that the
    reports of an array's tasks can be merged into one.

    A plain run's stages and edges are at the top, its ``shards`` empty; a
    sharded run has no stages of its own, and every shard's every attempt,
    each with its stages and edges, is under ``shards``.
    """
    local = result.local
    report = {
        "schema": SCHEMA,
        "ppipe_version": __version__,
        "pipeline": result.pipeline,
        "host": socket.gethostname(),
        "task": None if identity is None else _task(identity),
        "started_at": result.started_at,
        "ended_at": result.ended_at,
        "duration": round(result.ended_at - result.started_at, 6),
        "exit_status": result.exit_status,
        "timed_out": result.timed_out,
        "interrupted_by": result.interrupted_by,
        "error": None,
        **_pipeline(local),
        "shards": [_shard(shard) for shard in result.shards] if local is None else [],
    }
    if local is None:
        report.update(
            input_undelivered=result.input_undelivered,
            output_error=result.output_error,
            input_error=result.input_error,
        )
    return report


def _task(identity: TaskIdentity) -> dict[str, Any]:
    return {
        "task_id": identity.task_id,
        "tasks": identity.tasks,
        "source": identity.source,
        "job_id": identity.job_id,
    }


def _pipeline(result: PipelineResult | None) -> dict[str, Any]:
    """A pipeline's stages, bottleneck and edges; empty ones where there is no pipeline of its own."""
    if result is None:
        return {"stages": [], "bottleneck": None, "edges": []}
    return {
        "stages": [_stage(s, result.flow(s.stage.id)) for s in result.stages],
        "bottleneck": result.bottleneck,
        "edges": [
            {
                "from": _node(e.edge.source),
                "to": _node(e.edge.target),
                "with_stderr": e.edge.with_stderr,
                "counted": e.counted,
                "bytes": e.bytes,
                "lines": e.lines,
                "closed_early": e.closed_early,
                "waited_on_producer": _seconds(e.waited_on_producer),
                "waited_on_consumer": _seconds(e.waited_on_consumer),
            }
            for e in result.edges
        ],
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
        "attempts": [_attempt(attempt) for attempt in shard.attempts],
    }


def _attempt(attempt: ShardAttempt) -> dict[str, Any]:
    data: dict[str, Any] = {
        "attempt": attempt.number,
        "pid": attempt.pid,
        "started_at": attempt.started_at,
        "ended_at": attempt.ended_at,
        "exit_status": attempt.exit_status,
        "error": attempt.error,
        "timed_out": False,
        "interrupted_by": None,
        "stages": [],
        "bottleneck": None,
        "edges": [],
    }
    if attempt.result is not None:
        data.update(_pipeline(attempt.result))
        data.update(timed_out=attempt.result.timed_out, interrupted_by=attempt.result.interrupted_by)
        for stage in data["stages"]:
            stage["restarts"] = attempt.number - 1
    return data


def build_for_error(
    text: str, error: PpipeError, graph: Graph | None = None, identity: TaskIdentity | None = None
) -> dict[str, Any]:
    """The report of a run that never started (bad syntax, missing command).

    It names its host and job-array task as :func:`build` does, and when
    the error was found (``started_at`` = ``ended_at``), so that a task
    that never started still has its place among the array's reports.
    ``identity`` is None when the error came before the task was known.
    """
    now = time.time()
    return {
        "schema": SCHEMA,
        "ppipe_version": __version__,
        "pipeline": text,
        "host": socket.gethostname(),
        "task": None if identity is None else _task(identity),
        "started_at": now,
        "ended_at": now,
        "duration": 0.0,
        "exit_status": error.status,
        "timed_out": False,
        "interrupted_by": None,
        "error": {"message": str(error), "status": error.status},
        "stages": [_stage(StageResult(stage)) for stage in graph] if graph else [],
        "bottleneck": None,
        "edges": [],
        "shards": [],
    }


class ReportError(UsageError):
    """The report could not be written where the user asked; found before anything runs."""


def check_destination(destination: str) -> None:
    """Raises :class:`ReportError` (exit status 2) when the report cannot be written to ``destination``.

    Called before anything runs, so that a run is not wasted. A directory is
    refused; otherwise a new file is made and removed where the report will
    go, since the permission bits do not tell (root is refused a file in
    ``/sys``, anyone on a read-only mount). An existing special file (a
    FIFO, ``/dev/stderr``) is not touched: opening a FIFO would wait for its
    reader.
    """
    if destination == "-":
        return
    if os.path.isdir(destination):
        raise ReportError(f"cannot write the report to {destination}: it is a directory")
    if _is_special(destination):
        return
    directory = os.path.dirname(os.path.abspath(destination))
    if not os.path.isdir(directory):
        raise ReportError(f"cannot write the report to {destination}: no directory {directory}")
    try:
        with tempfile.TemporaryFile(dir=directory, prefix=".ppipe-report-"):
            pass
    except OSError as error:
        raise ReportError(f"cannot write the report to {destination}: {error.strerror}") from error


def write(report: dict[str, Any], destination: str) -> None:
    """Writes the report to a file path (replaced whole, never half written), or to stderr for ``-``.

    On stderr it is the last line ppipe writes, on a line of its own: the
    run has returned, so every stage has been reaped and every stderr ppipe
    pumps is drained. ppipe cannot tell whether what came before ended with
    a newline, so the report always starts with one. It is compact JSON,
    ASCII only (a newline in a string is ``\\n``), so it is one line:
    ``ppipe --report - ... 2>&1 >/dev/null | tail -n 1`` is the report.
    """
    if destination == "-":
        if sys.stderr is not None:
            sys.stderr.write("\n" + json.dumps(report, separators=(",", ":")) + "\n")
            sys.stderr.flush()
        return
    text = json.dumps(report, indent=2) + "\n"
    if _is_special(destination):  # a FIFO, /dev/stderr, >(cat): write into it, never replace it
        with open(destination, "w", encoding="utf-8") as handle:
            handle.write(text)
        return
    _replace_with(destination, text)


def _replace_with(destination: str, text: str) -> None:
    """Replaces ``destination`` by a file holding ``text``, so that a reader never sees half a report.

    The text goes first into a new file of a random name beside it, created
    exclusively (``mkstemp``: ``O_EXCL``, and a symlink planted at any name
    is never followed or replaced), then renamed over ``destination``. The
    new file gets the mode an ``open()`` would have given it: the existing
    file's, or 0666 less the umask.
    """
    directory = os.path.dirname(os.path.abspath(destination))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(destination)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), _mode_for(destination))
            handle.write(text)
        os.replace(tmp, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _mode_for(destination: str) -> int:
    try:
        return stat.S_IMODE(os.stat(destination).st_mode)
    except OSError:
        umask = os.umask(0o22)
        os.umask(umask)
        return 0o666 & ~umask


def _is_special(path: str) -> bool:
    """An existing path that is not a regular file (a FIFO, a device, a /dev/fd/N pipe)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _stage(result: StageResult, flow: StageFlow | None = None) -> dict[str, Any]:
    stage = result.stage
    return {
        "id": stage.id,
        "command": stage.command,
        "argv": list(stage.argv),
        "env": dict(stage.env),
        "redirects": [str(r) for r in stage.redirects],
        "may_fail": stage.may_fail,
        "pid": result.pid,
        "started_at": result.started_at,
        "ended_at": result.ended_at,
        "duration": None if result.duration is None else round(result.duration, 6),
        "status": result.status,
        "signal": result.signal,
        "verdict": result.verdict.value,
        "failed": result.failed,
        "error": result.error,
        "restarts": 0,
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
        "ratio": _seconds(flow.ratio),
        "held": _seconds(flow.held),
    }


def _seconds(value: float | None) -> float | None:
    """Seconds (or a ratio) to the microsecond."""
    return None if value is None else round(value, 6)


def _node(node: Node) -> int | str:
    return node.value if isinstance(node, Boundary) else node
