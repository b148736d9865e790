"""Defects found in review, each pinned by the command that showed it."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from pathlib import Path

import pytest

import ppipe as ppipe_module

from helpers import ENV, PPIPE, ppipe, wait_for_lines


def shell(script: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["bash", "-c", script], capture_output=True, timeout=timeout, env=ENV)


def test_signalling_a_stage_that_just_exited_does_not_hang() -> None:
    """Popen.send_signal would reap the stage behind tornado's back and wait_for_exit never returned."""
    result = subprocess.run(
        [PPIPE, "--kill-after", "1", "sh -c 'kill -TERM $PPID; exit 0'"], capture_output=True, timeout=30, env=ENV
    )
    assert result.returncode == -15


def test_concurrent_runs_on_one_loop() -> None:
    async def main() -> list[int]:
        first = asyncio.ensure_future(ppipe_module.run_async("sleep 0.1"))
        await asyncio.sleep(0.02)  # the second starts while the first runs: the overlap is what is tested
        second = asyncio.ensure_future(ppipe_module.run_async("sleep 0.5"))
        return [(await first).exit_status, (await second).exit_status]

    assert asyncio.run(asyncio.wait_for(main(), 20)) == [0, 0]


def test_report_into_a_fifo_keeps_the_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    assert ppipe("--report", str(fifo), "true").returncode == 0
    out, _ = reader.communicate(timeout=20)
    assert b'"schema": "ppipe-report/2"' in out
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_stderr_is_not_lost_to_a_slow_reader() -> None:
    result = shell(f"{PPIPE} 'seq 1 200000 >&2' 2>&1 | (sleep 2; wc -l)")
    assert result.stdout.strip() == b"200000"


def test_unfinished_stderr_line_does_not_deadlock() -> None:
    result = subprocess.run(
        [PPIPE, "sh -c 'printf 50%% >&2; seq 1 1000000; echo >&2' | sh -c 'cat >&2'"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=30,
        env=ENV,
    )
    assert result.returncode == 0
    assert b"50%" in result.stderr
    assert result.stderr.count(b"\n") == 1_000_001


def test_a_consumers_child_still_reading_gets_everything(tmp_path: Path) -> None:
    out = tmp_path / "wc.out"
    script = f"exec 3<&0; (sleep 0.3; wc -l <&3 > {out}) &"
    assert ppipe(f"seq 1 1000000 | sh -c '{script}'").returncode == 0
    assert wait_for_lines(out, 1).strip() == "1000000"


def test_closed_stderr_does_not_kill_stages() -> None:
    result = shell(f"{PPIPE} \"sh -c 'echo a >&2; sleep 0.3; echo b >&2; echo survived'\" 2>&-")
    assert result.stdout == b"survived\n"
    assert result.returncode == 0


def test_sigpipe_of_a_stages_own_making_is_a_failure() -> None:
    result = ppipe("seq 3 | sh -c 'kill -PIPE $$' | cat")
    assert result.returncode == 141


@pytest.mark.parametrize("script", [f"{PPIPE} \"sh -c 'exit 3'\" 2>&-", f"{PPIPE} \"sh -c 'exit 3'\" 2>/dev/full"])
def test_status_survives_an_unwritable_stderr(script: str) -> None:
    assert shell(script).returncode == 3


def test_non_utf8_file_name_is_reported_not_crashed() -> None:
    result = subprocess.run([PPIPE, b"cat < /nonexistent/nof\xff | wc -l"], capture_output=True, timeout=30, env=ENV)
    assert result.returncode == 1
    assert result.stdout.strip() == b"0"
    assert b"internal error" not in result.stderr


def test_nul_byte_in_a_variable_fails_the_stage_cleanly() -> None:
    result = ppipe_module.run(
        "cat",
        env={"PATH": os.environ["PATH"], "X": "a\0b"},
        stdin=b"",
        stdout=ppipe_module.CAPTURE,
        stderr=os.open(os.devnull, os.O_WRONLY),
    )
    assert result.exit_status == 1
    assert result.stages[0].error is not None


def test_a_producer_that_wrote_then_failed_later_on_its_own_still_fails() -> None:
    # It wrote, its consumer left, and a second later it failed: not EPIPE's doing.
    import ppipe

    result = ppipe.run("sh -c 'echo x; sleep 1; exit 3' | head -1", stdout=ppipe.CAPTURE)
    assert result.exit_status == 3
    assert [s.verdict.value for s in result.stages] == ["failed", "ok"]
