"""A run's output read from Python as it comes: :class:`StreamedRun` (``with ppipe.stream(...)``) and its async twin.

The run's pumps write its output into an :class:`~ppipe.engine.outlet.Outlet`
(bounded: a slow reader slows the run), whose chunks are cut into lines
(:mod:`ppipe.lines`). The synchronous :class:`StreamedRun` owns an event
loop and runs it a step at a time from the caller's ``for`` loop
(:mod:`ppipe.stepping`); :class:`AsyncStreamedRun` runs on the caller's
loop. Both end the same way (:class:`_Streamed`): leaving the block is a
reader leaving, and anything but an ordinary exception stops the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, AnyStr, Generic

from ppipe.engine.outlet import Outlet
from ppipe.errors import RunNotFinished
from ppipe.lines import Lines
from ppipe.results import RunResult
from ppipe.stepping import SteppedLoop, refuse_a_running_loop

#: Starts a run whose output goes into the outlet given: checked before it returns, run by awaiting.
Start = Callable[[Outlet], Coroutine[Any, Any, RunResult]]


class _Streamed(Generic[AnyStr]):
    """What the synchronous and the async stream share: the outlet, the lines, the run's task and its end."""

    def __init__(self, start: Start, lines: Lines[AnyStr], check: bool) -> None:
        self._start = start
        self._lines: Lines[AnyStr] = lines
        self._check = check
        self._outlet = Outlet()
        self._task: asyncio.Task[RunResult] | None = None
        #: The synchronous stream's own loop, while its block runs (the async one runs on the caller's).
        self._loop: SteppedLoop | None = None
        #: Set once the caller's block has been left (and the run waited for).
        self._done = False
        self._stopped = False

    @property
    def result(self) -> RunResult:
        """The run's :class:`~ppipe.RunResult`, once the run has ended: every line read, or the block left.

        Raises :class:`~ppipe.RunNotFinished` before: inside the block the
        output not yet read is still to come, and waiting for the run's end
        there would wait for ever on a full pipe. Also raises it after a
        block left by ``KeyboardInterrupt`` (or a cancellation): that run
        was stopped and has no result, as ``ppipe.run`` then has none.
        """
        task = self._task
        if task is not None and task.cancelled():
            raise RunNotFinished(
                "the run was stopped (KeyboardInterrupt or cancelled) before it ended: it has no result"
            )
        if task is None or not task.done() or not (self._done or self._lines.ended):
            raise RunNotFinished("the run has not ended: read .result after the with block, or once every line is read")
        return task.result()

    def _begin(self, spawn: Callable[[Coroutine[Any, Any, RunResult]], asyncio.Task[RunResult]]) -> None:
        """Checks the run and starts it as a task made by ``spawn`` (its errors raise here, before anything runs).

        The output ends when the task does, whatever its end.
        """
        run = self._start(self._outlet)
        try:
            self._task = spawn(run)
        except BaseException:
            run.close()
            raise
        self._task.add_done_callback(lambda _: self._outlet.end())

    def _take(self, chunk: bytes | None) -> None:
        """The outlet's next chunk into the lines; at the end, the run's error if it failed."""
        if chunk is not None:
            self._lines.add(chunk)
            return
        assert self._task is not None and self._task.done()
        if not self._task.cancelled() and self._task.exception() is not None:
            raise self._task.exception()  # type: ignore[misc]
        self._lines.end()

    def _leave(self, error: BaseException | None) -> None:
        """The block is left: as a reader leaving, or for anything but an ordinary exception, stop the run."""
        self._outlet.close()
        if error is not None and not isinstance(error, Exception):
            self._stop()

    def _stop(self) -> None:
        """Stops the run as a cancelled ``run_async`` is (SIGTERM, SIGKILL after ``kill_after``); once."""
        if not self._stopped and self._task is not None:
            self._stopped = True
            self._task.cancel()

    def _conclude(self, error: BaseException | None) -> None:
        """The run has ended: its error, or with ``check=True`` its failure, raises unless the block's own does."""
        task = self._task
        assert task is not None and task.done()
        if error is not None or task.cancelled():
            return
        if task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
        if self._check:
            task.result().check()


class StreamedRun(_Streamed[AnyStr]):
    """A run read line by line as it goes: ``with ppipe.stream(...) as run: for line in run: ...``.

    Entering the block checks the pipeline (bad syntax or a missing
    command raise there) and starts it; iterating gives each line as soon
    as it is whole, its end included (bytes, or str with ``encoding=``);
    the iteration ends when the run has, and ``run.result`` is then there.

    The run moves while the iteration waits for a line: the block's own
    code runs between lines in the same thread, and meanwhile ppipe moves
    nothing (the stages run on until their pipes are full). Leaving the
    block before the end (``break``, an exception) is the reader leaving:
    the last stage gets a broken pipe at its next write, which is excused
    as ``yes | head -1``'s is, and the block's end waits for the run to end
    (a stage that never writes again keeps it waiting, as under a shell:
    give ``timeout=``, or press Ctrl-C). ``KeyboardInterrupt`` stops the
    run as ``ppipe.run`` does (SIGTERM to the stages, SIGKILL after
    ``kill_after``) and goes on once every process is reaped. Another run
    inside the block (``ppipe.run``, ``asyncio.run``) takes the process's
    signals for its own loop; the stream's loop takes them back at its
    next step (:func:`~ppipe.engine.tornado_internals.take_signals_back`).
    """

    _reader: Iterator[AnyStr] | None = None

    def __enter__(self) -> StreamedRun[AnyStr]:
        if self._task is not None:
            raise RuntimeError("a stream runs its pipeline once: call ppipe.stream() again for another run")
        refuse_a_running_loop("ppipe.stream() cannot run inside a running event loop: use ppipe.stream_async()")
        self._begin(self._on_own_loop)
        return self

    def _on_own_loop(self, run: Coroutine[Any, Any, RunResult]) -> asyncio.Task[RunResult]:
        """The run's task on a loop of the stream's own, made once the run is checked: a sharded run's
        supervisor was forked before any loop existed, as the command line does it."""
        self._loop = SteppedLoop()
        return self._loop.loop.create_task(run)

    def __iter__(self) -> Iterator[AnyStr]:
        if self._task is None or self._done:  # before the block, or after it: the reader has left
            raise RuntimeError("iterate a stream inside its block: with ppipe.stream(...) as run")
        if self._reader is None:
            self._reader = self._read()
        return self._reader

    def __next__(self) -> AnyStr:
        return next(iter(self))

    def _read(self) -> Iterator[AnyStr]:
        """Every line, each as soon as it is whole; the loop runs only when none is left to give."""
        while True:
            yield from self._lines.lines()
            if self._lines.ended or self._loop is None:
                return
            chunk = self._outlet.take()
            self._take(chunk if chunk is not None else self._loop.run_until(self._outlet.get()))

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            self._leave(error)
            self._wait_for_the_end(loop)
        finally:
            self._done = True
            loop.close()  # a run still going (the wait itself failed) is cancelled there, and so reaped
        self._conclude(error)

    def _wait_for_the_end(self, loop: SteppedLoop) -> None:
        """Runs the loop until the run has ended; a Ctrl-C meanwhile stops it, and raises once it is reaped."""
        assert self._task is not None
        interrupted = False
        while not self._task.done():
            try:
                loop.run_until(asyncio.wait({self._task}))
            except KeyboardInterrupt:
                interrupted = True
                self._stop()
        if interrupted:
            raise KeyboardInterrupt


class AsyncStreamedRun(_Streamed[AnyStr]):
    """:class:`StreamedRun` on the caller's running loop: ``async with ppipe.stream_async(...) as run:``.

    The same lines, ends and result; the run moves whenever the loop runs,
    so the block's own awaits overlap with it. A cancellation of the block
    (``asyncio.timeout``, Ctrl-C under :func:`asyncio.run`) stops the run
    as a cancelled ``run_async`` is, and goes on once every process is
    reaped.
    """

    _available: Iterator[AnyStr] = iter(())

    async def __aenter__(self) -> AsyncStreamedRun[AnyStr]:
        if self._task is not None:
            raise RuntimeError("a stream runs its pipeline once: call ppipe.stream_async() again for another run")
        self._begin(asyncio.ensure_future)
        return self

    def __aiter__(self) -> AsyncStreamedRun[AnyStr]:
        return self

    async def __anext__(self) -> AnyStr:
        if self._task is None or self._done:  # before the block, or after it: the reader has left
            raise RuntimeError("iterate a stream inside its block: async with ppipe.stream_async(...) as run")
        while (line := next(self._available, None)) is None:
            if self._lines.ended:
                raise StopAsyncIteration
            self._take(await self._outlet.get())
            self._available = self._lines.lines()
        return line

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._task is None or self._done:
            return
        self._leave(error)
        cancelled = False
        while not self._task.done():
            try:
                await asyncio.wait({self._task})
            except asyncio.CancelledError:
                cancelled = True
                self._stop()
        self._done = True
        self._conclude(error)
        if cancelled:
            raise asyncio.CancelledError
