"""The engine through the Python API, with real processes and pipes."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ppipe
from ppipe import CAPTURE, Boundary, CommandError, PipelineFailed
from ppipe.cli.report import build as build_report
from ppipe.engine.counting import count_newlines

from helpers import POLL, children, peak_rss_of_run, python_stage, verdicts
from helpers import run_captured as run

pytestmark = pytest.mark.usefixtures("both_pump_paths")

MiB = 1024 * 1024


# ---------------------------------------------------------------- data flow


def test_counts_bytes_and_lines_on_every_pumped_edge() -> None:
    result = run("seq 10 | grep 1 | wc -l", count_lines=True)
    assert result.stdout == b"2\n"
    assert result.exit_status == 0
    assert (result.edge(1, 2).bytes, result.edge(1, 2).lines) == (21, 10)
    assert (result.edge(2, 3).bytes, result.edge(2, 3).lines) == (5, 2)
    assert (result.edge(3, Boundary.STDOUT).bytes, result.edge(3, Boundary.STDOUT).lines) == (2, 1)
    assert not result.edge(Boundary.STDIN, 1).counted  # ppipe's stdin was handed over, not pumped


def test_bytes_are_exact_and_lines_unknown_unless_counted() -> None:
    result = run("seq 10 | grep 1 | wc -l")
    assert (result.edge(1, 2).bytes, result.edge(1, 2).lines) == (21, None)
    assert (result.edge(2, 3).bytes, result.edge(2, 3).lines) == (5, None)


def test_last_line_without_newline_counts() -> None:
    result = run("printf 'a\\nb' | cat", count_lines=True)
    assert result.stdout == b"a\nb"
    assert (result.edge(1, 2).bytes, result.edge(1, 2).lines) == (3, 2)


def test_lines_stay_exact_when_the_consumer_takes_less_than_was_waiting() -> None:
    # A fast producer of uneven lines and a consumer reading 1000 bytes at a
    # time: on the fast path most splices move less than was teed, and the
    # rest must be counted once, when it really moves.
    producer = python_stage(
        "import sys\nout = sys.stdout.buffer\nfor i in range(200000):\n    out.write(b'x' * (i % 97) + b'\\n')\n"
    )
    consumer = python_stage(
        "import os, time\n"
        "n = 0\n"
        "while chunk := os.read(0, 1000):\n"
        "    n += chunk.count(b'\\n')\n"
        "    if n % 500 == 0: time.sleep(0.001)\n"
        "print(n)\n"
    )
    result = run(f"{producer} | {consumer}", count_lines=True)
    edge = result.edge(1, 2)
    assert result.stdout == b"200000\n"
    assert (edge.bytes, edge.lines) == (sum(i % 97 + 1 for i in range(200000)), 200000)


def test_a_fast_edge_made_of_newlines_is_counted_exactly(both_pump_paths: str) -> None:
    # A line per byte, as fast as the kernel moves it: every one is counted, on either path.
    result = run("head -c 64M /dev/zero | tr '\\0' '\\n' | wc -l", count_lines=True)
    assert result.stdout == b"%d\n" % (64 * MiB)
    edge = result.edge(2, 3)
    assert (edge.bytes, edge.lines) == (64 * MiB, 64 * MiB)
    assert build_report(result)["edges"][2]["lines"] == 64 * MiB


def test_stdin_bytes_are_fed_and_counted() -> None:
    result = run("sort | uniq -c", input=b"b\na\nb\n")
    assert result.stdout == b"      1 a\n      2 b\n"
    assert result.edge(Boundary.STDIN, 1).counted
    assert result.edge(Boundary.STDIN, 1).bytes == 6


def test_stdin_and_stdout_descriptors_are_handed_over(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.write_bytes(b"x\ny\n")
    target = tmp_path / "out"
    with source.open("rb") as stdin, target.open("wb") as stdout:
        result = ppipe.run("tr a-z A-Z", stdin=stdin.fileno(), stdout=stdout.fileno())
    assert result.ok
    assert target.read_bytes() == b"X\nY\n"


def test_binary_safe_checksum_through_six_stages(tmp_path: Path) -> None:
    """64 MiB of random bytes (a thousand pipefuls) arrive byte-identical after five pumped edges."""
    result = run(f"head -c {64 * MiB} /dev/urandom | tee {tmp_path}/in.bin | cat | cat | cat | sha256sum")
    assert result.exit_status == 0, result
    digest = hashlib.sha256((tmp_path / "in.bin").read_bytes()).hexdigest()
    assert result.stdout is not None
    assert result.stdout.split()[0].decode() == digest
    assert all(result.edge(i, i + 1).bytes == 64 * MiB for i in range(1, 6))


def test_last_write_is_flushed_before_stdin_closes() -> None:
    """tornado's close() drops pending writes: the pump must await the last one first."""
    producer = python_stage("import sys; sys.stdout.buffer.write(b'x' * (4 << 20))")  # then exits at once
    consumer = python_stage("import sys, time; time.sleep(0.5); print(len(sys.stdin.buffer.read()))")
    result = run(f"{producer} | {consumer}")
    assert result.stdout == b"4194304\n"


def test_stderr_passes_through_and_keeps_a_tail(tmp_path: Path) -> None:
    err = tmp_path / "err"
    with err.open("wb") as handle:
        result = ppipe.run("sh -c 'echo one >&2; echo two >&2; exit 3' | cat", stdout=CAPTURE, stderr=handle.fileno())
    assert err.read_bytes() == b"one\ntwo\n"
    assert result.stages[0].stderr_tail == ("one", "two")
    assert result.exit_status == 3


def test_pipe_with_stderr() -> None:
    result = run("sh -c 'echo out; echo err >&2' |& sort")
    assert result.stdout == b"err\nout\n"


def test_redirection_order_matters(tmp_path: Path) -> None:
    run("sh -c 'echo out; echo err >&2' > both 2>&1", cwd=str(tmp_path))
    assert sorted((tmp_path / "both").read_text().split()) == ["err", "out"]
    result = run("sh -c 'echo out; echo err >&2' 2>&1 > only-out | cat", cwd=str(tmp_path))
    assert (tmp_path / "only-out").read_text() == "out\n"
    assert result.stdout == b"err\n"


def test_output_redirect_leaves_next_stage_empty(tmp_path: Path) -> None:
    result = run("echo hi > f | wc -c", cwd=str(tmp_path))
    assert result.stdout == b"0\n"
    assert (tmp_path / "f").read_text() == "hi\n"


# ---------------------------------------------------------------- backpressure and memory


def _peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_memory_bounded_with_fast_producer_and_slow_consumer() -> None:
    """tornado's write buffer is unbounded; ppipe must await every write."""
    slow = python_stage(
        "import sys, time\n"
        "n = 0\n"
        "while chunk := sys.stdin.buffer.read(1 << 20):\n"
        "    n += len(chunk); time.sleep(0.002)\n"
        "print(n)"
    )
    output, peak = peak_rss_of_run(f"head -c {300 * MiB} /dev/zero | {slow}")
    assert int(output) == 300 * MiB
    assert peak < 96, f"ppipe's peak RSS was {peak} MiB while moving 300 MiB"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_memory_bounded_with_a_consumer_that_never_reads() -> None:
    code = (
        "import ppipe\n"
        "r = ppipe.run('yes | sleep 2', stdout=ppipe.CAPTURE)\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "print(r.exit_status, int(hwm) // 1024)\n"
    )
    status, hwm = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, check=True, timeout=60
    ).stdout.split()
    assert status == b"0"
    assert int(hwm) < 96


# ---------------------------------------------------------------- early exits


def test_yes_head_is_prompt_and_succeeds() -> None:
    result = run("yes | head -1", timeout=20)
    assert not result.timed_out
    assert result.stdout == b"y\n"
    assert result.exit_status == 0
    assert verdicts(result) == ["broken-pipe", "ok"]
    assert result.stages[0].signal == "SIGPIPE"


def test_idle_producer_is_released_when_consumer_exits() -> None:
    """The producer's output is closed as soon as its consumer exits, not at its next write."""
    producer = python_stage(
        "import sys, time\nprint('first', flush=True)\ntime.sleep(1)\nprint('second', flush=True)\ntime.sleep(30)\n"
    )
    result = run(f"{producer} | head -1", timeout=20)
    assert not result.timed_out
    assert result.stdout == b"first\n"
    assert result.exit_status == 0
    assert verdicts(result) == ["broken-pipe", "ok"]


def test_epipe_after_successful_consumer_is_not_a_failure() -> None:
    producer = python_stage(
        "import signal, sys\n"
        "signal.signal(signal.SIGPIPE, signal.SIG_IGN)\n"
        "try:\n"
        "    while True: sys.stdout.write('x' * 1000 + '\\n')\n"
        "except BrokenPipeError:\n"
        "    sys.exit(1)\n"
    )
    result = run(f"{producer} | head -1", timeout=20)
    assert result.exit_status == 0
    assert verdicts(result) == ["broken-pipe", "ok"]
    assert result.stages[0].returncode == 1


def test_silent_producer_failing_after_consumer_left_still_counts() -> None:
    """`false | true`: the consumer may well exit first, yet false never wrote; it failed on its own."""
    for _ in range(10):
        result = run("false | true")
        assert result.exit_status == 1
    result = run("sh -c 'sleep 0.3; exit 3' | true")
    assert result.exit_status == 3
    assert verdicts(result) == ["failed", "ok"]


def test_failure_before_consumer_left_still_counts() -> None:
    result = run("sh -c 'echo x; exit 5' | sh -c 'sleep 0.5; head -1'")
    assert result.exit_status == 5
    assert verdicts(result) == ["failed", "ok"]


# ---------------------------------------------------------------- the exit-status table


@pytest.mark.parametrize(
    ("text", "status", "expected"),
    [
        ("true | true", 0, ["ok", "ok"]),
        ("false | true", 1, ["failed", "ok"]),
        ("true | false", 1, ["ok", "failed"]),
        ("sh -c 'exit 3' | sh -c 'exit 4' | true", 4, ["failed", "failed", "ok"]),
        ("sh -c 'exit 3' | true | true", 3, ["failed", "ok", "ok"]),
        ("-false | true", 0, ["ignored", "ok"]),
        ("true | -sh -c 'exit 9'", 0, ["ok", "ignored"]),
        ("-false | sh -c 'exit 2'", 2, ["ignored", "failed"]),
        ("sh -c 'kill -9 $$' | cat", 137, ["failed", "ok"]),
        ("sh -c 'kill -TERM $$' | cat", 143, ["failed", "ok"]),
        ("cat < /nonexistent/file | wc -l", 1, ["failed", "ok"]),
        ("echo x > /nonexistent/dir/file | true", 1, ["failed", "ok"]),
    ],
)
def test_exit_status_table(text: str, status: int, expected: list[str]) -> None:
    result = run(text)
    assert result.exit_status == status
    assert verdicts(result) == expected


def test_no_fail_excuses_every_stage() -> None:
    result = run("false | sh -c 'exit 7'", no_fail=True)
    assert result.exit_status == 0
    assert verdicts(result) == ["ignored", "ignored"]


def test_signal_names_and_statuses() -> None:
    result = run("sh -c 'kill -9 $$'")
    stage = result.stages[0]
    assert (stage.returncode, stage.status, stage.signal) == (-9, 137, "SIGKILL")
    assert stage.describe_end() == "killed by SIGKILL"


def test_not_started_stage_reports_why() -> None:
    result = run("cat < /nonexistent | wc -l")
    stage = result.stages[0]
    assert stage.pid is None and stage.status == 1
    assert stage.error == "/nonexistent: No such file or directory"
    assert result.stdout == b"0\n"  # the rest of the pipeline ran


def test_missing_command_raises_before_anything_starts(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    with pytest.raises(CommandError) as caught:
        run(f"touch {marker} | nosuchcmd_xyz | wc -l")
    assert caught.value.status == 127
    assert str(caught.value) == "stage 2: nosuchcmd_xyz: command not found"
    assert not marker.exists()


def test_not_executable_is_126(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(CommandError) as caught:
        run(f"{script} | cat")
    assert caught.value.status == 126
    with pytest.raises(CommandError) as caught:
        run(f"{tmp_path} | cat")
    assert caught.value.status == 126
    assert "is a directory" in str(caught.value)


def test_stage_path_assignment_is_used_for_lookup(tmp_path: Path) -> None:
    tool = tmp_path / "mytool"
    tool.write_text("#!/bin/sh\necho from-mytool\n")
    tool.chmod(0o755)
    result = run(f"PATH={tmp_path}:/usr/bin:/bin mytool")
    assert result.stdout == b"from-mytool\n"


def test_check_raises_with_the_result() -> None:
    with pytest.raises(PipelineFailed) as caught:
        run("true | sh -c 'exit 6'", check=True)
    assert caught.value.status == 6
    assert caught.value.result.stages[1].status == 6


# ---------------------------------------------------------------- tornado traps


def test_exec_failure_does_not_close_unrelated_descriptors(tmp_path: Path) -> None:
    """With Subprocess.STREAM a failed Popen closes fds its streams own; ppipe passes plain fds."""
    garbage = tmp_path / "bad-interpreter"
    garbage.write_text("#!/nonexistent/interpreter\n")
    garbage.chmod(0o755)
    keep = tmp_path / "keep"
    keep.write_text("keep")
    fd = os.open(keep, os.O_RDONLY)
    try:
        for _ in range(3):
            result = run(f"{garbage} | cat")
            assert result.stages[0].error is not None
            assert result.exit_status == 127  # bash: "bad interpreter"
        gc.collect()
        assert os.fstat(fd).st_ino == keep.stat().st_ino
        assert os.pread(fd, 4, 0) == b"keep"
    finally:
        os.close(fd)


def test_script_without_shebang_runs_with_sh(tmp_path: Path) -> None:
    script = tmp_path / "plain-script"
    script.write_text('echo "from sh: $1"\n')
    script.chmod(0o755)
    assert run(f"{script} arg | cat").stdout == b"from sh: arg\n"


def test_runs_again_after_another_loop_left_tornado_initialised() -> None:
    """tornado's SIGCHLD flag is class-level: a closed loop must not make the next run hang."""
    from tornado.process import Subprocess

    async def leave_flag_set() -> None:
        Subprocess.initialize()  # and never uninitialize, as careless code would

    asyncio.run(leave_flag_set())
    assert Subprocess._initialized
    for _ in range(3):
        assert run("echo again", timeout=10).stdout == b"again\n"


def test_async_variant_runs_on_the_callers_loop() -> None:
    async def main() -> list[ppipe.RunResult]:
        return [await ppipe.run_async("seq 3 | wc -l", stdout=CAPTURE) for _ in range(2)]

    assert [r.stdout for r in asyncio.run(main())] == [b"3\n", b"3\n"]


def test_cancelling_the_async_run_reaps_every_stage() -> None:
    async def main() -> list[int]:
        task = asyncio.ensure_future(ppipe.run_async("sleep 100 | sleep 100", kill_after=1))
        while len(pids := children(os.getpid())) < 2:  # both stages have started
            await asyncio.sleep(POLL)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pids

    pids = asyncio.run(main())
    assert len(pids) == 2
    assert not children(os.getpid())


def test_timeout_stops_everything() -> None:
    start = time.monotonic()
    result = run("sleep 30 | sleep 30", timeout=0.5)
    assert time.monotonic() - start < 20
    assert result.timed_out
    assert result.exit_status == 124
    assert verdicts(result) == ["terminated", "terminated"]


def test_timeout_escalates_to_sigkill() -> None:
    stubborn = python_stage("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(30)")
    result = run(f"{stubborn} | cat", timeout=0.5, kill_after=0.5)
    assert result.exit_status == 124
    assert result.stages[0].signal == "SIGKILL"


# ---------------------------------------------------------------- counting


@given(data=st.binary(max_size=4096), cut=st.integers(min_value=0, max_value=4096))
def test_count_newlines_agrees_with_counting_every_byte(data: bytes, cut: int) -> None:
    end = min(cut, len(data))
    assert count_newlines(bytearray(data), end) == data.count(b"\n", 0, end)
    assert count_newlines(data) == data.count(b"\n")


def test_without_tee_lines_are_counted_through_python(monkeypatch: pytest.MonkeyPatch) -> None:
    import ppipe.engine.options
    import ppipe.engine.splice

    monkeypatch.setattr(ppipe.engine.options, "tee_function", lambda: None)
    monkeypatch.setattr(ppipe.engine.splice, "tee_function", lambda: None)
    exact = run("seq 1000 | grep 7 | wc -l", count_lines=True)
    assert (exact.edge(1, 2).lines, exact.edge(2, 3).lines) == (1000, int(exact.stdout))
    assert exact.edge(1, 2).bytes == 3893


def test_a_slow_consumer_does_not_make_counting_copy_the_same_bytes_again(monkeypatch: pytest.MonkeyPatch) -> None:
    import ppipe.engine.splice

    copied: list[int] = []
    read_tap = ppipe.engine.splice.SplicePump._read_tap

    def counting_read_tap(self: ppipe.engine.splice.SplicePump, size: int) -> memoryview:
        copied.append(size)
        return read_tap(self, size)

    monkeypatch.setattr(ppipe.engine.splice.SplicePump, "_read_tap", counting_read_tap)
    consumer = python_stage("import os\nwhile os.read(0, 16384): pass\n")
    result = run(f"head -c 16M /dev/zero | {consumer}", count_lines=True)
    assert result.edge(1, 2).bytes == 16 * MiB
    if os.environ["PPIPE_SPLICE"] == "1":
        assert sum(copied) < 2 * 16 * MiB  # each byte copied about once, not once per wake-up


def test_running_out_of_descriptors_leaves_none_open() -> None:
    code = (
        "import os, resource, ppipe\n"
        "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n"
        "before = len(os.listdir('/proc/self/fd'))\n"
        "for limit in range(before + 6, before + 130, 4):  # failing at every step of the wiring\n"
        "    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))\n"
        "    try:\n"
        "        ppipe.run(' | '.join(['cat'] * 8), input=b'x\\n', stdout=ppipe.CAPTURE, count_lines=True)\n"
        "    except ppipe.PpipeError:\n"
        "        pass\n"
        "    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))\n"
        "    assert len(os.listdir('/proc/self/fd')) == before, (limit, os.listdir('/proc/self/fd'))\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert done.stdout == b"ok\n", done.stderr.decode()


def test_concurrent_runs_on_one_loop() -> None:
    async def main() -> list[int]:
        first = asyncio.ensure_future(ppipe.run_async("sleep 0.1"))
        await asyncio.sleep(0.02)  # the second starts while the first runs: the overlap is what is tested
        second = asyncio.ensure_future(ppipe.run_async("sleep 0.5"))
        return [(await first).exit_status, (await second).exit_status]

    assert asyncio.run(asyncio.wait_for(main(), 20)) == [0, 0]
