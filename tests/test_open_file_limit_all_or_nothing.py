"""Near the open-file limit a run starts every stage or none: never some stages and a lost input."""

from __future__ import annotations

import resource
import subprocess

import pytest

from helpers import ENV, PPIPE

SEVEN_CATS = "cat | cat | cat | cat | cat | cat | cat"


def run_with_open_file_limit(limit: int, *args: str) -> subprocess.CompletedProcess[bytes]:
    def lower_the_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return subprocess.run(
        [PPIPE, *args], input=b"hi\n", capture_output=True, timeout=60, env=ENV, preexec_fn=lower_the_limit
    )


@pytest.mark.parametrize("options", [(), ("--lines",), ("--report", "/dev/null")])
def test_every_open_file_limit_runs_all_or_nothing(options: tuple[str, ...]) -> None:
    """From far too few descriptors to enough: the input comes through whole, or status 1 and one clear line."""
    outcomes = set()
    for limit in range(30, 80, 3):
        result = run_with_open_file_limit(limit, *options, SEVEN_CATS)
        assert b"Traceback" not in result.stderr and b"internal error" not in result.stderr, (limit, result.stderr)
        if result.returncode == 0:
            assert result.stdout == b"hi\n", limit
            outcomes.add("ran")
        else:
            assert result.returncode == 1, (limit, result.stderr)
            assert result.stdout == b""
            assert b"need more open files than the limit" in result.stderr, (limit, result.stderr)
            assert b"not started" not in result.stderr
            outcomes.add("refused")
    assert outcomes == {"ran", "refused"}


def test_redirections_count_in_the_need(tmp_path: object) -> None:
    text = "cat < /dev/null > /dev/null 2> /dev/null | cat | cat | cat | cat | cat | cat"
    for limit in range(30, 80, 3):
        result = run_with_open_file_limit(limit, text)
        assert result.returncode in (0, 1), (limit, result.stderr)
        assert b"not started" not in result.stderr, (limit, result.stderr)
