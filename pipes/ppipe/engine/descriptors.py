"""Pipes ppipe makes and looks into: their size, what waits in them, whether anyone reads.

Data pipes are enlarged to ``PIPE_SIZE`` (fewer wake-ups); stderr pipes keep
the default. The questions asked of a pipe (``FIONREAD``, ``F_GETPIPE_SZ``,
``POLLERR``) answer "cannot say" as 0 or False instead of raising.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import select
import sys
import termios

from tornado.iostream import PipeIOStream

#: Bytes asked for per read. Larger chunks mean fewer trips through the loop.
CHUNK = 256 * 1024

#: Hard cap on bytes queued in one write buffer; see the module docstring.
MAX_WRITE_BUFFER = 4 * CHUNK

#: Pipe capacity ppipe asks the kernel for (Linux ``F_SETPIPE_SZ``), to cut wake-ups.
PIPE_SIZE = 1024 * 1024

_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)

_F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


def make_pipe(enlarge: bool = True) -> tuple[int, int]:
    """Creates a close-on-exec pipe; returns (read, write).

    Data pipes are enlarged to ``PIPE_SIZE`` where the OS allows (fewer
    wake-ups); stderr pipes keep the default size, since Linux counts every
    user's pipe pages against one quota and enlarging them all would shrink
    the pipes of the user's other programs.
    """
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC) if hasattr(os, "pipe2") else os.pipe()
    if enlarge and sys.platform.startswith("linux"):
        # Over the user's pipe-size quota the default size still works.
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_fd, _F_SETPIPE_SZ, PIPE_SIZE)
    return read_fd, write_fd


def stream(fd: int) -> PipeIOStream:
    """Wraps one end of a pipe that ppipe owns."""
    return PipeIOStream(fd, read_chunk_size=CHUNK, max_write_buffer_size=MAX_WRITE_BUFFER)


def pipe_nearly_full(fd: int) -> bool:
    """Whether a pipe has too little room left for a writer's next write: the writer is blocked on it.

    Linux merges small writes into the last page, so a blocked writer leaves
    less than one write's worth free; a writer's buffer is at most 64 KiB.
    """
    capacity = pipe_capacity(fd)
    return capacity - bytes_in_pipe(fd) < min(64 * 1024, capacity // 4)


def readers_left(fd: int) -> bool:
    """Whether anyone still holds the read end of the pipe whose write end is ``fd`` (POLLERR: nobody)."""
    poller = select.poll()
    try:
        poller.register(fd, select.POLLOUT)
        events = poller.poll(0)
    except (OSError, ValueError):
        return False
    return not any(mask & select.POLLERR for _, mask in events)


def bytes_waiting(fd: int) -> bool:
    """Whether a pipe holds unread bytes (``FIONREAD``; either end of the pipe will do)."""
    return bytes_in_pipe(fd) > 0


def bytes_in_pipe(fd: int) -> int:
    """How many unread bytes a pipe holds (0 if it cannot say)."""
    try:
        waiting = fcntl.ioctl(fd, termios.FIONREAD, bytes(4))
    except OSError:
        return 0
    return int.from_bytes(waiting, sys.byteorder)


def pipe_capacity(fd: int) -> int:
    """A pipe's size in bytes (Linux ``F_GETPIPE_SZ``); 64 KiB where it cannot say."""
    try:
        return fcntl.fcntl(fd, _F_GETPIPE_SZ)
    except OSError:
        return 64 * 1024


async def readable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    """Returns once ``fd`` is readable on ``loop`` (data, EOF, or a pidfd whose process has exited)."""
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
