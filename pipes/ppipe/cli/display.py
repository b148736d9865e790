"""The live view: a rich table of a run's stages or shards at the bottom of the terminal, from the run's own loop.

:class:`LiveView` owns the terminal for the run through a
:class:`~ppipe.cli.screen.Screen`: entering hides the cursor, leaving always
erases the frame and shows the cursor again, even on Ctrl-C or an error.
The engine tells it when the run has started; a tornado
``PeriodicCallback`` then draws a frame about ten times a second from the
run's snapshots, laid out by a row layout (:mod:`ppipe.cli.rows`) in the
room the terminal has. The stages' stderr and the last stage's output are
printed above it, whole lines at a time, as raw bytes: they are kept until
the next paint (at most ``OUTPUT_DELAY`` later, or at once past
``OUTPUT_BATCH`` bytes) and written with the frame in one update, so the
view costs the output nothing but the frame's few hundred bytes per paint.
When the run ends the frame gives way to a summary with exact figures and,
when a stage failed, a panel with each failed stage's status and last
stderr lines.

Importing this module imports rich, as do the modules it draws with
(:mod:`ppipe.cli.rows`, :mod:`ppipe.cli.tables`, :mod:`ppipe.cli.final`) and
``ppipe report show``'s; nothing a run without a view imports does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import IO, TYPE_CHECKING

from rich.cells import cell_len
from rich.console import Console, RenderableType
from tornado.ioloop import IOLoop, PeriodicCallback

from ppipe.cli.final import final_screen
from ppipe.cli.rows import ShardRows, StageRows
from ppipe.cli.screen import Screen
from ppipe.engine.sinks import Sink
from ppipe.graph import tree_prefixes
from ppipe.results import RunResult
from ppipe.snapshots import Run, RunSnapshot

if TYPE_CHECKING:
    from ppipe.graph import Stage

#: Frames drawn per second.
REFRESH_HZ = 10
#: The longest output waits above the frame before it is painted, in seconds.
OUTPUT_DELAY = 0.02
#: Output kept past this many bytes is painted at once.
OUTPUT_BATCH = 64 * 1024


class _ScreenSink(Sink):
    """Bytes printed above the frame, as they are or each line prefixed with its stage."""

    def __init__(self, view: LiveView, prefix: bytes = b"") -> None:
        self.view = view
        self.prefix = prefix

    async def write(self, chunk: bytes | memoryview, feeder: object) -> bool:
        data = bytes(chunk)
        if self.prefix:
            lines = data.removesuffix(b"\n").split(b"\n")
            data = b"".join(self.prefix + line + b"\n" for line in lines)
        self.view.above(data)
        return True


class LiveView:
    """The live view of a run; it owns the terminal between ``__enter__`` and ``__exit__``.

    It is the run's observer (:class:`~ppipe.snapshots.RunObserver`) and
    draws a frame in :meth:`refresh`, about ten times a second from the
    run's own loop once the run has started. A plain run is drawn as its
    stages (:class:`StageRows`), a sharded one as its shards
    (:class:`ShardRows`): the snapshot says which. Every frame fits the
    terminal as it is at that moment (:attr:`room` rows): the layouts fold
    what does not fit, never the footer.
    """

    def __init__(
        self,
        file: IO[str],
        *,
        show_output: bool = False,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.file = file
        self.console = console or Console(file=file, highlight=False)
        self.show_output = show_output
        #: Where rates and waits take their time from (a test's own clock makes them exact).
        self.clock = clock
        self.screen: Screen | None = None
        self._timer: PeriodicCallback | None = None
        self._output_due = False
        #: Frames drawn so far: the spinners turn with it.
        self.frame_number = 0
        self.run: Run | None = None
        self.stages = StageRows(self)
        self.shards = ShardRows(self)

    def __enter__(self) -> LiveView:
        self.file.flush()
        self.screen = Screen(self.file.fileno(), cell_width=cell_len)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.finished()
        if self.screen is not None:
            self.screen.close()  # always: the frame goes and the cursor comes back whatever happened

    @property
    def width(self) -> int:
        """The terminal's columns now."""
        return self.screen.size[0] if self.screen is not None else self.console.width

    @property
    def room(self) -> int:
        """The rows a frame may take now: all but one, so that output always has a row above it."""
        rows = self.screen.size[1] if self.screen is not None else self.console.height
        return max(1, rows - 1)

    def stdout_sink(self) -> Sink | None:
        return _ScreenSink(self) if self.show_output else None

    def stderr_sink(self, task_id: int, stage: Stage | None) -> Sink | None:
        """Stderr printed above the view, each line prefixed with its stage (a plain run) or its shard."""
        label = f"[{stage.id} {stage.argv[0]}] " if stage is not None else f"[shard {task_id}] "
        prefix = label.encode() if self.console.no_color else b"\x1b[2m" + label.encode() + b"\x1b[0m"
        return _ScreenSink(self, prefix=prefix)

    def started(self, run: Run) -> None:
        self.run = run
        self.stages.tree = tree_prefixes(run.graph) if run.graph is not None else {}
        self._timer = PeriodicCallback(self.refresh, 1000 / REFRESH_HZ)
        self._timer.start()
        self.refresh()

    def snapshot(self) -> RunSnapshot | None:
        """The run as it is now, or None before it has started."""
        return self.run.snapshot() if self.run is not None else None

    def finished(self) -> None:
        if self._timer is not None:
            self._timer.stop()

    def above(self, data: bytes) -> None:
        """Output for above the frame: painted with the next frame, soon, or at once when much is waiting."""
        if self.screen is None:
            return
        self.screen.above(data)
        if self.screen.pending_bytes >= OUTPUT_BATCH:
            self.screen.paint()
        elif not self._output_due:
            self._output_due = True
            IOLoop.current().call_later(OUTPUT_DELAY, self._paint_output)

    def _paint_output(self) -> None:
        self._output_due = False
        if self.screen is not None and self.screen.pending_bytes:
            self.screen.paint()

    def refresh(self) -> None:
        """Takes a snapshot of the run, measures the change since the last one, draws the frame."""
        snapshot = self.snapshot()
        if snapshot is not None and self.screen is not None:
            self.screen.show(self.lines_of(self.frame(snapshot)))

    def lines_of(self, renderable: RenderableType) -> list[str]:
        """``renderable`` as the terminal's lines, escape sequences included, at the terminal's width."""
        self.console.width = self.width
        with self.console.capture() as capture:
            self.console.print(renderable, crop=True)
        return capture.get().replace("\r", "").rstrip("\n").split("\n")[-self.room :]

    def frame(self, snapshot: RunSnapshot) -> RenderableType:
        """The next frame: measures what changed since the last snapshot, then draws this one."""
        self.frame_number += 1
        rows = self.shards if snapshot.sharded else self.stages
        rows.measure(snapshot)
        return rows.render(snapshot)

    def print(self, renderable: RenderableType) -> None:
        """Prints below what the run left on the terminal (once the frame is gone: the summary)."""
        self.console.width = self.width
        self.console.print(renderable)

    def render_summary(self, result: RunResult) -> RenderableType:
        """The end of the run: exact figures, then a panel for each failure (``ppipe report show`` draws the same)."""
        return final_screen(result, self)

    def bottleneck(self, snapshot: RunSnapshot) -> int | None:
        """The stage holding a plain run back, if one is (see :meth:`StageRows.bottleneck`)."""
        return self.stages.bottleneck(snapshot)
