"""The live view: a rich table of a run's stages or shards on the terminal, from the run's own loop.

:class:`LiveView` owns the terminal for the run: entering starts a rich
``Live`` (``auto_refresh=False``, so no thread) and leaving always stops it,
restoring the cursor, even on Ctrl-C or an error. The engine tells it when
the run has started; a tornado ``PeriodicCallback`` then redraws it about ten
times a second from the run's snapshots, drawn by a row layout (:mod:`ppipe.cli.rows`).
While it is up, the stages' stderr and the last stage's output are printed
above it, whole lines at a time, so nothing tears the table. When the run
ends the table gives way to a summary with exact figures and, when a stage
failed, a panel with each failed stage's status and last stderr lines.

Importing this module imports rich, as do the modules it draws with
(:mod:`ppipe.cli.rows`, :mod:`ppipe.cli.tables`); nothing else in ppipe does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import IO, TYPE_CHECKING

from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text
from tornado.ioloop import PeriodicCallback

from ppipe.cli.rows import ShardRows, StageRows
from ppipe.engine.sinks import Sink
from ppipe.graph import tree_prefixes
from ppipe.results import RunResult
from ppipe.snapshots import Run, RunSnapshot

if TYPE_CHECKING:
    from ppipe.graph import Stage

#: Redraws per second.
REFRESH_HZ = 10


class _ConsoleSink(Sink):
    """Prints bytes above the live table, as they are or each line prefixed with its stage."""

    def __init__(self, view: LiveView, prefix: str = "") -> None:
        self.view = view
        self.prefix = prefix

    async def write(self, chunk: bytes | memoryview, feeder: object) -> bool:
        text = bytes(chunk).decode("utf-8", "replace")
        if self.prefix:
            for line in text.splitlines():
                self.view.print(Text.assemble((self.prefix, "dim"), line))
        else:
            # Whole lines (a LineJoiner feeds this); the print ends the last one.
            self.view.print(Text(text.removesuffix("\n")))
        return True


class LiveView:
    """The live view of a run; it owns the terminal between ``__enter__`` and ``__exit__``.

    It is the run's observer (:class:`~ppipe.snapshots.RunObserver`) and
    redraws in :meth:`refresh`, about ten times a second from the run's own
    loop once the run has started. A plain run is drawn as its stages
    (:class:`StageRows`), a sharded one as its shards (:class:`ShardRows`):
    the snapshot says which.
    """

    def __init__(
        self,
        file: IO[str],
        *,
        show_output: bool = False,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console or Console(file=file, highlight=False)
        self.show_output = show_output
        #: Where rates and waits take their time from (a test's own clock makes them exact).
        self.clock = clock
        self.live = Live(
            console=self.console, auto_refresh=False, transient=True, redirect_stdout=False, redirect_stderr=False
        )
        self._timer: PeriodicCallback | None = None
        #: Frames drawn so far: the spinners turn with it.
        self.frame_number = 0
        self.run: Run | None = None
        self.stages = StageRows(self)
        self.shards = ShardRows(self)

    def __enter__(self) -> LiveView:
        self.live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.finished()
        self.live.stop()  # always: the cursor comes back whatever happened

    def stdout_sink(self) -> Sink | None:
        return _ConsoleSink(self) if self.show_output else None

    def stderr_sink(self, task_id: int, stage: Stage | None) -> Sink | None:
        """Stderr printed above the view, each line prefixed with its stage (a plain run) or its shard."""
        prefix = f"[{stage.id} {stage.argv[0]}] " if stage is not None else f"[shard {task_id}] "
        return _ConsoleSink(self, prefix=prefix)

    def started(self, run: Run) -> None:
        self.run = run
        self.stages.tree = tree_prefixes(run.graph) if run.graph is not None else {}
        self.start_refreshing()

    def snapshot(self) -> RunSnapshot | None:
        """The run as it is now, or None before it has started."""
        return self.run.snapshot() if self.run is not None else None

    def start_refreshing(self) -> None:
        self._timer = PeriodicCallback(self.refresh, 1000 / REFRESH_HZ)
        self._timer.start()
        self.refresh()

    def finished(self) -> None:
        if self._timer is not None:
            self._timer.stop()

    def print(self, renderable: RenderableType) -> None:
        self.live.console.print(renderable, soft_wrap=True)

    def refresh(self) -> None:
        """Takes a snapshot of the run, measures the change since the last one, redraws."""
        snapshot = self.snapshot()
        if snapshot is not None:
            self.live.update(self.frame(snapshot), refresh=True)

    def frame(self, snapshot: RunSnapshot) -> RenderableType:
        """The next frame: measures what changed since the last snapshot, then draws this one."""
        self.frame_number += 1
        rows = self.shards if snapshot.sharded else self.stages
        rows.measure(snapshot)
        return rows.render(snapshot)

    def render_summary(self, result: RunResult) -> RenderableType:
        """The end of the run: exact figures, then a panel for each failure."""
        return self.stages.summary(result) if result.local is not None else self.shards.summary(result)

    def bottleneck(self, snapshot: RunSnapshot) -> int | None:
        """The stage holding a plain run back, if one is (see :meth:`StageRows.bottleneck`)."""
        return self.stages.bottleneck(snapshot)
