"""--each's items: each task of a job array runs its share, and --explain shows every shard's argv with its item.

Real runs of the installed ppipe; a job array's tasks are plain ppipe
processes given --task-id/--tasks, as a scheduler's script would start them.
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers import ppipe as run_ppipe

#: Every shard prints its {task_id} and its item; the shards' lines together show which items ran where.
SHOW = "echo {task_id}:{tasks}:{item}"


def ten_items(tmp_path: Path) -> Path:
    items = tmp_path / "ten.txt"
    items.write_text("".join(f"item{i}\n" for i in range(10)))
    return items


def ran(output: bytes) -> list[str]:
    return sorted(output.decode().split(), key=lambda line: int(line.split(":")[0]))


def test_each_task_of_an_array_runs_its_items_round_robin(tmp_path: Path) -> None:
    items = ten_items(tmp_path)
    seen = []
    for task in range(3):
        done = run_ppipe("--each", str(items), "--task-id", str(task), "--tasks", "3", SHOW)
        assert done.returncode == 0, done.stderr
        lines = ran(done.stdout)
        assert [int(line.split(":")[0]) for line in lines] == list(range(task, 10, 3))
        seen += lines
    # Together, every item exactly once, {task_id} its index in the whole list and {tasks} the list's length.
    assert sorted(seen, key=lambda line: int(line.split(":")[0])) == [f"{i}:10:item{i}" for i in range(10)]


def test_a_task_with_no_items_left_runs_nothing_and_succeeds(tmp_path: Path) -> None:
    items = tmp_path / "two.txt"
    items.write_text("a\nb\n")
    done = run_ppipe("--each", str(items), "--task-id", "2", "--tasks", "3", SHOW)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""


def test_a_task_s_job_log_and_resume_keep_to_its_share(tmp_path: Path) -> None:
    items, log = ten_items(tmp_path), tmp_path / "jl1"
    flaky = "sh -c 'echo {task_id}; test -e ok || test {task_id} != 4'"
    first = run_ppipe(
        "--each", str(items), "--task-id", "1", "--tasks", "3", "--joblog", str(log), flaky, cwd=str(tmp_path)
    )
    assert first.returncode == 1  # item 4 failed
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines[0]["tasks"] == 10
    assert sorted((line["task_id"], line["item"], line["status"]) for line in lines[1:]) == [
        (1, "item1", 0),
        (4, "item4", 1),
        (7, "item7", 0),
    ]
    (tmp_path / "ok").touch()
    again = run_ppipe(
        "--each", str(items), "--task-id", "1", "--tasks", "3", "--joblog", str(log), "--resume-failed", flaky,
        cwd=str(tmp_path),
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert again.stdout == b"4\n"  # only the failed item of this task's share runs again


def test_explain_each_shows_each_shard_s_argv_with_its_item(tmp_path: Path) -> None:
    items = tmp_path / "items.txt"
    items.write_text("".join(f"f{i}.txt\n" for i in range(1000)))
    done = run_ppipe("--explain", "--each", str(items), "echo {item} {task_id}")
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert "{item}" not in text.split("pipeline:")[1].split("\n", 1)[1]  # filled everywhere but the pipeline's text
    assert "  shard 0 (item 'f0.txt'): ['echo', 'f0.txt', '0']\n" in text
    assert "  shard 4 (item 'f4.txt'): ['echo', 'f4.txt', '4']\n" in text
    assert "shard 5 " not in text
    assert "  … and 995 more shards\n" in text
    assert "  argv: ['echo', 'f0.txt', '0']\n" in text  # the first shard in full


def test_explain_each_shows_an_item_as_one_argument_however_odd(tmp_path: Path) -> None:
    items = tmp_path / "items.txt"
    items.write_bytes(b"a b;$(x)\ncaf\xe9\n")
    done = run_ppipe("--explain", "--each", str(items), "printf %s {item} | wc -c")
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode("utf-8", "surrogateescape")
    assert (
        "  shard 0 (item 'a b;$(x)'):\n    stage 1: ['printf', '%s', 'a b;$(x)']\n    stage 2: ['wc', '-c']\n" in text
    )
    assert "  shard 1 (item 'caf\\udce9'):" in text
    assert "more shards" not in text


def test_explain_in_an_array_task_shows_its_share_and_the_task_ids(tmp_path: Path) -> None:
    items = ten_items(tmp_path)
    done = run_ppipe("--explain", "--each", str(items), "--task-id", "1", "--tasks", "3", SHOW)
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert "items: 10 in all; this task runs the items i with i mod 3 = 1: 3 of them\n" in text
    shown = [line for line in text.splitlines() if line.startswith("  shard ")]
    assert shown == [
        "  shard 1 (item 'item1'): ['echo', '1:10:item1']",
        "  shard 4 (item 'item4'): ['echo', '4:10:item4']",
        "  shard 7 (item 'item7'): ['echo', '7:10:item7']",
    ]
