"""What went through a pipeline: each edge's figures, each stage's flow, and a sharded run's edges summed.

The engine counts every edge it carries (:class:`EdgeResult`); a stage's
figures are read from its edges (:class:`StageFlow`), as the view's rows
and the summary show them; a sharded run's edges are its shards' added up
(:func:`summed_edges`). Kept apart from :mod:`ppipe.results`, which holds
these in its records of stages, attempts, shards and runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ppipe.graph import Edge


@dataclass(frozen=True)
class EdgeResult:
    """What crossed one edge. ``counted`` is False where ppipe did not carry
    the bytes itself (its stdin or stdout handed straight to a stage), and
    the figures are then 0. ``lines`` counts every newline of the bytes,
    plus a last line without one (what ``wc -l`` says, but for that line),
    exact whenever it is given; None where lines were not counted
    (``count_lines`` off, or the system refused the copy that counting
    reads). ``bytes`` is always exact when counted.
    ``waited_on_producer`` and ``waited_on_consumer`` are the seconds the
    pump spent waiting for each side (None where ppipe did not pump): the
    larger one says which end held this edge back."""

    edge: Edge
    bytes: int = 0
    lines: int | None = 0
    counted: bool = True
    closed_early: bool = False
    waited_on_producer: float | None = None
    waited_on_consumer: float | None = None


@dataclass(frozen=True)
class StageFlow:
    """What went through one stage, from its edges: the figures of the view's row, for the whole run.

    ``bytes_in`` adds up its input edges, ``bytes_out`` is its largest output
    copy (a fan-out sends the same bytes to each branch); both are None when
    ppipe carried none of them (a stream handed straight over). ``lines_*``
    are exact, and None unless every one of those edges had its lines counted.
    ``ratio`` is out/in. ``held`` is the seconds the pipeline waited
    on this stage: its input edges waiting for it to read or, for a stage
    whose input ppipe does not pump (the first), its output edges waiting for
    it to write. The live view draws its rows from these, taken as it goes.
    """

    bytes_in: int | None = None
    lines_in: int | None = None
    bytes_out: int | None = None
    lines_out: int | None = None
    held: float = 0.0

    @property
    def ratio(self) -> float | None:
        if not self.bytes_in or self.bytes_out is None:
            return None
        return self.bytes_out / self.bytes_in

    @classmethod
    def of(cls, inputs: list[EdgeResult], outputs: list[EdgeResult]) -> StageFlow:
        ins = [e for e in inputs if e.counted]
        outs = [e for e in outputs if e.counted]
        # Several inputs wait on the same reader at once (a fan-in): the longest wait, not their sum.
        in_waits = [e.waited_on_consumer for e in ins if e.waited_on_consumer is not None]
        held = max(in_waits) if in_waits else max((e.waited_on_producer or 0.0 for e in outs), default=0.0)
        return cls(
            sum(e.bytes for e in ins) if ins else None,
            _lines(ins, sum),
            max(e.bytes for e in outs) if outs else None,
            _lines(outs, max),
            held,
        )


def bytes_into_stdout(edges: Iterable[EdgeResult]) -> int | None:
    """The bytes ``edges`` (those into ppipe's stdout) carried; None when one was handed over, not counted."""
    total = 0
    for edge in edges:
        if not edge.counted:
            return None
        total += edge.bytes
    return total


def _lines(edges: list[EdgeResult], combine: Callable[[list[int]], int]) -> int | None:
    """``combine`` of the edges' lines; None when there are no edges or one's lines were not counted."""
    counts = [e.lines for e in edges if e.lines is not None]
    return combine(counts) if edges and len(counts) == len(edges) else None


def summed_edges(edge_sets: Iterable[Sequence[EdgeResult]]) -> tuple[EdgeResult, ...]:
    """Each edge once, in the order first seen, its figures summed over every set (the shards of a run).

    Lines stay counted only where every set counted them; waits add up.
    """
    summed: dict[Edge, EdgeResult] = {}
    for edges in edge_sets:
        for e in edges:
            seen = summed.get(e.edge)
            summed[e.edge] = e if seen is None else _add(seen, e)
    return tuple(summed.values())


def _add(a: EdgeResult, b: EdgeResult) -> EdgeResult:
    return EdgeResult(
        a.edge,
        a.bytes + b.bytes,
        None if a.lines is None or b.lines is None else a.lines + b.lines,
        a.counted or b.counted,
        a.closed_early or b.closed_early,
        _add_waits(a.waited_on_producer, b.waited_on_producer),
        _add_waits(a.waited_on_consumer, b.waited_on_consumer),
    )


def _add_waits(a: float | None, b: float | None) -> float | None:
    return None if a is None and b is None else (a or 0.0) + (b or 0.0)
