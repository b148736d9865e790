"""--fork with dealt input: a shard starts when its first record arrives, and one that gets none is skipped.

Real runs: ``grep`` exits 1 on no input, so a shard started for nothing
would fail the run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import ppipe as run_ppipe

TEN = b"".join(b"%d\n" % i for i in range(1, 11))


def shards_of(report: Path) -> list[tuple[int, str, int]]:
    data = json.loads(report.read_text())
    return [(s["task_id"], s["verdict"], len(s["attempts"])) for s in data["shards"]]


def test_shards_dealt_nothing_are_skipped_and_do_not_fail_the_run(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    done = run_ppipe("--fork", "4", "--report", str(report), "grep 7", input=TEN)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"7\n" and done.stderr == b""
    assert shards_of(report) == [(0, "ok", 1), (1, "skipped", 0), (2, "skipped", 0), (3, "skipped", 0)]


@pytest.mark.parametrize(
    "options",
    [
        ["--keep-order", "--tag"],
        ["--max-restarts", "2"],
        ["--halt", "now,fail=1"],
        ["--halt", "soon,done=1"],
        ["-j", "1"],
        ["-j", "2", "--max-restarts", "1", "--keep-order"],
    ],
)
def test_a_skipped_shard_behaves_under_every_option(tmp_path: Path, options: list[str]) -> None:
    report = tmp_path / "r.json"
    done = run_ppipe("--fork", "4", *options, "--report", str(report), "grep 7", input=TEN)
    assert done.returncode == 0, done.stderr
    assert done.stdout in (b"7\n", b"0\t7\n")
    assert [(t, v, n) for t, v, n in shards_of(report) if t > 0] == [
        (1, "skipped", 0),
        (2, "skipped", 0),
        (3, "skipped", 0),
    ]


def test_a_header_alone_starts_no_shard(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    done = run_ppipe("--fork", "3", "--header", "1", "--report", str(report), "cat", input=b"name\n", timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""
    assert [v for _, v, _ in shards_of(report)] == ["skipped"] * 3
    assert json.loads(report.read_text())["input_undelivered"] == 0  # the header was no shard's work


def test_the_shards_that_get_records_each_get_the_header(tmp_path: Path) -> None:
    done = run_ppipe("--fork", "3", "--block", "1", "--header", "1", "--keep-order", "cat", input=b"h\n1\n2\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"h\n1\nh\n2\n"


def test_empty_input_starts_no_shard(tmp_path: Path) -> None:
    marks = tmp_path / "started"
    marks.mkdir()
    done = run_ppipe("--fork", "3", f"sh -c 'touch {marks}/{{task_id}}; cat'", input=b"")
    assert done.returncode == 0, done.stderr
    assert list(marks.iterdir()) == []


def test_shards_that_do_not_read_ppipe_s_input_all_start(tmp_path: Path) -> None:
    done = run_ppipe("--fork", "3", "--tag", "echo {task_id} < /dev/null", input=b"")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == [b"0\t0", b"1\t1", b"2\t2"]


def test_each_starts_every_item_whatever_its_input(tmp_path: Path) -> None:
    items = tmp_path / "items"
    items.write_text("a\nb\nc\n")
    done = run_ppipe("--each", str(items), "--keep-order", "sh -c 'cat; echo {item}'", input=b"x\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"x\na\nb\nc\n"


def test_the_summary_says_why_a_shard_was_skipped(tmp_path: Path) -> None:
    """The summary's status column tells a shard dealt nothing from one an earlier run finished."""
    joblog = tmp_path / "jobs.log"
    first = run_ppipe("--fork", "3", "--joblog", str(joblog), "--display", "never", "sort", input=TEN)
    assert first.returncode == 0, first.stderr
    again = run_ppipe("--fork", "3", "--joblog", str(joblog), "--resume", "--display", "always", "sort", input=TEN)
    assert again.returncode == 0, again.stderr
    # Ten lines are one block: shard 0 had them all and is in the job log; 1 and 2 were dealt nothing again.
    assert again.stderr.count(b"skipped (done before)") == 1
    assert again.stderr.count(b"skipped (no input)") == 2
