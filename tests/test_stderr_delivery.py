"""Stderr, ppipe's and the stages': nothing lost to a slow reader or to an unfinished line, and a closed or
unwritable stderr kills no stage and keeps the run's status."""

from __future__ import annotations

import subprocess

import pytest

from helpers import ENV, PPIPE


def shell(script: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["bash", "-c", script], capture_output=True, timeout=timeout, env=ENV)


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


def test_closed_stderr_does_not_kill_stages() -> None:
    result = shell(f"{PPIPE} \"sh -c 'echo a >&2; sleep 0.3; echo b >&2; echo survived'\" 2>&-")
    assert result.stdout == b"survived\n"
    assert result.returncode == 0


@pytest.mark.parametrize("script", [f"{PPIPE} \"sh -c 'exit 3'\" 2>&-", f"{PPIPE} \"sh -c 'exit 3'\" 2>/dev/full"])
def test_status_survives_an_unwritable_stderr(script: str) -> None:
    assert shell(script).returncode == 3
