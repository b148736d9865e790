"""Sharded runs at the edges of size: long pipelines, absurd shard counts."""

from __future__ import annotations

import subprocess

import pytest

import ppipe
from ppipe.errors import UsageError

from helpers import ENV, PPIPE
from helpers import ppipe as run_ppipe


def test_a_long_non_ascii_argument_reaches_every_shard() -> None:
    # As escaped JSON in one argv string this was 180 kB: past Linux's 128 KiB per argument.
    word = "é" * 30_000
    done = run_ppipe("--fork", "2", f"echo {word} | wc -c")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [b"60001", b"60001"]


def test_a_pipeline_larger_than_a_pipe_buffer_reaches_every_shard() -> None:
    words = " ".join(["x" * 1000] * 120)  # 120 kB of pipeline text: more than a pipe holds at once
    done = run_ppipe("--fork", "3", f"echo {words} | wc -c")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(len(words) + 1).encode()] * 3


def test_an_absurd_shard_count_is_refused_before_anything_is_parsed() -> None:
    done = run_ppipe("--fork", "99999999999", "cat", timeout=30)
    assert done.returncode == 2, done.stderr
    assert b"at most" in done.stderr and b"Traceback" not in done.stderr


def test_more_shards_than_one_machine_runs_is_a_usage_error() -> None:
    done = run_ppipe("--fork", "20000", "cat", timeout=30)
    assert done.returncode == 2, done.stderr
    assert b"--fork 20000: ppipe runs at most 10000 shards" in done.stderr


def test_the_python_api_refuses_an_absurd_shard_count_too() -> None:
    with pytest.raises(UsageError, match="at most 10000 shards"):
        ppipe.run("cat", fork=99_999_999_999, input=b"")


def test_the_shard_count_limit_is_checked_before_the_descriptor_limit() -> None:
    done = subprocess.run(
        f"ulimit -n 64; {PPIPE} --fork 20000 cat </dev/null", shell=True, capture_output=True, env=ENV, timeout=30
    )
    assert done.returncode == 2
    assert b"at most" in done.stderr
