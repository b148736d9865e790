"""Which shard a free slot runs next, and when: task order first, a failed shard's restart after its delay.

A sharded run has ``--jobs`` slots and any number of shards. Each time a
slot is free, :meth:`Schedule.next` gives it the restart whose delay has
passed first (so a failed shard is tried again before new work starts, as
GNU parallel's ``--retries`` does), else the lowest-numbered shard that has
not run yet, once it is ready: when ppipe deals its input, a shard is
ready when its first record has arrived (records arrive in shard order, so
the lowest-numbered shard waiting is always the first to be ready). Once
the run halts (``--halt``), nothing more starts. A Slurm array's tasks are
scheduled the same way: the array takes every ready one at once.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Generic, Protocol, TypeVar


class _Numbered(Protocol):
    @property
    def index(self) -> int: ...


Shard = TypeVar("Shard", bound=_Numbered)


class Schedule(Generic[Shard]):
    """The shards still to start or to restart; ``halt`` empties it for good.

    ``shards`` is taken one at a time, as slots come free: a batch's
    shards are made only when their turn comes (see
    :class:`~ppipe.shards.ledger.ShardBook`). ``ready`` says whether a shard
    that has not run yet may start now (default: always).
    """

    def __init__(self, shards: Iterator[Shard], ready: Callable[[Shard], bool] | None = None) -> None:
        self._source = shards
        self._head: Shard | None = None
        self._ready = ready or (lambda shard: True)
        self._restarts: list[tuple[float, int, Shard]] = []  # (ready at, index, shard): a heap
        self._halted = False

    def _first(self) -> Shard | None:
        """The lowest-numbered shard that has not run yet, taken from the source when needed."""
        if self._head is None:
            self._head = next(self._source, None)
        return self._head

    def restart_later(self, shard: Shard, delay: float) -> None:
        """``shard`` runs again, ``delay`` seconds from now at the earliest."""
        if not self._halted:
            heapq.heappush(self._restarts, (time.monotonic() + delay, shard.index, shard))

    def next(self) -> Shard | None:
        """The shard a free slot should run now, if any is ready."""
        if self._restarts and self._restarts[0][0] <= time.monotonic():
            return heapq.heappop(self._restarts)[2]
        first = self._first()
        if first is None or not self._ready(first):
            return None
        self._head = None
        return first

    def ready_in(self) -> float | None:
        """Seconds until the next restart is ready, when nothing else can start now; None otherwise."""
        first = self._first()
        if not self._restarts or (first is not None and self._ready(first)):
            return None
        return max(0.0, self._restarts[0][0] - time.monotonic())

    def _unstarted(self) -> Iterator[Shard]:
        if self._head is not None:
            yield self._head
            self._head = None
        yield from self._source

    def drop_unready(self) -> list[Shard]:
        """Takes out, and returns, the shards that have not run and are not ready (they never will be)."""
        waiting = list(self._unstarted())
        self._source = iter([shard for shard in waiting if self._ready(shard)])
        return [shard for shard in waiting if not self._ready(shard)]

    @property
    def empty(self) -> bool:
        """Nothing is left to start or restart: a free slot can end."""
        return self._first() is None and not self._restarts

    @property
    def halted(self) -> bool:
        return self._halted

    def halt(self) -> Iterator[Shard]:
        """Starts nothing more; yields the shards that were still to start or to restart."""
        self._halted = True
        restarts = [shard for _, _, shard in sorted(self._restarts)]
        self._restarts.clear()
        return itertools.chain(self._unstarted(), restarts)

    def left(self) -> Iterator[Shard]:
        """Yields, and takes out, the shards never started: those the run did not reach."""
        return self._unstarted()
