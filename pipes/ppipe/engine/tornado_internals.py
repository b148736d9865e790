"""The private names of tornado (and asyncio's loop) that ppipe relies on, all in one place.

Each is read or set here only, with the reason it is needed; a test
(``tests/test_borrowed_names.py``) fails loudly, naming what went, if an
upgrade removes one. ``pyproject.toml`` bounds tornado to the versions
tested with them.

- ``Subprocess._initialized``: tornado's class-level "SIGCHLD handler is
  installed" flag. After a loop closes without ``Subprocess.uninitialize()``
  the flag stays set while no loop listens, and ``wait_for_exit`` would hang
  for ever; ppipe resets a stale flag.
- ``Subprocess._waiting``: the processes tornado still waits for; ppipe
  removes its handler only when none of the caller's own are left.
- ``Subprocess._cleanup``: what tornado's SIGCHLD handler runs; a shard's
  slot runs it and then reaps the orphans it adopted, in one handler.
- ``loop._signal_handlers``: asyncio's table of installed signal handlers,
  the one way to tell whether tornado's handler is on *this* loop.
- ``PipeIOStream._read_buffer_size``: bytes tornado has read but not yet
  handed on, part of what a pump still owes when it finishes.
- ``loop._csock`` and a handler's ``Handle._callback`` and ``Handle._args``:
  the descriptor asyncio points ``signal.set_wakeup_fd`` at, and what each
  installed signal handler calls, so that a loop another loop's signals
  were taken from can get them back (:func:`take_signals_back`).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Mapping

from tornado.iostream import PipeIOStream
from tornado.process import Subprocess

#: What each borrowed name is for, by where it lives: checked by the test suite on a real class,
#: loop and stream.
BORROWED = {
    "Subprocess._initialized": "to reset tornado's SIGCHLD flag left stale by a loop that closed",
    "Subprocess._waiting": "to leave tornado's SIGCHLD handler in place for the caller's own processes",
    "Subprocess._cleanup": "to reap adopted orphans on SIGCHLD in a shard's slot, beside tornado's own reaping",
    "loop._signal_handlers": "to tell whether tornado's SIGCHLD handler is on this loop",
    "PipeIOStream._read_buffer_size": "to count the bytes tornado has read but not yet handed on",
    "loop._csock": "to see whether another loop took the signals from a loop ppipe.stream steps",
    "Handle._callback": "to install a stepped loop's signal handlers again after another loop took them",
    "Handle._args": "to install a stepped loop's signal handlers again after another loop took them",
}


def sigchld_handler_installed() -> bool:
    """Whether tornado believes its SIGCHLD handler is installed (on some loop)."""
    return bool(Subprocess._initialized)


def forget_stale_sigchld_handler() -> None:
    """Tells tornado its handler is gone, so that the next ``Subprocess.initialize()`` installs it again."""
    Subprocess._initialized = False


def processes_still_awaited() -> bool:
    """Whether tornado still waits for the exit of some process (someone's ``set_exit_callback``)."""
    return bool(Subprocess._waiting)


def also_on_sigchld(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    """Makes ``loop``'s SIGCHLD handler run ``callback`` after tornado's own (which must be installed there)."""

    def both() -> None:
        Subprocess._cleanup()
        callback()

    loop.add_signal_handler(signal.SIGCHLD, both)


def loop_signal_handlers(loop: asyncio.AbstractEventLoop) -> Mapping[int, object] | None:
    """asyncio's installed signal handlers on ``loop``, by signal number (None where the loop has no such table)."""
    handlers: Mapping[int, object] | None = getattr(loop, "_signal_handlers", None)
    return handlers


def buffered_bytes(stream: PipeIOStream) -> int:
    """Bytes ``stream`` has read from its descriptor and not yet handed on."""
    return int(stream._read_buffer_size)


def take_signals_back(loop: asyncio.AbstractEventLoop) -> None:
    """Gives ``loop`` back the signals it handles, when another loop has taken them since it last ran.

    Signals reach an asyncio loop through one descriptor for the whole
    process (``signal.set_wakeup_fd``). A loop run in between (a
    ``ppipe.run`` inside a ``ppipe.stream`` block, while the stream's own
    loop waits) points it at itself and, as it closes, puts the signals'
    dispositions back to the defaults: the waiting loop would never learn
    of its stages' exits again. Its handlers are installed again from its
    own table, and tornado looks once for the exits it may have missed.
    Costs one ``set_wakeup_fd`` when nothing was taken.
    """
    handlers: Mapping[int, asyncio.Handle] | None = getattr(loop, "_signal_handlers", None)
    if not handlers:
        return
    wakeup = loop._csock.fileno()  # type: ignore[attr-defined]
    if signal.set_wakeup_fd(wakeup) == wakeup:
        return
    for sig, handle in list(handlers.items()):
        loop.add_signal_handler(sig, handle._callback, *handle._args)  # type: ignore[attr-defined]
    if signal.SIGCHLD in handlers:
        Subprocess._cleanup()
