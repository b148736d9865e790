"""``ppipe.stream`` and ``ppipe.stream_async``: a run's output read in Python, line by line, as it comes.

Each test runs real pipelines in this process and reads them through the
public API; the reaping checks look at this process's children in
``/proc``, its descriptors and its threads.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ppipe
from ppipe.lines import LineCutter, text_lines

from helpers import (
    ENV,
    POLL,
    children,
    own_children_named,
    pids_alive,
    python_stage,
    verdicts,
    wait_for_children,
    wait_for_stalled_writer,
    wait_gone,
    written_by,
)
from helpers import ppipe as run_ppipe

#: The stages' stderr, thrown away: the tests read results, not messages.
QUIET = os.open(os.devnull, os.O_WRONLY)


def descriptors() -> list[str]:
    return sorted(os.listdir("/proc/self/fd"))


def resident_bytes() -> int:
    """This process's resident memory (``VmRSS``), in bytes."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


@pytest.fixture
def leaves_nothing_behind() -> Iterator[None]:
    """The test's runs leave no child process, no descriptor, no thread and no SIGINT handler of their own."""
    fds, threads = descriptors(), threading.active_count()
    yield
    assert children(os.getpid()) == []
    assert descriptors() == fds
    assert threading.active_count() == threads
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ---------------------------------------------------------------- lines as they come


def test_the_first_line_arrives_while_the_producer_still_runs(tmp_path: Path, leaves_nothing_behind: None) -> None:
    """The producer cannot go on (nor end) until the test opens the fifo, which it does only after the first line."""
    go = tmp_path / "go"
    os.mkfifo(go)
    with ppipe.stream(f"sh -c {shlex.quote(f'echo first; read x < {go}; echo second')} | cat") as run:
        lines = iter(run)
        assert next(lines) == b"first\n"
        [producer] = own_children_named("sh")
        assert pids_alive([producer]) == [producer]
        with open(go, "w") as fifo:
            fifo.write("\n")
        assert list(lines) == [b"second\n"]
    assert run.result.ok


def test_lines_keep_their_ends_as_readline_gives_them_and_the_last_may_lack_one(leaves_nothing_behind: None) -> None:
    with ppipe.stream(r"printf 'a\nbb\n\nlast'") as run:
        assert list(run) == [b"a\n", b"bb\n", b"\n", b"last"]
    with ppipe.stream("seq 3") as run:
        assert list(run) == [b"1\n", b"2\n", b"3\n"]
    with ppipe.stream("true") as run:
        assert list(run) == []


def test_text_lines_are_decoded_with_the_encoding_even_when_a_character_is_split(leaves_nothing_behind: None) -> None:
    """Each byte is its own write, so characters of two bytes reach ppipe in pieces."""
    byte_by_byte = python_stage(
        "import os\nfor b in 'héllo\\nwörld\\n€nd'.encode(): os.write(1, bytes([b]))\n",
    )
    with ppipe.stream(byte_by_byte, encoding="utf-8") as run:
        assert list(run) == ["héllo\n", "wörld\n", "€nd"]
    with ppipe.stream(r"printf 'ok\n\377\n'", encoding="utf-8", errors="replace") as run:
        assert list(run) == ["ok\n", "\ufffd\n"]
    with ppipe.stream(r"printf 'ok\n\377\n'", encoding="utf-8") as run, pytest.raises(UnicodeDecodeError):
        list(run)


def test_records_end_with_record_end_for_null_separated_output(leaves_nothing_behind: None) -> None:
    with ppipe.stream(r"printf 'a\nb\0c\0d'", record_end=b"\0") as run:
        assert list(run) == [b"a\nb\0", b"c\0", b"d"]
    with ppipe.stream(r"printf 'x\0y\0'", record_end=b"\0", encoding="ascii") as run:
        assert list(run) == ["x\0", "y\0"]


def test_a_line_longer_than_the_outlet_holds_comes_whole(leaves_nothing_behind: None) -> None:
    long = python_stage("import sys; sys.stdout.write('x' * (5 << 20) + '\\nend')")
    with ppipe.stream(long) as run:
        assert [len(line) for line in run] == [(5 << 20) + 1, 3]
    assert run.result.ok


def test_several_stages_writing_the_output_give_whole_lines(leaves_nothing_behind: None) -> None:
    both = "{ " + python_stage("print('a' * 300000)") + " ; " + python_stage("print('b' * 300000)") + " }"
    with ppipe.stream(both) as run:
        assert sorted(run) == [b"a" * 300000 + b"\n", b"b" * 300000 + b"\n"]


@given(
    data=st.lists(st.sampled_from([b"a", b"bc", b"\n", b"\0", b"-", b"\r"]), max_size=60).map(b"".join),
    end=st.sampled_from([b"\n", b"\0", b"\r\n", b"--", b"-\n-"]),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12),
)
def test_lines_are_the_output_cut_after_each_end_however_it_was_chunked(
    data: bytes, end: bytes, cuts: list[int]
) -> None:
    parts = data.split(end)
    expected = [part + end for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    cutter = LineCutter(end)
    lines: list[bytes] = []
    for start, stop in zip([0, *sorted(cuts)], [*sorted(cuts), len(data)], strict=True):
        cutter.feed(data[start:stop])
        lines += cutter.lines()
    assert lines + [rest for rest in [cutter.rest()] if rest is not None] == expected


@given(
    text=st.text(alphabet="aé€😀\n", max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=160), max_size=12),
)
def test_text_lines_are_the_decoded_output_cut_however_its_bytes_were_chunked(text: str, cuts: list[int]) -> None:
    data = text.encode("utf-8")
    lines = text_lines("utf-8")
    got: list[str] = []
    for start, stop in zip([0, *sorted(cuts)], [*sorted(cuts), len(data)], strict=True):
        lines.add(data[start:stop])
        got += lines.lines()
    lines.end()
    got += lines.lines()
    assert got == text.splitlines(keepends=True)


# ---------------------------------------------------------------- the result


def test_the_result_is_there_after_the_block_or_once_every_line_is_read(leaves_nothing_behind: None) -> None:
    with ppipe.stream("sh -c 'echo x; exit 3'", stderr=QUIET) as run:
        with pytest.raises(ppipe.RunNotFinished, match="has not ended"):
            _ = run.result
        assert list(run) == [b"x\n"]
        assert run.result.exit_status == 3  # the run has ended with its output
    assert not run.result.ok
    assert run.result.stages[0].returncode == 3


def test_check_raises_as_the_block_ends(leaves_nothing_behind: None) -> None:
    with pytest.raises(ppipe.PipelineFailed) as failed, ppipe.stream("sh -c 'echo x; exit 4'", check=True) as run:
        assert list(run) == [b"x\n"]
    assert failed.value.status == 4
    assert run.result.exit_status == 4


def test_what_cannot_start_raises_at_the_with_and_starts_nothing(leaves_nothing_behind: None) -> None:
    entered = False
    with pytest.raises(ppipe.CommandError, match="no-such-command-here"), ppipe.stream("seq 3 | no-such-command-here"):
        entered = True
    with pytest.raises(ppipe.PipelineSyntaxError), ppipe.stream("seq 3 && true"):
        entered = True
    assert not entered


def test_keywords_the_stream_cannot_take_are_refused_before_anything_runs() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'stdout'"):
        ppipe.stream("true", stdout=ppipe.CAPTURE)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="pager"):
        ppipe.stream("true", pager=True)
    with pytest.raises(ValueError, match="errors= only with encoding="):
        ppipe.stream("true", errors="replace")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="not text in utf-16"):
        ppipe.stream("true", encoding="utf-16")
    with pytest.raises(LookupError):
        ppipe.stream("true", encoding="no-such-encoding")


def test_the_synchronous_stream_refuses_a_running_loop_and_points_at_the_async_twin() -> None:
    async def main() -> None:
        with ppipe.stream("true"):
            pass

    with pytest.raises(RuntimeError, match="stream_async"):
        asyncio.run(main())
    assert children(os.getpid()) == []


def test_lines_are_read_inside_the_block_only(leaves_nothing_behind: None) -> None:
    """After the block the reader has left: iterating then says so rather than giving nothing."""
    with ppipe.stream("seq 3") as run:
        pass
    with pytest.raises(RuntimeError, match="inside its block"):
        list(run)

    async def main() -> None:
        async with ppipe.stream_async("seq 3") as late:
            pass
        with pytest.raises(RuntimeError, match="inside its block"):
            await late.__anext__()

    asyncio.run(main())


# ---------------------------------------------------------------- leaving early


def test_breaking_out_is_a_reader_leaving_and_the_broken_pipe_is_excused(leaves_nothing_behind: None) -> None:
    with ppipe.stream("yes | grep y") as run:
        for count, line in enumerate(run, 1):
            assert line == b"y\n"
            if count == 1000:
                break
    assert run.result.ok
    assert verdicts(run.result) == ["broken-pipe", "broken-pipe"]


def test_an_exception_in_the_block_leaves_as_a_reader_and_goes_on(leaves_nothing_behind: None) -> None:
    with pytest.raises(LookupError, match="enough"), ppipe.stream("yes | cat") as run:
        for line in run:
            raise LookupError(f"enough after {line!r}")
    assert run.result.ok


def test_keyboard_interrupt_in_the_block_stops_and_reaps_the_run(leaves_nothing_behind: None) -> None:
    with pytest.raises(KeyboardInterrupt), ppipe.stream("yes | cat") as run:
        for _ in run:
            raise KeyboardInterrupt
    with pytest.raises(ppipe.RunNotFinished, match="stopped"):
        _ = run.result


def test_ctrl_c_while_the_block_runs_its_own_code_raises_there(leaves_nothing_behind: None) -> None:
    with pytest.raises(KeyboardInterrupt), ppipe.stream("sleep 60") as run:
        os.kill(os.getpid(), signal.SIGINT)
        pytest.fail("SIGINT did not interrupt the block")
    with pytest.raises(ppipe.RunNotFinished):
        _ = run.result


def test_ctrl_c_while_waiting_for_a_line_stops_and_reaps_the_run(leaves_nothing_behind: None) -> None:
    """The stage sends SIGINT to this process once it has started, while the iteration waits for output."""
    with pytest.raises(KeyboardInterrupt), ppipe.stream("sh -c 'kill -INT $PPID; exec sleep 60'") as run:
        list(run)


def test_with_handle_signals_sigint_stops_the_run_and_the_lines_end(leaves_nothing_behind: None) -> None:
    with ppipe.stream("sh -c 'echo started; kill -INT $PPID; exec sleep 60'", handle_signals=True) as run:
        assert list(run) == [b"started\n"]
    assert run.result.interrupted_by == "SIGINT"
    assert run.result.exit_status == 130


CONSUMER = """
import ppipe, sys
with ppipe.stream("yes | cat", handle_signals=sys.argv[1] == "forward") as run:
    for count, line in enumerate(run):
        if count == 10:
            print("reading", flush=True)
print("ended", run.result.interrupted_by, run.result.exit_status, flush=True)
"""


@pytest.mark.parametrize("signals", ["python", "forward"])
def test_ctrl_c_at_a_terminal_stops_the_stages_and_the_reader(signals: str) -> None:
    """The terminal sends SIGINT to the whole foreground group, the reading Python and its stages alike. By
    default Python ends by KeyboardInterrupt, as it would without ppipe; with handle_signals the run is
    interrupted and the block ends normally. Either way no stage is left."""
    child = pexpect.spawn(sys.executable, ["-c", CONSUMER, signals], env=ENV, timeout=30)
    child.expect("reading")
    stages = wait_for_children(child.pid, 2)
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    said = (child.before or b"").decode()
    if signals == "python":
        assert child.signalstatus == signal.SIGINT  # an uncaught KeyboardInterrupt, re-raised by Python
        assert "KeyboardInterrupt" in said
    else:
        assert child.exitstatus == 0
        assert "ended SIGINT 130" in said
    assert wait_gone(stages, 5) == []


def test_a_run_inside_the_block_leaves_the_stream_working(leaves_nothing_behind: None) -> None:
    """The nested run takes the signals for its own loop; the stream's loop must still see its stages end."""
    with ppipe.stream("sh -c 'echo one; sleep 0.3; echo two; sleep 0.3'") as run:
        for line in run:
            if line == b"one\n":
                assert ppipe.run("echo nested", stdout=ppipe.CAPTURE).stdout == b"nested\n"
    assert run.result.ok


# ---------------------------------------------------------------- back-pressure


def test_a_slow_reader_holds_the_producer_back_and_memory_stays_flat(leaves_nothing_behind: None) -> None:
    """Between reads the reader waits until ``yes`` has stopped writing: ``yes`` is blocked on a full pipe, having
    written only a few MiB past what was read, and this process's memory stays where it was."""
    with ppipe.stream("yes | cat") as run:
        lines = iter(run)
        read = len(next(lines))
        [producer] = own_children_named("yes")
        if written_by(producer) is None:
            pytest.skip("this system does not show a process's I/O counts in /proc")
        baseline = resident_bytes()
        for _ in range(6):
            written = wait_for_stalled_writer(producer)
            assert written - read < 16 << 20, f"yes wrote {written} bytes while {read} were read"
            for _ in range(200_000):
                read += len(next(lines))
        assert resident_bytes() - baseline < 16 << 20
    assert run.result.ok


def test_a_slow_async_reader_holds_the_producer_back_while_the_loop_runs_on(leaves_nothing_behind: None) -> None:
    """The loop runs freely while the reader polls: only the outlet's bound stops the pump, then ``yes``."""

    async def stalled(pid: int, still: float = 0.2) -> int:
        written, since = written_by(pid), time.monotonic()
        while time.monotonic() - since < still:
            await asyncio.sleep(POLL)  # the loop, and every pump on it, runs meanwhile
            if (now := written_by(pid)) != written:
                written, since = now, time.monotonic()
        assert written is not None
        return written

    async def main() -> ppipe.RunResult:
        async with ppipe.stream_async("yes | cat") as run:
            lines = aiter(run)
            read = len(await anext(lines))
            [producer] = own_children_named("yes")
            if written_by(producer) is None:
                pytest.skip("this system does not show a process's I/O counts in /proc")
            baseline = resident_bytes()
            for _ in range(4):
                written = await asyncio.wait_for(stalled(producer), 30)
                assert written - read < 16 << 20, f"yes wrote {written} bytes while {read} were read"
                for _ in range(100_000):
                    read += len(await anext(lines))
            assert resident_bytes() - baseline < 16 << 20
        return run.result

    assert asyncio.run(main()).ok


# ---------------------------------------------------------------- sharded runs


def test_a_sharded_run_gives_its_shards_merged_whole_lines_tagged_and_in_order(leaves_nothing_behind: None) -> None:
    with ppipe.stream(r"printf 'a{task_id}\nb{task_id}\n' < /dev/null", fork=3, tag=True) as run:
        lines = list(run)
    assert sorted(lines) == [f"{i}\t{x}{i}\n".encode() for i in range(3) for x in "ab"]
    assert run.result.ok and len(run.result.shards) == 3
    with ppipe.stream("echo {item}", items=["x", "y", "z"], keep_order=True, encoding="utf-8") as ordered:
        assert list(ordered) == ["x\n", "y\n", "z\n"]


def test_a_sharded_stream_gives_what_the_command_line_prints(leaves_nothing_behind: None) -> None:
    text = r"printf 'x{task_id}\ny\n' < /dev/null"
    printed = run_ppipe("--fork", "4", "--tag", "--keep-order", text).stdout
    with ppipe.stream(text, fork=4, tag=True, keep_order=True) as run:
        assert b"".join(run) == printed
    assert printed.count(b"\n") == 8


def test_breaking_out_of_a_sharded_run_stops_its_shards(leaves_nothing_behind: None) -> None:
    with ppipe.stream("yes {task_id} < /dev/null", fork=2, stderr=QUIET) as run:
        for count, line in enumerate(run, 1):
            assert line in (b"0\n", b"1\n")
            if count == 1000:
                break
    assert run.result.ok


# ---------------------------------------------------------------- the async twin


def test_the_async_twin_reads_lines_on_the_callers_loop(leaves_nothing_behind: None) -> None:
    async def main() -> tuple[list[str], ppipe.RunResult, list[bytes], ppipe.RunResult]:
        async with ppipe.stream_async("seq 3", encoding="ascii") as run:
            lines = [line async for line in run]
        async with ppipe.stream_async("yes | grep y") as early:
            first = []
            async for line in early:
                first.append(line)
                if len(first) == 3:
                    break
        return lines, run.result, first, early.result

    lines, result, first, early = asyncio.run(main())
    assert lines == ["1\n", "2\n", "3\n"] and result.ok
    assert first == [b"y\n"] * 3 and early.ok


def test_cancelling_the_async_block_stops_and_reaps_the_run(leaves_nothing_behind: None) -> None:
    """The block waits inside for ever once it has a line; the stage never writes again: only the cancellation
    (a timeout, or Ctrl-C under asyncio.run) ends it, and ends the run with it."""
    streams: list[ppipe.AsyncStreamedRun[bytes]] = []

    async def block(started: asyncio.Event) -> None:
        async with ppipe.stream_async("sh -c 'echo started; exec sleep 60'") as run:
            streams.append(run)
            async for _ in run:
                started.set()
                await asyncio.Event().wait()

    async def main() -> None:
        started = asyncio.Event()
        task = asyncio.ensure_future(block(started))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    with pytest.raises(ppipe.RunNotFinished, match="stopped"):
        _ = streams[0].result
