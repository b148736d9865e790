"""Sharded runs that cannot hold what they must (a full ``TMPDIR``): they say so and fail, never lose data quietly.

A real, small tmpfs is mounted for ``TMPDIR``; that needs root, so these
tests skip without it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from helpers import ENV, PPIPE


def _sharded(script: str, tmpdir: Path, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        script,
        shell=True,
        capture_output=True,
        timeout=timeout,
        env={**ENV, "TMPDIR": str(tmpdir)},
        stdin=subprocess.DEVNULL,
    )


def test_a_line_too_long_to_keep_fails_its_shard_and_says_why(small_tmpdir: Path, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    done = _sharded(f"{PPIPE} --fork 2 --report {report} 'head -c 20000000 /dev/zero' > /dev/null", small_tmpdir)
    assert done.returncode == 1, done.stderr
    assert b"cannot keep its output: No space left on device" in done.stderr
    assert f"TMPDIR={small_tmpdir}".encode() in done.stderr
    assert b"Traceback" not in done.stderr
    data = json.loads(report.read_text())
    assert data["exit_status"] == 1
    assert [s["verdict"] for s in data["shards"]] == ["failed", "failed"]


def test_input_kept_for_restarts_that_no_longer_fits_loses_no_block(small_tmpdir: Path) -> None:
    done = _sharded(f"seq 1 3000000 | {PPIPE} --fork 2 --max-restarts 1 'wc -l'", small_tmpdir)
    assert done.returncode == 0, done.stderr
    assert sum(int(n) for n in done.stdout.split()) == 3000000


def test_a_failed_shard_whose_input_was_not_kept_is_not_restarted_and_says_why(
    small_tmpdir: Path, tmp_path: Path
) -> None:
    report = tmp_path / "r.json"
    done = _sharded(
        f"seq 1 3000000 | {PPIPE} --fork 2 --max-restarts 1 --report {report} \"sh -c 'wc -l; exit 3'\"", small_tmpdir
    )
    assert done.returncode == 3, done.stderr
    assert b"not run again: cannot keep its input for a restart: No space left on device" in done.stderr
    assert f"TMPDIR={small_tmpdir}".encode() in done.stderr
    shards = json.loads(report.read_text())["shards"]
    assert [len(s["attempts"]) for s in shards] == [1, 1]
    assert sum(int(n) for n in done.stdout.split()) == 3000000  # the one attempt each had it all
