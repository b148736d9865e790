"""Writing the JSON run report (``--report FILE``) where the user asked: a file replaced whole, or stderr.

What the report holds is :mod:`ppipe.report`'s (documented in
``docs/report.md``, its shape in ``ppipe/report.schema.json``); this module
only checks the destination before the run and writes the report after it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import TYPE_CHECKING, Any

from ppipe.cli import destinations
from ppipe.errors import PpipeError, UsageError
from ppipe.report import to_report, unstarted

if TYPE_CHECKING:  # a plain run imports nothing of ppipe.shards
    from ppipe.graph import Graph
    from ppipe.identity import TaskIdentity
    from ppipe.results import RunResult


def build(result: RunResult, identity: TaskIdentity | None = None) -> dict[str, Any]:
    """The report of a finished run; ``identity`` is the job-array task it was, if it was one."""
    return to_report(dataclasses.replace(result, task=identity))


def build_for_error(
    text: str, error: PpipeError, graph: Graph | None = None, identity: TaskIdentity | None = None
) -> dict[str, Any]:
    """The report of a run that never started (bad syntax, missing command), dated when the error was found, so
    that a task that never started still has its place among the array's reports."""
    return to_report(unstarted(text, str(error), error.status, graph, task=identity))


class ReportError(UsageError):
    """The report could not be written where the user asked; found before anything runs."""


def check_destination(destination: str) -> None:
    """Raises :class:`ReportError` (exit status 2) when the report cannot be written to ``destination`` (see
    :func:`ppipe.cli.destinations.check`); called before anything runs, so that a run is not wasted."""
    if destination != "-":
        destinations.check(destination, "report", ReportError)


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
    destinations.write_text(destination, json.dumps(report, indent=2) + "\n")
