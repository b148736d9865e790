"""The tasks' output and stderr, read from their files, into ppipe's own: whole lines, tagged and ordered as asked.

The same :class:`~ppipe.shards.output.OutputMerge` and targets a local
sharded run writes its shards' output through, so ``--tag``,
``--keep-order``, the view and a capture mean the same whether the shards
ran here or on a cluster.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from ppipe.cluster.tasks import RemoteAttempt, RemoteTask
from ppipe.engine.options import RunOptions
from ppipe.engine.sinks import LineJoiner, Sink
from ppipe.shards.output import Lasting, OutputMerge, TagSink
from ppipe.shards.plan import ShardPlan
from ppipe.shards.streams import stderr_target, stdout_target
from ppipe.snapshots import RunObserver


class RemoteStreams:
    """ppipe's stdout and stderr during an ``--on slurm`` run; ``lost`` hears of output that could not be kept."""

    def __init__(
        self, plan: ShardPlan, options: RunOptions, observer: RunObserver | None, *, lost: Callable[[str], None]
    ) -> None:
        self.plan = plan
        self.observer = observer
        self.lost = lost
        target, self.capture = stdout_target(options, observer)
        self.output = OutputMerge(target, shards=plan.total, keep_order=plan.keep_order)
        self.errors_target = Lasting(stderr_target(options))
        self.errors = LineJoiner(self.errors_target, end_lines=True)

    @property
    def read(self) -> bool:
        """Whether anyone still reads ppipe's output (``| head -1`` may have left)."""
        return self.output.target.alive

    def connect(self, attempt: RemoteAttempt) -> None:
        """Gives a new attempt its way into the merged output and stderr."""
        tag = self.plan.tag_of(attempt.task_id)  # an array's tasks are numbered as the plan's shards
        attempt.out.sink = self.output.sink_for(attempt.task_id, tag, lost=self._lost)
        attempt.err.sink = self._error_sink(attempt.task_id, tag)

    def _error_sink(self, task_id: int, tag: bytes | None) -> Sink:
        watched = self.observer.stderr_sink(task_id, None) if self.observer is not None else None
        if watched is not None:
            return LineJoiner(watched, end_lines=True)
        if tag is not None:
            return TagSink(self.errors, tag)
        return self.errors

    async def pass_on(self, attempt: RemoteAttempt) -> None:
        """What the attempt added to its output and stderr files since the last look."""
        data = attempt.out.read_new()
        if data and attempt.out.sink is not None:
            attempt.bytes_out += len(data)
            await attempt.out.sink.write(data, attempt)
        errors = attempt.err.read_new()
        if errors and attempt.err.sink is not None:
            await attempt.err.sink.write(errors, attempt.err)

    async def finish(self, attempt: RemoteAttempt) -> None:
        """The attempt will write no more: its unfinished last lines go out."""
        if attempt.out.sink is not None:
            await attempt.out.sink.finish(attempt)
        if attempt.err.sink is not None:
            await attempt.err.sink.finish(attempt.err)

    async def task_done(self, task: RemoteTask) -> None:
        """The task will have no more attempts: with ``--keep-order``, the next task's output may follow."""
        if not task.output_done:
            task.output_done = True
            await self.output.shard_done(task.task_id)

    async def close(self, tasks: Sequence[RemoteTask]) -> None:
        for task in tasks:
            with contextlib.suppress(Exception):
                await self.task_done(task)
        with contextlib.suppress(Exception):
            await self.output.close()
        with contextlib.suppress(Exception):
            await self.errors_target.close()

    def _lost(self, why: str) -> None:
        self.lost(f"ppipe: {why}")
