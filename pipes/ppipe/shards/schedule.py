"""Which shard a free slot runs next, and when: task order first, a failed shard's restart after its delay.

A sharded run has ``--jobs`` slots and any number of shards. Each time a
slot is free, :meth:`Schedule.next` gives it the restart whose delay has
passed first (so a failed shard is tried again before new work starts, as
GNU parallel's ``--retries`` does), else the lowest-numbered shard that has
not run yet, once it is ready: when ppipe deals its input, a shard is
ready when its first record has arrived (records arrive in shard order, so
the lowest-numbered shard waiting is always the first to be ready). Once
the run halts (``--halt``), nothing more starts.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Iterable

from ppipe.shards.attempts import Shard


class Schedule:
    """The shards still to start or to restart; ``halt`` empties it for good.

    ``ready`` says whether a shard that has not run yet may start now
    (default: always).
    """

    def __init__(self, shards: Iterable[Shard], ready: Callable[[Shard], bool] | None = None) -> None:
        self._waiting: deque[Shard] = deque(shards)
        self._ready = ready or (lambda shard: True)
        self._restarts: list[tuple[float, int, Shard]] = []  # (ready at, index, shard): a heap
        self._halted = False

    def restart_later(self, shard: Shard, delay: float) -> None:
        """``shard`` runs again, ``delay`` seconds from now at the earliest."""
        if not self._halted:
            heapq.heappush(self._restarts, (time.monotonic() + delay, shard.index, shard))

    def next(self) -> Shard | None:
        """The shard a free slot should run now, if any is ready."""
        if self._restarts and self._restarts[0][0] <= time.monotonic():
            return heapq.heappop(self._restarts)[2]
        return self._waiting.popleft() if self._waiting and self._ready(self._waiting[0]) else None

    def ready_in(self) -> float | None:
        """Seconds until the next restart is ready, when nothing else can start now; None otherwise."""
        if not self._restarts or (self._waiting and self._ready(self._waiting[0])):
            return None
        return max(0.0, self._restarts[0][0] - time.monotonic())

    def drop_unready(self) -> list[Shard]:
        """Takes out, and returns, the shards that have not run and are not ready (they never will be)."""
        unready = [shard for shard in self._waiting if not self._ready(shard)]
        self._waiting = deque(shard for shard in self._waiting if self._ready(shard))
        return unready

    @property
    def empty(self) -> bool:
        """Nothing is left to start or restart: a free slot can end."""
        return not self._waiting and not self._restarts

    @property
    def halted(self) -> bool:
        return self._halted

    def halt(self) -> list[Shard]:
        """Starts nothing more; returns the shards that were still to start or restart."""
        self._halted = True
        left = [*self._waiting, *(shard for _, _, shard in sorted(self._restarts))]
        self._waiting.clear()
        self._restarts.clear()
        return left
