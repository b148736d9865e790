"""Too low a ``ulimit -n`` is refused with 1, sharded or not: a limit of the machine, not a usage error."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from helpers import ENV, PPIPE

TWENTY_STAGES = " | ".join(["seq 3", *["cat"] * 19])


def under_ulimit(limit: int, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``ppipe ARGS`` run by bash after ``ulimit -n LIMIT``, as a user would type it."""
    line = f"ulimit -n {limit} && exec {shlex.join([PPIPE, *args])}"
    return subprocess.run(["bash", "-c", line], capture_output=True, timeout=60, env=ENV, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--fork", "4", "seq 3 | cat"], "ppipe: --fork 4 needs about 56 open files, more than the limit of 40; "),
        (["--jobs", "4", "--each", "{items}", "echo {item}"], "ppipe: --jobs 4 needs about 56 open files"),
        ([TWENTY_STAGES], "ppipe: 20 stages need more open files than the limit of 40 allows"),
    ],
    ids=["fork", "jobs", "plain"],
)
def test_too_low_a_limit_is_refused_with_1_and_one_line(args: list[str], said: str, tmp_path: Path) -> None:
    items = tmp_path / "items"
    items.write_text("a\nb\nc\nd\ne\n")
    result = under_ulimit(40, *(str(items) if arg == "{items}" else arg for arg in args))
    assert result.returncode == 1, result.stderr
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(said), lines
