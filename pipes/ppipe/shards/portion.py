"""A job array task's share of a file every task was given: whole records, and each record in exactly one share.

Task *i* of *n* takes the records that start in the *i*-th *n*-th of the
file's bytes (after its header), as GNU parallel's ``--pipepart`` does:
it finds its two edges by reading a little past each nominal cut, and reads
nothing else. Every task computes the same cut from the same size and the
same bytes, so neighbours agree on where one share ends and the next
begins without talking to each other. That holds while the file does not
change under the tasks; a file still being written is not splittable.
"""

from __future__ import annotations

import array
import fcntl
import os
import select
import stat
import termios

from ppipe.engine.slices import FileSlice
from ppipe.errors import UsageError
from ppipe.identity import TaskIdentity

#: How long an srun step's pipe is given to show input waiting on it, in milliseconds.
_SETTLE_MS = 100
#: How much is read at a time while looking for a record's end.
_WINDOW = 64 * 1024


def task_input(
    identity: TaskIdentity, *, whole: bool = False, record_end: bytes = b"\n", header: int = 0, fd: int = 0
) -> FileSlice | None:
    """What a job array's task reads of its stdin (``fd``): its share of a regular file; None for all of it.

    A pipe or a socket cannot be shared out: each task would read the
    same stream its own submission gave it, and do the same work, so with
    more than one task it is refused (:class:`UsageError`) unless ``whole``
    (``--whole-input``) says that every task is meant to read all of it.
    A terminal or a device such as ``/dev/null`` (a batch job's usual
    stdin) is left as it is. An ``srun`` step's stdin is always srun's
    pipe, usually empty; it is refused only when input is waiting on it.
    Call it only when a stage reads ppipe's stdin.
    """
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return None
    if whole:
        return None
    if stat.S_ISREG(mode):
        try:
            return task_slice(fd, identity.task_id, identity.tasks, record_end, header)
        except OSError as error:
            raise UsageError(f"cannot read stdin to find this task's share of it: {error.strerror}") from None
    streamed = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
    if streamed and identity.tasks > 1 and (not identity.step or _input_waiting(fd)):
        raise UsageError(
            f"stdin is a pipe, and this is {identity.describe()}: every task would read the same input. "
            "Give the tasks a file (< FILE) to share out, or --whole-input if each is meant to read all of it"
        )
    return None


def _input_waiting(fd: int) -> bool:
    """Whether bytes wait on the pipe ``fd`` (or come within a moment), without reading them."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if not poller.poll(_SETTLE_MS):
        return False
    waiting = array.array("i", [0])
    try:
        fcntl.ioctl(fd, termios.FIONREAD, waiting)
    except OSError:
        return False
    return waiting[0] > 0


def task_slice(fd: int, task_id: int, tasks: int, record_end: bytes = b"\n", header: int = 0) -> FileSlice:
    """Task ``task_id`` of ``tasks``'s share of the regular file on ``fd``, from its current offset on.

    The first ``header`` records belong to every share, before its own
    records. A share can be empty (more tasks than records). Raises
    :class:`OSError` when the file cannot be read.
    """
    begin = os.lseek(fd, 0, os.SEEK_CUR)
    size = os.fstat(fd).st_size
    body = _after_records(fd, begin, size, record_end, header)
    start = _cut(fd, body, size, task_id, tasks, record_end)
    end = _cut(fd, body, size, task_id + 1, tasks, record_end)
    ranges = [(begin, body)] if body > begin else []
    if start < end:
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (begin, end)
        else:
            ranges.append((start, end))
    return FileSlice(fd, tuple(ranges))


def _cut(fd: int, body: int, size: int, index: int, tasks: int, record_end: bytes) -> int:
    """Where share ``index`` begins: the first record start at or after its nominal offset.

    That is just after the first ``record_end`` that ends there or later,
    looked for from the nominal offset: both neighbours cut at the same
    place, so every byte is in exactly one share. A separator that can
    overlap itself (``--`` in ``---``) may then be read differently from a
    reading from the file's start; the bytes are still all there once.
    """
    if index <= 0:
        return body
    if index >= tasks:
        return size
    nominal = body + (size - body) * index // tasks
    return _record_end(fd, max(body, nominal - len(record_end)), size, record_end)


def _record_end(fd: int, offset: int, size: int, record_end: bytes) -> int:
    """Just after the first ``record_end`` at or after ``offset``; ``size`` when there is none."""
    carried = b""
    while offset < size:
        chunk = os.pread(fd, _WINDOW, offset)
        if not chunk:
            break  # the file shrank: the end it has now ends the record
        window = carried + chunk
        found = window.find(record_end)
        if found != -1:
            return offset - len(carried) + found + len(record_end)
        offset += len(chunk)
        carried = window[len(window) - len(record_end) + 1 :] if len(record_end) > 1 else b""
    return size


def _after_records(fd: int, begin: int, size: int, record_end: bytes, count: int) -> int:
    """The offset just after the first ``count`` records from ``begin`` (``size`` if there are fewer)."""
    offset = begin
    for _ in range(count):
        if offset >= size:
            return size
        offset = _record_end(fd, offset, size, record_end)
    return offset
