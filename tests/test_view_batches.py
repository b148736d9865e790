"""Views and summaries of runs with many shards: a tally and the failures, never a wall of finished ones."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import ENV, PPIPE, ppipe
from terminals import in_pty, screen_of


def final_screen(args: list[str], columns: int = 100, rows: int = 30) -> tuple[int, list[str]]:
    """Runs ppipe in a pty of that size; its exit status and what the terminal shows at the end."""
    status, raw = in_pty([PPIPE, *args], {**ENV, "TERM": "xterm-256color"}, columns=columns, rows=rows)
    return status, [line.rstrip() for line in screen_of(raw, columns, rows).display]


def items(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "items"
    path.write_text("".join(f"{i}\n" for i in range(count)))
    return path


def test_a_successful_batch_ends_with_a_tally_not_a_row_per_item(tmp_path: Path) -> None:
    status, screen = final_screen(["--each", str(items(tmp_path, 300)), "-j", "4", "true {item}"])
    assert status == 0
    text = "\n".join(screen)
    assert re.search(r"^300 shards: 300 ok in \d", text, re.MULTILINE), text
    assert not [line for line in screen if line.startswith("✓")], text  # no row per item


def test_a_batch_with_many_failures_lists_ten_and_counts_the_rest(tmp_path: Path) -> None:
    failing = "sh -c 'test $(({item} % 3)) != 0 || exit 7'"  # items 0, 3, 6 ... fail: 34 of 100
    status, screen = final_screen(["--each", str(items(tmp_path, 100)), "-j", "4", failing], rows=60)
    assert status == 7
    text = "\n".join(screen)
    assert re.search(r"^100 shards: 66 ok, 34 failed in \d", text, re.MULTILINE), text
    assert len([line for line in screen if line.startswith("✗")]) == 10, text
    assert "and 24 more (see --joblog)" in text
    assert len(re.findall(r"shard \d+ failed", text)) == 3, text  # three panels
    assert "31 more failed shards: see --joblog" in text


def test_without_a_view_the_failure_lines_stop_at_ten_shards(tmp_path: Path) -> None:
    done = ppipe("--each", str(items(tmp_path, 40)), "-j", "4", "sh -c 'exit 3'")
    assert done.returncode == 3
    lines = done.stderr.decode().splitlines()
    assert len([line for line in lines if re.match(r"ppipe: shard \d+ failed", line)]) == 10, lines
    assert lines[-1] == "ppipe: and 30 more shards (see --joblog)", lines


def test_plain_progress_of_a_batch_names_only_the_shards_under_way(tmp_path: Path) -> None:
    done = ppipe(
        "--each",
        str(items(tmp_path, 60)),
        "-j",
        "2",
        "--progress",
        "plain",
        "--progress-interval",
        "0.2",
        "sh -c 'sleep 0.02'",
    )
    assert done.returncode == 0
    lines = [line for line in done.stderr.decode().splitlines() if line.startswith("ppipe: ")]
    assert lines, done.stderr
    for line in lines:
        assert line.count("| shard ") <= 2, line  # at most --jobs shards named, the rest counted
        assert " done" in line or " waiting" in line, line
