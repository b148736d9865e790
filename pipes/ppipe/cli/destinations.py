"""Files ppipe writes where the user named them (``--report FILE``, ``report show --svg FILE``).

Each is checked before the work that fills it (:func:`check`), so that a
typo in a directory does not waste a run, and written after it in one piece
(:func:`write_text`): a reader never sees half a file, and a full disk
leaves the old file as it was.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile

from ppipe.errors import UsageError


def check(destination: str, what: str, error: type[UsageError] = UsageError) -> None:
    """Raises ``error`` (exit status 2) when the ``what`` (``report``, ``SVG``) cannot be written to ``destination``.

    A directory is refused; otherwise a new file is made and removed where
    the file will go, since the permission bits do not tell (root is
    refused a file in ``/sys``, anyone on a read-only mount). An existing
    special file (a FIFO, ``/dev/stderr``) is not touched: opening a FIFO
    would wait for its reader.
    """
    if os.path.isdir(destination):
        raise error(f"cannot write the {what} to {destination}: it is a directory")
    if is_special(destination):
        return
    directory = os.path.dirname(os.path.abspath(destination))
    if not os.path.isdir(directory):
        raise error(f"cannot write the {what} to {destination}: no directory {directory}")
    try:
        with tempfile.TemporaryFile(dir=directory, prefix=".ppipe-"):
            pass
    except OSError as failure:
        raise error(f"cannot write the {what} to {destination}: {failure.strerror}") from failure


def write_text(destination: str, text: str) -> None:
    """Writes ``text`` to ``destination``: replaced whole, or written into it when it is a special file.

    Raises OSError (a full disk, the directory gone since :func:`check`).
    """
    if is_special(destination):  # a FIFO, /dev/stderr, >(cat): write into it, never replace it
        with open(destination, "w", encoding="utf-8") as handle:
            handle.write(text)
        return
    _replace_with(destination, text)


def _replace_with(destination: str, text: str) -> None:
    """Replaces ``destination`` by a file holding ``text``, so that a reader never sees half of it.

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


def is_special(path: str) -> bool:
    """An existing path that is not a regular file (a FIFO, a device, a /dev/fd/N pipe)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False
