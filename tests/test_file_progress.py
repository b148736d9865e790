"""Percent done and ETA for stages reading files, seen through ``--progress json`` and ``plain`` of real runs."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers import ENV, PPIPE

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fdinfo"), reason="reads /proc")


#: Every line of the files the tests read: ``grep x`` matches them all.
LINE = b"0123456789 x abcdefghijklmnopqrstuvwxyz\n"


def write_lines(path: Path, megabytes: int) -> int:
    """A file of about ``megabytes`` MiB of ``LINE``; its size."""
    block = LINE * (1024 * 1024 // len(LINE))
    with path.open("wb") as file:
        for _ in range(megabytes):
            file.write(block)
    return path.stat().st_size


def progress_run(
    pipeline: str, cwd: Path, stdin: Any = subprocess.DEVNULL, kind: str = "json"
) -> tuple[subprocess.CompletedProcess[bytes], list[Any]]:
    """Runs ``pipeline`` under ``--progress KIND --progress-interval 0.2``; its result and its reports."""
    result = subprocess.run(
        [PPIPE, "--progress", kind, "--progress-interval", "0.2", pipeline],
        capture_output=True,
        cwd=cwd,
        env=ENV,
        stdin=stdin,
        timeout=120,
    )
    lines = result.stderr.decode().splitlines()
    return result, [json.loads(line) for line in lines] if kind == "json" else lines


def stage_reports(reports: list[Any], sid: int = 1) -> list[dict[str, Any]]:
    return [next(s for s in report["stages"] if s["id"] == sid) for report in reports]


def assert_read_in_order(reports: list[Any], size: int, files: int) -> list[dict[str, Any]]:
    """The first stage's reading, report by report: sized, never going back, ended whole; the reports mid-run."""
    stages = stage_reports(reports)
    assert all(s["input_size"] == size and s["input_files"] == files for s in stages), stages
    read = [s["input_read"] for s in stages]
    assert read == sorted(read), read
    assert reports[-1]["final"] and stages[-1]["percent"] == 100.0 and stages[-1]["eta"] is None
    middle = [s for s in stages[:-1] if 0 < s["input_read"] < size]
    assert middle, f"no report caught the stage mid-file: {read}"
    return middle


def test_grep_on_a_big_file_named_as_its_argument(tmp_path: Path) -> None:
    size = write_lines(tmp_path / "big.log", 256)
    # pv paces grep (every line matches) so that reports catch it mid-file.
    result, reports = progress_run("grep x big.log | pv -qL 80M | wc -l", tmp_path)
    assert result.returncode == 0
    assert int(result.stdout) == size // len(LINE)
    middle = assert_read_in_order(reports, size, 1)
    for before, now in itertools.pairwise(middle):
        if now["input_read"] > before["input_read"]:
            assert now["rate"] > 0  # never 0 B/s while the file is being read
    timed = [r for r in reports[:-1] if r["eta"] is not None]
    assert timed and all(r["eta_stage"] == 1 and r["eta"] >= 0 and 0 < r["percent"] <= 100 for r in timed)
    assert all(isinstance(s["eta"], float) for s in middle[1:])


def test_cat_of_three_files_sums_them_in_order(tmp_path: Path) -> None:
    sizes = [write_lines(tmp_path / name, 8) for name in ("a", "b", "c")]
    result, reports = progress_run("cat a b c | pv -qL 12M | wc -l", tmp_path)
    assert result.returncode == 0
    middle = assert_read_in_order(reports, sum(sizes), 3)
    # The reading went through more than one of the files, each counted after those before it.
    seen = {min(2, s["input_read"] // sizes[0]) for s in middle}
    assert len(seen) >= 2, [s["input_read"] for s in middle]

    result, lines = progress_run("cat a b c | pv -qL 12M | wc -l", tmp_path, kind="plain")
    assert result.returncode == 0
    mid = [line for line in lines if "of 3 files" in line and "B/s" in line]
    assert mid, lines
    assert re.match(r"ppipe: [\d.]+s \| ETA [\d.]+s \| 1 cat a b c running [\d.]+ [kMG]?B out \d+% of 3 files", mid[0])


def test_a_stage_reading_a_redirected_file(tmp_path: Path) -> None:
    size = write_lines(tmp_path / "f", 16)
    result, reports = progress_run("wc -l < f", tmp_path)
    assert result.returncode == 0
    final = stage_reports(reports)[-1]
    assert (final["command"], final["input_size"], final["percent"]) == ("wc -l", size, 100.0)

    result, reports = progress_run("pv -qL 12M < f | wc -l", tmp_path)
    assert result.returncode == 0
    assert_read_in_order(reports, size, 1)


def test_a_stage_reading_ppipes_own_stdin_a_file(tmp_path: Path) -> None:
    size = write_lines(tmp_path / "f", 16)
    with (tmp_path / "f").open("rb") as stdin:
        result, reports = progress_run("pv -qL 12M | wc -l", tmp_path, stdin=stdin)
    assert result.returncode == 0
    assert_read_in_order(reports, size, 1)


def test_an_unread_stdin_file_does_not_hold_back_a_stage_reading_its_arguments(tmp_path: Path) -> None:
    size = write_lines(tmp_path / "app.log", 1)
    write_lines(tmp_path / "other", 2)
    with (tmp_path / "other").open("rb") as stdin:
        result, reports = progress_run("grep -c x app.log", tmp_path, stdin=stdin)
    assert result.returncode == 0
    final = stage_reports(reports)[-1]
    assert (final["input_size"], final["input_files"], final["percent"]) == (size, 1, 100.0)
    assert (reports[-1]["percent"], reports[-1]["eta_stage"]) == (100.0, 1)


def test_stages_reading_no_file_have_no_progress(tmp_path: Path) -> None:
    result, reports = progress_run("seq 1 3 | wc -l", tmp_path)
    assert result.returncode == 0
    assert all(s["percent"] is None and s["input_size"] is None for s in stage_reports(reports))
    assert (reports[-1]["percent"], reports[-1]["eta"], reports[-1]["eta_stage"]) == (None, None, None)
