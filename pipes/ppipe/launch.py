"""Starting a run: the one place that tells a plain run from a sharded one, and local shards from a cluster's.

Everything after the start — results, snapshots, the view, the summary, the
report, the exit-status policy — sees one model: a run of shards, each with
attempts (:mod:`ppipe.results`, :mod:`ppipe.snapshots`). A plain run is one
shard with one attempt. It is still run in ppipe's own process, by the
engine directly, with no supervisor and no shard machinery imported, so its
start-up does not grow: :class:`LocalRun` only presents it in that model.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ppipe import policy
from ppipe.engine.execution import Execution, prepare
from ppipe.engine.options import RunningPipeline, RunOptions
from ppipe.graph import Graph
from ppipe.results import RunResult

if TYPE_CHECKING:
    from ppipe.cluster.remote import SlurmSpec
    from ppipe.engine.sinks import Sink
    from ppipe.graph import Stage
    from ppipe.shards.plan import ShardPlan
    from ppipe.snapshots import PipelineSnapshot, RunObserver, RunSnapshot, ShardSnapshot


async def launch(
    pipeline: str | Graph,
    options: RunOptions,
    plan: ShardPlan | None = None,
    observer: RunObserver | None = None,
    on: SlurmSpec | None = None,
) -> RunResult:
    """Runs ``pipeline`` to the end on the running event loop: as ``plan``'s shards, or once here when None.

    A sharded run needs the pipeline as text (each shard fills its own
    placeholders in); a plain one takes text or a parsed :class:`Graph`.
    With ``on``, the shards are the tasks of a Slurm job array (``plan``
    required); their reports come back as one merged result. Raises
    :class:`~ppipe.errors.PpipeError` before anything starts for bad syntax
    or a command that cannot be run, and
    :class:`~ppipe.cluster.slurm.SlurmError` when Slurm refuses.
    """
    if on is not None:
        from ppipe.cluster.outcome import run_on_slurm

        if plan is None:
            raise ValueError("a run on a cluster is a sharded run: give it a plan")
        return (await run_on_slurm(on, plan, options, observer)).result
    if plan is None:
        graph = pipeline if isinstance(pipeline, Graph) else _parse(pipeline, options)
        return await LocalRun(graph, options, observer).run()
    from ppipe.shards.execution import ShardedExecution

    return await ShardedExecution(_text(pipeline), plan, options, observer).run()


def run_to_end(
    pipeline: str | Graph,
    options: RunOptions,
    plan: ShardPlan | None = None,
    observer: RunObserver | None = None,
) -> RunResult:
    """:func:`launch` in a fresh event loop, for callers that have none (the command line).

    A sharded run is checked and its supervisor started before the loop
    exists, so that the supervisor is a fork of this process, not a new
    interpreter: shards start a fifth of a second sooner.
    """
    import asyncio

    if plan is None:
        return asyncio.run(launch(pipeline, options, plan, observer))
    from ppipe.shards.execution import ShardedExecution

    execution = ShardedExecution(_text(pipeline), plan, options, observer)
    execution.prepare()
    return asyncio.run(execution.run())


def _text(pipeline: str | Graph) -> str:
    from ppipe.errors import UsageError

    if isinstance(pipeline, Graph):
        raise UsageError("a sharded run needs the pipeline as text: each shard substitutes its placeholders")
    return pipeline


def _parse(text: str, options: RunOptions) -> Graph:
    from ppipe.language.parser import parse

    return parse(text, env=options.env, cwd=options.cwd)


class LocalRun:
    """A plain run: one pipeline in ppipe's own process, seen as a run of one shard with one attempt.

    It is the engine's observer (:class:`~ppipe.engine.execution.PipelineObserver`)
    and passes what the engine tells it on to the run's observer in the run's terms.
    """

    def __init__(self, graph: Graph, options: RunOptions, observer: RunObserver | None = None) -> None:
        self._graph = graph
        self.observer = observer
        self.options = options
        self.execution: Execution | None = None

    async def run(self) -> RunResult:
        watched = dataclasses.replace(self.options, observer=self if self.observer is not None else None)
        self.execution = prepare(self._graph, watched)
        return policy.plain_run(await self.execution.run())

    # -- the run, as its observer sees it

    @property
    def graph(self) -> Graph | None:
        return self._graph

    def snapshot(self) -> RunSnapshot:
        from ppipe.snapshots import RunSnapshot  # only a watched run takes snapshots (not imported otherwise)

        assert self.execution is not None, "the view asks for snapshots only once the run has started"
        pipeline = self.execution.snapshot()
        return RunSnapshot(pipeline.elapsed, (_shard_snapshot(pipeline, self.execution.stdout_bytes()),))

    # -- the engine's observer interface, passed on

    def stderr_sink(self, stage: Stage) -> Sink | None:
        return self.observer.stderr_sink(0, stage) if self.observer is not None else None

    def stdout_sink(self) -> Sink | None:
        return self.observer.stdout_sink() if self.observer is not None else None

    def started(self, execution: RunningPipeline) -> None:
        if self.observer is not None:
            self.observer.started(self)

    def finished(self) -> None:
        if self.observer is not None:
            self.observer.finished()


def _shard_snapshot(pipeline: PipelineSnapshot, bytes_out: int | None) -> ShardSnapshot:
    """The one shard of a plain run: running until every stage has ended."""
    from ppipe.snapshots import ShardSnapshot, ShardState, StageState

    states = {stage.state for stage in pipeline.stages}
    running = StageState.RUNNING in states or StageState.WAITING in states
    return ShardSnapshot(
        task_id=0,
        state=ShardState.RUNNING if running else ShardState.DONE,
        pid=None,
        attempts=1,
        bytes_in=None,
        bytes_out=bytes_out,
        elapsed=pipeline.elapsed,
        stages=pipeline,
    )


#: A plain run's result from its pipeline's (the rule is the policy's, which loading a report follows too).
run_of = policy.plain_run
