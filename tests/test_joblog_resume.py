"""The job log holds any item exactly, and a resume copes with what a full disk leaves behind.

Real runs throughout; the full disk is a real 64 KiB tmpfs (mounting needs root).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ppipe.shards.joblog import read_lines

from helpers import ppipe as run_ppipe
from helpers import tmpfs

#: Prints its item, one line: the shard's output shows which items ran.
PRINT_ITEM = "printf '%s\\n' {item}"


def log_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_an_item_that_is_not_utf8_is_logged_exactly_and_read_back(tmp_path: Path) -> None:
    items, log = tmp_path / "bad.txt", tmp_path / "jl"
    items.write_bytes(b"caf\xe9\nok\n")
    done = run_ppipe("--each", str(items), "--joblog", str(log), PRINT_ITEM)
    assert done.returncode == 0, done.stderr
    assert b"Task exception" not in done.stderr and b"Error" not in done.stderr
    _, first, second = sorted(log_lines(log), key=lambda line: line.get("task_id", -1))  # type: ignore[arg-type, return-value]
    assert first["item"] == "caf\ufffd" and first["item_base64"] == "Y2Fm6Q=="  # readable, and exact
    assert second["item"] == "ok" and "item_base64" not in second
    assert {line.item for line in read_lines(str(log))} == {os.fsdecode(b"caf\xe9"), "ok"}


def test_resume_skips_an_item_that_is_not_utf8(tmp_path: Path) -> None:
    items, log = tmp_path / "bad.txt", tmp_path / "jl"
    items.write_bytes(b"caf\xe9\nok\n")
    assert run_ppipe("--each", str(items), "--joblog", str(log), PRINT_ITEM).returncode == 0
    again = run_ppipe("--each", str(items), "--joblog", str(log), "--resume", PRINT_ITEM)
    assert again.returncode == 0, again.stderr
    assert again.stdout == b""  # both finished before: nothing runs again
    assert len(log_lines(log)) == 3


def test_an_item_in_base64_that_is_not_base64_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "jl"
    header = {"ppipe_joblog": 1, "pipeline": "true", "tasks": 1}
    line = {"task_id": 0, "item": "x", "attempt": 1, "status": 0, "signal": None, "started_at": 0.0}
    line |= {"seconds": 0.1, "bytes_in": None, "bytes_out": 0, "host": "h", "final": True, "item_base64": "!!"}
    log.write_text(json.dumps(header) + "\n" + json.dumps(line) + "\n")
    items = tmp_path / "items"
    items.write_text("x\n")
    done = run_ppipe("--each", str(items), "--joblog", str(log), "--resume", "true")
    assert done.returncode == 2
    assert done.stderr.startswith(b"ppipe: ") and b"item_base64 is not base64" in done.stderr


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs, unmounted whatever the test did."""
    with tmpfs(tmp_path / "tiny", "64k") as where:
        yield where


def fill(disk: Path, leave: int) -> Path:
    """Fills ``disk`` until about ``leave`` bytes are free; returns the filler to delete."""
    filler = disk / "filler"
    stats = os.statvfs(disk)
    filler.write_bytes(b"\0" * max(0, stats.f_bavail * stats.f_frsize - leave))
    return filler


def test_a_full_disk_fails_the_run_and_a_resume_cuts_the_torn_line(tiny_disk: Path, tmp_path: Path) -> None:
    items, log = tmp_path / "items.txt", tiny_disk / "jl"
    items.write_text("".join(f"{i}\n" for i in range(100)))
    filler = fill(tiny_disk, 8192)
    full = run_ppipe("--each", str(items), "-j", "4", "--joblog", str(log), "true")
    assert full.returncode == 1
    assert f"ppipe: cannot write the job log {log}: No space left on device".encode() in full.stderr
    assert b"Task exception" not in full.stderr and b"Traceback" not in full.stderr
    assert not log.read_bytes().endswith(b"\n")  # a line was torn by the full disk
    kept = log.read_bytes().count(b"\n")

    filler.unlink()
    resumed = run_ppipe("--each", str(items), "-j", "4", "--joblog", str(log), "--resume", "true")
    assert resumed.returncode == 0, resumed.stderr
    said = [line for line in resumed.stderr.decode().splitlines() if "cut short" in line]
    assert len(said) == 1 and said[0].startswith(f"ppipe: --joblog {log}: its last line was cut short")
    lines = log_lines(log)  # every line whole: the fragment is gone
    assert len(lines) == 1 + 100
    assert sorted(line["task_id"] for line in lines[1:]) == list(range(100))  # type: ignore[type-var]
    assert len(lines) - kept == 100 - (kept - 1)  # the finished ones were not run again

    again = run_ppipe("--each", str(items), "-j", "4", "--joblog", str(log), "--resume", "true")
    assert again.returncode == 0, again.stderr
    assert b"cut short" not in again.stderr and len(log_lines(log)) == 101


def test_a_job_log_that_cannot_be_begun_stops_the_run_before_it_starts(tiny_disk: Path, tmp_path: Path) -> None:
    items, log, ran = tmp_path / "items.txt", tiny_disk / "jl", tmp_path / "ran"
    items.write_text("a\nb\n")
    fill(tiny_disk, 0)
    done = run_ppipe("--each", str(items), "--joblog", str(log), f"touch {ran}")
    assert done.returncode == 1
    assert done.stderr == f"ppipe: cannot write the job log {log}: No space left on device\n".encode()
    assert not ran.exists()


def test_a_torn_line_in_the_middle_is_still_refused(tmp_path: Path) -> None:
    items, log = tmp_path / "items.txt", tmp_path / "jl"
    items.write_text("a\nb\nc\n")
    assert run_ppipe("--each", str(items), "--joblog", str(log), "true").returncode == 0
    header, *rest = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(header + rest[0][:20] + b"".join(rest[1:]))  # line 2 torn, the next written after it
    done = run_ppipe("--each", str(items), "--joblog", str(log), "--resume", "true")
    assert done.returncode == 2
    assert done.stderr == f"ppipe: --joblog {log}: line 2 is not a job log line; not resuming from it\n".encode()
    assert log.read_bytes().count(b"\n") == 3  # left as it was
