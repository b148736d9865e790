"""``--progress plain`` and ``--progress json``: a status on stderr at an interval, for logs and dashboards.

No escape codes, nothing redrawn, no rich: each line stands alone in a log.
A plain run's line names each stage; a stage reading files says how far
(``45% 12.0 MB/s``), and the run's ETA comes from the first stage upstream
still reading them (:meth:`~ppipe.cli.rates.InputRates.leading`). A sharded
run's line counts its shards by state, with an estimate of the time left
and, for a regular file on stdin, how much of it has been dealt; then the
running shards. ``json`` prints the same as one JSON object a line,
and a last one, ``"final": true``, when the run ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from tornado.ioloop import PeriodicCallback

from ppipe.cli.rates import InputProgress, InputRates
from ppipe.cli.units import human_bytes, seconds_text
from ppipe.snapshots import Run, RunSnapshot, ShardSnapshot, ShardState, StageSnapshot, StageState, Tally

if TYPE_CHECKING:
    from ppipe.engine.sinks import Sink
    from ppipe.graph import Stage


class PlainProgress:
    """``--progress plain``: a one-line status on stderr every ``every`` seconds.

    An observer like the live view, but it leaves the stages' stderr and
    output alone. Reading rates are measured at each report (``clock``).
    """

    def __init__(self, file: IO[str], every: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.file = file
        self.every = every
        self.rates = InputRates(clock)
        self.run: Run | None = None
        self._timer: PeriodicCallback | None = None

    def stdout_sink(self) -> Sink | None:
        return None

    def stderr_sink(self, task_id: int, stage: Stage | None) -> Sink | None:
        return None

    def started(self, run: Run) -> None:
        self.run = run
        self._timer = PeriodicCallback(self.report, self.every * 1000)
        self._timer.start()

    def finished(self) -> None:
        if self._timer is not None:
            self._timer.stop()

    def report(self) -> None:
        if self.run is not None:
            self.write(self.line(self.measured(self.run.snapshot())))

    def measured(self, snapshot: RunSnapshot) -> RunSnapshot:
        """``snapshot``, its stages' reading measured into the rates."""
        self.rates.measure(snapshot.stages)
        return snapshot

    def write(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.file.write(line + "\n")
            self.file.flush()

    def line(self, snapshot: RunSnapshot) -> str:
        """``ppipe: 12.0s | 1 seq running 6.9 MB out | 3 wc done``; with a stage reading files
        ``ppipe: 12.0s | ETA 8.2s | 1 grep x app.log running 1.2 MB out 45% 12.0 MB/s | 2 wc -l running``;
        for a sharded run
        ``ppipe: 12.0s | 40 done | 2 running | 957 waiting | ETA 4m10s | 6.9 MB out | shard 41 running 1.2 MB out``."""
        parts = [f"ppipe: {seconds_text(snapshot.elapsed)}"]
        if snapshot.sharded:
            parts.extend(Tally.of(snapshot).parts())
            parts.append(f"{human_bytes(snapshot.bytes_out)} out")
            parts.extend(_shard_part(shard) for shard in snapshot.shards if shard.state in _LIVE)
        else:
            leading = self.rates.leading(snapshot.stages)
            if leading is not None and leading.eta is not None:
                parts.append(f"ETA {seconds_text(leading.eta)}")
            parts.extend(_stage_part(stage, self.rates.progress(stage)) for stage in snapshot.stages)
        return " | ".join(parts)


class JsonProgress(PlainProgress):
    """``--progress json``: the same figures as one JSON object a line, and a final one when the run ends."""

    def report(self) -> None:
        if self.run is not None:
            self.write(json.dumps(progress_object(self.measured(self.run.snapshot()), self.rates)))

    def finished(self) -> None:
        super().finished()
        if self.run is not None:
            self.write(json.dumps({**progress_object(self.measured(self.run.snapshot()), self.rates), "final": True}))


def progress_object(snapshot: RunSnapshot, rates: InputRates | None = None) -> dict[str, Any]:
    """One progress report: the run's seconds, then its shards' tally or its stages.

    A plain run's stages each carry the bytes and lines through their input
    and output edges so far (exact; the final object's are the run's
    totals; lines are None where they are not counted), ``input_size``, ``input_read``,
    ``input_files``, ``percent``, ``rate`` and ``eta`` (None where the stage
    reads no file, or the figure is not known yet); the run's own
    ``percent``, ``eta`` and ``eta_stage`` are those of the stage that gives
    the run's ETA (:meth:`~ppipe.cli.rates.InputRates.leading`).
    """
    rates = rates or InputRates()
    data: dict[str, Any] = {"elapsed": round(snapshot.elapsed, 3), "final": False}
    if not snapshot.sharded:
        data["stages"] = [
            {
                "id": s.id,
                "command": s.command,
                "state": s.state.value,
                "bytes_in": s.flow.bytes_in,
                "lines_in": s.flow.lines_in,
                "bytes_out": s.flow.bytes_out,
                "lines_out": s.flow.lines_out,
                "input_size": s.input_size,
                "input_read": s.input_read,
                "input_files": s.input_files,
                **_progress_fields(rates.progress(s)),
            }
            for s in snapshot.stages
        ]
        leading = rates.leading(snapshot.stages)
        run = _progress_fields(leading)
        data.update(percent=run["percent"], eta=run["eta"], eta_stage=None if leading is None else leading.stage)
        return data
    tally = Tally.of(snapshot)
    data["shards"] = snapshot.total
    data.update(dataclasses.asdict(tally))
    data["eta"] = None if tally.eta is None else round(tally.eta, 1)
    data["dealt"] = None if tally.dealt is None else round(tally.dealt, 4)
    data["bytes_out"] = snapshot.bytes_out
    return data


#: The shards a progress line names one by one: those under way.
_LIVE = (ShardState.RUNNING, ShardState.RESTARTING)


def _progress_fields(progress: InputProgress | None) -> dict[str, float | None]:
    """``percent`` (0 to 100), ``rate`` (bytes a second, smoothed) and ``eta`` (seconds) as JSON numbers."""
    if progress is None:
        return {"percent": None, "rate": None, "eta": None}
    return {
        "percent": round(100 * progress.fraction, 1),
        "rate": None if progress.rate is None else round(progress.rate),
        "eta": None if progress.eta is None else round(progress.eta, 1),
    }


def _stage_part(stage: StageSnapshot, progress: InputProgress | None) -> str:
    state = stage.state.value if stage.state is not StageState.EXITED else f"exited {stage.status}"
    out = f" {human_bytes(stage.flow.bytes_out)} out" if stage.flow.bytes_out is not None else ""
    if progress is not None:
        out += f" {int(100 * progress.fraction)}%"
        if progress.files > 1:
            out += f" of {progress.files} files"
        if progress.eta is not None and progress.rate:
            out += f" {human_bytes(int(progress.rate))}/s"
    return f"{stage.id} {stage.command[:20]} {state}{out}"


def _shard_part(shard: ShardSnapshot) -> str:
    tries = f" (try {shard.attempts})" if shard.attempts > 1 else ""
    return f"shard {shard.task_id} {shard.state.value}{tries} {human_bytes(shard.bytes_out)} out"
