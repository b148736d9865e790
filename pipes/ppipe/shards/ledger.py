"""Every shard of a sharded run, by index: those under way as :class:`Shard` objects, the rest as counts or results.

A batch of 100,000 items must not hold 100,000 shards' worth of objects,
pumps and pipeline results. So a :class:`ShardBook` makes each
:class:`~ppipe.shards.attempts.Shard` only when the schedule reaches it,
and lets it go once its verdict is decided and its output has all arrived:
its :class:`~ppipe.results.ShardResult` goes to a :class:`ResultSpool`,
its state to the counts the view shows. Up to :data:`LISTED` shards, the
view still lists every one and the results stay in memory; past that,
results are written to an unlinked temporary file and read back when the
run's result is read, so memory stays flat however many items are done.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

from ppipe.results import ShardResult
from ppipe.shards.attempts import Shard
from ppipe.shards.input import ShardInput
from ppipe.snapshots import ShardSnapshot, ShardState, Unlisted

#: Runs of up to this many shards list each one in the view and keep their results in memory.
LISTED = 256


class ResultSpool(Sequence[ShardResult]):
    """The shards' results in task order, held in memory up to :data:`LISTED`, past that in a temporary file.

    Results are put in any order; the spool is read once every index has
    one. The file is unlinked when made, so it goes with the spool. Where
    it cannot be made or written (``TMPDIR`` full or unwritable, no
    descriptor left), results simply stay in memory: the run's figures are
    never lost, only the flat memory. Equal to any sequence of the same
    results, and pickled as a tuple.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._memory: dict[int, ShardResult] = {}
        self._offsets = array("q")
        self._lengths = array("q")
        self._file: int | None = None
        self._end = 0
        self._spill = size > LISTED

    def put(self, index: int, result: ShardResult) -> None:
        self._memory[index] = result
        if self._spill and len(self._memory) > LISTED:
            self._write_out()

    def _write_out(self) -> None:
        try:
            if self._file is None:
                self._file = _unlinked_file()
                self._offsets = array("q", [-1]) * self._size
                self._lengths = array("q", [0]) * self._size
            for index, result in list(self._memory.items()):
                data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
                _write_at(self._file, data, self._end)
                self._offsets[index], self._lengths[index] = self._end, len(data)
                self._end += len(data)
                del self._memory[index]
        except OSError:
            self._spill = False  # keep the rest in memory; what was written stays readable

    def __len__(self) -> int:
        return self._size

    @overload
    def __getitem__(self, index: int) -> ShardResult: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[ShardResult]: ...
    def __getitem__(self, index: int | slice) -> ShardResult | Sequence[ShardResult]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(self._size)))
        if index < 0:
            index += self._size
        if not 0 <= index < self._size:
            raise IndexError("shard index out of range")
        if index in self._memory:
            return self._memory[index]
        if self._file is None or self._offsets[index] < 0:
            raise LookupError(f"shard {index} has no result yet")
        result: ShardResult = pickle.loads(os.pread(self._file, self._lengths[index], self._offsets[index]))
        return result

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"ResultSpool({len(self)} shards)"

    def __reduce__(self) -> tuple[type[tuple[ShardResult, ...]], tuple[tuple[ShardResult, ...]]]:
        return tuple, (tuple(self),)

    def __del__(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                os.close(self._file)


def _unlinked_file() -> int:
    fd, path = tempfile.mkstemp(prefix="ppipe-results-")
    os.unlink(path)
    return fd


def _write_at(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        if written == 0:
            raise OSError("short write")
        view, offset = view[written:], offset + written


@dataclass
class _Counts:
    """The shards a big run's snapshot counts rather than lists: the finished ones."""

    states: dict[ShardState, int] = field(default_factory=dict)
    finished_seconds: float = 0.0
    finished_timed: int = 0
    bytes_out: int = 0

    def add(self, snapshot: ShardSnapshot) -> None:
        self.states[snapshot.state] = self.states.get(snapshot.state, 0) + 1
        if snapshot.state in (ShardState.DONE, ShardState.FAILED) and snapshot.elapsed:
            self.finished_seconds += snapshot.elapsed
            self.finished_timed += 1
        self.bytes_out += snapshot.bytes_out or 0


class ShardBook:
    """The run's shards by index: made on demand by ``make``, and let go by :meth:`retire`.

    ``made`` counts the shards made so far, always the lowest indices;
    the ones above are still waiting and exist only as numbers.
    """

    def __init__(self, size: int, make: Callable[[int], Shard], task_id: Callable[[int], int]) -> None:
        self.size = size
        self._make = make
        self._task_id = task_id
        self.made = 0
        #: The shards made and not let go yet, by index.
        self.live: dict[int, Shard] = {}
        self.results = ResultSpool(size)
        self._listed: dict[int, ShardSnapshot] | None = {} if size <= LISTED else None
        self._counts = _Counts()
        #: The shares of input of the shards let go: dealing may go on counting bytes no one takes.
        self._retired_inputs: list[ShardInput] = []

    def make_next(self) -> Shard | None:
        """Makes the next shard in index order; None once all are made."""
        if self.made == self.size:
            return None
        shard = self._make(self.made)
        self.live[shard.index] = shard
        self.made += 1
        return shard

    def in_order(self) -> Iterator[Shard]:
        """Every shard in index order, those not made yet made as they are reached; those let go left out."""
        for index in range(self.size):
            shard = self.live.get(index) if index < self.made else self.make_next()
            if shard is not None:
                yield shard

    def make_all(self) -> list[Shard]:
        """Makes every shard not made yet (input dealt to all of them needs them all from the start)."""
        return list(iter(self.make_next, None))

    def retire(self, shard: Shard, result: ShardResult, snapshot: ShardSnapshot) -> None:
        """The shard is decided and its output has all arrived: keep its result and its count, not the shard."""
        del self.live[shard.index]
        self.results.put(shard.index, result)
        if self._listed is not None:
            self._listed[shard.index] = snapshot
        else:
            self._counts.add(snapshot)
        if shard.input is not None:
            self._retired_inputs.append(shard.input)

    def inputs(self) -> Iterator[ShardInput]:
        """Every shard's share of the input, when ppipe deals it: the shards held and those let go."""
        yield from self._retired_inputs
        yield from (shard.input for shard in self.live.values() if shard.input is not None)

    @property
    def undelivered(self) -> int:
        """Input bytes ppipe could give to no one: their shard had ended for good, or stopped reading."""
        # A shard dealt no record of its own was not started: the header it was sent is not lost input.
        return sum(i.undelivered for i in self.inputs() if not i.unfed)

    def snapshots(self, live: Callable[[Shard], ShardSnapshot]) -> tuple[tuple[ShardSnapshot, ...], Unlisted]:
        """Every shard's snapshot while the run is small; past :data:`LISTED`, the live ones and counts."""
        if self._listed is None:
            counts = self._counts
            unlisted = Unlisted(
                dict(counts.states),
                waiting=self.size - self.made,
                finished_seconds=counts.finished_seconds,
                finished_timed=counts.finished_timed,
                bytes_out=counts.bytes_out,
            )
            return tuple(live(shard) for shard in self.live.values()), unlisted
        listed = [
            self._listed.get(index) or (live(self.live[index]) if index in self.live else self._waiting(index))
            for index in range(self.size)
        ]
        return tuple(listed), Unlisted()

    def _waiting(self, index: int) -> ShardSnapshot:
        return ShardSnapshot(self._task_id(index), ShardState.WAITING, None, 0, None, 0, None, None)
