"""What a running or finished pipeline's stages and edges did, as results and snapshots say it.

The engine keeps its state in :class:`~ppipe.engine.wiring.RunningStage` s
and the counters of each edge's :class:`~ppipe.engine.carrier.Carrier`;
these functions read it into the frozen records of :mod:`ppipe.results` and
:mod:`ppipe.snapshots`, so that the execution itself only runs things.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ppipe.engine.carrier import Carrier
from ppipe.engine.counting import Counter
from ppipe.engine.wiring import RunningStage
from ppipe.flow import EdgeResult, StageFlow
from ppipe.graph import Edge, Graph
from ppipe.results import StageResult

if TYPE_CHECKING:
    from ppipe.snapshots import StageSnapshot


def edge_result(edge: Edge, counter: Counter, carrier: Carrier | None) -> EdgeResult:
    """What has crossed ``edge``: so far in a snapshot, all of it at the end.

    ``carrier`` None: the edge was handed over (ppipe's own stdin or stdout)
    and not counted. The consumer's wait is this edge's own: in a fan-out,
    each branch's slowness, not the slowest sibling's.
    """
    if carrier is None:
        return EdgeResult(edge, counter.nbytes, None, counted=False)
    counted = carrier.count_lines and counter.lines_complete
    return EdgeResult(
        edge,
        counter.nbytes,
        counter.lines if counted else None,
        closed_early=carrier.left_early(counter),
        waited_on_producer=carrier.waits.totals()[0],
        waited_on_consumer=carrier.consumer_wait(counter),
    )


def stage_result(running: RunningStage) -> StageResult:
    """The stage's result as the engine saw it, before the exit-status rules judge it."""
    return StageResult(
        stage=running.stage,
        pid=running.pid,
        started_at=running.started_at,
        ended_at=running.ended_at,
        returncode=running.returncode,
        error=running.error,
        error_status=running.error_status,
        output_closed_early=failed_writing(running),
        consumer_left=running.consumer_left,
        signalled_by_ppipe=running.signalled and running.returncode != 0,
        stderr_tail=running.stderr_tail.lines() or ((running.error,) if running.error else ()),
        # What the stage said went on as it came (ppipe's stderr, the view) or was held
        # for a pager and released before anyone reads the result; unless into /dev/null.
        stderr_seen=bool(running.stderr_tail.total) and not running.stderr_discarded,
    )


def failed_writing(running: RunningStage) -> bool:
    """Whether the stage, once ppipe closed its output, failed because of it (EPIPE).

    Either it was writing at that moment and exited right after, or it
    said so on stderr afterwards ("Broken pipe", Python's
    BrokenPipeError). A stage that had finished writing, or was silent
    (``false | true``), failed on its own.
    """
    if not running.cut_before_exit:
        return False
    return running.output_closed_early or any(pump.said_broken_pipe() for pump in running.output_pumps.values())


def stage_snapshot(
    running: RunningStage, graph: Graph, edge_of: Callable[[Edge], EdgeResult], now: float
) -> StageSnapshot:
    """The stage as the view shows it now; ``edge_of`` gives each of its edges' figures so far."""
    from ppipe.snapshots import StageSnapshot, StageState  # only a watched run takes snapshots

    sid = running.stage.id
    if running.running:
        state = StageState.RUNNING
    elif running.returncode is None:
        state = StageState.WAITING
    else:
        state = StageState.DONE if running.returncode == 0 else StageState.EXITED
    result = StageResult(running.stage, returncode=running.returncode)
    size, read, files = input_progress(running)
    flow = StageFlow.of([edge_of(e) for e in graph.inputs(sid)], [edge_of(e) for e in graph.outputs(sid)])
    return StageSnapshot(
        id=sid,
        command=running.stage.command,
        state=state,
        pid=running.pid,
        status=result.status,
        signal=result.signal,
        flow=flow,
        elapsed=None if running.started_at is None else (running.ended_at or now) - running.started_at,
        input_size=size,
        input_read=read,
        input_files=files,
    )


def input_progress(running: RunningStage) -> tuple[int | None, int | None, int]:
    """The snapshot's ``input_size``, ``input_read`` and ``input_files``: how far the stage has read its files.

    Read from its file positions (:mod:`ppipe.engine.positions`) while it
    runs; a stage that exited 0 has read them all, one that failed is left
    without a figure. Nothing when it reads no regular file.
    """
    positions = running.positions
    if positions is None or not positions.files:
        return None, None, 0
    if running.running:
        # A process that has exited but is not reaped yet has no /proc/PID/fd: what it had read stands.
        read = positions.read() or positions.last
        if read is not None:
            return read[1], read[0], positions.files
        # /proc is not there, or the process went before it was ever read: the size alone.
    size = positions.total()
    return size, size if running.returncode == 0 else None, positions.files
