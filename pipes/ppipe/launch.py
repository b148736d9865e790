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
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from ppipe import policy
from ppipe.engine.execution import Execution
from ppipe.engine.options import RunningPipeline, RunOptions
from ppipe.engine.processes import resolve_commands
from ppipe.graph import Graph
from ppipe.results import RunResult

if TYPE_CHECKING:
    from ppipe.cluster.remote import SlurmSpec
    from ppipe.engine.sinks import Sink
    from ppipe.graph import Stage
    from ppipe.shards.plan import ShardPlan
    from ppipe.snapshots import PipelineSnapshot, RunObserver, RunSnapshot, ShardSnapshot


class Launchable(Protocol):
    """A run checked and ready: :meth:`run` runs it to the end on the running event loop, once."""

    async def run(self) -> RunResult: ...


def prepare_run(
    pipeline: str | Graph,
    options: RunOptions,
    plan: ShardPlan | None = None,
    observer: RunObserver | None = None,
    on: SlurmSpec | None = None,
) -> Launchable:
    """The run of ``pipeline``, checked: as ``plan``'s shards, once here when None, or as a Slurm array with ``on``.

    A sharded run needs the pipeline as text (each shard fills its own
    placeholders in); a plain one takes text or a parsed :class:`Graph`.
    Raises :class:`~ppipe.errors.PpipeError` now, before anything starts,
    for bad syntax, a command that cannot be run or a plan that cannot
    be; an array's errors come from Slurm as it runs. Called before an
    event loop runs, it forks a sharded run's supervisor at once: shards
    then start a fifth of a second sooner than from a fresh interpreter.
    """
    if on is not None:
        if plan is None:
            raise ValueError("a run on a cluster is a sharded run: give it a plan")
        return _OnCluster(on, plan, options, observer)
    if plan is None:
        local = LocalRun(pipeline if isinstance(pipeline, Graph) else _parse(pipeline, options), options, observer)
        local.prepare()
        return local
    from ppipe.shards.execution import ShardedExecution

    sharded = ShardedExecution(_text(pipeline), plan, options, observer)
    sharded.prepare()
    return sharded


async def launch(
    pipeline: str | Graph,
    options: RunOptions,
    plan: ShardPlan | None = None,
    observer: RunObserver | None = None,
    on: SlurmSpec | None = None,
) -> RunResult:
    """Runs ``pipeline`` to the end on the running event loop; the arguments are :func:`prepare_run`'s.

    Raises what :func:`prepare_run` raises, and
    :class:`~ppipe.cluster.slurm.SlurmError` when Slurm refuses.
    """
    return await prepare_run(pipeline, options, plan, observer, on).run()


def run_to_end(
    pipeline: str | Graph,
    options: RunOptions,
    plan: ShardPlan | None = None,
    observer: RunObserver | None = None,
) -> RunResult:
    """:func:`launch` in a fresh event loop, for callers that have none (the command line).

    The run is checked, and a sharded run's supervisor forked, before the
    loop exists (see :func:`prepare_run`).
    """
    import asyncio

    return asyncio.run(prepare_run(pipeline, options, plan, observer).run())


class _OnCluster:
    """A sharded run as the tasks of a Slurm job array; its tasks' reports come back as one merged result."""

    def __init__(self, on: SlurmSpec, plan: ShardPlan, options: RunOptions, observer: RunObserver | None) -> None:
        self.on, self.plan, self.options, self.observer = on, plan, options, observer

    async def run(self) -> RunResult:
        from ppipe.cluster.outcome import run_on_slurm

        return (await run_on_slurm(self.on, self.plan, self.options, self.observer)).result


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
        self._paths: Mapping[int, str] | None = None

    def prepare(self) -> None:
        """Finds every stage's command: :class:`~ppipe.errors.CommandError` now for one that cannot be run.

        Called by :meth:`run` when nobody called it first.
        """
        env = os.environ if self.options.env is None else self.options.env
        self._paths = resolve_commands(self._graph, env)

    async def run(self) -> RunResult:
        if self._paths is None:
            self.prepare()
        assert self._paths is not None
        watched = dataclasses.replace(self.options, observer=self if self.observer is not None else None)
        self.execution = Execution(self._graph, watched, self._paths)
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
