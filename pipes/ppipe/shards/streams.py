"""Where every shard attempt's stdout and stderr go: one merged output, ppipe's stderr, or the view.

Each attempt hands ppipe its pipes' far ends; :class:`ShardStreams` pumps
them into the shared :class:`~ppipe.shards.output.OutputMerge` (whole lines,
``--tag``, ``--keep-order``) and into ppipe's stderr (whole lines, tagged
with ``--tag``), or into what the live view shows above itself.
"""

from __future__ import annotations

import asyncio
import contextlib

from ppipe.engine.descriptors import stream
from ppipe.engine.options import RunOptions
from ppipe.engine.pumps import Pump
from ppipe.engine.sinks import CaptureSink, LineJoiner, Sink, sink_for_fd
from ppipe.shards.attempts import Attempt, Shard
from ppipe.shards.output import Lasting, OutputMerge, TagSink
from ppipe.shards.plan import ShardPlan
from ppipe.snapshots import RunObserver


def stdout_target(options: RunOptions, observer: RunObserver | None) -> tuple[Sink, CaptureSink | None]:
    """Where a sharded run's merged output goes, whatever ran its shards: the API's stream, the view, memory,
    or a descriptor.

    The second item is the capture, when ``options.stdout`` asked for one.
    """
    if isinstance(options.stdout, Sink):  # ppipe.stream reads it; whole lines already, as below
        return options.stdout, None
    if observer is not None and (watched := observer.stdout_sink()) is not None:
        return watched, None  # whole lines already: each attempt writes through a LineAssembler
    stdout = options.stdout
    if stdout is not None and not isinstance(stdout, int):  # CAPTURE
        capture = CaptureSink()
        return capture, capture
    return sink_for_fd(1 if stdout is None else stdout), None


def stderr_target(options: RunOptions) -> Sink:
    """Where a sharded run's stderr lines go when no view takes them."""
    return sink_for_fd(2 if options.stderr is None else options.stderr)


class ShardStreams:
    """The run's output and error streams, shared by every attempt of every shard."""

    def __init__(self, options: RunOptions, observer: RunObserver | None, plan: ShardPlan) -> None:
        self.options = options
        self.observer = observer
        self.plan = plan
        target, self.capture = stdout_target(options, observer)
        self.output = OutputMerge(target, shards=plan.local, keep_order=plan.keep_order)
        self.errors_target = Lasting(stderr_target(options))
        self.errors = LineJoiner(self.errors_target, end_lines=True)

    @property
    def output_error(self) -> OSError | None:
        """Why ppipe's stdout could not take the output, if so: the run then fails."""
        return self.output.target.inner.error

    @property
    def keeps_order(self) -> bool:
        """Whether each shard's end may release output held for ``--keep-order``."""
        return self.output.gates is not None

    @property
    def read(self) -> bool:
        """Whether anyone still reads ppipe's output; once nobody does, running again would only fail again."""
        return self.output.target.alive

    def connect(self, shard: Shard, attempt: Attempt, stdout_fd: int, stderr_fd: int) -> None:
        """Pumps the attempt's stdout and stderr (ppipe's ends of its pipes) from now on."""
        tag = self.plan.tag_of(shard.index, attempt.slot)
        out_sink = self.output.sink_for(shard.index, tag, lost=attempt.lose)
        attempt.out_pump = Pump(stream(stdout_fd), [out_sink], count_lines=self.options.count_lines)
        err_sink: Sink = self.errors
        watched = self.observer.stderr_sink(shard.task_id, None) if self.observer is not None else None
        if watched is not None:
            err_sink = LineJoiner(watched, end_lines=True)
        elif tag is not None:
            err_sink = TagSink(self.errors, tag)
        err_pump = Pump(stream(stderr_fd), [err_sink], count_lines=False, keep_draining=True)
        attempt.pump_tasks = [asyncio.ensure_future(attempt.out_pump.run()), asyncio.ensure_future(err_pump.run())]
        for task in attempt.pump_tasks:
            task.add_done_callback(lambda _: attempt.pumped())

    async def flush(self, shard: Shard) -> None:
        """Once the shard's output has all arrived, ``--keep-order`` may move on to the next shard."""
        try:
            await asyncio.gather(*(task for a in shard.attempts for task in a.pump_tasks[:1]), return_exceptions=True)
            await self.output.shard_done(shard.index)
        finally:
            shard.settled.set()  # whatever happened, the run must be able to end

    async def close(self) -> None:
        """Flushes and releases both streams; errors here were counted already."""
        with contextlib.suppress(Exception):
            await self.output.close()
        with contextlib.suppress(Exception):
            await self.errors_target.close()
