"""A batch keeps no per-item state once an item is done: shards are let go, their results kept on disk.

RSS itself is measured by ``benchmarks/run.py`` (the ``batch-memory``
workload); these tests check the mechanism that keeps it flat, and that no
figure is lost on the way: every shard's result comes back, in task order,
even when the temporary directory is full.
"""

from __future__ import annotations

import asyncio
import errno
import os
import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import ppipe
from ppipe.results import ShardResult, Verdict
from ppipe.shards.ledger import LISTED, ResultSpool
from ppipe.snapshots import Run, RunSnapshot

from helpers import tmpfs

ITEMS = LISTED + 344  # past the point where a batch stops listing every shard


class _Watcher:
    """Takes the run's snapshot every few milliseconds while it runs, as the live view would."""

    def __init__(self) -> None:
        self.snapshots: list[RunSnapshot] = []
        self._timer: asyncio.TimerHandle | None = None

    def stderr_sink(self, task_id: int, stage: object) -> None:
        return None

    def stdout_sink(self) -> None:
        return None

    def started(self, run: Run) -> None:
        loop = asyncio.get_running_loop()

        def take() -> None:
            self.snapshots.append(run.snapshot())
            self._timer = loop.call_later(0.005, take)

        take()

    def finished(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


@pytest.mark.parametrize("stdin", [b"", None], ids=["input-dealt", "no-input"])
def test_a_batch_holds_only_the_shards_under_way(stdin: bytes | None) -> None:
    watcher = _Watcher()
    items = [str(i) for i in range(ITEMS)]
    with open(os.devnull, "rb") as devnull:
        if stdin is None:
            result = ppipe.run("true {item}", items=items, jobs=2, observer=watcher, stdin=devnull)
        else:
            result = ppipe.run("true {item}", items=items, jobs=2, observer=watcher, input=stdin)
    assert result.exit_status == 0
    assert len(watcher.snapshots) > 10
    # The snapshot lists the shards ppipe still holds: the two running, and one or two just ending. Input
    # dealt to the shards needs them all made at the start; they are let go as they finish all the same.
    held = [len(s.shards) for s in watcher.snapshots]
    assert held[-1] <= 4 and (stdin is not None or max(held) <= 4)
    assert all(s.total == ITEMS for s in watcher.snapshots)
    last = watcher.snapshots[-1]
    assert last.unlisted.states  # finished shards are counted, not listed
    assert [s.task_id for s in result.shards] == list(range(ITEMS))
    assert all(s.verdict is Verdict.OK for s in result.shards)


def test_a_big_batch_result_reads_back_equal_to_a_tuple() -> None:
    result = ppipe.run("echo {item}", items=[str(i) for i in range(ITEMS)], jobs=2, stdout=ppipe.CAPTURE)
    shards = result.shards
    assert isinstance(shards, ResultSpool)
    as_tuple = tuple(shards)
    assert shards == as_tuple and len(shards) == ITEMS
    assert shards[-1].task_id == ITEMS - 1 and shards[5:8] == as_tuple[5:8]
    assert sum(s.bytes_out or 0 for s in shards) == len(result.stdout or b"")
    copy = pickle.loads(pickle.dumps(result))
    assert copy == result and isinstance(copy.shards, tuple)


def _fill(directory: Path) -> None:
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"x" * 4096):
            pass
    except OSError as error:
        assert error.errno == errno.ENOSPC
    finally:
        os.close(fd)


@pytest.fixture
def full_tmpdir(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "full", "64k") as where:
        _fill(where)
        saved = tempfile.tempdir
        tempfile.tempdir = str(where)
        try:
            yield where
        finally:
            tempfile.tempdir = saved


def test_a_full_tmpdir_keeps_every_result_in_memory(full_tmpdir: Path) -> None:
    result = ppipe.run("echo {item}", items=[str(i) for i in range(ITEMS)], jobs=2, stdout=ppipe.CAPTURE)
    assert result.exit_status == 0
    assert [s.task_id for s in result.shards] == list(range(ITEMS))
    assert sorted((result.stdout or b"").split()) == sorted(str(i).encode() for i in range(ITEMS))
    assert os.listdir(full_tmpdir) == ["filler"]  # still full: nothing was freed for the results


def _result(task_id: int) -> ShardResult:
    return ShardResult(task_id, LISTED * 3, f"echo {task_id}", (), None, task_id, None, Verdict.OK)


def test_a_spool_gives_results_in_task_order_whatever_order_they_came_in() -> None:
    size = LISTED * 3
    spool = ResultSpool(size)
    order = [*range(1, size, 2), *range(0, size, 2)]  # odds, then evens
    for index in order:
        spool.put(index, _result(index))
    assert [r.task_id for r in spool] == list(range(size))
    assert spool[-1].bytes_out == size - 1
    with pytest.raises(IndexError):
        spool[size]


def test_a_spool_says_which_result_has_not_come() -> None:
    spool = ResultSpool(3)
    spool.put(0, _result(0))
    with pytest.raises(LookupError, match="shard 1 has no result yet"):
        spool[1]
