"""``--joblog FILE``: one JSON line per finished shard attempt, and ``--resume`` from it.

The first line names the run the log belongs to (the pipeline and the
number of shards); each later line is one attempt that ended: task id,
item, attempt number, status, signal, start time, seconds, bytes in and
out, host, and whether it was the shard's final attempt. Each line is
written with one ``write(2)`` on a descriptor opened with ``O_APPEND``, the
moment ppipe knows the attempt's end, so a ``kill -9`` of ppipe leaves every
line already written whole; at most a line being written at that instant
is cut short. Reading the log passes over such a last line, and
``--resume`` cuts it off the file before appending (saying so in one
``ppipe:`` line), so the next line starts on a line of its own; a torn
line anywhere else means the file was not written by ppipe alone, and is
refused.

An item is bytes, and a job log line is UTF-8 JSON: an item that is valid
UTF-8 is its ``item`` string; one that is not has its exact bytes in
``item_base64`` and, for people and ``jq``, ``item`` with each byte that
is not UTF-8 shown as U+FFFD. Reading a line back gives the exact item.

An attempt is final when its shard will not run again because of how it
ended. One that ppipe stopped (SIGINT, SIGTERM or SIGHUP to ppipe,
``--timeout``, ``--halt now``) is logged with ``final`` false whatever its
status: it did not finish, and a resumed run runs its shard again.

``--resume`` skips every shard the log shows finished (a final line);
``--resume-failed`` skips only those that finished with status 0, and runs
the failed ones again and those never run. A log written for another
pipeline or another number of shards is refused: resuming it would skip the
wrong work.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ppipe.errors import PpipeError, UsageError

#: The first line's key and the format's version.
_MARK = "ppipe_joblog"
_VERSION = 1


class Resume(str, enum.Enum):
    """What a run takes over from an earlier run's job log."""

    NONE = "none"  # start afresh: the log is emptied first
    ALL = "all"  # --resume: skip every shard that finished
    FAILED = "failed"  # --resume-failed: skip the shards that finished with 0


@dataclass(frozen=True)
class AttemptLine:
    """One ended attempt, as a job log line holds it."""

    task_id: int
    item: str | None
    attempt: int
    status: int | None
    signal: str | None
    started_at: float
    seconds: float | None
    bytes_in: int | None
    bytes_out: int | None
    host: str
    final: bool


class JobLog:
    """An open job log; :meth:`write` appends one attempt's line at once."""

    def __init__(self, path: str, pipeline: str, tasks: int, resume: Resume) -> None:
        """Opens (or with ``resume``, reads and then reopens) the log at ``path`` for the run of ``pipeline``.

        Raises :class:`UsageError` when the file cannot be opened or read, or
        when ``resume`` finds a log of another run; :class:`PpipeError`
        (status 1) when its first line cannot be written (a full disk).
        """
        self.path = path
        self.host = socket.gethostname()
        #: The task ids an earlier run finished, and each one's final status, when resuming.
        self.finished: dict[int, int | None] = {}
        header = {_MARK: _VERSION, "pipeline": pipeline, "tasks": tasks}
        fresh = True
        #: What resuming had to mend in the file (a torn last line cut off), as a ``ppipe:`` line; None if nothing.
        self.mended: str | None = None
        if resume is not Resume.NONE and os.path.exists(path):
            lines = list(_read(path))
            self.mended = _cut_torn_end(path)
            if lines:
                _check_header(path, lines[0], header)
                self.finished = {line.task_id: line.status for line in map(_attempt, lines[1:]) if line.final}
                fresh = False
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | (os.O_TRUNC if fresh else 0)
        try:
            self.fd = os.open(path, flags, 0o666)
        except OSError as error:
            raise UsageError(f"--joblog {path}: {error.strerror}") from error
        if fresh:
            try:
                self._append(header)
            except OSError as error:  # a full disk: nothing has started, and nothing will
                os.close(self.fd)
                raise PpipeError(f"cannot write the job log {path}: {error.strerror}") from error

    def skips(self, task_id: int, resume: Resume) -> bool:
        """Whether ``resume`` skips the task: it finished before (with status 0, for ``--resume-failed``)."""
        if task_id not in self.finished:
            return False
        return resume is Resume.ALL or (resume is Resume.FAILED and self.finished[task_id] == 0)

    def write(self, line: AttemptLine) -> str | None:
        """Appends the attempt's line; returns why it could not be written, if so (the run then fails).

        Never raises: it is called as attempts end, inside the tasks that
        follow them, where an exception would be lost.
        """
        data = {**line.__dict__, "host": line.host or self.host, **_item_fields(line.item)}
        try:
            self._append(data)
        except OSError as error:
            return f"cannot write the job log {self.path}: {error.strerror or error}"
        except (ValueError, TypeError) as error:  # a value JSON cannot hold: a bug, but the run must still end well
            return f"cannot write the job log {self.path}: {error}"
        return None

    def _append(self, data: dict[str, Any]) -> None:
        encoded = (json.dumps(data, ensure_ascii=False) + "\n").encode()
        written = os.write(self.fd, encoded)
        if written != len(encoded):  # a full disk: the line is torn, and a reader passes over it
            raise OSError(28, os.strerror(28))

    def close(self) -> None:
        os.close(self.fd)


def read_lines(path: str) -> list[AttemptLine]:
    """The attempts a job log holds, each item exactly as given; :class:`UsageError` for a file that is not one."""
    lines = list(_read(path))
    if not lines or lines[0].get(_MARK) != _VERSION:
        raise UsageError(f"--joblog {path} is not a ppipe job log")
    return [_attempt(line) for line in lines[1:]]


def _item_fields(item: str | None) -> dict[str, Any]:
    """``item`` as a line holds it: the text when it is UTF-8, else its bytes in base64 beside a readable text."""
    if item is None:
        return {}
    raw = os.fsencode(item)
    try:
        return {"item": raw.decode()}
    except UnicodeDecodeError:
        return {"item": raw.decode(errors="replace"), "item_base64": base64.b64encode(raw).decode("ascii")}


def _cut_torn_end(path: str) -> str | None:
    """Cuts a last line without its newline off the log, so that the next line starts a line; says what it did."""
    try:
        with open(path, "r+b") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return None
            handle.seek(max(0, size - 1))
            if handle.read(1) == b"\n":
                return None
            handle.seek(0)
            keep = handle.read().rfind(b"\n") + 1
            handle.truncate(keep)
    except OSError as error:
        raise UsageError(f"--joblog {path}: cannot cut off its torn last line: {error.strerror}") from error
    return (
        f"ppipe: --joblog {path}: its last line was cut short ({size - keep} bytes, "
        "a run that stopped while writing it); removed it, and resuming"
    )


def _read(path: str) -> Iterator[dict[str, Any]]:
    """The log's complete lines as JSON; a last line without its newline (cut by a kill) is passed over."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise UsageError(f"--joblog {path}: {error.strerror}") from error
    for number, line in enumerate(data.split(b"\n")[:-1], start=1):
        try:
            value = json.loads(line)
        except ValueError:
            raise UsageError(f"--joblog {path}: line {number} is not a job log line; not resuming from it") from None
        if not isinstance(value, dict):
            raise UsageError(f"--joblog {path}: line {number} is not a job log line; not resuming from it")
        yield value


def _check_header(path: str, first: dict[str, Any], expected: dict[str, Any]) -> None:
    if first.get(_MARK) != _VERSION:
        raise UsageError(f"--joblog {path} is not a ppipe job log; not resuming from it")
    if first.get("pipeline") != expected["pipeline"]:
        raise UsageError(
            f"--joblog {path} was written for another pipeline ({first.get('pipeline')!r}); "
            "resume with the same pipeline, or give another --joblog"
        )
    if first.get("tasks") != expected["tasks"]:
        raise UsageError(
            f"--joblog {path} was written for {first.get('tasks')} shards, not {expected['tasks']}; "
            "resume with the same number, or give another --joblog"
        )


def _attempt(data: dict[str, Any]) -> AttemptLine:
    data = dict(data)
    encoded = data.pop("item_base64", None)
    try:
        if encoded is not None:
            data["item"] = os.fsdecode(base64.b64decode(encoded, validate=True))
        return AttemptLine(**data)
    except (binascii.Error, ValueError) as error:
        raise UsageError(f"a --joblog line's item_base64 is not base64: {error}") from error
    except TypeError as error:
        raise UsageError(f"a --joblog line does not hold an attempt: {error}") from error
