"""Every byte ppipe reads for its shards is accounted for: delivered to a shard, or undelivered."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ppipe

from helpers import ENV, PPIPE

#: Consumers that read all, some, none, or some and then fail (and are fed it all again).
CONSUMERS = [
    ("cat", 0),
    ("head -n 1", 0),
    ("head -c 100000", 0),
    ("true", 0),
    ("sh -c 'head -c 5000 >/dev/null; exit 1'", 1),
]


def test_shards_that_end_early_leave_no_byte_unaccounted_for(tmp_path: Path) -> None:
    """From a file ppipe knows the input's size: what it had not read when the shards ended is undelivered too.

    (From a pipe, only what ppipe read counts: how much that is depends on how fast the shards end.)
    """
    report = tmp_path / "r.json"
    (tmp_path / "input").write_bytes(b"".join(b"%d\n" % i for i in range(1, 1000001)))
    done = subprocess.run(
        f"{PPIPE} -q --fork 2 --block 1M --report {report} 'head -1' < {tmp_path / 'input'}",
        shell=True,
        capture_output=True,
        env=ENV,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text())
    assert sum(s["bytes_in"] for s in data["shards"]) + data["input_undelivered"] == 6888896


@st.composite
def blocks_and_lines(draw: st.DrawFn) -> tuple[int, int]:
    """A ``--block`` size and a number of lines: few, or many more than a pipe holds.

    With blocks of one byte each line is dealt alone: some tens of thousands of lines are already many pipes'
    worth, and hundreds of thousands took seconds a run without reaching anything new.
    """
    block = draw(st.sampled_from([1, 4096, 65536, 1 << 20]))
    many = st.integers(20_000, 40_000) if block == 1 else st.integers(150_000, 400_000)
    return block, draw(st.integers(0, 2000) | many)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=blocks_and_lines(),
    width=st.integers(0, 12),
    shards=st.integers(1, 4),
    consumer=st.sampled_from(CONSUMERS),
)
def test_bytes_in_and_undelivered_add_up_to_the_input(
    sizes: tuple[int, int], width: int, shards: int, consumer: tuple[str, int]
) -> None:
    block, lines = sizes
    data = b"".join(b"%0*d\n" % (width, n) for n in range(lines))
    command, restarts = consumer
    result = ppipe.run(command, fork=shards, block=block, max_restarts=restarts, input=data, stdout=ppipe.CAPTURE)
    assert isinstance(result, ppipe.RunResult) and result.sharded
    delivered = [s.bytes_in or 0 for s in result.shards]
    assert sum(delivered) + result.input_undelivered == len(data)
    if command == "cat":
        assert result.input_undelivered == 0 and len(result.stdout or b"") == len(data)


def test_a_read_error_on_the_input_fails_the_run() -> None:
    # A Unix socket whose peer left with bytes unread gives ECONNRESET after the data it had.
    ours, theirs = socket.socketpair()
    ours.sendall(b"x\n" * 1000)
    theirs.sendall(b"never read")
    ours.close()
    with theirs:
        done = subprocess.run([PPIPE, "--fork", "2", "wc -l"], stdin=theirs, capture_output=True, env=ENV, timeout=60)
    assert done.returncode == 1, done.stderr
    assert b"cannot read the input: Connection reset by peer" in done.stderr
    assert sum(int(n) for n in done.stdout.split()) == 1000  # the shards still got what was read
