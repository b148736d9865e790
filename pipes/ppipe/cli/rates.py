"""Steady rates and ETAs for the stages reading files: what the view and ``--progress`` show as ``45% 12 MB/s ETA 8s``.

A stage's reading progress (its file positions, see
:mod:`ppipe.engine.positions`) moves in steps: a reader takes 128 KiB at a
time, a pipe downstream fills and drains, a refresh lands just before or
after a step. A rate taken between two refreshes jumps with each step, and
the ETA with it. :class:`RateMeter` smooths it as pv and rich do: an
exponentially weighted moving average of the bytes per second, with a time
constant of :data:`WINDOW` seconds whatever the refresh interval. No rich
here: ``--progress`` uses it without a terminal.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ppipe.snapshots import StageSnapshot, StageState

#: The moving average's time constant, in seconds: a step in the true rate shows two thirds of
#: itself after this long. Long enough that a ten-times-a-second refresh moves the average by
#: at most ~3% of what one frame carries; short enough to follow a reader that really slows.
WINDOW = 3.0


class RateMeter:
    """The smoothed rate of a growing count (bytes read so far), fed the count at each refresh.

    The average weighs each interval by its length and by ``exp(-age /
    window)``, and divides by the weights so far: until ``window`` seconds
    have passed it is the plain average since the first count, so it starts
    at the true rate rather than climbing from 0. A count that goes back
    (a file read again) moves nothing. ``clock`` gives the time in seconds
    (a test's own makes the figures exact).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, window: float = WINDOW) -> None:
        self.clock = clock
        self.window = window
        self._last: tuple[float, int] | None = None
        self._bytes = 0.0  # decayed bytes moved
        self._seconds = 0.0  # decayed seconds they took

    def update(self, count: int) -> None:
        """Records that the count is ``count`` now."""
        now = self.clock()
        if self._last is None:
            self._last = (now, count)
            return
        then, before = self._last
        if now <= then:
            self._last = (then, max(before, count))
            return
        decay = math.exp(-(now - then) / self.window)
        self._bytes = self._bytes * decay + max(0, count - before)
        self._seconds = self._seconds * decay + (now - then)
        self._last = (now, max(before, count))

    @property
    def rate(self) -> float | None:
        """Bytes per second, smoothed; None until two counts some time apart."""
        return self._bytes / self._seconds if self._seconds > 0 else None

    def eta(self, left: int) -> float | None:
        """Seconds until ``left`` more bytes have moved at the rate; None while the rate is unknown or 0."""
        rate = self.rate
        if left <= 0:
            return 0.0
        return left / rate if rate else None


@dataclass(frozen=True)
class InputProgress:
    """How far one stage has read its files: ``fraction`` (0 to 1), the smoothed rate and the ETA."""

    stage: int
    done: int
    size: int
    files: int
    rate: float | None
    eta: float | None

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.size) if self.size else 1.0


class InputRates:
    """A :class:`RateMeter` per stage reading files: :meth:`measure` at each refresh, then :meth:`progress`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._meters: dict[int, RateMeter] = {}

    def measure(self, stages: Iterable[StageSnapshot]) -> None:
        """Feeds each stage's bytes read so far to its meter."""
        for stage in stages:
            if stage.input_read is not None:
                self._meters.setdefault(stage.id, RateMeter(self.clock)).update(stage.input_read)

    def progress(self, stage: StageSnapshot) -> InputProgress | None:
        """The stage's progress as last measured; None when it reads no file or its figure is unknown.

        The ETA is None once the stage has read everything or stopped
        running, and while its rate is unknown.
        """
        if not stage.input_size or stage.input_read is None:
            return None
        done = min(stage.input_read, stage.input_size)
        meter = self._meters.get(stage.id)
        rate = meter.rate if meter is not None else None
        reading = meter is not None and stage.state is StageState.RUNNING and done < stage.input_size
        eta = meter.eta(stage.input_size - done) if meter is not None and reading else None
        return InputProgress(stage.id, done, stage.input_size, stage.input_files, rate, eta)

    def leading(self, stages: Iterable[StageSnapshot]) -> InputProgress | None:
        """The progress that gives the whole run's percent and ETA: the first stage upstream still reading files.

        Stages are in the order of the text, so the first running stage
        with files left to read is the most upstream one: what it has left
        is what the rest of the pipeline still waits for. A later stage
        reading a file (``join - other.txt``) is usually paced by its
        stdin, so its own ETA would mislead. Once every reader is done, the
        last of them (at 100%, no ETA); None when no stage reads a file.
        """
        last = None
        for stage in stages:
            progress = self.progress(stage)
            if progress is None:
                continue
            if stage.state is StageState.RUNNING and progress.done < progress.size:
                return progress
            last = progress
        return last
