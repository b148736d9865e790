"""An event loop that synchronous code owns and runs a step at a time, in the main thread: :class:`SteppedLoop`.

``ppipe.stream`` gives a run's output to a plain ``for`` loop while the
run goes on. The run needs its event loop in the main thread (tornado
learns of its stages' exits from SIGCHLD, which only the main thread
receives), and the caller's ``for`` loop is there too; so the loop is not
run in a thread: each time the caller wants the next line and none is
queued, the loop runs until a chunk has come (:meth:`SteppedLoop.run_until`),
then stops and hands control back. While the caller's code runs, nothing
of the run moves in ppipe (the stages run on until their pipes are full):
that wait is the back-pressure.

Ctrl-C is taken as :func:`asyncio.run` takes it, so that it never tears a
pump half-way: while a step runs it cancels what the step waits for, and
the step raises :class:`KeyboardInterrupt` once the loop has stopped;
while the caller's own code runs it raises there at once, as it would
without ppipe.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Awaitable
from types import FrameType
from typing import TypeVar

from ppipe.engine.tornado_internals import take_signals_back

T = TypeVar("T")


class SteppedLoop:
    """A fresh event loop, current for the caller's thread, run by :meth:`run_until`; :meth:`close` once.

    Made in a thread where no loop runs (see :func:`refuse_a_running_loop`).
    """

    def __init__(self) -> None:
        refuse_a_running_loop("a SteppedLoop cannot be made where an event loop runs")
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)  # as asyncio.run does: code that asks for the current loop finds it
        self._step: asyncio.Future[object] | None = None
        self._interrupted = False
        #: SIGINT's handler before this loop's: Python's own, or the loop of a stream whose block this one runs in.
        self._previous_sigint = signal.getsignal(signal.SIGINT)
        self._own_sigint = threading.current_thread() is threading.main_thread() and (
            self._previous_sigint is signal.default_int_handler
            or isinstance(getattr(self._previous_sigint, "__self__", None), SteppedLoop)
        )
        if self._own_sigint:
            signal.signal(signal.SIGINT, self._on_sigint)

    def run_until(self, awaitable: Awaitable[T]) -> T:
        """Runs the loop until ``awaitable`` is done and returns its result (or raises its error).

        A Ctrl-C meanwhile cancels ``awaitable`` (pass a wrapper, not a task
        that must not be cancelled) and raises :class:`KeyboardInterrupt`
        once the loop has stopped.
        """
        step = asyncio.ensure_future(awaitable, loop=self.loop)
        self._step, self._interrupted = step, False  # type: ignore[assignment]
        take_signals_back(self.loop)  # the caller's code may have run another loop (ppipe.run) since the last step
        try:
            return self.loop.run_until_complete(step)
        except asyncio.CancelledError:
            if self._interrupted:
                raise KeyboardInterrupt from None
            raise
        finally:
            self._step = None

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        step = self._step
        if step is None or step.done() or self._interrupted:
            raise KeyboardInterrupt  # the caller's own code runs (or a second Ctrl-C): as Python's own handler
        self._interrupted = True
        step.cancel()
        self.loop.call_soon_threadsafe(lambda: None)  # wake the loop, which may be waiting in select()

    def close(self) -> None:
        """Cancels what is left on the loop and closes it, as :func:`asyncio.run` does; puts SIGINT's handler back."""
        try:
            left = asyncio.all_tasks(self.loop)
            for task in left:
                task.cancel()
            if left:
                self.loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            self.loop.close()
            if self._own_sigint and signal.getsignal(signal.SIGINT) == self._on_sigint:
                signal.signal(signal.SIGINT, self._previous_sigint)


def refuse_a_running_loop(message: str) -> None:
    """Raises RuntimeError with ``message`` when an event loop runs in this thread: a loop cannot run inside it."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(message)
