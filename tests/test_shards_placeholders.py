"""Each shard's placeholders are filled into its parsed pipeline, never into the text before parsing."""

from __future__ import annotations

from pathlib import Path

from helpers import ppipe as run_ppipe


def test_a_placeholder_before_a_redirection_stays_a_word(tmp_path: Path) -> None:
    # Filled into the text, shard 0's '{task_id}>o0.txt' read '0>o0.txt': its stdin redirected.
    done = run_ppipe("--fork", "4", "echo hi {task_id}>o{task_id}.txt", cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    for task_id in range(4):
        assert (tmp_path / f"o{task_id}.txt").read_text() == f"hi {task_id}\n"


def test_the_report_shows_each_shards_pipeline_filled_in(tmp_path: Path) -> None:
    import json

    report = tmp_path / "r.json"
    done = run_ppipe("--fork", "2", "--report", str(report), "echo {task_num} of {tasks}")
    assert done.returncode == 0, done.stderr
    shards = json.loads(report.read_text())["shards"]
    assert [s["pipeline"] for s in shards] == ["echo 1 of 2", "echo 2 of 2"]


def test_a_command_named_by_a_placeholder_is_checked_by_each_shard(tmp_path: Path) -> None:
    tool = tmp_path / "tool0"
    tool.write_text("#!/bin/sh\necho tool0 ran\n")
    tool.chmod(0o755)
    done = run_ppipe("--fork", "2", "./tool{task_id}", cwd=str(tmp_path))
    assert done.returncode == 127, done.stderr
    assert done.stdout == b"tool0 ran\n"
    assert b"shard 1 failed" in done.stderr and b"./tool1" in done.stderr
