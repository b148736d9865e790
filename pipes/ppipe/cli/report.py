"""Writing the JSON run report (``--report FILE``) where the user asked: a file replaced whole, or stderr.

What the report holds is :mod:`ppipe.report`'s (documented in
``docs/report.md``, its shape in ``ppipe/report.schema.json``); this module
only checks the destination before the run and writes the report after it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import stat
import sys
import tempfile
from typing import TYPE_CHECKING, Any

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
