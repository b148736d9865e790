"""Linux ``tee(2)``: copy what waits in one pipe into another without consuming it.

The standard library has ``os.splice`` but not ``tee``; this reaches it
through ``ctypes`` (standard library too, loaded only when an edge on the
kernel's fast path has its lines counted). ``tee`` duplicates page
references, not bytes, so a counting pump can let the kernel move the data
on and read only a private copy.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable

#: ``tee(2)`` flag: return EAGAIN instead of waiting.
TEE_NONBLOCK = 2


@functools.cache
def tee_function() -> Callable[[int, int, int], int] | None:
    """Returns ``tee(source_fd, target_fd, size) -> bytes copied``, or None where libc has no tee.

    The call never blocks: it raises :class:`BlockingIOError` when the source
    pipe is empty (or the target full), and returns 0 when the source is
    empty and has no writer left (end of file). Other failures raise
    :class:`OSError` with the errno set, as ``os.splice`` does.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        raw = libc.tee
    except (ImportError, OSError, AttributeError):
        return None
    raw.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint)
    raw.restype = ctypes.c_ssize_t

    def tee(source_fd: int, target_fd: int, size: int) -> int:
        while True:
            copied = raw(source_fd, target_fd, size, TEE_NONBLOCK)
            if copied >= 0:
                return int(copied)
            error = ctypes.get_errno()
            if error != errno.EINTR:  # retried, as os.splice does (PEP 475)
                raise OSError(error, os.strerror(error))  # OSError picks BlockingIOError for EAGAIN

    return tee
