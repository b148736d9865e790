"""How to run one graph: :class:`RunOptions`, and the :class:`PipelineObserver` that may watch it.

The CLI, the Python API and a shard attempt each build a :class:`RunOptions`;
the engine reads nothing else. Its defaults are a library call's: ppipe's own
stdin, stdout and stderr, no signal handlers of its own, no line counting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeAlias

from ppipe.engine.slices import FileSlice
from ppipe.engine.splice import SPLICE_AVAILABLE
from ppipe.engine.tee import tee_function

if TYPE_CHECKING:
    from ppipe.engine.sinks import Sink
    from ppipe.graph import Stage
    from ppipe.snapshots import PipelineSnapshot


class Capture:
    """The type of :data:`CAPTURE`, its one value."""

    def __repr__(self) -> str:
        return "ppipe.CAPTURE"


#: ``stdout=CAPTURE`` collects the pipeline's output into ``RunResult.stdout``.
CAPTURE = Capture()

#: What the first stage reads: a descriptor (default 0), bytes fed by ppipe, or part of a file ppipe reads.
Input = int | bytes | FileSlice | None

#: Where the last stage writes: a descriptor (default 1), :data:`CAPTURE`, or a sink ppipe's pumps write
#: into (the Python API's ``stream``: an :class:`~ppipe.engine.outlet.Outlet`).
Output: TypeAlias = "int | Capture | Sink | None"  # a string: sinks (and tornado) load only when used


class RunningPipeline(Protocol):
    """What an observer may ask of the run it watches (:class:`~ppipe.engine.execution.Execution` is one):
    a snapshot, and to stop it as a signal or ``--timeout`` would."""

    def snapshot(self) -> PipelineSnapshot: ...

    def stop_for(self, sig: int) -> None: ...

    def time_out(self, after: float | None = None) -> None: ...


class PipelineObserver(Protocol):
    """Something that watches one pipeline from the engine's own loop.

    A plain run's watcher (the view, through :class:`ppipe.launch.LocalRun`)
    or a shard attempt's link to ppipe (:mod:`ppipe.shards.supervisor`).
    ``stderr_sink`` may return a sink that a stage's stderr goes to instead
    of ppipe's fd 2, and ``stdout_sink`` one for the pipeline's output
    instead of ppipe's fd 1 (the view prints both above itself); ``started``
    is called once every stage is spawned; ``finished`` once all are reaped.
    """

    def stderr_sink(self, stage: Stage) -> Sink | None: ...

    def stdout_sink(self) -> Sink | None: ...

    def started(self, execution: RunningPipeline) -> None: ...

    def finished(self) -> None: ...


@dataclass(frozen=True)
class RunOptions:
    """How to run a graph; the CLI builds one of these from its options.

    ``kill_after`` is the grace between SIGTERM (or the forwarded signal)
    and SIGKILL. ``handle_signals`` installs SIGINT/SIGTERM/SIGHUP handlers
    for the run (the CLI does; library callers usually keep their own).

    ``count_lines`` counts the lines of every pumped edge, every byte of
    them, so the counts are exact; it costs a copy of every byte and a pass
    over it in Python, so it is off unless someone will see the figures.
    ``splice`` chooses the Linux fast path for edges from one stage to one
    other (:class:`~ppipe.engine.splice.SplicePump`): None means "where available,
    unless the environment says ``PPIPE_SPLICE=0``". Lines on it are counted
    through ``tee(2)``; where that is missing, an edge whose lines must be
    counted exactly goes through Python instead.
    """

    no_fail: bool = False
    timeout: float | None = None
    kill_after: float = 2.0
    handle_signals: bool = False
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    stdin: Input = None
    stdout: Output = None
    stderr: int | None = None
    count_lines: bool = False
    splice: bool | None = None
    #: The stage writing ppipe's stdout is a pager (less) that owns the terminal; see ``Execution.pager``.
    pager: bool = False
    #: Told when the run has started and finished; may take the stages' stderr (the live view).
    observer: PipelineObserver | None = None

    @property
    def use_splice(self) -> bool:
        wanted = os.environ.get("PPIPE_SPLICE", "1") != "0" if self.splice is None else self.splice
        return wanted and SPLICE_AVAILABLE and not (self.count_lines and tee_function() is None)
