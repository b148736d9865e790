"""Stopping a run stops every descendant of its stages, and a run that ends by itself leaves them alone.

Every test starts real processes whose descendants carry a unique ``sleep``
duration (``sleep 33.101``) as a marker; survivors are found by that exact
argument in ``/proc/*/cmdline``, given a moment to die, and killed in a
``finally`` whatever the test found.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

import ppipe
from ppipe import CAPTURE
from ppipe.engine import trees
from ppipe.engine.execution import execute
from ppipe.engine.options import RunOptions
from ppipe.engine.sinks import Sink
from ppipe.graph import Stage

from helpers import (
    ENV,
    POLL,
    command_of,
    own_children_named,
    parent_of,
    session_of,
    wait_for_argument,
    wait_gone,
    wait_until,
    with_argument,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process trees are read from /proc")

PPIPE_MODULE = [sys.executable, "-m", "ppipe"]


def survivors(marker: str, grace: float = 3.0) -> list[int]:
    """The processes still carrying ``marker`` after up to ``grace`` seconds for them to die."""
    deadline = time.monotonic() + grace
    while (found := with_argument(marker)) and time.monotonic() < deadline:
        time.sleep(POLL)
    return found


@pytest.fixture
def marker(request: pytest.FixtureRequest) -> Iterator[str]:
    """A unique ``sleep`` duration for the test; whatever still carries it at the end is killed (and reaped if ours)."""
    unique = f"33.{os.getpid() % 1000:03d}{abs(hash(request.node.nodeid)) % 100000:05d}"
    try:
        yield unique
    finally:
        for pid in with_argument(unique):
            trees.send(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):  # not this process's child
                os.waitpid(pid, 0)


@pytest.fixture
def reaping() -> Iterator[None]:
    with reaping_orphans():
        yield


def subreaper_flag() -> bool:
    """This process's ``PR_GET_CHILD_SUBREAPER``, read with prctl itself rather than through the module."""
    value = ctypes.c_int(-1)
    assert ctypes.CDLL(None, use_errno=True).prctl(37, ctypes.byref(value), 0, 0, 0) == 0
    return bool(value.value)


@contextlib.contextmanager
def started(*args: str, stdin: int | None = subprocess.DEVNULL) -> Iterator[subprocess.Popen[bytes]]:
    """ppipe with ``args`` in the background, killed and reaped at the end whatever the test found; its output
    goes nowhere (a descendant may hold it open)."""
    out = subprocess.DEVNULL
    proc = subprocess.Popen([*PPIPE_MODULE, *args], stdin=stdin, stdout=out, stderr=out, env=ENV)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def ends_stopped_leaving_none(proc: subprocess.Popen[bytes], status: int, marker: str) -> None:
    """ppipe ends with ``status`` and nothing carrying ``marker`` outlives it."""
    proc.wait(timeout=20)
    assert proc.returncode == status
    assert survivors(marker) == []


# ---------------------------------------------------------------- each way of stopping


def test_timeout_stops_the_stages_descendants(marker: str) -> None:
    result = subprocess.run(
        [*PPIPE_MODULE, "--timeout", "1", f"sh -c 'sleep {marker}; true' | cat"],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env=ENV,
        timeout=30,
    )
    assert result.returncode == 124, result.stderr
    assert survivors(marker) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_to_ppipe_stops_the_stages_descendants(sig: signal.Signals, marker: str) -> None:
    with started(f"sh -c 'sleep {marker}; true' | cat") as proc:
        wait_for_argument(marker)
        proc.send_signal(sig)
        ends_stopped_leaving_none(proc, -sig, marker)


def test_double_forked_descendant_is_stopped(marker: str) -> None:
    """The subshell exits at once and ``sleep`` is orphaned: ppipe, as the subreaper, adopts and stops it."""
    with started("--timeout", "1", f"sh -c '(sleep {marker} &); cat' | cat", stdin=subprocess.PIPE) as proc:
        (orphan,) = wait_for_argument(marker)
        assert os.stat(f"/proc/{orphan}").st_uid == os.getuid()
        assert parent_of(orphan) == proc.pid  # adopted by ppipe, not init
        ends_stopped_leaving_none(proc, 124, marker)


def test_descendant_in_a_session_of_its_own_is_stopped(marker: str) -> None:
    with started("--timeout", "1", f"sh -c 'setsid sleep {marker}; true' | cat") as proc:
        # `setsid` carries the marker too before it has made its session and become `sleep`: wait for `sleep`.
        (escaped,) = wait_until(lambda: [p for p in with_argument(marker) if command_of(p) == "sleep"] or None, "sleep")
        assert session_of(escaped) != session_of(proc.pid)  # out of reach of any group signal
        ends_stopped_leaving_none(proc, 124, marker)


def test_descendant_ignoring_sigterm_is_killed_after_the_grace(marker: str) -> None:
    """The stages go at SIGTERM; a descendant that ignores it still goes, by SIGKILL after ``--kill-after``."""
    stubborn = f"sh -c '(trap \"\" TERM; sleep {marker}) & exit 0'"
    begun = time.monotonic()
    result = subprocess.run(
        [*PPIPE_MODULE, "--timeout", "1", "--kill-after", "1", f"{stubborn} | sleep {marker}"],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env=ENV,
        timeout=30,
    )
    assert result.returncode == 124, result.stderr
    assert time.monotonic() - begun >= 1.9  # waited the grace for it
    assert survivors(marker, grace=0.5) == []


def test_ctrl_c_in_a_terminal_reaches_a_descendant_out_of_the_foreground_group(marker: str) -> None:
    """The terminal signals the foreground group; the descendant that left it gets SIGINT from ppipe after the grace."""
    child = pexpect.spawn(PPIPE_MODULE[0], [*PPIPE_MODULE[1:], f"sh -c 'setsid sleep {marker}; true' | cat"], env=ENV)
    try:
        wait_for_argument(marker)
        child.sendintr()
        child.expect(pexpect.EOF, timeout=20)
        child.close()
        assert child.signalstatus == signal.SIGINT
        assert survivors(marker) == []
    finally:
        child.close(force=True)


def test_cancelled_run_stops_the_stages_descendants(marker: str) -> None:
    """Cancelling ``run_async`` reaps the running stages (``_reap``), and now their trees with them."""

    async def main() -> None:
        task = asyncio.ensure_future(ppipe.run_async(f"sh -c '(sleep {marker} &); sleep {marker}' | cat", kill_after=1))
        while len(with_argument(marker)) < 2:
            await asyncio.sleep(POLL)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert survivors(marker) == []
    assert not own_children_named("sleep")  # the adopted orphan was reaped, not left a zombie here


class _FailingObserver:
    """An observer that fails once the stages are running: the run ends in an error, its stages reaped."""

    def stderr_sink(self, stage: Stage) -> Sink | None:
        return None

    def stdout_sink(self) -> Sink | None:
        return None

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def started(self, execution: object) -> None:
        wait_for_argument(self.marker)
        raise RuntimeError("the observer failed")

    def finished(self) -> None:
        pass


def test_error_with_stages_running_stops_their_descendants(marker: str) -> None:
    """The one path where the engine itself ends early with stages running: an error, here from its observer.

    (A stage that cannot start, for a redirection or an exec failure, fails
    alone, as under bash: the others run on and nothing is stopped; a missing
    command fails before anything starts.)
    """
    graph = ppipe.parse(f"sh -c 'setsid sleep {marker}; true' | cat")
    options = RunOptions(kill_after=1, observer=_FailingObserver(marker), stdout=os.open(os.devnull, os.O_WRONLY))
    with pytest.raises(RuntimeError, match="the observer failed"):
        asyncio.run(execute(graph, options))
    assert survivors(marker) == []


def test_redirection_failure_stops_nothing(marker: str) -> None:
    """bash's rule: a stage whose redirection fails fails alone; the others, and their descendants, run on."""
    result = ppipe.run(f"sh -c '(sleep {marker} &); echo hi' | cat > /nonexistent/dir/file", stdout=CAPTURE)
    assert result.exit_status == 1
    assert result.stages[1].error == "/nonexistent/dir/file: No such file or directory"
    assert not result.stages[0].signalled_by_ppipe
    assert with_argument(marker)  # left running: nothing was stopped


# ---------------------------------------------------------------- the Python API and the subreaper flag


def test_api_timeout_stops_the_tree_and_restores_the_flag(marker: str) -> None:
    assert subreaper_flag() is False
    result = ppipe.run(f"sh -c '(sleep {marker} &); setsid sleep {marker}; true' | cat", timeout=1, stdout=CAPTURE)
    assert result.timed_out and result.exit_status == 124
    assert subreaper_flag() is False
    assert survivors(marker) == []
    assert not own_children_named("sleep")


def test_api_keeps_a_subreaper_flag_the_caller_had() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(36, 1, 0, 0, 0) == 0
    try:
        assert ppipe.run("true").exit_status == 0
        assert subreaper_flag() is True
    finally:
        libc.prctl(36, 0, 0, 0, 0)


def test_api_flag_is_on_during_the_run_only() -> None:
    seen: list[bool] = []

    async def main() -> None:
        task = asyncio.ensure_future(ppipe.run_async("sleep 0.3"))
        while not own_children_named("sleep"):  # the run has started its stage
            await asyncio.sleep(POLL)
        seen.append(subreaper_flag())
        await task

    asyncio.run(main())
    assert seen == [True]
    assert subreaper_flag() is False


def test_children_before_the_run_are_no_strays(marker: str) -> None:
    """A child the caller had before the run is not the run's to stop, even when the run is stopped."""
    mine = subprocess.Popen(["sleep", marker])
    try:
        result = ppipe.run("sleep 60", timeout=0.5)
        assert result.timed_out
        assert mine.poll() is None
    finally:
        mine.kill()
        mine.wait()


# ---------------------------------------------------------------- a normal end


def test_normal_end_leaves_a_background_descendant_running(marker: str, tmp_path: Path) -> None:
    """As under bash: ``sh -c '(sleep N &); echo hi'`` returns at once and the sleep keeps running.

    The output goes to a file: the sleep holds it open, so a pipe would keep a reader of it waiting, as with bash.
    """
    begun = time.monotonic()
    with open(tmp_path / "out", "wb") as out:
        status = subprocess.call(
            [*PPIPE_MODULE, f"sh -c '(sleep {marker} &); echo hi'"], stdout=out, stdin=subprocess.DEVNULL, env=ENV
        )
    assert status == 0 and (tmp_path / "out").read_bytes() == b"hi\n"
    assert time.monotonic() - begun < 5
    # Not a wait for something to happen but a span in which something must not: nothing stops the sleep.
    time.sleep(0.5)
    assert len(with_argument(marker)) == 1  # still running; the fixture kills it


def test_normal_run_does_not_walk_the_process_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk costs a read of every process: only a stop pays it."""
    if not os.path.exists(f"/proc/self/task/{os.getpid()}/children"):
        pytest.skip("without CONFIG_PROC_CHILDREN a run notes its earlier children with a walk")
    reads: list[int] = []
    real_read = trees.ProcessTable.read.__func__  # type: ignore[attr-defined]

    def counting_read(cls: type[trees.ProcessTable]) -> trees.ProcessTable | None:
        reads.append(1)
        return real_read(cls)  # type: ignore[no-any-return]

    monkeypatch.setattr(trees.ProcessTable, "read", classmethod(counting_read))
    assert ppipe.run("seq 1000 | sort | wc -l", stdout=CAPTURE).stdout == b"1000\n"
    assert reads == []
    assert ppipe.run("sleep 60", timeout=0.3).timed_out
    assert reads


# ---------------------------------------------------------------- the module on its own


@contextlib.contextmanager
def reaping_orphans() -> Iterator[None]:
    """Makes this process the subreaper for the block, and reaps what it adopted (killed trees orphan their members).

    Without it the orphans of a tree killed from outside go to init, which in a container may never reap them.
    """
    before = trees.children_of_self() or frozenset()
    with trees.subreaper():
        try:
            yield
        finally:
            deadline = time.monotonic() + 5
            while (adopted := (trees.children_of_self() or frozenset()) - before) and time.monotonic() < deadline:
                for pid in adopted:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, os.WNOHANG)
                time.sleep(POLL)


@pytest.mark.usefixtures("reaping")
def test_signal_tree_stops_a_tree_whose_root_is_not_a_child(marker: str) -> None:
    """A coordinator's case: the root (a ppipe, itself a subreaper) is a grandchild; its orphans are under it."""
    pipeline = f"sh -c '(sleep {marker} &); setsid sleep {marker}; true' | cat"
    outer = subprocess.Popen(
        ["sh", "-c", 'python="$1"; shift; "$python" -m ppipe "$@" & echo $!; wait', "sh", sys.executable, pipeline],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=ENV,
    )
    try:
        assert outer.stdout is not None
        root = int(outer.stdout.readline())
        wait_for_argument(marker, count=2)
        sent = trees.signal_tree(root, signal.SIGKILL)
        assert root in sent and len(sent) >= 5  # ppipe, two stages, two sleeps
        assert survivors(marker) == []
        # What still shows under the root a moment after the kill must be dying (a zombie not yet reaped), not living.
        assert wait_gone(trees.tree(root), timeout=5) == []
    finally:
        outer.kill()
        outer.wait()


@pytest.mark.usefixtures("reaping")
def test_sigkill_freezes_a_forking_tree_first(marker: str) -> None:
    """A tree forking as fast as it can loses no child between the walk and the kill."""
    forker = subprocess.Popen(["sh", "-c", f"i=0; while [ $i -lt 300 ]; do sleep {marker} & i=$((i+1)); done; wait"])
    try:
        wait_for_argument(marker, count=20)
        trees.signal_tree(forker.pid, signal.SIGKILL)
        forker.wait(timeout=10)
        assert survivors(marker) == []
    finally:
        forker.kill()
        forker.wait()


def test_without_proc_only_the_stages_are_stopped(marker: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No process table (not Linux): the stages are stopped as before, and their descendants are their business."""
    monkeypatch.setattr(trees, "PROC", "/nonexistent-proc")
    result = ppipe.run(f"sh -c 'sleep {marker}; true' | cat", timeout=0.5, kill_after=1)
    assert result.timed_out
    assert {s.verdict.value for s in result.stages} == {"terminated"}
    assert with_argument(marker)  # the old behaviour: the fixture kills it


def test_stopping_one_run_leaves_another_runs_stages_alone(marker: str) -> None:
    """Two runs on one loop: the second's stages are children of the same process, but claimed, not strays."""

    async def main() -> tuple[bool, bool]:
        other = asyncio.ensure_future(ppipe.run_async(f"sleep {marker}"))
        while not with_argument(marker):
            await asyncio.sleep(POLL)
        stopped = await ppipe.run_async("sleep 30", timeout=0.3)
        alive = bool(with_argument(marker))
        other.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await other
        return stopped.timed_out, alive

    assert asyncio.run(main()) == (True, True)
    assert survivors(marker) == []


# ---------------------------------------------------------------- sharded runs: each way a shard is stopped


def test_shard_timeout_stops_the_attempts_whole_tree(marker: str) -> None:
    result = subprocess.run(
        [*PPIPE_MODULE, "--fork", "2", "--shard-timeout", "0.5", f"sh -c '(sleep {marker} &); sleep {marker}'"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        env=ENV,
    )
    assert result.returncode == 124, result.stderr
    assert survivors(marker) == []


def test_halt_now_stops_the_other_shards_whole_trees(marker: str) -> None:
    stage = f"sh -c 'if [ {{task_id}} = 0 ]; then sleep 0.5; exit 3; fi; (setsid sleep {marker} &); sleep {marker}'"
    result = subprocess.run(
        [*PPIPE_MODULE, "--fork", "3", "--halt", "now,fail=1", stage],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        env=ENV,
    )
    assert result.returncode == 3, result.stderr
    assert survivors(marker) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_every_shards_whole_tree(sig: signal.Signals, marker: str) -> None:
    stage = f"sh -c '(sleep {marker} &); sleep {marker}'"
    with started("--each", "-", "-j", "2", stage, stdin=subprocess.PIPE) as process:
        assert process.stdin is not None
        process.stdin.write(b"a\nb\nc\n")
        process.stdin.close()
        wait_for_argument(marker, count=4)
        process.send_signal(sig)
        assert process.wait(timeout=30) in (-sig, 128 + sig)  # ppipe raises the signal again on itself
        assert survivors(marker) == []


def test_a_shard_killed_after_the_grace_takes_its_tree_along(marker: str) -> None:
    stage = f'sh -c \'trap "" TERM; (trap "" TERM; sleep {marker}) & sleep {marker}\''
    result = subprocess.run(
        [*PPIPE_MODULE, "--fork", "1", "--timeout", "0.5", "--kill-after", "0.3", stage],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        env=ENV,
    )
    assert result.returncode == 124, result.stderr
    assert survivors(marker) == []
